"""The ingress deployment: the HTTP API (``/predict``, ``/health``, ``/models``), the inference contract,
routing by the control actor's table, per-version statistics and metrics, and the inference log.

Serve captures a deployment class with the module globals defined when it is decorated, so the helpers
it uses sit above it here.
"""

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from infra.errors import ModelNotReadyError
from infra.settings import LakeFSSettings, ServingSettings
from serving.control import control_actor
from serving.inference_log import InferenceLogger, LakeFSInferenceSink, log_rows
from serving.model_server import MODEL_DEPLOYMENT, lakefs_client_from
from serving.routing import Route, RoutingTable
from serving.stats import LATENCY_BOUNDS_MS, VersionStats

logger = logging.getLogger("lockgate.serving")

INGRESS_DEPLOYMENT = "ingress"


def _error(status: int, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"request_id": request_id, "detail": message},
    )


def _field_errors(error: pydantic.ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{"record", "field", "message", "type"}``, one per bad field."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        location = list(item["loc"])
        record = location.pop(0) if location and isinstance(location[0], int) else None
        problems.append(
            {
                "record": record,
                "field": ".".join(str(part) for part in location) or None,
                "message": item["msg"],
                "type": item["type"],
            }
        )
    return problems


def _failure(error: BaseException, timeout_s: float) -> tuple[int, str]:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return 504, f"model did not answer within {timeout_s:g} s"
    if isinstance(error, ModelNotReadyError):
        return 503, f"model not ready: {error}"
    return 500, f"model failed: {type(error).__name__}: {str(error).splitlines()[-1] if str(error) else ''}"


api = FastAPI(
    title="lockgate serving",
    description="Predictions from the live model versions, checked against the inference contract.",
)


class _Metrics:
    """lockgate's own metrics through Ray's metrics export (Prometheus), per model version."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Histogram

        self.requests = Counter(
            "lockgate_requests_total",
            description="Prediction requests answered, by model version, role and outcome.",
            tag_keys=("model_name", "model_version", "role", "outcome"),
        )
        self.latency = Histogram(
            "lockgate_request_latency_ms",
            description="Request latency at the ingress, ms.",
            boundaries=[b for b in LATENCY_BOUNDS_MS if 0.5 <= b <= 30_000][::3],
            tag_keys=("model_name", "model_version", "role"),
        )
        self.rejected = Counter(
            "lockgate_requests_rejected_total",
            description="Requests refused before reaching a model (contract, size, JSON).",
            tag_keys=("reason",),
        )
        self.log_dropped = Counter(
            "lockgate_inference_log_dropped_total",
            description="Inference log rows dropped because the buffer was full (never silently).",
        )


def _dataset_of(settings: ServingSettings, routes: list[dict], lakefs: LakeFSSettings | None):
    """The dataset (and model card) the served model was trained on: from the first live version's
    card, so serving a second dataset needs no setting; ``settings.dataset`` when there is no card."""
    from tasks.datasets import get_dataset

    card = None
    if routes:
        try:
            from tasks import registry

            first = routes[0]
            card = registry.show_model(
                first["model_name"], first["version"], client=lakefs_client_from(lakefs)
            )
        except Exception as error:  # the registry is unreachable: serve by the configured dataset
            logger.warning(
                "cannot read the model card of %s (%s); using dataset %r", routes[0], error, settings.dataset
            )
    if card is not None:
        from tasks.datasets import dataset_of_card

        return dataset_of_card(card), card
    if not settings.dataset:
        from infra.errors import ConfigurationError

        raise ConfigurationError(
            "the served model's card could not be read and no dataset is set: set LOCKGATE_DATASET (or "
            "LOCKGATE_SERVING_DATASET) so the ingress knows its request contract"
        )
    return get_dataset(settings.dataset), card


def _contract(settings: ServingSettings, routes: list[dict], lakefs: LakeFSSettings | None):
    """The request validator (from the dataset's validated model and the served vocabulary) and the
    score bins of the served task (None: ten equal bins of a probability)."""
    from contracts.inference import request_model

    spec, card = _dataset_of(settings, routes, lakefs)
    allowed, nullable, edges = {}, set(), None
    if card is not None:
        from tasks.preprocessing import Preprocessor

        preprocessor = Preprocessor.from_dict(card.feature_spec.get("preprocessing") or card.feature_spec)
        allowed = {
            e.column: list(e.categories)
            for e in preprocessor.encoders
            if e.kind == "one_hot" and e.unknown == "refuse"
        }
        nullable = preprocessor.nullable()
        if (card.feature_spec.get("problem") or {}).get("task", "binary") != "binary":
            edges = card.feature_spec.get("score_edges")
    request_type = request_model(
        spec.validated_model,
        feature_columns=spec.feature_columns,
        name="InferenceRecord",
        allowed_values=allowed,
        nullable=nullable,
    )
    return pydantic.TypeAdapter(list[request_type]), edges


@serve.deployment(
    name=INGRESS_DEPLOYMENT,
    max_ongoing_requests=512,
    graceful_shutdown_timeout_s=30,
    graceful_shutdown_wait_loop_s=0.2,  # see serving/model_server.py
)
@serve.ingress(api)
class Ingress:
    """``POST /predict``, ``GET /health``, ``GET /models``; routes by the control actor's table."""

    def __init__(
        self,
        settings: dict,
        initial_routes: list[dict],
        *,
        lakefs: LakeFSSettings | None = None,
    ) -> None:
        self.settings = ServingSettings.model_validate(settings)
        self.lakefs = lakefs
        self.records_adapter, self.score_edges, self.contract_problem = None, None, ""
        try:
            self.records_adapter, self.score_edges = _contract(self.settings, initial_routes, lakefs)
        except Exception as error:  # the registry is down and no dataset is set: retried per request
            self.contract_problem = f"{type(error).__name__}: {error}"
            logger.warning("request contract not loaded yet (%s); retrying on requests", error)
        initial = {"epoch": 0, "routes": initial_routes}
        self.table = RoutingTable.from_dict(initial)
        self.control = control_actor(self.settings.app_name, initial)
        self.handles: dict[str, Any] = {}
        self.pending: dict[int, dict[str, VersionStats]] = defaultdict(lambda: defaultdict(VersionStats))
        self.lock = threading.Lock()
        self.metrics = _Metrics()
        self.background: set[asyncio.Task] = set()
        self.logger: InferenceLogger | None = None
        if self.settings.inference_logging:
            self.logger = InferenceLogger(
                LakeFSInferenceSink(
                    lambda: lakefs_client_from(lakefs),
                    repository=self.settings.inference_repository,
                    writer=f"ingress-{uuid.uuid4().hex[:8]}",
                ),
                flush_rows=self.settings.log_flush_rows,
                flush_interval_s=self.settings.log_flush_interval_s,
                capacity_rows=self.settings.log_capacity_rows,
                on_drop=lambda n: self.metrics.log_dropped.inc(n),
            )
        self.stopping = threading.Event()
        self.poller = threading.Thread(target=self._poll, name="lockgate-control-poll", daemon=True)
        self.poller.start()

    # -- control plane -------------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self.stopping.wait(self.settings.control_poll_s):
            self._sync()

    def _sync(self) -> None:
        import ray

        with self.lock:
            pending = {epoch: dict(stats) for epoch, stats in self.pending.items()}
            self.pending.clear()
        try:
            routing = None
            for epoch, stats in pending.items():
                payload = {version: counts.to_dict() for version, counts in stats.items()}
                routing = ray.get(self.control.report.remote(epoch, payload), timeout=10)
            if routing is None:
                routing = ray.get(self.control.routing.remote(), timeout=10)
        except Exception as error:  # control actor gone or slow: keep serving the last table
            logger.warning(
                "rollout control unreachable (%s); keeping routes of epoch %d", error, self.table.epoch
            )
            with self.lock:
                for epoch, stats in pending.items():
                    for version, counts in stats.items():
                        self.pending[epoch][version].merge(counts)
            self.control = control_actor(self.settings.app_name, self.table.to_dict())
            return
        table = RoutingTable.from_dict(routing)
        if table.epoch != self.table.epoch:
            logger.info("routes changed (epoch %d): %s", table.epoch, table.to_dict()["routes"])
        self.table = table

    def _handle(self, route: Route):
        handle = self.handles.get(route.app)
        if handle is None:
            handle = serve.get_deployment_handle(MODEL_DEPLOYMENT, app_name=route.app)
            self.handles[route.app] = handle
        return handle

    def _observe(self, epoch: int, route: Route, latency_ms: float, *, error: bool, probabilities=()) -> None:
        with self.lock:
            self.pending[epoch][route.version].observe(
                latency_ms, error=error, probabilities=probabilities, edges=self.score_edges
            )

    # -- HTTP API --------------------------------------------------------------------------------------

    @api.post("/predict")
    async def predict(self, request: Request, version: str | None = None) -> JSONResponse:
        """Score one record (a JSON object) or many (a JSON array, or ``{"records": [...]}``).

        Headers: ``X-Request-ID`` (echoed; generated when absent), ``X-Lockgate-Key`` (requests with the
        same key always reach the same version). Query ``version=v3`` pins a live version.
        """
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        records, problem = await self._parse(request, request_id)
        if problem is not None:
            return problem
        table = self.table
        if version is not None:
            route = table.find(version)
            if route is None:
                live = ", ".join(r.version for r in table.routes) or "none"
                self.metrics.rejected.inc(tags={"reason": "unknown_version"})
                return _error(
                    404, f"model version {version!r} is not live; live versions: {live}", request_id
                )
        else:
            try:
                route = table.choose(request.headers.get("x-lockgate-key"))
            except LookupError as error:
                return _error(503, str(error), request_id)
        for shadow in table.shadows:
            if shadow is not route:
                task = asyncio.create_task(self._shadow(shadow, records, request_id, table.epoch))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
        try:
            answer = await asyncio.wait_for(
                self._handle(route).predict.remote(records), timeout=self.settings.request_timeout_s
            )
        except Exception as error:
            latency_ms = (time.perf_counter() - started) * 1000
            self._observe(table.epoch, route, latency_ms, error=True)
            self._record(route, route.version, latency_ms, "error")
            self._log(
                request_id, records, route, route.version, latency_ms, None, shadow=False, status="error"
            )
            status, message = _failure(error, self.settings.request_timeout_s)
            return _error(status, f"{route.version}: {message}", request_id)
        latency_ms = (time.perf_counter() - started) * 1000
        scores = answer["scores"]
        self._observe(table.epoch, route, latency_ms, error=False, probabilities=scores)
        self._record(route, answer["version"], latency_ms, "ok")
        self._log(request_id, records, route, answer["version"], latency_ms, answer, shadow=False)
        return JSONResponse(
            {
                "request_id": request_id,
                "model_name": route.model_name,
                "model_version": answer["version"],
                "predictions": [
                    {**item, "model_version": answer["version"], "request_id": request_id}
                    for item in answer["answers"]
                ],
            },
        )

    async def _shadow(self, route: Route, records: list[dict], request_id: str, epoch: int) -> None:
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(
                self._handle(route).predict.remote(records), timeout=self.settings.request_timeout_s
            )
        except Exception:
            latency_ms = (time.perf_counter() - started) * 1000
            self._observe(epoch, route, latency_ms, error=True)
            self._record(route, route.version, latency_ms, "error", shadow=True)
            self._log(
                request_id, records, route, route.version, latency_ms, None, shadow=True, status="error"
            )
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self._observe(epoch, route, latency_ms, error=False, probabilities=answer["scores"])
        self._record(route, answer["version"], latency_ms, "ok", shadow=True)
        self._log(request_id, records, route, answer["version"], latency_ms, answer, shadow=True)

    async def _parse(self, request: Request, request_id: str) -> tuple[list[dict], JSONResponse | None]:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.metrics.rejected.inc(tags={"reason": "too_large"})
            return [], _error(
                413, f"request body of {int(declared):,} bytes exceeds the {limit:,}-byte limit", request_id
            )
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                self.metrics.rejected.inc(tags={"reason": "too_large"})
                return [], _error(413, f"request body exceeds the {limit:,}-byte limit", request_id)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self.metrics.rejected.inc(tags={"reason": "malformed_json"})
            return [], _error(400, f"malformed JSON: {error}", request_id)
        except RecursionError:
            self.metrics.rejected.inc(tags={"reason": "malformed_json"})
            return [], _error(400, "malformed JSON: nested too deeply; send flat records", request_id)
        if isinstance(payload, dict) and set(payload) == {"records"}:
            payload = payload["records"]
        records = [payload] if isinstance(payload, dict) else payload
        if not isinstance(records, list) or not records:
            self.metrics.rejected.inc(tags={"reason": "contract"})
            return [], _error(
                422, "send one record (a JSON object) or a non-empty list of records", request_id
            )
        if len(records) > self.settings.max_records:
            self.metrics.rejected.inc(tags={"reason": "too_large"})
            return [], _error(
                413,
                f"{len(records):,} records exceed the limit of {self.settings.max_records:,} per request",
                request_id,
            )
        if self.records_adapter is None:
            try:
                self.records_adapter, self.score_edges = _contract(
                    self.settings, self.table.to_dict()["routes"], self.lakefs
                )
            except Exception as error:
                self.contract_problem = f"{type(error).__name__}: {error}"
                return [], _error(
                    503,
                    f"model not ready: the request contract is not loaded ({self.contract_problem})",
                    request_id,
                )
        try:
            self.records_adapter.validate_python(records)
        except pydantic.ValidationError as error:
            self.metrics.rejected.inc(tags={"reason": "contract"})
            return [], JSONResponse(
                status_code=422,
                content={"request_id": request_id, "detail": _field_errors(error)},
            )
        return records, None

    def _record(
        self, route: Route, version: str, latency_ms: float, outcome: str, *, shadow: bool = False
    ) -> None:
        # Shadow copies answer no client: tagged apart, so SLOs read from the metrics can leave them out.
        role = "shadow" if shadow else route.role
        tags = {"model_name": route.model_name, "model_version": version, "role": role}
        self.metrics.requests.inc(tags={**tags, "outcome": outcome})
        self.metrics.latency.observe(latency_ms, tags=tags)

    def _log(self, request_id, records, route, version, latency_ms, answer, *, shadow, status="ok"):
        if self.logger is None:
            return
        answers = None if answer is None else answer["answers"]
        self.logger.log(
            log_rows(
                request_id=request_id,
                records=records,
                model_name=route.model_name,
                model_version=version,
                role=route.role,
                shadow=shadow,
                latency_ms=latency_ms,
                probabilities=None if answers is None else [a.get("probability") for a in answers],
                predictions=None if answers is None else [a["prediction"] for a in answers],
                scores=None if answer is None else answer["scores"],
                status=status,
            )
        )

    @api.get("/health")
    async def health(self) -> JSONResponse:
        """200 only when every version that answers traffic has a verified model loaded."""
        table = self.table
        if not table.answering:
            return JSONResponse({"ready": False, "reason": "no model version is live"}, status_code=503)
        versions = {}
        for route in table.answering:
            versions[route.version] = await self._status(route)
        ready = all(status.get("state") == "ready" for status in versions.values())
        return JSONResponse(
            {"ready": ready, "versions": versions, "epoch": table.epoch}, status_code=200 if ready else 503
        )

    @api.get("/models")
    async def models(self) -> JSONResponse:
        """Live versions, their traffic weights and loading state, and the current window's figures."""
        table = self.table
        live = []
        for route in table.routes:
            live.append({**route.to_dict(), "status": await self._status(route)})
        control: dict[str, Any] = {}
        try:
            control = await asyncio.wait_for(self.control.status.remote(), timeout=5)
        except Exception as error:
            control = {"error": f"rollout control unreachable: {error}"}
        logging_stats = self.logger.stats() if self.logger is not None else None
        return JSONResponse(
            {"epoch": table.epoch, "live": live, "control": control, "inference_log": logging_stats}
        )

    async def _status(self, route: Route) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._handle(route).status.remote(), timeout=5)
        except Exception as error:
            return {"state": "unreachable", "reason": f"{type(error).__name__}: {error}"}

    def __del__(self) -> None:
        """Graceful shutdown: report the last statistics and write every buffered log row."""
        if not hasattr(self, "poller"):  # the constructor failed before the replica ever served
            return
        self.stopping.set()
        self._sync()
        if self.logger is not None:
            stats = self.logger.close(timeout_s=20)
            logger.info("inference log closed: %s", stats)


def ingress_app(
    settings: ServingSettings, initial_routes: list[Route], *, lakefs: LakeFSSettings | None = None
):
    """The Serve application of the ingress, starting with ``initial_routes``."""
    return Ingress.options(
        num_replicas=settings.ingress_replicas,
        ray_actor_options={"num_cpus": settings.replica_num_cpus},
    ).bind(settings.model_dump(), [route.to_dict() for route in initial_routes], lakefs=lakefs)
