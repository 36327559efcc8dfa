"""Inference logging: every prediction appended to a lakeFS repository as batched Parquet commits.

Off the request path: ``InferenceLogger.log`` only appends to a bounded in-memory buffer; a background
thread writes a Parquet object and commits it when the buffer holds ``flush_rows`` rows or
``flush_interval_s`` has passed, and ``close`` writes whatever is left (Ray Serve calls it on graceful
replica shutdown). When the buffer is full (the store is down for long), new rows are dropped and
counted, never silently: ``stats()["dropped"]`` and the ``lockgate_inference_log_dropped`` metric say
how many. A failed write keeps its rows and is retried with back-off.

The format (paths, columns, ``log_rows``) is ``contracts.inference_log``, shared with the readers:
one object per flush, one commit per flush (metadata: rows, writer, first/last time, versions), so
monitoring reads what arrived between two commits with a lakeFS diff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from contracts.inference_log import BASE_COLUMNS, empty_log, log_object_path, log_rows
from infra.errors import NoChangesError
from tasks import versioning

__all__ = ["BASE_COLUMNS", "InferenceLogger", "LakeFSInferenceSink", "log_rows", "read_inference_log"]

logger = logging.getLogger(__name__)

Sink = Callable[[pd.DataFrame], None]


class LakeFSInferenceSink:
    """Writes one batch of log rows as a Parquet object on a branch and commits it.

    The repository is created on first use (not at construction), so a lakeFS that is down while the
    server starts only delays logging.
    """

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        repository: str,
        branch: str = "main",
        writer: str | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._client = None
        self.repository = repository
        self.branch = branch
        self.writer = writer or uuid.uuid4().hex[:12]
        self._sequence = 0
        self._ready = False

    def __call__(self, frame: pd.DataFrame) -> None:
        if self._client is None:
            self._client = self._client_factory()
        client = self._client
        if not self._ready:
            versioning.ensure_default_repository(self.repository, client=client)
            self._ready = True
        self._sequence += 1
        first, last = frame["time"].min(), frame["time"].max()
        path = log_object_path(first, self.writer, self._sequence)
        versioning.write_dataframe(
            frame, repository=self.repository, branch=self.branch, path=path, client=client
        )
        versions = sorted(set(frame["model_version"].astype(str)))
        # NoChangesError: another writer's commit on the same branch took our staged object with it.
        with contextlib.suppress(NoChangesError):
            versioning.commit_changes(
                self.repository,
                self.branch,
                message=f"inference log: {len(frame)} row(s) from {self.writer}",
                metadata={
                    "lockgate.kind": "inference-log",
                    "lockgate.rows": str(len(frame)),
                    "lockgate.writer": self.writer,
                    "lockgate.path": path,
                    "lockgate.first_time": first.isoformat(),
                    "lockgate.last_time": last.isoformat(),
                    "lockgate.model_versions": ",".join(versions),
                },
                client=client,
            )


class InferenceLogger:
    """A bounded buffer of log rows, flushed by a background thread by size or time.

    Args:
        sink: Writes one batch (a DataFrame); raises on failure (the batch is then retried).
        flush_rows: Write as soon as this many rows are buffered.
        flush_interval_s: Write at least this often while rows are buffered.
        capacity_rows: Most rows held; beyond it, new rows are dropped and counted.
        on_drop: Called with the number of rows dropped (e.g. to bump a metric).
        retry_backoff_s: First wait after a failed write (doubles up to 30 s).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        flush_rows: int = 5_000,
        flush_interval_s: float = 5.0,
        capacity_rows: int = 200_000,
        on_drop: Callable[[int], None] | None = None,
        retry_backoff_s: float = 0.5,
    ) -> None:
        if flush_rows < 1 or capacity_rows < flush_rows or flush_interval_s <= 0 or retry_backoff_s <= 0:
            raise ValueError(
                "need flush_rows >= 1, capacity_rows >= flush_rows, flush_interval_s > 0 and "
                "retry_backoff_s > 0"
            )
        self._sink = sink
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._capacity = capacity_rows
        self._on_drop = on_drop
        self._retry_backoff_s = retry_backoff_s
        self._rows = _ColumnBuffer()
        self._in_flight = 0  # rows handed to the sink: they count against the capacity until written
        self._lock = threading.Condition()
        self._closing = False
        self._counts = {"logged": 0, "written": 0, "dropped": 0, "write_failures": 0, "batches": 0}
        self._last_error: str | None = None
        self._close_deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="lockgate-inference-log", daemon=True)
        self._thread.start()

    def log(self, rows: list[dict[str, Any]]) -> int:
        """Buffer ``rows`` (never blocks on I/O; the dicts are kept, not copied).

        Returns:
            How many rows were dropped: the buffer was full, or the logger is closed.
        """
        with self._lock:
            if self._closing:
                accepted, why = 0, "the inference log is closed"
            else:
                accepted = max(min(len(rows), self._capacity - len(self._rows) - self._in_flight), 0)
                why = "inference log buffer full"
                self._rows.extend(rows if accepted == len(rows) else rows[:accepted])
                self._counts["logged"] += accepted
                if len(self._rows) >= self._flush_rows:
                    self._lock.notify()
            dropped = len(rows) - accepted
            self._counts["dropped"] += dropped
        if dropped:
            logger.warning("%s: dropped %d row(s)", why, dropped)
            if self._on_drop is not None:
                self._on_drop(dropped)
        return dropped

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._counts,
                "pending": len(self._rows) + self._in_flight,
                "last_error": self._last_error,
            }

    def close(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Write everything still buffered (retrying until ``timeout_s``), stop the thread, return stats.

        Rows that could not be written by then are counted as dropped (and passed to ``on_drop``); a write
        still running at the deadline is counted when it fails, or as written when it succeeds.
        """
        with self._lock:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout_s
            self._lock.notify_all()
        self._thread.join(max(timeout_s, 0) + 1)
        if self._thread.is_alive():
            self._give_up()
        return self.stats()

    # -- background thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._retry_backoff_s
        while True:
            with self._lock:
                deadline = time.monotonic() + self._flush_interval_s
                while not self._closing and len(self._rows) < self._flush_rows:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
                if self._closing and time.monotonic() >= self._close_deadline and self._rows:
                    batch = []
                    give_up = True
                else:
                    batch = self._rows.take(self._flush_rows)
                    give_up = False
                    self._in_flight = _length(batch)
                if not batch and self._closing:
                    if give_up:
                        break
                    return
            if not batch:
                continue
            try:
                self._sink(_frame(batch))
            except Exception as error:  # the store is down or refused: keep the rows, retry later
                with self._lock:
                    self._in_flight = 0
                    self._rows.put_back(batch)
                    self._counts["write_failures"] += 1
                    self._last_error = f"{type(error).__name__}: {error}"
                    closing = self._closing
                    out_of_time = closing and time.monotonic() >= self._close_deadline
                    if not out_of_time:
                        logger.warning("inference log write failed (%s); retrying in %.1f s", error, backoff)
                        # Woken early by close(): it must not wait out a long back-off.
                        self._lock.wait(min(backoff, max(self._close_deadline - time.monotonic(), 0)))
                if out_of_time:
                    break
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = self._retry_backoff_s
            with self._lock:
                self._in_flight = 0
                self._counts["written"] += _length(batch)
                self._counts["batches"] += 1
        self._give_up()

    def _give_up(self) -> None:
        with self._lock:
            lost = len(self._rows)
            self._rows.clear()
            self._counts["dropped"] += lost
        if lost:
            logger.error("inference log closed with %d unwritten row(s): %s", lost, self._last_error)
            if self._on_drop is not None:
                self._on_drop(lost)


class _ColumnBuffer:
    """Buffered rows kept as one list per column.

    Values (floats, strings, timestamps) are not containers, so however many rows wait, the garbage
    collector has a few lists to scan, not one dict per row: a per-row buffer slowed every request of
    the serving process by making each collection longer.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def extend(self, rows: list[dict[str, Any]]) -> None:
        columns = self.columns
        for row in rows:
            count = self.count
            for key, value in row.items():
                column = columns.get(key)
                if column is None:
                    column = columns[key] = [None] * count
                column.append(value)
            self.count = count + 1
            if len(row) != len(columns):  # a row without some column: keep the columns aligned
                for column in columns.values():
                    if len(column) < self.count:
                        column.append(None)

    def take(self, limit: int) -> dict[str, list[Any]]:
        """Remove and return (as columns) the first ``limit`` rows."""
        if limit >= self.count:
            batch, self.columns, self.count = self.columns, {}, 0
            return batch
        batch = {key: column[:limit] for key, column in self.columns.items()}
        self.columns = {key: column[limit:] for key, column in self.columns.items()}
        self.count -= limit
        return batch

    def put_back(self, batch: dict[str, list[Any]]) -> None:
        """Return rows taken by ``take`` to the front."""
        size = _length(batch)
        merged = {}
        for key in batch.keys() | self.columns.keys():
            merged[key] = batch.get(key, [None] * size) + self.columns.get(key, [None] * self.count)
        self.columns, self.count = merged, self.count + size

    def clear(self) -> None:
        self.columns, self.count = {}, 0


def _length(columns: dict[str, list[Any]]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _frame(columns: dict[str, list[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def read_inference_log(client, *, repository: str, ref: str = "main") -> pd.DataFrame:
    """Every logged row at ``ref`` (an empty frame when nothing was logged yet)."""
    from contracts.inference_log import LOG_PREFIX, PARQUET_SUFFIX

    paths = versioning.list_objects(
        repository, ref=ref, prefix=LOG_PREFIX, suffix=PARQUET_SUFFIX, client=client
    )
    frame = versioning.read_parquet_objects(repository, ref=ref, paths=paths, client=client)
    return empty_log() if frame is None else frame
