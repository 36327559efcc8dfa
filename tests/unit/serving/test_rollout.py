"""``run_rollout`` without Ray or Prefect: the state machine over a fake control plane and a fake clock,
the registry on the embedded lakeFS server. Proves the decisions: promote, roll back on each breach,
first deployment, approval, and that traffic always ends on exactly one champion."""

from __future__ import annotations

import uuid

import pytest

from contracts.rollout import ApprovalAnswer, DeployParameters, RolloutStep
from contracts.slo import SLOThresholds
from infra.errors import RolloutError
from serving.rollout import run_rollout
from serving.routing import Route
from tasks import events, registry
from tasks.publishing import RecordingPublisher
from tests.support.fakes import Behaviour, FakeClock, FakeServing, FakeTraffic
from tests.support.serving import register_loans_model

SLO = SLOThresholds(p99_latency_ms=250, max_error_rate=0.01, max_prediction_psi=0.25, min_requests=30)


def plan(*labels: str, hold_s: float = 10.0) -> list[RolloutStep]:
    return [
        RolloutStep(traffic=0, shadow=True, hold_s=hold_s)
        if label == "shadow"
        else RolloutStep(traffic=float(label) / 100, hold_s=hold_s)
        for label in labels
    ]


@pytest.fixture
def model(lakefs_client) -> tuple[str, str, str]:
    """A fresh model: v1 the champion, v2 (same weights) the candidate, v3 high risk."""
    name = f"roll-{uuid.uuid4().hex[:8]}"
    first = register_loans_model(lakefs_client, seed=1, model_name=name)
    registry.set_alias(name, "champion", first.version, client=lakefs_client)
    second = register_loans_model(lakefs_client, seed=1, model_name=name)
    return name, first.version, second.version


def fake_serving(name: str, champion: str, **behaviour: Behaviour) -> FakeServing:
    route = Route(f"lockgate-{name}-{champion}", name, champion, "champion", 1.0)
    return FakeServing(FakeTraffic(route, behaviour=dict(behaviour)))


def rollout(parameters: DeployParameters, serving: FakeServing, client, **options):
    published, clock = RecordingPublisher(), FakeClock()
    result = run_rollout(
        parameters, client=client, serving=serving, clock=clock, publish=published, **options
    )
    return result, published, clock


def test_a_healthy_challenger_is_promoted_step_by_step(model, lakefs_client) -> None:
    name, champion, candidate = model
    serving = fake_serving(name, champion)
    parameters = DeployParameters(
        model_name=name, version=candidate, plan=plan("shadow", "25", "100"), slo=SLO, max_wait_s=5
    )
    result, published, clock = rollout(parameters, serving, lakefs_client)

    assert result.outcome == "promoted" and result.previous_champion == champion
    assert [step.step for step in result.steps] == ["shadow", "25%", "100%"]
    assert all(step.passed and step.challenger_requests == 100 for step in result.steps)
    assert result.steps[-1].prediction_psi == 0.0  # the same predictions: compared, and no shift
    assert registry.get_alias(name, "champion", client=lakefs_client).version == candidate
    final = serving.traffic.routes
    assert [(r.version, r.role, r.weight) for r in final] == [(candidate, "champion", 1.0)]
    assert serving.retired == [f"lockgate-{name}-{champion}"]
    (promoted,) = published.events_named(events.MODEL_PROMOTED)
    assert (
        promoted.resource["lockgate.version"] == candidate
        and promoted.payload["previous_champion"] == champion
    )
    assert {a.key for a in published.artifacts} == {f"deploy-{name}-evaluation", f"deploy-{name}-rollout"}
    # Each step was held (in fake time) at least hold_s, without a real second passing.
    assert clock.monotonic() >= 3 * 10.0


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(latency_ms=900.0), "p99 latency"),
        (Behaviour(error_every=10), "error rate 10.00%"),
        (Behaviour(probability=0.95, requests=300), "prediction distribution moved"),
        (Behaviour(requests=5), "insufficient traffic"),
    ],
    ids=["latency", "errors", "predictions", "no-traffic"],
)
def test_a_breach_rolls_back_to_the_champion(model, lakefs_client, behaviour, reason) -> None:
    name, champion, candidate = model
    serving = fake_serving(name, champion, **{champion: Behaviour(requests=300), candidate: behaviour})
    parameters = DeployParameters(
        model_name=name, version=candidate, plan=plan("shadow", "100"), slo=SLO, max_wait_s=5
    )
    published, clock = RecordingPublisher(), FakeClock()

    with pytest.raises(RolloutError, match=reason):
        run_rollout(parameters, client=lakefs_client, serving=serving, clock=clock, publish=published)

    assert [(r.version, r.weight) for r in serving.traffic.routes] == [(champion, 1.0)]
    assert serving.retired == [f"lockgate-{name}-{candidate}"]
    assert registry.get_alias(name, "champion", client=lakefs_client).version == champion
    (rolled_back,) = published.events_named(events.MODEL_ROLLED_BACK)
    assert rolled_back.payload["step"] == "shadow" and reason.split()[0] in rolled_back.payload["reason"]
    assert not published.events_named(events.MODEL_PROMOTED)


def test_a_lost_lease_rolls_back(model, lakefs_client) -> None:
    name, champion, candidate = model
    serving = fake_serving(name, champion)
    serving.traffic.lose_lease_after = 1
    parameters = DeployParameters(
        model_name=name, version=candidate, plan=plan("25", "100", hold_s=30), slo=SLO
    )
    with pytest.raises(RolloutError, match="lease was lost"):
        rollout(parameters, serving, lakefs_client)
    assert [(r.version, r.weight) for r in serving.traffic.routes] == [(champion, 1.0)]


def test_a_version_that_does_not_start_changes_nothing(model, lakefs_client) -> None:
    name, champion, candidate = model
    serving = fake_serving(name, champion)
    serving.fail_deploy = "weights SHA-256 mismatch"
    published, clock = RecordingPublisher(), FakeClock()
    parameters = DeployParameters(model_name=name, version=candidate, plan=plan("100"), slo=SLO)
    with pytest.raises(RolloutError, match="was not deployed: weights SHA-256 mismatch"):
        run_rollout(parameters, client=lakefs_client, serving=serving, clock=clock, publish=published)
    assert serving.traffic.history == []  # no route ever changed
    assert published.events_named(events.MODEL_ROLLED_BACK)[0].payload["step"] == "deploy"


def test_the_champion_itself_is_not_rolled_out_again(model, lakefs_client) -> None:
    name, champion, _ = model
    serving = fake_serving(name, champion)
    result, published, _ = rollout(
        DeployParameters(model_name=name, version=champion), serving, lakefs_client
    )
    assert result.outcome == "already-champion" and serving.deployed == [] and not published.events


def test_high_risk_versions_wait_for_an_answer(model, lakefs_client) -> None:
    name, champion, _ = model
    risky = register_loans_model(lakefs_client, seed=1, model_name=name, risk_level="high").version
    parameters = DeployParameters(model_name=name, version=risky, plan=plan("shadow", "100"), slo=SLO)
    asked: list[str] = []

    def reviewer(answer: bool):
        def ask(card, _parameters) -> ApprovalAnswer:
            asked.append(card.version)
            return ApprovalAnswer(approve=answer, reviewer="ana", reason="checked slices")

        return ask

    serving = fake_serving(name, champion)
    with pytest.raises(RolloutError, match="needs a person's approval"):
        rollout(parameters, serving, lakefs_client)  # nobody to ask
    with pytest.raises(RolloutError, match="rejected by ana: checked slices"):
        rollout(parameters, serving, lakefs_client, approve=reviewer(False))
    assert serving.deployed == [] and asked == [risky]
    result, _, _ = rollout(parameters, serving, lakefs_client, approve=reviewer(True))
    assert result.outcome == "promoted" and asked == [risky, risky]


def test_with_no_serving_app_a_cluster_gets_its_first_champion(model, lakefs_client) -> None:
    name, _, candidate = model
    parameters = DeployParameters(model_name=name, version=candidate)
    with pytest.raises(RolloutError, match="LOCKGATE_SERVING_RAY_ADDRESS"):
        rollout(parameters, FakeServing(traffic=None, on_cluster=False), lakefs_client)

    serving = FakeServing(traffic=None, on_cluster=True)
    result, published, _ = rollout(parameters, serving, lakefs_client)
    assert result.first_deployment and result.url and serving.started == [candidate]
    assert registry.get_alias(name, "champion", client=lakefs_client).version == candidate
    assert published.events_named(events.MODEL_PROMOTED)[0].payload["first_deployment"] is True


def test_a_ray_address_that_does_not_answer_is_a_rollout_error(model, lakefs_client) -> None:
    from infra.errors import RayUnavailableError

    name, _, candidate = model

    class NoRay(FakeServing):
        def controller(self):
            raise RayUnavailableError("no Ray cluster at '127.0.0.1:1'")

    with pytest.raises(RolloutError, match="no Ray cluster"):
        rollout(DeployParameters(model_name=name, version=candidate), NoRay(traffic=None), lakefs_client)
