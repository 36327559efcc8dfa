"""``train_flow``: train on a contract-checked dataset commit with DDP on Dask, evaluate, register.

Wiring only: ``tasks.training`` trains, ``tasks.evaluation`` measures and plots, ``tasks.registry``
stores the version with its lineage; this flow adds typed parameters, a retrying training task
(a retry resumes from the last checkpoint), artifacts for people and the ``lockgate.model.registered``
event.
"""

from __future__ import annotations

import base64
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, field_validator

from infra.clients import dask_client, make_lakefs_client
from infra.settings import DaskSettings, LakeFSSettings
from tasks import evaluation, registry, training
from tasks.datasets import check_dataset_name, get_dataset

REGISTERED_EVENT = "lockgate.model.registered"
REFERENCE_ARTIFACT = registry.REFERENCE_ARTIFACT


class TrainParameters(BaseModel):
    """What to train on and how."""

    dataset: str = Field("loans", description="Declared dataset to train on (see `lockgate datasets`).")
    ref: str = Field(
        "main",
        min_length=1,
        description="Branch, tag or commit of the dataset; pinned to its commit when the run starts. "
        "Every batch in it must have passed its contracts.",
    )
    model_name: str = Field(
        "loans-mlp", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$", description="Registry name."
    )
    config: training.TrainingConfig = Field(default_factory=training.TrainingConfig)
    alias: Literal["challenger", "champion", "none"] = Field(
        "challenger", description="Alias to point at the new version once it is fully registered."
    )
    risk_level: Literal["normal", "high"] = Field(
        "normal", description="'high' asks for approval before rollout."
    )

    _known_dataset = field_validator("dataset")(check_dataset_name)


resolve_data_task = task(training.resolve_training_data, name="resolve-training-data", cache_policy=NO_CACHE)
# A failed distributed run (a worker died, a peer timed out) is re-dispatched with the same run ID and
# resumes from its last checkpoint.
train_task = task(
    training.train_distributed, name="train-ddp", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5
)
register_task = task(registry.register_model, name="register-model", cache_policy=NO_CACHE)


@flow(name="train", description="DDP training on Dask, evaluation and registration with lineage.")
def train_flow(parameters: TrainParameters) -> dict[str, Any]:
    """Train ``parameters.model_name`` on ``parameters.dataset`` at ``parameters.ref`` and register it."""
    logger = get_run_logger()
    spec = get_dataset(parameters.dataset)
    lakefs_client = make_lakefs_client(LakeFSSettings())
    run_id = str(flow_run.id) if flow_run.id else uuid.uuid4().hex
    data = resolve_data_task(spec, parameters.ref, client=lakefs_client)
    logger.info("training on %s@%s (%d part(s))", data.repository, data.commit_id[:12], len(data.parts))
    with dask_client(DaskSettings()) as client:
        result = train_task(
            parameters.config, data, spec, client=client, lakefs_client=lakefs_client, run_id=run_id
        )
    holdout = result.holdout
    y_true, y_prob = holdout[spec.target].to_numpy(), holdout["probability"].to_numpy()
    metrics = evaluation.evaluate_predictions(y_true, y_prob)
    slices = {"age_band": evaluation.age_bands(holdout["age"])} if "age" in holdout else {}
    slice_table = (
        evaluation.evaluate_slices(holdout, y_prob, target=spec.target, slices=slices) if slices else None
    )
    with tempfile.TemporaryDirectory(prefix="lockgate-train-") as tmp:
        folder = Path(tmp)
        artifacts = {
            "training_curves.png": evaluation.plot_training_curves(
                result.history, folder / "training_curves.png"
            ),
            "roc.png": evaluation.plot_roc(y_true, y_prob, folder / "roc.png", label=parameters.model_name),
            "calibration.png": evaluation.plot_calibration(y_true, y_prob, folder / "calibration.png"),
        }
        if slice_table is not None:
            artifacts["slices.png"] = evaluation.plot_slices(
                slice_table, folder / "slices.png", metric="roc_auc"
            )
            slice_table.to_csv(folder / "slices.csv", index=False)
            artifacts["slices.csv"] = folder / "slices.csv"
        (folder / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=2))
        artifacts["metrics.json"] = folder / "metrics.json"
        # The holdout with the model's own probabilities: the reference monitoring compares live
        # requests with, and the fresh holdout a retrain scores the champion on.
        holdout.to_parquet(folder / REFERENCE_ARTIFACT, index=False)
        artifacts[REFERENCE_ARTIFACT] = folder / REFERENCE_ARTIFACT
        lineage = registry.ModelLineage(
            data_repository=data.repository,
            data_commit_id=data.commit_id,
            contract_report=", ".join(
                f"lakefs://{data.repository}/{data.commit_id}/{r}" for r in data.reports
            ),
            training_config=parameters.config.model_dump(),
            seed=parameters.config.seed,
            metrics={"holdout": metrics.to_dict(), "slices": _slices_json(slice_table)},
            feature_spec={
                **result.feature_spec.to_dict(),
                "model": parameters.config.model,
                "hidden": parameters.config.hidden,
                "target": spec.target,
            },
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            risk_level=parameters.risk_level,
            notes=f"{result.world_size} rank(s), backend {result.backend}, {result.epochs_run} epoch(s)"
            + (f", resumed from epoch {result.resumed_from_epoch}" if result.resumed_from_epoch else ""),
        )
        registered = register_task(
            parameters.model_name,
            state_dict=result.state_dict,
            lineage=lineage,
            client=lakefs_client,
            artifacts=artifacts,
            run_id=run_id,
        )
        if parameters.alias != "none":
            registry.set_alias(
                parameters.model_name, parameters.alias, registered.version, client=lakefs_client
            )
        _publish_artifacts(parameters, registered, metrics, slice_table, artifacts)
    emit_event(
        event=REGISTERED_EVENT,
        resource={
            "prefect.resource.id": f"lockgate.model.{parameters.model_name}.{registered.version}",
            "lockgate.model": parameters.model_name,
            "lockgate.version": registered.version,
            "lakefs.repository": registry.MODELS_REPOSITORY,
            "lakefs.commit": registered.commit_id,
        },
        payload={
            "data_repository": data.repository,
            "data_commit": data.commit_id,
            "metrics": metrics.to_dict(),
            "alias": parameters.alias,
        },
    )
    logger.info(
        "registered %s %s (holdout ROC AUC %s)", parameters.model_name, registered.version, metrics.roc_auc
    )
    return {
        "model": parameters.model_name,
        "version": registered.version,
        "commit": registered.commit_id,
        "data_commit": data.commit_id,
        "metrics": metrics.to_dict(),
        "epochs": result.epochs_run,
        "resumed_from_epoch": result.resumed_from_epoch,
    }


def _slices_json(table) -> list[dict[str, Any]]:
    if table is None:
        return []
    return json.loads(table.to_json(orient="records"))


def _publish_artifacts(
    parameters: TrainParameters, registered, metrics, slice_table, artifacts: dict
) -> None:
    create_table_artifact(
        key=f"train-{parameters.model_name}-metrics",
        table=[{"metric": k, "value": v} for k, v in metrics.to_dict().items() if not isinstance(v, list)],
        description=f"Holdout metrics of {parameters.model_name} {registered.version}",
    )
    if slice_table is not None:
        create_table_artifact(
            key=f"train-{parameters.model_name}-slices",
            table=json.loads(slice_table.to_json(orient="records")),
            description="The same metrics per age band (a first check for unequal treatment)",
        )
    images = "\n\n".join(
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"
        for name, path in artifacts.items()
        if name.endswith(".png")
    )
    create_markdown_artifact(
        key=f"train-{parameters.model_name}-plots",
        markdown=f"### {parameters.model_name} {registered.version}\n\n{images}",
        description="Training curves, ROC, calibration and per-slice plots",
    )
