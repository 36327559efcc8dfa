"""The one-machine stack behind ``lockgate up`` / ``down`` / ``status``, as background processes.

Services, each a subprocess in its own process group, logging to ``<stack dir>/logs/<service>.log``:

==================  ==========================================================================
``prefect``         ``prefect server start`` (SQLite under ``<stack dir>/prefect``), UI included
``lakefs``          the embedded lakeFS-API server (data under ``<stack dir>/lakefs``)
``dask-scheduler``  ``dask scheduler`` (its HTTP endpoint answers health checks)
``dask-workers``    ``dask worker --nworkers N --nthreads 1`` (one DDP rank per worker)
``ray``             ``ray start --head --block`` (the Serve cluster)
``webhook-relay``   ``serving.webhook_relay`` (signed webhooks -> Prefect events)
``serving``         ``lockgate serve`` on the Ray cluster, only when a champion model exists
``deployments``     ``python -m flows.deployments``: every lockgate deployment, served by Prefect
==================  ==========================================================================

Every service gets the environment of all the others (``PREFECT_API_URL``, ``LOCKGATE_LAKEFS_*``,
``LOCKGATE_DASK_SCHEDULER_ADDRESS``, ``LOCKGATE_SERVING_*``, ``LOCKGATE_WEBHOOK_SECRET``); all of it is
known before anything starts, so independent services start together (``wave`` 1) and the ones that
need the others healthy start after them (``wave`` 2).

The stack directory holds ``state.json`` (PIDs, process start times, ports, URLs), ``stack.env`` (to
``source``), the generated secrets (owner-only) and the logs. ``stop_stack`` sends SIGTERM to every
process group (and any descendant that left it), waits a grace period, then SIGKILLs what is left.
Ray is stopped the same way rather than with ``ray stop``, which would stop every Ray on the machine.
Ray binds the machine's address whatever it is told (it resolves loopback to it), so the stack runs it
with token authentication and a token of its own (``ray-auth-token``, owner-only).

This module knows nothing of ``flows``/``tasks``/``serving`` beyond the command lines it runs; the CLI
(``flows/stack_cli.py``) injects the one decision that needs the registry (is there a champion?).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import psutil

from infra.errors import PortInUseError, ServiceStartError, StackError, StackRunningError

DEFAULT_STACK_DIR = Path("~/.lockgate/stack")
STATE_FILE = "state.json"
ENV_FILE = "stack.env"
WEBHOOK_SECRET_FILE = "webhook-secret"
RAY_TOKEN_FILE = "ray-auth-token"
LOCK_FILE = ".lock"
STATE_VERSION = 1

SERVING = "serving"
WAITING_FOR_CHAMPION = "waiting for a champion (deploy_flow starts it)"
# Printed by `ray start --block` once every Ray process of the head node is up.
_RAY_READY_MARKER = "block forever"
# Variables a shell needs to reach the stack; `stack.env` exports these (not the services' internals).
_CLIENT_VARIABLES = (
    "PREFECT_API_URL",
    "LOCKGATE_LAKEFS_ENDPOINT",
    "LOCKGATE_LAKEFS_ACCESS_KEY_ID",
    "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY",
    "LOCKGATE_DASK_SCHEDULER_ADDRESS",
    "LOCKGATE_SERVING_RAY_ADDRESS",
    "LOCKGATE_SERVING_HOST",
    "LOCKGATE_SERVING_PORT",
    "LOCKGATE_SERVING_URL",
    "LOCKGATE_WEBHOOK_SECRET",
    "LOCKGATE_STACK_DIR",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN_PATH",
)


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackPorts:
    """TCP ports the stack binds on ``StackConfig.host`` (Ray's other ports are picked by Ray)."""

    prefect: int = 4200
    lakefs: int = 8000
    dask_scheduler: int = 8786
    dask_dashboard: int = 8787
    ray: int = 6379
    ray_client: int = 10001
    ray_dashboard: int = 8265
    ray_dashboard_agent: int = 52365
    ray_metrics: int = 8080
    webhook_relay: int = 8200
    serving: int = 8100

    @classmethod
    def free(cls, host: str = "127.0.0.1", **given: int | None) -> StackPorts:
        """Ports free on ``host`` right now for every port not in ``given`` (``None`` counts as not given)."""
        chosen = {name: port for name, port in given.items() if port is not None}
        sockets = []
        try:
            for port_field in fields(cls):
                if port_field.name in chosen:
                    continue
                sock = socket.socket()
                sock.bind((host, 0))  # held until all are picked, so no port is handed out twice
                sockets.append(sock)
                chosen[port_field.name] = sock.getsockname()[1]
        finally:
            for sock in sockets:
                sock.close()
        return cls(**chosen)


PORT_LABELS = {
    "prefect": ("Prefect server", "--prefect-port"),
    "lakefs": ("embedded lakeFS", "--lakefs-port"),
    "dask_scheduler": ("Dask scheduler", "--dask-port"),
    "dask_dashboard": ("Dask scheduler HTTP", "--dask-dashboard-port"),
    "ray": ("Ray GCS", "--ray-port"),
    "ray_client": ("Ray client server", "--ray-client-port"),
    "ray_dashboard": ("Ray dashboard", "--ray-dashboard-port"),
    "ray_dashboard_agent": ("Ray dashboard agent", "--ray-dashboard-agent-port"),
    "ray_metrics": ("Ray metrics export (Prometheus)", "--ray-metrics-port"),
    "webhook_relay": ("webhook relay", "--relay-port"),
    "serving": ("Ray Serve HTTP proxy", "--serving-port"),
}


@dataclass(frozen=True)
class StackConfig:
    """What ``start_stack`` starts and where.

    Args:
        stack_dir: Directory of state, logs, data and secrets (created owner-only).
        host: Interface every service binds (loopback by default: the stack is for this machine).
        ports: Ports of the services.
        dask_workers: Dask worker processes (one thread each, one DDP rank each).
        ray_dashboard: Start Ray's dashboard.
        ray_num_cpus: Logical CPUs the Ray head advertises (Serve replicas reserve fractions of them).
        ray_env: Extra environment of the Ray processes (e.g. Ray Serve's throughput settings).
        ready_timeout_s: How long each service may take to become healthy.
        python: Interpreter that runs the Python services (this one by default).
    """

    stack_dir: Path = DEFAULT_STACK_DIR
    host: str = "127.0.0.1"
    ports: StackPorts = field(default_factory=StackPorts)
    dask_workers: int = 2
    ray_dashboard: bool = True
    ray_num_cpus: int = field(default_factory=lambda: max(8, os.cpu_count() or 1))
    ray_env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0
    python: str = sys.executable

    def resolved(self) -> StackConfig:
        """The same config with ``stack_dir`` made absolute (``~`` expanded)."""
        return replace(self, stack_dir=Path(self.stack_dir).expanduser().resolve())


# -- probes: how a service is known to be ready / healthy ----------------------------------------------

ProbeKind = Literal["http", "tcp", "log", "dask-workers", "prefect-deployments"]


@dataclass(frozen=True)
class Probe:
    """One check of a service, stored in the state file so ``status`` can repeat it.

    ``http``: GET ``target`` answers 2xx. ``tcp``: ``target`` (host:port) accepts a connection.
    ``log``: the service's log contains ``target``. ``dask-workers``: the scheduler's
    ``target`` (``/json/counts.json``) reports at least ``minimum`` workers. ``prefect-deployments``:
    the Prefect API at ``target`` has a deployment updated after the service started.
    """

    kind: ProbeKind
    target: str
    minimum: int = 0

    def passes(self, *, log_path: Path, started_at: float) -> bool:
        try:
            if self.kind == "http":
                return _http_get(self.target) is not None
            if self.kind == "tcp":
                host, _, port = self.target.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=1):
                    return True
            if self.kind == "log":
                return self.target in log_path.read_text(errors="replace")
            if self.kind == "dask-workers":
                body = _http_get(self.target)
                return body is not None and json.loads(body).get("workers", 0) >= self.minimum
            if self.kind == "prefect-deployments":
                return _deployments_updated_since(self.target, started_at)
        except (OSError, ValueError):
            return False
        raise ValueError(f"unknown probe kind {self.kind!r}")


def _http_get(url: str, *, timeout: float = 2.0) -> bytes | None:
    """The body of a 2xx answer to GET ``url``, or ``None``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read() if 200 <= response.status < 300 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _deployments_updated_since(api_url: str, started_at: float) -> bool:
    request = urllib.request.Request(
        f"{api_url}/deployments/filter",
        data=json.dumps({"limit": 200}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        deployments = json.loads(response.read())
    for deployment in deployments:
        updated = dt.datetime.fromisoformat(deployment["updated"].replace("Z", "+00:00"))
        if updated.timestamp() >= started_at - 1:  # the server's clock is this machine's
            return True
    return False


# -- services ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """One background process of the stack and how to tell it works."""

    name: str
    title: str
    command: tuple[str, ...]
    wave: int
    url: str | None = None
    ready: tuple[Probe, ...] = ()
    health: tuple[Probe, ...] = ()
    cwd: Path | None = None
    grace_s: float = 10.0


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
        return _live_process(self.pid, self.create_time)

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


def stack_environment(
    config: StackConfig, *, lakefs_credentials: tuple[str, str], webhook_secret: str, ray_token_path: Path
) -> dict:
    """The ``LOCKGATE_*``, ``PREFECT_*`` and ``RAY_AUTH_*`` variables of every service and ``stack.env``."""
    host, ports = config.host, config.ports
    access_key_id, secret_access_key = lakefs_credentials
    return {
        "PREFECT_API_URL": f"http://{host}:{ports.prefect}/api",
        "PREFECT_HOME": str(config.stack_dir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://{host}:{ports.prefect}/api",
        "LOCKGATE_LAKEFS_ENDPOINT": f"http://{host}:{ports.lakefs}/api/v1",
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": access_key_id,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret_access_key,
        "LOCKGATE_EMBEDDED_LAKEFS_HOST": host,
        "LOCKGATE_EMBEDDED_LAKEFS_PORT": str(ports.lakefs),
        "LOCKGATE_EMBEDDED_LAKEFS_DATA_DIR": str(config.stack_dir / "lakefs"),
        "LOCKGATE_DASK_SCHEDULER_ADDRESS": f"tcp://{host}:{ports.dask_scheduler}",
        "LOCKGATE_SERVING_RAY_ADDRESS": f"{host}:{ports.ray}",
        "LOCKGATE_SERVING_HOST": host,
        "LOCKGATE_SERVING_PORT": str(ports.serving),
        "LOCKGATE_SERVING_URL": f"http://{host}:{ports.serving}",
        "LOCKGATE_WEBHOOK_SECRET": webhook_secret,
        # The monitor reads serving SLOs from Ray's Prometheus export (one node here).
        "LOCKGATE_AUTOMATION_MONITOR_METRICS_URLS": json.dumps(
            [f"http://{host}:{ports.ray_metrics}/metrics"]
        ),
        "LOCKGATE_STACK_DIR": str(config.stack_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray's token authentication with the stack's own token: drivers (serving, deploy_flow, a shell
        # that sourced stack.env) present the token the head was started with, whatever ~/.ray holds.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(ray_token_path),
        "PYTHONUNBUFFERED": "1",
    }


def stack_services(config: StackConfig) -> list[ServiceSpec]:
    """The services of the stack, in start order (``serving`` last but one: it needs a champion)."""
    host, ports, python = config.host, config.ports, config.python
    bin_dir = Path(python).parent
    prefect_url = f"http://{host}:{ports.prefect}"
    dask_http = f"http://{host}:{ports.dask_dashboard}"
    ray_command = [
        str(bin_dir / "ray"),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        f"--port={ports.ray}",
        f"--ray-client-server-port={ports.ray_client}",
        f"--dashboard-agent-listen-port={ports.ray_dashboard_agent}",
        f"--metrics-export-port={ports.ray_metrics}",
        f"--num-cpus={config.ray_num_cpus}",
    ]
    if config.ray_dashboard:
        ray_command += [
            "--include-dashboard=true",
            f"--dashboard-host={host}",
            f"--dashboard-port={ports.ray_dashboard}",
        ]
        ray_health: tuple[Probe, ...] = (
            Probe("tcp", f"{host}:{ports.ray}"),
            Probe("http", f"http://{host}:{ports.ray_dashboard}/api/gcs_healthz"),
        )
    else:
        ray_command.append("--include-dashboard=false")
        ray_health = (Probe("tcp", f"{host}:{ports.ray}"),)
    serving_health = (Probe("http", f"http://{host}:{ports.serving}/health"),)
    return [
        ServiceSpec(
            name="prefect",
            title="Prefect server + UI",
            command=(
                str(bin_dir / "prefect"),
                "server",
                "start",
                "--host",
                host,
                "--port",
                str(ports.prefect),
            ),
            wave=1,
            url=prefect_url,
            ready=(Probe("http", f"{prefect_url}/api/health"),),
            health=(Probe("http", f"{prefect_url}/api/health"),),
        ),
        ServiceSpec(
            name="lakefs",
            title="embedded lakeFS",
            command=(python, "-m", "infra.lakefs_server"),
            wave=1,
            url=f"http://{host}:{ports.lakefs}/api/v1",
            ready=(Probe("http", f"http://{host}:{ports.lakefs}/api/v1/healthcheck"),),
            health=(Probe("http", f"http://{host}:{ports.lakefs}/api/v1/healthcheck"),),
        ),
        ServiceSpec(
            name="dask-scheduler",
            title="Dask scheduler",
            command=(
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                host,
                "--port",
                str(ports.dask_scheduler),
                "--dashboard-address",
                f"{host}:{ports.dask_dashboard}",
            ),
            wave=1,
            url=f"tcp://{host}:{ports.dask_scheduler}",
            ready=(Probe("http", f"{dask_http}/health"),),
            health=(Probe("http", f"{dask_http}/health"),),
        ),
        ServiceSpec(
            name="dask-workers",
            title=f"Dask workers ({config.dask_workers} x 1 thread)",
            command=(
                str(bin_dir / "dask"),
                "worker",
                f"tcp://{host}:{ports.dask_scheduler}",
                "--host",
                host,
                "--nworkers",
                str(config.dask_workers),
                "--nthreads",
                "1",
                "--no-dashboard",
            ),
            wave=1,
            ready=(Probe("dask-workers", f"{dask_http}/json/counts.json", config.dask_workers),),
            health=(Probe("dask-workers", f"{dask_http}/json/counts.json", config.dask_workers),),
        ),
        ServiceSpec(
            name="ray",
            title="Ray head" + (" + dashboard" if config.ray_dashboard else ""),
            command=tuple(ray_command),
            wave=1,
            url=f"http://{host}:{ports.ray_dashboard}" if config.ray_dashboard else f"{host}:{ports.ray}",
            ready=(Probe("log", _RAY_READY_MARKER), *ray_health),
            health=ray_health,
            grace_s=5.0,  # `ray start --block` drains for 30 s on SIGTERM; Ray keeps nothing to flush
        ),
        ServiceSpec(
            name="webhook-relay",
            title="webhook relay",
            command=(
                python,
                "-c",
                "import sys; from serving.webhook_relay import RelaySettings, run_relay; "
                "run_relay(RelaySettings(), sys.argv[1], int(sys.argv[2]))",
                host,
                str(ports.webhook_relay),
            ),
            wave=1,
            url=f"http://{host}:{ports.webhook_relay}/hooks",
            ready=(Probe("http", f"http://{host}:{ports.webhook_relay}/health"),),
            health=(Probe("http", f"http://{host}:{ports.webhook_relay}/health"),),
        ),
        ServiceSpec(
            name=SERVING,
            title="Ray Serve (lockgate serve)",
            command=(
                python,
                "-m",
                "flows.cli",
                "serve",
                "--ray-address",
                f"{host}:{ports.ray}",
                "--host",
                host,
                "--port",
                str(ports.serving),
            ),
            wave=2,
            url=f"http://{host}:{ports.serving}",
            ready=serving_health,
            health=serving_health,
            grace_s=30.0,  # it flushes the inference logs to lakeFS on SIGTERM
        ),
        ServiceSpec(
            name="deployments",
            title="flow deployments (prefect.serve)",
            command=(python, "-m", "flows.deployments"),
            wave=2,
            url=f"{prefect_url}/deployments",
            ready=(Probe("prefect-deployments", f"{prefect_url}/api"),),
            health=(),
            cwd=_source_root(),
        ),
    ]


def _source_root() -> Path:
    """Directory holding the ``flows`` package, so Prefect's ``flows/x.py:flow`` entrypoints resolve."""
    return Path(__file__).resolve().parent.parent


# -- start ---------------------------------------------------------------------------------------------

StackEvent = Literal["starting", "ready", "skipped", "failed", "stopping", "stopped"]
OnEvent = Callable[[StackEvent, str, str], None]


def _ignore_event(event: StackEvent, service: str, detail: str) -> None:
    """Default progress callback: report nothing."""


def start_stack(
    config: StackConfig,
    *,
    start_serving: Callable[[Mapping[str, str]], bool] | None = None,
    on_event: OnEvent = _ignore_event,
) -> StackState:
    """Start every service, waiting for each wave to be healthy; record the stack in ``state.json``.

    Args:
        config: What to start and where.
        start_serving: Called with the stack environment once wave 1 is healthy; ``True`` starts the
            serving app (a champion exists). ``None`` or ``False``: serving waits for a champion.
        on_event: Progress callback ``(event, service, detail)``.

    Returns:
        The recorded state.

    Raises:
        StackRunningError: a stack recorded in ``config.stack_dir`` still (partly) runs; when it fully
            runs, its state is on the exception as ``state``.
        PortInUseError: a port is taken; nothing was started.
        ServiceStartError: a service failed; what was started is stopped again, the state removed.
    """
    config = config.resolved()
    stack_dir = config.stack_dir
    _make_private_dir(stack_dir)
    with _stack_lock(stack_dir):
        existing = _check_existing(stack_dir)
        if existing is not None:
            raise StackRunningError(f"the lockgate stack in {stack_dir} is already running", state=existing)
        check_ports(config)
        _make_private_dir(stack_dir / "logs")
        env = stack_environment(
            config,
            lakefs_credentials=_lakefs_credentials(stack_dir / "lakefs"),
            webhook_secret=webhook_secret(stack_dir),
            ray_token_path=_ray_token(stack_dir),
        )
        env_file = write_env_file(stack_dir, env)
        state = StackState(
            stack_dir=str(stack_dir),
            host=config.host,
            ports=asdict(config.ports),
            env_file=str(env_file),
            started_at=time.time(),
            services=[],
        )
        specs = stack_services(config)
        try:
            for wave in sorted({spec.wave for spec in specs}):
                wave_specs = [spec for spec in specs if spec.wave == wave]
                if wave == 2:
                    wave_specs = _serving_decision(wave_specs, env, start_serving, state, on_event)
                started = [_spawn(spec, env, config, state, on_event) for spec in wave_specs]
                _wait_ready(started, wave_specs, config.ready_timeout_s, on_event)
        except BaseException:
            stop_services(state.services, on_event=on_event)
            _remove(stack_dir / STATE_FILE)
            raise
        return state


def _serving_decision(
    specs: list[ServiceSpec],
    env: Mapping[str, str],
    start_serving: Callable[[Mapping[str, str]], bool] | None,
    state: StackState,
    on_event: OnEvent,
) -> list[ServiceSpec]:
    if start_serving is not None and start_serving(env):
        return specs
    state.skipped[SERVING] = WAITING_FOR_CHAMPION
    on_event("skipped", SERVING, WAITING_FOR_CHAMPION)
    return [spec for spec in specs if spec.name != SERVING]


def _spawn(
    spec: ServiceSpec, env: Mapping[str, str], config: StackConfig, state: StackState, on_event: OnEvent
) -> ServiceRecord:
    log_path = config.stack_dir / "logs" / f"{spec.name}.log"
    on_event("starting", spec.name, spec.title)
    with open(log_path, "ab") as log:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        log.write(f"\n--- {stamp} lockgate up: {shlex.join(spec.command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            spec.command,
            cwd=spec.cwd or config.stack_dir,
            # Explicit: the caller's environment plus the stack's, which wins.
            env={**os.environ, **env, **(config.ray_env if spec.name == "ray" else {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, immune to the terminal's ^C
        )
    record = ServiceRecord(
        name=spec.name,
        title=spec.title,
        pid=process.pid,
        create_time=psutil.Process(process.pid).create_time(),
        command=list(spec.command),
        log=str(log_path),
        wave=spec.wave,
        url=spec.url,
        health=[asdict(probe) for probe in spec.health],
        grace_s=spec.grace_s,
        started_at=time.time(),
    )
    state.services.append(record)
    _write_state(Path(state.stack_dir), state)  # at once: a crash of `up` itself leaves something to stop
    return record


def _wait_ready(
    records: list[ServiceRecord], specs: list[ServiceSpec], timeout_s: float, on_event: OnEvent
) -> None:
    waiting = {record.name: (record, spec) for record, spec in zip(records, specs, strict=True)}
    deadline = time.monotonic() + timeout_s
    while waiting:
        for name, (record, spec) in list(waiting.items()):
            log_path = Path(record.log)
            process = record.process()
            if process is None or process.status() == psutil.STATUS_ZOMBIE:
                code = _exit_code(record.pid)
                on_event("failed", name, "exited")
                raise ServiceStartError(
                    f"{spec.title} ({name}) exited during start-up{code}; its log is {log_path}",
                    service=name,
                    log_path=log_path,
                    log_tail=log_tail(log_path),
                )
            if all(probe.passes(log_path=log_path, started_at=record.started_at) for probe in spec.ready):
                del waiting[name]
                on_event("ready", name, f"{time.time() - record.started_at:.1f} s")
        if waiting and time.monotonic() > deadline:
            name, (record, spec) = next(iter(waiting.items()))
            on_event("failed", name, "timeout")
            raise ServiceStartError(
                f"{spec.title} ({name}) not healthy after {timeout_s:g} s; its log is {record.log}",
                service=name,
                log_path=Path(record.log),
                log_tail=log_tail(Path(record.log)),
            )
        if waiting:
            time.sleep(0.25)


def _exit_code(pid: int) -> str:
    """`` with code N`` for a child of this process that exited (reaping it), else ``''``."""
    with contextlib.suppress(ChildProcessError, OSError):
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return f" with code {os.waitstatus_to_exitcode(status)}"
    return ""


def check_ports(config: StackConfig) -> None:
    """Refuse ports chosen twice or already taken, naming the service, the owner and the option to change.

    Raises:
        PortInUseError: at least one port is unusable (all of them are listed).
    """
    problems = []
    seen: dict[int, str] = {}
    for name, port in asdict(config.ports).items():
        label, option = PORT_LABELS[name]
        if port in seen:
            problems.append(f"port {port} is chosen for both the {seen[port]} and the {label}")
            continue
        seen[port] = label
        if not port_is_free(config.host, port):
            problems.append(
                f"port {port} ({label}) on {config.host} is in use{_port_owner(port)}; pass {option}"
            )
    if problems:
        raise PortInUseError(
            "cannot start the lockgate stack: "
            + "; ".join(problems)
            + " (or --free-ports to pick free ports for every service)"
        )


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port_owner(port: int) -> str:
    """`` by pid N (name)`` when this user may see who listens on ``port``, else ``''``."""
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
                if connection.pid is None:
                    return ""
                with contextlib.suppress(psutil.Error):
                    return f" by pid {connection.pid} ({psutil.Process(connection.pid).name()})"
                return f" by pid {connection.pid}"
    except (psutil.AccessDenied, OSError):
        pass
    return ""


# -- status ----------------------------------------------------------------------------------------------


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
    if probe and _http_get(f"{url}/health") is not None:
        return ServiceStatus(SERVING, "Ray Serve", "running (started by deploy_flow)", True, url, None, None)
    return ServiceStatus(SERVING, "Ray Serve", state.skipped[SERVING], True, url, None, None)


# -- stop ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopReport:
    """What ``stop_stack`` did: services stopped (name -> how), and whether state was stale."""

    stack_dir: Path
    stopped: dict[str, str]
    was_running: bool
    had_state: bool


def stop_stack(stack_dir: Path, *, on_event: OnEvent = _ignore_event) -> StopReport:
    """Stop every recorded service (later waves first), then remove ``state.json`` and ``stack.env``."""
    stack_dir = Path(stack_dir).expanduser().resolve()
    if not stack_dir.is_dir():
        return StopReport(stack_dir, {}, was_running=False, had_state=False)
    with _stack_lock(stack_dir):
        state = read_state(stack_dir)
        if state is None:
            return StopReport(stack_dir, {}, was_running=False, had_state=False)
        was_running = any(record.process() is not None for record in state.services)
        stopped = stop_services(state.services, on_event=on_event)
        _remove(stack_dir / ENV_FILE)
        _remove(stack_dir / STATE_FILE)
        return StopReport(stack_dir, stopped, was_running=was_running, had_state=True)


def stop_services(records: list[ServiceRecord], *, on_event: OnEvent = _ignore_event) -> dict[str, str]:
    """Stop ``records`` wave by wave, last wave first; return name -> ``terminated``/``killed``/``gone``."""
    outcome: dict[str, str] = {}
    for wave in sorted({record.wave for record in records}, reverse=True):
        members = [record for record in records if record.wave == wave]
        outcome.update(_stop_together(members, on_event))
    return outcome


def _stop_together(records: list[ServiceRecord], on_event: OnEvent) -> dict[str, str]:
    """SIGTERM each service's group and descendants at once, wait its grace, SIGKILL what is left."""
    outcome: dict[str, str] = {}
    targets: dict[str, list[psutil.Process]] = {}
    for record in records:
        process = record.process()
        if process is None:
            outcome[record.name] = "gone"
            continue
        on_event("stopping", record.name, record.title)
        targets[record.name] = _signal_tree(process, signal.SIGTERM)
    grace = {record.name: record.grace_s for record in records}
    deadline = {name: time.monotonic() + seconds for name, seconds in grace.items()}
    while targets:
        for name, processes in list(targets.items()):
            alive = [p for p in processes if _alive(p)]
            if not alive:
                outcome[name] = outcome.get(name, "terminated")
                del targets[name]
                on_event("stopped", name, _STOP_DETAIL[outcome[name]].format(grace=grace[name]))
            elif time.monotonic() > deadline[name]:
                for process in alive:
                    with contextlib.suppress(psutil.Error):
                        process.kill()
                outcome[name] = "killed"
                deadline[name] = time.monotonic() + 5  # SIGKILL is not refused; just wait for it
                targets[name] = alive
        if targets:
            time.sleep(0.1)
    return outcome


_STOP_DETAIL = {"terminated": "terminated", "killed": "killed after its {grace:g} s grace period"}


def _signal_tree(process: psutil.Process, signum: int) -> list[psutil.Process]:
    """Signal ``process``'s group (its session leader's) and every descendant; return them all."""
    tree = [process]
    with contextlib.suppress(psutil.Error):
        tree += process.children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # the service leads its group (start_new_session)
    for member in tree:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signum)  # descendants that left the group
    return tree


def _alive(process: psutil.Process) -> bool:
    try:
        if not process.is_running():
            return False
        if process.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(process.pid, os.WNOHANG)  # reap our own children (a failed `up`)
            return False
        return True
    except psutil.NoSuchProcess:
        return False


def _live_process(pid: int, create_time: float) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > 0.01:
            return None  # the PID was reused by an unrelated process
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


# -- files -----------------------------------------------------------------------------------------------


def webhook_secret(stack_dir: Path) -> str:
    """``LOCKGATE_WEBHOOK_SECRET`` when set, else the stack's own, generated once into an owner-only file."""
    configured = os.environ.get("LOCKGATE_WEBHOOK_SECRET")
    if configured:
        return configured
    path = Path(stack_dir) / WEBHOOK_SECRET_FILE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _ray_token(stack_dir: Path) -> Path:
    """The stack's Ray authentication token file (owner-only), generated once as Ray does."""
    path = Path(stack_dir) / RAY_TOKEN_FILE
    if not path.exists():
        _write_private(path, secrets.token_hex(32))
    return path


def webhook_secret_source(stack_dir: Path) -> str:
    """Where the stack's webhook secret comes from, for people (never the secret itself)."""
    if os.environ.get("LOCKGATE_WEBHOOK_SECRET"):
        return "LOCKGATE_WEBHOOK_SECRET (from your environment)"
    return str(Path(stack_dir).expanduser().resolve() / WEBHOOK_SECRET_FILE)


def _lakefs_credentials(data_dir: Path) -> tuple[str, str]:
    """The embedded server's key pair, created (owner-only, in its data dir) before it first starts."""
    from infra.lakefs_server.config import EmbeddedLakeFSSettings
    from infra.lakefs_server.server import load_or_create_credentials

    _make_private_dir(data_dir)
    return load_or_create_credentials(EmbeddedLakeFSSettings(data_dir=data_dir))


def write_env_file(stack_dir: Path, env: Mapping[str, str]) -> Path:
    """Write ``stack.env`` (owner-only: it holds secrets) with the variables a shell needs."""
    lines = [
        "# The lockgate stack started by `lockgate up`: `source` this file to point lockgate at it.",
        "# Owner-only: it holds the lakeFS and webhook secrets.",
    ]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in _CLIENT_VARIABLES if name in env]
    path = Path(stack_dir) / ENV_FILE
    _write_private(path, "\n".join(lines) + "\n")
    return path


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, or a note that there is none."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _check_existing(stack_dir: Path) -> StackState | None:
    """The running stack recorded here; removes a stale record; refuses a partly running one."""
    status = stack_status(stack_dir, probe=False)
    if status.state is None:
        return None
    if status.stale:
        _remove(stack_dir / STATE_FILE)
        return None
    if status.running:
        return status.state
    gone = ", ".join(s.name for s in status.services if s.state == "stopped")
    raise StackRunningError(
        f"the lockgate stack in {stack_dir} is partly running ({gone} stopped): "
        "run `lockgate down` first, then `lockgate up`"
    )


def _write_state(stack_dir: Path, state: StackState) -> None:
    _write_private(stack_dir / STATE_FILE, state.to_json())


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` owner-only and atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _stack_lock(stack_dir: Path) -> Iterator[None]:
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
