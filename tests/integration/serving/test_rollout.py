"""deploy_flow through a real Prefect server against the serving app on local Ray."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from contracts.rollout import FaultInjection
from contracts.slo import SLOThresholds
from flows.deploy import DeployParameters, RolloutStep, deploy_flow
from infra.errors import ModelNotFoundError, RolloutError
from serving.operations import TrafficController
from serving.traffic import TrafficGenerator
from tasks.registry import get_alias
from tests.support.prefect import read_artifacts, read_events
from tests.support.serving import loan_records, register_loans_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_SLO = SLOThresholds(p99_latency_ms=2_000, max_error_rate=0.01, max_prediction_psi=0.25, min_requests=15)


def plan(*steps: str, hold_s: float = 2.0) -> list[RolloutStep]:
    return [
        RolloutStep(traffic=0, shadow=True, hold_s=hold_s)
        if step == "shadow"
        else RolloutStep(traffic=float(step) / 100, hold_s=hold_s)
        for step in steps
    ]


def live_routes(serving) -> list[tuple[str, str, float]]:
    table = TrafficController(serving.settings).table()
    return sorted((r.version, r.role, r.weight) for r in table.routes)


def serve_apps(serving) -> set[str]:
    from ray import serve

    return {name for name in serve.status().applications if name.startswith(f"{serving.settings.app_name}-")}


def assert_apps_become(serving, expected: set[str], timeout_s: float = 30.0) -> None:
    """Retired apps are deleted in the background: wait until exactly ``expected`` remain."""
    deadline = time.monotonic() + timeout_s
    while serve_apps(serving) != expected:
        assert time.monotonic() < deadline, (serve_apps(serving), expected)
        time.sleep(0.2)


@pytest.fixture
def live_traffic(serving):
    with TrafficGenerator(serving.url, loan_records(200, seed=9), concurrency=3, rate_per_s=60) as generator:
        yield generator


def champion_version(serving) -> str:
    return get_alias(serving.model_name, "champion", client=serving.client).version


def test_a_healthy_challenger_is_promoted_step_by_step(serving, prefect_server, live_traffic):
    before = champion_version(serving)
    # Same seed as the champion: same predictions, so the distribution check passes for the right reason.
    candidate = register_loans_model(
        serving.client, seed=serving.champion_seed, model_name=serving.model_name
    )
    state = deploy_flow(
        DeployParameters(
            model_name=serving.model_name,
            version=candidate.version,
            plan=plan("shadow", "25", "100", hold_s=3.0),
            slo=FAST_SLO,
        ),
        return_state=True,
    )
    result = state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    assert result.outcome == "promoted" and result.previous_champion == before
    assert [step.step for step in result.steps] == ["shadow", "25%", "100%"]
    assert all(step.passed and step.challenger_requests >= 15 for step in result.steps)
    # Predictions are compared once enough records are in (min_psi_records): same weights, PSI 0.
    compared = [step.prediction_psi for step in result.steps if step.prediction_psi is not None]
    assert compared and all(psi == 0.0 for psi in compared)
    assert champion_version(serving) == candidate.version
    assert live_routes(serving) == [(candidate.version, "champion", 1.0)]
    assert_apps_become(serving, {f"{serving.settings.app_name}-{serving.model_name}-{candidate.version}"})

    (event,) = read_events("lockgate.model.promoted", flow_run_id=flow_run_id)
    assert event.resource.get("lockgate.version") == candidate.version
    assert event.payload["previous_champion"] == before
    keys = {artifact.key for artifact in read_artifacts(flow_run_id)}
    assert {f"deploy-{serving.model_name}-rollout", f"deploy-{serving.model_name}-evaluation"} <= keys
    answered = {
        httpx.post(f"{serving.url}/predict", json=loan_records(1)).json()["model_version"] for _ in range(10)
    }
    assert answered == {candidate.version}
    assert live_traffic.report.failed == 0, live_traffic.report.failures[:5]


@pytest.mark.parametrize(
    ("fault", "seed_offset", "bias", "breaches"),
    [
        # Slow and failing at once: one rollout shows both gates (each alone is a unit test's case).
        (FaultInjection(latency_ms=400, error_rate=0.5), 0, None, ("p99 latency", "error rate")),
        (None, 0, 6.0, ("prediction distribution moved",)),
    ],
    ids=["latency-and-errors", "predictions"],
)
def test_a_breaching_challenger_is_rolled_back(
    serving, prefect_server, live_traffic, fault, seed_offset, bias, breaches
):
    champion = champion_version(serving)
    routes_before = live_routes(serving)
    apps_before = serve_apps(serving)
    candidate = register_loans_model(
        serving.client, seed=serving.champion_seed + seed_offset, bias=bias, model_name=serving.model_name
    )
    slo = FAST_SLO.model_copy(update={"p99_latency_ms": 250.0})
    state = deploy_flow(
        DeployParameters(
            model_name=serving.model_name,
            version=candidate.version,
            # A long shadow step: enough records for the prediction comparison before any client
            # could see the challenger.
            plan=[RolloutStep(traffic=0, shadow=True, hold_s=5.0), *plan("50", "100")],
            slo=slo,
            faults=fault,
        ),
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(RolloutError) as raised:
        state.result()
    assert all(breach in str(raised.value) for breach in breaches), raised.value
    assert champion_version(serving) == champion
    assert live_routes(serving) == routes_before
    assert_apps_become(serving, apps_before)
    (event,) = read_events("lockgate.model.rolled_back", flow_run_id=str(state.state_details.flow_run_id))
    assert event.resource.get("lockgate.version") == candidate.version
    assert all(breach in event.payload["reason"] for breach in breaches), event.payload
    assert event.payload["step"] == "shadow"
    # The gate stopped it in shadow mode: no client ever saw the faulty version's answers.
    assert live_traffic.report.failed == 0, live_traffic.report.failures[:5]
    assert candidate.version not in live_traffic.report.versions


def test_unknown_version_and_tampered_weights_change_nothing(serving, prefect_server):
    import lakefs
    import lakefs_sdk
    import safetensors.torch

    from tests.support.serving import loans_network

    routes_before, apps_before = live_routes(serving), serve_apps(serving)
    with pytest.raises(ModelNotFoundError, match="v999"):
        deploy_flow(DeployParameters(model_name=serving.model_name, version="v999", plan=plan("100")))

    candidate = register_loans_model(
        serving.client, seed=serving.champion_seed, model_name=serving.model_name
    )
    tag = f"{serving.model_name}-{candidate.version}"
    branch = lakefs.Branch(
        "lockgate-models", f"tamper-{candidate.version}-{serving.model_name}", client=serving.client
    ).create(tag)
    path = f"models/{serving.model_name}/{candidate.version}/model.safetensors"
    branch.object(path).upload(safetensors.torch.save(loans_network(seed=77)[0].state_dict()))
    commit = branch.commit("tamper")
    serving.client.sdk_client.tags_api.create_tag(
        "lockgate-models", lakefs_sdk.TagCreation(id=tag, ref=commit.get_commit().id, force=True)
    )
    with pytest.raises(RolloutError, match="SHA-256"):
        deploy_flow(
            DeployParameters(model_name=serving.model_name, version=candidate.version, plan=plan("100"))
        )
    assert live_routes(serving) == routes_before
    assert_apps_become(serving, apps_before)
    assert httpx.get(f"{serving.url}/health").status_code == 200


def _paused_run_id(flow_name: str, timeout_s: float = 60.0):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStateName

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state={"name": FlowRunFilterStateName(any_=["Paused"])})
            )
            if runs:
                return runs[0].id
            time.sleep(0.5)
    raise AssertionError("no paused flow run appeared")


@pytest.mark.parametrize("approve", [False, True], ids=["rejected", "approved"])
def test_high_risk_models_wait_for_approval_in_the_ui(serving, prefect_server, live_traffic, approve):
    from prefect.flow_runs import resume_flow_run

    champion = champion_version(serving)
    candidate = register_loans_model(
        serving.client, seed=serving.champion_seed, risk_level="high", model_name=serving.model_name
    )
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = deploy_flow(
                DeployParameters(
                    model_name=serving.model_name,
                    version=candidate.version,
                    plan=plan("100"),
                    slo=FAST_SLO,
                    approval_poll_s=1,
                )
            )
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    flow_run_id = _paused_run_id("deploy")
    # While paused, nothing moved.
    assert champion_version(serving) == champion
    resume_flow_run(
        flow_run_id, run_input={"approve": approve, "reviewer": "ana", "reason": "checked slices"}
    )
    thread.join(120)
    assert not thread.is_alive()
    if approve:
        assert outcome["result"].outcome == "promoted"
        assert champion_version(serving) == candidate.version
    else:
        assert isinstance(outcome.get("error"), RolloutError)
        assert "rejected by ana: checked slices" in str(outcome["error"])
        assert champion_version(serving) == champion


def test_deploy_starts_the_serving_app_on_a_cluster_where_none_runs(serving, prefect_server, monkeypatch):
    """`lockgate up` on a fresh machine: no champion, no app. Deploying the first version starts the app
    on the Ray cluster with it as champion (a local Ray started by the flow would die with it)."""
    import uuid

    import ray

    from infra.settings import ServingSettings
    from serving.operations import stop_serving

    name = f"first-{uuid.uuid4().hex[:6]}"
    first = register_loans_model(serving.client, seed=5, model_name=name)
    monkeypatch.setenv("LOCKGATE_SERVING_APP_NAME", f"lockgate-{name}")
    monkeypatch.setenv("LOCKGATE_SERVING_ROUTE_PREFIX", f"/{name}")
    monkeypatch.setenv("LOCKGATE_SERVING_MODEL_NAME", name)

    # Without a cluster address the flow refuses, naming what to do, and changes nothing.
    monkeypatch.delenv("LOCKGATE_SERVING_RAY_ADDRESS", raising=False)
    with pytest.raises(RolloutError, match="LOCKGATE_SERVING_RAY_ADDRESS"):
        deploy_flow(DeployParameters(model_name=name, version=first.version))
    with pytest.raises(ModelNotFoundError):
        get_alias(name, "champion", client=serving.client)

    monkeypatch.setenv("LOCKGATE_SERVING_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    settings = ServingSettings()
    try:
        state = deploy_flow(DeployParameters(model_name=name, version=first.version), return_state=True)
        result = state.result()
        assert result.outcome == "promoted" and result.first_deployment
        assert get_alias(name, "champion", client=serving.client).version == first.version
        answer = httpx.post(f"{result.url}/predict", json=loan_records(1)[0], timeout=30)
        assert answer.status_code == 200 and answer.json()["model_version"] == first.version
        events = read_events("lockgate.model.promoted", flow_run_id=str(state.state_details.flow_run_id))
        assert events and events[0].payload["first_deployment"] is True
    finally:
        stop_serving(settings)
