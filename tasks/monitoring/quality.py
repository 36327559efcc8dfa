"""Live quality from outcome labels: holdout-style metrics on answered records whose outcomes arrived."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from contracts.inference_log import PROBABILITY_COLUMN, answered_rows
from tasks.evaluation import evaluate_predictions


def label_quality(
    labels: pd.DataFrame,
    logged: pd.DataFrame,
    *,
    model_name: str,
    reference_metrics: Mapping[str, Any] | None,
    max_drop: float,
    min_labels: int,
) -> dict[str, Any]:
    """Holdout-style metrics on answered records whose outcomes arrived, per version.

    ``reference_metrics`` are the champion's holdout metrics (model card): quality counts as degraded
    when the live ROC AUC of a version is more than ``max_drop`` below them.
    """
    result: dict[str, Any] = {"labels": int(len(labels)), "matched": 0, "versions": [], "degraded": False}
    if labels.empty:
        result["status"] = "no labels"
        return result
    answered = answered_rows(logged, model_name)
    keyed = answered[["request_id", "record_index", "model_version", PROBABILITY_COLUMN]]
    joined = labels.merge(keyed, on=["request_id", "record_index"], how="inner")
    result["matched"] = int(len(joined))
    result["unmatched"] = int(len(labels) - len(joined))
    baseline = (reference_metrics or {}).get("roc_auc")
    for version, group in joined.groupby("model_version", sort=True):
        entry: dict[str, Any] = {"version": str(version), "labels": int(len(group))}
        if len(group) < min_labels:
            entry["status"] = "insufficient data"
        else:
            metrics = evaluate_predictions(
                group["outcome"].to_numpy(), group[PROBABILITY_COLUMN].to_numpy(dtype="float64")
            )
            entry.update(
                {k: v for k, v in metrics.to_dict().items() if k in ("roc_auc", "accuracy", "brier_score")}
            )
            entry["reference_roc_auc"] = baseline
            drop = None if (baseline is None or metrics.roc_auc is None) else baseline - metrics.roc_auc
            entry["roc_auc_drop"] = drop
            entry["status"] = "degraded" if drop is not None and drop > max_drop else "ok"
            result["degraded"] = result["degraded"] or entry["status"] == "degraded"
        result["versions"].append(entry)
    result["status"] = "degraded" if result["degraded"] else ("ok" if result["versions"] else "no matches")
    return result
