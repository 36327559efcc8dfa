"""Holdout metrics of multiclass classifiers and regressors (binary classifiers: ``metrics``).

Each returns a JSON-ready mapping, the shape the model card stores and the champion comparison reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, recall_score

from infra.errors import EvaluationError
from tasks.evaluation.metrics import PROBABILITY_CLIP

# Per task: metrics a champion comparison may use, and whether a larger value is better.
MULTICLASS_COMPARABLE: dict[str, bool] = {"accuracy": True, "macro_f1": True, "log_loss": False}
REGRESSION_COMPARABLE: dict[str, bool] = {"rmse": False, "mae": False, "r2": True}


def evaluate_multiclass(
    y_true: np.ndarray, probabilities: np.ndarray, *, classes: tuple[Any, ...]
) -> dict[str, Any]:
    """Accuracy, macro-F1, log loss and recall per class of predicted class probabilities.

    Args:
        y_true: Class index per row (0 .. len(classes) - 1).
        probabilities: One row of class probabilities per label, each row summing to 1.
        classes: The class labels, in index order (named in ``per_class_recall``).

    Returns:
        ``count``, ``accuracy``, ``macro_f1``, ``log_loss``, ``per_class_recall`` (label -> recall,
        None for a class absent from ``y_true``), ``prior_log_loss`` (the log loss of always answering
        the observed class frequencies, the "chance" a model must beat) and ``majority_rate``.

    Raises:
        EvaluationError: shapes differ, no rows, an index outside the classes, or probabilities not
            finite.
    """
    labels = np.asarray(y_true)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes) or len(labels) != len(probs):
        raise EvaluationError(
            f"need one row of {len(classes)} class probabilities per label; got labels {labels.shape} and "
            f"probabilities {probs.shape}"
        )
    if labels.size == 0:
        raise EvaluationError("no rows to evaluate")
    if not np.isfinite(probs).all():
        raise EvaluationError("class probabilities must be finite")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= len(classes):
        raise EvaluationError(f"class indexes must lie in 0..{len(classes) - 1}")
    predicted = probs.argmax(axis=1)
    truth = np.clip(probs[np.arange(len(labels)), labels], PROBABILITY_CLIP, 1.0)
    frequencies = np.bincount(labels, minlength=len(classes)) / len(labels)
    prior = -float(np.mean(np.log(np.clip(frequencies[labels], PROBABILITY_CLIP, 1.0))))
    present = set(labels.tolist())
    recalls = recall_score(labels, predicted, labels=list(range(len(classes))), average=None, zero_division=0)
    return {
        "count": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "macro_f1": float(
            f1_score(labels, predicted, labels=sorted(present), average="macro", zero_division=0)
        ),
        "log_loss": -float(np.mean(np.log(truth))),
        "per_class_recall": {
            str(label): (float(recalls[index]) if index in present else None)
            for index, label in enumerate(classes)
        },
        "prior_log_loss": prior,
        "majority_rate": float(frequencies.max()),
    }


def evaluate_regression(
    y_true: np.ndarray, predictions: np.ndarray, *, intervals: np.ndarray | None = None
) -> dict[str, Any]:
    """RMSE, MAE and R² of predictions; interval coverage when the model gives intervals.

    Args:
        y_true: Observed values.
        predictions: Predicted values, one per observation.
        intervals: Optional ``(n, 2)`` lower and upper bounds the model gave.

    Returns:
        ``count``, ``rmse``, ``mae``, ``r2`` (None for fewer than two rows or a constant target),
        ``target_std`` (the RMSE of always answering the mean, the "chance" a model must beat) and,
        with intervals, ``interval_coverage`` (share of observations inside their interval).

    Raises:
        EvaluationError: lengths differ, no rows, or values not finite.
    """
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(predictions, dtype=np.float64)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise EvaluationError(f"need one prediction per value; got {truth.shape} and {predicted.shape}")
    if truth.size == 0:
        raise EvaluationError("no rows to evaluate")
    if not (np.isfinite(truth).all() and np.isfinite(predicted).all()):
        raise EvaluationError("values and predictions must be finite")
    spread = float(np.std(truth))
    found: dict[str, Any] = {
        "count": int(truth.size),
        "rmse": float(math.sqrt(np.mean((truth - predicted) ** 2))),
        "mae": float(mean_absolute_error(truth, predicted)),
        "r2": float(r2_score(truth, predicted)) if truth.size >= 2 and spread > 0 else None,
        "target_std": spread,
    }
    if intervals is not None:
        bounds = np.asarray(intervals, dtype=np.float64)
        if bounds.shape != (truth.size, 2):
            raise EvaluationError(f"intervals must have shape ({truth.size}, 2), got {bounds.shape}")
        found["interval_coverage"] = float(np.mean((truth >= bounds[:, 0]) & (truth <= bounds[:, 1])))
    return found
