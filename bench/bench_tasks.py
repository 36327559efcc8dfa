"""Benchmark per task type: lockgate's training loop vs bare torch, and the fitted encoders at serving.

Three datasets, one per task: ``loans`` (binary, generated), ``penguins`` (multiclass) and ``diabetes``
(regression). The two real ones have a few hundred rows, so they are tiled to ``--rows`` rows with
fresh keys (no noise: diabetes has row-level rules, e.g. LDL follows Friedewald, that noise would
break); every frame is ingested through ``run_ingest`` (contracts and all) into a temporary embedded
lakeFS server. Ingesting is not timed.

1. Training throughput. lockgate: ``train_distributed`` on a ``LocalCluster`` of 1 worker process x 1
   thread (world size 1, gloo), after one untimed 1-epoch warm-up per dataset. Bare: a plain
   single-process loop in this process (1 torch thread) on the same rows read back with ``read_shard``,
   the same encoders (``column_statistics`` -> ``merge_statistics`` -> ``fit_preprocessor``), the same
   target encoding (``fit_problem``), the same model (``make_mlp``, hidden (64, 32)), Adam with the same
   learning rate, the task's ``Problem.loss()``, the same batch size, epochs and optimizer steps (full
   batches, wrapping round the epoch's permutation as lockgate does). Printed: rows/s of lockgate's
   training loop (``TrainingResult.timings['compute']``: the epochs only; model build and checkpoint
   lookup count as setup) and end to end (the wall time of
   ``train_distributed``: shard read, encoders, validation, checkpoints, holdout scoring), of the bare
   loop (model build to last step), and the ratio lockgate loop / bare (aim: at least 0.8x). A third
   run, the bare loop with the model wrapped in ``DistributedDataParallel`` (gloo, world size 1, in
   this process), isolates the wrapper's own cost. Best of ``--repeats``, in alternating order.

2. Encoders at serving. For each dataset, the fitted ``Preprocessor`` and an untrained network. The
   same feature records (JSON round trip, so nulls are ``None``) are scored as single-record requests
   and as 100-record requests:

   a. ``Preprocessor.transform_records`` (what ``Predictor.outputs`` calls) vs the raw-floats floor:
      ``np.array([[r[c] for c in inputs] for r in records], dtype=np.float32)`` on records that already
      hold the model's inputs (one-hot columns pre-encoded as 0/1 numbers, numbers standardised), so
      both give the same matrix (checked);
   b. the full path, ``Predictor.answer`` (transform, forward, ``Problem.outputs``, ``answers``,
      ``scores``) vs raw floats + the same forward, outputs, answers and scores;

   Printed: µs per request (best of ``--serving-repeats`` interleaved passes), the ratios, and the
   encoders' share of the request.

No figure is asserted: the script prints them, then the same figures as README tables.

Run: ``.venv/bin/python bench/bench_tasks.py [--rows 20000] [--epochs 5] [--batch-size 256]``; ``--quick``
(about 1 minute on 2 cores) for a check, ``--skip-training`` for the serving part alone (no servers).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _serving_setup import embedded_lakefs

# Dataset per task type, as ``tasks.datasets`` names them.
DATASETS: dict[str, str] = {"binary": "loans", "multiclass": "penguins", "regression": "diabetes"}
HIDDEN = (64, 32)
LEARNING_RATE = 3e-3
SEED = 0
BATCH_SIZES = (1, 100)  # records per serving request


# -- data -------------------------------------------------------------------------------------------


def task_frame(dataset: str, rows: int) -> pd.DataFrame:
    """``rows`` rows of ``dataset``: generated loans, or the real data set tiled with fresh keys."""
    from tasks.datasets import get_dataset
    from tasks.generate import GeneratorConfig, generate_frame
    from tasks.sample_data import diabetes_frame, penguins_frame

    if dataset == "loans":
        return generate_frame(GeneratorConfig(rows=rows, seed=1, function=1))
    source = {"penguins": penguins_frame, "diabetes": diabetes_frame}[dataset]()
    (key,) = get_dataset(dataset).key_columns
    tiled = source.iloc[np.arange(rows) % len(source)].reset_index(drop=True)
    tiled[key] = np.arange(rows, dtype=np.int64)
    return tiled


def ingest_frame(spec, frame: pd.DataFrame, folder: Path, *, client):
    """Write ``frame`` to Parquet, ingest it with ``run_ingest`` and pin the merged commit."""
    from tasks.ingestion.run import IngestParameters, run_ingest
    from tasks.publishing import RecordingPublisher
    from tasks.training import resolve_training_data

    source = folder / f"{spec.name}.parquet"
    frame.to_parquet(source, index=False)
    result = run_ingest(
        IngestParameters(source=str(source), dataset=spec.name, chunk_rows=50_000),
        client=client,
        s3_client=None,
        publish=RecordingPublisher(),
        spec=spec,
    )
    return resolve_training_data(spec, result.commit, client=client)


@dataclass(frozen=True)
class Prepared:
    """A dataset's training rows as the model sees them, and what was fitted to get there."""

    preprocessor: Any  # tasks.preprocessing.Preprocessor
    problem: Any  # tasks.problems.Problem
    x_train: np.ndarray
    y_train: np.ndarray


def prepare(spec, frame: pd.DataFrame) -> Prepared:
    """Fit the encoders and the target on the training buckets, as one rank of ``run_rank`` does."""
    from tasks.preprocessing import column_statistics, fit_preprocessor, merge_statistics
    from tasks.problems import fit_problem
    from tasks.training import split_buckets

    train = frame[split_buckets(frame, spec.key_columns) >= 2]
    stats = merge_statistics([column_statistics(train, spec)])
    target = stats["target"]
    problem = fit_problem(
        spec.task,
        spec.target,
        positive_class=spec.positive_class,
        counts=target.get("counts"),
        moments=tuple(target["moments"]) if "moments" in target else None,
    )
    preprocessor = fit_preprocessor(spec, stats)
    return Prepared(
        preprocessor, problem, preprocessor.transform(train), problem.encode_target(train[spec.target])
    )


# -- 1. training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRun:
    """One timed training run: how many rows it stepped over and how long it took."""

    steps: int
    samples: int
    loop_s: float
    wall_s: float


def train_lockgate(config, data, spec, *, dask_client, lakefs_client) -> TrainingRun:
    """One ``train_distributed`` call, timed end to end; its training loop from ``timings``."""
    from tasks.training import train_distributed

    started = time.perf_counter()
    result = train_distributed(
        config,
        data,
        spec,
        client=dask_client,
        lakefs_client=lakefs_client,
        run_id=f"bench-tasks-{uuid.uuid4().hex[:8]}",
    )
    wall = time.perf_counter() - started
    samples = result.optimizer_steps * result.batch_size * result.world_size
    return TrainingRun(result.optimizer_steps, samples, result.timings["compute"], wall)


def train_bare(prepared: Prepared, *, epochs: int, batch_size: int, ddp: bool = False) -> TrainingRun:
    """The baseline: plain torch, one process, the same model, loss, optimizer and steps.

    With ``ddp``, the model is wrapped in ``DistributedDataParallel`` as lockgate's rank does (this
    process must be in a world-size-1 process group), to tell the wrapper's cost from the rest.
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from tasks.models import make_mlp

    problem = prepared.problem
    x = torch.from_numpy(prepared.x_train)
    y = torch.from_numpy(prepared.y_train)
    rows = len(x)
    steps = math.ceil(rows / batch_size)
    started = time.perf_counter()
    torch.manual_seed(SEED)
    model = make_mlp(x.shape[1], problem.output_width, hidden=HIDDEN)
    if ddp:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = problem.loss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(epoch))
        order = torch.cat([order, order[: steps * batch_size - rows]])  # full batches, as lockgate
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            optimizer.zero_grad()
            loss = loss_fn(problem.loss_input(model(x[index])), y[index])
            (loss / batch_size).backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    return TrainingRun(steps * epochs, steps * epochs * batch_size, seconds, seconds)


@dataclass(frozen=True)
class TrainingFigures:
    """Best lockgate and bare runs of one dataset."""

    task: str
    dataset: str
    train_rows: int
    width: int
    lockgate: TrainingRun
    bare: TrainingRun
    bare_ddp: TrainingRun

    @property
    def loop_ratio(self) -> float:
        return (self.lockgate.samples / self.lockgate.loop_s) / (self.bare.samples / self.bare.loop_s)

    @property
    def ddp_ratio(self) -> float:
        """Bare loop with the DDP wrapper / without: what the wrapper alone costs at world size 1."""
        return (self.bare_ddp.samples / self.bare_ddp.loop_s) / (self.bare.samples / self.bare.loop_s)

    @property
    def wall_ratio(self) -> float:
        return (self.lockgate.samples / self.lockgate.wall_s) / (self.bare.samples / self.bare.loop_s)


def bench_training(
    frames: Mapping[str, pd.DataFrame], *, epochs: int, batch_size: int, repeats: int, folder: Path
) -> list[TrainingFigures]:
    """Ingest every frame, then time lockgate and the bare loop on each, best of ``repeats``."""
    import torch
    import torch.distributed as dist

    from infra.processes import free_port
    from tasks.training import TrainingConfig

    config = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        hidden=list(HIDDEN),
        learning_rate=LEARNING_RATE,
        seed=SEED,
        patience=None,
        checkpoint_every_s=60,
        threads_per_rank=1,
        workers=1,
    )
    torch.set_num_threads(1)  # the bare loop gets what one rank gets
    # A world of one in this process, for the bare loop wrapped in DDP (gloo, as on a CPU rank).
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        return _bench_training(frames, config, repeats=repeats, folder=folder)
    finally:
        dist.destroy_process_group()


def _bench_training(frames, config, *, repeats: int, folder: Path) -> list[TrainingFigures]:
    """``bench_training`` once the process group is up: ingest every frame, then train on each."""
    from dask.distributed import Client, LocalCluster

    from tasks.datasets import get_dataset

    with embedded_lakefs() as (lakefs_client, _settings):
        pinned = {}
        for task, dataset in DATASETS.items():
            spec = get_dataset(dataset)
            print(f"ingesting {len(frames[dataset]):,} {dataset} rows ({task}) ...", flush=True)
            pinned[task] = (spec, ingest_frame(spec, frames[dataset], folder, client=lakefs_client))
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as dask_client,
        ):
            return [
                time_training(
                    task,
                    spec,
                    data,
                    config,
                    repeats=repeats,
                    dask_client=dask_client,
                    lakefs_client=lakefs_client,
                )
                for task, (spec, data) in pinned.items()
            ]


def time_training(
    task: str, spec, data, config, *, repeats: int, dask_client, lakefs_client
) -> TrainingFigures:
    """Warm up, then the best of ``repeats`` runs of lockgate, bare and bare+DDP on one dataset."""
    from tasks.training import read_shard

    epochs, batch_size = config.epochs, config.batch_size
    # The bare loop trains on exactly the rows the rank reads, in the same encoding.
    prepared = prepare(spec, read_shard(data, rank=0, world=1, client=lakefs_client))
    print(f"training {spec.name}: warm-up, then best of {repeats} ...", flush=True)
    warm = config.model_copy(update={"epochs": 1})
    train_lockgate(warm, data, spec, dask_client=dask_client, lakefs_client=lakefs_client)
    train_bare(prepared, epochs=1, batch_size=batch_size)
    train_bare(prepared, epochs=1, batch_size=batch_size, ddp=True)
    variants = {
        "lockgate": lambda: train_lockgate(
            config, data, spec, dask_client=dask_client, lakefs_client=lakefs_client
        ),
        "bare": lambda: train_bare(prepared, epochs=epochs, batch_size=batch_size),
        "bare_ddp": lambda: train_bare(prepared, epochs=epochs, batch_size=batch_size, ddp=True),
    }
    runs: dict[str, list[TrainingRun]] = {name: [] for name in variants}
    for repeat in range(repeats):
        for name in list(variants) if repeat % 2 == 0 else list(variants)[::-1]:
            runs[name].append(variants[name]())
    best = {name: min(found, key=lambda run: run.loop_s) for name, found in runs.items()}
    if best["lockgate"].samples != best["bare"].samples:
        print(
            f"WARNING: {spec.name}: unequal work, lockgate {best['lockgate'].steps} steps / "
            f"{best['lockgate'].samples} rows vs bare {best['bare'].steps} / {best['bare'].samples}"
        )
    return TrainingFigures(task, spec.name, len(prepared.x_train), prepared.preprocessor.width, **best)


def print_training(figures: Sequence[TrainingFigures], *, epochs: int, batch_size: int) -> None:
    """One table: rows/s of lockgate (loop, end to end) and of the bare loop, per task."""
    print(
        f"\n1. Training throughput: {epochs} epochs, batch {batch_size}, MLP {HIDDEN}, Adam, 1 process x "
        "1 torch thread"
    )
    header = (
        f"{'task':<11} {'dataset':<9} {'train rows':>10} {'inputs':>6} {'steps':>6} "
        f"{'lockgate loop r/s':>17} {'end to end r/s':>14} {'bare r/s':>10} {'bare+DDP r/s':>12} "
        f"{'loop/bare':>9} {'e2e/bare':>8} {'DDP/bare':>8}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        lg, bare = f.lockgate, f.bare
        print(
            f"{f.task:<11} {f.dataset:<9} {f.train_rows:>10,} {f.width:>6} {lg.steps:>6} "
            f"{lg.samples / lg.loop_s:>17,.0f} {lg.samples / lg.wall_s:>14,.0f} "
            f"{bare.samples / bare.loop_s:>10,.0f} {f.bare_ddp.samples / f.bare_ddp.loop_s:>12,.0f} "
            f"{f.loop_ratio:>8.2f}x {f.wall_ratio:>7.2f}x {f.ddp_ratio:>7.2f}x"
        )
    print(
        "aim: lockgate loop / bare >= 0.8x. 'end to end' adds what train_distributed does around the loop\n"
        "(Dask dispatch, shard read from lakeFS, encoders, validation, 2 checkpoints, holdout scoring).\n"
        "'bare+DDP': the bare loop with the model wrapped in DistributedDataParallel (gloo, world size 1)\n"
        "in this process: DDP/bare is the wrapper's own cost, loop/bare all of lockgate's."
    )


# -- 2. encoders at serving -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingFigures:
    """µs per request of each variant, for one dataset and request size."""

    task: str
    dataset: str
    batch: int
    inputs: int
    encode_lockgate: float
    encode_raw: float
    full_lockgate: float
    full_raw: float

    @property
    def encoder_share(self) -> float:
        """Of a full lockgate request, the part that the encoders add over raw floats."""
        return (self.encode_lockgate - self.encode_raw) / self.full_lockgate


def best_us_per_call(
    variants: Mapping[str, tuple[Callable[[Any], Any], Sequence[Any]]], *, repeats: int
) -> dict[str, float]:
    """Microseconds per call of each ``(function, requests)``, best of ``repeats`` interleaved passes."""
    best = dict.fromkeys(variants, math.inf)
    for _ in range(repeats):
        for name, (function, requests) in variants.items():
            started = time.perf_counter()
            for request in requests:
                function(request)
            best[name] = min(best[name], (time.perf_counter() - started) / len(requests))
    return {name: seconds * 1e6 for name, seconds in best.items()}


def bench_serving(frames: Mapping[str, pd.DataFrame], *, records: int, repeats: int) -> list[ServingFigures]:
    """Time the encoders and the full answer path against raw floats, per dataset and request size."""
    import torch

    from tasks.datasets import get_dataset

    torch.set_num_threads(1)
    figures = []
    for task, dataset in DATASETS.items():
        spec = get_dataset(dataset)
        figures += time_serving(task, spec, frames[dataset], records=records, repeats=repeats)
    return figures


def time_serving(task: str, spec, frame: pd.DataFrame, *, records: int, repeats: int) -> list[ServingFigures]:
    """One dataset: every variant for each request size in ``BATCH_SIZES``."""
    import torch

    from tasks.models import make_mlp, predict_logits
    from tasks.predictor import Predictor

    prepared = prepare(spec, frame)
    preprocessor, problem = prepared.preprocessor, prepared.problem
    torch.manual_seed(SEED)
    network = make_mlp(preprocessor.width, problem.output_width, hidden=HIDDEN).eval()
    predictor = Predictor(spec.name, "bench", "", None, network, preprocessor, problem)
    # As a request body delivers them: JSON values, nulls as None.
    sample = frame.sample(n=min(records, len(frame)), random_state=SEED)
    feature_records = json.loads(sample[list(spec.feature_columns)].to_json(orient="records"))
    names = preprocessor.input_names
    matrix = preprocessor.transform_records(feature_records)
    model_ready = [dict(zip(names, (float(v) for v in row), strict=True)) for row in matrix]

    def raw_floats(batch: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array([[record[name] for name in names] for record in batch], dtype=np.float32)

    def answer(inputs: np.ndarray):
        outputs = problem.outputs(predict_logits(network, inputs))
        return problem.answers(outputs, threshold=predictor.threshold), problem.scores(outputs).tolist()

    if not np.array_equal(raw_floats(model_ready), matrix):
        raise SystemExit(f"{spec.name}: the raw-floats baseline does not rebuild the encoders' matrix")
    print(f"serving {spec.name}: {len(feature_records)} records, {len(names)} model inputs ...", flush=True)
    figures = []
    for size in BATCH_SIZES:
        requests = [feature_records[i : i + size] for i in range(0, len(feature_records), size)]
        ready = [model_ready[i : i + size] for i in range(0, len(model_ready), size)]
        if size > 1:  # enough 100-record requests for a stable figure
            requests, ready = requests * 5, ready * 5
        timings = best_us_per_call(
            {
                "encode_lockgate": (preprocessor.transform_records, requests),
                "encode_raw": (raw_floats, ready),
                "full_lockgate": (predictor.answer, requests),
                "full_raw": (lambda batch: answer(raw_floats(batch)), ready),
            },
            repeats=repeats,
        )
        figures.append(ServingFigures(task, spec.name, size, len(names), **timings))
    return figures


def print_serving(figures: Sequence[ServingFigures]) -> None:
    """One table: µs per request of the encoders and of the full path, against raw floats."""
    print("\n2. Encoders at serving: µs per request (1 torch thread)")
    header = (
        f"{'dataset':<9} {'recs':>4} {'transform_records':>17} {'raw floats':>10} {'ratio':>7} "
        f"{'Predictor.answer':>16} {'raw+forward':>11} {'ratio':>6} {'encoder share':>13}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        print(
            f"{f.dataset:<9} {f.batch:>4} {f.encode_lockgate:>17,.1f} {f.encode_raw:>10,.1f} "
            f"{f.encode_lockgate / f.encode_raw:>6.0f}x {f.full_lockgate:>16,.1f} {f.full_raw:>11,.1f} "
            f"{f.full_lockgate / f.full_raw:>5.1f}x {f.encoder_share:>12.0%}"
        )
    print("'encoder share': (transform_records - raw floats) / Predictor.answer.")


def print_markdown(training: Sequence[TrainingFigures], serving: Sequence[ServingFigures]) -> None:
    """The figures as README tables."""
    print("\nMarkdown for README:\n")
    print(
        "| task (dataset) | lockgate loop rows/s | end to end rows/s | bare torch rows/s | loop / bare "
        "| bare + DDP wrapper / bare |"
    )
    print("|---|---|---|---|---|---|")
    for f in training:
        lg, bare = f.lockgate, f.bare
        print(
            f"| {f.task} ({f.dataset}) | {lg.samples / lg.loop_s / 1000:,.0f}k | "
            f"{lg.samples / lg.wall_s / 1000:,.0f}k | {bare.samples / bare.loop_s / 1000:,.0f}k | "
            f"**{f.loop_ratio:.2f}x** | {f.ddp_ratio:.2f}x |"
        )
    print()
    print(
        "| dataset, records per request | transform_records vs raw floats | Predictor.answer vs raw + "
        "forward | encoders' share |"
    )
    print("|---|---|---|---|")
    for f in serving:
        print(
            f"| {f.dataset}, {f.batch} | {f.encode_lockgate:,.0f} µs vs {f.encode_raw:,.1f} µs: "
            f"**{f.encode_lockgate / f.encode_raw:,.0f}x** | {f.full_lockgate:,.0f} µs vs "
            f"{f.full_raw:,.0f} µs: **{f.full_lockgate / f.full_raw:.1f}x** | {f.encoder_share:.0%} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows per dataset (default 20,000)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each timed run (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per step (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts (default 3)")
    parser.add_argument(
        "--records", type=int, default=1_000, help="serving records per dataset (default 1,000)"
    )
    parser.add_argument(
        "--serving-repeats", type=int, default=7, help="passes over the serving records; the best counts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 training repeats; 500 serving records, 5 passes (about 1 min)"
    )
    parser.add_argument("--skip-training", action="store_true", help="only the serving part (no servers)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.records, args.serving_repeats = 2, 500, 5

    frames = {dataset: task_frame(dataset, args.rows) for dataset in DATASETS.values()}
    training: list[TrainingFigures] = []
    if not args.skip_training:
        with tempfile.TemporaryDirectory(prefix="bench-tasks-") as tmp:
            training = bench_training(
                frames,
                epochs=args.epochs,
                batch_size=args.batch_size,
                repeats=args.repeats,
                folder=Path(tmp),
            )
        print_training(training, epochs=args.epochs, batch_size=args.batch_size)
    serving = bench_serving(frames, records=args.records, repeats=args.serving_repeats)
    print_serving(serving)
    print_markdown(training, serving)


if __name__ == "__main__":
    main()
