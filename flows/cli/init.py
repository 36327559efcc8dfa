"""``init``: scaffold an installable dataset package from a data file (``tasks.scaffold.run_init``)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import output
from flows.cli.app import app, console


class TaskChoice(enum.StrEnum):
    """What the model learns to predict."""

    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


@app.command("init", rich_help_panel="Data")
def init(
    data_file: Annotated[
        Path,
        typer.Argument(
            help="CSV, Parquet or JSON-lines file of the dataset, read as `lockgate ingest` reads it; "
            "the contracts are inferred from it."
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="Dataset name: lower-case letters, digits and '-' (names its lakeFS repository "
            "lockgate-NAME and the package lockgate_NAME).",
        ),
    ],
    target: Annotated[str, typer.Option("--target", help="The label column.")],
    task: Annotated[
        TaskChoice | None,
        typer.Option(
            "--task",
            help="What the model predicts. [default: inferred: two values binary, 3-50 multiclass, a "
            "number with many values regression]",
        ),
    ] = None,
    positive_class: Annotated[
        str | None,
        typer.Option(
            "--positive-class",
            help="The binary target's class the model gives the probability of. [default: a yes/true/1 "
            "value, else the second of the sorted values]",
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            metavar="COLUMN",
            help="Column that identifies a row; repeat for a compound key. [default: a column of the "
            "file with no empty and no repeated value, preferring ID-like names]",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            metavar="DIR",
            help="Directory to write the package to. [default: ./NAME]",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the scaffold's files in a non-empty --out.")
    ] = False,
) -> None:
    """Scaffold a Python package for your dataset from DATA_FILE: pandera contracts (raw and validated)
    and a Great Expectations suite inferred from the data, and the DatasetSpec (key, target, task,
    features) published under the `lockgate.datasets` entry point. `pip install -e DIR` and every
    lockgate command knows the dataset. Every inferred rule is marked `# review:`; README.md lists
    what to confirm."""
    from tasks.scaffold import run_init

    with console.status(f"Reading {data_file} ..."):
        result = run_init(
            data_file,
            name=name,
            target=target,
            task=task.value if task is not None else None,
            positive_class=positive_class,
            key_columns=tuple(key or ()),
            out=out,
            force=force,
        )
    plan = result.plan
    rows = [
        ("task", f"{plan.task} ({plan.task_reason})"),
        *(
            [("positive class", f"{plan.positive_class!r} ({plan.positive_reason})")]
            if plan.task == "binary"
            else []
        ),
        ("key", f"{', '.join(plan.key_columns)} ({plan.key_reason})"),
        ("features", f"{len(plan.feature_columns)}: {', '.join(plan.feature_columns)}"),
        ("missing -> mean", ", ".join(plan.missing) or "none (nulls refused)"),
        ("one-hot", ", ".join(plan.encodings) or "none"),
        *((f"not a feature: {column}", reason) for column, reason in plan.excluded.items()),
    ]
    output.items(f"Inferred for {plan.name} from {plan.source}: confirm each", rows)
    for note in plan.notes:
        console.print(f"[yellow]review:[/] {note}", highlight=False)
    if result.refused_rows:
        console.print(
            f"[yellow]warning:[/] the validated model refuses {result.refused_rows} row(s) of "
            f"{data_file.name}: ingesting it as it is would be rejected",
            highlight=False,
        )
    console.print(
        f"[green]wrote[/] {result.directory}: {', '.join(result.files)}\n"
        "Review the `# review:` lines and README.md, then:\n"
        f"  pip install -e {result.directory}\n"
        f"  lockgate datasets\n"
        f"  lockgate ingest {data_file} --dataset {plan.name}",
        highlight=False,
    )
