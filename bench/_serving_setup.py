"""What the serving benches share: a temporary registry with one model, Ray, and HTTP load generators.

``registry_with_model`` starts an embedded lakeFS server in a temporary folder and registers an
untrained, seeded loans MLP as the champion of ``loans-mlp`` (the same model the serving tests use);
``closed_loop`` and ``open_loop`` send single-record requests with ``httpx.AsyncClient`` and keep one
``Sample`` per request (send time, latency, status, failure detail).

Only the driver imports this module (``bench/`` is not a package the Ray workers can import): nothing
here may end up inside a Serve deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

MODEL_NAME = "loans-mlp"
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Registry:
    """A running embedded lakeFS server holding ``model_name`` with ``version`` as its champion."""

    client: object  # lakefs.Client
    lakefs: object  # infra.settings.LakeFSSettings
    model_name: str
    version: str


@contextlib.contextmanager
def registry_with_model(*, model_name: str = MODEL_NAME, seed: int = 1) -> Iterator[Registry]:
    """Start an embedded lakeFS server, register a seeded loans MLP and make it the champion.

    The ``LOCKGATE_LAKEFS_*`` variables are set too, so processes started afterwards (Ray's workers)
    find the same server; the server and its data are removed on exit.
    """
    from tasks.registry import set_alias

    with embedded_lakefs() as (client, lakefs):
        registered = register_loans_model(client, model_name=model_name, seed=seed)
        set_alias(model_name, "champion", registered.version, client=client)
        yield Registry(client, lakefs, model_name, registered.version)


@contextlib.contextmanager
def embedded_lakefs() -> Iterator[tuple[object, object]]:
    """A temporary embedded lakeFS server: yields its client and ``LakeFSSettings``.

    The ``LOCKGATE_LAKEFS_*`` variables are set too, so flows and the processes started afterwards
    find the same server; the server and its data are removed on exit.
    """
    from infra.lakefs_server.launcher import EmbeddedLakeFS
    from infra.settings import LakeFSSettings

    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        EmbeddedLakeFS(Path(tmp) / "lakefs") as server,
    ):
        access_key_id, secret = server.credentials
        os.environ.update(
            LOCKGATE_LAKEFS_ENDPOINT=server.endpoint,
            LOCKGATE_LAKEFS_ACCESS_KEY_ID=access_key_id,
            LOCKGATE_LAKEFS_SECRET_ACCESS_KEY=secret,
        )
        yield (
            server.client(),
            LakeFSSettings(endpoint=server.endpoint, access_key_id=access_key_id, secret_access_key=secret),
        )


def register_loans_model(client, *, model_name: str, seed: int, artifacts: dict | None = None):
    """Register an untrained loans MLP (seeded weights, standardisation from generated data)."""
    import torch

    from contracts.loans import FEATURE_COLUMNS
    from tasks.generate import GeneratorConfig, generate_frame
    from tasks.models import FeatureSpec, make_mlp
    from tasks.registry import ModelLineage, register_model

    values = generate_frame(GeneratorConfig(rows=2_000, seed=123))[list(FEATURE_COLUMNS)].to_numpy(
        dtype=np.float64
    )
    spec = FeatureSpec(
        tuple(FEATURE_COLUMNS),
        tuple(float(v) for v in values.mean(axis=0)),
        tuple(float(v) if v > 0 else 1.0 for v in values.std(axis=0)),
    )
    torch.manual_seed(seed)
    network = make_mlp(len(FEATURE_COLUMNS), hidden=(16, 8))
    commit = hashlib.sha256(f"loans-{seed}".encode()).hexdigest()
    lineage = ModelLineage(
        data_repository="lockgate-loans",
        data_commit_id=commit,
        contract_report=f"lakefs://lockgate-loans/{commit}/reports/contract.json",
        training_config={"epochs": 0, "seed": seed},
        seed=seed,
        metrics={"holdout": {"roc_auc": 0.5}},
        feature_spec={**spec.to_dict(), "model": "mlp", "hidden": [16, 8], "target": "label"},
    )
    return register_model(
        model_name, state_dict=network.state_dict(), lineage=lineage, client=client, artifacts=artifacts
    )


def request_bodies(rows: int = 500, *, seed: int = 7) -> list[bytes]:
    """Single-record JSON bodies (valid loans feature records), encoded once up front."""
    from contracts.loans import FEATURE_COLUMNS
    from tasks.generate import GeneratorConfig, generate_frame

    frame = generate_frame(GeneratorConfig(rows=rows, seed=seed))[list(FEATURE_COLUMNS)]
    return [json.dumps(record).encode() for record in json.loads(frame.to_json(orient="records"))]


# --------------------------------------------------------------------------------------------------
# Load generators.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent (``time.perf_counter``), how long it took, how it ended."""

    sent: float
    latency_s: float
    status: int  # 0: no HTTP answer (connection error, client timeout)
    detail: str


@dataclass
class LoadRun:
    """The samples of one load run and its wall-clock span (``time.perf_counter``)."""

    samples: list[Sample]
    started: float
    stopped: float

    def summary(self, since: float | None = None, until: float | None = None) -> dict[str, float]:
        """Requests, errors, successful req/s and latency quantiles (ms) of samples sent in a window."""
        since = self.started if since is None else since
        until = self.stopped if until is None else until
        window = [s for s in self.samples if since <= s.sent < until]
        ok = np.array([s.latency_s for s in window if s.status == 200]) * 1000
        span = until - since
        return {
            "requests": len(window),
            "ok": len(ok),
            "errors": len(window) - len(ok),
            "throughput": len(ok) / span if span > 0 else 0.0,
            "p50_ms": float(np.percentile(ok, 50)) if len(ok) else float("nan"),
            "p99_ms": float(np.percentile(ok, 99)) if len(ok) else float("nan"),
        }

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]


async def _post(client: httpx.AsyncClient, url: str, body: bytes) -> Sample:
    sent = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers=JSON_HEADERS)
        status, detail = response.status_code, "" if response.status_code == 200 else response.text[:300]
    except httpx.HTTPError as error:
        status, detail = 0, f"{type(error).__name__}: {error}"
    return Sample(sent, time.perf_counter() - sent, status, detail)


async def closed_loop(
    url: str, bodies: Sequence[bytes], *, concurrency: int, duration_s: float, timeout_s: float = 30.0
) -> LoadRun:
    """``concurrency`` clients, each posting the next body as soon as its previous answer came back."""
    samples: list[Sample] = []
    numbers = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def client_loop() -> None:
            while time.perf_counter() < deadline:
                samples.append(await _post(client, url, bodies[next(numbers) % len(bodies)]))

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        return LoadRun(samples, started, time.perf_counter())


async def open_loop(
    url: str,
    bodies: Sequence[bytes],
    *,
    rate_per_s: float,
    duration_s: float,
    timeout_s: float = 30.0,
    max_in_flight: int = 256,
) -> LoadRun:
    """Requests sent on a fixed schedule (``rate_per_s``), whether or not earlier ones have answered.

    An open loop keeps sending while the server stalls, so a stall shows up as latency and failures
    rather than as silently fewer requests.
    """
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        requests = []
        for number in range(round(rate_per_s * duration_s)):
            delay = started + number / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            requests.append(asyncio.create_task(_post(client, url, bodies[number % len(bodies)])))
        # The run spans the schedule: late answers count, but do not stretch the window.
        return LoadRun(list(await asyncio.gather(*requests)), started, started + duration_s)


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    """Wait until lockgate's ``GET /health`` answers 200 (the model replicas loaded the weights)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(f"{url}/health", timeout=10)
            if response.status_code == 200:
                return
            reason = response.text[:300]
        except httpx.HTTPError as error:
            reason = str(error)
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not healthy after {timeout_s:g} s: {reason}")
        time.sleep(0.2)


@contextlib.contextmanager
def local_ray(settings) -> Iterator[None]:
    """A local Ray with Serve on ``settings.port`` for the run; everything shut down on exit."""
    import ray
    from ray import serve

    from serving.operations import connect_ray

    connect_ray(settings)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()
