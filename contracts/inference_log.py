"""The inference-log format, shared by its writer (the serving app) and its readers (monitoring, labels).

Layout in the inference repository (``ServingSettings.inference_repository``, ``lockgate-inference`` by
default), on ``main``::

    logs/date=2026-11-27/<writer>-<sequence>.parquet     one object per flush of one ingress replica
    labels/date=2026-11-27/<uuid>.parquet                one object per label batch

A log row is one record of one request: the request's features under their own names (a feature
named like a base column is stored as ``feature_<name>``) and the base columns below. Shadow copies
(a challenger answering in the background) and failures are logged too, marked by ``shadow`` and
``status``; ``answered_rows`` keeps what a client was answered with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

LOG_PREFIX = "logs/"
LABELS_PREFIX = "labels/"
PARQUET_SUFFIX = ".parquet"
PREDICTION_COLUMN = "score"
PROBABILITY_COLUMN = "probability"

# Columns every log row has, besides the request's feature columns.
BASE_COLUMNS = (
    "request_id",
    "record_index",
    "time",
    "model_name",
    "model_version",
    "role",
    "shadow",
    "status",
    "latency_ms",
    "prediction",
    PROBABILITY_COLUMN,
    PREDICTION_COLUMN,
)
_BASE = frozenset(BASE_COLUMNS)
# What label joins read of logged answers.
LABEL_JOIN_COLUMNS = (
    "request_id",
    "record_index",
    "model_name",
    "model_version",
    "shadow",
    "status",
    "prediction",
    PROBABILITY_COLUMN,
    PREDICTION_COLUMN,
)


def feature_column(name: str) -> str:
    """The log column of feature ``name`` (``feature_<name>`` when it clashes with a base column)."""
    return f"feature_{name}" if name in _BASE else name


def date_prefix(prefix: str, day: date) -> str:
    """``logs/date=YYYY-MM-DD/`` (or ``labels/...``): where one day's objects are."""
    return f"{prefix}date={day:%Y-%m-%d}/"


def log_object_path(first_time: datetime, writer: str, sequence: int) -> str:
    """Path of one flush of one writer, filed under the date of its first row."""
    return f"{date_prefix(LOG_PREFIX, first_time.date())}{writer}-{sequence:08d}{PARQUET_SUFFIX}"


def label_object_path(observed: datetime, batch_id: str) -> str:
    """Path of one label batch, filed under the date it was stored."""
    return f"{date_prefix(LABELS_PREFIX, observed.date())}{batch_id}{PARQUET_SUFFIX}"


def log_rows(
    *,
    request_id: str,
    records: list[Mapping[str, Any]],
    model_name: str,
    model_version: str,
    role: str,
    shadow: bool,
    latency_ms: float,
    probabilities: list[float | None] | None,
    threshold: float = 0.5,
    status: str = "ok",
    at: datetime | None = None,
    predictions: list[Any] | None = None,
    scores: list[float] | None = None,
) -> list[dict[str, Any]]:
    """One log row per record of a request: features, prediction, version, latency, time, request ID.

    ``prediction`` is the answer (a class or a value; ``probability >= threshold`` as 0/1 when only
    probabilities are given), ``probability`` the probability of that answer's class (binary: of the
    positive class), ``score`` the number monitoring compares (``tasks.problems.Problem.scores``).
    """
    at = at or datetime.now(UTC)
    rows = []
    for index, record in enumerate(records):
        probability = (
            None if probabilities is None or probabilities[index] is None else float(probabilities[index])
        )
        if predictions is not None:
            prediction = predictions[index]
        else:
            prediction = None if probability is None else int(probability >= threshold)
        score = float(scores[index]) if scores is not None else probability
        rows.append(
            {
                "request_id": request_id,
                "record_index": index,
                "time": at,
                "model_name": model_name,
                "model_version": model_version,
                "role": role,
                "shadow": shadow,
                "status": status,
                "latency_ms": float(latency_ms),
                "prediction": prediction,
                PROBABILITY_COLUMN: probability,
                PREDICTION_COLUMN: score,
                **{feature_column(name): value for name, value in record.items()},
            }
        )
    return rows


def empty_log() -> pd.DataFrame:
    """A log with no rows (the base columns only)."""
    return pd.DataFrame(columns=list(BASE_COLUMNS))


def answered_rows(rows: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """Rows of ``model_name`` a client got an answer from (not shadow copies, not failures)."""
    if rows.empty:
        return rows
    mine = rows[rows["model_name"] == model_name]
    return mine[(~mine["shadow"].astype(bool)) & (mine["status"] == "ok")]


def current_features(
    rows: pd.DataFrame, *, model_name: str, champion_version: str, features: Sequence[str]
) -> pd.DataFrame:
    """The feature columns of every answered record, and the champion's probability where it answered.

    Records answered by another version (a challenger mid-rollout) keep their features but get no
    probability, so prediction drift compares the champion with its own reference only.

    Raises:
        ValueError: the log lacks a feature column.
    """
    answered = answered_rows(rows, model_name)
    if answered.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in [*features, PREDICTION_COLUMN]})
    columns = {
        name: answered[name] if name in answered else answered.get(f"feature_{name}") for name in features
    }
    missing = [name for name, values in columns.items() if values is None]
    if missing:
        raise ValueError(f"the inference log has no column(s) {missing} for model {model_name!r}")
    current = pd.DataFrame(columns, index=answered.index)
    scores = answered[PREDICTION_COLUMN] if PREDICTION_COLUMN in answered else answered[PROBABILITY_COLUMN]
    current[PREDICTION_COLUMN] = scores.astype("float64").where(answered["model_version"] == champion_version)
    return current.reset_index(drop=True)
