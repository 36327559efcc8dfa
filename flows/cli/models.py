"""Model commands: ``train`` (DDP on Dask, registered with lineage), ``models list``, ``models show`` and
``models alias`` (move champion / challenger to a verified version)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

import typer
from rich.table import Table

from flows.cli import output
from flows.cli.app import app, console, models_app
from flows.cli.context import lakefs_connection, publisher
from flows.cli.options import DataDir, Dataset, ModelName, Workers, given, settings_with


@app.command("train", rich_help_panel="Models")
def train(
    dataset: Dataset = None,
    ref: Annotated[
        str, typer.Option(help="Branch, tag or commit of the dataset; pinned to its commit at the start.")
    ] = "main",
    model_name: ModelName = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Maximum epochs (early stopping may end sooner); unset: enough for about 2000 optimizer "
            "steps on this data.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=8, help="Rows per step on each rank; unset: about 1/32 of a rank's rows (16-1024)."),
    ] = None,
    learning_rate: Annotated[float, typer.Option(min=0, help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Same seed and data give the same weights.")] = 0,
    workers: Workers = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="tcp://host:8786 of an existing Dask scheduler; unset starts a LocalCluster. "
            "(env LOCKGATE_DASK_SCHEDULER_ADDRESS)",
        ),
    ] = None,
    alias: Annotated[
        str, typer.Option(help="Alias to point at the new version: challenger, champion or none.")
    ] = ("challenger"),
    data_dir: DataDir = None,
) -> None:
    """Train with PyTorch DDP on Dask (one rank per worker), evaluate on a holdout, and register the model
    with its lineage. Options beat their LOCKGATE_DASK_* variables."""
    from infra.clients import dask_client
    from infra.settings import DaskSettings
    from tasks import registry
    from tasks.training import TrainingConfig, TrainParameters, run_train

    parameters = TrainParameters(
        **given(dataset=dataset, model_name=model_name),  # unset: LOCKGATE_DATASET / LOCKGATE_MODEL_NAME
        ref=ref,
        alias=alias,
        config=TrainingConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed),
    )
    dask = settings_with(DaskSettings, n_workers=workers, scheduler_address=scheduler)
    with lakefs_connection(data_dir) as connection:
        with console.status(f"Training {parameters.model_name} on {parameters.dataset}@{ref} ..."):
            result = run_train(
                parameters,
                client=connection.client,
                dask_cluster=partial(dask_client, dask),
                publish=publisher(),
                run_id=uuid.uuid4().hex,
            )
        output.lineage(registry.show_model(parameters.model_name, result.version, client=connection.client))
    for warning in result.warnings:
        console.print(
            f"[yellow]WARNING[/] {parameters.model_name} {result.version}: {warning} (never promoted)"
        )


@models_app.command("list")
def list_registered_models(data_dir: DataDir = None) -> None:
    """List every registered model version with its commit, creation time and aliases."""
    from tasks.registry import list_models

    with lakefs_connection(data_dir) as connection:
        table = Table(title="Registered models")
        for column in ("model", "version", "aliases", "commit", "created at"):
            table.add_column(column)
        for row in list_models(client=connection.client):
            table.add_row(
                row.model_name, row.version, ", ".join(row.aliases), row.commit_id[:12], str(row.created_at)
            )
        console.print(table)


@models_app.command("show")
def show_registered_model(
    model_name: Annotated[str, typer.Argument(help="Registered model name.")],
    ref: Annotated[
        str, typer.Argument(help="Version (v3), alias (champion, challenger) or 'latest'.")
    ] = "latest",
    data_dir: DataDir = None,
) -> None:
    """Show a model version's lineage: data commit, contract report, config, metrics, hashes, code."""
    from tasks.registry import show_model

    with lakefs_connection(data_dir) as connection:
        output.lineage(show_model(model_name, ref, client=connection.client))


@models_app.command("alias")
def move_alias(
    model_name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        str, typer.Argument(help="Version to point at (v3), 'latest', or the other alias (promotes it).")
    ],
    alias: Annotated[str, typer.Argument(help="Alias to move: champion or challenger.")],
    data_dir: DataDir = None,
) -> None:
    """Move ALIAS of a model to VERSION, after checking that version's weights and artifacts against
    the SHA-256s in its card; an unknown version, or one that fails the check, leaves the alias where it
    was. It moves the alias only: no rollout runs (`lockgate deploy` does that)."""
    from infra.errors import ModelIntegrityError, ModelNotFoundError
    from tasks.registry import get_alias, set_alias

    with lakefs_connection(data_dir) as connection:
        client = connection.client
        try:
            before = get_alias(model_name, alias, client=client).version
        except ModelNotFoundError:
            before = "unset"  # or the model is unknown: set_alias says so, listing what exists
        except ModelIntegrityError:
            before = "no registered version"  # moved outside the registry; this repairs it
        moved = set_alias(model_name, alias, version, client=client)
    console.print(
        f"[green]{model_name} {alias}[/] -> {moved.version} (commit {moved.commit_id[:12]}; was "
        f"{before}); weights and artifacts verified against their SHA-256",
        highlight=False,
    )
