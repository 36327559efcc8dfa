"""monitor_flow against the live serving app: SLOs read from the serving metrics (Ray's Prometheus
export), as the change since the previous monitor run."""

from __future__ import annotations

import time

import httpx
import pytest

from flows.monitor import MonitorParameters, monitor_flow
from infra.naming import INFERENCE_REPOSITORY
from tasks import monitoring
from tasks.drift import DriftConfig
from tasks.registry import get_alias
from tests.support.serving import loan_records

pytestmark = [pytest.mark.integration]


def settled_ok_count(
    url: str, model_name: str, version: str, *, at_least: float, timeout_s: float = 60
) -> float:
    """The champion's answered-request count once Ray's export shows at least ``at_least`` and has stopped
    moving (the export lags the requests by its report interval)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        versions = monitoring.scrape_serving_metrics([url], model_name=model_name)["versions"]
        count = versions.get(version, {}).get("ok", 0.0)
        if count >= at_least and count == last:
            return count
        assert time.monotonic() < deadline, (
            f"the export showed {count} answered requests, expected {at_least}"
        )
        last = count
        time.sleep(3)


def send(url: str, records: list[dict]) -> None:
    with httpx.Client(timeout=30) as client:
        for record in records:
            assert client.post(f"{url}/predict", json=record).status_code == 200


def wait_for_new_log_commit(client, since: str | None, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while monitoring.inference_head(client, repository=INFERENCE_REPOSITORY) == since:
        assert time.monotonic() < deadline, "no inference-log commit arrived"
        time.sleep(0.5)


def test_slos_come_from_the_serving_metrics_since_the_last_run(serving, prefect_server) -> None:
    metrics_url = f"http://127.0.0.1:{serving.settings.metrics_export_port}/metrics"
    version = get_alias(serving.model_name, "champion", client=serving.client).version
    # min_samples 20: these windows are judged (not held back as "insufficient data" with the cursor kept).
    parameters = MonitorParameters(
        model_name=serving.model_name,
        metrics_urls=[metrics_url],
        drift=DriftConfig(min_samples=20),
        emit_events=False,
    )

    head = monitoring.inference_head(serving.client, repository=INFERENCE_REPOSITORY)
    send(serving.url, loan_records(60, seed=31))
    settled_ok_count(metrics_url, serving.model_name, version, at_least=60)
    wait_for_new_log_commit(serving.client, head)
    first = monitor_flow(parameters)
    assert first.slo_source == "serving metrics" and first.status != "insufficient data", first
    (row,) = [r for r in first.slo if r["version"] == version]
    assert row["requests"] >= 60 and row["throughput_rps"] is None  # first run: no previous snapshot

    head = monitoring.inference_head(serving.client, repository=INFERENCE_REPOSITORY)
    before = settled_ok_count(metrics_url, serving.model_name, version, at_least=0)
    send(serving.url, loan_records(40, seed=32))
    settled_ok_count(metrics_url, serving.model_name, version, at_least=before + 40)
    wait_for_new_log_commit(serving.client, head)
    second = monitor_flow(parameters)
    (row,) = [r for r in second.slo if r["version"] == version]
    assert row["requests"] == 40 and row["error_rate"] == 0.0
    assert row["throughput_rps"] > 0 and row["p99_latency_ms"] > 0 and row["source"] == "serving metrics"


def test_unreachable_metrics_fall_back_to_the_inference_log(serving, prefect_server) -> None:
    head = monitoring.inference_head(serving.client, repository=INFERENCE_REPOSITORY)
    send(serving.url, loan_records(20, seed=33))
    wait_for_new_log_commit(serving.client, head)
    summary = monitor_flow(
        MonitorParameters(
            model_name=serving.model_name, metrics_urls=["http://127.0.0.1:9/metrics"], emit_events=False
        )
    )
    assert summary.slo_source == "inference log"
    assert any("unreachable" in note for note in summary.notes)
