"""Loop commands: ``monitor`` (one monitor pass now) and ``retrain`` (champion vs challenger now)."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import output
from flows.cli.app import app, console
from flows.cli.context import lakefs_connection, publisher
from flows.cli.options import DataDir, Hold, ModelName, Workers, given, settings_with

# Where `lockgate retrain --cooldown` keeps the last start per model when no Prefect API is configured.
COOLDOWNS_FILE = Path(".lockgate/retrain-cooldowns.json")


@app.command("monitor", rich_help_panel="The loop")
def monitor(
    model_name: ModelName = None,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Family-wise significance level.")] = 0.05,
    from_start: Annotated[bool, typer.Option(help="Ignore the cursor and read every logged row.")] = False,
    emit_events: Annotated[bool, typer.Option(help="Emit drift / SLO events for automations.")] = True,
    min_samples: Annotated[
        int,
        typer.Option(
            min=2, help="Fewest values per side for a drift test; a small reference needs half its rows."
        ),
    ] = 200,
    min_labels: Annotated[
        int, typer.Option(min=1, help="Fewest matched labels to judge live quality.")
    ] = 100,
    data_dir: DataDir = None,
) -> None:
    """Run one monitor pass now: drift, outliers, quality and SLOs of what the champion answered since
    the last pass; store the HTML report in lakeFS (`lockgate-monitoring`) and print the summary.

    Reads the inference repository the serving app logs to (LOCKGATE_SERVING_INFERENCE_REPOSITORY); with
    PREFECT_API_URL set, drift / SLO events reach that Prefect server's automations."""
    from infra.settings import ServingSettings
    from tasks.clock import SYSTEM_CLOCK
    from tasks.drift import DriftConfig
    from tasks.monitoring import MonitorParameters, report_run_name, run_monitor

    parameters = MonitorParameters(
        **given(model_name=model_name),  # unset: LOCKGATE_MODEL_NAME
        drift=DriftConfig(alpha=alpha, min_samples=min_samples),
        from_start=from_start,
        emit_events=emit_events,
        min_labels=min_labels,
    )
    repository = ServingSettings().inference_repository
    with (
        lakefs_connection(data_dir) as connection,
        console.status(f"Checking {parameters.model_name}'s live traffic ..."),
    ):
        summary = run_monitor(
            parameters,
            client=connection.client,
            inference_repository=repository,
            publish=publisher(),
            clock=SYSTEM_CLOCK,
            run_name=report_run_name(SYSTEM_CLOCK.now(), None),
        )
    output.monitor_table(summary)


@app.command("retrain", rich_help_panel="The loop")
def retrain(
    model_name: ModelName = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset to train on. [default: the champion's own dataset (its model card), else "
            "LOCKGATE_DATASET]"
        ),
    ] = None,
    margin: Annotated[float, typer.Option(min=0, max=1, help="Required improvement on --metric.")] = 0.0,
    metric: Annotated[
        str,
        typer.Option(
            help="auto (the task's default: roc_auc, log_loss or rmse), or roc_auc, accuracy, log_loss, "
            "brier_score, macro_f1, rmse, mae, r2, ..."
        ),
    ] = "auto",
    cooldown: Annotated[
        int, typer.Option(min=0, help="Seconds; skip if the model was retrained sooner.")
    ] = 0,
    deploy: Annotated[
        bool, typer.Option(help="Roll a better challenger out (needs `lockgate serve`).")
    ] = True,
    hold: Hold = 30.0,
    workers: Workers = None,
    data_dir: DataDir = None,
) -> None:
    """Retrain now: train a challenger on the newest validated data, score it and the champion on the same
    fresh holdout, and roll it out only if it wins by --margin. The data is the model's own dataset (its
    newest model card), unless --dataset names one."""
    from contracts.rollout import default_plan
    from flows.cli.context import dataset_of_model
    from infra.clients import dask_client
    from infra.settings import DaskSettings, ServingSettings, WorkloadSettings
    from serving.operations import RayServing
    from serving.rollout import run_rollout
    from tasks.clock import SYSTEM_CLOCK
    from tasks.retraining import FileCooldowns, RetrainParameters, run_retrain
    from tasks.training import run_train

    workload = WorkloadSettings()
    if model_name is None:
        model_name = workload.model_for(dataset) if dataset else workload.required_model_name()
    dask = settings_with(DaskSettings, n_workers=workers)
    serving = ServingSettings(model_name=model_name)
    publish = publisher()
    with lakefs_connection(data_dir) as connection, console.status(f"Retraining {model_name} ..."):
        client = connection.client
        parameters = RetrainParameters(
            # unset: the model's own dataset; a model not yet registered: LOCKGATE_DATASET
            **given(dataset=dataset or dataset_of_model(model_name, client=client)),
            model_name=model_name,
            margin=margin,
            metric=metric,
            cooldown_s=cooldown,
            deploy=deploy,
            plan=default_plan(hold),
        )
        outcome = run_retrain(
            parameters,
            client=client,
            cooldowns=_cooldowns() or FileCooldowns(COOLDOWNS_FILE),
            train=partial(
                run_train,
                client=client,
                dask_cluster=partial(dask_client, dask),
                publish=publish,
                run_id=uuid.uuid4().hex,
            ),
            deploy=partial(
                run_rollout,
                client=client,
                serving=RayServing(serving, lakefs=connection.settings),
                clock=SYSTEM_CLOCK,
                publish=publish,
            ),
            on_cluster=bool(serving.ray_address),
            clock=SYSTEM_CLOCK,
            publish=publish,
        )
    console.print(f"[bold]{outcome.decision}[/]: {outcome.reason}", highlight=False)


def _cooldowns():
    """The Prefect variables the retrain deployment keeps its cool-down in, when a Prefect API is set
    (otherwise ``COOLDOWNS_FILE``)."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    from flows.retrain import PrefectCooldowns

    return PrefectCooldowns()
