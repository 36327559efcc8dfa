"""The signed webhook relay: a small FastAPI service that turns external HTTP requests into Prefect
events, so that automations (retrain, deploy, ...) can key on them.

Endpoints
---------
``POST /hooks/events/{name}``
    A JSON object body, signed as below. Emits ``lockgate.external.<name>`` with the body as the
    payload and the resource ``lockgate.webhook.<name>``. ``name`` must match
    ``^[a-z][a-z0-9_.-]{0,63}$`` (400 otherwise). Answers 202 ``{"event": ..., "id": ...}``.
``POST /hooks/lakefs``
    A lakeFS action webhook (``_lakefs_actions/*.yaml``, ``type: webhook``). A ``post-merge`` into a
    branch emits ``lockgate.dataset.merged`` with the resource ``lakefs.<repository>.<branch>``.
    A ``pre-merge`` is the contract gate (below). Every other ``event_type`` is answered 200
    ``{"ignored": ...}`` and emits nothing.
``GET /health``
    200 ``{"status": "ok"}``.

The pre-merge contract gate
---------------------------
Install an action with a ``pre-merge`` webhook on the protected branches of a dataset repository::

    name: contract gate
    on:
      pre-merge:
        branches: [main]
    hooks:
      - id: contract-gate
        type: webhook
        properties:
          url: http://relay.internal:8200/hooks/lakefs
          timeout: 5m

lakeFS refuses a merge (412 to whoever merged) when a pre-merge webhook answers anything but 2xx.
For a merge into one of ``protected_branches`` of a repository that holds a declared dataset, the
relay runs :func:`tasks.merge_gate.check_merge` on what the merge brings (every added or changed
object under ``data/``; see that module for the rules) and answers:

* 200 ``{"passed": true, "checked": true, "files_checked": [...], ...}`` when it passes;
* 412 ``{"passed": false, "checked": true, "failures": [{"file", "column", "check", "count",
  "examples"}, ...], "detail": "<one line per failure>"}`` when it does not;
* 503 ``{"passed": false, "detail": "could not check the merge: ..."}`` when the check itself fails
  (lakeFS unreachable, a ref gone): the gate fails closed;
* 200 ``{"passed": true, "checked": false, "reason": ...}`` for a branch that is not protected or a
  repository that holds no declared dataset: not the gate's business, so never blocked.

A ``pre-merge`` body needs string ``repository_id``, ``branch_id`` (the destination) and
``source_ref`` (400 otherwise). The check reads lakeFS with the client from ``lakefs_client_factory``
(default: ``LakeFSSettings`` from the environment). lakeFS keeps each webhook's answer in the action
run's hook output, so the 412 body is what a person reads to see why the merge was refused.

Signing scheme (implement it in any language)
---------------------------------------------
Every request to ``/hooks/events/{name}`` carries three headers::

    X-Lockgate-Timestamp: <unix time in whole seconds, e.g. 1795762205>
    X-Lockgate-Nonce:     <16-128 characters of [A-Za-z0-9_-], unique per request, e.g. a UUID4 hex>
    X-Lockgate-Signature: sha256=<lowercase hex HMAC-SHA256>

where the HMAC key is the shared secret (UTF-8) and the message is the bytes
``f"{timestamp}.{nonce}."`` (ASCII) followed by the exact raw request body, e.g. in Python::

    message = f"{timestamp}.{nonce}.".encode() + body
    signature = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

The relay compares signatures in constant time. It answers 401 when a header is missing or malformed,
when the signature does not match (``"bad signature"``), when the timestamp is more than
``replay_window_s`` seconds before or after its clock (``"expired"``), and when the nonce was already
accepted within the window (``"replayed"``). :func:`sign` builds the headers.

lakeFS webhooks
---------------
lakeFS action webhooks (and the embedded server's, see ``infra/lakefs_server/hooks.py``) send a
plain JSON POST and cannot add the headers above. So: when ``lakefs_secret`` is set, ``/hooks/lakefs``
requires the same signature made with that secret (put a signing proxy in front of lakeFS); when it
is unset, ``/hooks/lakefs`` accepts unsigned requests, and must then only be reachable from lakeFS
(bind the relay to a private network); signature headers, if any, are then ignored. Nonces are
remembered for ``replay_window_s``, at most ``nonce_cache_size`` of them (the oldest go first).

Limits on every hook: bodies over ``max_body_bytes`` are refused with 413, and each client address
gets ``rate_limit_per_minute`` requests per minute per event name (a token bucket; 429 with
``Retry-After`` beyond). No event is emitted on any 4xx answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import prefect.events
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from infra.errors import RequestRejectedError
from infra.settings import RelaySettings
from tasks import events

if TYPE_CHECKING:
    import lakefs

    from tasks.datasets import DatasetSpec

PRE_MERGE = "pre-merge"
TIMESTAMP_HEADER = "X-Lockgate-Timestamp"
NONCE_HEADER = "X-Lockgate-Nonce"
SIGNATURE_HEADER = "X-Lockgate-Signature"
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
LAKEFS_FIELDS = (
    "event_type",
    "event_time",
    "action_name",
    "hook_id",
    "repository_id",
    "branch_id",
    "source_ref",
    "commit_id",
    "commit_message",
    "committer",
    "commit_metadata",
)

Emit = Callable[..., Any]
LakeFSClientFactory = Callable[[], "lakefs.Client"]
DatasetsProvider = Callable[[], Mapping[str, "DatasetSpec"]]


# -- signing -------------------------------------------------------------------------------------


def signature(secret: str, body: bytes, *, timestamp: str, nonce: str) -> str:
    """The ``X-Lockgate-Signature`` value of ``body`` (see the module docstring)."""
    message = f"{timestamp}.{nonce}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    secret: str | SecretStr, body: bytes, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The headers that sign ``body`` for the relay; ``timestamp`` defaults to now, ``nonce`` to a
    fresh random one."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key, body, timestamp=stamp, nonce=nonce),
    }


class NonceCache:
    """Nonces accepted in the last ``ttl_s`` seconds, at most ``capacity`` of them (thread-safe)."""

    def __init__(self, ttl_s: float, capacity: int, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry, oldest first
        self._lock = threading.Lock()

    def add(self, nonce: str) -> bool:
        """Remember ``nonce``; False when it was already remembered (a replay)."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now and len(self._seen) < self.capacity:
                    break
                del self._seen[oldest]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + self.ttl_s
            return True


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    nonces: NonceCache,
    window_s: float,
    now: float | None = None,
) -> None:
    """Check the signature headers of a request; raise :class:`RequestRejectedError` (401) when they fail.

    The nonce is remembered only once the signature is known to be good, so unsigned junk cannot
    fill the cache or burn a sender's future nonces.
    """
    stamp = headers.get(TIMESTAMP_HEADER)
    nonce = headers.get(NONCE_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not stamp or not nonce or not given:
        raise RequestRejectedError(
            401,
            f"missing signature headers: {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} needed",
        )
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise RequestRejectedError(401, f"bad {TIMESTAMP_HEADER}: unix time in whole seconds expected")
    if not NONCE.match(nonce):
        raise RequestRejectedError(401, f"bad {NONCE_HEADER}: 16-128 characters of [A-Za-z0-9_-] expected")
    expected = signature(secret, body, timestamp=stamp, nonce=nonce)
    if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
        raise RequestRejectedError(401, "bad signature")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > window_s:
        raise RequestRejectedError(401, "expired")
    if not nonces.add(nonce):
        raise RequestRejectedError(401, "replayed")


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to ``per_minute``."""

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str]) -> float:
        """Take a token for ``key``; return 0 when allowed, else the seconds until one is free."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:  # forget the least recently seen clients
                self._buckets.popitem(last=False)
            return wait


# -- parsing -------------------------------------------------------------------------------------


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; raise :class:`RequestRejectedError` (400) for anything else."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestRejectedError(400, f"body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise RequestRejectedError(400, f"body must be a JSON object, not {type(document).__name__}")
    return document


def lakefs_merge_event(hook: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``emit_event`` arguments for a lakeFS webhook body, or None when its event type is not
    relayed; raise :class:`RequestRejectedError` (400) when the body lacks what a merge event needs."""
    event_type = hook.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise RequestRejectedError(400, "lakeFS webhook body needs a string 'event_type'")
    if event_type != "post-merge":
        return None
    fields = {}
    for key in ("repository_id", "branch_id", "commit_id"):
        value = hook.get(key)
        if not isinstance(value, str) or not value:
            raise RequestRejectedError(400, f"lakeFS post-merge webhook body needs a string {key!r}")
        fields[key] = value
    repository, branch, commit = fields["repository_id"], fields["branch_id"], fields["commit_id"]
    resource = events.dataset_resource(repository, branch, commit=commit)
    if isinstance(hook.get("source_ref"), str):
        resource["lakefs.source_ref"] = hook["source_ref"]
    payload = {key: hook[key] for key in LAKEFS_FIELDS if key in hook}
    payload["source"] = "lakefs-webhook"
    return {"event": events.DATASET_MERGED, "resource": resource, "payload": payload}


def pre_merge_request(hook: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(repository, destination branch, source ref)`` of a lakeFS pre-merge webhook body; raise
    :class:`RequestRejectedError` (400) when one is missing."""
    fields = []
    for key in ("repository_id", "branch_id", "source_ref"):
        value = hook.get(key)
        if not isinstance(value, str) or not value:
            raise RequestRejectedError(400, f"lakeFS pre-merge webhook body needs a string {key!r}")
        fields.append(value)
    return fields[0], fields[1], fields[2]


def _default_lakefs_client() -> lakefs.Client:
    from infra.clients import make_lakefs_client
    from infra.settings import LakeFSSettings

    return make_lakefs_client(LakeFSSettings())


def _default_datasets() -> Mapping[str, DatasetSpec]:
    from tasks.datasets import available_datasets

    return available_datasets()


# -- the app -------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejectedError(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejectedError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: RelaySettings,
    *,
    emit: Emit = prefect.events.emit_event,
    lakefs_client_factory: LakeFSClientFactory = _default_lakefs_client,
    datasets: DatasetsProvider = _default_datasets,
) -> FastAPI:
    """The relay app.

    Args:
        settings: Secrets, limits and the protected branches.
        emit: Called as ``emit(event=..., resource=..., payload=...)`` for each relayed event.
        lakefs_client_factory: Builds the lakeFS client the contract gate reads with; called once, at
            the first pre-merge webhook that needs it (default: ``LakeFSSettings`` from the environment).
        datasets: The declared datasets by name (default: ``available_datasets``); the gate checks the
            one whose repository is merged into.
    """
    from tasks.merge_gate import check_merge, find_dataset_for_repository

    app = FastAPI(title="lockgate webhook relay", docs_url=None, redoc_url=None)
    window = float(settings.replay_window_s)
    event_nonces = NonceCache(window, settings.nonce_cache_size)
    lakefs_nonces = NonceCache(window, settings.nonce_cache_size)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    clients: list[lakefs.Client] = []
    client_lock = threading.Lock()

    @app.exception_handler(RequestRejectedError)
    async def _rejected(request: Request, error: RequestRejectedError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)

    def _throttle(request: Request, name: str) -> None:
        client = request.client.host if request.client else "unknown"
        wait = limiter.take((client, name))
        if wait:
            raise RequestRejectedError(
                429, "rate limit exceeded", headers={"Retry-After": str(max(1, math.ceil(wait)))}
            )

    def _emit(arguments: dict[str, Any]) -> JSONResponse:
        try:
            event = emit(**arguments)
        except Exception as error:  # noqa: BLE001 - any failure of the event client is a 503
            return JSONResponse({"detail": f"could not emit the event: {error}"}, status_code=503)
        event_id = getattr(event, "id", None)
        return JSONResponse(
            {"event": arguments["event"], "id": str(event_id) if event_id else None}, status_code=202
        )

    def _lakefs_client() -> lakefs.Client:
        with client_lock:
            if not clients:
                clients.append(lakefs_client_factory())
            return clients[0]

    def _check(repository: str, branch: str, source_ref: str) -> tuple[int, dict[str, Any]]:
        """The gate's answer (status, body) to a pre-merge; runs off the event loop (lakeFS I/O)."""
        unchecked = {"passed": True, "checked": False, "repository": repository, "branch": branch}
        if branch not in settings.protected_branches:
            return 200, {**unchecked, "reason": f"branch {branch!r} is not protected"}
        spec = find_dataset_for_repository(repository, datasets=datasets())
        if spec is None:
            return 200, {**unchecked, "reason": f"repository {repository!r} holds no declared dataset"}
        check = check_merge(
            spec,
            source_ref=source_ref,
            destination_ref=branch,
            client=_lakefs_client(),
            require_report=settings.require_contract_report,
        )
        body = {"checked": True, **check.to_dict(), "detail": check.message()}
        return (200 if check.passed else 412), body

    async def _gate_merge(hook: Mapping[str, Any]) -> JSONResponse:
        repository, branch, source_ref = pre_merge_request(hook)
        try:
            status, body = await run_in_threadpool(_check, repository, branch, source_ref)
        except Exception as error:  # noqa: BLE001 - the gate fails closed: lakeFS refuses the merge
            return JSONResponse(
                {"passed": False, "detail": f"could not check the merge: {type(error).__name__}: {error}"},
                status_code=503,
            )
        return JSONResponse(body, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/hooks/events/{name}")
    async def external_event(name: str, request: Request) -> JSONResponse:
        if not EVENT_NAME.match(name):
            raise RequestRejectedError(400, "bad event name: it must match ^[a-z][a-z0-9_.-]{0,63}$")
        _throttle(request, name)
        body = await _read_body(request, settings.max_body_bytes)
        verify(
            settings.secret.get_secret_value(), request.headers, body, nonces=event_nonces, window_s=window
        )
        payload = parse_object(body)
        return _emit(
            {
                "event": events.external(name),
                "resource": {"prefect.resource.id": f"lockgate.webhook.{name}", "lockgate.webhook": name},
                "payload": payload,
            }
        )

    @app.post("/hooks/lakefs")
    async def lakefs_webhook(request: Request) -> JSONResponse:
        _throttle(request, "lakefs")
        body = await _read_body(request, settings.max_body_bytes)
        if settings.lakefs_secret is not None:
            verify(
                settings.lakefs_secret.get_secret_value(),
                request.headers,
                body,
                nonces=lakefs_nonces,
                window_s=window,
            )
        hook = parse_object(body)
        if hook.get("event_type") == PRE_MERGE:
            return await _gate_merge(hook)
        arguments = lakefs_merge_event(hook)
        if arguments is None:
            return JSONResponse({"ignored": hook["event_type"]}, status_code=200)
        return _emit(arguments)

    return app


def run_relay(settings: RelaySettings, host: str = "127.0.0.1", port: int = 8200) -> None:
    """Serve the relay with uvicorn until interrupted (for the CLI)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
