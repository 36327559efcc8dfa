"""Fixtures and helpers for the lakeFS-API conformance suite of the embedded server.

Everything here drives the server over real HTTP, through the official ``lakefs`` / ``lakefs_sdk``
clients; raw HTTP is used only where no client can express the request (see each test).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lakefs
import lakefs_sdk
import pytest
import urllib3
from lakefs.exceptions import ServerException

from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.processes import free_port


def new_name(prefix: str = "repo") -> str:
    """A lakeFS-valid, collision-free name (usable for repositories, branches and tags)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def put(branch, path: str, data: bytes | str, **kwargs):
    """Upload through the SDK's raw-body path (no presigning) and return the object."""
    kwargs.setdefault("pre_sign", False)
    return branch.object(path).upload(data, **kwargs)


def read(ref, path: str) -> bytes:
    """Read a whole object through the SDK, without presigning."""
    with ref.object(path).reader(mode="rb", pre_sign=False) as reader:
        return reader.read()


def commit_files(branch, files: dict[str, bytes | str | None], message: str = "change", **kwargs):
    """Stage ``files`` (None deletes) on ``branch`` and commit; return the new commit ID."""
    for path, data in files.items():
        if data is None:
            branch.object(path).delete()
        else:
            put(branch, path, data)
    return branch.commit(message=message, **kwargs).get_commit().id


def call_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str, Any]:
    """Call ``fn`` expecting an API error; return (HTTP status, message from the JSON body, exception)."""
    try:
        fn(*args, **kwargs)
    except lakefs_sdk.ApiException as error:
        body = error.body
        if isinstance(body, bytes | bytearray):
            body = body.decode(errors="replace")
        try:
            message = json.loads(body).get("message", "") if body else ""
        except (ValueError, AttributeError):
            message = ""
        return error.status, message, error
    except ServerException as error:
        message = error.body.get("message", "") if isinstance(error.body, dict) else ""
        return error.status_code, message, error
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded, an API error was expected")


def basic_auth(credentials: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="session")
def lk() -> SimpleNamespace:
    """The helper functions above, as a fixture (test modules do not import conftest)."""
    return SimpleNamespace(
        new_name=new_name,
        put=put,
        read=read,
        commit_files=commit_files,
        call_error=call_error,
        basic_auth=basic_auth,
        make_client=make_client,
    )


@pytest.fixture(scope="session")
def http() -> urllib3.PoolManager:
    """A plain HTTP client for the few requests no lakeFS client can express."""
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


@pytest.fixture(scope="session")
def auth_headers(lakefs_server) -> dict[str, str]:
    return basic_auth(lakefs_server.credentials)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[..., EmbeddedLakeFS]]:
    """Factory for a private server (restart, kill, S3, credentials, presign TTL tests)."""
    started: list[EmbeddedLakeFS] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> EmbeddedLakeFS:
        server = EmbeddedLakeFS(data_dir or tmp_path / f"lakefs-{len(started)}", env=env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def main(repo):
    return repo.branch("main")


# -- webhook receiver ------------------------------------------------------------------------------


@dataclass
class HookReceiver:
    """A tiny HTTP server recording webhook calls; answers ``status`` after ``delay`` seconds."""

    url: str
    status: int = 200
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    # Called with the parsed body before the answer goes out (to interleave work with a pre-hook).
    on_call: Callable[[dict[str, Any] | None], None] | None = None

    def record(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = {"_raw": body.decode(errors="replace")}
        with self.arrived:
            self.calls.append({"path": path, "body": parsed, "headers": headers})
            self.arrived.notify_all()

    def clear(self) -> None:
        with self.arrived:
            self.calls.clear()

    def bodies(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self.arrived:
            return [
                call["body"]
                for call in self.calls
                if event_type is None or (call["body"] or {}).get("event_type") == event_type
            ]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [c["body"] for c in self.calls if (c["body"] or {}).get("event_type") == event_type]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found
                self.arrived.wait(remaining)


@pytest.fixture
def hook_receiver() -> Iterator[HookReceiver]:
    port = free_port()
    receiver = HookReceiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            receiver.record(self.path, body, dict(self.headers))
            if receiver.on_call is not None:
                receiver.on_call(receiver.calls[-1]["body"])
            if receiver.delay:
                time.sleep(receiver.delay)
            payload = json.dumps({"received": True}).encode()
            try:
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the caller gave up (timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def make_client(server: EmbeddedLakeFS, credentials: tuple[str, str]) -> lakefs.Client:
    return lakefs.Client(host=server.endpoint, username=credentials[0], password=credentials[1])
