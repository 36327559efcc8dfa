"""Every lockgate flow as a Prefect deployment: schedules, event triggers and typed parameter forms.

``build_deployments()`` returns them; ``python -m flows.deployments`` (what ``lockgate worker`` and
``lockgate up`` run) serves them from this process, so runs started by schedules, automations or the
Prefect UI execute here. For work pools on a cluster, ``infra/prefect.yaml`` declares the same
deployments for ``prefect deploy --all`` (a test keeps the two in step).

| deployment          | starts on                                                               |
|---------------------|-------------------------------------------------------------------------|
| ingest/<dataset>    | the UI (or ``lockgate ingest``)                                         |
| train/<model>       | the UI                                                                  |
| deploy/<model>      | the UI                                                                  |
| monitor/<model>     | every ``monitor_interval_s``                                            |
| retention/lockgate  | the ``retention_cron`` schedule (daily) and the UI; one run at a time   |
| retrain/<model>     | ``lockgate.drift.detected`` for the model, ``lockgate.dataset.merged``   |
|                     | on the dataset's ``main``, ``lockgate.external.retrain`` (signed webhook),|
|                     | the ``retrain_cron`` schedule, and the UI; one run at a time             |

They serve one dataset and its model: ``LOCKGATE_DATASET`` and ``LOCKGATE_MODEL_NAME`` (default
``<dataset>-mlp``), or their ``LOCKGATE_AUTOMATION_*`` variants; ``lockgate up`` sets them for its stack.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger

from contracts.rollout import default_plan
from contracts.slo import SLOThresholds
from flows.deploy import deploy_flow
from flows.ingest import ingest_flow
from flows.monitor import monitor_flow
from flows.retention import retention_flow
from flows.retrain import retrain_flow
from flows.train import train_flow
from infra.settings import AutomationSettings, require_dataset, require_model_name
from tasks import events
from tasks.datasets import get_dataset

TAGS = ["lockgate"]


def retrain_triggers(settings: AutomationSettings) -> list[DeploymentEventTrigger]:
    """The events that start ``retrain_flow``, each passing what it knows as parameters."""
    spec = get_dataset(require_dataset(settings.dataset))
    common = retrain_defaults(settings)
    triggers = [
        DeploymentEventTrigger(
            name=f"retrain {settings.model_name} on drift",
            expect={events.DRIFT_DETECTED},
            match={"lockgate.model": settings.model_name},
            parameters={
                "parameters": {
                    **common,
                    "trigger": "drift",
                    "trigger_event": "{{ event.id | string }}",
                    "reason": "drift in {{ event.payload.drifted_features | join(', ') }}",
                }
            },
        ),
        DeploymentEventTrigger(
            name=f"retrain {settings.model_name} from a signed webhook",
            expect={events.EXTERNAL_RETRAIN},
            parameters={
                "parameters": {
                    **common,
                    "trigger": "external",
                    "trigger_event": "{{ event.id | string }}",
                    "reason": "external webhook: {{ event.payload.reason | default('') }}",
                }
            },
        ),
    ]
    if settings.retrain_on_merge:
        triggers.append(
            DeploymentEventTrigger(
                name=f"retrain {settings.model_name} on new {settings.dataset} data",
                expect={events.DATASET_MERGED},
                match={
                    "lakefs.repository": settings.data_repository or spec.repository,
                    "lakefs.branch": "main",
                },
                parameters={
                    "parameters": {
                        **common,
                        "trigger": "dataset-merged",
                        "trigger_event": "{{ event.id | string }}",
                        "reason": "new data at {{ event.resource['lakefs.commit'] }}",
                    }
                },
            )
        )
    return triggers


def retrain_defaults(settings: AutomationSettings) -> dict[str, Any]:
    """Parameters every retrain run of the model gets (triggers add what started it)."""
    return {
        "model_name": settings.model_name,
        "dataset": settings.dataset,
        "cooldown_s": settings.retrain_cooldown_s,
        # Unset epochs adapt to the data (TrainingConfig's defaults), as in every other path.
        "config": {} if settings.train_epochs is None else {"epochs": settings.train_epochs},
        "plan": [step.model_dump() for step in default_plan(settings.rollout_hold_s)],
        "slo": SLOThresholds.model_validate(settings.rollout_slo).model_dump(),
        "max_wait_s": settings.rollout_max_wait_s,
    }


def build_deployments(settings: AutomationSettings | None = None) -> list[RunnerDeployment]:
    """Every lockgate deployment, with its schedule, triggers and default parameters.

    Raises:
        ConfigurationError: the settings name no dataset (``LOCKGATE_DATASET``).
    """
    settings = settings or AutomationSettings()
    dataset = require_dataset(settings.dataset)
    model = require_model_name(settings.model_name)
    common: dict[str, Any] = {"tags": TAGS, "entrypoint_type": EntrypointType.MODULE_PATH}
    retrain_parameters = {"parameters": {**retrain_defaults(settings), "trigger": "schedule"}}
    return [
        ingest_flow.to_deployment(
            name=dataset,
            parameters={"parameters": {"dataset": dataset}},
            description=f"Ingest a batch into {dataset}: contracts gate what reaches main.",
            **common,
        ),
        train_flow.to_deployment(
            name=model,
            parameters={"parameters": {"dataset": dataset, "model_name": model}},
            description=f"Train {model} on {dataset} (DDP on Dask) and register it.",
            **common,
        ),
        deploy_flow.to_deployment(
            name=model,
            parameters={"parameters": {"model_name": model}},
            description=f"Roll a registered {model} version out, gated by SLOs.",
            **common,
        ),
        monitor_flow.to_deployment(
            name=model,
            interval=settings.monitor_interval_s,
            parameters={
                "parameters": {
                    "model_name": model,
                    **(
                        {"metrics_urls": settings.monitor_metrics_urls}
                        if settings.monitor_metrics_urls
                        else {}
                    ),
                }
            },
            description=f"Drift, outliers, quality and SLOs of the live {model}.",
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            **common,
        ),
        retention_flow.to_deployment(
            name="lockgate",
            cron=settings.retention_cron or None,
            parameters={"parameters": {}},
            description="Remove lockgate's data past its retention (inference logs, reports, checkpoint "
            "branches, rejected ingests), then collect the garbage.",
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            **common,
        ),
        retrain_flow.to_deployment(
            name=model,
            cron=settings.retrain_cron or None,
            parameters=retrain_parameters,
            triggers=retrain_triggers(settings),
            description=f"Retrain {model} on the newest validated data; promote only a better model.",
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            **common,
        ),
    ]


def prefect_yaml(settings: AutomationSettings | None = None, *, work_pool: str = "lockgate") -> str:
    """``infra/prefect.yaml``: the same deployments for ``prefect deploy --all`` onto a work pool.

    The file is generated from ``build_deployments`` (``python -m flows.deployments --prefect-yaml``, for
    the dataset and model of the settings; the committed copy is the demo's) and a test compares the
    committed copy with it, so the two cannot drift apart.
    """
    import yaml
    from prefect import __version__ as prefect_version

    entries = []
    for deployment in build_deployments(settings):
        module, _, function = deployment.entrypoint.rpartition(".")
        entry: dict[str, Any] = {
            "name": deployment.name,
            "description": deployment.description,
            "entrypoint": f"{module.replace('.', '/')}.py:{function}",
            "tags": list(deployment.tags),
            "parameters": deployment.parameters,
            "work_pool": {"name": work_pool, "work_queue_name": "default", "job_variables": {}},
        }
        schedules = []
        for item in deployment.schedules or []:
            schedule = item.schedule.model_dump(mode="json", exclude_none=True)
            if "interval" in schedule:
                schedule = {"interval": schedule["interval"]}
            schedules.append(schedule)
        if schedules:
            entry["schedules"] = schedules
        if deployment.concurrency_limit:
            options = deployment.concurrency_options
            entry["concurrency_limit"] = {
                "limit": deployment.concurrency_limit,
                "collision_strategy": options.collision_strategy.value if options else "ENQUEUE",
            }
        if deployment.triggers:
            entry["triggers"] = [
                {
                    key: value
                    for key, value in trigger.model_dump(mode="json").items()
                    if key
                    in ("type", "name", "enabled", "match", "expect", "posture", "threshold", "parameters")
                }
                for trigger in deployment.triggers
            ]
        entries.append(entry)
    document = {
        "name": "lockgate",
        "prefect-version": prefect_version,
        # Workers run an image (or host) with lockgate installed at /opt/lockgate.
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/lockgate"}}],
        "deployments": entries,
    }
    header = (
        "# Generated by `LOCKGATE_DATASET=<dataset> python -m flows.deployments --prefect-yaml >\n"
        "# infra/prefect.yaml`; do not edit (tests/unit/test_deployments.py compares it with\n"
        "# flows/deployments.py). The committed copy deploys the demo's dataset, loans.\n"
        "# Deploy onto a work pool: `prefect work-pool create lockgate --type process` (or kubernetes),\n"
        "# then `prefect deploy --all --prefect-file infra/prefect.yaml` from the repository root.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


def serve_deployments(settings: AutomationSettings | None = None) -> None:
    """Serve every deployment of ``settings`` (the environment's by default) until interrupted."""
    serve(*build_deployments(settings), limit=4)


def main(argv: list[str] | None = None) -> None:
    """Serve every deployment until interrupted (Ctrl-C or SIGTERM); ``--prefect-yaml`` prints
    ``infra/prefect.yaml`` instead."""
    import sys

    arguments = sys.argv[1:] if argv is None else argv
    if arguments == ["--prefect-yaml"]:
        sys.stdout.write(prefect_yaml())
        return
    if arguments:
        raise SystemExit("usage: python -m flows.deployments [--prefect-yaml]")
    serve_deployments()


if __name__ == "__main__":
    main()
