"""``retrain_flow``: train a challenger on the newest validated data and promote it only if it is better.

Started by a Prefect automation (``lockgate.drift.detected``, ``lockgate.dataset.merged`` on ``main``,
a signed external webhook), by its schedule, or from the UI. It trains through ``train_flow`` (DDP on
Dask, registered with lineage, alias ``challenger``), then scores champion and challenger on the same
fresh holdout: the challenger's own holdout rows, which the champion never trained on either (the
holdout bucket is a hash of each row's key, so it is the same rows in every data commit). Only when
the challenger beats the champion by ``margin`` on ``metric`` does ``deploy_flow`` roll it out. The
decision and its reason are an artifact in every case.

No retraining storms: the deployment runs one at a time (new runs are cancelled while one runs), and
a run that starts within ``cooldown_s`` of the last retrain of the same model ends at once as
"skipped", naming the run it defers to. The cool-down clock is a Prefect variable
(``lockgate-retrain-<model>``) a person can inspect or delete in the UI.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.variables import Variable
from pydantic import BaseModel, Field, field_validator

from contracts.slo import SLOThresholds
from flows.deploy import DeployParameters, RolloutStep, default_plan, deploy_flow
from flows.train import TrainParameters, train_flow
from infra.clients import make_lakefs_client
from infra.errors import ModelNotFoundError
from infra.settings import LakeFSSettings, ServingSettings
from tasks import evaluation, registry, training
from tasks.datasets import check_dataset_name, get_dataset

Trigger = Literal["manual", "schedule", "drift", "dataset-merged", "external"]


class RetrainParameters(BaseModel):
    """What to retrain, what "better" means, and how to roll the winner out."""

    model_name: str = Field("loans-mlp", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$", description="Model.")
    dataset: str = Field("loans", description="Dataset to train on (see `lockgate datasets`).")
    ref: str = Field("main", min_length=1, description="Data ref; pinned to its newest commit at the start.")
    trigger: Trigger = Field("manual", description="What started the run (set by automations).")
    trigger_event: str = Field("", max_length=200, description="ID of the event that started it, if any.")
    reason: str = Field("", max_length=2000, description="Why, in words (e.g. the drifted features).")
    metric: str = Field("roc_auc", description="Holdout metric the challenger must win on.")
    margin: float = Field(0.0, ge=0, le=1, description="By how much the challenger must beat the champion.")
    cooldown_s: int = Field(600, ge=0, le=7 * 86_400, description="No new retrain of this model this soon.")
    config: training.TrainingConfig = Field(default_factory=training.TrainingConfig)
    deploy: bool = Field(True, description="Roll a better challenger out through deploy_flow.")
    plan: list[RolloutStep] = Field(default_factory=default_plan, min_length=1, description="Rollout steps.")
    slo: SLOThresholds = Field(
        default_factory=SLOThresholds, description="What every rollout step must meet."
    )
    max_wait_s: float = Field(120.0, ge=0, description="Extra time a step may wait for enough traffic.")

    _known_dataset = field_validator("dataset")(check_dataset_name)

    @field_validator("metric")
    @classmethod
    def _comparable(cls, value: str) -> str:
        if value not in evaluation.COMPARABLE_METRICS:
            raise ValueError(f"metric must be one of {sorted(evaluation.COMPARABLE_METRICS)}")
        return value


@flow(name="retrain", description="Retrain on the newest validated data; promote only a better model.")
def retrain_flow(parameters: RetrainParameters) -> dict[str, Any]:
    """Retrain ``parameters.model_name`` and roll it out when it beats the champion."""
    logger = get_run_logger()
    name = parameters.model_name
    run_id = str(flow_run.id) if flow_run.id else ""
    recent = _recent_retrain(name, parameters.cooldown_s)
    if recent is not None:
        reason = (
            f"skipped: {name} was retrained at {recent['started_at']} (flow run {recent['flow_run_id']}, "
            f"trigger {recent['trigger']}), within the {parameters.cooldown_s} s cool-down"
        )
        logger.info(reason)
        _decision_artifact(parameters, {"decision": "skipped", "reason": reason})
        return {"model": name, "decision": "skipped", "reason": reason, "defers_to": recent["flow_run_id"]}
    _start_cooldown(name, parameters, run_id)
    logger.info("retraining %s (trigger %s) %s", name, parameters.trigger, parameters.reason)

    trained = train_flow(
        TrainParameters(
            dataset=parameters.dataset,
            ref=parameters.ref,
            model_name=name,
            config=parameters.config,
            alias="challenger",
        )
    )
    client = make_lakefs_client(LakeFSSettings())
    spec = get_dataset(parameters.dataset)
    holdout = pd.read_parquet(
        io.BytesIO(
            registry.read_artifact(name, trained["version"], registry.REFERENCE_ARTIFACT, client=client)
        )
    )
    labels = holdout[spec.target].to_numpy()
    challenger = evaluation.evaluate_predictions(labels, holdout["probability"].to_numpy())
    champion_version, champion = _champion_on(name, holdout, labels, client)
    decision = evaluation.compare_to_champion(
        challenger, champion, margin=parameters.margin, metric=parameters.metric
    )
    outcome: dict[str, Any] = {
        "model": name,
        "challenger": trained["version"],
        "champion": champion_version,
        "data_commit": trained["data_commit"],
        "holdout_rows": len(holdout),
        "metric": parameters.metric,
        "challenger_metric": getattr(challenger, parameters.metric),
        "champion_metric": getattr(champion, parameters.metric) if champion else None,
        "margin": parameters.margin,
        "decision": "promote" if decision.better else "keep champion",
        "reason": decision.reason,
        "trigger": parameters.trigger,
        "trigger_event": parameters.trigger_event,
    }
    if decision.better and champion is None:
        # The first model of its name: nothing to roll out against. On a cluster, deploy_flow starts the
        # serving app with it; otherwise it becomes the champion `lockgate serve` will start with.
        if parameters.deploy and ServingSettings(model_name=name).ray_address:
            outcome["rollout"] = deploy_flow(DeployParameters(model_name=name, version=trained["version"]))
            outcome["decision"] = "promoted (first champion, now serving)"
        else:
            registry.set_alias(name, "champion", trained["version"], client=client)
            outcome["decision"] = "promoted (first champion)"
    elif decision.better and parameters.deploy:
        _decision_artifact(parameters, {**outcome, "decision": "promote: rolling out"})
        try:
            rollout = deploy_flow(
                DeployParameters(
                    model_name=name,
                    version=trained["version"],
                    plan=parameters.plan,
                    slo=parameters.slo,
                    max_wait_s=parameters.max_wait_s,
                )
            )
        except Exception as error:
            _decision_artifact(parameters, {**outcome, "decision": f"rollout failed, champion kept: {error}"})
            raise
        outcome["decision"] = "promoted" if rollout.get("outcome") == "promoted" else rollout.get("outcome")
        outcome["rollout"] = rollout
    elif decision.better:
        outcome["decision"] = "better; not deployed (deploy=false)"
    _decision_artifact(parameters, outcome)
    logger.info("%s %s: %s (%s)", name, trained["version"], outcome["decision"], decision.reason)
    return outcome


def _champion_on(name: str, holdout: pd.DataFrame, labels, client) -> tuple[str | None, Any]:
    """The champion's version and its metrics on ``holdout``; (None, None) when there is none."""
    from serving.predictor import Predictor

    try:
        champion = Predictor.from_registry(name, "champion", client=client)
    except ModelNotFoundError:
        return None, None
    probabilities = champion.predict(holdout[list(champion.features.columns)].to_dict("records"))
    return champion.version, evaluation.evaluate_predictions(labels, probabilities)


def cooldown_variable(model_name: str) -> str:
    """Name of the Prefect variable holding the last retrain start of ``model_name``."""
    return f"lockgate-retrain-{model_name.lower().replace('_', '-')}"


def _recent_retrain(model_name: str, cooldown_s: int) -> dict[str, Any] | None:
    if cooldown_s <= 0:
        return None
    last = Variable.get(cooldown_variable(model_name), default=None)
    if not isinstance(last, dict) or "started_at" not in last:
        return None
    age = (datetime.now(UTC) - datetime.fromisoformat(last["started_at"])).total_seconds()
    return last if age < cooldown_s else None


def _start_cooldown(model_name: str, parameters: RetrainParameters, run_id: str) -> None:
    Variable.set(
        cooldown_variable(model_name),
        {
            "started_at": datetime.now(UTC).isoformat(),
            "flow_run_id": run_id or "local",
            "trigger": parameters.trigger,
        },
        overwrite=True,
    )


def _decision_artifact(parameters: RetrainParameters, outcome: dict[str, Any]) -> None:
    key = f"retrain-{parameters.model_name.lower().replace('_', '-')}-decision"
    rows = [
        {"item": k, "value": v if not isinstance(v, dict) else str(v)}
        for k, v in outcome.items()
        if k != "rollout"
    ]
    create_table_artifact(key=key, table=rows, description=f"Retrain decision for {parameters.model_name}")
    create_markdown_artifact(
        key=f"{key}-summary",
        markdown=(
            f"### Retrain {parameters.model_name}: **{outcome.get('decision')}**\n\n"
            f"Trigger: `{parameters.trigger}` {parameters.reason}\n\n{outcome.get('reason', '')}"
        ),
        description="Why the challenger was (or was not) promoted",
    )
