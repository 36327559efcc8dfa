"""Training: DDP on Dask over a contract-checked dataset commit, and the stage that registers the result.

=================================  ==============================================================
``tasks.training.data``            pin a ref to a checked commit, each rank's shard, the holdout split
``tasks.training.checkpoints``     one checkpoint per epoch in lakeFS; a retry resumes from it
``tasks.training.distributed``     the training config, one rank's loop, the driver on Dask
``tasks.training.run``             ``run_train``: train, evaluate, plot, register with lineage
=================================  ==============================================================
"""

from __future__ import annotations

from infra.errors import TrainingError, UncheckedDataError
from tasks.training.checkpoints import CHECKPOINT_REPOSITORY, load_checkpoint, save_checkpoint
from tasks.training.data import (
    BUCKETS,
    HOLDOUT_BUCKET,
    VALIDATION_BUCKET,
    TrainingData,
    read_shard,
    resolve_training_data,
    split_buckets,
)
from tasks.training.distributed import TrainingConfig, TrainingResult, run_rank, train_distributed
from tasks.training.run import TrainParameters, TrainResult, run_train

__all__ = [
    "BUCKETS",
    "CHECKPOINT_REPOSITORY",
    "HOLDOUT_BUCKET",
    "VALIDATION_BUCKET",
    "TrainParameters",
    "TrainResult",
    "TrainingConfig",
    "TrainingData",
    "TrainingError",
    "TrainingResult",
    "UncheckedDataError",
    "load_checkpoint",
    "read_shard",
    "resolve_training_data",
    "run_rank",
    "run_train",
    "save_checkpoint",
    "split_buckets",
    "train_distributed",
]
