"""Retraining: train a challenger on the newest validated data and promote it only if it is better.

``decide_retrain`` is the decision (pure: metrics in, what to do out); ``run_retrain`` the stage behind
``retrain_flow`` and ``lockgate retrain``. It trains through the ``train`` it is given (alias
``challenger``), scores champion and challenger on the same fresh holdout (the challenger's own holdout
rows, which the champion never trained on either: the holdout bucket is a hash of each row's key, so it
is the same rows in every data commit), and only when the challenger wins by ``margin`` on ``metric``
rolls it out through the ``deploy`` it is given. The decision and its reason are published every time.

No retraining storms: a run that starts within ``cooldown_s`` of the last retrain of the same model
ends at once as "skipped", naming the run it defers to. Where the clock of the last start is kept is
injected (``CooldownStore``; a Prefect variable in the flow, which a person can inspect or delete).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pandas as pd
from pydantic import BaseModel, Field, field_validator

from contracts.rollout import DeployParameters, RolloutResult, RolloutStep, default_plan
from contracts.slo import SLOThresholds
from infra.errors import InvalidInputError, ModelNotFoundError
from infra.naming import MODEL_NAME_PATTERN
from infra.settings import dataset_from_settings, model_name_from_settings
from tasks import evaluation, publishing, registry
from tasks.clock import Clock
from tasks.datasets import check_dataset_name, get_dataset
from tasks.predictor import Predictor
from tasks.problems import Problem
from tasks.publishing import Publisher
from tasks.training import TrainingConfig, TrainParameters, TrainResult

if TYPE_CHECKING:
    import lakefs

logger = logging.getLogger(__name__)

Trigger = Literal["manual", "schedule", "drift", "dataset-merged", "external"]
Action = Literal["keep", "first-champion", "first-deployment", "roll-out", "not-deployed"]


class RetrainParameters(BaseModel):
    """What to retrain, what "better" means, and how to roll the winner out."""

    model_name: str = Field(
        default_factory=model_name_from_settings,
        pattern=MODEL_NAME_PATTERN,
        description="Model; unset: LOCKGATE_MODEL_NAME (or '<dataset>-mlp' of LOCKGATE_DATASET).",
    )
    dataset: str = Field(
        default_factory=dataset_from_settings,
        description="Dataset to train on (see `lockgate datasets`); unset: LOCKGATE_DATASET.",
    )
    ref: str = Field("main", min_length=1, description="Data ref; pinned to its newest commit at the start.")
    trigger: Trigger = Field("manual", description="What started the run (set by automations).")
    trigger_event: str = Field("", max_length=200, description="ID of the event that started it, if any.")
    reason: str = Field("", max_length=2000, description="Why, in words (e.g. the drifted features).")
    metric: str = Field(
        "auto",
        description="Holdout metric the challenger must win on; 'auto' takes the task's default "
        "(binary: roc_auc, multiclass: log_loss, regression: rmse).",
    )
    margin: float = Field(0.0, ge=0, le=1, description="By how much the challenger must beat the champion.")
    cooldown_s: int = Field(600, ge=0, le=7 * 86_400, description="No new retrain of this model this soon.")
    config: TrainingConfig = Field(default_factory=TrainingConfig)
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
        known = {
            **evaluation.COMPARABLE_METRICS,
            **evaluation.MULTICLASS_COMPARABLE,
            **evaluation.REGRESSION_COMPARABLE,
        }
        if value != "auto" and value not in known:
            raise ValueError(f"metric must be 'auto' or one of {sorted(known)}")
        return value


class CooldownStore(Protocol):
    """Where the start of each model's last retrain is kept."""

    def last_start(self, model_name: str) -> dict[str, Any] | None: ...

    def record_start(self, model_name: str, record: dict[str, Any]) -> None: ...


class MemoryCooldowns:
    """A ``CooldownStore`` in memory (one process; tests and one-off runs)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def last_start(self, model_name: str) -> dict[str, Any] | None:
        return self.records.get(model_name)

    def record_start(self, model_name: str, record: dict[str, Any]) -> None:
        self.records[model_name] = dict(record)


class FileCooldowns:
    """A ``CooldownStore`` in a JSON file (``lockgate retrain`` without a Prefect server), written
    atomically: a retrain started moments after another from the same directory is still skipped."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _records(self) -> dict[str, dict[str, Any]]:
        try:
            records = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return records if isinstance(records, dict) else {}

    def last_start(self, model_name: str) -> dict[str, Any] | None:
        return self._records().get(model_name)

    def record_start(self, model_name: str, record: dict[str, Any]) -> None:
        records = {**self._records(), model_name: dict(record)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        scratch.write_text(json.dumps(records, indent=2))
        scratch.replace(self.path)


@dataclass(frozen=True)
class RetrainDecision:
    """What to do with a challenger, and why."""

    action: Action
    reason: str

    @property
    def better(self) -> bool:
        return self.action != "keep"


def decide_retrain(
    challenger: evaluation.Metrics | dict[str, Any],
    champion: evaluation.Metrics | dict[str, Any] | None,
    *,
    metric: str,
    margin: float,
    deploy: bool,
    on_cluster: bool,
    comparable: dict[str, bool] | None = None,
    warnings: list[str] | tuple[str, ...] = (),
) -> RetrainDecision:
    """The challenger's fate from both models' metrics on the same holdout.

    Args:
        challenger: The challenger's metrics.
        champion: The champion's, on the same rows; ``None`` when there is no champion.
        metric: The metric it must win on (``evaluation.COMPARABLE_METRICS``).
        margin: By how much.
        deploy: Whether a better challenger is rolled out (else it is only reported).
        on_cluster: Whether a serving cluster is configured (a first champion is then deployed).
        comparable: The task's comparable metrics (``Problem.comparable_metrics``; binary by default).
        warnings: Why the challenger should not be promoted (worse than chance, too few steps): any
            keeps the champion.
    """
    if warnings:
        return RetrainDecision("keep", "challenger not promoted: " + "; ".join(warnings))
    verdict = evaluation.compare_to_champion(
        challenger,
        champion,
        margin=margin,
        metric=metric,
        comparable=comparable or evaluation.COMPARABLE_METRICS,
    )
    if not verdict.better:
        return RetrainDecision("keep", verdict.reason)
    if champion is None:
        # The first model of its name: nothing to roll out against. On a cluster, deploy starts the
        # serving app with it; otherwise it becomes the champion `lockgate serve` will start with.
        return RetrainDecision(
            "first-deployment" if deploy and on_cluster else "first-champion", verdict.reason
        )
    return RetrainDecision("roll-out" if deploy else "not-deployed", verdict.reason)


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain did (``decision`` in words, as people read it in the decision artifact)."""

    model: str
    decision: str
    reason: str
    trigger: str = "manual"
    trigger_event: str = ""
    challenger: str | None = None
    champion: str | None = None
    data_commit: str | None = None
    holdout_rows: int | None = None
    metric: str | None = None
    challenger_metric: float | None = None
    champion_metric: float | None = None
    margin: float | None = None
    defers_to: str | None = None
    rollout: RolloutResult | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The decision table: one ``item``/``value`` row per fact (the rollout is its own artifact)."""
        if self.decision == "skipped":
            return [{"item": "decision", "value": self.decision}, {"item": "reason", "value": self.reason}]
        items = [
            "model", "challenger", "champion", "data_commit", "holdout_rows", "metric", "challenger_metric",
            "champion_metric", "margin", "decision", "reason", "trigger", "trigger_event",
        ]  # fmt: skip
        return [{"item": item, "value": getattr(self, item)} for item in items]


def run_retrain(
    parameters: RetrainParameters,
    *,
    client: lakefs.Client,
    cooldowns: CooldownStore,
    train: Callable[[TrainParameters], TrainResult],
    deploy: Callable[[DeployParameters], RolloutResult],
    on_cluster: bool,
    clock: Clock,
    publish: Publisher,
    run_id: str | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> RetrainOutcome:
    """Retrain ``parameters.model_name`` and roll it out when it beats the champion.

    Args:
        parameters: Model, dataset, trigger, what "better" means, rollout plan and SLOs.
        client: lakeFS client (registry, reference samples).
        cooldowns: Where the last retrain start per model is kept.
        train: Trains and registers a challenger (``run_train``, or ``train_flow`` as a subflow).
        deploy: Rolls a version out (``run_rollout``, or ``deploy_flow`` as a subflow).
        on_cluster: Whether a serving cluster is configured.
        clock: Stamps the cool-down.
        publish: Receives the decision artifacts.
        run_id: The run, recorded with the cool-down so a skipped run names it.
        log: Where progress is logged.

    Raises:
        RolloutError: the rollout of a better challenger failed (the champion is kept; the decision
            artifact says so).
    """
    name = parameters.model_name
    skipped = _cooled_down(parameters, cooldowns, clock)
    if skipped is not None:
        log.info(skipped.reason)
        _publish_decision(parameters, skipped, publish)
        return skipped
    cooldowns.record_start(
        name,
        {
            "started_at": clock.now().isoformat(),
            "flow_run_id": run_id or "local",
            "trigger": parameters.trigger,
        },
    )
    log.info("retraining %s (trigger %s) %s", name, parameters.trigger, parameters.reason)
    trained = train(
        TrainParameters(
            dataset=parameters.dataset,
            ref=parameters.ref,
            model_name=name,
            config=parameters.config,
            alias="challenger",
        )
    )
    spec = get_dataset(parameters.dataset)
    holdout = pd.read_parquet(
        io.BytesIO(registry.read_artifact(name, trained.version, registry.REFERENCE_ARTIFACT, client=client))
    )
    card = registry.show_model(name, trained.version, client=client)
    problem = Problem.from_dict(card.feature_spec.get("problem"), target=spec.target)
    challenger = problem.evaluate(holdout[spec.target], problem.outputs_from_holdout(holdout))
    champion_version, champion = score_champion(name, holdout, spec.target, client=client)
    metric = problem.default_metric if parameters.metric == "auto" else parameters.metric
    if metric not in problem.comparable_metrics:
        raise InvalidInputError(
            f"metric {metric!r} does not fit a {problem.task} model; choose one of "
            f"{sorted(problem.comparable_metrics)} or 'auto'"
        )
    decision = decide_retrain(
        challenger,
        champion,
        metric=metric,
        margin=parameters.margin,
        deploy=parameters.deploy,
        on_cluster=on_cluster,
        comparable=problem.comparable_metrics,
        warnings=list(card.metrics.get("warnings", [])),
    )
    outcome = RetrainOutcome(
        model=name,
        decision="promote" if decision.better else "keep champion",
        reason=decision.reason,
        trigger=parameters.trigger,
        trigger_event=parameters.trigger_event,
        challenger=trained.version,
        champion=champion_version,
        data_commit=trained.data_commit,
        holdout_rows=len(holdout),
        metric=metric,
        challenger_metric=evaluation.metric_value(challenger, metric),
        champion_metric=evaluation.metric_value(champion, metric),
        margin=parameters.margin,
    )
    outcome = _act(decision, outcome, parameters, client=client, deploy=deploy, publish=publish)
    _publish_decision(parameters, outcome, publish)
    log.info("%s %s: %s (%s)", name, trained.version, outcome.decision, decision.reason)
    return outcome


def _act(
    decision: RetrainDecision,
    outcome: RetrainOutcome,
    parameters: RetrainParameters,
    *,
    client: lakefs.Client,
    deploy: Callable[[DeployParameters], RolloutResult],
    publish: Publisher,
) -> RetrainOutcome:
    """Carry the decision out; the outcome says what happened."""
    from dataclasses import replace

    name, version = parameters.model_name, outcome.challenger
    assert version is not None
    if decision.action == "first-deployment":
        rollout = deploy(DeployParameters(model_name=name, version=version))
        return replace(outcome, decision="promoted (first champion, now serving)", rollout=rollout)
    if decision.action == "first-champion":
        registry.set_alias(name, "champion", version, client=client)
        return replace(outcome, decision="promoted (first champion)")
    if decision.action == "not-deployed":
        return replace(outcome, decision="better; not deployed (deploy=false)")
    if decision.action == "keep":
        return outcome
    _publish_decision(parameters, replace(outcome, decision="promote: rolling out"), publish)
    try:
        rollout = deploy(
            DeployParameters(
                model_name=name,
                version=version,
                plan=parameters.plan,
                slo=parameters.slo,
                max_wait_s=parameters.max_wait_s,
            )
        )
    except Exception as error:
        _publish_decision(
            parameters, replace(outcome, decision=f"rollout failed, champion kept: {error}"), publish
        )
        raise
    return replace(outcome, decision=rollout.outcome, rollout=rollout)


def score_champion(
    model_name: str, holdout: pd.DataFrame, target: str, *, client: lakefs.Client
) -> tuple[str | None, dict[str, Any] | None]:
    """The champion's version and its metrics on ``holdout``; ``(None, None)`` when there is none."""
    try:
        champion = Predictor.from_registry(model_name, "champion", client=client)
    except ModelNotFoundError:
        return None, None
    outputs = champion.outputs_of_frame(holdout)
    return champion.version, champion.problem.evaluate(holdout[target], outputs)


def _cooled_down(
    parameters: RetrainParameters, cooldowns: CooldownStore, clock: Clock
) -> RetrainOutcome | None:
    """A "skipped" outcome when the model was retrained within ``cooldown_s``, else ``None``."""
    from datetime import datetime

    if parameters.cooldown_s <= 0:
        return None
    last = cooldowns.last_start(parameters.model_name)
    if not isinstance(last, dict) or "started_at" not in last:
        return None
    age = (clock.now() - datetime.fromisoformat(last["started_at"])).total_seconds()
    if age >= parameters.cooldown_s:
        return None
    reason = (
        f"skipped: {parameters.model_name} was retrained at {last['started_at']} (flow run "
        f"{last.get('flow_run_id')}, trigger {last.get('trigger')}), within the "
        f"{parameters.cooldown_s} s cool-down"
    )
    return RetrainOutcome(
        model=parameters.model_name,
        decision="skipped",
        reason=reason,
        trigger=parameters.trigger,
        trigger_event=parameters.trigger_event,
        defers_to=last.get("flow_run_id"),
    )


def _publish_decision(parameters: RetrainParameters, outcome: RetrainOutcome, publish: Publisher) -> None:
    key = f"retrain-{parameters.model_name}-decision"
    rows = [
        {**row, "value": str(row["value"]) if isinstance(row["value"], dict) else row["value"]}
        for row in outcome.rows()
    ]
    publish.artifact(publishing.table(key, rows, description=f"Retrain decision for {parameters.model_name}"))
    publish.artifact(
        publishing.markdown(
            f"{key}-summary",
            f"### Retrain {parameters.model_name}: **{outcome.decision}**\n\n"
            f"Trigger: `{parameters.trigger}` {parameters.reason}\n\n{outcome.reason}",
            description="Why the challenger was (or was not) promoted",
        )
    )
