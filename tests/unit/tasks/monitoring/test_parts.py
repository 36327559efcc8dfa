"""The parts of monitoring on their own: service levels (log and metrics), quality from labels, the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contracts.slo import SLOThresholds
from tasks import monitoring
from tasks.feedback import LabelError, check_labels

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def log_frame(rows: list[dict]) -> pd.DataFrame:
    """Inference-log rows with defaults for what a test does not care about."""
    defaults = {
        "request_id": None,
        "record_index": 0,
        "time": START,
        "model_name": "m",
        "model_version": "v1",
        "role": "champion",
        "shadow": False,
        "status": "ok",
        "latency_ms": 10.0,
        "prediction": 1,
        "probability": 0.7,
        "salary": 50_000.0,
    }
    return pd.DataFrame([{**defaults, "request_id": f"r{i}", **row} for i, row in enumerate(rows)])


def test_current_features_keep_answered_records_and_the_champions_probabilities() -> None:
    rows = log_frame(
        [
            {"salary": 1.0},
            {"salary": 2.0, "model_version": "v2", "role": "challenger", "probability": 0.1},
            {"salary": 3.0, "shadow": True},
            {"salary": 4.0, "status": "error", "probability": None},
            {"salary": 5.0, "model_name": "other"},
        ]
    )
    current = monitoring.current_features(rows, model_name="m", champion_version="v1", features=["salary"])
    assert current["salary"].tolist() == [1.0, 2.0]
    # Logs from before scores were logged: the binary score is the probability.
    assert current["score"].iloc[0] == pytest.approx(0.7) and np.isnan(current["score"].iloc[1])


def test_current_features_of_nothing_is_an_empty_frame_with_the_columns() -> None:
    current = monitoring.current_features(
        pd.DataFrame(), model_name="m", champion_version="v1", features=["a"]
    )
    assert current.empty and list(current.columns) == ["a", "score"]


def test_slo_figures_per_version_and_their_breaches() -> None:
    slow = [{"latency_ms": 900.0, "time": START + timedelta(seconds=i)} for i in range(60)]
    failing = [
        {"model_version": "v2", "status": "error" if i < 6 else "ok", "time": START + timedelta(seconds=i)}
        for i in range(60)
    ]
    shadow = [{"model_version": "v3", "shadow": True, "status": "error"} for _ in range(80)]
    figures = monitoring.slo_figures(
        log_frame(slow + failing + shadow),
        model_name="m",
        slo=SLOThresholds(p99_latency_ms=500, max_error_rate=0.05, min_requests=50),
    )
    by_version = {row["version"]: row for row in figures}
    assert set(by_version) == {"v1", "v2"}  # shadow copies answer no client
    assert (
        by_version["v1"]["status"] == "breached" and "p99 latency 900.0 ms" in by_version["v1"]["breaches"][0]
    )
    assert by_version["v2"]["error_rate"] == pytest.approx(0.1) and by_version["v2"]["status"] == "breached"
    assert by_version["v1"]["throughput_rps"] == pytest.approx(60 / 59, rel=1e-3)


def test_slo_figures_of_a_few_requests_are_insufficient_data() -> None:
    (row,) = monitoring.slo_figures(
        log_frame([{"latency_ms": 5_000.0}] * 3), model_name="m", slo=SLOThresholds(min_requests=50)
    )
    assert row["status"] == "insufficient data" and row["breaches"] == []


def test_label_quality_joins_by_request_and_flags_a_drop() -> None:
    rng = np.random.default_rng(0)
    outcome = rng.integers(0, 2, 400)
    logged = log_frame([{"probability": float(1 - o)} for o in outcome])  # always wrong
    labels = pd.DataFrame({"request_id": logged["request_id"], "record_index": 0, "outcome": outcome})
    labels = pd.concat(
        [labels, pd.DataFrame({"request_id": ["nobody"], "record_index": [0], "outcome": [1]})]
    )
    quality = monitoring.label_quality(
        labels, logged, model_name="m", reference_metrics={"roc_auc": 0.9}, max_drop=0.05, min_labels=100
    )
    assert quality["matched"] == 400 and quality["unmatched"] == 1
    (version,) = quality["versions"]
    assert version["roc_auc"] == pytest.approx(0.0) and version["status"] == "degraded"
    assert quality["status"] == "degraded" and quality["degraded"]


def test_label_quality_without_enough_labels_does_not_judge() -> None:
    logged = log_frame([{}] * 10)
    labels = pd.DataFrame({"request_id": logged["request_id"], "record_index": 0, "outcome": [0, 1] * 5})
    quality = monitoring.label_quality(
        labels, logged, model_name="m", reference_metrics={"roc_auc": 0.9}, max_drop=0.05, min_labels=100
    )
    assert quality["versions"][0]["status"] == "insufficient data" and not quality["degraded"]
    empty = monitoring.label_quality(
        pd.DataFrame(), logged, model_name="m", reference_metrics=None, max_drop=0.05, min_labels=1
    )
    assert empty["status"] == "no labels"


def test_the_report_escapes_what_it_shows() -> None:
    page = monitoring.render_report(
        title="<script>alert(1)</script>",
        summary={"status": "drift", "model": "<b>m</b>"},
        tests=[{"check": "<img src=x onerror=alert(1)>", "result": "DRIFT"}],
        slo=[],
        quality={"status": "no labels"},
        plots={"salary": b"\x89PNG"},
    )
    assert "<script>" not in page and "<img src=x" not in page
    assert 'class="alarm"' in page and "data:image/png;base64," in page


def test_feature_plots_are_pngs_for_numbers_and_codes() -> None:
    reference = pd.DataFrame({"salary": np.linspace(0, 1, 100), "zipcode": [1, 2] * 50, "score": 0.5})
    current = pd.DataFrame({"salary": np.linspace(0.5, 1.5, 50), "zipcode": [2, 3] * 25, "score": np.nan})
    plots = monitoring.feature_plots(reference, current, numeric=["salary"], categorical=["zipcode"])
    assert set(plots) == {"salary", "zipcode", "score"}
    assert all(png.startswith(b"\x89PNG") for png in plots.values())


def test_labels_get_defaults_and_utc_times() -> None:
    labels = check_labels(
        pd.DataFrame(
            {"request_id": ["a", "b"], "outcome": [1, 0], "observed_at": ["2026-11-27T09:00:00+01:00"] * 2}
        ),
    )
    assert labels["record_index"].tolist() == [0, 0]
    assert labels["observed_at"].iloc[0] == pd.Timestamp("2026-11-27 08:00:00")


def test_labels_with_a_missing_request_id_are_refused() -> None:
    with pytest.raises(LabelError, match="request_id"):
        check_labels(pd.DataFrame({"request_id": ["a", None], "outcome": [1, 0]}))


def test_histogram_quantile_matches_promql_interpolation() -> None:
    # 100 observations: 50 in (0, 10], 40 in (10, 20], 10 in (20, 40]
    buckets = {"10.0": 50, "20.0": 90, "40.0": 100, "+Inf": 100}
    assert monitoring.histogram_quantile(0.5, buckets) == pytest.approx(10.0)
    assert monitoring.histogram_quantile(0.7, buckets) == pytest.approx(15.0)
    assert monitoring.histogram_quantile(0.99, buckets) == pytest.approx(38.0)
    # Beyond the largest finite bound: that bound, as PromQL answers.
    assert monitoring.histogram_quantile(0.99, {"10.0": 10, "+Inf": 100}) == pytest.approx(10.0)
    assert monitoring.histogram_quantile(0.99, {"10.0": 0, "+Inf": 0}) is None


def _snapshot(at: datetime, ok: float, error: float, buckets: dict) -> dict:
    return {
        "at": at.isoformat(),
        "versions": {"v1": {"ok": ok, "error": error, "buckets": buckets, "count": 0}},
    }


def test_slo_from_metrics_judges_the_change_since_the_last_snapshot() -> None:
    before = _snapshot(START, 1_000, 0, {"50.0": 1_000, "1000.0": 1_000, "+Inf": 1_000})
    after = _snapshot(
        START + timedelta(seconds=100), 1_090, 10, {"50.0": 1_050, "1000.0": 1_100, "+Inf": 1_100}
    )
    (row,) = monitoring.slo_from_metrics(
        before, after, slo=SLOThresholds(p99_latency_ms=500, max_error_rate=0.05, min_requests=50)
    )
    assert row["requests"] == 100 and row["error_rate"] == pytest.approx(0.1)
    assert row["throughput_rps"] == pytest.approx(1.0) and row["source"] == "serving metrics"
    assert row["p99_latency_ms"] == pytest.approx(50 + 950 * 0.98)
    assert row["status"] == "breached" and len(row["breaches"]) == 2


def test_slo_from_metrics_after_a_restart_and_on_the_first_run() -> None:
    before = _snapshot(START, 5_000, 0, {"50.0": 5_000, "+Inf": 5_000})
    restarted = _snapshot(START + timedelta(seconds=10), 80, 0, {"50.0": 80, "+Inf": 80})
    (row,) = monitoring.slo_from_metrics(before, restarted, slo=SLOThresholds(min_requests=50))
    assert row["requests"] == 80 and row["status"] == "ok"
    (first,) = monitoring.slo_from_metrics(None, restarted, slo=SLOThresholds(min_requests=50))
    assert first["requests"] == 80 and first["throughput_rps"] is None


def test_scrape_reads_a_real_prometheus_endpoint_and_leaves_shadow_copies_out() -> None:
    import socket

    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

    registry = CollectorRegistry()
    requests = Counter(
        "ray_lockgate_requests",
        "answered",
        ["model_name", "model_version", "role", "outcome"],
        registry=registry,
    )
    latency = Histogram(
        "ray_lockgate_request_latency_ms",
        "latency",
        ["model_name", "model_version", "role"],
        buckets=(10.0, 100.0),
        registry=registry,
    )
    for _ in range(30):
        requests.labels("m", "v1", "champion", "ok").inc()
        latency.labels("m", "v1", "champion").observe(5.0)
    requests.labels("m", "v1", "champion", "error").inc(3)
    requests.labels("m", "v2", "shadow", "ok").inc(30)
    requests.labels("other", "v1", "champion", "ok").inc(99)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        snapshot = monitoring.scrape_serving_metrics([f"http://127.0.0.1:{port}/metrics"], model_name="m")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert set(snapshot["versions"]) == {"v1"}
    assert snapshot["versions"]["v1"]["ok"] == 30 and snapshot["versions"]["v1"]["error"] == 3
    assert snapshot["versions"]["v1"]["buckets"]["10.0"] == 30
    with pytest.raises(OSError, match="unreachable"):
        monitoring.scrape_serving_metrics([f"http://127.0.0.1:{port}/metrics"], model_name="m", timeout_s=1)
