"""Benchmarks of the embedded lakeFS-API server, each against a baseline measured in the same run.

1. Commit and merge cost against repository size: 10 changed objects committed (and merged) on a
   branch holding 100,000 objects vs one holding 1,000 (aim: at most 3x).
2. Upload + download of a 256 MiB object through the official SDK vs copying the same bytes on
   local disk there and back (aim: SDK throughput at least 1/3 of the disk's).
3. Server peak memory (VmHWM) while uploading a 1 GiB object (aim: under 200 MiB).

Run: ``.venv/bin/python bench/bench_lakefs.py [--small]`` (``--small`` shrinks every size for a
quick check). It prints one line per figure and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import lakefs
from lakefs_sdk import CommitCreation, Merge

from infra.lakefs_server.blockstore import LocalBlockStore, new_address
from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.lakefs_server.store import Store

MIB = 1024 * 1024


def _populate(data_dir: Path, repository: str, count: int) -> None:
    """Create ``repository`` with ``count`` committed objects on main, written straight into the store.

    Setup only: pushing 100,000 uploads through HTTP would take minutes and measure uploads, not
    commits. All the measured operations below go through the SDK over HTTP.
    """
    store = Store(data_dir / "metadata.db")
    namespace = f"local://{repository}"
    store.create_repository(repository, storage_namespace=namespace, default_branch="main")
    blocks = LocalBlockStore(data_dir / "blocks", data_dir / "tmp")
    address = new_address(namespace)
    writer = blocks.writer(address)
    writer.write(b"x" * 64)
    size, checksum = writer.finish()
    now = int(time.time())
    entries = [
        (f"tables/part-{index:07d}.parquet", [address, checksum, size, now, "application/octet-stream", {}])
        for index in range(count)
    ]
    store.stage_entries(repository, "main", entries)
    store.commit(repository, "main", message=f"{count} objects", metadata={}, committer="bench")


def bench_commit_scaling(rounds: int, sizes: tuple[int, int]) -> None:
    print(f"\n== commit and merge cost vs repository size ({sizes[0]:,} vs {sizes[1]:,} objects) ==")
    timings: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        for count in sizes:
            _populate(data_dir, f"scale-{count}", count)
        with EmbeddedLakeFS(data_dir) as server:
            sdk = server.client().sdk_client
            client = server.client()
            for count in sizes:
                repo = lakefs.Repository(f"scale-{count}", client=client)
                commit_times, merge_times = [], []
                for round_number in range(rounds):
                    branch = repo.branch(f"work-{round_number}").create(source_reference="main")
                    for index in range(10):
                        # Changes spread over the key space: 10 different leaves of the tree.
                        slot = (index * count // 10 + round_number) % count
                        branch.object(f"tables/part-{slot:07d}.parquet").upload(
                            f"{round_number}-{index}".encode(), pre_sign=False
                        )
                    started = time.perf_counter()
                    sdk.commits_api.commit(
                        repo.id, branch.id, CommitCreation(message=f"round {round_number}")
                    )
                    commit_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    sdk.refs_api.merge_into_branch(repo.id, branch.id, "main", merge=Merge(message="merge"))
                    merge_times.append(time.perf_counter() - started)
                timings[count] = {
                    "commit": statistics.median(commit_times),
                    "merge": statistics.median(merge_times),
                }
                print(
                    f"{count:>9,} objects: commit {timings[count]['commit'] * 1000:7.2f} ms, "
                    f"merge {timings[count]['merge'] * 1000:7.2f} ms (median of {rounds})"
                )
    small, large = sizes
    for operation in ("commit", "merge"):
        ratio = timings[large][operation] / timings[small][operation]
        verdict = "ok" if ratio <= 3 else "OVER the 3x aim"
        print(f"ratio {operation} {large:,}/{small:,}: {ratio:.2f}x ({verdict})")


def bench_throughput(size_mib: int) -> None:
    print(f"\n== upload + download of {size_mib} MiB: SDK vs local disk copy ==")
    payload = os.urandom(MIB) * size_mib
    with tempfile.TemporaryDirectory() as tmp:
        source, copy, back = Path(tmp, "source"), Path(tmp, "copy"), Path(tmp, "back")
        source.write_bytes(payload)
        started = time.perf_counter()
        shutil.copyfile(source, copy)
        shutil.copyfile(copy, back)
        disk = time.perf_counter() - started
        print(f"local disk, copy there and back: {disk:.2f} s ({2 * size_mib / disk:,.0f} MiB/s)")
        with EmbeddedLakeFS(Path(tmp, "server")) as server:
            repo = lakefs.Repository("throughput", client=server.client()).create(
                storage_namespace="local://throughput"
            )
            for pre_sign in (False, True):
                obj = repo.branch("main").object(f"blob-{pre_sign}")
                started = time.perf_counter()
                obj.upload(payload, pre_sign=pre_sign)
                uploaded = time.perf_counter() - started
                started = time.perf_counter()
                with obj.reader(pre_sign=pre_sign) as reader:
                    data = reader.read()
                downloaded = time.perf_counter() - started
                assert data == payload, "downloaded bytes differ from the uploaded ones"
                total = uploaded + downloaded
                mode = "presigned" if pre_sign else "direct"
                print(
                    f"SDK {mode:>9}: upload {uploaded:.2f} s, download {downloaded:.2f} s "
                    f"({2 * size_mib / total:,.0f} MiB/s); throughput ratio SDK/disk {disk / total:.2f} "
                    f"({'ok' if disk / total >= 1 / 3 else 'under the 1/3 aim'})"
                )


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


def bench_memory(size_mib: int) -> None:
    print(f"\n== server peak memory while uploading {size_mib} MiB ==")
    chunk = os.urandom(MIB)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedLakeFS(Path(tmp, "server")) as server:
        repo = lakefs.Repository("memory", client=server.client()).create(storage_namespace="local://memory")
        assert server.process is not None
        before = _peak_rss_mib(server.process.pid)
        obj = repo.branch("main").object("big.bin")
        started = time.perf_counter()
        # The SDK spools the writer to a temporary file and streams it; the server must stream too.
        with obj.writer(mode="wb", pre_sign=False) as writer:
            for _ in range(size_mib):
                writer.write(chunk)
        elapsed = time.perf_counter() - started
        peak = _peak_rss_mib(server.process.pid)
        size = obj.stat().size_bytes
        assert size == size_mib * MIB, f"stored {size} bytes, sent {size_mib * MIB}"
        print(
            f"server peak RSS before upload {before:.0f} MiB, after {peak:.0f} MiB ({elapsed:.1f} s upload)"
        )
        print(f"peak {peak:.0f} MiB vs 200 MiB aim: {'ok' if peak < 200 else 'OVER'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a quick smoke run")
    parser.add_argument("--rounds", type=int, default=7, help="commits and merges measured per size")
    args = parser.parse_args()
    if args.small:
        bench_commit_scaling(3, (100, 2_000))
        bench_throughput(16)
        bench_memory(64)
    else:
        bench_commit_scaling(args.rounds, (1_000, 100_000))
        bench_throughput(256)
        bench_memory(1024)


if __name__ == "__main__":
    main()
