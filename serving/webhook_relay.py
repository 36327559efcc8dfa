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

Authentication
--------------
``/hooks/events/{name}`` requests are signed with ``secret`` in the X-Lockgate-* scheme, which
covers the method, the path (so the event name) and the body; see :mod:`serving.relay_auth`. The
relay answers 401 when a header is missing or malformed, when the signature does not match
(``"bad signature"``), when the timestamp is more than ``replay_window_s`` seconds off its clock
(``"expired"``), and when the nonce was already accepted within the window (``"replayed"``). Nonces
are kept in SQLite under ``state_dir``: a restart does not reopen the window.

``/hooks/lakefs`` needs one of: the bearer token ``lakefs_token`` (lakeFS sends it through the
action's ``headers``, reading it from its own environment, which lakeFS limits to variables named
``LAKEFSACTION_*``)::

    properties:
      url: http://relay.internal:8200/hooks/lakefs
      headers:
        Authorization: "Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}"

or a signature with ``lakefs_secret`` (a signing proxy in front of lakeFS). Unauthenticated lakeFS
webhooks are accepted only with ``insecure_lakefs`` set, and the relay warns when it starts so.
A ``post-merge`` is checked against lakeFS before anything is emitted: its commit must exist and be
on the branch it names (422 otherwise, 503 when lakeFS cannot be asked).

Both hook endpoints take ``application/json`` bodies only (415 otherwise: a browser form or a
``text/plain`` "simple request" from a web page cannot act).

Delivery
--------
202 means Prefect's API stored the event (``POST /api/events`` answered); when Prefect is
unreachable, slow beyond ``event_timeout_s`` or refuses the event, the relay answers 503 and gives
the nonce back, so the sender can retry the same request.

Limits
------
Bodies over ``max_body_bytes`` are refused with 413. Requests that authenticate are charged to
``rate_limit_per_minute`` per client address and event name (429 with ``Retry-After`` beyond);
requests that do not are charged to a separate budget per client, so junk cannot starve a signed
caller. The client address is the socket's peer; ``X-Forwarded-For`` counts only from
``trusted_proxies``. No event is emitted on any 4xx or 5xx answer.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from infra.errors import RefNotFoundError, RepositoryNotFoundError, RequestRejectedError
from infra.settings import RelaySettings
from serving.relay_auth import (
    NONCE_DB,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    NonceStore,
    RateLimiter,
    authenticate,
    check_bearer,
    client_address,
    sign,
    signature,
)
from serving.relay_events import (
    deliver_event,
    lakefs_merge_event,
    parse_object,
    pre_merge_request,
)
from tasks import events

if TYPE_CHECKING:
    import lakefs

    from tasks.datasets import DatasetSpec

__all__ = [
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "create_app",
    "deliver_event",
    "run_relay",
    "sign",
    "signature",
]

PRE_MERGE = "pre-merge"
EVENT_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}", re.ASCII)
JSON_TYPE = re.compile(r"application/(?:[a-z0-9.+-]+\+)?json", re.ASCII)
logger = logging.getLogger("lockgate.relay")

Emit = Callable[..., Any]
LakeFSClientFactory = Callable[[], "lakefs.Client"]
DatasetsProvider = Callable[[], Mapping[str, "DatasetSpec"]]


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


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not JSON_TYPE.fullmatch(content_type):
        raise RequestRejectedError(
            415, f"content type {content_type or '(none)'!r} is not accepted: send application/json"
        )


def create_app(
    settings: RelaySettings,
    *,
    emit: Emit | None = None,
    lakefs_client_factory: LakeFSClientFactory = _default_lakefs_client,
    datasets: DatasetsProvider = _default_datasets,
    nonces: NonceStore | None = None,
) -> FastAPI:
    """The relay app.

    Args:
        settings: Secrets, limits and the protected branches.
        emit: Called as ``emit(event=..., resource=..., payload=...)`` for each relayed event; it must
            return only once the event is stored and raise when it is not (default:
            :func:`deliver_event`).
        lakefs_client_factory: Builds the lakeFS client the contract gate and the post-merge check
            read with; called once, at the first webhook that needs it (default: ``LakeFSSettings``
            from the environment).
        datasets: The declared datasets by name (default: ``available_datasets``); the gate checks the
            one whose repository is merged into.
        nonces: The replay window (default: persisted under ``settings.state_dir``).
    """
    from tasks.merge_gate import check_merge, find_dataset_for_repository

    app = FastAPI(title="lockgate webhook relay", docs_url=None, redoc_url=None)
    window = float(settings.replay_window_s)
    if nonces is None:
        nonces = NonceStore(settings.state_dir / NONCE_DB, window, settings.nonce_cache_size)
    store = nonces
    limiter = RateLimiter(settings.rate_limit_per_minute)
    junk = RateLimiter(settings.rate_limit_per_minute)
    clients: list[lakefs.Client] = []
    client_lock = threading.Lock()
    if settings.insecure_lakefs:
        logger.warning(
            "insecure_lakefs is set: /hooks/lakefs acts on unauthenticated requests; anyone who can reach "
            "the relay can start a retrain. Set LOCKGATE_WEBHOOK_LAKEFS_TOKEN instead."
        )

    def _send(arguments: dict[str, Any]) -> Any:
        if emit is not None:
            return emit(**arguments)
        return deliver_event(**arguments, timeout=settings.event_timeout_s)

    @app.exception_handler(RequestRejectedError)
    async def _rejected(request: Request, error: RequestRejectedError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)

    def _client(request: Request) -> str:
        return client_address(
            request.client.host if request.client else None, request.headers, settings.trusted_proxies
        )

    def _charge(budget: RateLimiter, key: tuple[str, str], what: str) -> None:
        wait = budget.take(key)
        if wait:
            raise RequestRejectedError(
                429, f"rate limit exceeded ({what})", headers={"Retry-After": str(max(1, math.ceil(wait)))}
            )

    async def _authenticated(
        request: Request, check: Callable[[bytes], str | None], name: str
    ) -> tuple[bytes, str | None]:
        """Read and authenticate a request; junk is charged to its own budget, never to callers'."""
        client = _client(request)
        try:
            _require_json(request)
            body = await _read_body(request, settings.max_body_bytes)
            nonce = check(body)
        except RequestRejectedError:
            _charge(junk, (client, "unauthenticated"), "unauthenticated requests")
            raise
        _charge(limiter, (client, name), f"{settings.rate_limit_per_minute} a minute per client and event")
        return body, nonce

    async def _relay(arguments: dict[str, Any], scope: str, nonce: str | None) -> JSONResponse:
        if nonce is not None and not store.reserve(scope, nonce):
            raise RequestRejectedError(401, "replayed")
        try:
            event = await run_in_threadpool(_send, arguments)
        except Exception as error:  # noqa: BLE001 - not stored: the sender may retry the same request
            if nonce is not None:
                store.release(scope, nonce)
            return JSONResponse({"detail": f"the event was not delivered: {error}"}, status_code=503)
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

    def _merged_commit_is_real(repository: str, branch: str, commit: str) -> None:
        """Raise 422 unless ``commit`` exists in ``repository`` and is on ``branch`` (lakeFS asked)."""
        from tasks import versioning

        client = _lakefs_client()
        try:
            on_branch = versioning.merge_base(repository, branch, commit, client=client) == commit
        except (RefNotFoundError, RepositoryNotFoundError) as error:
            raise RequestRejectedError(
                422, f"post-merge refers to what lakeFS does not have: {error}"
            ) from error
        if not on_branch:
            raise RequestRejectedError(422, f"post-merge commit {commit!r} is not on branch {branch!r}")

    def _lakefs_check(request: Request) -> Callable[[bytes], str | None]:
        def check(body: bytes) -> str | None:
            if settings.lakefs_token is not None and request.headers.get("authorization"):
                check_bearer(settings.lakefs_token, request.headers)
                return None
            if settings.lakefs_secret is not None and request.headers.get(SIGNATURE_HEADER):
                return authenticate(
                    settings.lakefs_secret,
                    request.headers,
                    body,
                    method=request.method,
                    path=request.url.path,
                    window_s=window,
                )
            if settings.insecure_lakefs:
                return None
            if settings.lakefs_token is None and settings.lakefs_secret is None:
                raise RequestRejectedError(
                    401,
                    "lakeFS webhooks need authentication: set LOCKGATE_WEBHOOK_LAKEFS_TOKEN on the relay "
                    "and send it from the action's headers (Authorization: Bearer ...)",
                )
            if settings.lakefs_token is not None:
                check_bearer(settings.lakefs_token, request.headers)
            raise RequestRejectedError(401, f"missing signature headers: {SIGNATURE_HEADER} needed")

        return check

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/hooks/events/{name}")
    async def external_event(name: str, request: Request) -> JSONResponse:
        if not EVENT_NAME.fullmatch(name):
            _charge(junk, (_client(request), "unauthenticated"), "unauthenticated requests")
            raise RequestRejectedError(400, "bad event name: it must match ^[a-z][a-z0-9_.-]{0,63}$")

        def check(body: bytes) -> str:
            return authenticate(
                settings.secret,
                request.headers,
                body,
                method=request.method,
                path=request.url.path,
                window_s=window,
            )

        body, nonce = await _authenticated(request, check, name)
        payload = parse_object(body)
        arguments = {
            "event": events.external(name),
            "resource": {"prefect.resource.id": f"lockgate.webhook.{name}", "lockgate.webhook": name},
            "payload": payload,
        }
        return await _relay(arguments, "events", nonce)

    @app.post("/hooks/lakefs")
    async def lakefs_webhook(request: Request) -> JSONResponse:
        body, nonce = await _authenticated(request, _lakefs_check(request), "lakefs")
        hook = parse_object(body)
        if hook.get("event_type") == PRE_MERGE:
            if nonce is not None and not store.reserve("lakefs", nonce):
                raise RequestRejectedError(401, "replayed")
            return await _gate_merge(hook)
        arguments = lakefs_merge_event(hook)
        if arguments is None:
            return JSONResponse({"ignored": hook["event_type"]}, status_code=200)
        resource = arguments["resource"]
        try:
            await run_in_threadpool(
                _merged_commit_is_real,
                resource["lakefs.repository"],
                resource["lakefs.branch"],
                resource["lakefs.commit"],
            )
        except RequestRejectedError:
            raise
        except Exception as error:  # noqa: BLE001 - lakeFS could not be asked: nothing is emitted
            return JSONResponse(
                {"detail": f"could not check the merge against lakeFS: {type(error).__name__}: {error}"},
                status_code=503,
            )
        return await _relay(arguments, "lakefs", nonce)

    return app


def run_relay(settings: RelaySettings, host: str = "127.0.0.1", port: int = 8200) -> None:
    """Serve the relay with uvicorn until interrupted (for the CLI).

    uvicorn's own proxy-header handling is off: it trusts ``X-Forwarded-For`` from any local client,
    so the app decides from ``trusted_proxies`` instead.
    """
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        proxy_headers=False,
        http="h11",  # h11 bounds the request head (16 KiB here); 431 beyond it
        h11_max_incomplete_event_size=16 * 1024,
        timeout_keep_alive=5,
    )
