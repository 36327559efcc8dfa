"""Start and stop the embedded lakeFS-API server as a child process.

Used by the CLI's one-machine stack, the demo and the test suite; clients then talk to it over
real HTTP exactly as they would to a lakeFS server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from infra.errors import ServerStartError

CREDENTIALS_FILE = "credentials.json"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def read_credentials(data_dir: Path) -> tuple[str, str]:
    """Return the (access key ID, secret) pair stored in ``data_dir`` by a server's first start."""
    stored = json.loads((Path(data_dir) / CREDENTIALS_FILE).read_text())
    return stored["access_key_id"], stored["secret_access_key"]


class EmbeddedLakeFS:
    """A handle on one embedded server process.

    Args:
        data_dir: Directory for metadata, blocks and credentials (kept across restarts).
        host: Interface to bind.
        port: Port to bind; a free one is picked when omitted (and kept across restarts).
        env: Extra ``LOCKGATE_EMBEDDED_LAKEFS_*`` settings for the server process.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """Base URL of the API, as given to ``lakefs.Client(host=...)``."""
        return f"http://{self.host}:{self.port}/api/v1"

    @property
    def credentials(self) -> tuple[str, str]:
        """The key pair clients authenticate with."""
        if "LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID" in self.env:
            return (
                self.env["LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID"],
                self.env["LOCKGATE_EMBEDDED_LAKEFS_SECRET_ACCESS_KEY"],
            )
        return read_credentials(self.data_dir)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 30.0) -> EmbeddedLakeFS:
        """Start the process and wait until ``/healthcheck`` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "LOCKGATE_EMBEDDED_LAKEFS_HOST": self.host,
            "LOCKGATE_EMBEDDED_LAKEFS_PORT": str(self.port),
            "LOCKGATE_EMBEDDED_LAKEFS_DATA_DIR": str(self.data_dir),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.lakefs_server"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"embedded lakeFS server exited with code {self.process.returncode}; "
                    f"last log lines:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthcheck", timeout=1) as response:
                    if response.status == 204:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"embedded lakeFS server not healthy after {timeout}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self, **kwargs: Any):  # -> lakefs.Client
        """Return an official ``lakefs.Client`` authenticated against this server."""
        import lakefs

        access_key_id, secret = self.credentials
        return lakefs.Client(host=self.endpoint, username=access_key_id, password=secret, **kwargs)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> EmbeddedLakeFS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
