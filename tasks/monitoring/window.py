"""Reading what the live model saw: the inference-log (and label) objects added between two commits of
the inference repository (a lakeFS diff, so each row is looked at once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from contracts.inference_log import LABELS_PREFIX, LOG_PREFIX, PARQUET_SUFFIX, date_prefix
from tasks import versioning

if TYPE_CHECKING:
    import lakefs


@dataclass
class LogWindow:
    """Inference-log rows and labels added between two commits of the inference repository."""

    since_commit: str | None
    until_commit: str
    rows: pd.DataFrame
    labels: pd.DataFrame
    log_files: list[str] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)


def inference_head(client: lakefs.Client, *, repository: str) -> str | None:
    """The commit ``main`` of the inference repository points at; None before anything was logged."""
    return versioning.head_commit(repository, "main", client=client)


def read_window(
    client: lakefs.Client,
    *,
    since_commit: str | None,
    until_commit: str,
    repository: str,
) -> LogWindow:
    """Rows logged (and labels stored) after ``since_commit`` up to ``until_commit``.

    ``since_commit`` None reads everything at ``until_commit``. Objects are only ever added under
    ``logs/`` and ``labels/``; a changed object is read again, a removed one ignored.
    """
    if since_commit is None:
        logs = versioning.list_objects(
            repository, ref=until_commit, prefix=LOG_PREFIX, suffix=PARQUET_SUFFIX, client=client
        )
        labels = versioning.list_objects(
            repository, ref=until_commit, prefix=LABELS_PREFIX, suffix=PARQUET_SUFFIX, client=client
        )
    else:
        changes = versioning.diff_refs(
            repository, left_ref=since_commit, right_ref=until_commit, client=client
        )
        fresh = [
            c.path for c in changes if c.type in ("added", "changed") and c.path.endswith(PARQUET_SUFFIX)
        ]
        logs = [p for p in fresh if p.startswith(LOG_PREFIX)]
        labels = [p for p in fresh if p.startswith(LABELS_PREFIX)]
    rows = versioning.read_parquet_objects(repository, ref=until_commit, paths=logs, client=client)
    label_rows = versioning.read_parquet_objects(repository, ref=until_commit, paths=labels, client=client)
    return LogWindow(
        since_commit=since_commit,
        until_commit=until_commit,
        rows=rows if rows is not None else pd.DataFrame(),
        labels=label_rows if label_rows is not None else pd.DataFrame(),
        log_files=logs,
        label_files=labels,
    )


def read_recent_logs(
    client: lakefs.Client,
    *,
    ref: str,
    days: int,
    columns: Sequence[str],
    repository: str,
    now: datetime | None = None,
) -> pd.DataFrame:
    """``columns`` of every row logged in the last ``days`` days (by date partition), for label joins."""
    today = (now or datetime.now(UTC)).date()
    frames = []
    for offset in range(days + 1):
        prefix = date_prefix(LOG_PREFIX, today - timedelta(days=offset))
        paths = versioning.list_objects(
            repository, ref=ref, prefix=prefix, suffix=PARQUET_SUFFIX, client=client
        )
        frame = versioning.read_parquet_objects(repository, ref=ref, paths=paths, client=client)
        if frame is not None:
            frames.append(frame[[c for c in columns if c in frame.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
