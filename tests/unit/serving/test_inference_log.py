"""Inference logging: batching by size and time, retries, bounded buffer, close, and log rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest

from serving.inference_log import BASE_COLUMNS, InferenceLogger, log_rows

AT = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
LONG_S = 60.0  # an interval or back-off no test waits for: only size, notify or close can end it


def rows(count: int, *, start: int = 0) -> list[dict]:
    return [{"time": AT, "request_id": f"r{index}", "value": index} for index in range(start, start + count)]


def wait_for(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(0.005)


class CollectingSink:
    """Keeps every batch it is given; fails its first ``failures`` calls with ``ConnectionError``."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.frames: list[pd.DataFrame] = []

    def __call__(self, frame: pd.DataFrame) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"lakeFS unreachable (call {self.calls})")
        self.frames.append(frame)

    @property
    def values(self) -> list[int]:
        return [int(value) for frame in self.frames for value in frame["value"]]


class FailingSink:
    """Never writes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: pd.DataFrame) -> None:
        self.calls += 1
        raise ConnectionError("lakeFS unreachable")


class GatedSink(CollectingSink):
    """Holds each write until ``release`` is set, so a test can act while a batch is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, frame: pd.DataFrame) -> None:
        self.entered.set()
        assert self.release.wait(5), "the test never released the sink"
        super().__call__(frame)


@pytest.fixture
def make_logger() -> Iterator[Callable[..., InferenceLogger]]:
    """Builds loggers and closes whatever a test left open, so no writer thread outlives its test."""
    made: list[InferenceLogger] = []

    def make(sink, **options) -> InferenceLogger:
        options.setdefault("retry_backoff_s", 0.01)
        made.append(InferenceLogger(sink, **options))
        return made[-1]

    yield make
    for logger in made:
        logger.close(timeout_s=0.5)


# --- writing ----------------------------------------------------------------------------------------


def test_flushes_by_size(make_logger) -> None:
    sink = CollectingSink()
    logger = make_logger(sink, flush_rows=10, flush_interval_s=LONG_S, capacity_rows=100)
    assert logger.log(rows(25)) == 0
    wait_for(lambda: logger.stats()["written"] == 20)
    assert [len(frame) for frame in sink.frames] == [10, 10]
    assert logger.stats()["pending"] == 5  # below flush_rows and long before the interval: kept
    stats = logger.close(timeout_s=1)
    assert [len(frame) for frame in sink.frames] == [10, 10, 5]
    assert sink.values == list(range(25))
    assert stats == {
        "logged": 25,
        "written": 25,
        "dropped": 0,
        "write_failures": 0,
        "batches": 3,
        "pending": 0,
        "last_error": None,
    }


def test_flushes_by_time(make_logger) -> None:
    sink = CollectingSink()
    logger = make_logger(sink, flush_rows=1_000, flush_interval_s=0.05)
    logger.log(rows(3))
    wait_for(lambda: logger.stats()["written"] == 3, timeout_s=1.0)
    assert sink.values == [0, 1, 2]
    logger.log(rows(2, start=3))
    wait_for(lambda: logger.stats()["written"] == 5, timeout_s=1.0)
    assert [len(frame) for frame in sink.frames] == [3, 2]


def test_close_writes_everything_left_without_waiting_for_the_interval(make_logger) -> None:
    sink = CollectingSink()
    logger = make_logger(sink, flush_rows=1_000, flush_interval_s=LONG_S)
    logger.log(rows(7))
    started = time.monotonic()
    stats = logger.close(timeout_s=5)
    assert time.monotonic() - started < 1.0
    assert (stats["written"], stats["pending"], stats["batches"]) == (7, 0, 1)
    assert sink.values == list(range(7))


def test_batches_are_dataframes_with_utc_times(make_logger) -> None:
    sink = CollectingSink()
    logger = make_logger(sink, flush_rows=2, flush_interval_s=LONG_S)
    logger.log([{"time": "2026-11-27T12:30:00+01:00", "value": 1}, {"time": AT, "value": 2}])
    wait_for(lambda: len(sink.frames) == 1)
    (frame,) = sink.frames
    assert list(frame.columns) == ["time", "value"]
    assert str(frame["time"].dt.tz) == "UTC"
    assert list(frame["time"]) == [pd.Timestamp("2026-11-27T11:30:00Z"), pd.Timestamp(AT)]


def test_a_failing_sink_is_retried_and_loses_nothing(make_logger) -> None:
    sink = CollectingSink(failures=3)
    logger = make_logger(sink, flush_rows=5, flush_interval_s=0.05)
    logger.log(rows(12))
    wait_for(lambda: logger.stats()["written"] == 12)
    assert sink.values == list(range(12))  # every row once, in order
    stats = logger.stats()
    assert stats["write_failures"] == 3
    assert stats["dropped"] == 0
    assert stats["last_error"] == "ConnectionError: lakeFS unreachable (call 3)"


# --- the bounded buffer -------------------------------------------------------------------------


def test_full_buffer_drops_and_counts_new_rows(make_logger) -> None:
    sink = GatedSink()
    drops: list[int] = []
    logger = make_logger(sink, flush_rows=5, flush_interval_s=LONG_S, capacity_rows=8, on_drop=drops.append)
    logger.log(rows(5))
    assert sink.entered.wait(2)  # five rows in flight still count against the capacity of eight
    assert logger.log(rows(6, start=5)) == 3  # room for three of the six
    assert logger.log(rows(4, start=11)) == 4
    assert drops == [3, 4]
    stats = logger.stats()
    assert (stats["logged"], stats["dropped"], stats["pending"]) == (8, 7, 8)
    sink.release.set()
    stats = logger.close(timeout_s=2)
    assert sink.values == list(range(8))
    assert (stats["written"], stats["dropped"], stats["pending"]) == (8, 7, 0)


def test_a_failed_batch_never_pushes_the_buffer_past_its_capacity(make_logger) -> None:
    calls = {"n": 0}

    def flaky(frame) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.2)  # rows logged meanwhile must leave room for this batch to come back
            raise ConnectionError("down")

    logger = make_logger(flaky, flush_rows=5, flush_interval_s=0.05, capacity_rows=10)
    logger.log(rows(5))
    time.sleep(0.05)
    logger.log(rows(10, start=5))  # only five fit beside the five in flight
    assert logger.stats()["pending"] <= 10
    stats = logger.close(timeout_s=2)
    assert (stats["written"], stats["dropped"]) == (10, 5)


def test_without_on_drop_drops_are_still_counted(make_logger) -> None:
    sink = GatedSink()
    logger = make_logger(sink, flush_rows=2, flush_interval_s=LONG_S, capacity_rows=2)
    logger.log(rows(2))
    assert sink.entered.wait(2)
    assert logger.log(rows(5, start=2)) == 5  # the two in flight fill the capacity of two
    assert logger.stats()["dropped"] == 5
    sink.release.set()


# --- close ------------------------------------------------------------------------------------------


def test_close_with_a_failing_sink_gives_up_and_counts_the_rows_as_dropped(make_logger) -> None:
    sink = FailingSink()
    drops: list[int] = []
    logger = make_logger(sink, flush_rows=4, flush_interval_s=LONG_S, on_drop=drops.append)
    logger.log(rows(10))
    started = time.monotonic()
    stats = logger.close(timeout_s=0.2)
    assert time.monotonic() - started < 1.0
    assert (stats["written"], stats["pending"], stats["dropped"]) == (0, 0, 10)
    assert stats["write_failures"] >= 1
    assert stats["last_error"] == "ConnectionError: lakeFS unreachable"
    assert drops == [10]
    calls = sink.calls
    time.sleep(0.05)
    assert sink.calls == calls  # the writer stopped


def test_close_keeps_retrying_until_its_timeout(make_logger) -> None:
    sink = CollectingSink(failures=5)
    logger = make_logger(sink, flush_rows=1_000, flush_interval_s=LONG_S)
    logger.log(rows(6))
    stats = logger.close(timeout_s=2)
    assert (stats["written"], stats["dropped"], stats["write_failures"]) == (6, 0, 5)
    assert sink.values == list(range(6))


def test_logging_after_close_counts_as_dropped(make_logger) -> None:
    sink = CollectingSink()
    drops: list[int] = []
    logger = make_logger(sink, flush_rows=10, flush_interval_s=LONG_S, on_drop=drops.append)
    logger.log(rows(2))
    logger.close(timeout_s=1)
    assert logger.log(rows(3, start=2)) == 3
    stats = logger.stats()
    assert (stats["logged"], stats["written"], stats["dropped"], stats["pending"]) == (2, 2, 3, 0)
    assert drops == [3]
    assert sink.values == [0, 1]


def test_close_returns_promptly_even_during_a_long_retry_backoff(make_logger) -> None:
    # close() wakes the writer out of its retry back-off (which grows to 30 s): a replica shutting down
    # while lakeFS is down must count the unwritten rows as dropped within its timeout, not return with
    # them silently pending. A back-off of 1 s against a 0.1 s timeout shows it in a short test.
    sink = FailingSink()
    logger = make_logger(sink, flush_rows=5, flush_interval_s=LONG_S, retry_backoff_s=1.0)
    logger.log(rows(5))
    wait_for(lambda: sink.calls >= 1)
    started = time.monotonic()
    stats = logger.close(timeout_s=0.1)
    elapsed = time.monotonic() - started
    assert stats["dropped"] == 5
    assert elapsed < 0.5, f"close(timeout_s=0.1) took {elapsed:.2f} s: the retry back-off was not interrupted"


# --- constructor --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"flush_rows": 0},
        {"flush_rows": 10, "capacity_rows": 9},
        {"flush_interval_s": 0},
        {"flush_interval_s": -1.0},
        {"retry_backoff_s": 0},
        {"retry_backoff_s": -1.0},
    ],
)
def test_constructor_refuses_bad_arguments(options: dict) -> None:
    with pytest.raises(ValueError, match="flush_rows >= 1"):
        InferenceLogger(CollectingSink(), **options)


# --- log rows ---------------------------------------------------------------------------------------


def test_log_rows_builds_one_row_per_record() -> None:
    records = [{"salary": 50_000.0, "age": 30}, {"salary": 90_000.0, "age": 45}, {"salary": 1.0, "age": 60}]
    result = log_rows(
        request_id="req-1",
        records=records,
        model_name="loans-mlp",
        model_version="v3",
        role="challenger",
        shadow=True,
        latency_ms=12,
        probabilities=[0.2, 0.5, 0.8],
        at=AT,
    )
    assert len(result) == 3
    for index, (row, record) in enumerate(zip(result, records, strict=True)):
        assert set(BASE_COLUMNS) <= set(row)
        assert set(row) == set(BASE_COLUMNS) | set(record)
        assert row["record_index"] == index
        assert (row["request_id"], row["time"], row["model_name"], row["model_version"]) == (
            "req-1",
            AT,
            "loans-mlp",
            "v3",
        )
        assert (row["role"], row["shadow"], row["status"]) == ("challenger", True, "ok")
        assert row["latency_ms"] == 12.0
        assert isinstance(row["latency_ms"], float)
        assert (row["salary"], row["age"]) == (record["salary"], record["age"])
    assert [row["probability"] for row in result] == [0.2, 0.5, 0.8]
    assert [row["prediction"] for row in result] == [0, 1, 1]  # probability >= threshold


def test_log_rows_applies_the_given_threshold() -> None:
    result = log_rows(
        request_id="req-2",
        records=[{}, {}, {}],
        model_name="m",
        model_version="v1",
        role="champion",
        shadow=False,
        latency_ms=1.0,
        probabilities=[0.5, 0.89, 0.9],
        threshold=0.9,
        at=AT,
    )
    assert [row["prediction"] for row in result] == [0, 0, 1]


def test_log_rows_of_a_failed_request_have_no_prediction() -> None:
    before = datetime.now(UTC)
    result = log_rows(
        request_id="req-3",
        records=[{"age": 1}, {"age": 2}],
        model_name="m",
        model_version="v1",
        role="champion",
        shadow=False,
        latency_ms=5.0,
        probabilities=None,
        status="error",
    )
    assert [(row["prediction"], row["probability"], row["status"]) for row in result] == [
        (None, None, "error"),
        (None, None, "error"),
    ]
    assert before <= result[0]["time"] <= datetime.now(UTC)  # stamped now, in UTC
    assert result[0]["time"] == result[1]["time"]


def test_log_rows_feed_the_logger(make_logger) -> None:
    sink = CollectingSink()
    logger = make_logger(sink, flush_rows=1_000, flush_interval_s=LONG_S)
    logger.log(
        log_rows(
            request_id="req-4",
            records=[{"age": 30}, {"age": 40}],
            model_name="m",
            model_version="v2",
            role="champion",
            shadow=False,
            latency_ms=3.0,
            probabilities=[0.1, 0.7],
            at=AT,
        )
    )
    logger.close(timeout_s=1)
    (frame,) = sink.frames
    assert set(BASE_COLUMNS) | {"age"} == set(frame.columns)
    assert list(frame["prediction"]) == [0, 1]
    assert list(frame["age"]) == [30, 40]


def test_a_feature_named_like_a_log_column_is_kept_under_a_prefix() -> None:
    from serving.inference_log import log_rows

    (row,) = log_rows(
        request_id="r",
        records=[{"time": 3, "age": 40}],
        model_name="m",
        model_version="v1",
        role="champion",
        shadow=False,
        latency_ms=1.0,
        probabilities=[0.7],
    )
    assert row["feature_time"] == 3 and row["age"] == 40
    assert row["time"] != 3 and row["prediction"] == 1


def test_rows_with_different_columns_stay_aligned(make_logger) -> None:
    written = []
    logger = make_logger(written.append, flush_rows=100, flush_interval_s=LONG_S)
    now = "2026-11-27T00:00:00Z"
    logger.log([{"time": now, "a": 1}, {"time": now, "b": 2}])
    logger.log([{"time": now, "a": 3, "b": 4}])
    logger.close(timeout_s=2)
    (frame,) = written
    assert frame["a"].tolist()[0] == 1 and frame["a"].isna().tolist() == [False, True, False]
    assert frame["b"].isna().tolist() == [True, False, False] and frame["b"].tolist()[2] == 4
