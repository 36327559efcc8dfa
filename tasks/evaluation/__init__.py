"""Holdout evaluation of a binary classifier: metrics, per-slice metrics, plots, champion comparison.

Plain functions on NumPy arrays and pandas frames; nothing here knows about Prefect, lakeFS or the
model. Typical use after training::

    metrics = evaluate_predictions(y_true, y_prob)
    table = evaluate_slices(holdout, y_prob, target="label", slices={"age": age_bands(holdout["age"])})
    plot_roc(y_true, y_prob, out / "roc.png", label="v3")
    decision = compare_to_champion(metrics, champion_metrics, margin=0.005)

Plots are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot): no GUI backend is ever
selected, no window can open, no global figure registry fills up, and the host process's backend
choice is left alone.

``tasks.evaluation.metrics`` holds the numbers, ``tasks.evaluation.plots`` the pictures.
"""

from __future__ import annotations

from tasks.evaluation.metrics import (
    AGE_BAND_EDGES,
    COMPARABLE_METRICS,
    INSUFFICIENT_DATA,
    MIN_SLICE_ROWS,
    PROBABILITY_CLIP,
    SLICE_METRICS,
    Decision,
    Metrics,
    age_bands,
    compare_to_champion,
    evaluate_predictions,
    evaluate_slices,
    metric_value,
)
from tasks.evaluation.plots import (
    plot_calibration,
    plot_confusion,
    plot_regression,
    plot_roc,
    plot_slices,
    plot_training_curves,
)
from tasks.evaluation.tasks import (
    MULTICLASS_COMPARABLE,
    REGRESSION_COMPARABLE,
    evaluate_multiclass,
    evaluate_regression,
)

__all__ = [
    "MULTICLASS_COMPARABLE",
    "REGRESSION_COMPARABLE",
    "evaluate_multiclass",
    "evaluate_regression",
    "metric_value",
    "plot_confusion",
    "plot_regression",
    "AGE_BAND_EDGES",
    "COMPARABLE_METRICS",
    "Decision",
    "INSUFFICIENT_DATA",
    "MIN_SLICE_ROWS",
    "Metrics",
    "PROBABILITY_CLIP",
    "SLICE_METRICS",
    "age_bands",
    "compare_to_champion",
    "evaluate_predictions",
    "evaluate_slices",
    "plot_calibration",
    "plot_roc",
    "plot_slices",
    "plot_training_curves",
]
