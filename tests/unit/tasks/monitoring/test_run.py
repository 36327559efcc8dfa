"""``assess_window`` (pure) and ``run_monitor`` without Prefect: the embedded lakeFS holds the log, the
publisher records, the clock is fake. Proves the verdict, the cursor policy and the evidence."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from contracts.inference_log import log_rows
from contracts.loans import FEATURE_COLUMNS
from serving.inference_log import LakeFSInferenceSink
from tasks import events, registry
from tasks.drift import DriftConfig, DriftReport
from tasks.generate import GeneratorConfig, generate_frame
from tasks.monitoring import MonitorParameters, assess_window, inference_head, read_cursor, run_monitor
from tasks.publishing import RecordingPublisher
from tests.support.fakes import FakeClock
from tests.support.serving import loans_probabilities, register_monitored_model


def drift_report(status: str, *, drifted: bool = False) -> DriftReport:
    return (
        DriftReport(
            status=status,
            features=[],
            prediction=None,
            multivariate=None,
            outliers=None,
            reference_rows=100,
            current_rows=100,
            alpha=0.05,
            correction="benjamini-hochberg",
            notes=[],
        )
        if not drifted
        else _drifted()
    )


def _drifted() -> DriftReport:
    import numpy as np

    from tasks.drift import detect_drift

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=500)})
    current = pd.DataFrame({"x": rng.normal(loc=2.0, size=500)})
    return detect_drift(reference, current, numeric=["x"], categorical=[], config=DriftConfig())


SLO_OK = [{"version": "v1", "status": "ok", "breaches": []}]
SLO_BREACHED = [{"version": "v1", "status": "breached", "breaches": ["p99 latency 900.0 ms > 500 ms"]}]
NO_LABELS = {"status": "no labels", "degraded": False}


@pytest.mark.parametrize(
    ("drift", "slo", "quality", "status", "keep"),
    [
        ("ok", SLO_OK, NO_LABELS, "ok", False),
        ("insufficient data", SLO_OK, NO_LABELS, "insufficient data", True),
        ("insufficient data", SLO_BREACHED, NO_LABELS, "breached", False),
        ("ok", SLO_OK, {"status": "degraded", "degraded": True}, "drift", False),
        ("drift", SLO_BREACHED, NO_LABELS, "drift", False),
        (None, SLO_OK, NO_LABELS, "drift not tested", False),
    ],
)
def test_assess_window(drift, slo, quality, status, keep) -> None:
    report = None if drift is None else drift_report(drift, drifted=drift == "drift")
    verdict = assess_window(report, slo, quality)
    assert verdict.status == status and verdict.keep_window is keep
    assert verdict.drifted == (status == "drift")
    assert len(verdict.breached) == (1 if slo is SLO_BREACHED else 0)


@pytest.fixture
def champion(lakefs_client, tmp_path) -> str:
    name = f"mon-{uuid.uuid4().hex[:8]}"
    version = register_monitored_model(lakefs_client, tmp_path, model_name=name).version
    registry.set_alias(name, "champion", version, client=lakefs_client)
    return name


def log(client, repository: str, model_name: str, frame: pd.DataFrame) -> None:
    rows = []
    for record, probability in zip(
        frame[list(FEATURE_COLUMNS)].to_dict("records"), loans_probabilities(frame), strict=True
    ):
        rows += log_rows(
            request_id=uuid.uuid4().hex,
            records=[record],
            model_name=model_name,
            model_version="v1",
            role="champion",
            shadow=False,
            latency_ms=10.0,
            probabilities=[float(probability)],
        )
    LakeFSInferenceSink(lambda: client, repository=repository)(pd.DataFrame(rows))


def monitor(client, name: str, repository: str, **options):
    published, clock = RecordingPublisher(), FakeClock()
    summary = run_monitor(
        MonitorParameters(model_name=name, **options),
        client=client,
        inference_repository=repository,
        publish=published,
        clock=clock,
        run_name=f"test-{uuid.uuid4().hex[:6]}",
    )
    return summary, published


def test_drifted_traffic_is_reported_with_evidence_and_the_cursor_moves(lakefs_client, champion) -> None:
    repository = f"infer-{uuid.uuid4().hex[:8]}"
    log(
        lakefs_client,
        repository,
        champion,
        generate_frame(GeneratorConfig(rows=800, seed=5, covariate_shift=0.7)),
    )

    summary, published = monitor(lakefs_client, champion, repository)

    assert summary.status == "drift" and "salary" in summary.drifted_features and summary.records == 800
    (event,) = published.events_named(events.DRIFT_DETECTED)
    assert event.resource == events.model_resource(champion, "v1")
    assert "salary" in event.payload["drifted_features"] and event.payload["report"] == summary.report
    assert {f"monitor-{champion}-summary", f"monitor-{champion}-tests", f"monitor-{champion}-report"} <= {
        artifact.key for artifact in published.artifacts
    }
    cursor = read_cursor(lakefs_client, champion)
    assert cursor["inference_commit"] == inference_head(lakefs_client, repository=repository)

    again, published = monitor(lakefs_client, champion, repository)
    assert again.status == "no data" and not published.events


def test_too_few_rows_keep_the_cursor_and_no_events_are_published_when_asked(lakefs_client, champion) -> None:
    repository = f"infer-{uuid.uuid4().hex[:8]}"
    log(
        lakefs_client,
        repository,
        champion,
        generate_frame(GeneratorConfig(rows=30, seed=6, covariate_shift=0.9)),
    )
    summary, published = monitor(lakefs_client, champion, repository, emit_events=False)
    assert summary.status == "insufficient data" and read_cursor(lakefs_client, champion) is None
    assert published.events == []


def test_nothing_logged_and_no_champion_are_no_op_reports(lakefs_client, champion) -> None:
    summary, published = monitor(lakefs_client, champion, f"never-{uuid.uuid4().hex[:8]}")
    assert summary.status == "no data" and "nothing has been logged" in summary.reason
    assert [a.key for a in published.artifacts] == [f"monitor-{champion}-summary"]
    summary, _ = monitor(lakefs_client, f"none-{uuid.uuid4().hex[:6]}", "lockgate-inference")
    assert summary.status == "no data" and "no champion" in summary.reason


def test_partial_thresholds_fill_from_the_monitor_defaults() -> None:
    parameters = MonitorParameters(model_name="m", slo={"max_error_rate": 0.05})
    assert (parameters.slo.p99_latency_ms, parameters.slo.min_requests) == (500.0, 50)
    assert parameters.slo.max_error_rate == 0.05
    old_name = MonitorParameters(model_name="m", slo={"max_p99_latency_ms": 800})  # the old name
    assert old_name.slo.p99_latency_ms == 800
    assert MonitorParameters(model_name="m").slo.min_requests == 50
    with pytest.raises(ValueError, match="p99_latenc"):
        MonitorParameters(model_name="m", slo={"p99_latencyms": 800})  # a typo is refused, not ignored
