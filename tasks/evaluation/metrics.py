"""Holdout metrics of a binary classifier, per slice too, and the champion comparison."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from infra.errors import EvaluationError

PROBABILITY_CLIP = 1e-15  # log loss of a confident miss is finite (about 34.5) instead of infinite
MIN_SLICE_ROWS = 50
INSUFFICIENT_DATA = "insufficient data"
AGE_BAND_EDGES = (20, 30, 40, 50, 60, 70, 80)
# Metrics a champion comparison may use, and whether a larger value is better.
COMPARABLE_METRICS: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "accuracy": True,
    "log_loss": False,
    "brier_score": False,
    "expected_calibration_error": False,
}
SLICE_METRICS = (
    "roc_auc",
    "accuracy",
    "log_loss",
    "expected_calibration_error",
    "brier_score",
    "positive_rate",
    "base_rate",
)


@dataclass(frozen=True)
class Metrics:
    """Holdout metrics of a binary classifier.

    Attributes:
        count: Number of rows evaluated.
        roc_auc: Area under the ROC curve; None when ``y_true`` holds a single class (see ``notes``).
        accuracy: Fraction of rows where ``y_prob >= threshold`` matches the label.
        log_loss: Mean negative log-likelihood; the probability given to the true label is clipped
            to at least 1e-15, so a confident miss costs about 34.5 instead of infinity.
        expected_calibration_error: Equal-width bins over [0, 1]; mean |observed rate - mean
            probability| per bin, weighted by the bin's share of rows.
        brier_score: Mean squared difference between probability and label.
        positive_rate: Fraction of rows predicted positive (``y_prob >= threshold``).
        base_rate: Fraction of rows whose label is 1.
        threshold: Decision threshold used for accuracy and positive rate.
        bins: Number of calibration bins.
        notes: Why a metric is missing, in words.
        pr_auc: Area under the precision-recall curve (average precision); None with one class.
        base_log_loss: Log loss of always answering the base rate (what "better than chance" beats).
    """

    count: int
    roc_auc: float | None
    accuracy: float
    log_loss: float
    expected_calibration_error: float
    brier_score: float
    positive_rate: float
    base_rate: float
    threshold: float
    bins: int
    notes: tuple[str, ...] = field(default=())
    pr_auc: float | None = None
    base_log_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``notes`` as a list), e.g. for the model card."""
        values = asdict(self)
        values["notes"] = list(self.notes)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Metrics:
        """Rebuild metrics written by ``to_dict`` (e.g. a champion's model card); unknown keys are ignored."""
        names = {item.name for item in fields(cls)}
        missing = sorted(names - set(values) - {"notes", "pr_auc", "base_log_loss"})
        if missing:
            raise EvaluationError(f"metrics mapping lacks {missing}; expected the keys of Metrics.to_dict()")
        kept = {name: values[name] for name in names if name in values}
        kept["notes"] = tuple(kept.get("notes", ()))
        return cls(**kept)


@dataclass(frozen=True)
class Decision:
    """Outcome of a champion comparison: whether the challenger should replace it, and why."""

    better: bool
    reason: str


def evaluate_predictions(
    y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5, bins: int = 10
) -> Metrics:
    """Compute holdout metrics for predicted probabilities of the positive class.

    Args:
        y_true: Labels, 0 or 1 (bool, int or float), one per row.
        y_prob: Predicted probability of label 1, in [0, 1], one per row.
        threshold: Rows with ``y_prob >= threshold`` count as predicted positive.
        bins: Number of equal-width calibration bins over [0, 1].

    Returns:
        The metrics; ``roc_auc`` is None (with a note) when only one class is present.

    Raises:
        EvaluationError: Lengths differ, no rows, labels not 0/1, probabilities NaN, infinite or
            outside [0, 1], threshold outside [0, 1], or bins below 1.
    """
    labels, probabilities = _checked_arrays(y_true, y_prob)
    _check_threshold_and_bins(threshold, bins)
    notes: list[str] = []
    present = np.unique(labels)
    pr_auc: float | None = None
    if present.size == 2:
        roc_auc: float | None = float(roc_auc_score(labels, probabilities))
        pr_auc = float(average_precision_score(labels, probabilities))
    else:
        roc_auc = None
        notes.append(f"roc_auc undefined: only label {int(present[0])} is present in y_true")
    base_rate = float(np.mean(labels))
    probability_of_truth = np.where(labels == 1.0, probabilities, 1.0 - probabilities)
    predicted = probabilities >= threshold
    return Metrics(
        count=int(labels.size),
        roc_auc=roc_auc,
        accuracy=float(np.mean(predicted == (labels == 1.0))),
        log_loss=float(-np.mean(np.log(np.clip(probability_of_truth, PROBABILITY_CLIP, 1.0)))),
        expected_calibration_error=_expected_calibration_error(labels, probabilities, bins),
        brier_score=float(np.mean((probabilities - labels) ** 2)),
        positive_rate=float(np.mean(predicted)),
        base_rate=base_rate,
        threshold=float(threshold),
        bins=int(bins),
        notes=tuple(notes),
        pr_auc=pr_auc,
        base_log_loss=_base_log_loss(labels, base_rate),
    )


def _base_log_loss(labels: np.ndarray, base_rate: float) -> float:
    """Log loss of answering ``base_rate`` for every row."""
    rate = min(max(base_rate, PROBABILITY_CLIP), 1.0 - PROBABILITY_CLIP)
    return float(-np.mean(np.where(labels == 1.0, math.log(rate), math.log(1.0 - rate))))


def age_bands(age: pd.Series) -> pd.Series:
    """Ten-year age bands for the loans data: 20-29, 30-39, ..., 60-69, and 70-80 (80 included).

    Args:
        age: Ages in years (the loans contract allows 20 to 80).

    Returns:
        An ordered categorical Series on ``age``'s index; ages outside [20, 80] or missing are NaN,
        which ``evaluate_slices`` reports as the group ``"missing"``.
    """
    values = pd.to_numeric(age, errors="coerce")
    edges = list(AGE_BAND_EDGES[:-1]) + [np.nextafter(float(AGE_BAND_EDGES[-1]), math.inf)]
    labels = [
        f"{low}-{high - 1}" for low, high in zip(AGE_BAND_EDGES[:-2], AGE_BAND_EDGES[1:-1], strict=True)
    ]
    labels.append(f"{AGE_BAND_EDGES[-2]}-{AGE_BAND_EDGES[-1]}")
    bands = pd.cut(values, bins=edges, right=False, labels=labels, ordered=True)
    return pd.Series(bands, index=age.index, name=f"{age.name}_band" if age.name else "age_band")


def evaluate_slices(
    frame: pd.DataFrame,
    y_prob: np.ndarray | pd.Series,
    *,
    target: str,
    slices: Mapping[str, pd.Series],
    threshold: float = 0.5,
    bins: int = 10,
    min_rows: int = MIN_SLICE_ROWS,
) -> pd.DataFrame:
    """The metrics of ``evaluate_predictions`` overall and per group of each slice.

    Args:
        frame: Holdout rows holding the ``target`` column.
        y_prob: Predicted probability of label 1, one per row of ``frame``, in row order.
        target: Name of the label column in ``frame``.
        slices: Slice name -> group label per row, on ``frame``'s index (e.g.
            ``{"age": age_bands(frame["age"])}``). Categorical groups keep their category order and
            appear even when empty; NaN labels form the group ``"missing"``.
        threshold: Decision threshold, as in ``evaluate_predictions``.
        bins: Calibration bins, as in ``evaluate_predictions``.
        min_rows: Groups with fewer rows get status ``"insufficient data"`` and no metrics.

    Returns:
        One row for ``slice="overall", group="all"`` then one per group, with columns ``slice``,
        ``group``, ``count``, ``status`` (``"ok"`` or ``"insufficient data"``), each metric of
        ``SLICE_METRICS``, ``<metric>_gap`` (group minus overall; NaN when not computed) and ``note``.

    Raises:
        EvaluationError: ``target`` missing, lengths or indexes differ, no slices, ``min_rows``
            below 1, or any input ``evaluate_predictions`` refuses.
    """
    if target not in frame.columns:
        raise EvaluationError(f"target column {target!r} is not in the frame; columns: {list(frame.columns)}")
    if not slices:
        raise EvaluationError("slices is empty; give at least one, e.g. {'age': age_bands(frame['age'])}")
    if min_rows < 1:
        raise EvaluationError(f"min_rows must be at least 1, got {min_rows}")
    probabilities = np.asarray(y_prob)
    if probabilities.shape != (len(frame),):
        raise EvaluationError(
            f"y_prob has shape {probabilities.shape} but the frame has {len(frame)} rows; "
            "give one probability per row"
        )
    for name, groups in slices.items():
        if not isinstance(groups, pd.Series) or not groups.index.equals(frame.index):
            raise EvaluationError(
                f"slice {name!r} must be a pandas Series on the frame's index (same labels, same order)"
            )
    labels = frame[target].to_numpy()
    overall = evaluate_predictions(labels, probabilities, threshold=threshold, bins=bins)
    rows = [_slice_row("overall", "all", overall, overall)]
    for name, groups in slices.items():
        for group, mask in _group_masks(groups):
            count = int(mask.sum())
            if count < min_rows:
                rows.append(_insufficient_row(name, group, count, min_rows))
                continue
            metrics = evaluate_predictions(labels[mask], probabilities[mask], threshold=threshold, bins=bins)
            rows.append(_slice_row(name, group, metrics, overall))
    return pd.DataFrame(rows, columns=_slice_columns())


def compare_to_champion(
    challenger: Metrics | Mapping[str, Any],
    champion: Metrics | Mapping[str, Any] | None,
    *,
    margin: float,
    metric: str = "roc_auc",
    comparable: Mapping[str, bool] = COMPARABLE_METRICS,
) -> Decision:
    """Decide whether a challenger beats the champion by more than ``margin`` on ``metric``.

    Args:
        challenger: Metrics of the new model.
        champion: Metrics of the current champion, on the same holdout; None when there is none.
        margin: Required improvement (>= 0), in the metric's units; the direction follows the metric
            (higher ROC AUC and accuracy, lower log loss, Brier score and calibration error).
        metric: One of ``comparable``.
        comparable: The metrics of the task that may be compared, and whether larger is better
            (``COMPARABLE_METRICS`` for binary classifiers; ``Problem.comparable_metrics``).

    Returns:
        ``Decision(better=True, ...)`` when there is no champion, the champion's metric is undefined,
        or the improvement exceeds ``margin``; otherwise ``better=False``. ``reason`` gives the numbers.

    Raises:
        EvaluationError: Unknown metric, or a negative or non-finite margin.
    """
    if metric not in comparable:
        raise EvaluationError(f"cannot compare on {metric!r}; choose one of {sorted(comparable)}")
    if not math.isfinite(margin) or margin < 0:
        raise EvaluationError(f"margin must be a finite number >= 0, got {margin}")
    new = metric_value(challenger, metric)
    if new is None:
        notes = challenger.notes if isinstance(challenger, Metrics) else challenger.get("notes", ())
        return Decision(False, f"challenger has no {metric} ({'; '.join(notes) or 'undefined'})")
    if champion is None:
        return Decision(True, f"no champion yet; challenger {metric}={new:.6f}")
    old = metric_value(champion, metric)
    if old is None:
        return Decision(True, f"champion has no {metric}; challenger {metric}={new:.6f}")
    improvement = new - old if comparable[metric] else old - new
    direction = "higher" if comparable[metric] else "lower"
    verdict = "exceeds" if improvement > margin else "does not exceed"
    reason = (
        f"{metric}: challenger {new:.6f} vs champion {old:.6f} ({direction} is better); "
        f"improvement {improvement:+.6f} {verdict} margin {margin:.6f}"
    )
    return Decision(improvement > margin, reason)


def metric_value(metrics: Metrics | Mapping[str, Any] | None, name: str) -> float | None:
    """One metric of binary ``Metrics`` or of a task's metrics mapping (None when absent)."""
    if metrics is None:
        return None
    value = getattr(metrics, name, None) if isinstance(metrics, Metrics) else metrics.get(name)
    return None if value is None else float(value)


def _checked_arrays(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities as float64 1-D arrays, or an EvaluationError naming the problem."""
    labels = np.asarray(y_true)
    probabilities = np.asarray(y_prob)
    if labels.ndim != 1 or probabilities.ndim != 1:
        raise EvaluationError(
            f"y_true and y_prob must be 1-D, got shapes {labels.shape} and {probabilities.shape}"
        )
    if labels.size != probabilities.size:
        raise EvaluationError(
            f"y_true and y_prob have different lengths ({labels.size} and {probabilities.size}); "
            "give one probability per label"
        )
    if labels.size == 0:
        raise EvaluationError("y_true and y_prob are empty; nothing to evaluate")
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
        raise EvaluationError(f"labels must be 0 or 1, got values of type {labels.dtype}")
    if not np.issubdtype(probabilities.dtype, np.number) or np.iscomplexobj(probabilities):
        raise EvaluationError(f"probabilities must be real numbers, got values of type {probabilities.dtype}")
    labels = labels.astype(np.float64)
    probabilities = probabilities.astype(np.float64)
    bad_labels = ~np.isin(labels, (0.0, 1.0))
    if bad_labels.any():
        raise EvaluationError(
            f"labels must be 0 or 1; {int(bad_labels.sum())} are not, "
            f"e.g. {_examples(labels, bad_labels)} (positions, values)"
        )
    not_finite = ~np.isfinite(probabilities)
    if not_finite.any():
        raise EvaluationError(
            f"probabilities must be finite; {int(not_finite.sum())} are NaN or infinite, "
            f"e.g. {_examples(probabilities, not_finite)} (positions, values)"
        )
    outside = (probabilities < 0.0) | (probabilities > 1.0)
    if outside.any():
        raise EvaluationError(
            f"probabilities must lie in [0, 1]; {int(outside.sum())} are outside, "
            f"e.g. {_examples(probabilities, outside)} (positions, values); pass probabilities, not logits"
        )
    return labels, probabilities


def _examples(values: np.ndarray, mask: np.ndarray, limit: int = 3) -> list[tuple[int, float]]:
    """The first few (position, value) pairs where ``mask`` holds."""
    return [(int(position), float(values[position])) for position in np.flatnonzero(mask)[:limit]]


def _check_threshold_and_bins(threshold: float, bins: int) -> None:
    """Refuse a threshold outside [0, 1] or a bin count below 1."""
    if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise EvaluationError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise EvaluationError(f"bins must be an integer >= 1, got {bins!r}")


def _calibration_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: row count, mean probability and observed positive rate (NaN when empty)."""
    # Bin i holds [i/bins, (i+1)/bins); probability 1.0 goes into the last bin.
    index = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    probability_sums = np.bincount(index, weights=probabilities, minlength=bins)
    label_sums = np.bincount(index, weights=labels, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts, probability_sums / counts, label_sums / counts


def _expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> float:
    """Bin-count-weighted mean of |observed rate - mean probability| over non-empty bins."""
    counts, mean_probability, observed_rate = _calibration_bins(labels, probabilities, bins)
    used = counts > 0
    gaps = np.abs(observed_rate[used] - mean_probability[used])
    return float(np.sum(counts[used] * gaps) / labels.size)


def _group_masks(groups: pd.Series) -> list[tuple[str, np.ndarray]]:
    """(group label, row mask) per group; categories in order (even empty ones), NaN as ``"missing"``."""
    if isinstance(groups.dtype, pd.CategoricalDtype):
        names = list(groups.cat.categories)
    else:
        names = sorted(groups.dropna().unique(), key=str)
    values = groups.to_numpy()
    masks = [(str(name), values == name) for name in names]
    absent = groups.isna().to_numpy()
    if absent.any():
        masks.append(("missing", absent))
    return masks


def _slice_columns() -> list[str]:
    """Column order of the slice table."""
    return [
        "slice",
        "group",
        "count",
        "status",
        *SLICE_METRICS,
        *(f"{metric}_gap" for metric in SLICE_METRICS),
        "note",
    ]


def _slice_row(name: str, group: str, metrics: Metrics, overall: Metrics) -> dict[str, Any]:
    """One slice-table row with metrics and their gaps to the overall values."""
    row: dict[str, Any] = {"slice": name, "group": group, "count": metrics.count, "status": "ok"}
    for metric in SLICE_METRICS:
        value, reference = getattr(metrics, metric), getattr(overall, metric)
        row[metric] = math.nan if value is None else value
        row[f"{metric}_gap"] = math.nan if value is None or reference is None else value - reference
    row["note"] = "; ".join(metrics.notes)
    return row


def _insufficient_row(name: str, group: str, count: int, min_rows: int) -> dict[str, Any]:
    """A slice-table row for a group too small to report metrics for."""
    row: dict[str, Any] = {"slice": name, "group": group, "count": count, "status": INSUFFICIENT_DATA}
    row.update({metric: math.nan for metric in SLICE_METRICS})
    row.update({f"{metric}_gap": math.nan for metric in SLICE_METRICS})
    row["note"] = f"{count} rows, fewer than {min_rows}; metrics not reported"
    return row
