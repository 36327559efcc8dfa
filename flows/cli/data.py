"""Data commands: ``datasets``, ``generate``, ``ingest`` (the contract gate), ``labels`` (outcomes), and
``data log`` / ``data show`` / ``data diff`` (a dataset's versions in lakeFS, without client code)."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from flows.cli import output
from flows.cli.app import app, console, fail
from flows.cli.context import lakefs_connection, publisher
from flows.cli.options import DataDir, Dataset, given

data_app = typer.Typer(
    help="A dataset's versions in lakeFS: its commits, its objects at a ref, what changed between refs.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data", rich_help_panel="Data")

DatasetName = Annotated[str, typer.Argument(help="Declared dataset (see `lockgate datasets`).")]
Ref = Annotated[str, typer.Option("--ref", help="Branch, tag, commit ID, or an expression such as main~1.")]
PathPrefix = Annotated[
    str, typer.Option("--path", help="Only objects whose path starts with this (e.g. data/).")
]


class FileFormat(enum.StrEnum):
    """File format of generated batches."""

    parquet = "parquet"
    csv = "csv"


@app.command("datasets", rich_help_panel="Data")
def list_datasets() -> None:
    """List the declared datasets (built in, or published by installed packages)."""
    from tasks.datasets import available_datasets

    table = Table(title="Datasets")
    for column in ("name", "task", "repository", "key", "target", "features", "description", "problems"):
        table.add_column(column, overflow="fold")
    unusable = 0
    for spec in available_datasets().values():
        problems = spec.problems()
        unusable += bool(problems)
        table.add_row(
            spec.name,
            spec.task,
            spec.repository,
            ",".join(spec.key_columns),
            spec.target,
            str(len(spec.feature_columns)),
            spec.description,
            "[red]" + "; ".join(problems) + "[/]" if problems else "none",
        )
    console.print(table)
    if unusable:
        console.print(
            f"[red]{unusable} dataset(s) cannot be used until their spec is fixed (see problems).[/]"
        )


@app.command("generate", rich_help_panel="Data")
def generate(
    destination: Annotated[
        str,
        typer.Argument(
            help="File to write: a local path or s3://bucket/key (LOCKGATE_S3_* settings); a folder or a "
            "prefix ending in '/' gets a file named after the dataset and seed."
        ),
    ],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="'loans' (generated, any size), or real data: 'breast-cancer', 'penguins' or 'diabetes'. "
            "[default: LOCKGATE_DATASET]"
        ),
    ] = None,
    rows: Annotated[int, typer.Option(min=0, help="Loan applications to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same options give the same rows.")] = 0,
    function: Annotated[
        int, typer.Option(min=0, max=9, help="Agrawal labelling function 0-9; switching it is concept drift.")
    ] = 0,
    label_noise: Annotated[float, typer.Option(min=0, max=1, help="Probability a label is flipped.")] = 0.05,
    covariate_shift: Annotated[
        float, typer.Option(min=0, max=1, help="Skew salary, age and loan amount (0 none .. 1 strong).")
    ] = 0.0,
    first_id: Annotated[
        int | None, typer.Option(help="First application_id (default: seed x 10,000,000).")
    ] = None,
    defect_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="Fraction of rows given a contract violation, to test the gate."),
    ] = 0.0,
    file_format: Annotated[FileFormat, typer.Option("--format", help="File format.")] = FileFormat.parquet,
) -> None:
    """Write a batch of a dataset to a local file or S3: loan applications (Agrawal et al. 1993
    schema) with knobs for drift and defects, or a real data set (breast-cancer, penguins, diabetes)."""
    from flows.demo import DEMO_DATASET as GENERATED  # the dataset tasks.generate writes
    from infra.clients import make_s3_client
    from infra.errors import LockgateError
    from infra.settings import S3Settings, WorkloadSettings, require_dataset
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.sample_data import SAMPLE_DATASETS, write_sample_data

    dataset = require_dataset(dataset or WorkloadSettings().dataset)
    s3_client = make_s3_client(S3Settings()) if destination.startswith("s3://") else None
    if destination.endswith("/") or Path(destination).is_dir():
        # A folder or bucket prefix: name the file after what is in it.
        name = (
            f"{dataset}-seed{seed}.{file_format.value}"
            if dataset == GENERATED
            else f"{dataset}.{file_format.value}"
        )
        destination = destination.rstrip("/") + "/" + name
    try:
        with console.status(f"Writing {destination} ..."):
            if dataset in SAMPLE_DATASETS:
                write_sample_data(dataset, destination, file_format=file_format.value, s3_client=s3_client)
            elif dataset == GENERATED:
                config = GeneratorConfig(
                    rows=rows,
                    seed=seed,
                    function=function,
                    label_noise=label_noise,
                    covariate_shift=covariate_shift,
                    first_id=seed * 10_000_000 if first_id is None else first_id,
                    defect_rate=defect_rate,
                )
                write_batch(config, destination, file_format=file_format.value, s3_client=s3_client)
            else:
                known = ", ".join(repr(name) for name in (GENERATED, *SAMPLE_DATASETS))
                fail(f"no generator for dataset {dataset!r}: use one of {known}", code=2)
    except LockgateError as error:
        fail(str(error), code=2)
    console.print(f"[green]wrote[/] {destination}")


@app.command("ingest", rich_help_panel="Data")
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="Local file, directory or glob, or s3:// URI, of CSV, Parquet or JSON-lines files."
        ),
    ],
    dataset: Dataset = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1_000, max=5_000_000, help="Rows held in memory at once while reading.")
    ] = 250_000,
    data_dir: DataDir = None,
) -> None:
    """Ingest SOURCE into a dataset: land it on its own branch, check the contracts, merge only if it
    passes. A rejected batch leaves main untouched and its branch kept, with the contract report.

    With PREFECT_API_URL set, the merged / rejected event and the artifacts go to that Prefect server
    (automations there react to them)."""
    from infra.clients import s3_client_for
    from infra.settings import S3Settings
    from tasks.ingestion import IngestParameters, run_ingest

    parameters = IngestParameters(
        source=source,
        **given(dataset=dataset),  # unset: LOCKGATE_DATASET
        chunk_rows=chunk_rows,
    )
    s3_client = s3_client_for(source, S3Settings())
    with (
        lakefs_connection(data_dir) as connection,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} rows"),
            console=console,
        ) as progress,
    ):
        task_id = progress.add_task(f"ingesting {source} into {parameters.dataset}", total=None)
        try:
            result = run_ingest(
                parameters,
                client=connection.client,
                s3_client=s3_client,
                publish=publisher(),
                progress=lambda stage, rows: progress.update(task_id, completed=rows),
            )
        finally:
            progress.stop()
    if result.status == "unchanged":
        console.print(
            f"[yellow]unchanged:[/] this content is already on main of {result.repository} "
            f"(commit {result.commit[:12]}); no new commit"
        )
    else:
        console.print(
            f"[green]merged[/] {result.rows:,} rows into main of {result.repository} "
            f"at {result.commit[:12]}; report {result.report}"
        )


@app.command("labels", rich_help_panel="Data")
def labels(
    path: Annotated[Path, typer.Argument(help="CSV, JSON-lines or Parquet file of outcomes.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The labelled model: outcomes are checked against its champion's task (its classes, or "
            "numbers for a regressor). Unset: outcomes are 0/1.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Store observed outcomes for answered requests: columns request_id (the X-Request-ID the serving app
    returned), outcome (0/1; with --model, one of the model's classes or a number), optional record_index
    (default 0) and observed_at (default now). The next monitor pass measures live quality from them. A bad
    file is refused whole, nothing stored.

    They go to the inference repository the serving app logs to (LOCKGATE_SERVING_INFERENCE_REPOSITORY)."""
    from infra.settings import ServingSettings
    from tasks import registry
    from tasks.feedback import ingest_labels, read_label_file
    from tasks.problems import Problem

    repository = ServingSettings().inference_repository
    frame = read_label_file(path)
    with lakefs_connection(data_dir) as connection:
        problem = None
        if model is not None:
            card = registry.show_model(model, "champion", client=connection.client)
            problem = Problem.from_dict(
                card.feature_spec.get("problem"), target=card.feature_spec.get("target")
            )
        batch = ingest_labels(
            frame, client=connection.client, repository=repository, source=path.name, problem=problem
        )
    console.print(f"stored {batch.rows} label(s) at {batch.location}", highlight=False)


@data_app.command("log")
def data_log(
    dataset: DatasetName,
    ref: Ref = "main",
    amount: Annotated[int, typer.Option("--amount", min=1, max=10_000, help="Most commits to show.")] = 20,
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """Commits of the dataset's lakeFS repository reachable from --ref, newest first: ID, date,
    committer, message and the metadata ingestion records (run, rows, contract report)."""
    from tasks import versioning

    with _dataset_repository(dataset, data_dir, quiet=as_json) as (repository, client):
        log = versioning.log_commits(repository, ref=ref, client=client, limit=amount)
    output.commits(repository, ref, log, as_json=as_json)


@data_app.command("show")
def data_show(
    dataset: DatasetName,
    ref: Ref = "main",
    path: PathPrefix = "",
    rows: Annotated[
        bool,
        typer.Option("--rows/--no-rows", help="Count each Parquet object's rows from its footer."),
    ] = True,
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """The objects of the dataset at --ref (path, size, checksum, Parquet rows) and a summary; all read
    at the one commit --ref points at. Batches are under data/, contract reports under _lockgate/."""
    from tasks import versioning

    with _dataset_repository(dataset, data_dir, quiet=as_json) as (repository, client):
        contents = versioning.ref_contents(repository, ref=ref, prefix=path, count_rows=rows, client=client)
    output.ref_contents(contents, as_json=as_json)


@data_app.command("diff")
def data_diff(
    dataset: DatasetName,
    left: Annotated[str, typer.Argument(help="The ref compared from (e.g. main~1, a tag, a commit ID).")],
    right: Annotated[str, typer.Argument(help="The ref compared to (e.g. main, an ingest branch).")],
    path: PathPrefix = "",
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """Objects added, removed or changed from LEFT to RIGHT in the dataset's repository (the two refs'
    contents compared directly)."""
    from tasks import versioning

    with _dataset_repository(dataset, data_dir, quiet=as_json) as (repository, client):
        found = versioning.diff_refs(
            repository, left_ref=left, right_ref=right, prefix=path, two_dot=True, client=client
        )
    output.changes(repository, left, right, found, as_json=as_json)


@contextlib.contextmanager
def _dataset_repository(dataset: str, data_dir: Path | None, *, quiet: bool) -> Iterator[tuple[str, Any]]:
    """The dataset's repository and a lakeFS client; a repository not created yet is named as such."""
    from infra.errors import RepositoryNotFoundError
    from tasks.datasets import get_dataset

    repository = get_dataset(dataset).repository
    with lakefs_connection(data_dir, quiet=quiet) as connection:
        try:
            yield repository, connection.client
        except RepositoryNotFoundError as error:
            raise RepositoryNotFoundError(
                f"dataset {dataset!r} has no lakeFS repository {repository!r} yet: ingest a batch first "
                f"(`lockgate ingest SOURCE --dataset {dataset}`)"
            ) from error
