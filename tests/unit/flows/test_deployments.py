"""The deployments lockgate serves, and infra/prefect.yaml kept in step with them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.deployments import build_deployments, prefect_yaml
from infra.settings import AutomationSettings

ROOT = Path(__file__).resolve().parents[3]
EVENTS = {
    "lockgate.dataset.merged",
    "lockgate.drift.detected",
    "lockgate.external.retrain",
}


# The demo's dataset, named as a user names theirs: the deployments have no dataset of their own.
DEMO = AutomationSettings(dataset="loans")


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("LOCKGATE_AUTOMATION_") or name in ("LOCKGATE_DATASET", "LOCKGATE_MODEL_NAME"):
            monkeypatch.delenv(name)


def test_every_flow_is_deployed_with_typed_parameters() -> None:
    deployments = {f"{d.flow_name}/{d.name}": d for d in build_deployments(DEMO)}
    assert set(deployments) == {
        "ingest/loans",
        "train/loans-mlp",
        "deploy/loans-mlp",
        "monitor/loans-mlp",
        "retrain/loans-mlp",
        "retention/lockgate",
    }
    for deployment in deployments.values():
        # One pydantic model parameter per flow: the UI renders its JSON schema as a form.
        schema = deployment._parameter_openapi_schema.model_dump()
        assert list(schema["properties"]) == ["parameters"], deployment.name
        assert schema["definitions"], deployment.name
    assert deployments["monitor/loans-mlp"].schedules[0].schedule.interval.total_seconds() == 300
    assert deployments["retrain/loans-mlp"].concurrency_limit == 1
    assert deployments["retention/lockgate"].schedules[0].schedule.cron == "17 2 * * *"
    assert deployments["retention/lockgate"].concurrency_limit == 1


def test_retrain_triggers_cover_drift_merges_and_webhooks() -> None:
    (retrain,) = [d for d in build_deployments(DEMO) if d.flow_name == "retrain"]
    by_event = {next(iter(t.expect)): t for t in retrain.triggers}
    assert set(by_event) == EVENTS
    assert by_event["lockgate.drift.detected"].match.model_dump()["lockgate.model"] == "loans-mlp"
    merged = by_event["lockgate.dataset.merged"].match.model_dump()
    assert merged["lakefs.repository"] == "lockgate-loans" and merged["lakefs.branch"] == "main"
    for event, trigger in by_event.items():
        parameters = trigger.parameters["parameters"]
        assert parameters["model_name"] == "loans-mlp" and parameters["cooldown_s"] == 600, event
    # Triggers pass parameters the flow accepts (rendered values aside).
    from flows.retrain import RetrainParameters

    for trigger in retrain.triggers:
        RetrainParameters(**trigger.parameters["parameters"])


def test_retrain_on_merge_can_be_switched_off() -> None:
    (retrain,) = [
        d
        for d in build_deployments(AutomationSettings(dataset="loans", retrain_on_merge=False))
        if d.flow_name == "retrain"
    ]
    assert "lockgate.dataset.merged" not in {next(iter(t.expect)) for t in retrain.triggers}


def test_the_deployments_serve_the_dataset_and_model_of_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="LOCKGATE_DATASET"):
        build_deployments()
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    names = {f"{d.flow_name}/{d.name}" for d in build_deployments()}
    assert names == {
        "ingest/penguins",
        *(f"{flow}/penguins-mlp" for flow in ("train", "deploy", "monitor", "retrain")),
        "retention/lockgate",
    }
    monkeypatch.setenv("LOCKGATE_MODEL_NAME", "penguin-net")
    monkeypatch.setenv("LOCKGATE_AUTOMATION_DATASET", "diabetes")  # the automation's own variable wins
    (retrain,) = [d for d in build_deployments() if d.flow_name == "retrain"]
    assert retrain.name == "penguin-net" and retrain.parameters["parameters"]["dataset"] == "diabetes"


def test_infra_prefect_yaml_matches_the_code() -> None:
    committed = (ROOT / "infra" / "prefect.yaml").read_text()
    assert committed == prefect_yaml(DEMO), (
        "regenerate: LOCKGATE_DATASET=loans python -m flows.deployments --prefect-yaml > infra/prefect.yaml"
    )
    document = yaml.safe_load(committed)
    for entry in document["deployments"]:
        path, _, function = entry["entrypoint"].partition(":")
        assert function in (ROOT / path).read_text(), entry["entrypoint"]
    retrain = next(e for e in document["deployments"] if e["entrypoint"].endswith("retrain_flow"))
    assert {t["expect"][0] for t in retrain["triggers"]} == EVENTS
    assert retrain["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
