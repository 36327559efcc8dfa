"""Deployment triggers through a real Prefect server: events from the monitor, from a real lakeFS merge
(through the webhook relay) and from a signed external webhook start ``retrain_flow``; a storm of
events retrains once. The storm test executes the runs with the real ``lockgate worker``."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from flows import loop
from flows.deployments import build_deployments
from infra.settings import AutomationSettings
from tests.support.asgi import RelayClient, serve_on_port

pytestmark = [pytest.mark.integration]
RUN_TIMEOUT_S = 60.0
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def environment(lakefs_environment, prefect_server) -> dict[str, str]:
    """The session's lakeFS (as LOCKGATE_LAKEFS_*) and Prefect test server."""
    return lakefs_environment


def apply_retrain(settings: AutomationSettings) -> str:
    """Register the retrain deployment (with its triggers) on the server; return its ID."""
    (retrain,) = [d for d in build_deployments(settings) if d.flow_name == "retrain"]
    return str(retrain.apply())


def wait_for_runs(deployment_id: str, count: int = 1, *, timeout: float = RUN_TIMEOUT_S) -> list[Any]:
    """The flow runs an automation created for ``deployment_id`` (at least ``count``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)]))
            )
            if len(runs) >= count or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)


def unique_model() -> str:
    return f"auto-{uuid.uuid4().hex[:8]}"


def test_a_drift_event_starts_retrain_with_its_evidence(environment) -> None:
    from prefect.events import emit_event

    model = unique_model()
    deployment_id = apply_retrain(
        AutomationSettings(dataset="loans", model_name=model, retrain_on_merge=False)
    )
    time.sleep(1.0)
    event = emit_event(
        event="lockgate.drift.detected",
        resource={"prefect.resource.id": f"lockgate.model.{model}", "lockgate.model": model},
        payload={"drifted_features": {"salary": {"p_value": 0.001}, "age": {"p_value": 0.01}}},
    )
    (run,) = wait_for_runs(deployment_id)
    parameters = run.parameters["parameters"]
    assert parameters["trigger"] == "drift" and parameters["model_name"] == model
    assert parameters["trigger_event"] == str(event.id)
    assert parameters["reason"] == "drift in salary, age"
    # Another model's drift does not start this deployment.
    emit_event(
        event="lockgate.drift.detected",
        resource={"prefect.resource.id": "lockgate.model.other", "lockgate.model": "other"},
    )
    time.sleep(3)
    assert len(wait_for_runs(deployment_id, timeout=0)) == 1


def test_a_signed_external_webhook_starts_retrain(environment, tmp_path) -> None:
    from infra.settings import RelaySettings
    from serving.webhook_relay import create_app, sign

    model = unique_model()
    deployment_id = apply_retrain(
        AutomationSettings(dataset="loans", model_name=model, retrain_on_merge=False)
    )
    secret = secrets.token_hex(16)
    body = json.dumps({"reason": "quarterly audit"}).encode()
    app = create_app(RelaySettings(secret=secret, state_dir=tmp_path / "relay"))

    unsigned = RelayClient(app).post("/hooks/events/retrain", content=body, headers=JSON)
    assert unsigned.status_code == 401
    time.sleep(2)
    assert wait_for_runs(deployment_id, timeout=0) == []

    response = RelayClient(app).post(
        "/hooks/events/retrain",
        content=body,
        headers={**JSON, **sign(secret, body, path="/hooks/events/retrain")},
    )
    assert response.status_code == 202, response.text
    (run,) = wait_for_runs(deployment_id)
    assert run.parameters["parameters"]["trigger"] == "external"
    assert run.parameters["parameters"]["reason"] == "external webhook: quarterly audit"


def test_a_real_lakefs_merge_starts_retrain_through_the_relay(
    environment, repo, tmp_path, relay_token, lakefs_client
) -> None:
    from infra.settings import RelaySettings
    from serving.webhook_relay import create_app

    model = unique_model()
    deployment_id = apply_retrain(
        AutomationSettings(dataset="loans", model_name=model, data_repository=repo.id)
    )
    app = create_app(
        RelaySettings(secret=secrets.token_hex(16), lakefs_token=relay_token, state_dir=tmp_path / "relay"),
        lakefs_client_factory=lambda: lakefs_client,
    )
    with serve_on_port(app, name="webhook-relay") as url:
        main = repo.branch("main")
        action = (
            "name: tell lockgate\non:\n  post-merge:\n    branches: [main]\nhooks:\n  - id: relay\n"
            f"    type: webhook\n    properties:\n      url: {url}/hooks/lakefs\n"
            '      headers:\n        Authorization: "Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}"\n'
        )
        main.object("_lakefs_actions/relay.yaml").upload(action, pre_sign=False)
        main.commit(message="install the relay action")
        feature = repo.branch("new-batch").create(main)
        feature.object("notes/readme.txt").upload("new batch", pre_sign=False)
        feature.commit(message="a new batch")
        merge_commit = feature.merge_into(main)

        (run,) = wait_for_runs(deployment_id)
        parameters = run.parameters["parameters"]
        assert parameters["trigger"] == "dataset-merged"
        assert parameters["reason"] == f"new data at {merge_commit}"


@pytest.mark.slow
def test_a_trigger_storm_retrains_once(environment, lakefs_client, tmp_path: Path) -> None:
    """Five drift events at once, executed by the real worker: one retrain, the rest cancelled by the
    deployment's concurrency limit or skipped by the cool-down."""
    import prefect.settings
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event

    from flows.ingest import IngestParameters, ingest_flow
    from tasks import registry
    from tasks.generate import GeneratorConfig, write_batch

    source = tmp_path / "loans.parquet"
    # Labelled by Agrawal function 1, as the batch test_train_flow trains on next in lockgate-loans: the
    # session's main then holds one labelling rule, and that test's holdout AUC measures the model.
    config = GeneratorConfig(rows=4_000, seed=515, function=1, first_id=515_000_000)
    write_batch(config, str(source), chunk_rows=4_000)
    ingest_flow(IngestParameters(source=str(source), dataset="loans"))

    model = unique_model()
    worker = loop.start_worker(
        {
            **environment,
            "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
            "LOCKGATE_AUTOMATION_DATASET": "loans",
            "LOCKGATE_AUTOMATION_MODEL_NAME": model,
            "LOCKGATE_AUTOMATION_RETRAIN_ON_MERGE": "false",
            "LOCKGATE_AUTOMATION_TRAIN_EPOCHS": "1",
            "LOCKGATE_AUTOMATION_RETRAIN_COOLDOWN_S": "600",
            "LOCKGATE_AUTOMATION_MONITOR_INTERVAL_S": "3600",
            "LOCKGATE_DASK_N_WORKERS": "1",
        },
        tmp_path / "worker.log",
    )
    try:
        deployment_id = loop.wait_for_deployment(f"retrain/{model}", worker)
        time.sleep(1.0)
        for _ in range(5):
            emit_event(
                event="lockgate.drift.detected",
                resource={"prefect.resource.id": f"lockgate.model.{model}", "lockgate.model": model},
                payload={"drifted_features": {"salary": {}}},
            )
        runs = wait_for_runs(deployment_id, count=5)
        assert len(runs) == 5
        deadline = time.monotonic() + 240
        with get_client(sync_client=True) as client:
            while True:
                runs = [client.read_flow_run(run.id) for run in runs]
                if all(run.state.is_final() for run in runs) or time.monotonic() > deadline:
                    break
                time.sleep(1)
        states = sorted(run.state.type.value for run in runs)
        assert all(run.state.is_final() for run in runs), (
            states,
            (tmp_path / "worker.log").read_text()[-3000:],
        )
        assert set(states) <= {"COMPLETED", "CANCELLED"}, states
        decisions = [loop.decision_of(str(run.id))["decision"] for run in runs if run.state.is_completed()]
        retrained = [d for d in decisions if d != "skipped"]
        assert len(retrained) == 1, (states, decisions)
        versions = registry.list_models(client=lakefs_client)
        assert [row.version for row in versions if row.model_name == model] == ["v1"]
    finally:
        worker.stop()
