"""What the stack starts and where: ports, the stack directory, the config ``start_stack`` takes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import psutil

from infra.errors import PortInUseError
from infra.processes import free_ports, port_is_free
from infra.settings.stack import DEFAULT_STACK_DIR

STATE_FILE = "state.json"
ENV_FILE = "stack.env"
WEBHOOK_SECRET_FILE = "webhook-secret"
RAY_TOKEN_FILE = "ray-auth-token"
LOCK_FILE = ".lock"
STATE_VERSION = 1

SERVING = "serving"
WAITING_FOR_CHAMPION = "waiting for a champion (deploy_flow starts it)"


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
        missing = [port_field.name for port_field in fields(cls) if port_field.name not in chosen]
        chosen |= dict(zip(missing, free_ports(len(missing), host), strict=True))
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
        webhook_secret: The relay's webhook secret (``StackSettings.webhook_secret``); ``None``: the
            stack's own, generated once into an owner-only file.
        dataset: The dataset the stack's deployments, serving app and ``stack.env`` work on
            (``LOCKGATE_DATASET``); ``None``: whatever the environment of each service says.
        model_name: The model they work on (``LOCKGATE_MODEL_NAME``); ``None``: the environment's.
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
    webhook_secret: str | None = None
    dataset: str | None = None
    model_name: str | None = None

    def resolved(self) -> StackConfig:
        """The same config with ``stack_dir`` made absolute (``~`` expanded)."""
        return replace(self, stack_dir=Path(self.stack_dir).expanduser().resolve())


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


__all__ = ["DEFAULT_STACK_DIR"]
