"""Features as they come: the fitted encoders that turn a dataset's rows into the model's input matrix.

Three encoders, chosen per column by ``DatasetSpec.feature_encodings``:

* ``numeric``: standardised with the training mean and spread; nulls refused, or imputed with the
  training mean or 0 (``DatasetSpec.missing``).
* ``one_hot``: a vocabulary learnt from the training data (most frequent first, capped at
  ``max_categories``), one input per value plus an explicit unknown bucket that takes nulls and values
  never seen in training (or a refusal, by ``unknown_categories``).
* ``boolean``: 0 or 1.

Statistics are computed per rank (``column_statistics``), summed across ranks (``merge_statistics``:
counts add, so every rank fits the same encoders) and turned into a ``Preprocessor``
(``fit_preprocessor``). The fitted preprocessor is data, never pickle: JSON in the model card, with its
SHA-256, applied identically by training, serving, monitoring and retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from infra.errors import InvalidInputError, UnusableDataError

if TYPE_CHECKING:
    from tasks.datasets import DatasetSpec

FORMAT = "lockgate.preprocessing/1"
UNKNOWN = "__unknown__"


def native(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Encoder:
    """One feature column's fitted encoding."""

    column: str
    kind: str  # numeric | one_hot | boolean
    mean: float = 0.0
    std: float = 1.0
    missing: str = "refuse"  # numeric: refuse | mean | zero
    categories: tuple[Any, ...] = ()
    unknown: str = "bucket"  # one_hot: bucket | refuse

    @property
    def width(self) -> int:
        return len(self.categories) + 1 if self.kind == "one_hot" else 1

    @property
    def names(self) -> list[str]:
        """Names of the model inputs this encoder produces."""
        if self.kind == "one_hot":
            return [f"{self.column}={c}" for c in self.categories] + [f"{self.column}={UNKNOWN}"]
        return [self.column]

    def encode(self, values: pd.Series) -> np.ndarray:
        """``(rows, width)`` float32 inputs for this column's values."""
        if self.kind == "one_hot":
            codes = (
                pd.Index(list(self.categories), dtype=object)
                .get_indexer(values.astype(object))
                .astype(np.int64)
            )
            unknown = codes < 0
            if unknown.any() and self.unknown == "refuse":
                seen = values[unknown & values.notna().to_numpy()]
                if len(seen):
                    raise InvalidInputError(
                        f"{self.column}: value {native(seen.iloc[0])!r} was not seen in training; allowed "
                        f"values: {list(self.categories)}"
                    )
            codes[unknown] = len(self.categories)
            out = np.zeros((len(values), self.width), dtype=np.float32)
            out[np.arange(len(values)), codes] = 1.0
            return out
        if self.kind == "boolean":
            mapped = values.map({True: 1.0, False: 0.0})  # 1 and 0 hash like True and False
            if mapped.isna().any():
                bad = values[mapped.isna()].iloc[0]
                raise InvalidInputError(f"{self.column}: {native(bad)!r} is not a boolean")
            return mapped.to_numpy(np.float32).reshape(-1, 1)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        nulls = np.isnan(numbers)
        if nulls.any():
            if self.missing == "refuse":
                raise InvalidInputError(
                    f"{self.column}: {int(nulls.sum())} missing value(s); the dataset's missing-value "
                    "policy for it is 'refuse'"
                )
            numbers = np.where(nulls, self.mean if self.missing == "mean" else 0.0, numbers)
        return ((numbers - self.mean) / self.std).astype(np.float32).reshape(-1, 1)

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"column": self.column, "kind": self.kind}
        if self.kind == "numeric":
            found.update(mean=self.mean, std=self.std, missing=self.missing)
        elif self.kind == "one_hot":
            found.update(categories=list(self.categories), unknown=self.unknown)
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Encoder:
        return cls(
            column=str(data["column"]),
            kind=str(data["kind"]),
            mean=float(data.get("mean", 0.0)),
            std=float(data.get("std", 1.0)),
            missing=str(data.get("missing", "refuse")),
            categories=tuple(data.get("categories", ())),
            unknown=str(data.get("unknown", "bucket")),
        )


@dataclass(frozen=True)
class Preprocessor:
    """The fitted encoders of every feature column, in the order the model reads them."""

    encoders: tuple[Encoder, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(e.column for e in self.encoders)

    @property
    def width(self) -> int:
        return sum(e.width for e in self.encoders)

    @property
    def input_names(self) -> list[str]:
        return [name for e in self.encoders for name in e.names]

    def allowed_values(self) -> dict[str, list[Any]]:
        """The vocabulary of each one-hot feature (what the inference contract names)."""
        return {e.column: list(e.categories) for e in self.encoders if e.kind == "one_hot"}

    def nullable(self) -> set[str]:
        """Features a request may leave null: imputed numbers, and one-hot values (the unknown bucket)."""
        return {
            e.column
            for e in self.encoders
            if (e.kind == "numeric" and e.missing != "refuse")
            or (e.kind == "one_hot" and e.unknown == "bucket")
        }

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix (float32) for ``frame``; missing columns are named."""
        missing = [column for column in self.columns if column not in frame.columns]
        if missing:
            raise InvalidInputError(f"features missing from the data: {', '.join(missing)}")
        if not self.encoders:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack([e.encode(frame[e.column].reset_index(drop=True)) for e in self.encoders])

    @cached_property
    def _plan(self) -> list[tuple[Encoder, int, dict[Any, int]]]:
        """Per encoder: its first input column and its vocabulary as a dict (built once)."""
        plan, offset = [], 0
        for encoder in self.encoders:
            plan.append((encoder, offset, {value: i for i, value in enumerate(encoder.categories)}))
            offset += encoder.width
        return plan

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The input matrix for request records (each holds every feature column), equal to
        ``transform`` of their frame but from plain lists: no DataFrame per request (serving's hot
        path). A column whose values are not plain numbers goes through its encoder's ``encode``, so
        coercion and errors are the same."""
        rows = len(records)
        out = np.zeros((rows, self.width), dtype=np.float32)
        for encoder, offset, vocabulary in self._plan:
            values = [record.get(encoder.column) for record in records]
            if encoder.kind == "one_hot":
                unknown = len(encoder.categories)
                codes = [vocabulary.get(value, unknown) for value in values]
                if encoder.unknown == "refuse":
                    for value, code in zip(values, codes, strict=True):
                        if code == unknown and value is not None and value == value:  # not None, not NaN
                            raise InvalidInputError(
                                f"{encoder.column}: value {value!r} was not seen in training; allowed "
                                f"values: {list(encoder.categories)}"
                            )
                out[np.arange(rows), offset + np.asarray(codes, dtype=np.int64)] = 1.0
                continue
            if encoder.kind != "numeric" or any(isinstance(v, str | bool) for v in values):
                out[:, offset : offset + encoder.width] = encoder.encode(pd.Series(values, dtype=object))
                continue
            try:
                numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            except (TypeError, ValueError):
                out[:, offset : offset + 1] = encoder.encode(pd.Series(values, dtype=object))
                continue
            nulls = np.isnan(numbers)
            if nulls.any():
                if encoder.missing == "refuse":
                    raise InvalidInputError(
                        f"{encoder.column}: {int(nulls.sum())} missing value(s); the dataset's "
                        "missing-value policy for it is 'refuse'"
                    )
                numbers = np.where(nulls, encoder.mean if encoder.missing == "mean" else 0.0, numbers)
            out[:, offset] = ((numbers - encoder.mean) / encoder.std).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "encoders": [e.to_dict() for e in self.encoders]}

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON (sorted keys), recorded beside the weights' hash."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def standardise(
        cls, columns: Sequence[str], means: Sequence[float], stds: Sequence[float]
    ) -> Preprocessor:
        """Numeric features standardised with the given means and spreads (nulls refused)."""
        return cls(
            tuple(
                Encoder(c, "numeric", float(m), float(s))
                for c, m, s in zip(columns, means, stds, strict=True)
            )
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        """Read ``to_dict``'s output, or a card's older ``columns``/``means``/``stds`` standardisation."""
        if data.get("format") == FORMAT:
            return cls(tuple(Encoder.from_dict(e) for e in data["encoders"]))
        if "means" in data:
            return cls.standardise(data["columns"], data["means"], data["stds"])
        raise InvalidInputError(
            f"not a preprocessing record (format {data.get('format')!r}, expected {FORMAT})"
        )


def column_statistics(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, Any]:
    """What this rank's training rows say about each feature and the target (summed across ranks)."""
    stats: dict[str, Any] = {"rows": len(frame), "features": {}, "target": None}
    for column, kind in spec.feature_encodings.items():
        values = frame[column]
        if kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
            present = numbers[~np.isnan(numbers)]
            stats["features"][column] = {
                "count": float(present.size),
                "sum": float(present.sum()),
                "squares": float((present**2).sum()),
                "nulls": int(np.isnan(numbers).sum()),
                "min": float(present.min()) if present.size else math.inf,
                "max": float(present.max()) if present.size else -math.inf,
            }
        else:
            stats["features"][column] = {
                "counts": Counter({native(k): int(n) for k, n in values.value_counts(dropna=True).items()}),
                "nulls": int(values.isna().sum()),
            }
    target = frame[spec.target]
    if spec.task == "regression":
        numbers = pd.to_numeric(target, errors="coerce")
        if numbers.isna().any():
            bad = target[numbers.isna()].iloc[0]
            raise UnusableDataError(
                f"task 'regression' needs a numeric target; {spec.target!r} holds {native(bad)!r}"
            )
        values = numbers.to_numpy(np.float64)
        stats["target"] = {"moments": [float(values.size), float(values.sum()), float((values**2).sum())]}
    else:
        stats["target"] = {
            "counts": Counter({native(k): int(n) for k, n in target.value_counts(dropna=True).items()})
        }
    return stats


def merge_statistics(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every rank's statistics summed (counts add; the order of ``parts`` does not matter)."""
    merged: dict[str, Any] = {"rows": sum(p["rows"] for p in parts), "features": {}, "target": {}}
    for part in parts:
        for column, values in part["features"].items():
            into = merged["features"].setdefault(column, {})
            for key, value in values.items():
                if key == "counts":
                    into.setdefault("counts", Counter()).update(value)
                elif key == "min":
                    into[key] = min(into.get(key, math.inf), value)
                elif key == "max":
                    into[key] = max(into.get(key, -math.inf), value)
                else:
                    into[key] = into.get(key, 0) + value
        target = part["target"]
        if "counts" in target:
            merged["target"].setdefault("counts", Counter()).update(target["counts"])
        else:
            moments = merged["target"].setdefault("moments", [0.0, 0.0, 0.0])
            merged["target"]["moments"] = [a + b for a, b in zip(moments, target["moments"], strict=True)]
    return merged


def fit_preprocessor(spec: DatasetSpec, stats: Mapping[str, Any]) -> Preprocessor:
    """The encoders of ``spec``'s features from merged statistics.

    Raises:
        UnusableDataError: a feature is null in every row or constant, a numeric feature has nulls its
            policy refuses, or a one-hot feature exceeds ``max_categories`` under the ``refuse`` policy.
    """
    encoders = []
    for column, kind in spec.feature_encodings.items():
        values = stats["features"][column]
        if kind == "numeric":
            count = values["count"]
            policy = spec.missing.get(column, "refuse")
            if count == 0:
                raise UnusableDataError(f"feature {column!r} is null in every training row; drop it")
            if values["nulls"] and policy == "refuse":
                raise UnusableDataError(
                    f"feature {column!r} has {values['nulls']} null value(s) in the training rows and its "
                    "missing-value policy is 'refuse': declare missing={" + repr(column) + ": 'mean'} or fix "
                    "the data"
                )
            if values["max"] - values["min"] <= 0:
                raise UnusableDataError(
                    f"feature {column!r} is constant ({values['min']:g}) in the training rows: it carries "
                    "no information; drop it from feature_columns"
                )
            mean = values["sum"] / count
            variance = max(values["squares"] / count - mean**2, 0.0)
            std = math.sqrt(variance) if variance > 1e-12 else 1.0
            encoders.append(Encoder(column, "numeric", float(mean), float(std), policy))
            continue
        counts: Counter = values["counts"]
        if not counts:
            raise UnusableDataError(f"feature {column!r} is null in every training row; drop it")
        if len(counts) < 2 and not values["nulls"]:
            only = next(iter(counts))
            raise UnusableDataError(
                f"feature {column!r} is constant ({only!r}) in the training rows: drop it from "
                "feature_columns"
            )
        if kind == "boolean":
            encoders.append(Encoder(column, "boolean"))
            continue
        ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        if len(ordered) > spec.max_categories:
            if spec.over_max_categories == "refuse":
                raise UnusableDataError(
                    f"feature {column!r} has {len(ordered)} distinct values, over the cap of "
                    f"{spec.max_categories} (max_categories): raise the cap, set "
                    "over_max_categories='most_frequent', or drop the column"
                )
            ordered = ordered[: spec.max_categories]
        categories = tuple(value for value, _ in ordered)
        encoders.append(Encoder(column, "one_hot", categories=categories, unknown=spec.unknown_categories))
    return Preprocessor(tuple(encoders))
