"""What issue 14's hardening costs: the embedded lakeFS server as shipped vs the same server with the
hardening taken out (``bench/_lakefs_unhardened.py``: blocks published by replacing instead of
no-clobber links, uvicorn's plain protocol without the request-head limit and timeout, no JSON body
limit), on the same machine in the same run, rounds alternating between the two (aim: at least 0.97x).

1. small requests: object stats through the official SDK (every request pays the head checks);
2. small uploads: 1 KiB objects uploaded through the SDK (each one a block published);
3. bulk: a large object uploaded and read back through the SDK (MiB/s).

The serving app's ``/predict`` gained no per-request check in this issue (its authentication is left to
a gateway, see the README's threat model), so it has no on/off pair to measure.

Run: ``.venv/bin/python bench/bench_hardening.py [--small]``; it prints each figure, both variants and
the ratio hardened/unhardened.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lakefs

from infra.lakefs_server.launcher import EmbeddedLakeFS

MIB = 1024 * 1024
UNHARDENED = Path(__file__).with_name("_lakefs_unhardened.py")
KEYS = {
    "LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID": "AKIALGBENCHHARDENING",
    "LOCKGATE_EMBEDDED_LAKEFS_SECRET_ACCESS_KEY": "bench-hardening-secret-" + "x" * 20,
}


class UnhardenedLakeFS(EmbeddedLakeFS):
    server_command = (sys.executable, str(UNHARDENED))


def _stats(repo: lakefs.Repository, count: int) -> float:
    objects_api = repo._client.sdk_client.objects_api  # the SDK's StoredObject caches its stat
    started = time.perf_counter()
    for _ in range(count):
        objects_api.stat_object(repo.id, "main", "small/stat-me")
    return count / (time.perf_counter() - started)


def _uploads(repo: lakefs.Repository, count: int, round_number: int) -> float:
    branch = repo.branch("main")
    payload = os.urandom(1024)
    started = time.perf_counter()
    for index in range(count):
        branch.object(f"small/{round_number}/{index:05d}").upload(payload, pre_sign=False)
    return count / (time.perf_counter() - started)


def _bulk(repo: lakefs.Repository, payload: bytes, round_number: int) -> float:
    obj = repo.branch("main").object(f"bulk/{round_number}")
    started = time.perf_counter()
    obj.upload(payload, pre_sign=False)
    with obj.reader(pre_sign=False) as reader:
        assert reader.read() == payload
    return 2 * len(payload) / MIB / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a quick smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant, alternating")
    arguments = parser.parse_args()
    requests = 100 if arguments.small else 2_000
    uploads = 50 if arguments.small else 1_000
    bulk_mib = 8 if arguments.small else 128
    payload = os.urandom(MIB) * bulk_mib

    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "hardened": EmbeddedLakeFS(Path(tmp, "hardened"), env=KEYS),
            "unhardened": UnhardenedLakeFS(Path(tmp, "unhardened"), env=KEYS),
        }
        repos = {}
        for name, server in servers.items():
            server.start()
            repo = lakefs.Repository("bench", client=server.client()).create(
                storage_namespace="local://bench"
            )
            repo.branch("main").object("small/stat-me").upload(b"x", pre_sign=False)
            repos[name] = repo
        try:
            workloads: dict[str, Callable[[lakefs.Repository, int], float]] = {
                f"object stat (requests/s, {requests:,} per round)": lambda repo, _: _stats(repo, requests),
                f"1 KiB upload (objects/s, {uploads:,} per round)": lambda repo, r: _uploads(
                    repo, uploads, r
                ),
                f"{bulk_mib} MiB upload + download (MiB/s)": lambda repo, r: _bulk(repo, payload, r),
            }
            for label, workload in workloads.items():
                for name in repos:
                    workload(repos[name], -1)  # warm-up round, not counted
                for round_number in range(arguments.rounds):
                    order = list(repos) if round_number % 2 == 0 else list(reversed(repos))
                    for name in order:
                        figures.setdefault(label, {}).setdefault(name, []).append(
                            workload(repos[name], round_number)
                        )
        finally:
            for server in servers.values():
                server.stop()

    print(f"\n== embedded lakeFS: hardened vs unhardened, median of {arguments.rounds} alternating rounds ==")
    for label, by_variant in figures.items():
        hardened = statistics.median(by_variant["hardened"])
        unhardened = statistics.median(by_variant["unhardened"])
        ratio = hardened / unhardened
        verdict = "ok" if ratio >= 0.97 else "under the 0.97x aim"
        spread = max((max(runs) - min(runs)) / statistics.median(runs) for runs in by_variant.values())
        print(
            f"{label}: hardened {hardened:,.1f}, unhardened {unhardened:,.1f}: {ratio:.3f}x ({verdict}; "
            f"rounds spread up to {spread:.0%} of the median)"
        )


if __name__ == "__main__":
    main()
