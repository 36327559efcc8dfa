"""Driver-side operations on the serving app: start it, add and retire versions, move traffic.

These run where a person or a flow drives the rollout (the CLI, ``deploy_flow``), connected to the Ray
cluster named by ``ServingSettings.ray_address``; the replicas themselves live in ``serving.app``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from contracts.rollout import FaultInjection
from infra.errors import RayUnavailableError, ServingError
from infra.processes import set_environment_defaults
from infra.settings import THROUGHPUT_ENVIRONMENT, LakeFSSettings, ServingSettings, require_model_name
from serving.control import control_actor, existing_control_actor
from serving.routing import Route, RoutingTable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingHandle:
    """A running serving app: where it answers and what it is called."""

    url: str
    app_name: str


def connect_ray(settings: ServingSettings) -> None:
    """Join the configured Ray cluster, or start a local one (once per process)."""
    import ray

    if ray.is_initialized():
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": settings.ray_log_to_driver,
    }
    if settings.ray_address:
        check_ray_address(settings.ray_address)
        try:
            ray.init(address=settings.ray_address, namespace="lockgate", **options)
        except ConnectionError as error:
            raise RayUnavailableError(_no_ray(settings.ray_address, error)) from error
        return
    if settings.metrics_export_port:
        options["_metrics_export_port"] = settings.metrics_export_port
    if settings.throughput_tuning:
        # Read by the Serve processes Ray starts from here; an explicit value in the environment wins.
        set_environment_defaults(THROUGHPUT_ENVIRONMENT)
    # Logical CPUs: replicas reserve fractions; real parallelism is whatever the machine has.
    # address="local": always a new local Ray, never one a `ray start` on this machine left running.
    ray.init(address="local", num_cpus=max(8, os.cpu_count() or 1), namespace="lockgate", **options)


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nothing listens on: Ray itself retries
    such an address for minutes before giving up."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as error:
        raise RayUnavailableError(_no_ray(address, error)) from error


def _no_ray(address: str, error: BaseException) -> str:
    return (
        f"no Ray cluster at {address!r} ({type(error).__name__}: {error}): start one with `lockgate up`, "
        "`lockgate serve` or `ray start --head`, or unset LOCKGATE_SERVING_RAY_ADDRESS to start a local Ray"
    )


def start_serving(
    settings: ServingSettings,
    *,
    lakefs: LakeFSSettings | None = None,
    ready_timeout_s: float = 120.0,
) -> ServingHandle:
    """Start Serve, the champion's model app and the ingress; return once the ingress answers.

    The champion is looked up in the registry once, to name its app by version (``v3``); when the
    registry is unreachable the app is named by the ref (``champion``) and loads when it can: ``/health``
    says not ready meanwhile, and nothing restarts in a loop. The request contract is that of the
    dataset the served version's card names, so no dataset setting is needed.

    Raises:
        ConfigurationError: ``settings`` name no model (``model_name``, ``LOCKGATE_MODEL_NAME``).
    """
    from ray import serve

    from serving.app import ingress_app, model_app, model_app_name

    require_model_name(settings.model_name)
    ref = _resolve_ref(settings, settings.initial_ref, lakefs)  # an unknown model fails before Ray starts
    connect_ray(settings)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    _check_proxy_port(settings)
    champion = Route(
        app=model_app_name(settings.app_name, settings.model_name, ref),
        model_name=settings.model_name,
        version=ref,
        role="champion",
        weight=1.0,
    )
    serve.run(model_app(settings, ref, lakefs=lakefs), name=champion.app, route_prefix=None, blocking=False)
    _reset_control(settings.app_name, [champion])
    serve.run(
        ingress_app(settings, [champion], lakefs=lakefs),
        name=settings.app_name,
        route_prefix=settings.route_prefix,
        blocking=False,
    )
    _wait_app_running(settings.app_name, ready_timeout_s)
    return ServingHandle(url=serving_url(settings), app_name=settings.app_name)


def _check_proxy_port(settings: ServingSettings) -> None:
    """Serve keeps the HTTP options it first started with: refuse to report a URL nothing answers on."""
    from ray.serve.context import _get_global_client  # no public accessor for the running options

    running = _get_global_client().http_config
    if running.port != settings.port:
        raise ServingError(
            f"Ray Serve already runs on this cluster with its HTTP proxy on port {running.port}, not "
            f"{settings.port}: use port {running.port} (LOCKGATE_SERVING_PORT) or shut that Serve down"
        )


def serving_url(settings: ServingSettings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}{settings.route_prefix.rstrip('/')}"


def stop_serving(settings: ServingSettings) -> None:
    """Delete the ingress first (its replicas flush their inference logs), then every model app."""
    from ray import serve

    from serving.app import model_app_name

    apps = list(serve.status().applications)
    if settings.app_name in apps:
        serve.delete(settings.app_name)  # first and to the end: no request reaches a model after it
    # This app's model versions only: another app may share the prefix (e.g. 'lockgate-canary').
    if settings.model_name:
        prefix = model_app_name(settings.app_name, settings.model_name, "")
        versions = [name for name in apps if name.startswith(prefix)]
        for name in versions:
            serve.delete(name, _blocking=False)  # all versions drain at once, not one after another
        deadline = time.monotonic() + 120
        while set(versions) & set(serve.status().applications) and time.monotonic() < deadline:
            time.sleep(0.1)
    _kill_control(settings.app_name)


def _reset_control(app_name: str, routes: list[Route]) -> None:
    """Create the control actor, or hand one left by an earlier run of the app fresh routes."""
    import ray
    from ray.exceptions import RayActorError

    for attempt in range(20):
        actor = control_actor(app_name, RoutingTable(tuple(routes)).to_dict())
        try:
            ray.get(
                actor.set_routes.remote([r.to_dict() for r in routes], reason="serving started"), timeout=30
            )
            return
        except RayActorError:  # an actor being killed still held the name
            time.sleep(0.1 * (attempt + 1))
    raise ServingError(f"could not create the rollout control actor of {app_name!r}")


def _kill_control(app_name: str) -> None:
    import ray

    with contextlib.suppress(ValueError):
        ray.kill(existing_control_actor(app_name))


def _resolve_ref(settings: ServingSettings, ref: str, lakefs: LakeFSSettings | None) -> str:
    from infra.clients import make_lakefs_client
    from infra.errors import ModelNotFoundError
    from tasks.registry import show_model

    try:
        return show_model(
            settings.model_name, ref, client=make_lakefs_client(lakefs or LakeFSSettings())
        ).version
    except ModelNotFoundError:
        raise
    except Exception as error:  # registry unreachable: the model app keeps trying on its own
        logger.warning("registry unreachable (%s): serving %s by ref, it loads when it can", error, ref)
        return ref


def _wait_app_running(app_name: str, timeout_s: float) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(app_name)
        if status is not None and status.status == "RUNNING":
            return
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise ServingError(f"Serve application {app_name!r} failed: {status.message}")
        if time.monotonic() > deadline:
            state = "absent" if status is None else f"{status.status}: {status.message}"
            raise ServingError(f"Serve application {app_name!r} not running after {timeout_s:g} s ({state})")
        time.sleep(0.2)


def deploy_version(
    settings: ServingSettings,
    version: str,
    *,
    lakefs: LakeFSSettings | None = None,
    faults: FaultInjection | None = None,
    timeout_s: float = 120.0,
) -> Route:
    """Start the model app of ``version`` (no traffic yet) and wait until it has verified its weights.

    Raises:
        ServingError: the app failed to start, or its model did not load (unknown version, tampered
            weights: the reason is in the message); the app is removed again, live versions untouched.
    """
    from ray import serve

    from serving.app import MODEL_DEPLOYMENT, model_app, model_app_name

    app = model_app_name(settings.app_name, require_model_name(settings.model_name), version)
    serve.run(
        model_app(settings, version, lakefs=lakefs, faults=faults),
        name=app,
        route_prefix=None,
        blocking=False,
    )
    try:
        _wait_app_running(app, timeout_s)
        handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=app)
        deadline = time.monotonic() + timeout_s
        while True:
            status = handle.status.remote().result(timeout_s=30)
            if status["state"] == "ready":
                break
            if status["state"] == "failed" or time.monotonic() > deadline:
                raise ServingError(f"{settings.model_name} {version} did not load: {status['reason']}")
            time.sleep(0.2)
    except BaseException:
        serve.delete(app)
        raise
    return Route(app=app, model_name=settings.model_name, version=version, role="challenger")


def retire(app: str) -> None:
    """Remove a model version's app (its replicas finish the requests they hold)."""
    from ray import serve

    serve.delete(app, _blocking=False)


class TrafficController:
    """Moves traffic through the app's control actor (the ingress replicas follow within a poll)."""

    def __init__(self, settings: ServingSettings) -> None:
        import ray

        connect_ray(settings)
        try:
            self.actor = existing_control_actor(settings.app_name)
        except ValueError as error:
            raise ServingError(
                f"serving app {settings.app_name!r} is not running on this Ray cluster: start it with "
                "`lockgate serve`"
            ) from error
        self._ray = ray
        self.poll_s = settings.control_poll_s

    def table(self) -> RoutingTable:
        return RoutingTable.from_dict(self._ray.get(self.actor.routing.remote(), timeout=30))

    def set_routes(
        self,
        routes: list[Route],
        *,
        reason: str,
        lease_s: float | None = None,
        fallback: list[Route] | None = None,
    ) -> int:
        return self._ray.get(
            self.actor.set_routes.remote(
                [r.to_dict() for r in routes],
                reason=reason,
                lease_s=lease_s,
                fallback=None if fallback is None else [r.to_dict() for r in fallback],
            ),
            timeout=30,
        )

    def renew(self, lease_s: float) -> bool:
        return self._ray.get(self.actor.renew.remote(lease_s), timeout=30)

    def window(self, epoch: int) -> dict[str, dict]:
        return self._ray.get(self.actor.window.remote(epoch), timeout=30)

    def status(self) -> dict[str, Any]:
        return self._ray.get(self.actor.status.remote(), timeout=30)


def ensure_control(settings: ServingSettings, routes: list[Route]):
    """Create the control actor with ``routes`` when it is missing (used by tests and the CLI)."""
    table = RoutingTable(tuple(routes))
    return control_actor(settings.app_name, table.to_dict())


class RayServing:
    """The serving app on the Ray cluster of ``settings`` (the ``ServingBackend`` rollouts drive).

    Args:
        settings: Where the app runs and how it is named.
        lakefs: Settings the model replicas build their registry client from.
    """

    def __init__(self, settings: ServingSettings, *, lakefs: LakeFSSettings) -> None:
        self.settings = settings
        self.lakefs = lakefs
        self.app_name = settings.app_name
        self.on_cluster = bool(settings.ray_address)

    def controller(self) -> TrafficController:
        return TrafficController(self.settings)

    def deploy(self, version: str, *, faults: FaultInjection | None) -> Route:
        return deploy_version(self.settings, version, lakefs=self.lakefs, faults=faults)

    def retire(self, app: str) -> None:
        retire(app)

    def start(self, version: str) -> str:
        return start_serving(
            self.settings.model_copy(update={"initial_ref": version}), lakefs=self.lakefs
        ).url
