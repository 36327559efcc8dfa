"""Shared fixtures: real servers on loopback, started once per test session."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.processes import free_port

# The token lakeFS actions send to the webhook relay (``headers: {Authorization: "Bearer {{ ENV.X }}"}``).
ACTION_TOKEN_VARIABLE = "LAKEFSACTION_LOCKGATE_TOKEN"


@pytest.fixture(scope="session")
def relay_token() -> str:
    """The bearer token the session's lakeFS server hands its actions, and test relays expect."""
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def lakefs_server(tmp_path_factory: pytest.TempPathFactory, relay_token: str) -> Iterator[EmbeddedLakeFS]:
    """The embedded lakeFS-API server with a local block store, shared by the session."""
    server = EmbeddedLakeFS(tmp_path_factory.mktemp("lakefs-data"), env={ACTION_TOKEN_VARIABLE: relay_token})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lakefs_client(lakefs_server: EmbeddedLakeFS):
    """An official ``lakefs.Client`` for the session server."""
    return lakefs_server.client()


@pytest.fixture(scope="session")
def sdk_client(lakefs_client):
    """The generated ``lakefs_sdk`` client, for calls the high-level wrapper does not expose."""
    return lakefs_client.sdk_client


def unique_name(prefix: str = "repo") -> str:
    """A lakeFS-valid, collision-free repository name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def repo(lakefs_client):
    """A fresh repository (default branch ``main``) on the session server."""
    import lakefs

    name = unique_name()
    return lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def lakefs_environment(lakefs_server: EmbeddedLakeFS, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """LOCKGATE_LAKEFS_* pointing at the session server, for flows (and the processes they start) that
    build their clients from settings; returns the variables."""
    access_key_id, secret = lakefs_server.credentials
    values = {
        "LOCKGATE_LAKEFS_ENDPOINT": lakefs_server.endpoint,
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": access_key_id,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    """A data directory for a test that runs its own server (restart, crash, S3 tests)."""
    return tmp_path / "lakefs-data"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the session; flows, events and artifacts go there."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def dask_cluster():
    """Two worker processes, one thread each: one DDP rank per worker, shared by every suite that trains
    (starting a cluster costs seconds; tests that need their own start one)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def dask_client(dask_cluster):
    from dask.distributed import Client

    with Client(dask_cluster) as client:
        yield client
