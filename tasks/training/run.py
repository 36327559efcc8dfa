"""``run_train``: one training stage, from a dataset ref to a registered model version with its lineage.

Pins the ref to a commit whose batches all passed their contracts, trains with DDP on the Dask cluster
it is given (a failed distributed attempt is retried and resumes from its last checkpoint), evaluates
on the holdout (overall and per slice), draws the plots, and registers the version with its lineage
record, the plots, the metrics and the holdout rows (the monitoring reference and the fresh holdout a
retrain compares on). Publishes the metrics, slices and plots as artifacts and ``lockgate.model.registered``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, Field, field_validator

from infra.errors import TrainingError
from infra.naming import MODEL_NAME_PATTERN
from infra.settings import dataset_from_settings, model_name_for_dataset
from tasks import evaluation, events, publishing, registry
from tasks.clock import SYSTEM_CLOCK, Clock
from tasks.datasets import DatasetSpec, check_dataset_name, get_dataset
from tasks.models import factory_metrics, find_factory, model_options
from tasks.publishing import Publisher
from tasks.training.data import TrainingData, resolve_training_data
from tasks.training.distributed import TrainingConfig, TrainingResult, train_distributed

if TYPE_CHECKING:
    import lakefs

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = registry.REFERENCE_ARTIFACT
RETRY_DELAY_S = 5.0
SLICE_METRIC = {"multiclass": "accuracy", "regression": "rmse"}


class TrainParameters(BaseModel):
    """What to train on and how."""

    dataset: str = Field(
        default_factory=dataset_from_settings,
        description="Declared dataset to train on (see `lockgate datasets`); unset: LOCKGATE_DATASET.",
    )
    ref: str = Field(
        "main",
        min_length=1,
        description="Branch, tag or commit of the dataset; pinned to its commit when the run starts. "
        "Every batch in it must have passed its contracts.",
    )
    model_name: str = Field(
        default_factory=model_name_for_dataset,
        pattern=MODEL_NAME_PATTERN,
        description="Registry name; unset: LOCKGATE_MODEL_NAME when it is the dataset setting's model, "
        "else '<dataset>-mlp'.",
    )
    config: TrainingConfig = Field(default_factory=TrainingConfig)
    alias: Literal["challenger", "champion", "none"] = Field(
        "challenger", description="Alias to point at the new version once it is fully registered."
    )
    risk_level: Literal["normal", "high"] = Field(
        "normal", description="'high' asks for approval before rollout."
    )

    _known_dataset = field_validator("dataset")(check_dataset_name)


@dataclass(frozen=True)
class TrainResult:
    """The registered version and what it was trained on."""

    model: str
    version: str
    commit: str
    data_repository: str
    data_commit: str
    metrics: dict[str, Any]
    epochs: int
    resumed_from_epoch: int | None
    alias: str
    reports: tuple[str, ...] = field(default_factory=tuple)
    task: str = "binary"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    optimizer_steps: int = 0


def run_train(
    parameters: TrainParameters,
    *,
    client: lakefs.Client,
    dask_cluster: Callable[[], AbstractContextManager[Any]],
    publish: Publisher,
    run_id: str,
    flow_run_id: str | None = None,
    attempts: int = 3,
    clock: Clock = SYSTEM_CLOCK,
    spec: DatasetSpec | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> TrainResult:
    """Train ``parameters.model_name`` on ``parameters.dataset`` at ``parameters.ref`` and register it.

    Args:
        parameters: Dataset, ref, model name, training config, alias and risk level.
        client: lakeFS client (data, checkpoints, registry).
        dask_cluster: Opens the Dask cluster (``infra.clients.dask_client``), entered only once the data
            is pinned and checked; yields a ``dask.distributed.Client``, one DDP rank per worker.
        publish: Receives the artifacts and the registered event.
        run_id: Names the checkpoint and registration branches; a retry with the same ID resumes.
        flow_run_id: The Prefect flow run, recorded in the model card.
        attempts: Distributed attempts before giving up (each resumes from the last checkpoint).
        clock: Waits between attempts.
        spec: The dataset's spec; the one declared as ``parameters.dataset`` when omitted.
        log: Where progress is logged.

    Raises:
        RefNotFoundError: the ref does not resolve (nothing is trained).
        UncheckedDataError: the commit holds data without a passed contract report.
        TrainingError: training failed on every attempt; nothing is registered.
    """
    spec = (spec or get_dataset(parameters.dataset)).check()
    find_factory(parameters.config.model)  # an uninstalled factory fails before any data is read
    data = resolve_training_data(spec, parameters.ref, client=client)
    log.info("training on %s@%s (%d part(s))", data.repository, data.commit_id[:12], len(data.parts))
    with dask_cluster() as dask:
        result = _train_with_retries(
            parameters,
            data,
            spec,
            dask=dask,
            client=client,
            run_id=run_id,
            attempts=attempts,
            clock=clock,
            log=log,
        )
    holdout = result.holdout
    problem = result.problem
    outputs = problem.outputs_from_holdout(holdout)
    metrics = {
        **problem.evaluate(holdout[spec.target], outputs),
        **factory_metrics(parameters.config.model, holdout[spec.target].to_numpy(), outputs),
    }
    metrics["holdout_rows"] = len(holdout)
    # Early stopping ended a run whose validation loss stopped improving: few steps are then enough.
    warnings = problem.warnings(
        metrics, optimizer_steps=None if result.stopped_early else result.optimizer_steps
    )
    for warning in warnings:
        log.warning("%s: %s", parameters.model_name, warning)
    slices = {item.label: item.groups(holdout) for item in spec.slices}
    slice_table = problem.evaluate_slices(holdout, outputs, slices=slices) if slices else None
    with tempfile.TemporaryDirectory(prefix="lockgate-train-") as tmp:
        artifacts = _draw(Path(tmp), parameters.model_name, result, spec, outputs, metrics, slice_table)
        factory = find_factory(parameters.config.model)
        lineage = registry.ModelLineage(
            data_repository=data.repository,
            data_commit_id=data.commit_id,
            contract_report=", ".join(
                f"lakefs://{data.repository}/{data.commit_id}/{r}" for r in data.reports
            ),
            training_config={
                **parameters.config.model_dump(),
                "batch_size_used": result.batch_size,
                "optimizer_steps": result.optimizer_steps,
            },
            seed=parameters.config.seed,
            metrics={"holdout": metrics, "slices": _records(slice_table), "warnings": warnings},
            feature_spec={
                "columns": list(result.preprocessor.columns),
                "preprocessing": result.preprocessor.to_dict(),
                "preprocessing_sha256": result.preprocessor.sha256(),
                "problem": problem.to_dict(),
                "score_edges": problem.score_edges(holdout["score"].to_numpy()),
                "model": parameters.config.model,
                "model_options": _jsonable(
                    model_options(
                        parameters.config.model, parameters.config.hidden, parameters.config.model_options
                    )
                ),
                "model_source": factory.source,
                "hidden": parameters.config.hidden,
                "target": spec.target,
                "dataset": spec.name,
            },
            flow_run_id=flow_run_id,
            risk_level=parameters.risk_level,
            notes=f"{result.world_size} rank(s), backend {result.backend}, {result.epochs_run} epoch(s), "
            f"{result.optimizer_steps} optimizer step(s) of {result.batch_size} row(s) per rank"
            + (f", resumed from epoch {result.resumed_from_epoch}" if result.resumed_from_epoch else "")
            + "".join(f"; WARNING: {w}" for w in warnings),
        )
        registered = registry.register_model(
            parameters.model_name,
            state_dict=result.state_dict,
            lineage=lineage,
            client=client,
            artifacts=artifacts,
            run_id=run_id,
        )
        if parameters.alias != "none":
            registry.set_alias(parameters.model_name, parameters.alias, registered.version, client=client)
        for artifact in _artifacts(
            parameters.model_name, registered.version, metrics, slice_table, artifacts, warnings
        ):
            publish.artifact(artifact)
    publish.event(
        events.Event(
            events.MODEL_REGISTERED,
            events.model_version_resource(
                parameters.model_name,
                registered.version,
                **{"lakefs.repository": registry.MODELS_REPOSITORY, "lakefs.commit": registered.commit_id},
            ),
            {
                "data_repository": data.repository,
                "data_commit": data.commit_id,
                "metrics": metrics,
                "warnings": warnings,
                "alias": parameters.alias,
            },
        )
    )
    log.info(
        "registered %s %s (%s, holdout %s %s)",
        parameters.model_name,
        registered.version,
        problem.task,
        problem.default_metric,
        metrics.get(problem.default_metric),
    )
    return TrainResult(
        model=parameters.model_name,
        version=registered.version,
        commit=registered.commit_id,
        data_repository=data.repository,
        data_commit=data.commit_id,
        metrics=metrics,
        epochs=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch,
        alias=parameters.alias,
        reports=data.reports,
        task=problem.task,
        warnings=tuple(warnings),
        optimizer_steps=result.optimizer_steps,
    )


def _train_with_retries(
    parameters: TrainParameters,
    data: TrainingData,
    spec: DatasetSpec,
    *,
    dask: Any,
    client: lakefs.Client,
    run_id: str,
    attempts: int,
    clock: Clock,
    log: logging.Logger | logging.LoggerAdapter,
) -> TrainingResult:
    """``train_distributed``, again after a failure (a worker died, a peer timed out): the same run ID
    resumes from the last checkpoint."""
    for attempt in range(1, attempts + 1):
        try:
            return train_distributed(
                parameters.config, data, spec, client=dask, lakefs_client=client, run_id=run_id
            )
        except TrainingError as error:
            if attempt == attempts or not error.retryable:
                raise
            log.warning(
                "training attempt %d of %d failed (%s); retrying in %g s",
                attempt,
                attempts,
                error,
                RETRY_DELAY_S,
            )
            clock.sleep(RETRY_DELAY_S)
    raise AssertionError("unreachable")


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _draw(
    folder: Path,
    model_name: str,
    result: TrainingResult,
    spec: DatasetSpec,
    outputs,
    metrics: dict[str, Any],
    slice_table: pd.DataFrame | None,
) -> dict[str, Path]:
    """The files stored with the version: the task's plots, metrics, slices and the holdout reference."""
    holdout, problem = result.holdout, result.problem
    artifacts = {
        "training_curves.png": evaluation.plot_training_curves(
            result.history, folder / "training_curves.png"
        ),
    }
    if problem.task == "binary":
        labels = problem.encode_target(holdout[spec.target])
        if len(set(labels.tolist())) == 2:
            artifacts["roc.png"] = evaluation.plot_roc(labels, outputs, folder / "roc.png", label=model_name)
        artifacts["calibration.png"] = evaluation.plot_calibration(
            labels, outputs, folder / "calibration.png"
        )
    elif problem.task == "multiclass":
        artifacts["confusion.png"] = evaluation.plot_confusion(
            problem.encode_target(holdout[spec.target]),
            outputs.argmax(axis=1),
            problem.classes,
            folder / "confusion.png",
        )
    else:
        artifacts["predicted_vs_observed.png"] = evaluation.plot_regression(
            holdout[spec.target].to_numpy(float), outputs, folder / "predicted_vs_observed.png"
        )
    if slice_table is not None:
        metric = "roc_auc" if problem.task == "binary" else SLICE_METRIC[problem.task]
        if (slice_table["slice"] != "overall").any():
            artifacts["slices.png"] = evaluation.plot_slices(
                slice_table, folder / "slices.png", metric=metric
            )
        slice_table.to_csv(folder / "slices.csv", index=False)
        artifacts["slices.csv"] = folder / "slices.csv"
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    artifacts["metrics.json"] = folder / "metrics.json"
    # The holdout with the model's own outputs: the reference monitoring compares live requests
    # with, and the fresh holdout a retrain scores the champion on.
    holdout.to_parquet(folder / REFERENCE_ARTIFACT, index=False)
    artifacts[REFERENCE_ARTIFACT] = folder / REFERENCE_ARTIFACT
    return artifacts


def _records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    return [] if table is None else json.loads(table.to_json(orient="records"))


def _artifacts(
    model_name: str,
    version: str,
    metrics: dict[str, Any],
    slice_table: pd.DataFrame | None,
    files: dict[str, Path],
    warnings: list[str],
) -> list[publishing.Artifact]:
    published = [
        publishing.table(
            f"train-{model_name}-metrics",
            [
                {"metric": k, "value": json.dumps(v) if isinstance(v, dict) else v}
                for k, v in metrics.items()
                if not isinstance(v, list)
            ]
            + [{"metric": "WARNING", "value": w} for w in warnings],
            description=f"Holdout metrics of {model_name} {version}",
        )
    ]
    if slice_table is not None:
        published.append(
            publishing.table(
                f"train-{model_name}-slices",
                _records(slice_table),
                description="The same metrics per group the dataset declares (a first check for unequal "
                "treatment)",
            )
        )
    images = "\n\n".join(
        f"**{name}**\n\n{publishing.inline_png(name, path.read_bytes())}"
        for name, path in files.items()
        if name.endswith(".png")
    )
    published.append(
        publishing.markdown(
            f"train-{model_name}-plots",
            f"### {model_name} {version}\n\n{images}",
            description="Training curves, ROC, calibration and per-slice plots",
        )
    )
    return published
