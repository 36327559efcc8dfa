"""Live quality from outcome labels: holdout-style metrics on answered records whose outcomes arrived.

Per task: a binary classifier is judged on ROC AUC (from the logged probability), a multiclass one on
accuracy (from the logged class), a regressor on R² (from the logged value); each against the same
metric on the champion's holdout. The groups the dataset declares are reported too, where the log holds
their columns (features are logged; a group column that is not a feature cannot be).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from contracts.inference_log import PREDICTION_COLUMN, PROBABILITY_COLUMN, answered_rows, feature_column
from infra.errors import EvaluationError
from tasks.evaluation import evaluate_predictions, evaluate_regression
from tasks.problems import Problem

# The metric live quality is judged on, per task; a larger value is better for each.
QUALITY_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}
_SHOWN = {
    "binary": ("roc_auc", "accuracy", "brier_score"),
    "multiclass": ("accuracy", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
}


def label_quality(
    labels: pd.DataFrame,
    logged: pd.DataFrame,
    *,
    model_name: str,
    reference_metrics: Mapping[str, Any] | None,
    max_drop: float,
    min_labels: int,
    problem: Problem | None = None,
    slices: Sequence[Any] = (),
) -> dict[str, Any]:
    """Holdout-style metrics on answered records whose outcomes arrived, per version and per group.

    ``reference_metrics`` are the champion's holdout metrics (model card): quality counts as degraded
    when a version's live quality metric (``QUALITY_METRIC``) is more than ``max_drop`` below them.
    ``slices`` are the dataset's ``Slice`` declarations; groups with fewer than ``min_labels`` labels
    are "insufficient data".
    """
    problem = problem or Problem("binary", "outcome", (0, 1))
    metric = QUALITY_METRIC[problem.task]
    result: dict[str, Any] = {
        "labels": int(len(labels)),
        "matched": 0,
        "versions": [],
        "degraded": False,
        "metric": metric,
    }
    if labels.empty:
        result["status"] = "no labels"
        return result
    answered = answered_rows(logged, model_name)
    wanted = [
        "request_id",
        "record_index",
        "model_version",
        "prediction",
        PROBABILITY_COLUMN,
        PREDICTION_COLUMN,
    ]
    group_columns = {
        s.column: feature_column(s.column) for s in slices if feature_column(s.column) in answered
    }
    keyed = answered[[c for c in dict.fromkeys([*wanted, *group_columns.values()]) if c in answered]]
    keyed = keyed.rename(columns={logged_as: name for name, logged_as in group_columns.items()})
    joined = labels.merge(keyed, on=["request_id", "record_index"], how="inner")
    result["matched"] = int(len(joined))
    result["unmatched"] = int(len(labels) - len(joined))
    baseline = (reference_metrics or {}).get(metric)
    for version, group in joined.groupby("model_version", sort=True):
        entry: dict[str, Any] = {"version": str(version), "labels": int(len(group))}
        if len(group) < min_labels:
            entry["status"] = "insufficient data"
            entry["note"] = f"{len(group)} label(s), {min_labels} needed"
        else:
            metrics = _metrics(problem, group)
            entry.update({k: metrics.get(k) for k in _SHOWN[problem.task]})
            live = metrics.get(metric)
            entry[f"reference_{metric}"] = baseline
            drop = None if (baseline is None or live is None) else baseline - live
            entry[f"{metric}_drop"] = drop
            entry["status"] = "degraded" if drop is not None and drop > max_drop else "ok"
            result["degraded"] = result["degraded"] or entry["status"] == "degraded"
        result["versions"].append(entry)
    result["slices"] = _slice_quality(problem, joined, slices, min_labels)
    result["status"] = "degraded" if result["degraded"] else ("ok" if result["versions"] else "no matches")
    return result


def _metrics(problem: Problem, rows: pd.DataFrame) -> dict[str, Any]:
    """The task's metrics of logged answers against their outcomes (None where undefined)."""
    try:
        if problem.task == "binary":
            truth = problem.encode_target(rows["outcome"]) if problem.classes != (0, 1) else rows["outcome"]
            probability = rows[PROBABILITY_COLUMN] if PROBABILITY_COLUMN in rows else rows[PREDICTION_COLUMN]
            return evaluate_predictions(np.asarray(truth), probability.to_numpy(dtype="float64")).to_dict()
        if problem.task == "multiclass":
            truth = problem.encode_target(rows["outcome"])
            predicted = problem.encode_target(rows["prediction"])
            from sklearn.metrics import f1_score

            return {
                "count": int(len(rows)),
                "accuracy": float(np.mean(truth == predicted)),
                "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
            }
        return evaluate_regression(
            pd.to_numeric(rows["outcome"]).to_numpy("float64"), rows[PREDICTION_COLUMN].to_numpy("float64")
        )
    except EvaluationError as error:
        return {"count": int(len(rows)), "note": str(error)}


def _slice_quality(
    problem: Problem, joined: pd.DataFrame, slices: Sequence[Any], min_labels: int
) -> list[dict[str, Any]]:
    """The quality metric per group of each declared slice whose column the log holds."""
    found = []
    metric = QUALITY_METRIC[problem.task]
    for item in slices:
        if item.column not in joined:
            found.append(
                {"slice": item.label, "status": "not logged", "note": f"{item.column!r} is not logged"}
            )
            continue
        groups = item.groups(joined)
        for name in sorted(groups.dropna().unique(), key=str):
            rows = joined[(groups == name).to_numpy()]
            row: dict[str, Any] = {"slice": item.label, "group": str(name), "labels": int(len(rows))}
            if len(rows) < min_labels:
                row.update(status="insufficient data", note=f"{len(rows)} label(s), {min_labels} needed")
            else:
                row.update(status="ok", **{metric: _metrics(problem, rows).get(metric)})
            found.append(row)
    return found
