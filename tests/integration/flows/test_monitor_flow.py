"""monitor_flow against the embedded lakeFS and a real Prefect server: rows are written by the serving
app's own inference-log sink, the reference is the champion's stored sample, events are read back."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime

import lakefs
import pandas as pd
import pytest

from contracts.loans import FEATURE_COLUMNS
from infra.naming import INFERENCE_REPOSITORY
from tasks import registry
from tasks.generate import GeneratorConfig, generate_frame
from tasks.monitoring import inference_head
from tests.support.prefect import read_artifacts, read_events
from tests.support.serving import loans_probabilities, register_monitored_model

pytestmark = [pytest.mark.integration]


@pytest.fixture
def environment(lakefs_environment, prefect_server) -> None:
    """Flows build their lakeFS clients from LOCKGATE_LAKEFS_*; Prefect is the session's test server."""


@pytest.fixture
def champion(environment, lakefs_client, tmp_path) -> str:
    """A fresh model name whose v1 is champion and carries a reference sample."""
    name = f"mon-{uuid.uuid4().hex[:8]}"
    version = register_monitored_model(lakefs_client, tmp_path, model_name=name).version
    registry.set_alias(name, "champion", version, client=lakefs_client)
    return name


def log_traffic(
    client,
    model_name: str,
    frame: pd.DataFrame,
    *,
    status: str = "ok",
    latency_ms: float = 12.0,
    request_ids: list[str] | None = None,
    repository: str = INFERENCE_REPOSITORY,
) -> list[str]:
    """Log one single-record request per row through the serving app's lakeFS sink; return the IDs."""
    from serving.inference_log import LakeFSInferenceSink, log_rows

    probabilities = loans_probabilities(frame)
    records = frame[list(FEATURE_COLUMNS)].to_dict("records")
    ids = request_ids or [uuid.uuid4().hex for _ in records]
    rows = []
    for request_id, record, probability in zip(ids, records, probabilities, strict=True):
        rows += log_rows(
            request_id=request_id,
            records=[record],
            model_name=model_name,
            model_version="v1",
            role="champion",
            shadow=False,
            latency_ms=latency_ms,
            probabilities=None if status != "ok" else [float(probability)],
            status=status,
        )
    LakeFSInferenceSink(lambda: client, repository=repository)(pd.DataFrame(rows))
    return ids


def run_monitor(name: str, **options):
    from flows.monitor import MonitorParameters, monitor_flow

    state = monitor_flow(MonitorParameters(model_name=name, **options), return_state=True)
    return state.result(), str(state.state_details.flow_run_id)


def read_object(client, repository: str, commit: str, path: str) -> bytes:
    with lakefs.Reference(repository, commit, client=client).object(path).reader(mode="rb") as reader:
        return reader.read()


def test_no_champion_and_no_new_rows_are_no_op_reports(environment, champion, lakefs_client) -> None:
    summary, _ = run_monitor(f"never-{uuid.uuid4().hex[:6]}")
    assert summary.status == "no data" and "no champion" in summary.reason
    summary, flow_run_id = run_monitor(champion)
    assert summary.status == "no data"
    assert read_events("lockgate.drift.detected", flow_run_id=flow_run_id, timeout=2) == []
    assert any(a.key == f"monitor-{champion}-summary" for a in read_artifacts(flow_run_id))


def test_unshifted_traffic_is_ok_and_reported_once(environment, champion, lakefs_client) -> None:
    log_traffic(lakefs_client, champion, generate_frame(GeneratorConfig(rows=1_200, seed=71)))
    summary, flow_run_id = run_monitor(champion)
    assert summary.status == "ok", summary
    assert summary.records == 1_200 and summary.drifted_features == ()
    assert read_events("lockgate.drift.detected", flow_run_id=flow_run_id, timeout=3) == []

    # The report is in lakeFS with a plot per feature, and linked from the run's artifacts.
    _, commit, path = summary.report.removeprefix("lakefs://").split("/", 2)
    page = read_object(lakefs_client, "lockgate-monitoring", commit, path).decode()
    assert page.count("<img") == len(FEATURE_COLUMNS) + 1 and "salary" in page
    stored = json.loads(
        read_object(lakefs_client, "lockgate-monitoring", commit, path.replace("report.html", "summary.json"))
    )
    assert stored["status"] == "ok" and stored["to_commit"] == summary.to_commit
    keys = {a.key for a in read_artifacts(flow_run_id)}
    assert {f"monitor-{champion}-summary", f"monitor-{champion}-tests", f"monitor-{champion}-report"} <= keys

    # Nothing new since: the cursor moved, so the next run reads nothing of this model.
    again, _ = run_monitor(champion)
    assert again.status == "no data"


def test_a_non_default_inference_repository_is_monitored(
    environment, champion, lakefs_client, monkeypatch
) -> None:
    # Regression: the serving app wrote where LOCKGATE_SERVING_INFERENCE_REPOSITORY said, the monitor read
    # lockgate-inference whatever it said, and so saw nothing.
    repository = f"infer-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("LOCKGATE_SERVING_INFERENCE_REPOSITORY", repository)
    log_traffic(
        lakefs_client, champion, generate_frame(GeneratorConfig(rows=600, seed=75)), repository=repository
    )
    summary, _ = run_monitor(champion)
    assert summary.status == "ok" and summary.records == 600, summary
    assert summary.to_commit == inference_head(lakefs_client, repository=repository)


def test_shifted_traffic_emits_drift_with_evidence(environment, champion, lakefs_client) -> None:
    shifted = generate_frame(GeneratorConfig(rows=1_200, seed=72, covariate_shift=0.6))
    log_traffic(lakefs_client, champion, shifted)
    summary, flow_run_id = run_monitor(champion)
    assert summary.status == "drift"
    assert "salary" in summary.drifted_features
    events = read_events("lockgate.drift.detected", flow_run_id=flow_run_id)
    assert len(events) == 1
    event = events[0]
    assert event.resource["lockgate.model"] == champion and event.resource["lockgate.version"] == "v1"
    assert "salary" in event.payload["drifted_features"]
    assert event.payload["drifted_features"]["salary"]["p_value"] < 0.05
    assert event.payload["report"] == summary.report


def test_tiny_windows_are_insufficient_data_and_kept_for_the_next_run(
    environment, champion, lakefs_client
) -> None:
    # A strongly shifted but tiny window: no alarm, and its rows count again next time.
    log_traffic(
        lakefs_client, champion, generate_frame(GeneratorConfig(rows=40, seed=73, covariate_shift=1.0))
    )
    summary, flow_run_id = run_monitor(champion)
    assert summary.status == "insufficient data" and summary.records == 40
    assert read_events("lockgate.drift.detected", flow_run_id=flow_run_id, timeout=3) == []
    log_traffic(
        lakefs_client, champion, generate_frame(GeneratorConfig(rows=400, seed=74, covariate_shift=1.0))
    )
    summary, _ = run_monitor(champion)
    assert summary.records == 440 and summary.status == "drift"


def test_failing_and_slow_requests_breach_the_slo(environment, champion, lakefs_client) -> None:
    log_traffic(lakefs_client, champion, generate_frame(GeneratorConfig(rows=300, seed=75)), latency_ms=900.0)
    log_traffic(lakefs_client, champion, generate_frame(GeneratorConfig(rows=30, seed=76)), status="error")
    summary, flow_run_id = run_monitor(champion)
    assert summary.status == "breached", summary
    events = read_events("lockgate.slo.breached", flow_run_id=flow_run_id)
    assert len(events) == 1
    (figures,) = events[0].payload["slo"]
    assert figures["requests"] == 330 and figures["error_rate"] == pytest.approx(30 / 330, abs=1e-4)
    assert any("p99 latency" in b for b in figures["breaches"])
    assert any("error rate" in b for b in figures["breaches"])


def test_labels_measure_live_quality(environment, champion, lakefs_client) -> None:
    from tasks.feedback import ingest_labels

    frame = generate_frame(GeneratorConfig(rows=600, seed=77))
    ids = log_traffic(lakefs_client, champion, frame)
    run_monitor(champion)  # the traffic window, without labels yet
    # Outcomes opposite to the model's answers: its live quality has collapsed.
    answers = (loans_probabilities(frame) >= 0.5).astype(int)
    labels = pd.DataFrame({"request_id": ids, "outcome": 1 - answers, "observed_at": datetime.now(UTC)})
    batch = ingest_labels(labels, client=lakefs_client, repository=INFERENCE_REPOSITORY, source="test")
    assert batch.rows == 600
    summary, flow_run_id = run_monitor(champion, min_labels=100)
    assert summary.quality == "degraded"
    events = read_events("lockgate.drift.detected", flow_run_id=flow_run_id)
    assert events and events[0].payload["quality"]["matched"] == 600


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"request_id": ["a"], "outcome": [2]}), "outcome"),
        (pd.DataFrame({"request_id": ["a"], "outcome": [1], "colour": ["red"]}), "unknown label column"),
        (pd.DataFrame({"outcome": [1]}), "lacks column"),
        (pd.DataFrame({"request_id": ["a", "a"], "outcome": [1, 0]}), "request_id"),
        (
            pd.DataFrame({"request_id": ["a"], "outcome": [1], "observed_at": ["yesterday-ish"]}),
            "observed_at",
        ),
        (pd.DataFrame(columns=["request_id", "outcome"]), "empty"),
    ],
)
def test_bad_label_batches_are_refused_whole(environment, lakefs_client, frame, message) -> None:
    from tasks.feedback import LabelError, ingest_labels

    before = _head(lakefs_client)
    with pytest.raises(LabelError, match=message):
        ingest_labels(frame, client=lakefs_client, repository=INFERENCE_REPOSITORY)
    assert _head(lakefs_client) == before


def _head(client) -> str | None:
    from tasks.monitoring import inference_head

    return inference_head(client, repository=INFERENCE_REPOSITORY)


def test_reference_is_read_from_the_champion(environment, champion, lakefs_client) -> None:
    payload = registry.read_artifact(champion, "champion", "reference.parquet", client=lakefs_client)
    reference = pd.read_parquet(io.BytesIO(payload))
    assert {"probability", *FEATURE_COLUMNS} <= set(reference.columns)
    with pytest.raises(Exception, match="has no artifact 'nope.parquet'"):
        registry.read_artifact(champion, "champion", "nope.parquet", client=lakefs_client)


def test_a_champion_without_a_reference_sample_gets_slos_but_no_drift_verdict(
    environment, lakefs_client
) -> None:
    from tests.support.serving import register_loans_model

    name = f"noref-{uuid.uuid4().hex[:8]}"
    version = register_loans_model(lakefs_client, seed=3, model_name=name).version  # no reference.parquet
    registry.set_alias(name, "champion", version, client=lakefs_client)
    log_traffic(lakefs_client, name, generate_frame(GeneratorConfig(rows=300, seed=78, covariate_shift=1.0)))
    summary, flow_run_id = run_monitor(name)
    assert summary.status == "drift not tested", summary
    assert any("has no artifact 'reference.parquet'" in note for note in summary.notes)
    assert summary.slo and summary.slo[0]["requests"] == 300
    assert read_events("lockgate.drift.detected", flow_run_id=flow_run_id, timeout=3) == []
