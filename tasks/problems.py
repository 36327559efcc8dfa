"""What a model learns to predict: a dataset's task, fitted to its training target.

A ``Problem`` is the task (``binary``, ``multiclass`` or ``regression``) with what was learnt of the
target from the training rows: the classes (and which is positive), or the target's mean and spread
(a regressor learns the standardised target). Everything that differs per task lives here: the output
width of the network, the loss, how network outputs become answers, the one number per prediction
that monitoring and rollouts compare (``score``: the positive probability, the class index, the
predicted value), the metrics, the default comparison metric and the "better than chance" check.
It is stored as JSON in the model card, so training, serving, monitoring and retraining read one
definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from infra.errors import EvaluationError, UnusableDataError
from tasks import evaluation

# Bins of the score histogram a rollout compares champion and challenger on (binary: [0, 1]).
SCORE_BINS = 20
MIN_STEPS_WARNING = 200
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
SLICE_METRICS_BY_TASK = {
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}


@dataclass(frozen=True)
class Problem:
    """A task fitted to its training target.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        target: The label column.
        classes: Binary: ``(negative, positive)``; multiclass: every class in index order; regression: ().
        target_mean: Regression: the training target's mean (the network learns standardised values).
        target_std: Regression: the training target's standard deviation.
    """

    task: str
    target: str
    classes: tuple[Any, ...] = ()
    target_mean: float = 0.0
    target_std: float = 1.0

    # -- the network -----------------------------------------------------------------------------

    @property
    def output_width(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    def loss(self) -> nn.Module:
        """The training loss, summed over a batch (the caller divides)."""
        if self.task == "binary":
            return nn.BCEWithLogitsLoss(reduction="sum")
        if self.task == "multiclass":
            return nn.CrossEntropyLoss(reduction="sum")
        return nn.MSELoss(reduction="sum")

    def loss_input(self, logits: torch.Tensor) -> torch.Tensor:
        """Network output in the shape the loss takes."""
        return logits if self.task == "multiclass" else logits.squeeze(1)

    def encode_target(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Training labels: 0/1 (binary), class index (multiclass) or the standardised value.

        Raises:
            UnusableDataError: a value is not one of the classes, or not a number.
        """
        series = pd.Series(np.asarray(values, dtype=object) if not isinstance(values, pd.Series) else values)
        if self.task == "regression":
            numbers = pd.to_numeric(series, errors="coerce")
            if numbers.isna().any():
                raise UnusableDataError(
                    f"target {self.target!r} holds {int(numbers.isna().sum())} value(s) that are not "
                    f"numbers, e.g. {series[numbers.isna()].iloc[0]!r}"
                )
            return ((numbers.to_numpy(np.float64) - self.target_mean) / self.target_std).astype(np.float32)
        codes = pd.Index(list(self.classes), dtype=object).get_indexer(series.astype(object))
        if (codes < 0).any():
            raise UnusableDataError(
                f"target {self.target!r} holds value(s) outside the classes {list(self.classes)}, e.g. "
                f"{series[codes < 0].iloc[0]!r}"
            )
        return codes.astype(np.float32 if self.task == "binary" else np.int64)

    def outputs(self, logits: torch.Tensor) -> np.ndarray:
        """Network output as the task's answer numbers: P(positive), class probabilities, values."""
        with torch.no_grad():
            if self.task == "binary":
                return torch.sigmoid(logits).squeeze(1).cpu().numpy()
            if self.task == "multiclass":
                return torch.softmax(logits, dim=1).cpu().numpy()
            return (logits.squeeze(1).double().cpu().numpy() * self.target_std + self.target_mean).astype(
                np.float64
            )

    # -- answers ---------------------------------------------------------------------------------

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """One number per prediction for monitoring and rollouts: P(positive), class index, value."""
        outputs = np.asarray(outputs)
        if self.task == "multiclass":
            return outputs.argmax(axis=1).astype(np.float64) if len(outputs) else np.zeros(0)
        return outputs.astype(np.float64)

    def answers(self, outputs: np.ndarray, *, threshold: float = 0.5) -> list[dict[str, Any]]:
        """The inference answer per record: the prediction, with its probabilities where it has some."""
        outputs = np.asarray(outputs)
        if self.task == "binary":
            negative, positive = self.classes
            return [
                {"prediction": positive if p >= threshold else negative, "probability": float(p)}
                for p in outputs
            ]
        if self.task == "multiclass":
            found = []
            for row in outputs:
                index = int(row.argmax())
                found.append(
                    {
                        "prediction": self.classes[index],
                        "probability": float(row[index]),
                        "probabilities": {str(c): float(p) for c, p in zip(self.classes, row, strict=True)},
                    }
                )
            return found
        return [{"prediction": float(value)} for value in outputs]

    def score_edges(self, reference_scores: Sequence[float] | None = None) -> list[float]:
        """Inner edges of the score histogram: fixed for classifiers, the reference's quantiles for a
        regressor (so champion and challenger are binned alike: the rollout uses the champion's)."""
        if self.task == "binary":
            return [i / SCORE_BINS for i in range(1, SCORE_BINS)]
        if self.task == "multiclass":
            return [i + 0.5 for i in range(len(self.classes) - 1)]
        values = np.asarray(reference_scores if reference_scores is not None else [], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size < 2:
            return [self.target_mean]
        edges = np.unique(np.quantile(values, [i / SCORE_BINS for i in range(1, SCORE_BINS)]))
        return [float(e) for e in edges]

    def holdout_columns(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """Columns stored with the holdout rows (the reference): ``score`` and the task's outputs."""
        columns: dict[str, Any] = {"score": self.scores(outputs)}
        if self.task == "binary":
            columns["probability"] = np.asarray(outputs, dtype=np.float64)
        elif self.task == "multiclass":
            for index, label in enumerate(self.classes):
                columns[f"probability_{label}"] = np.asarray(outputs)[:, index].astype(np.float64)
        else:
            columns["prediction"] = np.asarray(outputs, dtype=np.float64)
        return columns

    def outputs_from_holdout(self, frame: pd.DataFrame) -> np.ndarray:
        """The outputs ``holdout_columns`` stored, read back from a reference frame."""
        if self.task == "binary":
            return frame["probability"].to_numpy(np.float64)
        if self.task == "multiclass":
            return frame[[f"probability_{label}" for label in self.classes]].to_numpy(np.float64)
        return frame["prediction"].to_numpy(np.float64)

    # -- evaluation ------------------------------------------------------------------------------

    @property
    def default_metric(self) -> str:
        return DEFAULT_METRIC[self.task]

    @property
    def comparable_metrics(self) -> dict[str, bool]:
        if self.task == "binary":
            return dict(evaluation.COMPARABLE_METRICS)
        if self.task == "multiclass":
            return dict(evaluation.MULTICLASS_COMPARABLE)
        return dict(evaluation.REGRESSION_COMPARABLE)

    def evaluate(self, y_true: pd.Series | np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        """The task's metrics of ``outputs`` against raw target values (class labels or numbers)."""
        encoded = self.encode_target(y_true)
        if self.task == "binary":
            return evaluation.evaluate_predictions(encoded, outputs).to_dict()
        if self.task == "multiclass":
            return evaluation.evaluate_multiclass(encoded, outputs, classes=self.classes)
        return evaluation.evaluate_regression(
            pd.to_numeric(pd.Series(y_true)).to_numpy(np.float64), np.asarray(outputs, dtype=np.float64)
        )

    def evaluate_slices(
        self,
        frame: pd.DataFrame,
        outputs: np.ndarray,
        *,
        slices: Mapping[str, pd.Series],
        min_rows: int = evaluation.MIN_SLICE_ROWS,
    ) -> pd.DataFrame:
        """The task's metrics overall and per group (``insufficient data`` below ``min_rows``)."""
        if self.task == "binary":
            return evaluation.evaluate_slices(
                frame, np.asarray(outputs), target=self.target, slices=slices, min_rows=min_rows
            )
        names = SLICE_METRICS_BY_TASK[self.task]
        overall = self.evaluate(frame[self.target], outputs)
        rows = [_group_row("overall", "all", overall, overall, names)]
        for name, groups in slices.items():
            values = groups.to_numpy()
            labels = (
                list(groups.cat.categories)
                if isinstance(groups.dtype, pd.CategoricalDtype)
                else sorted(groups.dropna().unique(), key=str)
            )
            masks = [(str(label), values == label) for label in labels]
            if groups.isna().any():
                masks.append(("missing", groups.isna().to_numpy()))
            for label, mask in masks:
                count = int(mask.sum())
                if count < min_rows:
                    row = {
                        "slice": name,
                        "group": label,
                        "count": count,
                        "status": evaluation.INSUFFICIENT_DATA,
                    }
                    row.update({m: math.nan for m in names})
                    row.update({f"{m}_gap": math.nan for m in names})
                    row["note"] = f"{count} rows, fewer than {min_rows}; metrics not reported"
                    rows.append(row)
                    continue
                try:
                    metrics = self.evaluate(frame[self.target][mask], np.asarray(outputs)[mask])
                except EvaluationError as error:
                    metrics = {"count": count, "note": str(error)}
                rows.append(_group_row(name, label, metrics, overall, names))
        return pd.DataFrame(rows)

    def warnings(self, metrics: Mapping[str, Any], *, optimizer_steps: int | None = None) -> list[str]:
        """Why this model should not be promoted: worse than chance on its holdout, or too few optimizer
        steps (``optimizer_steps``: give it when the run ended at its epoch limit, not by early stopping)."""
        found = []
        if self.task == "binary":
            auc, loss, base = metrics.get("roc_auc"), metrics.get("log_loss"), metrics.get("base_log_loss")
            if auc is not None and auc <= 0.5:
                found.append(f"holdout ROC AUC {auc:.3f} is no better than chance (0.5)")
            if loss is not None and base is not None and loss >= base:
                found.append(
                    f"holdout log loss {loss:.4f} is no better than always answering the base rate "
                    f"({base:.4f})"
                )
        elif self.task == "multiclass":
            loss, prior = metrics.get("log_loss"), metrics.get("prior_log_loss")
            if loss is not None and prior is not None and loss >= prior:
                found.append(
                    f"holdout log loss {loss:.4f} is no better than answering the class frequencies "
                    f"({prior:.4f})"
                )
        else:
            r2 = metrics.get("r2")
            if r2 is not None and r2 <= 0:
                found.append(f"holdout R² {r2:.3f}: no better than always answering the mean")
        if optimizer_steps is not None and optimizer_steps < MIN_STEPS_WARNING:
            found.append(
                f"trained on {optimizer_steps} optimizer steps (fewer than {MIN_STEPS_WARNING}): raise the "
                "epochs or lower the batch size"
            )
        return found

    # -- storage ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target": self.target,
            "classes": list(self.classes),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, target: str | None = None) -> Problem:
        """Read ``to_dict``'s output; a card from before task types is a 0/1 binary classifier."""
        if not data:
            return cls("binary", target or "target", (0, 1))
        return cls(
            str(data["task"]),
            str(data["target"]),
            tuple(data.get("classes", ())),
            float(data.get("target_mean", 0.0)),
            float(data.get("target_std", 1.0)),
        )


def fit_problem(
    task: str,
    target: str,
    *,
    positive_class: Any = 1,
    counts: Mapping[Any, int] | None = None,
    moments: tuple[float, float, float] | None = None,
) -> Problem:
    """The problem of a training target, from its value counts (classification) or its count, sum and
    sum of squares (regression), as gathered across every rank.

    Raises:
        UnusableDataError: one class only, a binary target without two values or without the positive
            class, fewer than three classes for multiclass, or a constant or empty regression target.
    """
    if task == "regression":
        count, total, squares = moments or (0.0, 0.0, 0.0)
        if count < 2:
            raise UnusableDataError(f"target {target!r} has {int(count)} numeric value(s): nothing to learn")
        mean = total / count
        std = math.sqrt(max(squares / count - mean**2, 0.0))
        if std <= 1e-12 * max(1.0, abs(mean)):
            raise UnusableDataError(f"target {target!r} is constant ({mean:g}) in the training rows")
        return Problem("regression", target, (), float(mean), float(std))
    present = {value: int(n) for value, n in (counts or {}).items() if n > 0}
    if len(present) < 2:
        only = next(iter(present), None)
        raise UnusableDataError(
            f"target {target!r} has one class only ({only!r}) in the training rows: a classifier needs two "
            "or more"
        )
    ordered = tuple(sorted(present, key=lambda v: (str(type(v)), v)))
    if task == "binary":
        if len(ordered) != 2:
            raise UnusableDataError(
                f"task 'binary' needs a target of two values; {target!r} has {len(ordered)}: "
                f"{list(ordered)[:10]} (declare task='multiclass')"
            )
        if positive_class not in ordered:
            raise UnusableDataError(
                f"positive_class {positive_class!r} is not a value of {target!r}; its values are "
                f"{list(ordered)}"
            )
        negative = ordered[0] if ordered[1] == positive_class else ordered[1]
        return Problem("binary", target, (negative, positive_class))
    if len(ordered) < 3:
        raise UnusableDataError(
            f"task 'multiclass' needs three or more classes; {target!r} has {list(ordered)} "
            "(declare task='binary')"
        )
    return Problem("multiclass", target, ordered)


def _group_row(
    name: str, group: str, metrics: Mapping[str, Any], overall: Mapping[str, Any], names: Sequence[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {"slice": name, "group": group, "count": metrics.get("count"), "status": "ok"}
    for metric in names:
        value, reference = metrics.get(metric), overall.get(metric)
        row[metric] = math.nan if value is None else value
        row[f"{metric}_gap"] = math.nan if value is None or reference is None else value - reference
    row["note"] = metrics.get("note", "")
    return row
