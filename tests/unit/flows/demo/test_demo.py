"""``run_demo`` without the CLI: a reporter that records, the embedded lakeFS; and the worker's
environment for the closed loop (everything a child process needs, passed explicitly)."""

from __future__ import annotations

import contextlib
import json

import pytest

from flows.demo import DEMO_REPOSITORY, DEMO_STEPS, INGEST_DEMO_STEPS, DemoOptions, run_demo
from flows.demo.loop import worker_environment
from infra.clients import lakefs_settings_of
from infra.settings import ServingSettings
from tasks import events
from tasks.publishing import RecordingPublisher


class RecordingReporter:
    """Keeps what the demo would show."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, object]] = []

    def __getattr__(self, kind: str):
        return lambda *args, **kwargs: self.shown.append((kind, args[0] if args else kwargs))

    @contextlib.contextmanager
    def busy(self, text):
        self.shown.append(("busy", text))
        yield lambda _text: None

    @contextlib.contextmanager
    def steps(self, title, steps):
        done: list[str] = []
        yield done.append
        self.shown.append(("steps", (title, tuple(done))))


def test_the_versioning_part_and_the_gate(lakefs_client) -> None:
    reporter, published = RecordingReporter(), RecordingPublisher()
    result = run_demo(
        DemoOptions(train=False),
        client=lakefs_client,
        lakefs_settings=lakefs_settings_of(lakefs_client),
        publish=published,
        reporter=reporter,
    )
    assert result.verified and result.repository == DEMO_REPOSITORY
    steps = [value for kind, value in reporter.shown if kind == "steps"]
    assert steps == [("versioning round trip", DEMO_STEPS), ("contract gate", INGEST_DEMO_STEPS)]
    (_, outcomes) = next(item for item in reporter.shown if item[0] == "gate")
    assert [outcome.status for outcome in outcomes][1] == "rejected"
    assert published.events_named(events.DATASET_REJECTED)


def test_the_loop_worker_gets_every_address_and_the_demo_pace(lakefs_client) -> None:
    settings = lakefs_settings_of(lakefs_client)
    serving = ServingSettings(port=8123, model_name="loans-mlp", inference_repository="logs-x")
    env = worker_environment(
        prefect_api_url="http://127.0.0.1:4200/api",
        lakefs_settings=settings,
        serving=serving,
        ray_address="h:6379",
    )
    assert env["LOCKGATE_LAKEFS_ENDPOINT"] == settings.endpoint
    assert env["LOCKGATE_LAKEFS_SECRET_ACCESS_KEY"] == settings.secret_access_key.get_secret_value()
    assert env["LOCKGATE_SERVING_PORT"] == "8123" and env["LOCKGATE_SERVING_INFERENCE_REPOSITORY"] == "logs-x"
    assert env["LOCKGATE_SERVING_RAY_ADDRESS"] == "h:6379" and env["PREFECT_API_URL"].endswith("/api")
    assert env["LOCKGATE_AUTOMATION_RETRAIN_ON_MERGE"] == "false"
    assert json.loads(env["LOCKGATE_AUTOMATION_ROLLOUT_SLO"])["min_requests"] == 20
    assert all(isinstance(value, str) for value in env.values())


def test_a_server_without_a_namespace_needs_one(lakefs_client, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.demo
    from infra.errors import InvalidInputError

    monkeypatch.setattr("tasks.versioning.default_storage_namespace", lambda *a, **k: None)
    with pytest.raises(InvalidInputError, match="--storage-namespace"):
        flows.demo.run_demo(
            DemoOptions(gate=False),
            client=lakefs_client,
            lakefs_settings=lakefs_settings_of(lakefs_client),
            publish=RecordingPublisher(),
            reporter=RecordingReporter(),
        )
