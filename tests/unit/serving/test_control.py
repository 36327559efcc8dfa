"""Rollout control: epochs, per-epoch statistics, the rollout lease and its fallback (fake clocks)."""

from __future__ import annotations

import pytest

from infra.errors import InvalidInputError
from serving.control import RolloutControl
from serving.routing import Route, split
from serving.stats import VersionStats

CHAMPION = Route("app-v1", "loans-mlp", "v1", "champion")
CHALLENGER = Route("app-v2", "loans-mlp", "v2", "challenger")


def routes(challenger_weight: float | None = None, *, shadow: bool = False) -> list[dict]:
    """Route dicts: the champion alone (no weight given), or a rollout step of the challenger."""
    challenger = None if challenger_weight is None else CHALLENGER
    step = split(CHAMPION, challenger, challenger_weight=challenger_weight or 0.0, shadow=shadow)
    return [route.to_dict() for route in step]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def wall_clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def control(clock: FakeClock, wall_clock: FakeClock) -> RolloutControl:
    """Control of an app whose champion answers everything, at epoch 0."""
    return RolloutControl({"epoch": 0, "routes": routes()}, clock=clock, wall_clock=wall_clock)


def counts(latencies_ms: list[float], *, errors: int = 0, probabilities=()) -> dict:
    """One replica's counts for one version, as it reports them."""
    stats = VersionStats()
    for index, latency in enumerate(latencies_ms):
        stats.observe(latency, error=index < errors, probabilities=probabilities if index == 0 else ())
    return stats.to_dict()


# --- routes and epochs --------------------------------------------------------------------------------


def test_starts_empty_without_a_table(wall_clock: FakeClock) -> None:
    control = RolloutControl(clock=FakeClock(0.0), wall_clock=wall_clock)
    assert control.routing() == {"epoch": 0, "routes": []}
    assert [entry["reason"] for entry in control.history()] == ["initial routes"]


def test_starts_from_the_given_table(control: RolloutControl, wall_clock: FakeClock) -> None:
    assert control.routing() == {"epoch": 0, "routes": routes()}
    (entry,) = control.history()
    assert entry == {"time": wall_clock.now, "epoch": 0, "reason": "initial routes", **control.routing()}


def test_set_routes_opens_a_new_epoch_each_time(control: RolloutControl, wall_clock: FakeClock) -> None:
    assert control.set_routes(routes(0.0, shadow=True), reason="shadow v2") == 1
    wall_clock.advance(60)
    assert control.set_routes(routes(0.1), reason="v2 at 10%") == 2
    assert control.routing() == {"epoch": 2, "routes": routes(0.1)}
    history = control.history()
    assert [(entry["epoch"], entry["reason"]) for entry in history] == [
        (0, "initial routes"),
        (1, "shadow v2"),
        (2, "v2 at 10%"),
    ]
    assert history[-1]["routes"] == routes(0.1)
    assert history[-1]["time"] == wall_clock.now
    assert control.status()["window_started"] == wall_clock.now


def test_set_routes_refuses_invalid_routes_and_changes_nothing(control: RolloutControl) -> None:
    bad = routes(0.1)
    bad[1]["weight"] = 0.3  # 0.9 + 0.3
    with pytest.raises(InvalidInputError, match="must sum to 1"):
        control.set_routes(bad, reason="bad")
    assert control.routing() == {"epoch": 0, "routes": routes()}
    assert len(control.history()) == 1
    assert control.set_routes(routes(0.1), reason="good") == 1


def test_a_lease_needs_fallback_routes(control: RolloutControl) -> None:
    with pytest.raises(ValueError, match="needs fallback routes"):
        control.set_routes(routes(0.1), reason="v2 at 10%", lease_s=60)
    assert control.routing()["epoch"] == 0
    assert control.status()["rollout_lease_s"] is None


def test_invalid_fallback_routes_are_refused_and_change_nothing(control: RolloutControl) -> None:
    bad_fallback = routes()
    bad_fallback[0]["weight"] = 0.5
    with pytest.raises(InvalidInputError):
        control.set_routes(routes(0.1), reason="v2 at 10%", lease_s=60, fallback=bad_fallback)
    assert control.routing() == {"epoch": 0, "routes": routes()}
    assert control.status()["rollout_lease_s"] is None


# --- statistics per epoch ---------------------------------------------------------------------------


def test_report_merges_the_counts_of_every_replica(control: RolloutControl) -> None:
    epoch = control.set_routes(routes(0.5), reason="half")
    answer = control.report(epoch, {"v1": counts([10.0, 20.0]), "v2": counts([30.0], errors=1)})
    assert answer == control.routing()
    control.report(epoch, {"v2": counts([40.0, 50.0], probabilities=[0.3, 0.7])})
    window = control.window(epoch)
    assert set(window) == {"v1", "v2"}
    assert (window["v1"]["requests"], window["v1"]["errors"]) == (2, 0)
    assert (window["v2"]["requests"], window["v2"]["errors"], window["v2"]["records"]) == (3, 1, 2)
    expected = VersionStats.from_dict(counts([30.0], errors=1))
    expected.merge(VersionStats.from_dict(counts([40.0, 50.0], probabilities=[0.3, 0.7])))
    assert window["v2"] == expected.to_dict()


def test_window_of_an_epoch_without_reports_is_empty(control: RolloutControl) -> None:
    epoch = control.set_routes(routes(0.5), reason="half")
    assert control.window(epoch) == {}
    assert control.window(epoch + 5) == {}


def test_window_is_a_copy(control: RolloutControl) -> None:
    control.report(0, {"v1": counts([10.0])})
    window = control.window(0)
    window["v1"]["requests"] = 999
    assert control.window(0)["v1"]["requests"] == 1


def test_report_for_an_unknown_epoch_is_ignored(control: RolloutControl) -> None:
    epoch = control.set_routes(routes(0.5), reason="half")
    answer = control.report(epoch + 1, {"v2": counts([10.0])})
    assert answer == {"epoch": epoch, "routes": routes(0.5)}
    assert control.window(epoch + 1) == {}
    assert control.window(epoch) == {}


def test_late_report_for_a_kept_epoch_counts_in_that_epoch(control: RolloutControl) -> None:
    first = control.set_routes(routes(0.1), reason="10%")
    second = control.set_routes(routes(0.5), reason="50%")
    control.report(first, {"v2": counts([10.0] * 3)})
    assert control.window(first)["v2"]["requests"] == 3
    assert control.window(second) == {}


def test_old_epochs_are_evicted_after_eight(control: RolloutControl) -> None:
    watched = control.set_routes(routes(0.1), reason="watched")
    control.report(watched, {"v2": counts([10.0])})
    for step in range(7):  # the watched epoch and the seven after it are the eight kept
        control.set_routes(routes(0.1 + 0.05 * (step + 1)), reason=f"step {step}")
    control.report(watched, {"v2": counts([10.0])})
    assert control.window(watched)["v2"]["requests"] == 2

    control.set_routes(routes(0.9), reason="one more")
    assert control.window(watched) == {}
    control.report(watched, {"v2": counts([10.0])})  # too late now: the window is gone
    assert control.window(watched) == {}
    control.report(watched + 1, {"v2": counts([10.0])})  # the next one is still kept
    assert control.window(watched + 1)["v2"]["requests"] == 1


# --- the rollout lease ------------------------------------------------------------------------------


def test_renew_extends_the_lease(control: RolloutControl, clock: FakeClock) -> None:
    epoch = control.set_routes(routes(0.1), reason="10%", lease_s=60, fallback=routes())
    clock.advance(59)
    assert control.renew(60)
    clock.advance(59)  # 118 s after the lease was taken, 59 s after it was renewed
    assert control.routing() == {"epoch": epoch, "routes": routes(0.1)}
    assert control.status()["rollout_lease_s"] == pytest.approx(1.0)


def test_expired_lease_falls_back_with_a_new_epoch(
    control: RolloutControl, clock: FakeClock, wall_clock: FakeClock
) -> None:
    epoch = control.set_routes(routes(0.1), reason="10%", lease_s=60, fallback=routes())
    clock.advance(59.9)
    assert control.routing()["epoch"] == epoch
    clock.advance(0.1)  # the lease runs out at exactly 60 s
    wall_clock.advance(60)
    assert control.routing() == {"epoch": epoch + 1, "routes": routes()}
    last = control.history()[-1]
    assert last["reason"].startswith("rollout lease expired")
    assert (last["epoch"], last["routes"], last["time"]) == (epoch + 1, routes(), wall_clock.now)
    assert control.status()["window_started"] == wall_clock.now
    # Asking again does not fall back a second time.
    assert control.routing()["epoch"] == epoch + 1
    assert sum(entry["reason"].startswith("rollout lease expired") for entry in control.history()) == 1


def test_renew_after_expiry_returns_false_and_applies_the_fallback(
    control: RolloutControl, clock: FakeClock
) -> None:
    epoch = control.set_routes(routes(0.1), reason="10%", lease_s=30, fallback=routes())
    clock.advance(31)
    assert control.renew(30) is False
    assert control.routing() == {"epoch": epoch + 1, "routes": routes()}
    assert control.renew(30) is False
    assert control.status()["rollout_lease_s"] is None


def test_renew_without_a_lease_returns_false(control: RolloutControl, clock: FakeClock) -> None:
    epoch = control.set_routes(routes(0.1), reason="10%")
    assert control.renew(60) is False
    clock.advance(3_600)
    assert control.routing() == {"epoch": epoch, "routes": routes(0.1)}


def test_set_routes_without_a_lease_ends_the_current_one(control: RolloutControl, clock: FakeClock) -> None:
    control.set_routes(routes(0.1), reason="10%", lease_s=60, fallback=routes())
    epoch = control.set_routes(routes(1.0), reason="promoted")
    clock.advance(3_600)
    assert control.routing() == {"epoch": epoch, "routes": routes(1.0)}
    assert control.renew(60) is False


def test_report_and_status_also_apply_an_expired_lease(control: RolloutControl, clock: FakeClock) -> None:
    epoch = control.set_routes(routes(0.1), reason="10%", lease_s=10, fallback=routes())
    clock.advance(10)
    # The report was gathered under the rollout's epoch, so it counts there; the answer is the fallback.
    answer = control.report(epoch, {"v2": counts([10.0])})
    assert answer == {"epoch": epoch + 1, "routes": routes()}
    assert control.window(epoch)["v2"]["requests"] == 1

    epoch = control.set_routes(routes(0.2), reason="20%", lease_s=10, fallback=routes())
    clock.advance(10)
    assert control.status()["epoch"] == epoch + 1


# --- status -----------------------------------------------------------------------------------------


def test_status_contents(control: RolloutControl, clock: FakeClock, wall_clock: FakeClock) -> None:
    wall_clock.advance(5)
    epoch = control.set_routes(routes(0.25), reason="25%", lease_s=100, fallback=routes())
    started = wall_clock.now
    control.report(epoch, {"v1": counts([10.0] * 3), "v2": counts([20.0, 30.0], errors=1)})
    control.report(epoch - 1, {"v1": counts([10.0] * 50)})  # another window: not in the summary
    clock.advance(40)
    status = control.status()
    assert set(status) == {"epoch", "routes", "window_started", "window", "rollout_lease_s", "history"}
    assert status["epoch"] == epoch
    assert status["routes"] == routes(0.25)
    assert status["window_started"] == started
    assert status["rollout_lease_s"] == pytest.approx(60.0)
    assert status["window"]["v1"] == VersionStats.from_dict(counts([10.0] * 3)).summary()
    assert status["window"]["v2"]["requests"] == 2
    assert status["window"]["v2"]["error_rate"] == 0.5
    assert [entry["reason"] for entry in status["history"]] == ["initial routes", "25%"]


def test_status_shows_the_last_ten_history_entries(control: RolloutControl) -> None:
    for step in range(12):
        control.set_routes(routes(0.05 * (step + 1)), reason=f"step {step}")
    history = control.status()["history"]
    assert [entry["reason"] for entry in history] == [f"step {step}" for step in range(2, 12)]
    assert len(control.history()) == 13


def test_history_keeps_the_last_fifty_changes(control: RolloutControl) -> None:
    for step in range(60):
        control.set_routes(routes(), reason=f"change {step}")
    history = control.history()
    assert len(history) == 50
    assert history[0]["reason"] == "change 10"
    assert history[-1]["reason"] == "change 59"
