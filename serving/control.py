"""The rollout control plane: which versions are live, with which weights, and what traffic showed.

``RolloutControl`` is plain Python (tested without Ray); ``control_actor`` runs it as one named,
detached Ray actor per serving app. Ingress replicas poll it for the routing table and push the
statistics they gathered, tagged with the epoch they were gathered in; ``deploy_flow`` sets routes
(each change opens a new epoch, i.e. a fresh measurement window) and reads the window's sums.

A rollout holds a lease: the flow renews it while it watches a step. If the flow dies (killed worker,
lost connection) the lease runs out and the table falls back to the champion on its own, so an
abandoned rollout never leaves a challenger with live traffic.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from serving.routing import RoutingTable
from serving.stats import VersionStats

CONTROL_NAMESPACE = "lockgate"
_KEPT_EPOCHS = 8
_HISTORY = 50


class RolloutControl:
    """Routing table, per-epoch statistics and the rollout lease of one serving app."""

    def __init__(self, table: dict | None = None, *, clock=time.monotonic, wall_clock=time.time) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._table = RoutingTable.from_dict(table) if table else RoutingTable(())
        self._stats: dict[int, dict[str, VersionStats]] = {}
        self._window_started: dict[int, float] = {self._table.epoch: wall_clock()}
        self._lease_expires: float | None = None
        self._fallback: RoutingTable | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self._record("initial routes")

    # -- routing ---------------------------------------------------------------------------------

    def routing(self) -> dict:
        """The current table (after applying an expired lease's fallback)."""
        self._check_lease()
        return self._table.to_dict()

    def set_routes(
        self,
        routes: list[dict],
        *,
        reason: str,
        lease_s: float | None = None,
        fallback: list[dict] | None = None,
    ) -> int:
        """Replace the routes (validated), open a new epoch, and return it.

        Args:
            routes: The new routes (``Route`` fields as a dict each).
            reason: Why (kept in the history shown by ``GET /models``).
            lease_s: Hold a rollout lease this long; ``None`` ends any lease.
            fallback: The routes to return to if the lease runs out (required with ``lease_s``).
        """
        self._check_lease()  # an expired rollout is recorded as such before it is replaced
        epoch = self._table.epoch + 1
        table = RoutingTable.from_dict({"epoch": epoch, "routes": routes})
        if lease_s is not None:
            if fallback is None:
                raise ValueError("a rollout lease needs fallback routes")
            self._fallback = RoutingTable.from_dict({"epoch": epoch + 1, "routes": fallback})
            self._lease_expires = self._clock() + lease_s
        else:
            self._fallback = None
            self._lease_expires = None
        self._install(table, reason)
        return epoch

    def renew(self, lease_s: float) -> bool:
        """Extend the rollout lease; ``False`` when there is none (it expired, or none was taken)."""
        self._check_lease()
        if self._lease_expires is None:
            return False
        self._lease_expires = self._clock() + lease_s
        return True

    def _check_lease(self) -> None:
        if self._lease_expires is not None and self._clock() >= self._lease_expires:
            fallback = self._fallback
            self._lease_expires = None
            self._fallback = None
            if fallback is not None:
                table = RoutingTable(fallback.routes, epoch=self._table.epoch + 1)
                self._install(table, "rollout lease expired: back to the champion")

    def _install(self, table: RoutingTable, reason: str) -> None:
        self._table = table
        self._window_started[table.epoch] = self._wall_clock()
        for old in sorted(self._window_started)[:-_KEPT_EPOCHS]:
            self._window_started.pop(old, None)
            self._stats.pop(old, None)
        self._record(reason)

    def _record(self, reason: str) -> None:
        self._history.append(
            {
                "time": self._wall_clock(),
                "epoch": self._table.epoch,
                "reason": reason,
                **self._table.to_dict(),
            }
        )

    # -- statistics ------------------------------------------------------------------------------

    def report(self, epoch: int, stats: dict[str, dict]) -> dict:
        """Add one replica's counts for ``epoch`` (per version); answers with the current table."""
        if epoch in self._window_started:
            window = self._stats.setdefault(epoch, {})
            for version, counts in stats.items():
                window.setdefault(version, VersionStats()).merge(VersionStats.from_dict(counts))
        return self.routing()

    def window(self, epoch: int) -> dict[str, dict]:
        """Summed counts per version seen in ``epoch`` (empty when nothing was reported)."""
        return {version: stats.to_dict() for version, stats in self._stats.get(epoch, {}).items()}

    def history(self) -> list[dict[str, Any]]:
        return list(self._history)

    def status(self) -> dict[str, Any]:
        """Table, lease and the current window's summary, for ``GET /models``."""
        table = self.routing()
        window = self._stats.get(self._table.epoch, {})
        lease = None if self._lease_expires is None else max(self._lease_expires - self._clock(), 0.0)
        return {
            **table,
            "window_started": self._window_started.get(self._table.epoch),
            "window": {version: stats.summary() for version, stats in window.items()},
            "rollout_lease_s": lease,
            "history": self.history()[-10:],
        }


def control_actor_name(app_name: str) -> str:
    return f"{app_name}-rollout-control"


def control_actor(app_name: str, initial: dict | None = None):
    """The app's control actor, created (detached, no CPU reserved) when it does not exist yet."""
    import ray

    actor_class = ray.remote(num_cpus=0)(RolloutControl)
    return actor_class.options(
        name=control_actor_name(app_name),
        namespace=CONTROL_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(initial)


def existing_control_actor(app_name: str):
    """The app's control actor; ``ValueError`` when the serving app was never started."""
    import ray

    return ray.get_actor(control_actor_name(app_name), namespace=CONTROL_NAMESPACE)
