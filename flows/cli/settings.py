"""``lockgate version`` and ``lockgate settings``: what is installed, and what every setting is."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.app import app, console, fail


@app.command("version", rich_help_panel="Setup")
def show_version() -> None:
    """Print the lockgate version and the lakeFS client versions it was built against."""
    for package in ("lockgate", "lakefs", "lakefs-sdk"):
        try:
            console.print(f"{package} {version(package)}", highlight=False)
        except PackageNotFoundError:
            console.print(f"{package} (not installed)", highlight=False)


@app.command("settings", rich_help_panel="Setup")
def show_settings(
    groups: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these groups: workload, lakefs, embedded-lakefs, s3, dask, serving, relay, "
            "automation, stack."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="GROUP.FIELD=VALUE as a command's option would set it (e.g. dask.n_workers=4): shows "
            "that an option wins over the environment.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every setting lockgate reads: its effective value, where it came from (default, environment
    or option) and its environment variable. Secrets are masked; invalid settings are named."""
    from infra.settings import ALL_SETTINGS, describe_settings

    by_group = {_group(settings): settings for settings in ALL_SETTINGS}
    unknown = sorted(set(groups or ()) - set(by_group))
    if unknown:
        fail(f"unknown settings group(s) {', '.join(unknown)}; known: {', '.join(by_group)}", code=2)
    options = _parse_overrides(overrides or [], by_group)
    report = []
    for name, settings in by_group.items():
        if groups and name not in groups:
            continue
        rows, problem = describe_settings(settings, options=options.get(name))
        report.append((name, settings, rows, problem))
    if as_json:
        console.print_json(
            json.dumps(
                {
                    name: {
                        "problem": problem,
                        "settings": {
                            row.name: {
                                "value": row.value,
                                "source": row.source,
                                "variables": list(row.variables),
                            }
                            for row in rows
                        },
                    }
                    for name, _, rows, problem in report
                }
            )
        )
        return
    for name, settings, rows, problem in report:
        table = Table(title=f"{name} ({settings.__name__})", title_justify="left")
        for column in ("setting", "value", "source", "environment variable", "what it is"):
            table.add_column(column, overflow="fold")
        colours = {"option": "cyan", "environment": "yellow", "default": "dim"}
        for row in rows:
            table.add_row(
                row.name,
                row.value,
                f"[{colours[row.source]}]{row.source}[/]",
                " or ".join(row.variables),
                row.description,
            )
        console.print(table)
        if problem:
            console.print(f"[red]invalid:[/] {problem}", highlight=False)


def _group(settings: type) -> str:
    """``LakeFSSettings`` -> ``lakefs``, ``EmbeddedLakeFSSettings`` -> ``embedded-lakefs``."""
    names = {
        "WorkloadSettings": "workload",
        "LakeFSSettings": "lakefs",
        "EmbeddedLakeFSSettings": "embedded-lakefs",
        "S3Settings": "s3",
        "DaskSettings": "dask",
        "ServingSettings": "serving",
        "RelaySettings": "relay",
        "AutomationSettings": "automation",
        "StackSettings": "stack",
    }
    return names[settings.__name__]


def _parse_overrides(overrides: list[str], by_group: dict[str, type]) -> dict[str, dict[str, str]]:
    parsed: dict[str, dict[str, str]] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        group, dot, field = key.partition(".")
        if not sep or not dot or group not in by_group:
            fail(f"--set {text!r}: write GROUP.FIELD=VALUE with a group from {', '.join(by_group)}", code=2)
        if field not in by_group[group].model_fields:
            known = ", ".join(by_group[group].model_fields)
            fail(f"--set {text!r}: {group} has no setting {field!r}; it has {known}", code=2)
        parsed.setdefault(group, {})[field] = value
    return parsed
