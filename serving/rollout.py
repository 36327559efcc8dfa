"""The rollout engine: move live traffic to a registered version step by step, gated by SLOs.

``run_rollout`` is the state machine behind ``deploy_flow`` and ``lockgate deploy``. Each step of the
plan (by default shadow -> 5 % -> 25 % -> 50 % -> 100 %) routes a share of live traffic to the
challenger, holds it for a window, and judges the window's figures (p99 latency, error rate, and the
challenger's predicted-probability distribution against the champion's). A breach routes everything
back to the champion, removes the challenger, publishes ``lockgate.model.rolled_back`` and raises
``RolloutError`` with the reason. Passing every step moves the registry's ``champion`` alias, retires
the old version and publishes ``lockgate.model.promoted``. High-risk models (model card) or runs that
ask for it wait for a person's answer first (the caller supplies how to ask).

Nothing is left half-rolled-out: any failure or interruption routes back to the champion, and while a
step is held the control actor keeps a lease the engine renews; if the process dies, the lease runs
out and traffic returns to the champion by itself.

Everything it touches is injected: the registry's lakeFS client, the serving app (``ServingBackend``;
``serving.operations.RayServing`` on a Ray cluster), the clock and the publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from contracts.rollout import ApprovalAnswer, DeployParameters, RolloutResult, RolloutStep, StepResult
from infra.errors import LockgateError, ModelNotFoundError, RayUnavailableError, RolloutError, ServingError
from serving.routing import Route, RoutingTable, describe, split
from serving.stats import VersionStats, judge
from tasks import events, publishing, registry
from tasks.clock import Clock
from tasks.publishing import Publisher

if TYPE_CHECKING:
    import lakefs

    from contracts.rollout import FaultInjection

logger = logging.getLogger(__name__)

RENEW_EVERY_S = 5.0
LEASE_MARGIN_S = 60.0

Approver = Callable[[registry.ModelCard, DeployParameters], ApprovalAnswer]


class TrafficControl(Protocol):
    """The serving app's control plane: its routing table, leases and per-epoch statistics."""

    poll_s: float

    def table(self) -> RoutingTable: ...

    def set_routes(
        self,
        routes: list[Route],
        *,
        reason: str,
        lease_s: float | None = None,
        fallback: list[Route] | None = None,
    ) -> int: ...

    def renew(self, lease_s: float) -> bool: ...

    def window(self, epoch: int) -> dict[str, dict]: ...


class ServingBackend(Protocol):
    """The serving app a rollout drives."""

    app_name: str
    on_cluster: bool

    def controller(self) -> TrafficControl:
        """The running app's control plane; raises ``ServingError`` when no app runs."""
        ...

    def deploy(self, version: str, *, faults: FaultInjection | None) -> Route:
        """Start ``version``'s model app (no traffic yet) once its weights verified."""
        ...

    def retire(self, app: str) -> None: ...

    def start(self, version: str) -> str:
        """Start the serving app with ``version`` as its first champion; return its URL."""
        ...


def run_rollout(
    parameters: DeployParameters,
    *,
    client: lakefs.Client,
    serving: ServingBackend,
    clock: Clock,
    publish: Publisher,
    approve: Approver | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> RolloutResult:
    """Roll ``parameters.version`` of ``parameters.model_name`` out to the serving app.

    Args:
        parameters: The version, plan, SLOs and approval policy.
        client: lakeFS client of the registry.
        serving: The serving app.
        clock: Holds steps and stamps.
        publish: Receives the evaluation and rollout artifacts and the promoted / rolled-back events.
        approve: Asks a person when the card's risk level or ``require_approval`` needs it.
        log: Where progress is logged (the flow passes Prefect's run logger).

    Returns:
        The outcome: promoted (with the step figures), a first deployment, or already champion.

    Raises:
        RolloutError: a step breached its SLOs, the version did not start, the reviewer said no, or the
            rollout was interrupted; traffic is back on the champion and the challenger removed.
        ModelNotFoundError: the version does not exist.
    """
    name = parameters.model_name
    card = registry.show_model(name, parameters.version, client=client)
    version = card.version
    champion_card = _champion_card(name, client)
    publish.artifact(evaluation_artifact(card, champion_card))
    if card.risk_level == "high" or parameters.require_approval:
        _ask_approval(card, parameters, approve, log)

    try:
        traffic = serving.controller()
    except (ServingError, RayUnavailableError) as error:
        if not serving.on_cluster:
            raise RolloutError(f"{error}, or point LOCKGATE_SERVING_RAY_ADDRESS at a Ray cluster") from error
        return _first_deployment(
            parameters, version, serving=serving, client=client, publish=publish, log=log
        )
    champion = next((r for r in traffic.table().routes if r.role == "champion"), None)
    if champion is None:
        raise RolloutError(f"the serving app {serving.app_name!r} has no champion to roll out against")
    if champion.version == version:
        log.info("%s %s is already the champion; nothing to roll out", name, version)
        return RolloutResult(model=name, version=version, outcome="already-champion")
    champion = Route(champion.app, champion.model_name, champion.version, "champion", 1.0)

    try:
        challenger = serving.deploy(version, faults=parameters.faults)
    except LockgateError as error:
        publish.event(_rolled_back(name, version, champion, "deploy", str(error), []))
        raise RolloutError(f"{name} {version} was not deployed: {error}") from error

    steps = _run_steps(
        parameters, traffic, champion, challenger, serving=serving, clock=clock, publish=publish, log=log
    )
    registry.set_alias(name, "champion", version, client=client)
    promoted = Route(challenger.app, challenger.model_name, challenger.version, "champion", 1.0)
    traffic.set_routes([promoted], reason=f"{version} promoted to champion")
    serving.retire(champion.app)
    publish.artifact(steps_artifact(name, version, steps, outcome="promoted"))
    publish.event(
        events.Event(
            events.MODEL_PROMOTED,
            events.model_version_resource(name, version),
            {"previous_champion": champion.version, "steps": [step.to_dict() for step in steps]},
        )
    )
    log.info("%s %s promoted to champion (was %s)", name, version, champion.version)
    return RolloutResult(
        model=name,
        version=version,
        outcome="promoted",
        previous_champion=champion.version,
        steps=tuple(steps),
    )


def _run_steps(
    parameters: DeployParameters,
    traffic: TrafficControl,
    champion: Route,
    challenger: Route,
    *,
    serving: ServingBackend,
    clock: Clock,
    publish: Publisher,
    log: logging.Logger | logging.LoggerAdapter,
) -> list[StepResult]:
    """Every step of the plan, judged; on any failure traffic goes back to the champion first."""
    fallback = [champion]
    steps: list[StepResult] = []
    champion_seen, challenger_seen = VersionStats(), VersionStats()
    compared = False
    try:
        for step in parameters.plan:
            routes = split(champion, challenger, challenger_weight=step.traffic, shadow=step.shadow)
            epoch = traffic.set_routes(
                routes,
                reason=f"rollout {challenger.version}: {step.label}",
                lease_s=_lease_s(step, parameters),
                fallback=fallback,
            )
            log.info("step %s: %s", step.label, describe(routes))
            window = hold_step(traffic, step, epoch, challenger.version, parameters, clock=clock)
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
                StepResult(
                    step=step.label,
                    passed=verdict.passed,
                    reason=verdict.explain(),
                    **{f"challenger_{key}": value for key, value in verdict.challenger.items()},
                    champion_p99_ms=(verdict.champion or {}).get("p99_ms"),
                    prediction_psi=verdict.prediction_psi,
                )
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
        traffic.set_routes(fallback, reason=f"rollback of {challenger.version}: {error}")
        serving.retire(challenger.app)
        reason = str(error) or type(error).__name__
        name, version = parameters.model_name, challenger.version
        publish.artifact(steps_artifact(name, version, steps, outcome=f"rolled back: {reason}"))
        publish.event(
            _rolled_back(name, version, champion, steps[-1].step if steps else "start", reason, steps)
        )
        if isinstance(error, RolloutError):
            raise
        raise RolloutError(f"rollout of {version} interrupted and rolled back: {reason}") from error
    return steps


def _lease_s(step: RolloutStep, parameters: DeployParameters) -> float:
    return step.hold_s + parameters.max_wait_s + LEASE_MARGIN_S


def hold_step(
    traffic: TrafficControl,
    step: RolloutStep,
    epoch: int,
    version: str,
    parameters: DeployParameters,
    *,
    clock: Clock,
) -> dict[str, dict]:
    """Hold a step for ``hold_s`` (renewing the lease), then until enough traffic or ``max_wait_s``.

    Raises:
        RolloutError: the lease was lost (the control actor restarted, or the lease expired).
    """
    started = clock.monotonic()
    deadline = started + step.hold_s + parameters.max_wait_s
    while True:
        now = clock.monotonic()
        if now - started >= step.hold_s:
            seen = traffic.window(epoch).get(version, {}).get("requests", 0)
            if seen >= parameters.slo.min_requests or now >= deadline:
                break
        if not traffic.renew(_lease_s(step, parameters)):
            raise RolloutError(
                "the rollout lease was lost (the control actor restarted or the lease expired)"
            )
        clock.sleep(min(RENEW_EVERY_S, max(step.hold_s - (now - started), 0.2)))
    # The ingress replicas report every poll interval: wait for the window's last reports.
    clock.sleep(2 * traffic.poll_s + 0.1)
    return traffic.window(epoch)


def _first_deployment(
    parameters: DeployParameters,
    version: str,
    *,
    serving: ServingBackend,
    client: lakefs.Client,
    publish: Publisher,
    log: logging.Logger | logging.LoggerAdapter,
) -> RolloutResult:
    """No serving app runs on the cluster yet: start it with ``version`` as its first champion.

    Only on a cluster: a local Ray started by this process would end with it. There is no champion to
    compare with, so there are no steps; the app's ``/health`` gates traffic.
    """
    name = parameters.model_name
    log.info("no serving app %r on the cluster: starting it with %s", serving.app_name, version)
    try:
        url = serving.start(version)
    except LockgateError as error:
        raise RolloutError(f"{name} {version} was not deployed: {error}") from error
    registry.set_alias(name, "champion", version, client=client)
    step = StepResult(step="first deployment", passed=True, reason=f"serving at {url}")
    publish.artifact(steps_artifact(name, version, [step], outcome="first deployment"))
    publish.event(
        events.Event(
            events.MODEL_PROMOTED,
            events.model_version_resource(name, version),
            {"previous_champion": None, "steps": [], "first_deployment": True, "url": url},
        )
    )
    return RolloutResult(model=name, version=version, outcome="promoted", first_deployment=True, url=url)


def _ask_approval(
    card: registry.ModelCard,
    parameters: DeployParameters,
    approve: Approver | None,
    log: logging.Logger | logging.LoggerAdapter,
) -> None:
    log.info(
        "%s %s needs approval (risk level %s): waiting for a reviewer",
        card.model_name,
        card.version,
        card.risk_level,
    )
    if approve is None:
        raise RolloutError(
            f"{card.model_name} {card.version} needs a person's approval (risk level {card.risk_level}), "
            "and nobody can be asked here: run deploy_flow from the Prefect UI, or pass "
            "`lockgate deploy --approval`"
        )
    answer = approve(card, parameters)
    if not answer.approve:
        raise RolloutError(
            f"{card.model_name} {card.version} was rejected by {answer.reviewer or 'a reviewer'}"
            + (f": {answer.reason}" if answer.reason else "")
        )
    log.info("approved by %s", answer.reviewer or "a reviewer")


def _champion_card(model_name: str, client: lakefs.Client) -> registry.ModelCard | None:
    try:
        return registry.show_model(model_name, "champion", client=client)
    except ModelNotFoundError:
        return None


def evaluation_artifact(
    card: registry.ModelCard, champion_card: registry.ModelCard | None
) -> publishing.Artifact:
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
    return publishing.markdown(
        f"deploy-{card.model_name}-evaluation",
        f"### {card.model_name} {card.version} vs champion {champion_label}\n\n"
        f"Risk level: **{card.risk_level}**; "
        f"data `lakefs://{card.data_repository}/{card.data_commit_id}`; "
        f"contract report {card.contract_report}; weights SHA-256 `{card.weights_sha256[:16]}...`\n\n"
        "| holdout metric | candidate | champion | difference |\n|---|---|---|---|\n" + "\n".join(rows),
        description="Evaluation summary for the rollout decision",
    )


def steps_artifact(
    model_name: str, version: str, steps: list[StepResult], *, outcome: str
) -> publishing.Artifact:
    """The per-step table of a rollout."""
    rows: list[dict[str, Any]] = [step.to_dict() for step in steps] or [
        {"step": "-", "passed": False, "reason": outcome}
    ]
    return publishing.table(
        f"deploy-{model_name}-rollout", rows, description=f"Rollout of {model_name} {version}: {outcome}"
    )


def _rolled_back(
    model_name: str, version: str, champion: Route, step: str, reason: str, steps: list[StepResult]
) -> events.Event:
    return events.Event(
        events.MODEL_ROLLED_BACK,
        events.model_version_resource(model_name, version),
        {"champion": champion.version, "step": step, "reason": reason, "steps": [s.to_dict() for s in steps]},
    )
