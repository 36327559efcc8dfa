"""``lockgate retention`` (lockgate's data past its retention) and ``lockgate lakefs gc`` (the embedded
server's garbage collection, with lakeFS's rules)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markdown import Markdown

from flows.cli import output
from flows.cli.app import app, console, fail, lakefs_app
from flows.cli.context import lakefs_connection
from flows.cli.options import DataDir

_DAYS = {"min": 1, "max": 36_500}


@app.command("retention", rich_help_panel="Data")
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; change nothing.")] = False,
    logs_days: Annotated[
        int, typer.Option(help="Keep inference logs and labels this many days.", **_DAYS)
    ] = 30,
    reports_days: Annotated[int, typer.Option(help="Keep monitoring reports this many days.", **_DAYS)] = 90,
    checkpoints_days: Annotated[
        int, typer.Option(help="Delete checkpoint branches (train-RUN) idle this many days.", **_DAYS)
    ] = 7,
    rejected_ingest_days: Annotated[
        int, typer.Option(help="Delete unmerged ingest branches older than this many days.", **_DAYS)
    ] = 14,
    gc_days: Annotated[
        int,
        typer.Option(
            help="GC rule set on lockgate's repositories that have none (commits older expire).", **_DAYS
        ),
    ] = 7,
    gc: Annotated[
        bool,
        typer.Option(
            "--gc/--no-gc",
            help="Collect the garbage afterwards (embedded server; a real lakeFS runs its GC job).",
        ),
    ] = True,
    gc_min_age_hours: Annotated[
        float, typer.Option(min=0, max=8760, help="GC keeps blocks written more recently than this.")
    ] = 6.0,
    repository: Annotated[
        list[str] | None,
        typer.Option(
            "--repository",
            help="Data repository to check for rejected ingests (repeat). "
            "[default: every installed dataset's]",
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """Remove lockgate's data past its retention: old inference logs and labels, monitoring reports,
    checkpoint branches of finished runs and rejected ingest branches; then collect the garbage.

    Model versions, aliases and data on main are never touched. Removed objects stay readable at
    their commits until those expire under the repository's GC rules (set to --gc-days where none
    exist). The same job runs daily as the `retention/lockgate` Prefect deployment.
    """
    from infra.settings import ServingSettings
    from tasks.retention import RetentionParameters, run_retention_job

    parameters = RetentionParameters(
        inference_log_days=logs_days,
        report_days=reports_days,
        checkpoint_days=checkpoints_days,
        rejected_ingest_days=rejected_ingest_days,
        gc_retention_days=gc_days,
        dry_run=dry_run,
        collect_garbage=gc,
        gc_min_age_hours=gc_min_age_hours,
        dataset_repositories=repository or [],
    )
    with (
        lakefs_connection(data_dir, quiet=as_json) as connection,
        console.status("Applying the retention policy...") as status,
    ):
        result = run_retention_job(
            parameters,
            client=connection.client,
            inference_repository=ServingSettings().inference_repository,
            progress=lambda line: status.update(f"Retention: {line}"),
        )
    if as_json:
        output.json_document(dataclasses.asdict(result))
        return
    console.print(Markdown(result.markdown()))


@lakefs_app.command("gc")
def collect_garbage(
    repository: Annotated[str, typer.Argument(help="Repository whose garbage to collect.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    min_age_hours: Annotated[
        float,
        typer.Option(
            min=0, max=8760, help="Keep blocks written more recently than this (uploads in flight)."
        ),
    ] = 6.0,
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """Garbage-collect one repository of the embedded lakeFS-API server, by its lakeFS GC rules.

    Blocks that no retained commit and no staged entry references are deleted (lakeFS's rules: branch
    heads always stay; history within each branch's retention days stays; tags protect nothing).
    Safe while clients write. Set the rules first, as on lakeFS:
    PUT /api/v1/repositories/REPOSITORY/settings/gc_rules (lakefs_sdk RepositoriesApi.set_gc_rules).
    """
    from infra.lakefs_server.gc import request_gc
    from tasks.retention import embedded_server

    with lakefs_connection(data_dir, quiet=as_json) as connection:
        if not embedded_server(connection.client):
            fail(
                f"{connection.settings.endpoint} is a real lakeFS server: run lakeFS's garbage collection "
                "job (Spark) there; `lockgate lakefs gc` collects the embedded server's garbage",
                code=2,
            )
        settings = connection.settings
        assert settings.endpoint and settings.access_key_id and settings.secret_access_key
        with console.status(f"Collecting the garbage of {repository}..."):
            answer = request_gc(
                settings.endpoint,
                settings.access_key_id,
                settings.secret_access_key.get_secret_value(),
                repository,
                dry_run=dry_run,
                min_age_hours=min_age_hours,
                addresses=as_json or dry_run,
            )
    if as_json:
        output.json_document(answer)
        return
    verb = "would delete" if dry_run else "deleted"
    output.items(
        f"Garbage collection of {repository}{' (dry run)' if dry_run else ''}",
        [
            ("blocks scanned", answer["scanned_blocks"]),
            (f"blocks {verb}", answer["deleted_blocks"]),
            (f"bytes {verb}", answer["deleted_bytes"]),
            ("commits retained", answer["retained_commits"]),
            ("commits expired", answer["expired_commits"]),
            ("kept: too young", answer["too_young"]),
            ("kept: revived while running", answer["revived"]),
            ("seconds", answer["seconds"]),
        ],
    )
    if dry_run:
        for block in answer.get("deleted", [])[:20]:
            console.print(f"  {block['address']}  ({block['size_bytes']} bytes)")
