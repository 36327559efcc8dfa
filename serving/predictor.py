"""The loader that fetches a ``Predictor`` (``tasks.predictor``) for a serving replica.

``ModelLoader`` loads it in a background thread so a serving replica starts (and answers health
checks) even while the registry is unreachable: it retries with back-off until the registry answers,
and gives up only on errors that waiting cannot fix (unknown version, tampered weights), keeping the
reason for ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from infra.errors import ModelIntegrityError, ModelNotFoundError
from tasks.predictor import DEFAULT_THRESHOLD, Predictor

__all__ = ["DEFAULT_THRESHOLD", "ModelLoader", "Predictor"]

logger = logging.getLogger(__name__)

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
