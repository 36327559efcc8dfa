"""A registered model version made ready to score records: rebuilt from its card, weights verified.

``Predictor`` rebuilds the network from the model card (factory and options, the fitted preprocessing,
the task) and weights verified against their SHA-256 by ``tasks.registry.load_model``; the card's
preprocessing is checked against its recorded SHA-256 too. The serving app scores requests with it
(``serving.predictor.ModelLoader`` loads it in the background); retraining scores the champion on the
challenger's holdout with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from infra.errors import InvalidInputError, ModelFactoryError, ModelIntegrityError
from tasks.models import build_model, predict_logits
from tasks.preprocessing import Preprocessor
from tasks.problems import Problem

DEFAULT_THRESHOLD = 0.5


@dataclass
class Predictor:
    """A verified model version, ready to turn feature records into the task's answers."""

    model_name: str
    version: str
    commit_id: str
    card: Any  # tasks.registry.ModelCard
    network: torch.nn.Module
    features: Preprocessor
    problem: Problem = field(default_factory=lambda: Problem("binary", "target", (0, 1)))
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def from_registry(cls, model_name: str, ref: str, *, client, repository: str | None = None) -> Predictor:
        """Load ``model_name`` at ``ref`` (``v3``, ``champion``, ...) with the SHA-256 checks.

        Raises:
            ModelNotFoundError: unknown model, version or alias.
            ModelFactoryError: the factory that built the weights is not installed here (named).
            ModelIntegrityError: weights or preprocessing missing or tampered with, or the card does
                not describe a network lockgate can rebuild.
        """
        from tasks import registry

        options = {"repository": repository} if repository else {}
        loaded = registry.load_model(model_name, ref, client=client, **options)
        card = loaded.card
        network, features, problem = rebuild(card, loaded.state_dict)
        return cls(model_name, card.version, loaded.commit_id, card, network, features, problem)

    def outputs(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The task's outputs per record: P(positive), class probabilities, or predicted values."""
        if not records:
            return np.zeros((0, self.problem.output_width) if self.problem.task == "multiclass" else 0)
        inputs = self.features.transform_records(records)
        return self.problem.outputs(predict_logits(self.network, inputs))

    def outputs_of_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """``outputs`` for the rows of a frame holding every feature column."""
        return self.problem.outputs(predict_logits(self.network, self.features.transform(frame)))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One score per record: P(positive) for a binary classifier, the class index for a multiclass
        one, the predicted value for a regressor (``Problem.scores``)."""
        return self.problem.scores(self.outputs(records))

    def answer(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
        """The inference answers and the scores of ``records``."""
        outputs = self.outputs(records)
        return self.problem.answers(outputs, threshold=self.threshold), self.problem.scores(outputs).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "commit_id": self.commit_id,
            "weights_sha256": self.card.weights_sha256,
            "data_repository": self.card.data_repository,
            "data_commit_id": self.card.data_commit_id,
            "task": self.problem.task,
            "classes": list(self.problem.classes),
            "threshold": self.threshold,
        }


def rebuild(
    card: Any, state_dict: Mapping[str, torch.Tensor]
) -> tuple[torch.nn.Module, Preprocessor, Problem]:
    """The network, preprocessing and task a model card describes, with ``state_dict`` loaded."""
    spec = card.feature_spec
    name = spec.get("model", "mlp")
    try:
        record = spec.get("preprocessing") or spec
        features = Preprocessor.from_dict(record)
        expected = spec.get("preprocessing_sha256")
        if expected is not None and features.sha256() != expected:
            raise ModelIntegrityError(
                f"model {card.model_name!r} {card.version}: its preprocessing does not match the recorded "
                f"SHA-256 ({features.sha256()[:12]} != {expected[:12]}); the card was altered"
            )
        problem = Problem.from_dict(spec.get("problem"), target=spec.get("target"))
        options = spec.get("model_options")
        if options is None:  # cards from before model options: the MLP's hidden widths
            options = {"hidden": tuple(spec.get("hidden", (64, 32)))}
        options = {k: tuple(v) if k == "hidden" else v for k, v in options.items()}
        network = build_model(name, features.width, problem.output_width, **options)
        network.load_state_dict(dict(state_dict))
    except ModelFactoryError as error:
        if "not installed" in str(error):
            source = spec.get("model_source", "unknown")
            raise ModelFactoryError(
                f"model {card.model_name!r} {card.version} was built by factory {name!r} ({source}), which "
                f"is not installed here: {error}"
            ) from error
        raise ModelIntegrityError(f"model {card.model_name!r} {card.version}: {error}") from error
    except (KeyError, TypeError, RuntimeError, InvalidInputError) as error:
        raise ModelIntegrityError(
            f"model {card.model_name!r} {card.version}: the card's feature_spec does not rebuild the stored "
            f"network ({error})"
        ) from error
    network.eval()
    return network, features, problem
