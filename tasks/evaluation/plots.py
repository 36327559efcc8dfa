"""Plots of a holdout evaluation, drawn on a bare ``matplotlib.figure.Figure`` (no pyplot)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from infra.errors import EvaluationError
from tasks.evaluation.metrics import (
    SLICE_METRICS,
    _calibration_bins,
    _check_threshold_and_bins,
    _checked_arrays,
    _expected_calibration_error,
)

_PNG_METADATA = {"Software": None}  # no matplotlib version stamp: same inputs, same bytes


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Plot train/validation loss and, where recorded, validation ROC AUC per epoch to a PNG.

    Args:
        history: One mapping per epoch with ``epoch``, ``train_loss`` and ``valid_loss``, and
            optionally ``valid_auc`` (missing or None leaves a gap; when no epoch has it, only the
            loss panel is drawn).
        path: Where to write the PNG (parent folders are created).

    Returns:
        The written path.

    Raises:
        EvaluationError: Empty history or an epoch lacking one of the required keys.
    """
    required = ("epoch", "train_loss", "valid_loss")
    if not history:
        raise EvaluationError("history is empty; expected one mapping per epoch")
    for position, entry in enumerate(history):
        missing = [key for key in required if key not in entry]
        if missing:
            raise EvaluationError(f"history[{position}] lacks {missing}; every epoch needs {list(required)}")
    epochs = [entry["epoch"] for entry in history]

    def series(key: str) -> list[float]:
        return [math.nan if entry.get(key) is None else float(entry[key]) for entry in history]

    auc = series("valid_auc")
    with_auc = not all(math.isnan(value) for value in auc)
    figure = Figure(figsize=(9 if with_auc else 5, 3.5))
    panels = figure.subplots(1, 2 if with_auc else 1, squeeze=False)[0]
    loss_axes = panels[0]
    loss_axes.plot(epochs, series("train_loss"), marker="o", label="train")
    loss_axes.plot(epochs, series("valid_loss"), marker="o", label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_axes.legend()
    if with_auc:
        panels[1].plot(epochs, auc, marker="o", color="tab:green")
        panels[1].set(xlabel="epoch", ylabel="ROC AUC", title="Validation ROC AUC")
    figure.tight_layout()
    return _save(figure, path)


def plot_roc(y_true: np.ndarray, y_prob: np.ndarray, path: str | Path, *, label: str = "model") -> Path:
    """Plot the ROC curve, with its AUC in the legend, to a PNG.

    Args:
        y_true: Labels, 0 or 1.
        y_prob: Predicted probability of label 1.
        path: Where to write the PNG (parent folders are created).
        label: Legend name of the curve (e.g. the model version).

    Returns:
        The written path.

    Raises:
        EvaluationError: Any input ``evaluate_predictions`` refuses, or a single class (no ROC curve).
    """
    labels, probabilities = _checked_arrays(y_true, y_prob)
    if np.unique(labels).size < 2:
        raise EvaluationError(f"cannot draw a ROC curve: only label {int(labels[0])} is present in y_true")
    false_positive, true_positive, _ = roc_curve(labels, probabilities)
    auc = roc_auc_score(labels, probabilities)
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    axes.plot(false_positive, true_positive, label=f"{label} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="lower right")
    figure.tight_layout()
    return _save(figure, path)


def plot_calibration(y_true: np.ndarray, y_prob: np.ndarray, path: str | Path, *, bins: int = 10) -> Path:
    """Plot a reliability diagram (observed rate vs mean probability per bin) and bin counts to a PNG.

    Args:
        y_true: Labels, 0 or 1.
        y_prob: Predicted probability of label 1.
        path: Where to write the PNG (parent folders are created).
        bins: Equal-width bins over [0, 1], the same binning as the calibration error.

    Returns:
        The written path.

    Raises:
        EvaluationError: Any input ``evaluate_predictions`` refuses.
    """
    labels, probabilities = _checked_arrays(y_true, y_prob)
    _check_threshold_and_bins(0.5, bins)
    counts, mean_probability, observed_rate = _calibration_bins(labels, probabilities, bins)
    used = counts > 0
    ece = _expected_calibration_error(labels, probabilities, bins)
    figure = Figure(figsize=(5, 6))
    curve_axes, count_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    curve_axes.plot(mean_probability[used], observed_rate[used], marker="o", label=f"model (ECE {ece:.3f})")
    curve_axes.set(ylabel="observed positive rate", title="Calibration", xlim=(0, 1), ylim=(0, 1))
    curve_axes.legend(loc="upper left")
    edges = np.linspace(0.0, 1.0, bins + 1)
    count_axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="black")
    count_axes.set(xlabel="predicted probability", ylabel="rows")
    figure.tight_layout()
    return _save(figure, path)


def plot_slices(slice_table: pd.DataFrame, path: str | Path, *, metric: str = "roc_auc") -> Path:
    """Plot one metric per slice group as horizontal bars, with the overall value as a line, to a PNG.

    Groups marked ``"insufficient data"`` (or with the metric undefined) are listed with an empty bar
    and that label, so a missing bar is never mistaken for a zero.

    Args:
        slice_table: A table from ``evaluate_slices``.
        path: Where to write the PNG (parent folders are created).
        metric: One of ``SLICE_METRICS``.

    Returns:
        The written path.

    Raises:
        EvaluationError: Unknown metric, or a table without the columns ``evaluate_slices`` writes.
    """
    if metric not in slice_table.columns and metric not in SLICE_METRICS:
        raise EvaluationError(f"cannot plot {metric!r}; choose one of {list(SLICE_METRICS)}")
    missing = [column for column in ("slice", "group", "status", metric) if column not in slice_table.columns]
    if missing:
        raise EvaluationError(f"slice_table lacks columns {missing}; pass the table evaluate_slices returns")
    overall = slice_table[slice_table["slice"] == "overall"]
    groups = slice_table[slice_table["slice"] != "overall"]
    if groups.empty:
        raise EvaluationError("slice_table has no slice groups to plot")
    names = [f"{row.slice}: {row.group}" for row in groups.itertuples()]
    values = pd.to_numeric(groups[metric], errors="coerce").to_numpy(dtype=float)
    positions = np.arange(len(names))[::-1]  # first group at the top
    figure = Figure(figsize=(7, 1.2 + 0.4 * len(names)))
    axes = figure.subplots()
    axes.barh(positions, np.nan_to_num(values), color="tab:blue")
    for position, value, status in zip(positions, values, groups["status"], strict=True):
        if math.isnan(value):
            axes.text(0, position, f" {status if status != 'ok' else 'undefined'}", va="center", color="grey")
    if not overall.empty and pd.notna(overall[metric].iloc[0]):
        axes.axvline(float(overall[metric].iloc[0]), color="black", linestyle="--", label="overall")
        axes.legend(loc="lower right")
    axes.set_yticks(positions, names)
    axes.set(xlabel=metric, title=f"{metric} per slice")
    figure.tight_layout()
    return _save(figure, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any], path: str | Path) -> Path:
    """Plot a multiclass confusion matrix (rows: true class, columns: predicted; row-normalised) to a PNG."""
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.float64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(1.5 + 0.7 * k, 1.2 + 0.6 * k))
    axes = figure.subplots()
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            axes.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center")
    labels = [str(c) for c in classes]
    axes.set_xticks(range(k), labels, rotation=45, ha="right")
    axes.set_yticks(range(k), labels)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (holdout)")
    figure.tight_layout()
    return _save(figure, path)


def plot_regression(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path) -> Path:
    """Plot predicted against observed values and the residuals' histogram to a PNG."""
    truth, predicted = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    figure = Figure(figsize=(9, 3.5))
    scatter, residuals = figure.subplots(1, 2)
    scatter.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    scatter.plot([low, high], [low, high], color="black", linestyle="--", label="perfect")
    scatter.set(xlabel="observed", ylabel="predicted", title="Predicted vs observed (holdout)")
    scatter.legend()
    residuals.hist(predicted - truth, bins=30, color="tab:blue")
    residuals.set(xlabel="predicted - observed", ylabel="rows", title="Residuals")
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    """Write the figure as PNG without a version stamp and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png", dpi=100, metadata=_PNG_METADATA)
    return target
