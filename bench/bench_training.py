"""Benchmark of distributed training: 2-worker DDP vs one process using the same 2 cores.

Both runs go through ``train_distributed`` on the same pinned data and the same ``TrainingConfig``
(model, batch size per rank, epochs, seed), so the code path is identical:

a. DDP: a ``LocalCluster`` of 2 worker processes with 1 thread each, 1 torch thread per rank (gloo).
b. Single: a ``LocalCluster`` of 1 worker process, world size 1, ``threads_per_rank=2``.

The data (N generated loan rows, Agrawal function 1, several Parquet row groups) is ingested once
through the real engine into a temporary embedded lakeFS server; generating and ingesting it is not
timed. Each cluster first runs one untimed 1-epoch warm-up (imports, first gloo rendezvous), then the
timed run. Printed: wall time and samples/s of each, the ratio DDP/single (aim: at least 0.8x), and
where the time goes from ``TrainingResult.timings`` (the slowest rank of each phase).

Run: ``.venv/bin/python bench/bench_training.py [--rows N] [--epochs E] [--batch-size B ...]``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import uuid
from pathlib import Path

CHUNK_ROWS = 25_000  # row groups per Parquet part: enough for every rank to read whole ones


def ingest(rows: int, folder: Path, client):
    """Generate ``rows`` loan rows and ingest them (stage, contracts, report, merge); return the data."""
    from tasks import ingestion, versioning
    from tasks.datasets import get_dataset
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.training import resolve_training_data

    spec = get_dataset("loans")
    namespace = versioning.default_storage_namespace(spec.repository, client=client) or ""
    versioning.ensure_repository(spec.repository, storage_namespace=namespace, client=client)
    source = folder / "loans.parquet"
    write_batch(GeneratorConfig(rows=rows, seed=1, function=1), str(source), chunk_rows=CHUNK_ROWS)
    staged = ingestion.stage_batch(
        spec, ingestion.resolve_sources(str(source)), client=client, run_id="bench", chunk_rows=CHUNK_ROWS
    )
    staged.report.expectations = ingestion.check_expectations(spec, staged)
    report = ingestion.publish_report(staged, client=client)
    if not report.passed:
        raise SystemExit(f"the generated batch failed its contracts: {ingestion.rejection_message(report)}")
    ingestion.merge_batch(report, client=client)
    return spec, resolve_training_data(spec, report.merge_commit, client=client)


def run_cluster(
    label: str, *, workers: int, threads_per_rank: int, config, data, spec, lakefs_client
) -> dict:
    """Warm up, then time one ``train_distributed`` call on a fresh LocalCluster."""
    from dask.distributed import Client, LocalCluster

    from tasks.training import train_distributed

    config = config.model_copy(update={"threads_per_rank": threads_per_rank})
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as dask_client,
    ):
        warm = config.model_copy(update={"epochs": 1})
        train_distributed(
            warm,
            data,
            spec,
            client=dask_client,
            lakefs_client=lakefs_client,
            run_id=f"warm-{uuid.uuid4().hex[:8]}",
        )
        started = time.perf_counter()
        result = train_distributed(
            config,
            data,
            spec,
            client=dask_client,
            lakefs_client=lakefs_client,
            run_id=f"bench-{uuid.uuid4().hex[:8]}",
        )
        wall = time.perf_counter() - started
    # Rows each epoch actually steps over: every rank runs the same number of full batches.
    training_rows = len(result.holdout) * 8  # 8 of 10 hash buckets train, 1 is holdout (approximately)
    steps = math.ceil(training_rows / result.world_size / config.batch_size)
    samples = result.epochs_run * steps * config.batch_size * result.world_size
    return {
        "label": label,
        "world": result.world_size,
        "threads": threads_per_rank,
        "epochs": result.epochs_run,
        "samples": samples,
        "wall": wall,
        "timings": result.timings,
        "auc": _auc(result),
    }


def _auc(result) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(result.holdout["approved"], result.holdout["probability"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="generated loan rows (default 200,000)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each timed run (default 5)")
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[512, 1024, 2048],
        help="rows per step on each rank; one DDP/single pair per value (default 512 2048)",
    )
    args = parser.parse_args()

    from infra.lakefs_server.launcher import EmbeddedLakeFS
    from tasks.training import TrainingConfig

    with (
        tempfile.TemporaryDirectory(prefix="bench-training-") as tmp,
        EmbeddedLakeFS(Path(tmp) / "lakefs") as server,
    ):
        access_key_id, secret = server.credentials
        # Ranks build their lakeFS client from settings inside the worker processes, which inherit this.
        os.environ.update(
            LOCKGATE_LAKEFS_ENDPOINT=server.endpoint,
            LOCKGATE_LAKEFS_ACCESS_KEY_ID=access_key_id,
            LOCKGATE_LAKEFS_SECRET_ACCESS_KEY=secret,
        )
        lakefs_client = server.client()
        print(f"ingesting {args.rows:,} generated loan rows ...", flush=True)
        spec, data = ingest(args.rows, Path(tmp), lakefs_client)
        pairs = []
        for batch_size in args.batch_size:
            config = TrainingConfig(epochs=args.epochs, batch_size=batch_size, seed=0, patience=None)
            pair = [
                run_cluster(
                    label,
                    workers=workers,
                    threads_per_rank=threads,
                    config=config,
                    data=data,
                    spec=spec,
                    lakefs_client=lakefs_client,
                )
                for label, workers, threads in (
                    ("DDP, 2 workers x 1 thread", 2, 1),
                    ("single, 1 worker x 2 threads", 1, 2),
                )
            ]
            pairs.append((config, pair))
    for config, pair in pairs:
        print_pair(args.rows, config, pair)
    print(
        "\nNotes: 'compute' includes DDP's gradient all-reduce (it runs inside backward, once per step);\n"
        "'all_reduce' is only the per-epoch loss/metric reductions; 'data' is the shard read and\n"
        "standardisation plus the per-epoch checkpoint commit and barrier. The DDP global batch is 2x\n"
        "the single run's (same batch per rank), so DDP takes half as many optimiser steps."
    )


def print_pair(rows: int, config, runs: list[dict]) -> None:
    """One table: DDP and single for one batch size, and their throughput ratio."""
    print(f"\n{rows:,} rows, {config.epochs} epochs, batch {config.batch_size} per rank, MLP {config.hidden}")
    header = (
        f"{'run':<30} {'wall s':>7} {'samples/s':>10} {'data s':>7} {'compute s':>9} "
        f"{'all_reduce s':>12} {'AUC':>6}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        t = run["timings"]
        print(
            f"{run['label']:<30} {run['wall']:>7.2f} {run['samples'] / run['wall']:>10,.0f} "
            f"{t['data']:>7.2f} {t['compute']:>9.2f} {t['all_reduce']:>12.3f} {run['auc']:>6.3f}"
        )
    ddp, single = runs
    ratio = (ddp["samples"] / ddp["wall"]) / (single["samples"] / single["wall"])
    compute_ratio = (ddp["samples"] / ddp["timings"]["compute"]) / (
        single["samples"] / single["timings"]["compute"]
    )
    print(
        f"DDP / single throughput: {ratio:.2f}x end to end, "
        f"{compute_ratio:.2f}x in the training loop (aim >= 0.8x)"
    )


if __name__ == "__main__":
    main()
