"""The serving app on local Ray: predictions, the inference contract, routing, shadow mode, metrics."""

from __future__ import annotations

import math
import time
import urllib.request

import httpx
import numpy as np
import pytest

from serving.operations import TrafficController, deploy_version, retire
from serving.routing import split
from tasks.predictor import Predictor
from tests.support.serving import loan_records, loans_network, register_loans_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def champion_version(serving) -> str:
    """The version serving as champion now (other modules' rollouts may have promoted one)."""
    from tasks.registry import get_alias

    return get_alias(serving.model_name, "champion", client=serving.client).version


def wait_for_epoch(url: str, epoch: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/models").json()["epoch"] < epoch:
        assert time.monotonic() < deadline, f"the ingress did not pick up routes of epoch {epoch}"
        time.sleep(0.05)


@pytest.fixture
def challenger(serving):
    """A second version (other weights) deployed beside the champion, without traffic; removed after."""
    registered = register_loans_model(serving.client, seed=2, model_name=serving.model_name)
    route = deploy_version(serving.settings, registered.version, lakefs=serving.lakefs)
    traffic = TrafficController(serving.settings)
    champion = next(r for r in traffic.table().routes if r.role == "champion")
    yield traffic, champion, route
    epoch = traffic.set_routes(
        [split(champion, None, challenger_weight=0, shadow=False)[0]], reason="test done"
    )
    wait_for_epoch(serving.url, epoch)
    retire(route.app)


def test_predictions_match_the_offline_model_and_carry_version_and_request_id(serving):
    records = loan_records(40, seed=5)
    response = httpx.post(f"{serving.url}/predict", json=records, headers={"x-request-id": "req-match-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-match-1" == response.headers["x-request-id"]
    champion = champion_version(serving)
    assert body["model_version"] == champion
    served = np.array([p["probability"] for p in body["predictions"]])

    offline = Predictor.from_registry(serving.model_name, champion, client=serving.client).predict(records)
    np.testing.assert_allclose(served, offline, rtol=1e-6)
    # ... and the same as the network built by hand from the seed, outside lockgate's loader.
    network, spec = loans_network(seed=serving.champion_seed)
    frame_values = np.array([[r[c] for c in spec.columns] for r in records], dtype=np.float64)
    import torch

    with torch.no_grad():
        means = np.array([e.mean for e in spec.encoders])
        stds = np.array([e.std for e in spec.encoders])
        inputs = ((frame_values - means) / stds).astype(np.float32)
        expected = torch.sigmoid(network(torch.from_numpy(inputs))).squeeze(1).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    for prediction in body["predictions"]:
        assert prediction["prediction"] == int(prediction["probability"] >= 0.5)
        assert prediction["model_version"] == champion and prediction["request_id"] == "req-match-1"

    single = httpx.post(f"{serving.url}/predict", json=records[0]).json()
    assert len(single["predictions"]) == 1
    assert math.isclose(single["predictions"][0]["probability"], served[0], rel_tol=1e-6)
    wrapped = httpx.post(f"{serving.url}/predict", json={"records": records[:3]}).json()
    assert len(wrapped["predictions"]) == 3


def _post(serving, content: bytes | str, **headers) -> httpx.Response:
    return httpx.post(
        f"{serving.url}/predict", content=content, headers={"content-type": "application/json", **headers}
    )


def test_contract_violations_get_422_with_per_field_errors(serving):
    good = loan_records(1)[0]
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "age"}, "age", "missing"),
        "extra": ({**good, "nickname": "x"}, "nickname", "extra_forbidden"),
        "wrong type": ({**good, "salary": "50000"}, "salary", "float_type"),
        "bool for int": ({**good, "age": True}, "age", "int_type"),
        "out of range": ({**good, "age": 300}, "age", "less_than_equal"),
        "unknown category": ({**good, "education_level": 7}, "education_level", "value_error"),
    }
    for label, (record, field, error_type) in cases.items():
        response = httpx.post(f"{serving.url}/predict", json=[good, record])
        assert response.status_code == 422, (label, response.text)
        errors = response.json()["detail"]
        assert {"record": 1, "field": field} == {k: errors[0][k] for k in ("record", "field")}, label
        assert errors[0]["type"] == error_type, (label, errors)

    # JSON's NaN and Infinity literals parse, and the contract refuses them.
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = httpx.Request("POST", "http://x", json=good).content.decode()
        text = text.replace(f'"salary":{good["salary"]}', f'"salary":{literal}')
        response = _post(serving, text)
        assert response.status_code == 422, (literal, response.text)
        assert response.json()["detail"][0]["field"] == "salary"

    several = httpx.post(f"{serving.url}/predict", json=[{**good, "age": -1, "salary": None}]).json()[
        "detail"
    ]
    assert {error["field"] for error in several} == {"age", "salary"}


def test_malformed_empty_oversized_and_unknown_version_requests_are_refused_clearly(serving):
    assert _post(serving, "{not json").status_code == 400
    assert "malformed JSON" in _post(serving, "{not json").json()["detail"]
    assert _post(serving, b"\xff\xfe").status_code == 400
    for body in ("[]", '"text"', "42", "null"):
        response = _post(serving, body)
        assert response.status_code == 422, (body, response.text)

    huge = "[" + ",".join(['{"salary": 1}'] * 80_000) + "]"
    response = _post(serving, huge)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    too_many = loan_records(1)[0]
    response = httpx.post(f"{serving.url}/predict", json=[too_many] * 1_001)
    assert response.status_code == 413 and "1,001 records" in response.json()["detail"]

    response = httpx.post(f"{serving.url}/predict?version=v99", json=loan_records(1))
    assert response.status_code == 404
    assert "v99" in response.json()["detail"] and champion_version(serving) in response.json()["detail"]
    # Nothing above reached a model: the champion still answers.
    assert httpx.post(f"{serving.url}/predict", json=loan_records(1)).status_code == 200


def test_health_and_models_describe_the_live_versions(serving):
    health = httpx.get(f"{serving.url}/health")
    assert health.status_code == 200 and health.json()["ready"] is True
    champion = champion_version(serving)
    assert health.json()["versions"][champion]["model"]["weights_sha256"]
    models = httpx.get(f"{serving.url}/models").json()
    (live,) = models["live"]
    assert (live["version"], live["role"], live["weight"]) == (champion, "champion", 1.0)
    assert live["status"]["state"] == "ready"
    assert models["inference_log"]["dropped"] == 0


def test_weighted_split_follows_weights_and_keys_are_sticky(serving, challenger):
    traffic, champion, route = challenger
    routes = split(champion, route, challenger_weight=0.3, shadow=False)
    wait_for_epoch(serving.url, traffic.set_routes(routes, reason="test split"))

    record = loan_records(1)
    with httpx.Client() as client:
        versions = [
            client.post(f"{serving.url}/predict", json=record).json()["model_version"] for _ in range(500)
        ]
        share = versions.count(route.version) / len(versions)
        # Binomial(500, 0.3): standard deviation 0.02; 4 of them is a 1-in-15,000 false alarm.
        assert abs(share - 0.3) < 0.08, share

        for key in ("customer-1", "customer-2", "customer-3", "customer-4"):
            answers = {
                client.post(f"{serving.url}/predict", json=record, headers={"x-lockgate-key": key}).json()[
                    "model_version"
                ]
                for _ in range(15)
            }
            assert len(answers) == 1, (key, answers)
        pinned = client.post(f"{serving.url}/predict?version={route.version}", json=record).json()
        assert pinned["model_version"] == route.version

    # Weights change at run time, without a restart.
    wait_for_epoch(
        serving.url,
        traffic.set_routes(
            split(champion, route, challenger_weight=1.0, shadow=False), reason="all to challenger"
        ),
    )
    assert {httpx.post(f"{serving.url}/predict", json=record).json()["model_version"] for _ in range(20)} == {
        route.version
    }


def test_shadow_mode_answers_from_the_champion_and_logs_the_challenger(serving, challenger):
    from serving.inference_log import read_inference_log

    traffic, champion, route = challenger
    epoch = traffic.set_routes(split(champion, route, challenger_weight=0, shadow=True), reason="test shadow")
    wait_for_epoch(serving.url, epoch)
    ids = [f"shadow-{i}" for i in range(30)]
    for request_id in ids:
        body = httpx.post(
            f"{serving.url}/predict", json=loan_records(1), headers={"x-request-id": request_id}
        ).json()
        assert body["model_version"] == champion.version

    deadline = time.monotonic() + 20
    while True:
        window = traffic.window(epoch)
        logged = read_inference_log(serving.client, repository=serving.settings.inference_repository)
        shadow_rows = logged[logged["request_id"].isin(ids) & logged["shadow"]]
        if len(shadow_rows) == len(ids) and window.get(route.version, {}).get("requests", 0) >= len(ids):
            break
        assert time.monotonic() < deadline, (len(shadow_rows), window)
        time.sleep(0.3)
    assert set(shadow_rows["model_version"]) == {route.version}
    answered = logged[logged["request_id"].isin(ids) & ~logged["shadow"]]
    assert set(answered["model_version"]) == {champion.version} and len(answered) == len(ids)
    # The shadow answers differ from the champion's (other weights), and both were recorded per request.
    merged = answered.merge(shadow_rows, on="request_id", suffixes=("_champion", "_shadow"))
    assert len(merged) == len(ids)
    assert (merged["probability_champion"] != merged["probability_shadow"]).any()


def test_lockgate_metrics_reach_rays_prometheus_export(serving):
    for _ in range(5):
        httpx.post(f"{serving.url}/predict", json=loan_records(1))
    url = f"http://127.0.0.1:{serving.settings.metrics_export_port}/metrics"
    deadline = time.monotonic() + 60
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            text = ""
        lines = [line for line in text.splitlines() if line.startswith("ray_lockgate_requests_total{")]
        champion = champion_version(serving)
        if any(f'model_version="{champion}"' in line and 'outcome="ok"' in line for line in lines):
            break
        assert time.monotonic() < deadline, "lockgate_requests_total never appeared on " + url
        time.sleep(1)
    assert "ray_lockgate_request_latency_ms_bucket" in text
