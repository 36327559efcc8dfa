"""Distributed training on Dask: PyTorch DistributedDataParallel, one rank per Dask worker.

The driver (``train_distributed``) only picks the workers, a rendezvous address and the pinned data
commit; every rank reads its own shard straight from lakeFS (row groups of the Parquet parts, by HTTP
range requests), so the dataset never travels through the scheduler. Rank 0 checkpoints every epoch
to lakeFS; a re-dispatched run resumes from the last checkpoint. ``gloo`` on CPU, ``nccl`` on GPU.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lakefs
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from pydantic import BaseModel, Field
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from infra.errors import InvalidInputError, RefNotFoundError, TrainingError, UncheckedDataError
from tasks import versioning
from tasks.datasets import DatasetSpec
from tasks.ingestion import DATA_PREFIX, REPORTS_PREFIX
from tasks.models import FeatureSpec, build_model, predict_proba

CHECKPOINT_REPOSITORY = "lockgate-models"
HOLDOUT_BUCKET, VALIDATION_BUCKET, BUCKETS = 0, 1, 10


class TrainingConfig(BaseModel):
    """How to train; every field has a default so the Prefect UI form starts valid."""

    model: str = Field("mlp", description="Model factory name (tasks.models.MODEL_FACTORIES).")
    hidden: list[int] = Field([64, 32], description="Hidden layer widths of the MLP.")
    epochs: int = Field(8, ge=1, le=1000, description="Maximum number of epochs.")
    batch_size: int = Field(
        1024, ge=8, le=1_000_000, description="Rows per step on each rank (larger amortises the all-reduce)."
    )
    learning_rate: float = Field(3e-3, gt=0, le=10, description="Adam learning rate.")
    seed: int = Field(
        0, description="Seed of initialisation and shuffling: same seed, same data, same weights."
    )
    patience: int | None = Field(
        3, ge=1, description="Early stopping: epochs without validation improvement."
    )
    workers: int | None = Field(None, ge=1, description="Ranks to use (default: every Dask worker).")
    process_group_timeout_s: int = Field(120, ge=5, description="Give up on a silent peer after this long.")
    threads_per_rank: int = Field(1, ge=1, le=64, description="torch intra-op threads per rank.")


@dataclass(frozen=True)
class TrainingData:
    """A dataset pinned to one commit whose every batch passed its contracts."""

    dataset: str
    repository: str
    commit_id: str
    parts: tuple[str, ...]
    reports: tuple[str, ...]


@dataclass
class TrainingResult:
    """What the ranks produced."""

    state_dict: dict[str, torch.Tensor]
    feature_spec: FeatureSpec
    history: list[dict[str, float]]
    holdout: pd.DataFrame  # slice columns, target, "probability"
    epochs_run: int
    resumed_from_epoch: int | None
    world_size: int
    backend: str
    timings: dict[str, float] = field(default_factory=dict)


# -- data at a pinned commit ------------------------------------------------------------------


def resolve_training_data(spec: DatasetSpec, ref: str, *, client: lakefs.Client) -> TrainingData:
    """Pin ``ref`` to a commit and check that every batch in it passed its contract report."""
    reference = lakefs.Reference(spec.repository, ref, client=client)
    try:
        commit_id = reference.get_commit().id
    except lakefs.exceptions.NotFoundException as error:
        raise RefNotFoundError(f"ref {ref!r} not found in dataset repository {spec.repository!r}") from error
    pinned = lakefs.Reference(spec.repository, commit_id, client=client)
    parts = tuple(o.path for o in pinned.objects(prefix=DATA_PREFIX) if o.path.endswith(".parquet"))
    if not parts:
        raise TrainingError(
            f"dataset {spec.name!r} has no data at {ref!r} ({commit_id[:12]}): nothing to train on"
        )
    passed: dict[str, str] = {}
    for item in pinned.objects(prefix=REPORTS_PREFIX):
        if not item.path.endswith("contract_report.json"):
            continue
        with pinned.object(item.path).reader(mode="rb") as handle:
            report = json.loads(handle.read())
        if report.get("passed") and report.get("data_prefix"):
            passed[report["data_prefix"]] = item.path
    unchecked = sorted({p.rsplit("/", 1)[0] + "/" for p in parts} - set(passed))
    if unchecked:
        raise UncheckedDataError(
            f"ref {ref!r} ({commit_id[:12]}) of {spec.repository!r} holds data without a passed contract "
            f"report: {', '.join(unchecked[:5])}; train on main or on a commit whose batches passed"
        )
    return TrainingData(spec.name, spec.repository, commit_id, parts, tuple(sorted(passed.values())))


def read_shard(data: TrainingData, *, rank: int, world: int, client: lakefs.Client) -> pd.DataFrame:
    """This rank's rows: whole row groups when there are enough, else every ``world``-th row."""
    reference = lakefs.Reference(data.repository, data.commit_id, client=client)
    units = []
    files = {}
    for path in data.parts:
        handle = reference.object(path).reader(mode="rb", pre_sign=False)
        files[path] = pq.ParquetFile(handle)
        units += [(path, group) for group in range(files[path].metadata.num_row_groups)]
    if len(units) >= world:
        frames = [files[p].read_row_group(g).to_pandas() for p, g in units[rank::world]]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        frame = pd.concat([files[p].read_row_group(g).to_pandas() for p, g in units], ignore_index=True)
        frame = frame.iloc[rank::world].reset_index(drop=True)
    return frame


def split_buckets(frame: pd.DataFrame, key_columns: tuple[str, ...]) -> np.ndarray:
    """A stable bucket 0-9 per row from its key: 0 holdout, 1 validation, the rest training."""
    hashes = pd.util.hash_pandas_object(frame[list(key_columns)], index=False).to_numpy()
    return (hashes % np.uint64(BUCKETS)).astype(np.int64)


# -- checkpoints --------------------------------------------------------------------------------


def _checkpoint_paths(run_id: str) -> tuple[str, str]:
    base = f"checkpoints/{run_id}/"
    return base + "latest.safetensors", base + "latest.json"


def save_checkpoint(
    *,
    run_id: str,
    branch: str,
    model: nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    client: lakefs.Client,
) -> None:
    """Write weights, best weights, optimizer moments and progress, then commit (atomic per epoch)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v.detach().cpu().clone().contiguous() for k, v in best_state.items()}
    for index, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    weights_path, state_path = _checkpoint_paths(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "checkpoint.safetensors"
        save_file(tensors, str(local))
        versioning.upload_file(
            local, repository=CHECKPOINT_REPOSITORY, branch=branch, path=weights_path, client=client
        )
        meta = Path(tmp) / "checkpoint.json"
        meta.write_text(json.dumps(state))
        versioning.upload_file(
            meta,
            repository=CHECKPOINT_REPOSITORY,
            branch=branch,
            path=state_path,
            client=client,
            content_type="application/json",
        )
    versioning.commit_changes(
        CHECKPOINT_REPOSITORY,
        branch,
        message=f"checkpoint {run_id} epoch {state['epoch']}",
        metadata={"lockgate.run_id": run_id, "lockgate.epoch": str(state["epoch"])},
        client=client,
    )


def load_checkpoint(
    *, run_id: str, branch: str, client: lakefs.Client
) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The last checkpoint of ``run_id`` on ``branch``, or None."""
    weights_path, state_path = _checkpoint_paths(run_id)
    # Committed state only ("@"): a rank killed between the two uploads must not mix two epochs.
    reference = lakefs.Reference(CHECKPOINT_REPOSITORY, f"{branch}@", client=client)
    if not reference.object(state_path).exists():
        return None
    with reference.object(state_path).reader(mode="rb") as handle:
        state = json.loads(handle.read())
    with reference.object(weights_path).reader(mode="rb") as handle:
        tensors = load_safetensors(handle.read())
    return tensors, state


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    saved = optimizer.state_dict()
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            moments.setdefault(int(index), {})[key] = value
    saved["state"] = moments
    optimizer.load_state_dict(saved)


# -- one rank ---------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """The training loop of one rank (runs inside a Dask worker process)."""
    from infra.clients import make_lakefs_client
    from infra.settings import LakeFSSettings

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
        client = make_lakefs_client(LakeFSSettings())
        clock = _Clock()
        frame = read_shard(data, rank=rank, world=world, client=client)
        columns = spec.feature_columns
        missing = [c for c in (*columns, spec.target, *spec.key_columns) if c not in frame.columns]
        if missing:
            raise TrainingError(f"features missing from {data.repository}@{data.commit_id[:12]}: {missing}")
        bucket = split_buckets(frame, spec.key_columns) if len(frame) else np.zeros(0, dtype=np.int64)
        train = frame[bucket >= 2]
        valid = frame[bucket == VALIDATION_BUCKET]
        holdout = frame[bucket == HOLDOUT_BUCKET]
        values = train[list(columns)].to_numpy(dtype=np.float64)
        moments = _all_reduce([len(train), *values.sum(axis=0), *(values**2).sum(axis=0)], device)
        count, width = moments[0], len(columns)
        if count == 0:
            raise TrainingError(f"dataset {data.dataset!r} at {data.commit_id[:12]} has no training rows")
        features = FeatureSpec.from_moments(
            tuple(columns), count, np.array(moments[1 : 1 + width]), np.array(moments[1 + width :])
        )
        x_train = torch.from_numpy(features.transform(train)).to(device)
        y_train = torch.from_numpy(train[spec.target].to_numpy(dtype=np.float32)).to(device)
        x_valid = torch.from_numpy(features.transform(valid)).to(device)
        y_valid = torch.from_numpy(valid[spec.target].to_numpy(dtype=np.float32)).to(device)
        timings["data"] += clock.lap()

        torch.manual_seed(config.seed)
        model = build_model(config.model, len(columns), hidden=tuple(config.hidden)).to(device)
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.Adam(ddp.parameters(), lr=config.learning_rate)
        loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
        history: list[dict[str, float]] = []
        best = {"loss": math.inf, "epoch": -1, "stale": 0}
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        start_epoch, resumed = 0, None
        checkpoint = load_checkpoint(run_id=run_id, branch=checkpoint_branch, client=client)
        if checkpoint is not None:
            tensors, state = checkpoint
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
            _restore_optimizer(optimizer, tensors)
            history, best = state["history"], state["best"]
            start_epoch = resumed = state["epoch"] + 1
        if _gather_max(-len(x_train), device) == 0:  # the smallest shard is empty
            raise TrainingError(
                f"a rank got no training rows from {data.repository}@{data.commit_id[:12]}: "
                f"use fewer workers than {world} for this little data"
            )
        steps = _gather_max(math.ceil(len(x_train) / config.batch_size), device)
        for epoch in range(start_epoch, config.epochs):
            if best["stale"] >= (config.patience or math.inf):
                break
            ddp.train()
            generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_009 + rank)
            order = torch.randperm(len(x_train), generator=generator).to(device)
            total = 0.0
            for step in range(steps):
                index = order[
                    (torch.arange(config.batch_size, device=device) + step * config.batch_size) % len(order)
                ]
                optimizer.zero_grad()
                loss = loss_fn(ddp(x_train[index]).squeeze(1), y_train[index])
                (loss / config.batch_size).backward()  # DDP averages gradients across ranks
                optimizer.step()
                total += float(loss.detach())
            timings["compute"] += clock.lap()
            ddp.eval()
            with torch.no_grad():
                valid_loss = float(loss_fn(model(x_valid).squeeze(1), y_valid)) if len(x_valid) else 0.0
            sums = _all_reduce([total, steps * config.batch_size, valid_loss, len(x_valid)], device)
            timings["all_reduce"] += clock.lap()
            train_loss = sums[0] / max(sums[1], 1)
            valid_mean = sums[2] / max(sums[3], 1)
            if not (math.isfinite(train_loss) and math.isfinite(valid_mean)):
                raise TrainingError(
                    f"loss became NaN or infinite at epoch {epoch} (learning rate {config.learning_rate}); "
                    "lower the learning rate — nothing was registered"
                )
            history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_mean})
            if valid_mean < best["loss"] - 1e-7:
                best = {"loss": valid_mean, "epoch": epoch, "stale": 0}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                best["stale"] += 1
            if rank == 0:
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
        holdout_out = holdout[[*spec.key_columns, *columns, spec.target]].copy()
        holdout_out["probability"] = predict_proba(model.cpu(), features.transform(holdout))
        return {
            "rank": rank,
            "state_dict": {k: v.cpu().numpy() for k, v in model.state_dict().items()} if rank == 0 else None,
            "features": features.to_dict(),
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


class _Clock:
    def __init__(self) -> None:
        import time

        self._time = time.perf_counter
        self._last = self._time()

    def lap(self) -> float:
        now = self._time()
        elapsed, self._last = now - self._last, now
        return elapsed


# -- the driver -------------------------------------------------------------------------------


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
        lakefs_client: For the checkpoint branch (ranks build their own from settings).
        run_id: Identity of the run; a retry with the same ID resumes.

    Raises:
        TrainingError: no workers, NaN loss, empty data, or a rank failed (the caller may retry).
    """
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise TrainingError("the Dask cluster has no workers")
    workers = workers[: config.workers] if config.workers else workers
    world = len(workers)
    branch = f"train-{run_id}"
    namespace = versioning.default_storage_namespace(CHECKPOINT_REPOSITORY, client=lakefs_client) or ""
    versioning.ensure_repository(CHECKPOINT_REPOSITORY, storage_namespace=namespace, client=lakefs_client)
    versioning.create_branch(
        CHECKPOINT_REPOSITORY, branch, source_ref="main", client=lakefs_client, exist_ok=True
    )
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
            workers=[worker],
            allow_other_workers=False,
            pure=False,
            key=f"lockgate-train-{run_id}-rank-{rank}-{os.urandom(4).hex()}",
        )
        for rank, worker in enumerate(workers)
    ]
    try:
        results = client.gather(futures)
    except TrainingError:
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
        feature_spec=FeatureSpec.from_dict(lead["features"]),
        history=lead["history"],
        holdout=pd.concat([r["holdout"] for r in results], ignore_index=True),
        epochs_run=lead["epochs_run"],
        resumed_from_epoch=lead["resumed_from_epoch"],
        world_size=world,
        backend=lead["backend"],
        timings={k: max(r["timings"][k] for r in results) for k in lead["timings"]},
    )


__all__ = [
    "InvalidInputError",
    "TrainingConfig",
    "TrainingData",
    "TrainingError",
    "TrainingResult",
    "UncheckedDataError",
    "read_shard",
    "resolve_training_data",
    "run_rank",
    "train_distributed",
]
