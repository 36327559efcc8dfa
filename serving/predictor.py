"""A registered model version made ready to score requests, and the loader that fetches it.

``Predictor`` rebuilds the network from the model card (factory name, widths, feature standardisation)
and weights verified against their SHA-256 by ``tasks.registry.load_model``. ``ModelLoader`` loads it in
a background thread so a serving replica starts (and answers health checks) even while the registry is
unreachable: it retries with back-off until the registry answers, and gives up only on errors that
waiting cannot fix (unknown version, tampered weights), keeping the reason for ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from infra.errors import InvalidInputError, ModelIntegrityError, ModelNotFoundError
from tasks.models import FeatureSpec, build_model, predict_proba

logger = logging.getLogger(__name__)

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


LoaderState = Literal["loading", "ready", "failed", "stopped"]


class ModelLoader:
    """Loads a ``Predictor`` in the background, retrying while the registry is unreachable.

    Args:
        load: Returns the predictor; raises ``ModelNotFoundError``/``ModelIntegrityError`` for problems
            that retrying cannot fix (the loader stops and reports them) and anything else for
            transient ones (the loader retries).
        retry_backoff_s: First wait between attempts; doubles up to ``max_backoff_s``.
    """

    def __init__(
        self,
        load: Callable[[], Predictor],
        *,
        retry_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._load = load
        self._backoff = retry_backoff_s
        self._max_backoff = max_backoff_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.state: LoaderState = "loading"
        self.reason = "loading from the registry"
        self.attempts = 0
        self.predictor: Predictor | None = None
        self._thread = threading.Thread(target=self._run, name="lockgate-model-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = self._backoff
        while not self._stop.is_set():
            self.attempts += 1
            try:
                predictor = self._load()
            except (ModelNotFoundError, ModelIntegrityError) as error:
                self._set("failed", f"{type(error).__name__}: {error}")
                logger.error("model not loaded, not retrying: %s", error)
                return
            except Exception as error:  # registry unreachable, timeouts: worth waiting for
                self._set("loading", f"registry unreachable ({type(error).__name__}: {error}); retrying")
                logger.warning(
                    "model load attempt %d failed (%s); retrying in %.1f s", self.attempts, error, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            with self._lock:
                self.predictor = predictor
            self._set("ready", f"{predictor.model_name} {predictor.version} loaded and verified")
            return

    def _set(self, state: LoaderState, reason: str) -> None:
        with self._lock:
            self.state, self.reason = state, reason

    def wait(self, timeout_s: float) -> LoaderState:
        """Wait until the loader is ready or failed (or ``timeout_s`` passed); returns the state."""
        deadline = time.monotonic() + timeout_s
        while self.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state

    def stop(self) -> None:
        """Stop retrying (the replica is shutting down); a loaded model stays loaded."""
        self._stop.set()
        with self._lock:
            if self.state == "loading":
                self.state, self.reason = "stopped", "stopped before the model loaded"

    def status(self) -> dict[str, Any]:
        with self._lock:
            status = {"state": self.state, "reason": self.reason, "attempts": self.attempts}
            if self.predictor is not None:
                status["model"] = self.predictor.describe()
            return status
