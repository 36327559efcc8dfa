"""The labels feedback path: observed outcomes, keyed by request ID, stored beside the inference log.

A batch is checked against ``contracts.feedback.OutcomeLabel`` first; a bad batch is refused whole
with every problem named, and nothing is written. A good batch becomes one Parquet object under
``labels/date=YYYY-MM-DD/`` (``contracts.inference_log``) on ``main`` of the inference repository,
published by a single commit, so monitoring sees all of it or none of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pandera.errors

from contracts.feedback import LABEL_COLUMNS, OutcomeLabel, OutcomeNumber, OutcomeValue
from contracts.inference_log import label_object_path
from infra.errors import LabelError, NoChangesError
from tasks import versioning

if TYPE_CHECKING:
    import lakefs

_EXAMPLES = 3


@dataclass(frozen=True)
class LabelBatch:
    """Where a stored batch went."""

    rows: int
    path: str
    commit_id: str
    repository: str

    @property
    def location(self) -> str:
        return f"lakefs://{self.repository}/{self.commit_id}/{self.path}"


def read_label_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV, JSON-lines or Parquet file of labels; the error names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"label file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"request_id": str})
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype={"request_id": str})
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError) as error:
        raise LabelError(f"label file {str(path)!r} is not readable as {suffix[1:]}: {error}") from error
    raise LabelError(f"label file {str(path)!r}: use .csv, .jsonl or .parquet, not {suffix or 'no suffix'!r}")


def check_labels(frame: pd.DataFrame, *, now: datetime | None = None, problem: Any = None) -> pd.DataFrame:
    """The batch in contract form (``record_index`` 0 and ``observed_at`` now when absent).

    Without ``problem`` (a ``tasks.problems.Problem``) outcomes are 0/1 (a binary classifier with
    classes 0 and 1). With one, outcomes are the model's classes (matched by their text, so ``"1"``
    read from a CSV is the class ``1``), or numbers for a regressor.

    Raises:
        LabelError: unknown or missing columns, an empty batch, or rows breaking the contract; the
            message names each column, check and a few failing values.
    """
    if frame.empty:
        raise LabelError("the label batch is empty")
    extra = sorted(set(frame.columns) - set(LABEL_COLUMNS))
    if extra:
        raise LabelError(f"unknown label column(s) {extra}; a label row has {list(LABEL_COLUMNS)}")
    missing = [c for c in ("request_id", "outcome") if c not in frame.columns]
    if missing:
        raise LabelError(f"label batch lacks column(s) {missing}")
    prepared = frame.copy()
    if "record_index" not in prepared:
        prepared["record_index"] = 0
    if "observed_at" not in prepared:
        prepared["observed_at"] = now or datetime.now(UTC)
    try:
        observed = pd.to_datetime(prepared["observed_at"], utc=True, errors="raise")
    except (ValueError, TypeError) as error:
        raise LabelError(f"column 'observed_at' holds values that are not times: {error}") from None
    prepared["observed_at"] = observed.dt.tz_localize(None)  # naive UTC, as stored
    if prepared["request_id"].isna().any():
        raise LabelError(f"column 'request_id' is empty in {int(prepared['request_id'].isna().sum())} row(s)")
    prepared["request_id"] = prepared["request_id"].astype(str)
    model = OutcomeLabel
    if problem is not None and not (problem.task == "binary" and tuple(problem.classes) == (0, 1)):
        prepared["outcome"] = _outcomes_of(prepared["outcome"], problem)
        model = OutcomeNumber if problem.task == "regression" else OutcomeValue
    try:
        validated = model.validate(prepared[list(LABEL_COLUMNS)], lazy=True)
    except pandera.errors.SchemaErrors as errors:
        raise LabelError("label batch refused: " + _describe(errors.failure_cases)) from None
    return validated.reset_index(drop=True)


def _outcomes_of(values: pd.Series, problem: Any) -> pd.Series:
    """Outcomes as the model's own values: its classes (matched by text) or numbers."""
    if problem.task == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna()]
        if len(bad):
            raise LabelError(
                f"outcome must be a number for a regression model; {len(bad)} row(s) are not, e.g. "
                f"{bad.head(3).tolist()}"
            )
        return numbers.astype("float64")
    by_text = {str(label): label for label in problem.classes}
    mapped = values.map(lambda v: by_text.get(str(v)) if not pd.isna(v) else None)
    bad = values[mapped.isna()]
    if len(bad):
        raise LabelError(
            f"outcome must be one of the model's classes {list(problem.classes)}; {len(bad)} row(s) are not, "
            f"e.g. {bad.head(3).tolist()}"
        )
    return mapped.astype(object)


def ingest_labels(
    frame: pd.DataFrame,
    *,
    client: lakefs.Client,
    repository: str,
    source: str = "",
    problem: Any = None,
) -> LabelBatch:
    """Check ``frame`` and publish it as one commit on ``main`` of the inference repository
    (``ServingSettings.inference_repository``: the labels sit beside the answers they label).
    ``problem`` is the labelled model's task (``check_labels``)."""
    labels = check_labels(frame, problem=problem)
    versioning.ensure_default_repository(repository, client=client)
    path = label_object_path(datetime.now(UTC), uuid.uuid4().hex)
    versioning.write_dataframe(labels, repository=repository, branch="main", path=path, client=client)
    try:
        commit_id = versioning.commit_changes(
            repository,
            "main",
            message=f"labels: {len(labels)} outcome(s)" + (f" from {source}" if source else ""),
            metadata={"lockgate.kind": "labels", "lockgate.rows": str(len(labels)), "lockgate.path": path},
            client=client,
        )
    except NoChangesError:
        # Another writer's commit on main (a serving flush, retention) took the staged object with it:
        # it is committed, at main's head.
        commit_id = versioning.resolve_ref(repository, "main", client=client)
    return LabelBatch(rows=len(labels), path=path, commit_id=commit_id, repository=repository)


def _describe(failures: pd.DataFrame) -> str:
    parts = []
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        examples = ", ".join(repr(v) for v in group["failure_case"].head(_EXAMPLES))
        name = "dataframe" if pd.isna(column) else column
        parts.append(f"{name}: {check} failed for {len(group)} row(s) (e.g. {examples})")
    return "; ".join(parts)
