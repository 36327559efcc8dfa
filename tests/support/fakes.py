"""Fakes for the things a stage waits on: time, and a serving app's control plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from serving.routing import Route, RoutingTable
from serving.stats import VersionStats


class FakeClock:
    """A clock that only moves when slept on (or told to): stages that wait run at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds


@dataclass
class Behaviour:
    """How one version answers the fake traffic: requests per window, latency, errors, probabilities."""

    requests: int = 100
    latency_ms: float = 20.0
    error_every: int = 0  # every n-th request fails (0: none)
    probability: float = 0.3


@dataclass
class FakeTraffic:
    """A serving app's control plane in memory: routes, leases, and windows of synthetic traffic.

    Every window the rollout reads holds ``behaviour[version].requests`` requests for each version that
    answers (or shadows) in the epoch; ``lose_lease_after`` renewals make the lease fail.
    """

    champion: Route
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    poll_s: float = 0.5
    lose_lease_after: int | None = None
    epoch: int = 0
    routes: list[Route] = field(default_factory=list)
    history: list[tuple[int, list[Route], str]] = field(default_factory=list)
    renewals: int = 0

    def __post_init__(self) -> None:
        self.routes = [self.champion]

    def table(self) -> RoutingTable:
        return RoutingTable(tuple(self.routes), epoch=self.epoch)

    def set_routes(self, routes, *, reason: str, lease_s=None, fallback=None) -> int:
        self.epoch += 1
        self.routes = list(routes)
        self.history.append((self.epoch, list(routes), reason))
        return self.epoch

    def renew(self, lease_s: float) -> bool:
        self.renewals += 1
        return self.lose_lease_after is None or self.renewals <= self.lose_lease_after

    def window(self, epoch: int) -> dict[str, dict[str, Any]]:
        window = {}
        for route in self.routes:
            behaviour = self.behaviour.get(route.version, Behaviour())
            stats = VersionStats()
            for index in range(behaviour.requests):
                failed = bool(behaviour.error_every) and index % behaviour.error_every == 0
                stats.observe(
                    behaviour.latency_ms,
                    error=failed,
                    probabilities=() if failed else (behaviour.probability,),
                )
            window[route.version] = stats.to_dict()
        return window


@dataclass
class FakeServing:
    """A ``ServingBackend`` over ``FakeTraffic``: deploying makes a challenger route, retiring records it."""

    traffic: FakeTraffic | None
    app_name: str = "lockgate"
    on_cluster: bool = False
    fail_deploy: str | None = None
    deployed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def controller(self) -> FakeTraffic:
        from infra.errors import ServingError

        if self.traffic is None:
            raise ServingError(f"serving app {self.app_name!r} is not running on this Ray cluster")
        return self.traffic

    def deploy(self, version: str, *, faults=None) -> Route:
        from infra.errors import ServingError

        if self.fail_deploy:
            raise ServingError(self.fail_deploy)
        self.deployed.append(version)
        assert self.traffic is not None
        model_name = self.traffic.champion.model_name
        return Route(f"{self.app_name}-{model_name}-{version}", model_name, version, "challenger")

    def retire(self, app: str) -> None:
        self.retired.append(app)

    def start(self, version: str) -> str:
        self.started.append(version)
        return f"http://127.0.0.1:8100/{version}"
