"""Serving when things go wrong: registry down at start-up, graceful shutdown with buffered logs."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.settings import LakeFSSettings, ServingSettings
from serving.inference_log import read_inference_log
from serving.operations import start_serving, stop_serving
from tasks.registry import set_alias
from tests.support.serving import loan_records, register_loans_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_registry_unreachable_at_start_up_means_not_ready_then_recovers_without_restarts(serving, tmp_path):
    from ray import serve

    from serving.app import MODEL_DEPLOYMENT

    registry_server = EmbeddedLakeFS(tmp_path / "cold-lakefs")
    registry_server.start()
    registered = register_loans_model(registry_server.client(), seed=3, model_name=serving.model_name)
    set_alias(serving.model_name, "champion", registered.version, client=registry_server.client())
    key, secret = registry_server.credentials
    lakefs = LakeFSSettings(endpoint=registry_server.endpoint, access_key_id=key, secret_access_key=secret)
    registry_server.stop()

    settings = serving.settings.model_copy(
        update={
            "app_name": "cold",
            "route_prefix": "/cold",
            "inference_logging": False,
            "model_load_wait_s": 1.0,
        }
    )
    url = start_serving(settings, lakefs=lakefs).url
    try:
        health = httpx.get(f"{url}/health")
        assert health.status_code == 503
        (status,) = health.json()["versions"].values()
        assert status["state"] == "loading" and "registry unreachable" in status["reason"]
        response = httpx.post(f"{url}/predict", json=loan_records(1))
        assert response.status_code == 503 and "not ready" in response.json()["detail"]

        handle = serve.get_deployment_handle(
            MODEL_DEPLOYMENT, app_name="cold-" + serving.model_name + "-champion"
        )
        first = handle.status.remote().result()
        deadline = time.monotonic() + 30
        while (later := handle.status.remote().result())["attempts"] <= first["attempts"]:
            assert time.monotonic() < deadline, later
            time.sleep(0.5)
        # The same replica keeps trying (a restarted one would count from 1 again): no crash loop,
        # and Serve sees a running app.
        assert later["attempts"] > first["attempts"] >= 1 and later["state"] == "loading"
        assert serve.status().applications["cold"].status == "RUNNING"

        registry_server.start()  # same port, same data: the registry is back
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, httpx.get(f"{url}/health").text
            time.sleep(0.5)
        body = httpx.post(f"{url}/predict", json=loan_records(1)).json()
        assert body["model_version"] == registered.version
    finally:
        stop_serving(settings)
        registry_server.stop()


def test_graceful_shutdown_writes_every_buffered_log_row(serving):
    repository = f"inference-{uuid.uuid4().hex[:8]}"
    settings = serving.settings.model_copy(
        update={
            "app_name": "logs",
            "route_prefix": "/logs",
            "inference_repository": repository,
            # Nothing is flushed by size or time during the test: only shutdown writes the rows.
            "log_flush_rows": 100_000,
            "log_flush_interval_s": 3_600.0,
        }
    )
    url = start_serving(settings, lakefs=serving.lakefs).url
    ids = [f"log-{i}" for i in range(120)]
    try:
        with httpx.Client() as client:
            for request_id in ids:
                response = client.post(
                    f"{url}/predict",
                    json=loan_records(2, seed=len(request_id)),
                    headers={"x-request-id": request_id},
                )
                assert response.status_code == 200
        assert httpx.get(f"{url}/models").json()["inference_log"]["pending"] == 2 * len(ids)
    finally:
        stop_serving(settings)
    logged = read_inference_log(serving.client, repository=repository)
    assert len(logged) == 2 * len(ids)
    assert sorted(set(logged["request_id"])) == sorted(ids)
    assert set(logged["record_index"]) == {0, 1}
    assert logged["latency_ms"].gt(0).all() and logged["probability"].between(0, 1).all()
    assert {"salary", "age", "loan_amount", "model_version", "time"} <= set(logged.columns)


def test_serving_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="route_prefix"):
        ServingSettings(route_prefix="no-slash")
    with pytest.raises(ValueError, match="max_batch_size"):
        ServingSettings(max_batch_size=0)
