"""Distributed training on Dask: PyTorch DistributedDataParallel, one rank per Dask worker.

The driver (``train_distributed``) only picks the workers, a rendezvous address and the pinned data
commit; every rank reads its own shard straight from lakeFS (row groups of the Parquet parts, by HTTP
range requests), so the dataset never travels through the scheduler. Rank 0 checkpoints every epoch
to lakeFS; a re-dispatched run resumes from the last checkpoint. ``gloo`` on CPU, ``nccl`` on GPU.
Ranks build their lakeFS client from the settings the driver hands them, not from their environment.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from pydantic import BaseModel, Field
from torch.nn.parallel import DistributedDataParallel

from infra.clients import lakefs_settings_of
from infra.errors import InvalidInputError, TrainingError
from tasks.datasets import DatasetSpec
from tasks.models import build_model, factory_loss, model_options, predict_logits
from tasks.preprocessing import Preprocessor, column_statistics, fit_preprocessor, merge_statistics
from tasks.problems import Problem, fit_problem
from tasks.training.checkpoints import (
    load_checkpoint,
    prepare_checkpoint_branch,
    restore_optimizer,
    save_checkpoint,
)
from tasks.training.data import HOLDOUT_BUCKET, VALIDATION_BUCKET, TrainingData, read_shard, split_buckets

if TYPE_CHECKING:
    import lakefs

    from infra.settings import LakeFSSettings


class TrainingConfig(BaseModel):
    """How to train; every field has a default so the Prefect UI form starts valid.

    Left empty, ``epochs`` and ``batch_size`` adapt to the data: batches of about 1/32 of a rank's
    rows (16 to 1024), and enough epochs for ``target_steps`` optimizer steps (10 to 500), ended early
    when the validation loss stops improving for ``patience`` epochs.
    """

    model: str = Field(
        "mlp", description="Model factory (built in: mlp; more under the lockgate.models entry point)."
    )
    hidden: list[int] = Field([64, 32], description="Hidden layer widths of the MLP.")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Options passed to the model factory (besides the MLP's hidden)."
    )
    epochs: int | None = Field(None, ge=1, le=1000, description="Maximum epochs (empty: adapt to the data).")
    batch_size: int | None = Field(
        None, ge=8, le=1_000_000, description="Rows per step on each rank (empty: adapt to the data)."
    )
    target_steps: int = Field(
        2000, ge=1, le=1_000_000, description="Optimizer steps the adaptive epoch count aims for."
    )
    learning_rate: float = Field(3e-3, gt=0, le=10, description="Adam learning rate.")
    seed: int = Field(
        0, description="Seed of initialisation and shuffling: same seed, same data, same weights."
    )
    patience: int | None = Field(
        8, ge=1, description="Early stopping: epochs without validation improvement."
    )
    workers: int | None = Field(None, ge=1, description="Ranks to use (default: every Dask worker).")
    process_group_timeout_s: int = Field(120, ge=5, description="Give up on a silent peer after this long.")
    threads_per_rank: int = Field(1, ge=1, le=64, description="torch intra-op threads per rank.")
    checkpoint_every_s: float = Field(
        5.0, ge=0, description="Rank 0 checkpoints at most this often (and after the last epoch)."
    )


def plan_steps(config: TrainingConfig, rows: int, world: int) -> tuple[int, int]:
    """``(batch_size, epochs)``: the configured ones, or chosen from the training rows per rank."""
    per_rank = max(1, math.ceil(rows / max(world, 1)))
    batch = config.batch_size or int(min(1024, max(16, 2 ** round(math.log2(max(per_rank / 32, 1))))))
    steps_per_epoch = max(1, math.ceil(per_rank / batch))
    epochs = config.epochs or int(min(500, max(10, math.ceil(config.target_steps / steps_per_epoch))))
    return batch, epochs


@dataclass
class TrainingResult:
    """What the ranks produced."""

    state_dict: dict[str, torch.Tensor]
    preprocessor: Preprocessor
    problem: Problem
    history: list[dict[str, float]]
    holdout: pd.DataFrame  # keys, features, slice columns, target, the task's output columns
    epochs_run: int
    resumed_from_epoch: int | None
    world_size: int
    backend: str
    optimizer_steps: int = 0
    batch_size: int = 0
    stopped_early: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _rendezvous_port() -> int:
    """A free port on every interface of this worker, for rank 0's process group store."""
    from infra.processes import free_port

    return free_port("")


def _rendezvous_host() -> str:
    """The address of this worker the other ranks connect to (``DaskSettings.rendezvous_host``)."""
    from infra.settings import DaskSettings

    return DaskSettings().rendezvous_host


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def run_rank(
    rank: int,
    world: int,
    *,
    master: str,
    port: int,
    config: TrainingConfig,
    data: TrainingData,
    spec: DatasetSpec,
    run_id: str,
    checkpoint_branch: str,
    lakefs_settings: LakeFSSettings,
) -> dict[str, Any]:
    """The training loop of one rank (runs inside a Dask worker process)."""
    from infra.clients import make_lakefs_client

    torch.set_num_threads(config.threads_per_rank)
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    device = torch.device(f"cuda:{torch.cuda.current_device()}") if use_cuda else torch.device("cpu")
    timings = {"data": 0.0, "compute": 0.0, "all_reduce": 0.0}
    dist.init_process_group(
        backend,
        init_method=f"tcp://{master}:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=config.process_group_timeout_s),
        **({"device_id": device} if use_cuda else {}),
    )
    try:
        client = make_lakefs_client(lakefs_settings)
        clock = _Clock()
        frame = read_shard(data, rank=rank, world=world, client=client)
        columns = spec.feature_columns
        needed = dict.fromkeys((*columns, spec.target, *spec.key_columns, *spec.slice_columns))
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise TrainingError(f"features missing from {data.repository}@{data.commit_id[:12]}: {missing}")
        bucket = split_buckets(frame, spec.key_columns) if len(frame) else np.zeros(0, dtype=np.int64)
        train = frame[bucket >= 2]
        valid = frame[bucket == VALIDATION_BUCKET]
        holdout = frame[bucket == HOLDOUT_BUCKET]
        # Every rank sees the statistics of all ranks' training rows, so all fit the same encoders.
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, column_statistics(train, spec))
        stats = merge_statistics(gathered)
        if stats["rows"] == 0:
            raise TrainingError(f"dataset {data.dataset!r} at {data.commit_id[:12]} has no training rows")
        target_stats = stats["target"]
        problem = fit_problem(
            spec.task,
            spec.target,
            positive_class=spec.positive_class,
            counts=target_stats.get("counts"),
            moments=tuple(target_stats["moments"]) if "moments" in target_stats else None,
        )
        preprocessor = fit_preprocessor(spec, stats)
        x_train = torch.from_numpy(preprocessor.transform(train)).to(device)
        y_train = torch.from_numpy(problem.encode_target(train[spec.target])).to(device)
        x_valid = torch.from_numpy(preprocessor.transform(valid)).to(device)
        y_valid = torch.from_numpy(problem.encode_target(valid[spec.target])).to(device)
        batch_size, epochs = plan_steps(config, stats["rows"], world)
        timings["data"] += clock.lap()

        torch.manual_seed(config.seed)
        options = model_options(config.model, config.hidden, config.model_options)
        model = build_model(config.model, preprocessor.width, problem.output_width, **options).to(device)
        # One rank has nothing to average: the wrapper would only add its hooks to every step.
        ddp = DistributedDataParallel(model) if world > 1 else model
        optimizer = torch.optim.Adam(ddp.parameters(), lr=config.learning_rate)
        loss_fn = factory_loss(config.model, problem) or problem.loss()
        history: list[dict[str, float]] = []
        best = {"loss": math.inf, "epoch": -1, "stale": 0}
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        start_epoch, resumed = 0, None
        checkpoint = load_checkpoint(run_id=run_id, branch=checkpoint_branch, client=client)
        if checkpoint is not None:
            tensors, state = checkpoint
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
            restore_optimizer(optimizer, tensors)
            history, best = state["history"], state["best"]
            start_epoch = resumed = state["epoch"] + 1
        if _gather_max(-len(x_train), device) == 0:  # the smallest shard is empty
            raise TrainingError(
                f"a rank got no training rows from {data.repository}@{data.commit_id[:12]}: "
                f"use fewer workers than {world} for this little data"
            )
        steps = _gather_max(math.ceil(len(x_train) / batch_size), device)
        last_saved = -math.inf
        timings["data"] += clock.lap()  # model build, checkpoint lookup: setup, not the loop
        for epoch in range(start_epoch, epochs):
            if best["stale"] >= (config.patience or math.inf):
                break
            ddp.train()
            generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_009 + rank)
            order = torch.randperm(len(x_train), generator=generator).to(device)
            total = 0.0
            for step in range(steps):
                index = order[(torch.arange(batch_size, device=device) + step * batch_size) % len(order)]
                optimizer.zero_grad()
                loss = loss_fn(problem.loss_input(ddp(x_train[index])), y_train[index])
                (loss / batch_size).backward()  # DDP averages gradients across ranks
                optimizer.step()
                total += float(loss.detach())
            timings["compute"] += clock.lap()
            ddp.eval()
            with torch.no_grad():
                valid_loss = (
                    float(loss_fn(problem.loss_input(model(x_valid)), y_valid)) if len(x_valid) else 0.0
                )
            sums = _all_reduce([total, steps * batch_size, valid_loss, len(x_valid)], device)
            timings["all_reduce"] += clock.lap()
            train_loss = sums[0] / max(sums[1], 1)
            valid_mean = sums[2] / max(sums[3], 1)
            if not (math.isfinite(train_loss) and math.isfinite(valid_mean)):
                raise DivergedError(
                    f"loss became NaN or infinite at epoch {epoch} (learning rate {config.learning_rate}); "
                    "lower the learning rate — nothing was registered"
                )
            history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_mean})
            if valid_mean < best["loss"] - 1e-7:
                best = {"loss": valid_mean, "epoch": epoch, "stale": 0}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                best["stale"] += 1
            final = epoch == epochs - 1 or best["stale"] >= (config.patience or math.inf)
            due = time.monotonic() - last_saved >= config.checkpoint_every_s
            if rank == 0 and (due or final):
                last_saved = time.monotonic()
                save_checkpoint(
                    run_id=run_id,
                    branch=checkpoint_branch,
                    model=model,
                    best_state=best_state,
                    optimizer=optimizer,
                    state={"epoch": epoch, "history": history, "best": best},
                    client=client,
                )
            dist.barrier()
            timings["data"] += clock.lap()
        model.load_state_dict(best_state)
        holdout_out = holdout[list(needed)].copy().reset_index(drop=True)
        outputs = problem.outputs(predict_logits(model.cpu(), preprocessor.transform(holdout)))
        for name, values in problem.holdout_columns(outputs).items():
            holdout_out[name] = values
        return {
            "rank": rank,
            "state_dict": {k: v.cpu().numpy() for k, v in model.state_dict().items()} if rank == 0 else None,
            "features": preprocessor.to_dict(),
            "problem": problem.to_dict(),
            "optimizer_steps": steps * len(history),
            "stopped_early": len(history) < epochs,
            "batch_size": batch_size,
            "history": history,
            "holdout": holdout_out,
            "epochs_run": len(history),
            "resumed_from_epoch": resumed,
            "backend": backend,
            "timings": timings,
        }
    finally:
        dist.destroy_process_group()


def _gather_max(value: int, device: torch.device) -> int:
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


class DivergedError(TrainingError):
    """The loss became NaN or infinite: the same seed and data would diverge again, so no retry."""

    retryable = False


class _Clock:
    def __init__(self) -> None:
        self._time = time.perf_counter
        self._last = self._time()

    def lap(self) -> float:
        now = self._time()
        elapsed, self._last = now - self._last, now
        return elapsed


def train_distributed(
    config: TrainingConfig,
    data: TrainingData,
    spec: DatasetSpec,
    *,
    client,  # dask.distributed.Client
    lakefs_client: lakefs.Client,
    run_id: str,
) -> TrainingResult:
    """Train with one DDP rank per Dask worker; resume from ``run_id``'s last checkpoint if any.

    Args:
        config: Training settings.
        data: The pinned, contract-checked data (``resolve_training_data``).
        spec: The dataset's spec (features, target, keys).
        client: A ``dask.distributed.Client`` (LocalCluster, LocalCUDACluster or any scheduler).
        lakefs_client: For the checkpoint branch; the ranks get its endpoint and credentials and build
            their own client.
        run_id: Identity of the run; a retry with the same ID resumes.

    Raises:
        TrainingError: no workers, NaN loss, empty data, or a rank failed (the caller may retry).
    """
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise TrainingError("the Dask cluster has no workers")
    workers = workers[: config.workers] if config.workers else workers
    world = len(workers)
    branch = prepare_checkpoint_branch(run_id, client=lakefs_client)
    lakefs_settings = lakefs_settings_of(lakefs_client)
    master = client.run(_rendezvous_host, workers=[workers[0]])[workers[0]]
    port = client.submit(_rendezvous_port, workers=[workers[0]], pure=False).result()
    futures = [
        client.submit(
            run_rank,
            rank,
            world,
            master=master,
            port=port,
            config=config,
            data=data,
            spec=spec,
            run_id=run_id,
            checkpoint_branch=branch,
            lakefs_settings=lakefs_settings,
            workers=[worker],
            allow_other_workers=False,
            pure=False,
            key=f"lockgate-train-{run_id}-rank-{rank}-{os.urandom(4).hex()}",
        )
        for rank, worker in enumerate(workers)
    ]
    try:
        results = client.gather(futures)
    except (TrainingError, InvalidInputError):  # deterministic: the data, the spec or the model
        client.cancel(futures)
        raise
    except Exception as error:  # a worker died or a peer timed out: the caller's retry resumes
        client.cancel(futures)
        raise TrainingError(
            f"distributed training failed on {world} worker(s): {type(error).__name__}: {error}"
        ) from error
    lead = results[0]
    return TrainingResult(
        state_dict={k: torch.from_numpy(v) for k, v in lead["state_dict"].items()},
        preprocessor=Preprocessor.from_dict(lead["features"]),
        problem=Problem.from_dict(lead["problem"]),
        history=lead["history"],
        holdout=pd.concat([r["holdout"] for r in results], ignore_index=True),
        epochs_run=lead["epochs_run"],
        resumed_from_epoch=lead["resumed_from_epoch"],
        world_size=world,
        backend=lead["backend"],
        optimizer_steps=lead["optimizer_steps"],
        stopped_early=lead["stopped_early"],
        batch_size=lead["batch_size"],
        timings={k: max(r["timings"][k] for r in results) for k in lead["timings"]},
    )
