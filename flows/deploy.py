"""``deploy_flow``: move live traffic to a registered version step by step, gated by SLOs.

Each step of the plan (by default shadow -> 5 % -> 25 % -> 50 % -> 100 %) routes a share of live traffic
to the challenger, holds it for a window, and judges the window's figures (p99 latency, error rate, and
the challenger's predicted-probability distribution against the champion's). A breach routes everything
back to the champion, removes the challenger, emits ``lockgate.model.rolled_back`` and fails with the
reason. Passing every step moves the registry's ``champion`` alias, retires the old version and emits
``lockgate.model.promoted``. High-risk models (model card) or runs that ask for it pause for a person
to approve in the Prefect UI first.

The flow never leaves a half-rolled-out state: any failure or interruption routes back to the champion,
and while a step is held the control actor keeps a lease the flow renews; if the flow dies, the lease
runs out and traffic returns to the champion by itself.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field, model_validator

from contracts.slo import SLOThresholds
from infra.clients import make_lakefs_client
from infra.errors import LockgateError, RolloutError
from infra.settings import LakeFSSettings, ServingSettings
from serving.faults import FaultInjection
from serving.routing import Route, describe, split
from serving.stats import VersionStats, judge
from tasks import registry

PROMOTED_EVENT = "lockgate.model.promoted"
ROLLED_BACK_EVENT = "lockgate.model.rolled_back"


class RolloutStep(BaseModel):
    """One step of a rollout plan."""

    traffic: float = Field(ge=0, le=1, description="Share of live traffic the challenger answers (0..1).")
    shadow: bool = Field(False, description="Challenger gets a copy of every request; answers not returned.")
    hold_s: float = Field(30.0, gt=0, le=86_400, description="How long the step is held and measured.")

    @model_validator(mode="after")
    def _shadow_has_no_share(self) -> RolloutStep:
        if self.shadow and self.traffic:
            raise ValueError("a shadow step answers no traffic: set traffic to 0")
        if not self.shadow and not self.traffic:
            raise ValueError("a step needs traffic > 0, or shadow: true")
        return self

    @property
    def label(self) -> str:
        return "shadow" if self.shadow else f"{self.traffic:.0%}"


def default_plan(hold_s: float = 30.0) -> list[RolloutStep]:
    """shadow -> 5 % -> 25 % -> 50 % -> 100 %, each held ``hold_s``."""
    return [RolloutStep(traffic=0, shadow=True, hold_s=hold_s)] + [
        RolloutStep(traffic=share, hold_s=hold_s) for share in (0.05, 0.25, 0.5, 1.0)
    ]


class DeployParameters(BaseModel):
    """Which version to roll out, how, and what it must meet on live traffic."""

    model_name: str = Field("loans-mlp", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$", description="Model.")
    version: str = Field(
        "challenger", min_length=1, description="Version to roll out: v3, 'challenger' or 'latest'."
    )
    plan: list[RolloutStep] = Field(default_factory=default_plan, min_length=1, description="Rollout steps.")
    slo: SLOThresholds = Field(default_factory=SLOThresholds, description="What every step must meet.")
    max_wait_s: float = Field(
        120.0, ge=0, description="Extra time a step may wait for enough traffic before it fails."
    )
    require_approval: bool = Field(
        False, description="Pause for a person's approval in the Prefect UI (always for high-risk models)."
    )
    approval_timeout_s: int = Field(3600, ge=10, description="How long the approval may take.")
    approval_poll_s: int = Field(5, ge=1, le=60, description="How often the paused run checks for an answer.")
    faults: FaultInjection | None = Field(
        None, description="Drill only: faults the challenger injects (latency, errors) to test the gate."
    )

    @model_validator(mode="after")
    def _ends_at_full_traffic(self) -> DeployParameters:
        if self.plan[-1].shadow or self.plan[-1].traffic < 1.0:
            raise ValueError("the last step of the plan must send 100% of traffic to the challenger")
        return self


class Approval(RunInput):
    """A reviewer's answer to a paused rollout."""

    approve: bool = Field(description="Roll the version out.")
    reviewer: str = Field("", description="Who decided.")
    reason: str = Field("", description="Why.")


@flow(name="deploy", description="SLO-gated progressive rollout on Ray Serve, with rollback and approval.")
def deploy_flow(parameters: DeployParameters) -> dict[str, Any]:
    """Roll ``parameters.version`` of ``parameters.model_name`` out to the serving app."""
    from serving.operations import ServingError, TrafficController, deploy_version, retire

    logger = get_run_logger()
    client = make_lakefs_client(LakeFSSettings())
    card = registry.show_model(parameters.model_name, parameters.version, client=client)
    version = card.version
    champion_card = _champion_card(parameters.model_name, client)
    _evaluation_artifact(card, champion_card)
    if card.risk_level == "high" or parameters.require_approval:
        _await_approval(parameters, card)

    settings = ServingSettings(model_name=parameters.model_name)
    try:
        traffic = TrafficController(settings)
    except ServingError as error:
        if not settings.ray_address:
            raise RolloutError(f"{error}, or point LOCKGATE_SERVING_RAY_ADDRESS at a Ray cluster") from error
        return _first_deployment(parameters, version, settings, client)
    table = traffic.table()
    champion = next((r for r in table.routes if r.role == "champion"), None)
    if champion is None:
        raise RolloutError(f"the serving app {settings.app_name!r} has no champion to roll out against")
    if champion.version == version:
        logger.info("%s %s is already the champion; nothing to roll out", parameters.model_name, version)
        return {
            "model": parameters.model_name,
            "version": version,
            "outcome": "already-champion",
            "steps": [],
        }
    champion = Route(champion.app, champion.model_name, champion.version, "champion", 1.0)
    fallback = [champion]

    try:
        challenger = deploy_version(settings, version, lakefs=LakeFSSettings(), faults=parameters.faults)
    except LockgateError as error:
        _rolled_back(parameters, version, champion, "deploy", str(error), [])
        raise RolloutError(f"{parameters.model_name} {version} was not deployed: {error}") from error

    steps: list[dict[str, Any]] = []
    champion_seen, challenger_seen = VersionStats(), VersionStats()
    compared = False
    try:
        for step in parameters.plan:
            routes = split(champion, challenger, challenger_weight=step.traffic, shadow=step.shadow)
            lease_s = step.hold_s + parameters.max_wait_s + 60
            epoch = traffic.set_routes(
                routes, reason=f"rollout {version}: {step.label}", lease_s=lease_s, fallback=fallback
            )
            logger.info("step %s: %s", step.label, describe(routes))
            window = _hold(traffic, step, epoch, challenger.version, parameters)
            challenger_stats = VersionStats.from_dict(
                window.get(challenger.version, VersionStats().to_dict())
            )
            challenger_seen.merge(challenger_stats)
            if champion.version in window:
                champion_seen.merge(VersionStats.from_dict(window[champion.version]))
            # Latency and errors are judged per window; predictions over everything seen so far (the
            # same two models throughout), which gives the comparison enough records to mean something.
            verdict = judge(
                challenger_stats, champion_seen, parameters.slo, challenger_predictions=challenger_seen
            )
            compared = compared or verdict.prediction_psi is not None
            steps.append(
                {
                    "step": step.label,
                    "passed": verdict.passed,
                    "reason": verdict.explain(),
                    **{f"challenger_{k}": v for k, v in verdict.challenger.items()},
                    "champion_p99_ms": (verdict.champion or {}).get("p99_ms"),
                    "prediction_psi": verdict.prediction_psi,
                }
            )
            if not verdict.passed:
                raise RolloutError(f"step {step.label} breached its SLOs: {verdict.explain()}")
        if champion_seen.requests and not compared:
            raise RolloutError(
                f"too few predictions to compare with the champion ({challenger_seen.records} challenger, "
                f"{champion_seen.records} champion; {parameters.slo.min_psi_records} needed on each side): "
                "hold the steps longer or lower slo.min_psi_records"
            )
    except BaseException as error:
        traffic.set_routes(fallback, reason=f"rollback of {version}: {error}")
        retire(challenger.app)
        reason = str(error) or type(error).__name__
        _steps_artifact(parameters, version, steps, outcome=f"rolled back: {reason}")
        _rolled_back(parameters, version, champion, steps[-1]["step"] if steps else "start", reason, steps)
        if isinstance(error, RolloutError):
            raise
        raise RolloutError(f"rollout of {version} interrupted and rolled back: {reason}") from error

    registry.set_alias(parameters.model_name, "champion", version, client=client)
    promoted = Route(challenger.app, challenger.model_name, challenger.version, "champion", 1.0)
    traffic.set_routes([promoted], reason=f"{version} promoted to champion")
    retire(champion.app)
    _steps_artifact(parameters, version, steps, outcome="promoted")
    emit_event(
        event=PROMOTED_EVENT,
        resource=_resource(parameters.model_name, version),
        payload={"previous_champion": champion.version, "steps": steps},
    )
    logger.info("%s %s promoted to champion (was %s)", parameters.model_name, version, champion.version)
    return {
        "model": parameters.model_name,
        "version": version,
        "previous_champion": champion.version,
        "outcome": "promoted",
        "steps": steps,
    }


def _first_deployment(parameters: DeployParameters, version: str, settings: ServingSettings, client) -> dict:
    """No serving app runs on the cluster yet: start it with ``version`` as its first champion.

    Only on a cluster (``ray_address`` set): a local Ray started by this flow would end with it.
    There is no champion to compare with, so there are no steps; the app's ``/health`` gates traffic.
    """
    from serving.operations import start_serving

    logger = get_run_logger()
    logger.info("no serving app %r on the cluster: starting it with %s", settings.app_name, version)
    try:
        handle = start_serving(settings.model_copy(update={"initial_ref": version}), lakefs=LakeFSSettings())
    except LockgateError as error:
        raise RolloutError(f"{parameters.model_name} {version} was not deployed: {error}") from error
    registry.set_alias(parameters.model_name, "champion", version, client=client)
    step = {"step": "first deployment", "passed": True, "reason": f"serving at {handle.url}"}
    _steps_artifact(parameters, version, [step], outcome="first deployment")
    emit_event(
        event=PROMOTED_EVENT,
        resource=_resource(parameters.model_name, version),
        payload={"previous_champion": None, "steps": [], "first_deployment": True, "url": handle.url},
    )
    return {
        "model": parameters.model_name,
        "version": version,
        "previous_champion": None,
        "outcome": "promoted",
        "first_deployment": True,
        "url": handle.url,
        "steps": [],
    }


def _hold(traffic, step: RolloutStep, epoch: int, version: str, parameters: DeployParameters) -> dict:
    """Hold a step for ``hold_s`` (renewing the lease), then until enough traffic or ``max_wait_s``."""
    started = time.monotonic()
    renew_every = 5.0
    deadline = started + step.hold_s + parameters.max_wait_s
    while True:
        now = time.monotonic()
        if now - started >= step.hold_s:
            window = traffic.window(epoch)
            seen = window.get(version, {}).get("requests", 0)
            if seen >= parameters.slo.min_requests or now >= deadline:
                break
        if not traffic.renew(step.hold_s + parameters.max_wait_s + 60):
            raise RolloutError(
                "the rollout lease was lost (the control actor restarted or the lease expired)"
            )
        time.sleep(min(renew_every, max(step.hold_s - (now - started), 0.2)))
    # The ingress replicas report every poll interval: wait for the window's last reports.
    time.sleep(2 * traffic.poll_s + 0.1)
    return traffic.window(epoch)


def _await_approval(parameters: DeployParameters, card) -> None:
    logger = get_run_logger()
    logger.info(
        "%s %s needs approval (risk level %s): waiting for a reviewer",
        card.model_name,
        card.version,
        card.risk_level,
    )
    answer = pause_flow_run(
        wait_for_input=Approval.with_initial_data(
            description=f"Roll out {card.model_name} {card.version}? See the evaluation artifact.",
            approve=False,
        ),
        timeout=parameters.approval_timeout_s,
        poll_interval=parameters.approval_poll_s,
        key=f"approve-{card.model_name}-{card.version}",
    )
    if not answer.approve:
        raise RolloutError(
            f"{card.model_name} {card.version} was rejected by {answer.reviewer or 'a reviewer'}"
            + (f": {answer.reason}" if answer.reason else "")
        )
    logger.info("approved by %s", answer.reviewer or "a reviewer")


def _champion_card(model_name: str, client):
    from infra.errors import ModelNotFoundError

    try:
        return registry.show_model(model_name, "champion", client=client)
    except ModelNotFoundError:
        return None


def _evaluation_artifact(card, champion_card) -> None:
    """The evaluation summary a reviewer decides on: holdout metrics against the champion's."""
    mine = card.metrics.get("holdout", card.metrics)
    theirs = (champion_card.metrics.get("holdout", champion_card.metrics) if champion_card else {}) or {}
    rows = []
    for name, value in mine.items():
        if isinstance(value, int | float):
            other = theirs.get(name)
            rows.append(
                f"| {name} | {value:.4f} | "
                + (f"{other:.4f} | {value - other:+.4f} |" if isinstance(other, int | float) else "- | - |")
            )
    champion_label = f"{champion_card.version}" if champion_card else "none"
    create_markdown_artifact(
        key=f"deploy-{card.model_name}-evaluation",
        markdown=(
            f"### {card.model_name} {card.version} vs champion {champion_label}\n\n"
            f"Risk level: **{card.risk_level}**; "
            f"data `lakefs://{card.data_repository}/{card.data_commit_id}`; "
            f"contract report {card.contract_report}; weights SHA-256 `{card.weights_sha256[:16]}...`\n\n"
            "| holdout metric | candidate | champion | difference |\n|---|---|---|---|\n" + "\n".join(rows)
        ),
        description="Evaluation summary for the rollout decision",
    )


def _steps_artifact(parameters: DeployParameters, version: str, steps: list[dict], *, outcome: str) -> None:
    create_table_artifact(
        key=f"deploy-{parameters.model_name}-rollout",
        table=steps or [{"step": "-", "passed": False, "reason": outcome}],
        description=f"Rollout of {parameters.model_name} {version}: {outcome}",
    )


def _resource(model_name: str, version: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"lockgate.model.{model_name}.{version}",
        "lockgate.model": model_name,
        "lockgate.version": version,
    }


def _rolled_back(parameters, version: str, champion: Route, step: str, reason: str, steps: list) -> None:
    emit_event(
        event=ROLLED_BACK_EVENT,
        resource=_resource(parameters.model_name, version),
        payload={"champion": champion.version, "step": step, "reason": reason, "steps": steps},
    )
