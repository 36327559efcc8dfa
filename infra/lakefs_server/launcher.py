"""Start and stop the embedded lakeFS-API server as a child process.

Used by the CLI, the demo and the test suite; clients then talk to it over real HTTP exactly as they
would to a lakeFS server. The process is supervised by ``infra.processes.ManagedProcess``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.errors import ServerStartError
from infra.processes import ManagedProcess, child_environment, free_port, http_get

CREDENTIALS_FILE = "credentials.json"
_HEALTHY = b""  # /healthcheck answers 204 with an empty body


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
        self._managed: ManagedProcess | None = None

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

    # The server's command line (a benchmark's subclass may run a variant of it).
    server_command: tuple[str, ...] = (sys.executable, "-m", "infra.lakefs_server")

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server process, once started."""
        return None if self._managed is None else self._managed.process

    def start(self, timeout: float = 30.0) -> EmbeddedLakeFS:
        """Start the process and wait until ``/healthcheck`` answers.

        Raises:
            ServerStartError: the server exited or was not healthy within ``timeout`` seconds (the
                message ends with its last log lines).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = child_environment(
            {
                **self.env,
                "LOCKGATE_EMBEDDED_LAKEFS_HOST": self.host,
                "LOCKGATE_EMBEDDED_LAKEFS_PORT": str(self.port),
                "LOCKGATE_EMBEDDED_LAKEFS_DATA_DIR": str(self.data_dir),
            }
        )
        self._managed = ManagedProcess(
            "embedded lakeFS server",
            list(self.server_command),
            log_path=self.log_path,
            env=env,
        ).start()
        self._managed.wait_ready(
            lambda: http_get(f"{self.endpoint}/healthcheck", timeout=1) == _HEALTHY,
            timeout_s=timeout,
            on_exit=ServerStartError,
            on_timeout=ServerStartError,
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing after ``timeout`` seconds."""
        if self._managed is not None:
            self._managed.stop(timeout)

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self._managed is not None:
            self._managed.kill()

    def client(self, **kwargs: Any):  # -> lakefs.Client
        """Return an official ``lakefs.Client`` authenticated against this server."""
        import lakefs

        access_key_id, secret = self.credentials
        return lakefs.Client(host=self.endpoint, username=access_key_id, password=secret, **kwargs)

    def __enter__(self) -> EmbeddedLakeFS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
