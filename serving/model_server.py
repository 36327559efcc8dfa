"""The model deployment: one Serve application per live version, loading it verified and batching.

Serve captures a deployment class with the module globals defined when it is decorated, so the helpers
it uses sit above it here.
"""

import asyncio
import random
import re
from typing import Any

from ray import serve

from contracts.rollout import FaultInjection
from infra.errors import InjectedFaultError, ModelNotReadyError
from infra.settings import LakeFSSettings, ServingSettings
from serving.predictor import ModelLoader, Predictor

MODEL_DEPLOYMENT = "model"


def model_app_name(app_name: str, model_name: str, ref: str) -> str:
    """Serve application name of one live version, e.g. ``lockgate-loans-mlp-v3``."""
    return f"{app_name}-{model_name}-{re.sub(r'[^A-Za-z0-9_-]', '-', ref)}"


def lakefs_client_from(settings: LakeFSSettings | None):
    """The registry client of a replica: from the settings it was deployed with, else its environment."""
    from infra.clients import make_lakefs_client

    return make_lakefs_client(settings or LakeFSSettings())


# A 2 s health-check period: a lost replica is replaced within seconds (Serve's default is 10 s). A
# stopping replica checks for unfinished requests every 0.2 s (Serve's default 2 s is the least a
# retirement takes, even when nothing is in flight).
@serve.deployment(
    name=MODEL_DEPLOYMENT,
    max_ongoing_requests=256,
    graceful_shutdown_timeout_s=10,
    graceful_shutdown_wait_loop_s=0.2,
    health_check_period_s=2,
    health_check_timeout_s=10,
)
class ModelServer:
    """Serves one registered version: loads it (SHA-256 checked) in the background, batches requests."""

    def __init__(
        self,
        model_name: str,
        ref: str,
        *,
        lakefs: LakeFSSettings | None = None,
        max_batch_size: int = 64,
        batch_wait_timeout_s: float = 0.002,
        faults: dict | None = None,
        load_wait_s: float = 30.0,
    ) -> None:
        self.model_name, self.ref = model_name, ref
        self.faults = FaultInjection(**(faults or {}))
        self._random = random.Random()
        self.loader = ModelLoader(
            lambda: Predictor.from_registry(model_name, ref, client=lakefs_client_from(lakefs))
        )
        self._batched.set_max_batch_size(max_batch_size)
        self._batched.set_batch_wait_timeout_s(batch_wait_timeout_s)
        # Serve routes to a replica once its constructor returns: give the model time to load first, so
        # a replacement or scaled-up replica does not answer 503 "not ready" to live traffic.
        self.loader.wait(load_wait_s)

    def reconfigure(self, user_config: dict) -> None:
        """Serve calls this on ``user_config`` changes: faults can change without a restart."""
        self.faults = FaultInjection(**(user_config or {}).get("faults", {}))

    async def predict(self, records: list[dict]) -> dict[str, Any]:
        """The answers (and scores) of one request's records, with the version that produced them."""
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_rate and self._random.random() < faults.error_rate:
            raise InjectedFaultError(f"injected fault ({faults.error_rate:.0%} of requests fail)")
        predictor = self.loader.predictor
        if predictor is None:
            raise ModelNotReadyError(f"{self.model_name}@{self.ref}: {self.loader.reason}")
        answers, scores = await self._batched(records)
        return {"version": predictor.version, "answers": answers, "scores": scores}

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _batched(self, requests: list[list[dict]]) -> list[tuple[list[dict], list[float]]]:
        predictor = self.loader.predictor
        flat = [record for request in requests for record in request]
        answers, scores = predictor.answer(flat)
        found, start = [], 0
        for request in requests:
            end = start + len(request)
            found.append((answers[start:end], scores[start:end]))
            start = end
        return found

    def status(self) -> dict[str, Any]:
        return {**self.loader.status(), "ref": self.ref, "faults": self.faults.model_dump()}

    def __del__(self) -> None:
        if hasattr(self, "loader"):  # the constructor may have failed before it
            self.loader.stop()


def model_app(
    settings: ServingSettings,
    ref: str,
    *,
    lakefs: LakeFSSettings | None = None,
    faults: FaultInjection | None = None,
    max_batch_size: int | None = None,
):
    """The Serve application of one version of ``settings.model_name``."""
    if settings.autoscaling_max_replicas is None:
        scaling: dict[str, Any] = {"num_replicas": settings.model_replicas}
    else:
        scaling = {
            "autoscaling_config": {
                "min_replicas": settings.model_replicas,
                "max_replicas": settings.autoscaling_max_replicas,
                "target_ongoing_requests": settings.autoscaling_target_ongoing_requests,
            }
        }
    return ModelServer.options(
        **scaling,
        ray_actor_options={"num_cpus": settings.replica_num_cpus, "num_gpus": settings.model_num_gpus},
        user_config={"faults": (faults or FaultInjection()).model_dump()},
    ).bind(
        settings.model_name,
        ref,
        lakefs=lakefs,
        max_batch_size=max_batch_size or settings.max_batch_size,
        batch_wait_timeout_s=settings.batch_wait_timeout_s,
        load_wait_s=settings.model_load_wait_s,
    )
