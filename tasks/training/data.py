"""What training reads: a dataset pinned to one commit whose every batch passed its contracts,
each rank's shard of it, and the stable split into training, validation and holdout rows."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from infra.errors import TrainingError, UncheckedDataError
from tasks import versioning
from tasks.contract_reports import DATA_PREFIX, batch_folder, passed_contract_reports
from tasks.datasets import DatasetSpec

if TYPE_CHECKING:
    import lakefs

HOLDOUT_BUCKET, VALIDATION_BUCKET, BUCKETS = 0, 1, 10


@dataclass(frozen=True)
class TrainingData:
    """A dataset pinned to one commit whose every batch passed its contracts."""

    dataset: str
    repository: str
    commit_id: str
    parts: tuple[str, ...]
    reports: tuple[str, ...]


def resolve_training_data(spec: DatasetSpec, ref: str, *, client: lakefs.Client) -> TrainingData:
    """Pin ``ref`` to a commit and check that every batch in it passed its contract report.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        TrainingError: there is no data at that commit.
        UncheckedDataError: a batch folder has no passed contract report (an unreadable report
            vouches for nothing, as at the merge gate).
    """
    commit_id = versioning.resolve_ref(spec.repository, ref, client=client)
    parts = tuple(
        versioning.list_objects(
            spec.repository, ref=commit_id, prefix=DATA_PREFIX, suffix=".parquet", client=client
        )
    )
    if not parts:
        raise TrainingError(
            f"dataset {spec.name!r} has no data at {ref!r} ({commit_id[:12]}): nothing to train on"
        )
    passed = passed_contract_reports(spec.repository, commit_id, client=client)
    unchecked = sorted({batch_folder(p) for p in parts} - set(passed))
    if unchecked:
        raise UncheckedDataError(
            f"ref {ref!r} ({commit_id[:12]}) of {spec.repository!r} holds data without a passed contract "
            f"report: {', '.join(unchecked[:5])}; train on main or on a commit whose batches passed"
        )
    return TrainingData(spec.name, spec.repository, commit_id, parts, tuple(sorted(passed.values())))


def read_shard(data: TrainingData, *, rank: int, world: int, client: lakefs.Client) -> pd.DataFrame:
    """This rank's rows: whole row groups when there are enough, else every ``world``-th row.

    Only the row groups this rank needs are fetched (HTTP range requests on the pinned commit).
    """
    with contextlib.ExitStack() as stack:
        files = {
            path: pq.ParquetFile(
                stack.enter_context(
                    versioning.open_object(data.repository, ref=data.commit_id, path=path, client=client)
                )
            )
            for path in data.parts
        }
        units = [
            (path, group) for path, file in files.items() for group in range(file.metadata.num_row_groups)
        ]
        if len(units) >= world:
            frames = [files[p].read_row_group(g).to_pandas() for p, g in units[rank::world]]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        frame = pd.concat([files[p].read_row_group(g).to_pandas() for p, g in units], ignore_index=True)
        return frame.iloc[rank::world].reset_index(drop=True)


def split_buckets(frame: pd.DataFrame, key_columns: tuple[str, ...]) -> np.ndarray:
    """A stable bucket 0-9 per row from its key: 0 holdout, 1 validation, the rest training."""
    hashes = pd.util.hash_pandas_object(frame[list(key_columns)], index=False).to_numpy()
    return (hashes % np.uint64(BUCKETS)).astype(np.int64)
