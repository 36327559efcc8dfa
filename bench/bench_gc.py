"""Garbage collection and retention of the embedded lakeFS-API server, against baselines of the same run.

1. GC time on a repository of 100,000 objects with 10 % garbage (10,000 blocks only an expired commit
   references) vs listing the same objects through the SDK (aim: GC within a few listings).
2. Disk used by a week of simulated serving load (inference-log flushes every hour, a report a day),
   without retention vs with the daily retention job and GC (logs kept 2 days, GC rules 1 day).

Run: ``.venv/bin/python bench/bench_gc.py [--small]`` (``--small`` shrinks the repository for a quick
check). It prints one line per figure and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lakefs
import numpy as np
import pandas as pd

from contracts.inference_log import log_object_path
from infra.lakefs_server.blockstore import LocalBlockStore
from infra.lakefs_server.gc import GarbageCollector, GcRules, request_gc
from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.lakefs_server.store import Store
from infra.naming import INFERENCE_REPOSITORY, MONITORING_REPOSITORY
from tasks.retention import RetentionPolicy, run_retention


class _At:
    """A clock pinned at one moment (the simulated day's end)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


DAY = 86_400
MIB = 1024 * 1024


def _write_blocks(data_dir: Path, repository: str, count: int) -> list[list]:
    """``count`` distinct 64-byte blocks written straight into the block store; their entries."""
    folder = data_dir / "blocks" / repository / "data"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    now = int(time.time())
    for _ in range(count):
        name = uuid.uuid4().hex
        data = name.encode() * 2
        (folder / name).write_bytes(data)
        entries.append(
            [f"local://{repository}/data/{name}", hashlib.md5(data).hexdigest(), 64, now, "text/plain", {}]
        )
    return entries


def _populate(data_dir: Path, repository: str, objects: int) -> None:
    """Setup only, straight into the store: commit 1 (40 days ago) writes ``objects`` objects, commit 2
    (39 days ago) rewrites 10 % of them, commit 3 (now) adds one. With 7-day rules commit 1 expires:
    the 10 % it alone references are the garbage."""
    store = Store(data_dir / "metadata.db")
    store.create_repository(repository, storage_namespace=f"local://{repository}", default_branch="main")
    first = _write_blocks(data_dir, repository, objects)
    paths = [f"tables/part-{index:07d}.parquet" for index in range(objects)]
    store.stage_entries(repository, "main", list(zip(paths, first, strict=True)))
    store.commit(
        repository, "main", message="v1", metadata={}, committer="bench", date=int(time.time() - 40 * DAY)
    )
    rewritten = paths[::10]
    second = _write_blocks(data_dir, repository, len(rewritten))
    store.stage_entries(repository, "main", list(zip(rewritten, second, strict=True)))
    store.commit(
        repository, "main", message="v2", metadata={}, committer="bench", date=int(time.time() - 39 * DAY)
    )
    (extra,) = _write_blocks(data_dir, repository, 1)
    store.stage_entries(repository, "main", [("README.md", extra)])
    store.commit(repository, "main", message="v3", metadata={}, committer="bench")
    store.set_gc_rules(repository, GcRules(7).to_json())


def bench_gc_vs_listing(objects: int) -> None:
    print(f"\n== GC of {objects:,} objects with 10 % garbage vs listing them ==")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        _populate(data_dir, "gc-bench", objects)
        print(
            f"setup: {objects + objects // 10 + 1:,} blocks written in {time.perf_counter() - started:.1f} s"
        )
        with EmbeddedLakeFS(data_dir) as server:
            repo = lakefs.Repository("gc-bench", client=server.client())
            started = time.perf_counter()
            listed = sum(1 for _ in repo.ref("main").objects())
            listing = time.perf_counter() - started
            print(f"list {listed:,} objects through the SDK: {listing:.2f} s")
            started = time.perf_counter()
            dry = request_gc(
                server.endpoint,
                *server.credentials,
                "gc-bench",
                dry_run=True,
                min_age_hours=0,
                addresses=False,
            )
            dry_s = time.perf_counter() - started
            started = time.perf_counter()
            real = request_gc(
                server.endpoint, *server.credentials, "gc-bench", min_age_hours=0, addresses=False
            )
            gc_s = time.perf_counter() - started
            assert dry["deleted_blocks"] == real["deleted_blocks"] == objects // 10, real
            print(
                f"GC dry run: {dry_s:.2f} s; GC: {gc_s:.2f} s, {real['deleted_blocks']:,} blocks deleted of "
                f"{real['scanned_blocks']:,} (server's own timing {real['seconds']:.2f} s)"
            )
            print(f"ratio GC / listing: {gc_s / listing:.2f}x; dry run / listing: {dry_s / listing:.2f}x")


def _log_frame(rows: int, rng: np.random.Generator) -> bytes:
    frame = pd.DataFrame(
        {
            "request_id": [uuid.uuid4().hex for _ in range(rows)],
            "score": rng.random(rows),
            "features": [os.urandom(24).hex() for _ in range(rows)],
        }
    )
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


def _disk(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


def _simulate(data_dir: Path, *, retention: bool, days: int, flushes: int, rows: int) -> list[int]:
    """One simulated ``days``-day serving load; the disk used at the end of each day."""
    rng = np.random.default_rng(7)
    # The simulated week starts now and runs ahead of the wall clock, so every block this process writes
    # is older than the simulated "now" of each day's retention and GC (which take that clock).
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    used = []
    policy = RetentionPolicy(inference_log_days=2, report_days=2, gc_retention_days=1)
    with EmbeddedLakeFS(data_dir) as server:
        client = server.client()
        inference = (
            lakefs.Repository(INFERENCE_REPOSITORY, client=client)
            .create(storage_namespace=f"local://{INFERENCE_REPOSITORY}")
            .branch("main")
        )
        monitoring = (
            lakefs.Repository(MONITORING_REPOSITORY, client=client)
            .create(storage_namespace=f"local://{MONITORING_REPOSITORY}")
            .branch("main")
        )
        store = Store(data_dir / "metadata.db")
        blocks = LocalBlockStore(data_dir / "blocks", data_dir / "tmp-bench")
        for day in range(days):
            for flush in range(flushes):
                moment = start + timedelta(days=day, hours=24 * flush / flushes)
                inference.object(log_object_path(moment, "replica-1", day * flushes + flush)).upload(
                    _log_frame(rows, rng), pre_sign=False
                )
                inference.commit(message="flush", date=int(moment.timestamp()))
            report_time = start + timedelta(days=day, hours=23)
            monitoring.object(f"reports/m/run-{day}/report.html").upload(
                os.urandom(64 * 1024), pre_sign=False
            )
            monitoring.commit(message="report", date=int(report_time.timestamp()))
            day_end = start + timedelta(days=day + 1)
            if retention:
                run_retention(policy, client=client, clock=_At(day_end))
                for repository in (INFERENCE_REPOSITORY, MONITORING_REPOSITORY):
                    GarbageCollector(store, blocks, clock=day_end.timestamp).run(
                        repository, dry_run=False, min_age_seconds=0
                    )
            used.append(_disk(data_dir))
    return used


def bench_week(days: int, flushes: int, rows: int) -> None:
    load = f"{flushes} log flushes a day, {rows} rows each"
    print(f"\n== disk over a simulated {days}-day serving load ({load}) ==")
    with tempfile.TemporaryDirectory() as tmp:
        without = _simulate(Path(tmp, "without"), retention=False, days=days, flushes=flushes, rows=rows)
        with_ = _simulate(Path(tmp, "with"), retention=True, days=days, flushes=flushes, rows=rows)
    print("day  without retention  with retention + GC")
    for day, (a, b) in enumerate(zip(without, with_, strict=True), start=1):
        print(f"{day:>3}  {a / MIB:>14.1f} MiB  {b / MIB:>14.1f} MiB")
    print(
        f"ratio after {days} days, with / without: {with_[-1] / without[-1]:.2f}x "
        f"({(without[-1] - with_[-1]) / MIB:.1f} MiB saved)"
    )
    growth = [b - a for a, b in zip(with_[2:], with_[3:], strict=False)]
    if growth:
        print(f"with retention, growth per day once steady: {np.mean(growth) / MIB:+.2f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 10,000-object repository, a 4-day load")
    args = parser.parse_args()
    bench_gc_vs_listing(10_000 if args.small else 100_000)
    bench_week(
        days=4 if args.small else 7, flushes=12 if args.small else 24, rows=500 if args.small else 2000
    )


if __name__ == "__main__":
    main()
