"""Benchmark of ``ingest_flow`` against bare pyarrow, measured in the same run.

1. Time: ingest N generated loan rows (a local Parquet file) end to end with ``ingest_flow`` (read,
   coerce, pandera on every row, GX on a sample, Parquet upload to lakeFS, commit, report, merge)
   vs reading the same file in Arrow batches and writing the same rows to a new Parquet file with
   bare pyarrow. Aim: at most 2x.
2. Where the time goes: the engine's public steps (``stage_batch``, ``check_expectations``,
   ``publish_report``, ``merge_batch``) timed one by one, and inside ``stage_batch`` the reading,
   type coercion and row checks re-timed alone over the same chunks with the dataset's contract models.
3. Peak memory (VmHWM of the process that ingests, Prefect and lakeFS servers excluded) for two
   chunk sizes and two file sizes, beside the bare-pyarrow baseline's. Aim: bounded by the chunk
   size, not by the file size.

Every measured run is a fresh subprocess (so each VmHWM is its own), against one Prefect server
(``prefect.testing.utilities.prefect_test_harness``, started once by this script: a temporary SQLite
database, not your profile's server) and a fresh embedded lakeFS-API server per run (so the same
file is never "already ingested"). Generating the files is not timed.

Run: ``.venv/bin/python bench/bench_ingest.py [--rows N] [--small]``; ``--small`` uses 200,000 rows
(and files of 100,000 / 200,000 rows in chunks of 10,000 / 50,000 for the memory table) for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mib() -> float:
    """This process's resident-set high-water mark (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workers (each runs in its own process) -------------------------------------------------------


def worker_baseline(source: str, chunk_rows: int) -> dict:
    """Bare pyarrow: read the file in batches, write the same rows to a new Parquet file."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        start = time.perf_counter()
        parquet = pq.ParquetFile(source)
        rows = 0
        with pq.ParquetWriter(Path(tmp) / "copy.parquet", parquet.schema_arrow) as writer:
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                writer.write_batch(batch)
                rows += batch.num_rows
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows, "peak_rss_mib": _peak_rss_mib()}


def worker_flow(source: str, chunk_rows: int) -> dict:
    """The whole ``ingest_flow``, as a deployment would run it (settings from the environment)."""
    from flows.ingest import IngestParameters, ingest_flow

    parameters = IngestParameters(source=source, dataset="loans", chunk_rows=chunk_rows)
    start = time.perf_counter()
    result = ingest_flow(parameters)
    seconds = time.perf_counter() - start
    if result.status != "merged":
        raise SystemExit(f"expected the batch to be merged, got {result}")
    return {"seconds": seconds, "rows": result.rows, "peak_rss_mib": _peak_rss_mib()}


def worker_flow_warm(source: str, chunk_rows: int) -> dict:
    """``ingest_flow`` in a long-lived worker: one small batch first (Prefect client, Great Expectations
    and lakeFS client warmed up, as after a worker's first run), then the timed batch."""
    from flows.ingest import IngestParameters, ingest_flow
    from tasks.generate import GeneratorConfig, write_batch

    warm_up = Path(source).with_name("warm-up.parquet")
    write_batch(GeneratorConfig(rows=5_000, seed=99, first_id=900_000_000), str(warm_up))
    ingest_flow(IngestParameters(source=str(warm_up), dataset="loans", chunk_rows=chunk_rows))
    return worker_flow(source, chunk_rows)


def worker_steps(source: str, chunk_rows: int) -> dict:
    """The engine's public steps one by one, then reading / coercion / row checks alone."""
    from infra.clients import make_lakefs_client
    from infra.settings import LakeFSSettings
    from tasks import ingestion, versioning
    from tasks.datasets import get_dataset

    spec = get_dataset("loans")
    client = make_lakefs_client(LakeFSSettings())
    namespace = versioning.default_storage_namespace(spec.repository, client=client)
    versioning.ensure_repository(spec.repository, storage_namespace=namespace or "", client=client)
    times: dict[str, float] = {}

    def timed(name, function, *args, **kwargs):
        start = time.perf_counter()
        value = function(*args, **kwargs)
        times[name] = time.perf_counter() - start
        return value

    sources = timed("resolve_sources (sha256 of the file)", ingestion.resolve_sources, source)
    staged = timed(
        "stage_batch (read, coerce, pandera, write, upload, commit)",
        ingestion.stage_batch,
        spec,
        sources,
        client=client,
        run_id=ingestion.new_run_id(),
        chunk_rows=chunk_rows,
    )
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as docs:
        docs_dir = Path(docs) / "data_docs"
        staged.report.expectations = timed(
            "check_expectations (GX on the sample, Data Docs)",
            ingestion.check_expectations,
            spec,
            staged,
            data_docs_dir=docs_dir,
        )
        report = timed(
            "publish_report", ingestion.publish_report, staged, client=client, data_docs_dir=docs_dir
        )
    if not report.passed:
        raise SystemExit(ingestion.rejection_message(report))
    timed("merge_batch", ingestion.merge_batch, report, client=client)

    # Inside stage_batch, re-timed alone over the same chunks with the contract's own models.
    read = coerce = checks = 0.0
    path = Path(source)
    chunks = ingestion.read_chunks(path, "parquet", chunk_rows=chunk_rows, name=source)
    while True:
        start = time.perf_counter()
        chunk = next(chunks, None)
        read += time.perf_counter() - start
        if chunk is None:
            break
        start = time.perf_counter()
        typed = spec.raw_model.validate(chunk, lazy=True)
        coerce += time.perf_counter() - start
        start = time.perf_counter()
        spec.validated_model.validate(typed, lazy=True)
        checks += time.perf_counter() - start
    inside = {
        "  of which: read Parquet chunks": read,
        "  of which: coerce to the raw contract": coerce,
        "  of which: pandera row checks": checks,
    }
    stage_key = next(key for key in times if key.startswith("stage_batch"))
    inside["  of which: the rest (keys, Parquet write, upload, commit)"] = times[stage_key] - sum(
        inside.values()
    )
    ordered: dict[str, float] = {}
    for key, value in times.items():
        ordered[key] = value
        if key == stage_key:
            ordered.update(inside)
    return {"steps": ordered, "rows": report.rows, "peak_rss_mib": _peak_rss_mib()}


WORKERS = {
    "baseline": worker_baseline,
    "flow": worker_flow,
    "flow_warm": worker_flow_warm,
    "steps": worker_steps,
}


# -- driver -----------------------------------------------------------------------------------------


def _generate(path: Path, rows: int) -> None:
    from tasks.generate import GeneratorConfig, write_batch

    if not path.exists():
        # Seed 13: the generator derives commission from the salary before rounding it to cents, so
        # a salary just under 75,000 can round up to 75,000.00 and keep a commission, which the
        # contract rightly rejects (seed 11 gives one such row in 5M). Seed 13 has none up to 5M rows.
        write_batch(GeneratorConfig(rows=rows, seed=13, first_id=0), str(path), file_format="parquet")


def _run_worker(kind: str, source: Path, chunk_rows: int, *, work_dir: Path, prefect_api_url: str) -> dict:
    """Run one worker in a fresh process (with a fresh lakeFS server when it ingests)."""
    from infra.lakefs_server.launcher import EmbeddedLakeFS

    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PYTHONPATH": str(ROOT)}
    server = None
    if kind != "baseline":
        data_dir = Path(tempfile.mkdtemp(prefix="lakefs-", dir=work_dir))
        server = EmbeddedLakeFS(data_dir).start()
        access_key_id, secret = server.credentials
        env.update(
            LOCKGATE_LAKEFS_ENDPOINT=server.endpoint,
            LOCKGATE_LAKEFS_ACCESS_KEY_ID=access_key_id,
            LOCKGATE_LAKEFS_SECRET_ACCESS_KEY=secret,
        )
    try:
        completed = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                kind,
                "--source",
                str(source),
                "--chunk-rows",
                str(chunk_rows),
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    finally:
        if server is not None:
            server.stop()
            import shutil

            shutil.rmtree(server.data_dir, ignore_errors=True)
    if completed.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the timed batch")
    parser.add_argument("--small", action="store_true", help="quick run: 200,000 rows")
    parser.add_argument("--chunk-rows", type=int, default=250_000, help="chunk size of the timed runs")
    parser.add_argument(
        "--memory-chunks", default=None, help="comma-separated chunk sizes of the memory table"
    )
    parser.add_argument(
        "--memory-files", default=None, help="comma-separated file sizes (rows) of the memory table"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where files go (default: a temp dir)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.source, args.chunk_rows)))
        return

    rows = 200_000 if args.small else args.rows
    memory_files = [
        int(n)
        for n in (args.memory_files or ("100000,200000" if args.small else "1000000,5000000")).split(",")
    ]
    memory_chunks = [
        int(n) for n in (args.memory_chunks or ("10000,50000" if args.small else "100000,500000")).split(",")
    ]
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work_dir.mkdir(parents=True, exist_ok=True)

    print(
        f"generating {rows:,} rows (+ {', '.join(f'{n:,}' for n in memory_files)} for memory) ... (not timed)"
    )
    files = {n: work_dir / f"loans-{n}.parquet" for n in {rows, *memory_files}}
    for n, path in files.items():
        _generate(path, n)
    source = files[rows]
    print(f"source: {source} ({source.stat().st_size / MIB:,.1f} MiB Parquet, {rows:,} rows)")

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=90):
        api_url = PREFECT_API_URL.value()
        print(
            f"Prefect: temporary test-harness server at {api_url}; lakeFS: a fresh embedded server per run\n"
        )

        baseline = _run_worker(
            "baseline", source, args.chunk_rows, work_dir=work_dir, prefect_api_url=api_url
        )
        flow = _run_worker("flow", source, args.chunk_rows, work_dir=work_dir, prefect_api_url=api_url)
        ratio = flow["seconds"] / baseline["seconds"]
        print(f"1. time, {rows:,} rows, chunk {args.chunk_rows:,} rows")
        print(f"   baseline (bare pyarrow read in batches + write Parquet): {baseline['seconds']:8.2f} s")
        print(f"   lockgate ingest_flow end to end:                         {flow['seconds']:8.2f} s")
        print(f"   ratio: {ratio:.2f}x (aim: at most 2x) -> {'OK' if ratio <= 2 else 'OVER'}")
        warm = _run_worker("flow_warm", source, args.chunk_rows, work_dir=work_dir, prefect_api_url=api_url)
        warm_ratio = warm["seconds"] / baseline["seconds"]
        print(f"   ingest_flow in a warm worker (after one small run):      {warm['seconds']:8.2f} s")
        print(f"   warm ratio: {warm_ratio:.2f}x (aim: at most 2x) -> {'OK' if warm_ratio <= 2 else 'OVER'}")
        print(
            f"   throughput: {rows / flow['seconds']:,.0f} rows/s ingested, "
            f"{rows / baseline['seconds']:,.0f} rows/s copied\n"
        )

        steps = _run_worker("steps", source, args.chunk_rows, work_dir=work_dir, prefect_api_url=api_url)
        print("2. where the time goes (engine steps called directly, no Prefect)")
        for name, seconds in steps["steps"].items():
            print(f"   {name:<62} {seconds:8.2f} s")
        print()

        print("3. peak memory (VmHWM of the ingesting process; servers excluded)")
        print(
            f"   {'file rows':>10} {'chunk rows':>10} {'baseline MiB':>13} "
            f"{'ingest_flow MiB':>16} {'flow s':>8}"
        )
        table = []
        for file_rows in memory_files:
            for chunk_rows in memory_chunks:
                base = _run_worker(
                    "baseline", files[file_rows], chunk_rows, work_dir=work_dir, prefect_api_url=api_url
                )
                run = _run_worker(
                    "flow", files[file_rows], chunk_rows, work_dir=work_dir, prefect_api_url=api_url
                )
                table.append((file_rows, chunk_rows, base["peak_rss_mib"], run["peak_rss_mib"]))
                print(
                    f"   {file_rows:>10,} {chunk_rows:>10,} {base['peak_rss_mib']:>13.0f} "
                    f"{run['peak_rss_mib']:>16.0f} {run['seconds']:>8.1f}"
                )
        for chunk_rows in memory_chunks:
            peaks = [peak for f, c, _, peak in table if c == chunk_rows]
            growth = max(peaks) - min(peaks)
            print(
                f"   chunk {chunk_rows:,}: ingest peak grows {growth:.0f} MiB from {min(memory_files):,} to "
                f"{max(memory_files):,} rows ({max(memory_files) // min(memory_files)}x the file)"
            )
    if args.work_dir is None:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
