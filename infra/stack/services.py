"""The services of the stack: their command lines, environment and health probes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.processes import http_get
from infra.settings.workload import DATASET_VARIABLE, MODEL_NAME_VARIABLE
from infra.stack.config import SERVING, StackConfig

# Printed by `ray start --block` once every Ray process of the head node is up.
# Printed by `ray start --block` once every Ray process of the head node is up.
_RAY_READY_MARKER = "block forever"
# Variables a shell needs to reach the stack; `stack.env` exports these (not the services' internals).
CLIENT_VARIABLES = (
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
                return http_get(self.target) is not None
            if self.kind == "tcp":
                host, _, port = self.target.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=1):
                    return True
            if self.kind == "log":
                return self.target in log_path.read_text(errors="replace")
            if self.kind == "dask-workers":
                body = http_get(self.target)
                return body is not None and json.loads(body).get("workers", 0) >= self.minimum
            if self.kind == "prefect-deployments":
                return _deployments_updated_since(self.target, started_at)
        except (OSError, ValueError):
            return False
        raise ValueError(f"unknown probe kind {self.kind!r}")


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


def lakefs_action_token(webhook_secret: str) -> str:
    """The token the stack's lakeFS actions send the relay, derived from its webhook secret."""
    return hmac.new(webhook_secret.encode(), b"lockgate lakeFS action token", hashlib.sha256).hexdigest()


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
        # lakeFS actions authenticate to the relay with a token lakeFS reads from its environment
        # (`headers: {Authorization: "Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}"}`).
        "LOCKGATE_WEBHOOK_LAKEFS_TOKEN": lakefs_action_token(webhook_secret),
        "LAKEFSACTION_LOCKGATE_TOKEN": lakefs_action_token(webhook_secret),
        "LOCKGATE_WEBHOOK_STATE_DIR": str(config.stack_dir / "relay"),
        # The monitor reads serving SLOs from Ray's Prometheus export (one node here).
        "LOCKGATE_AUTOMATION_MONITOR_METRICS_URLS": json.dumps(
            [f"http://{host}:{ports.ray_metrics}/metrics"]
        ),
        "LOCKGATE_STACK_DIR": str(config.stack_dir),
        # What the deployments, the serving app and a shell that sourced stack.env work on.
        **({DATASET_VARIABLE: config.dataset} if config.dataset else {}),
        **({MODEL_NAME_VARIABLE: config.model_name} if config.model_name else {}),
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
                "-m",
                "flows.cli",
                "relay",
                "--host",
                host,
                "--port",
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
    return Path(__file__).resolve().parents[2]
