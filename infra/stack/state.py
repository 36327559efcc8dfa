"""What a started stack leaves on disk: ``state.json``, ``stack.env``, secrets; and its status."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from infra.errors import StackError, StackRunningError
from infra.processes import http_get, live_process
from infra.stack.config import (
    ENV_FILE,
    LOCK_FILE,
    RAY_TOKEN_FILE,
    SERVING,
    STATE_FILE,
    STATE_VERSION,
    WEBHOOK_SECRET_FILE,
)
from infra.stack.services import CLIENT_VARIABLES, Probe


@dataclass
class ServiceRecord:
    """A started service as kept in ``state.json``."""

    name: str
    title: str
    pid: int
    create_time: float
    command: list[str]
    log: str
    wave: int
    url: str | None
    health: list[dict[str, Any]]
    grace_s: float
    started_at: float

    def process(self) -> psutil.Process | None:
        """The live process, or ``None`` when it is gone (or its PID now belongs to another process)."""
        return live_process(self.pid, self.create_time)

    def probes(self) -> list[Probe]:
        return [Probe(**probe) for probe in self.health]


@dataclass
class StackState:
    """Contents of ``state.json``."""

    stack_dir: str
    host: str
    ports: dict[str, int]
    env_file: str
    started_at: float
    services: list[ServiceRecord]
    skipped: dict[str, str] = field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        raw = json.loads(text)
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"state version {raw.get('version')!r}, expected {STATE_VERSION}")
        raw["services"] = [ServiceRecord(**record) for record in raw["services"]]
        return cls(**raw)


@dataclass(frozen=True)
class ServiceStatus:
    """What ``stack_status`` found for one service."""

    name: str
    title: str
    state: str  # running | unhealthy | stopped | <WAITING_FOR_CHAMPION> | running (started by deploy_flow)
    healthy: bool
    url: str | None
    pid: int | None
    log: str | None


@dataclass(frozen=True)
class StackStatus:
    """``running``: state file present and every process alive; ``stale``: state present, all gone."""

    stack_dir: Path
    state: StackState | None
    services: tuple[ServiceStatus, ...]

    @property
    def running(self) -> bool:
        """Every process ``up`` started is alive."""
        return self.state is not None and all(s.pid is not None for s in self._started())

    @property
    def stale(self) -> bool:
        """A stack is recorded but none of its processes is alive (a reboot, a kill -9)."""
        return self.state is not None and all(s.pid is None for s in self._started())

    @property
    def healthy(self) -> bool:
        """Running, and every health check passes."""
        return self.running and all(s.healthy for s in self.services)

    def _started(self) -> list[ServiceStatus]:
        started = {record.name for record in self.state.services} if self.state else set()
        return [s for s in self.services if s.name in started]


def read_state(stack_dir: Path) -> StackState | None:
    """The recorded stack, or ``None`` when none is recorded.

    Raises:
        StackError: the state file is unreadable (it names the file to remove).
    """
    path = Path(stack_dir).expanduser() / STATE_FILE
    try:
        return StackState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as error:
        raise StackError(
            f"unreadable stack state {path} ({error}): stop leftover processes by hand and remove it"
        ) from error


def stack_status(stack_dir: Path, *, probe: bool = True) -> StackStatus:
    """Check every recorded process (alive, same start time) and, with ``probe``, its health URL."""
    stack_dir = Path(stack_dir).expanduser().resolve()
    state = read_state(stack_dir)
    if state is None:
        return StackStatus(stack_dir=stack_dir, state=None, services=())
    statuses = [_service_status(record, probe=probe) for record in state.services]
    if SERVING in state.skipped:
        statuses.append(_serving_status(state, probe=probe))
    return StackStatus(stack_dir=stack_dir, state=state, services=tuple(statuses))


def _service_status(record: ServiceRecord, *, probe: bool) -> ServiceStatus:
    process = record.process()
    if process is None:
        return ServiceStatus(record.name, record.title, "stopped", False, record.url, None, record.log)
    healthy = not probe or all(
        p.passes(log_path=Path(record.log), started_at=record.started_at) for p in record.probes()
    )
    return ServiceStatus(
        record.name,
        record.title,
        "running" if healthy else "unhealthy",
        healthy,
        record.url,
        record.pid,
        record.log,
    )


def _serving_status(state: StackState, *, probe: bool) -> ServiceStatus:
    """Serving that ``up`` skipped: answering now means deploy_flow started it on the stack's Ray."""
    url = f"http://{state.host}:{state.ports['serving']}"
    if probe and http_get(f"{url}/health") is not None:
        return ServiceStatus(SERVING, "Ray Serve", "running (started by deploy_flow)", True, url, None, None)
    return ServiceStatus(SERVING, "Ray Serve", state.skipped[SERVING], True, url, None, None)


def webhook_secret(stack_dir: Path) -> str:
    """The stack's own webhook secret, generated once into an owner-only file."""
    path = Path(stack_dir) / WEBHOOK_SECRET_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def ray_token(stack_dir: Path) -> Path:
    """The stack's Ray authentication token file (owner-only), generated once as Ray does."""
    path = Path(stack_dir) / RAY_TOKEN_FILE
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return path


def webhook_secret_source(stack_dir: Path, *, configured: bool) -> str:
    """Where the stack's webhook secret comes from, for people (never the secret itself)."""
    if configured:
        return "LOCKGATE_WEBHOOK_SECRET (from your environment)"
    return str(Path(stack_dir).expanduser().resolve() / WEBHOOK_SECRET_FILE)


def lakefs_credentials(data_dir: Path) -> tuple[str, str]:
    """The embedded server's key pair, created (owner-only, in its data dir) before it first starts."""
    from infra.lakefs_server.server import load_or_create_credentials
    from infra.settings import EmbeddedLakeFSSettings

    make_private_dir(data_dir)
    return load_or_create_credentials(EmbeddedLakeFSSettings(data_dir=data_dir))


def write_env_file(stack_dir: Path, env: Mapping[str, str]) -> Path:
    """Write ``stack.env`` (owner-only: it holds secrets) with the variables a shell needs."""
    lines = [
        "# The lockgate stack started by `lockgate up`: `source` this file to point lockgate at it.",
        "# Owner-only: it holds the lakeFS and webhook secrets.",
    ]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in CLIENT_VARIABLES if name in env]
    path = Path(stack_dir) / ENV_FILE
    write_private(path, "\n".join(lines) + "\n")
    return path


def check_existing(stack_dir: Path) -> StackState | None:
    """The running stack recorded here; removes a stale record; refuses a partly running one."""
    status = stack_status(stack_dir, probe=False)
    if status.state is None:
        return None
    if status.stale:
        remove(stack_dir / STATE_FILE)
        return None
    if status.running:
        return status.state
    gone = ", ".join(s.name for s in status.services if s.state == "stopped")
    raise StackRunningError(
        f"the lockgate stack in {stack_dir} is partly running ({gone} stopped): "
        "run `lockgate down` first, then `lockgate up`"
    )


def write_state(stack_dir: Path, state: StackState) -> None:
    write_private(stack_dir / STATE_FILE, state.to_json())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` owner-only and atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def stack_lock(stack_dir: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per stack directory."""
    with open(stack_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(
                f"another `lockgate up` or `lockgate down` is working on {stack_dir}; wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
