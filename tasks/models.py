"""Pluggable models: a factory for any ``torch.nn.Module`` plus the feature spec it consumes.

The reference model is an MLP over the standardised loan features that outputs one logit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from infra.errors import InvalidInputError

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns feed the model, and how they are standardised."""

    columns: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix (float32) for ``frame``; missing columns are named."""
        missing = [column for column in self.columns if column not in frame.columns]
        if missing:
            raise InvalidInputError(f"features missing from the data: {', '.join(missing)}")
        values = frame[list(self.columns)].to_numpy(dtype=np.float64)
        return ((values - np.asarray(self.means)) / np.asarray(self.stds)).astype(np.float32)

    def to_dict(self) -> dict[str, list]:
        return {"columns": list(self.columns), "means": list(self.means), "stds": list(self.stds)}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> FeatureSpec:
        return cls(tuple(data["columns"]), tuple(data["means"]), tuple(data["stds"]))

    @classmethod
    def from_moments(
        cls, columns: tuple[str, ...], count: float, sums: np.ndarray, squares: np.ndarray
    ) -> FeatureSpec:
        """Build from global sums (as all-reduced across ranks); constant columns keep std 1."""
        if count <= 0:
            raise InvalidInputError("cannot standardise features of an empty dataset")
        means = sums / count
        variances = np.maximum(squares / count - means**2, 0.0)
        stds = np.where(variances > 1e-12, np.sqrt(variances), 1.0)
        return cls(columns, tuple(float(m) for m in means), tuple(float(s) for s in stds))


def make_mlp(features: int, *, hidden: tuple[int, ...] = (64, 32), dropout: float = 0.0) -> nn.Module:
    """The reference model: fully connected layers with ReLU, one logit out."""
    layers: list[nn.Module] = []
    width = features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


MODEL_FACTORIES: dict[str, ModelFactory] = {"mlp": make_mlp}


def build_model(name: str, features: int, **options: object) -> nn.Module:
    """Instantiate a registered model factory by name."""
    if name not in MODEL_FACTORIES:
        raise InvalidInputError(f"unknown model {name!r}; known: {', '.join(sorted(MODEL_FACTORIES))}")
    return MODEL_FACTORIES[name](features, **options)


def predict_proba(model: nn.Module, inputs: np.ndarray, *, batch_size: int = 65_536) -> np.ndarray:
    """Probabilities of the positive class for a float32 input matrix."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            logits = model(torch.from_numpy(inputs[start : start + batch_size]))
            outputs.append(torch.sigmoid(logits).squeeze(1).numpy())
    return np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.float32)
