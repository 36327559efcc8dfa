"""A registered model version made ready to score records: rebuilt from its card, weights verified.

``Predictor`` rebuilds the network from the model card (factory name, widths, feature standardisation)
and weights verified against their SHA-256 by ``tasks.registry.load_model``. The serving app scores
requests with it (``serving.predictor.ModelLoader`` loads it in the background); retraining scores the
champion on the challenger's holdout with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from infra.errors import InvalidInputError, ModelIntegrityError
from tasks.models import FeatureSpec, build_model, predict_proba

DEFAULT_THRESHOLD = 0.5


@dataclass
class Predictor:
    """A verified model version, ready to turn feature records into probabilities."""

    model_name: str
    version: str
    commit_id: str
    card: Any  # tasks.registry.ModelCard
    network: torch.nn.Module
    features: FeatureSpec
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def from_registry(cls, model_name: str, ref: str, *, client, repository: str | None = None) -> Predictor:
        """Load ``model_name`` at ``ref`` (``v3``, ``champion``, ...) with the SHA-256 check.

        Raises:
            ModelNotFoundError: unknown model, version or alias.
            ModelIntegrityError: weights missing or tampered with, or the card does not describe a
                network lockgate can rebuild.
        """
        from tasks import registry

        options = {"repository": repository} if repository else {}
        loaded = registry.load_model(model_name, ref, client=client, **options)
        card = loaded.card
        spec = card.feature_spec
        try:
            features = FeatureSpec.from_dict(spec)
            network = build_model(
                spec.get("model", "mlp"), len(features.columns), hidden=tuple(spec.get("hidden", (64, 32)))
            )
            network.load_state_dict(loaded.state_dict)
        except (KeyError, TypeError, RuntimeError, InvalidInputError) as error:
            raise ModelIntegrityError(
                f"model {model_name!r} {card.version}: the card's feature_spec does not rebuild the stored "
                f"network ({error})"
            ) from error
        network.eval()
        return cls(model_name, card.version, loaded.commit_id, card, network, features)

    def predict(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities of the positive class, one per record (records hold every feature column)."""
        if not records:
            return np.zeros(0, dtype=np.float32)
        columns = self.features.columns
        values = np.array([[record[column] for column in columns] for record in records], dtype=np.float64)
        inputs = ((values - np.asarray(self.features.means)) / np.asarray(self.features.stds)).astype(
            np.float32
        )
        return predict_proba(self.network, inputs)

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "commit_id": self.commit_id,
            "weights_sha256": self.card.weights_sha256,
            "data_repository": self.card.data_repository,
            "data_commit_id": self.card.data_commit_id,
            "threshold": self.threshold,
        }
