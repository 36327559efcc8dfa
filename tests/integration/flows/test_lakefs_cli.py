"""``lockgate lakefs serve --port 0``, run as a person runs it (a process of its own): its first line
names the endpoint it really listens on, and a lakeFS client reaches the server there.

This test starts a server of its own: starting one is what it checks.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time

import pytest

from infra.errors import LockgateError
from infra.lakefs_server.launcher import read_credentials
from tasks import versioning

pytestmark = pytest.mark.integration

ENDPOINT = re.compile(r"http://127\.0\.0\.1:(\d+)/api/v1")


def first_endpoint(process: subprocess.Popen[str], *, timeout: float = 60.0) -> tuple[str, list[str]]:
    """The endpoint in the first lines the process prints (and those lines), waiting up to ``timeout``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.5):
                lines.append(process.stdout.readline())
                if match := ENDPOINT.search(lines[-1]):
                    return match.group(0), lines
    raise AssertionError(f"no endpoint printed; exit {process.poll()}; output: {''.join(lines)}")


def test_serve_on_port_zero_prints_the_endpoint_it_listens_on(tmp_path):
    data_dir = tmp_path / "lakefs"
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("LOCKGATE_EMBEDDED_LAKEFS_")
    }
    command = [
        sys.executable,
        "-m",
        "flows.cli",
        "lakefs",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
    ]
    # A narrow console must not wrap the endpoint over two lines.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**environment, "COLUMNS": "80"},
    ) as process:
        try:
            endpoint, lines = first_endpoint(process)
            assert int(ENDPOINT.search(endpoint).group(1)) > 0
            assert str(data_dir) in lines[-1] and "credentials.json" in lines[-1]
            client = connect(endpoint, data_dir)
            repository = versioning.ensure_default_repository("port-zero", client=client)
            assert repository.properties.default_branch == "main"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def connect(endpoint: str, data_dir, *, timeout: float = 30.0):
    """A lakeFS client for the server at ``endpoint``, once it answers (the line is printed as it starts)."""
    import lakefs

    deadline = time.monotonic() + timeout
    while True:
        try:
            access_key_id, secret = read_credentials(data_dir)
            client = lakefs.Client(host=endpoint, username=access_key_id, password=secret)
            versioning.check_connection(client)
            return client
        except (OSError, LockgateError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
