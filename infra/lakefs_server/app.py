"""The lakeFS REST API (``/api/v1``) over the embedded store, as an ASGI (Starlette) application.

Handlers parse the request, call ``Store`` (metadata) and a block store (bytes), and shape lakeFS's
JSON. Uploads and downloads stream in bounded chunks; metadata calls run in Starlette's thread pool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from .blockstore import BlockStore, new_address
from .errors import (
    ApiError,
    BadRequest,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RangeNotSatisfiable,
    Unauthorized,
)
from .gc import DEFAULT_MIN_AGE_HOURS, GarbageCollector, GcRules
from .hooks import ACTIONS_PREFIX, MAX_ACTION_FILE, HookRunner
from .names import validate_namespace, validate_path
from .samples import SAMPLE_MESSAGE, sample_files
from .store import MAX_PAGE, Change, Resolved, Store

# The lakeFS API version this server implements, as plain MAJOR.MINOR.PATCH: clients parse it (lakefs-spec
# compares it with feature versions). What the server is goes in ``version_context``.
VERSION = "1.60.0"
VERSION_CONTEXT = "lockgate-embedded"
COMMITTER = "admin"
META_HEADER = "x-lakefs-meta-"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
PRESIGN_PATH = "/_lakefs/presigned"
GC_PATH = "/_lockgate/gc"  # lockgate's own: lakeFS collects garbage with a Spark job instead
OPEN_PATHS = {"/healthcheck", "/api/v1/healthcheck", PRESIGN_PATH}
MAX_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_JSON_BODY = 8 * 1024 * 1024  # lakeFS's API bodies are small; a 50 MB commit message is an attack
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.ASCII)  # 19 digits: any int64 offset
logger = logging.getLogger("lockgate.lakefs")


# An escaped '/' inside one path segment (a tag like 'release/1') must not split the route, so the
# router sees it as this private-use character and handlers turn it back.
_SLASH = "\ue000"


def _param(request: Request, name: str) -> str:
    return request.path_params[name].replace(_SLASH, "/")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def _bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"query parameter {name!r} must be true or false, got {value!r}")


def _amount(request: Request) -> int:
    raw = request.query_params.get("amount", "100")
    try:
        amount = int(raw)
    except ValueError as error:
        raise BadRequest(f"query parameter 'amount' must be an integer, got {raw!r}") from error
    if amount < -1:
        raise BadRequest(f"query parameter 'amount' must be -1 or more, got {amount}")
    return MAX_PAGE if amount in (-1, 0) or amount > MAX_PAGE else amount


def _page(items: list[Any], amount: int, key: Callable[[Any], str]) -> dict[str, Any]:
    has_more = len(items) > amount
    shown = items[:amount]
    return {
        "pagination": {
            "has_more": has_more,
            "next_offset": key(shown[-1]) if has_more and shown else "",
            "results": len(shown),
            "max_per_page": MAX_PAGE,
        },
        "results": shown,
    }


async def _body_json(request: Request, *, required: bool = True) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise PayloadTooLarge(f"request body larger than {MAX_JSON_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BODY:
            raise PayloadTooLarge(f"request body larger than {MAX_JSON_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise BadRequest("missing JSON request body")
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"request body is not valid JSON: {error}") from error
    except RecursionError:
        raise BadRequest("request body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in body or body[name] is None:
        if default is ...:
            raise BadRequest(f"missing required field {name!r} in request body")
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _metadata(body: dict[str, Any], name: str = "metadata") -> dict[str, str]:
    metadata = _field(body, name, dict, {})
    bad = [key for key, value in metadata.items() if not isinstance(value, str)]
    if bad:
        raise BadRequest(f"{name} values must be strings; not so for key(s) {', '.join(map(repr, bad))}")
    return metadata


def object_stats(
    path: str, entry: list[Any], *, user_metadata: bool = True, address: str | None = None
) -> dict:
    physical_address, checksum, size, mtime, content_type, metadata = entry
    stats = {
        "path": path,
        "path_type": "object",
        "physical_address": address or physical_address,
        "checksum": checksum,
        "size_bytes": size,
        "mtime": mtime,
        "content_type": content_type,
    }
    if user_metadata:
        stats["metadata"] = metadata or {}
    return stats


def _prefix_stats(path: str) -> dict[str, Any]:
    return {"path": path, "path_type": "common_prefix", "physical_address": "", "checksum": "", "mtime": 0}


def _diff_item(change: Change) -> dict[str, Any]:
    return {
        "type": change.kind,
        "path": change.path,
        "path_type": "object",
        "size_bytes": change.entry[2] if change.entry is not None else 0,  # lakeFS: 0 when removed
    }


def _group_diff(
    changes: Iterator[Change], *, prefix: str, after: str, delimiter: str, amount: int
) -> list[dict]:
    """Page through changes, folding paths below ``delimiter`` into common prefixes."""
    results: list[dict[str, Any]] = []
    last_prefix = None
    for change in changes:
        if change.path <= after:
            continue
        if delimiter:
            rest = change.path[len(prefix) :]
            cut = rest.find(delimiter)
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                if common == last_prefix or common <= after:
                    continue
                last_prefix = common
                results.append({"type": "prefix_changed", "path": common, "path_type": "common_prefix"})
                if len(results) > amount:
                    break
                continue
        results.append(_diff_item(change))
        if len(results) > amount:
            break
    return results


class Presigner:
    """Signs and verifies the server's own expiring URLs for object GET and PUT."""

    def __init__(self, key: bytes, ttl_seconds: int, public_url: str | None) -> None:
        self.key = key
        self.ttl = ttl_seconds
        self.public_url = public_url

    def _signature(self, method: str, address: str, expires: int) -> str:
        message = f"{method}\n{address}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(self, request: Request, method: str, address: str) -> tuple[str, int]:
        expires = int(time.time()) + self.ttl
        base = self.public_url or f"{request.url.scheme}://{request.url.netloc}"
        query = (
            f"method={method}&address={quote(address, safe='')}&expires={expires}"
            f"&signature={self._signature(method, address, expires)}"
        )
        return f"{base.rstrip('/')}{PRESIGN_PATH}?{query}", expires

    def verify(self, request: Request, method: str) -> str:
        params = request.query_params
        address, signature = params.get("address", ""), params.get("signature", "")
        try:
            expires = int(params.get("expires", ""))
        except ValueError as error:
            raise Forbidden("presigned URL is malformed: bad 'expires'") from error
        if params.get("method") != method:
            raise Forbidden(f"presigned URL was signed for {params.get('method')!r}, not {method}")
        if not hmac.compare_digest(self._signature(method, address, expires), signature):
            raise Forbidden("presigned URL signature does not match")
        if expires < time.time():
            raise Forbidden("presigned URL has expired")
        return address


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive byte range asked for, None for the whole object; 416 when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip().split(",")[0].strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise BadRequest(f"invalid Range header {header!r}: expected bytes=START-END")
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            raise BadRequest(f"invalid Range header {header!r}: end before start")
    else:
        suffix = int(last)
        start, end = max(size - suffix, 0), size - 1
        if suffix == 0:
            raise RangeNotSatisfiable(f"range {header!r} asks for no bytes", size=size)
    if start >= size:
        raise RangeNotSatisfiable(
            f"range {header!r} starts at or past the end of the object ({size} bytes)", size=size
        )
    return start, end


def _http_date(epoch: int) -> str:
    return formatdate(epoch, usegmt=True)


class LakeFSApi:
    """Request handlers; one instance per server."""

    def __init__(
        self,
        *,
        store: Store,
        blocks: BlockStore,
        presigner: Presigner,
        presign_enabled: bool,
        hook_timeout: float,
        action_environment: dict[str, str] | None = None,
        block_store_type: str,
        default_namespace_prefix: str | None = None,
        gc_batch_size: int = 1000,
        gc_pause_seconds: float = 0.01,
    ) -> None:
        self.store = store
        self.blocks = blocks
        store.block_exists = lambda address: blocks.size(address) is not None
        self.gc = GarbageCollector(store, blocks, batch_size=gc_batch_size, pause_seconds=gc_pause_seconds)
        self.presigner = presigner
        self.presign_enabled = presign_enabled
        self.block_store_type = block_store_type
        self.default_namespace_prefix = default_namespace_prefix
        self.hooks = HookRunner(
            self._read_actions, default_timeout=hook_timeout, environment=action_environment
        )

    # -- helpers -------------------------------------------------------------------------------

    def _read_actions(self, repository: str, ref: str) -> list[tuple[str, bytes]]:
        resolved = self.store.resolve(repository, ref)
        found = []
        for path, entry in self.store.iter_objects(repository, resolved, start=ACTIONS_PREFIX):
            if not path.startswith(ACTIONS_PREFIX):
                break
            if "/" in path[len(ACTIONS_PREFIX) :] or not path.endswith((".yaml", ".yml")):
                continue
            if entry[2] > MAX_ACTION_FILE:
                raise ValueError(f"invalid action file {path}: larger than {MAX_ACTION_FILE} bytes")
            found.append((path, b"".join(self.blocks.read(entry[0], 0, entry[2] - 1)) if entry[2] else b""))
        return found

    def _hooked(
        self,
        event: str,
        *,
        repository: str,
        actions_ref: str,
        record: dict[str, Any],
        operation: Callable[[], Any],
        commit_of: Callable[[Any], str] = lambda result: result,
    ) -> Any:
        """Run the ``pre-<event>`` hooks (a failure aborts with 412), the operation, then the
        ``post-<event>`` hooks, which read their actions from the commit the operation produced."""
        self.hooks.run_pre(f"pre-{event}", repository=repository, actions_ref=actions_ref, record=record)
        result = operation()
        commit_id = commit_of(result)
        self.hooks.run_post(
            f"post-{event}",
            repository=repository,
            actions_ref=commit_id,
            record={**record, "commit_id": commit_id},
        )
        return result

    def _namespace(self, repository: str) -> str:
        return self.store.get_repository(repository)["storage_namespace"]

    def _check_address(self, repository: str, address: str) -> None:
        namespace = self._namespace(repository).rstrip("/") + "/"
        if not address.startswith(namespace):
            raise BadRequest(
                f"physical address {address!r} is outside the storage namespace {namespace!r} "
                f"of repository {repository!r}"
            )
        # One spelling per block: 'ns//data/x' or 'ns/./data/x' would name the same file as
        # 'ns/data/x' behind garbage collection's back.
        rest = address.split("://", 1)[-1]
        if any(part in ("", ".", "..") for part in rest.split("/")):
            raise BadRequest(
                f"invalid physical address {address!r}: empty, '.' or '..' path segments are not allowed"
            )

    # -- setup, config, auth -------------------------------------------------------------------

    def healthcheck(self, request: Request) -> Response:
        return Response(status_code=204)

    def storage_config(self) -> dict[str, Any]:
        scheme = self.blocks.scheme
        config = {
            "blockstore_type": self.block_store_type,
            "blockstore_namespace_example": self.blocks.namespace_example(),
            "blockstore_namespace_ValidityRegex": f"^{scheme}://",
            "pre_sign_support": self.presign_enabled,
            "pre_sign_support_ui": False,
            "import_support": False,
            "import_validity_regex": "^$",
            "pre_sign_multipart_upload": False,
        }
        if self.default_namespace_prefix:
            config["default_namespace_prefix"] = self.default_namespace_prefix
        return config

    def get_config(self, request: Request) -> Response:
        return _json({"version_config": self.version_config(), "storage_config": self.storage_config()})

    @staticmethod
    def version_config() -> dict[str, Any]:
        return {"version": VERSION, "version_context": VERSION_CONTEXT, "upgrade_recommended": False}

    def get_storage_config(self, request: Request) -> Response:
        return _json(self.storage_config())

    def get_version(self, request: Request) -> Response:
        return _json(self.version_config())

    def get_current_user(self, request: Request) -> Response:
        return _json({"user": {"id": COMMITTER, "creation_date": 0}})

    # -- repositories --------------------------------------------------------------------------

    def list_repositories(self, request: Request) -> Response:
        amount = _amount(request)
        params = request.query_params
        items = self.store.list_repositories(
            prefix=params.get("prefix", ""), after=params.get("after", ""), amount=amount
        )
        return _json(_page(items, amount, key=lambda r: r["id"]))

    async def create_repository(self, request: Request) -> Response:
        body = await _body_json(request)
        name = _field(body, "name", str)
        namespace = _field(body, "storage_namespace", str)
        validate_namespace(namespace, self.blocks.scheme, self.blocks.namespace_example())
        default_branch = _field(body, "default_branch", str, "main")
        storage_id = _field(body, "storage_id", str, "")
        if storage_id:
            raise BadRequest(
                f'storage id "{storage_id}": no storage config; this server has one block store, '
                'whose storage id is "" (leave storage_id out)'
            )
        repository = await run_in_threadpool(
            self.store.create_repository,
            name,
            storage_namespace=namespace,
            default_branch=default_branch,
            read_only=bool(_field(body, "read_only", bool, False)),
        )
        if _field(body, "sample_data", bool, False):
            await run_in_threadpool(self._add_sample_data, name, default_branch)
        return _json(repository, 201)

    def _add_sample_data(self, repository: str, branch: str) -> None:
        """Commit the quickstart sample (``samples``) to the new repository, as lakeFS's
        ``sample_data`` does; a failure removes the repository again rather than leave it half made."""
        try:
            namespace = self._namespace(repository)
            for path, data in sample_files(repository):
                address = new_address(namespace)
                writer = self.blocks.writer(address)
                writer.write(data)
                size, md5 = writer.finish()
                entry = [address, md5, size, int(time.time()), DEFAULT_CONTENT_TYPE, {}]
                self.store.stage(repository, branch, path, entry, received=True)
            self.store.commit(repository, branch, message=SAMPLE_MESSAGE, metadata={}, committer=COMMITTER)
        except BaseException:
            self.store.delete_repository(repository)
            raise

    def get_repository(self, request: Request) -> Response:
        return _json(self.store.get_repository(_param(request, "repository")))

    def delete_repository(self, request: Request) -> Response:
        self.store.delete_repository(_param(request, "repository"))
        return Response(status_code=204)

    def get_repository_metadata(self, request: Request) -> Response:
        return _json(self.store.repository_metadata(_param(request, "repository")))

    # -- garbage collection --------------------------------------------------------------------

    def get_gc_rules(self, request: Request) -> Response:
        repository = _param(request, "repository")
        rules = self.store.gc_rules(repository)
        if rules is None:
            raise NotFound(f"not found: no GC rules set for repository {repository!r}")
        return _json(GcRules.parse(rules).to_json())

    async def set_gc_rules(self, request: Request) -> Response:
        rules = GcRules.parse(await _body_json(request))
        await run_in_threadpool(self.store.set_gc_rules, _param(request, "repository"), rules.to_json())
        return Response(status_code=204)

    def delete_gc_rules(self, request: Request) -> Response:
        self.store.set_gc_rules(_param(request, "repository"), None)
        return Response(status_code=204)

    async def run_gc(self, request: Request) -> Response:
        """lockgate's own endpoint (lakeFS runs GC as a Spark job): collect one repository's garbage.

        Query: ``dry_run`` (list what would go), ``min_age_hours`` (keep blocks written more recently;
        default 6), ``addresses`` (include the deleted addresses in the answer; default true).
        """
        repository = _param(request, "repository")
        raw_age = request.query_params.get("min_age_hours", str(DEFAULT_MIN_AGE_HOURS))
        try:
            min_age_hours = float(raw_age)
        except ValueError as error:
            raise BadRequest(f"query parameter 'min_age_hours' must be a number, got {raw_age!r}") from error
        if not 0 <= min_age_hours <= 24 * 365:
            raise BadRequest(f"query parameter 'min_age_hours' must be between 0 and 8760, got {raw_age}")
        dry_run = _bool(request, "dry_run")
        result = await run_in_threadpool(
            self.gc.run, repository, dry_run=dry_run, min_age_seconds=min_age_hours * 3600
        )
        return _json(result.to_json(addresses=_bool(request, "addresses", True)))

    # -- branches ------------------------------------------------------------------------------

    def list_branches(self, request: Request) -> Response:
        return self._list_refs(request, "branches", show_hidden=_bool(request, "show_hidden"))

    def list_tags(self, request: Request) -> Response:
        return self._list_refs(request, "tags")

    def _list_refs(self, request: Request, table: str, *, show_hidden: bool = True) -> Response:
        amount = _amount(request)
        params = request.query_params
        items = self.store.list_refs(
            _param(request, "repository"),
            table,
            prefix=params.get("prefix", ""),
            after=params.get("after", ""),
            amount=amount,
            show_hidden=show_hidden,
        )
        return _json(_page(items, amount, key=lambda r: r["id"]))

    async def create_branch(self, request: Request) -> Response:
        repository = _param(request, "repository")
        body = await _body_json(request)
        name, source = _field(body, "name", str), _field(body, "source", str)
        force, hidden = bool(_field(body, "force", bool, False)), bool(_field(body, "hidden", bool, False))

        def create() -> str:
            commit_id = self.store.resolve(repository, source).commit_id
            return self._hooked(
                "create-branch",
                repository=repository,
                actions_ref=source,
                record={"branch_id": name, "source_ref": source, "commit_id": commit_id},
                operation=lambda: self.store.create_branch(
                    repository, name, source=source, force=force, hidden=hidden
                ),
            )

        commit_id = await run_in_threadpool(create)
        return PlainTextResponse(commit_id, status_code=201, media_type="text/html")

    def get_branch(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        return _json({"id": branch, "commit_id": self.store.branch_commit(repository, branch)})

    def delete_branch(self, request: Request) -> Response:
        self.store.delete_branch(_param(request, "repository"), _param(request, "branch"))
        return Response(status_code=204)

    async def reset_branch(self, request: Request) -> Response:
        body = await _body_json(request)
        kind = _field(body, "type", str)
        path = _field(body, "path", str, "")
        if kind in ("object", "common_prefix"):
            validate_path(path)
        await run_in_threadpool(
            self.store.reset, _param(request, "repository"), _param(request, "branch"), kind=kind, path=path
        )
        return Response(status_code=204)

    def hard_reset_branch(self, request: Request) -> Response:
        ref = request.query_params.get("ref")
        if not ref:
            raise BadRequest("missing query parameter 'ref'")
        self.store.hard_reset_branch(_param(request, "repository"), _param(request, "branch"), ref=ref)
        return Response(status_code=204)

    async def revert_branch(self, request: Request) -> Response:
        body = await _body_json(request)
        await run_in_threadpool(
            self.store.revert,
            _param(request, "repository"),
            _param(request, "branch"),
            ref=_field(body, "ref", str),
            parent_number=_field(body, "parent_number", int, 0),
            committer=COMMITTER,
            allow_empty=bool(body.get("allow_empty")),
        )
        return Response(status_code=204)

    async def cherry_pick(self, request: Request) -> Response:
        body = await _body_json(request)
        commit = await run_in_threadpool(
            self.store.cherry_pick,
            _param(request, "repository"),
            _param(request, "branch"),
            ref=_field(body, "ref", str),
            parent_number=_field(body, "parent_number", int, 0),
            committer=COMMITTER,
        )
        return _json(commit, 201)

    # -- tags ----------------------------------------------------------------------------------

    async def create_tag(self, request: Request) -> Response:
        repository = _param(request, "repository")
        body = await _body_json(request)
        name, ref = _field(body, "id", str), _field(body, "ref", str)
        force = bool(body.get("force"))

        def create() -> str:
            commit_id = self.store.resolve(repository, ref).commit_id
            return self._hooked(
                "create-tag",
                repository=repository,
                actions_ref=ref,
                record={"tag_id": name, "source_ref": ref, "commit_id": commit_id},
                operation=lambda: self.store.create_tag(repository, name, ref=ref, force=force),
            )

        commit_id = await run_in_threadpool(create)
        return _json({"id": name, "commit_id": commit_id}, 201)

    def get_tag(self, request: Request) -> Response:
        repository, tag = _param(request, "repository"), _param(request, "tag")
        return _json({"id": tag, "commit_id": self.store.get_tag(repository, tag)})

    def delete_tag(self, request: Request) -> Response:
        self.store.delete_tag(_param(request, "repository"), _param(request, "tag"))
        return Response(status_code=204)

    # -- commits -------------------------------------------------------------------------------

    async def commit(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        body = await _body_json(request)
        message = _field(body, "message", str)
        metadata = _metadata(body)
        allow_empty = bool(body.get("allow_empty"))
        date = _field(body, "date", int, None)
        if date is not None and not 0 <= date <= MAX_DATE:
            raise BadRequest(f"invalid commit date {date}: seconds since 1970 up to {MAX_DATE} (year 9999)")

        def commit() -> dict[str, Any]:
            self.store.branch_commit(repository, branch)
            record = {
                "branch_id": branch,
                "source_ref": branch,
                "commit_message": message,
                "committer": COMMITTER,
                "commit_metadata": metadata,
            }
            return self._hooked(
                "commit",
                repository=repository,
                actions_ref=branch,
                record=record,
                operation=lambda: self.store.commit(
                    repository,
                    branch,
                    message=message,
                    metadata=metadata,
                    committer=COMMITTER,
                    allow_empty=allow_empty,
                    date=date,
                ),
                commit_of=lambda result: result["id"],
            )

        return _json(await run_in_threadpool(commit), 201)

    def get_commit(self, request: Request) -> Response:
        return _json(self.store.get_commit(_param(request, "repository"), _param(request, "commitId")))

    def log_commits(self, request: Request) -> Response:
        repository, ref = _param(request, "repository"), _param(request, "ref")
        params = request.query_params
        amount = _amount(request)
        objects = params.getlist("objects")
        prefixes = params.getlist("prefixes")
        since = None
        if params.get("since"):
            try:
                since = int(datetime.fromisoformat(params["since"].replace("Z", "+00:00")).timestamp())
            except ValueError as error:
                raise BadRequest(
                    f"query parameter 'since' is not an RFC 3339 date-time: {params['since']!r}"
                ) from error
        after = params.get("after", "")
        # limit=true: at most 'amount' commits and no next page (lakeFS's "no further indication").
        limit = _bool(request, "limit")
        results: list[dict[str, Any]] = []
        skipping = bool(after)
        for commit in self.store.log(
            repository,
            ref,
            first_parent=_bool(request, "first_parent"),
            stop_at=params.get("stop_at") or None,
            since=since,
        ):
            if skipping:
                skipping = commit["id"] != after
                continue
            if (objects or prefixes) and not self._touches(repository, commit, objects, prefixes):
                continue
            results.append(commit)
            if len(results) > amount or (limit and len(results) == amount):
                break
        return _json(_page(results, amount, key=lambda c: c["id"]))

    def _touches(
        self, repository: str, commit: dict[str, Any], objects: list[str], prefixes: list[str]
    ) -> bool:
        if not commit["parents"]:
            return False
        changed = self.store.diff_commits(repository, commit["parents"][0], commit["id"])
        return any(change.path in objects or change.path.startswith(tuple(prefixes)) for change in changed)

    # -- diff and merge ------------------------------------------------------------------------

    def diff_branch(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        params = request.query_params
        amount = _amount(request)
        prefix, after = params.get("prefix", ""), params.get("after", "")
        changes = self.store.uncommitted(repository, branch, prefix=prefix, after=after)
        results = _group_diff(
            changes, prefix=prefix, after=after, delimiter=params.get("delimiter", ""), amount=amount
        )
        return _json(_page(results, amount, key=lambda d: d["path"]))

    def diff_refs(self, request: Request) -> Response:
        repository = _param(request, "repository")
        params = request.query_params
        kind = params.get("type", "three_dot")
        if kind not in ("two_dot", "three_dot"):
            raise BadRequest(f"diff type must be 'two_dot' or 'three_dot', got {kind!r}")
        left = self.store.resolve(repository, _param(request, "leftRef")).commit_id
        right = self.store.resolve(repository, _param(request, "rightRef")).commit_id
        if kind == "three_dot":
            left = self.store.merge_base(repository, left, right)
        amount = _amount(request)
        prefix, after = params.get("prefix", ""), params.get("after", "")
        changes = self.store.diff_commits(repository, left, right, prefix=prefix)
        results = _group_diff(
            changes, prefix=prefix, after=after, delimiter=params.get("delimiter", ""), amount=amount
        )
        return _json(_page(results, amount, key=lambda d: d["path"]))

    def find_merge_base(self, request: Request) -> Response:
        repository = _param(request, "repository")
        source = self.store.resolve(repository, _param(request, "sourceRef")).commit_id
        destination = self.store.resolve(repository, _param(request, "destinationBranch")).commit_id
        return _json(
            {
                "source_commit_id": source,
                "destination_commit_id": destination,
                "base_commit_id": self.store.merge_base(repository, source, destination),
            }
        )

    async def merge(self, request: Request) -> Response:
        repository = _param(request, "repository")
        source_ref = _param(request, "sourceRef")
        destination = _param(request, "destinationBranch")
        body = await _body_json(request, required=False)
        message = _field(body, "message", str, "") or None
        metadata = _metadata(body)

        def merge() -> str:
            # The source is resolved once: the pre-merge hooks judge that commit (lakeFS sends its ID
            # as ``source_ref``) and exactly that commit is merged, whatever lands on the branch while
            # the hooks run.
            source_commit = self.store.resolve(repository, source_ref).commit_id
            self.store.branch_commit(repository, destination)
            message_text = message or f"Merge '{source_ref}' into '{destination}'"
            record = {
                "branch_id": destination,
                "source_ref": source_commit,
                "commit_message": message_text,
                "committer": COMMITTER,
                "commit_metadata": metadata,
            }
            return self._hooked(
                "merge",
                repository=repository,
                actions_ref=source_commit,
                record=record,
                operation=lambda: self.store.merge(
                    repository,
                    source_ref=source_commit,
                    destination=destination,
                    message=message_text,
                    metadata=metadata,
                    committer=COMMITTER,
                    strategy=_field(body, "strategy", str, None),
                    allow_empty=bool(body.get("allow_empty")),
                    squash=bool(body.get("squash_merge")),
                ),
            )

        return _json({"reference": await run_in_threadpool(merge)})

    # -- objects: read -------------------------------------------------------------------------

    def stat_object(self, request: Request) -> Response:
        repository, ref = _param(request, "repository"), _param(request, "ref")
        path = validate_path(request.query_params.get("path"))
        entry = self.store.get_entry(repository, ref, path)
        stats = object_stats(path, entry, user_metadata=_bool(request, "user_metadata", True))
        if _bool(request, "presign") and self.presign_enabled:
            url, expires = self.presigner.url(request, "GET", entry[0])
            stats["physical_address"] = url
            stats["physical_address_expiry"] = expires
        return _json(stats)

    def list_objects(self, request: Request) -> Response:
        repository, ref = _param(request, "repository"), _param(request, "ref")
        params = request.query_params
        amount = _amount(request)
        prefix, after, delimiter = (
            params.get("prefix", ""),
            params.get("after", ""),
            params.get("delimiter", ""),
        )
        user_metadata = _bool(request, "user_metadata", True)
        resolved = self.store.resolve(repository, ref)
        results: list[dict[str, Any]] = []
        start = max(prefix, after)
        while len(results) <= amount:
            restart = None
            for path, entry in self.store.iter_objects(repository, resolved, start=start):
                if not path.startswith(prefix):
                    break
                if path <= after:
                    continue
                if delimiter:
                    cut = path.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = path[: cut + len(delimiter)]
                        if common > after:
                            results.append(_prefix_stats(common))
                        # Jump past everything under this prefix instead of walking it.
                        restart = common + "\U0010ffff"
                        break
                results.append(object_stats(path, entry, user_metadata=user_metadata))
                if len(results) > amount:
                    break
            if restart is None:
                break
            start = restart
        return _json(_page(results, amount, key=lambda o: o["path"]))

    def _download(self, request: Request, address: str, entry: list[Any], *, with_body: bool) -> Response:
        size, checksum, mtime = entry[2], entry[1], entry[3]
        headers = {
            "ETag": f'"{checksum}"',
            "Last-Modified": _http_date(mtime),
            "Accept-Ranges": "bytes",
            "Content-Type": entry[4] or DEFAULT_CONTENT_TYPE,
        }
        if_none_match = request.headers.get("if-none-match")
        if with_body and checksum and if_none_match and if_none_match.strip('" ') == checksum:
            return Response(status_code=304, headers=headers)
        span = _parse_range(request.headers.get("range"), size)
        status = 200
        start, end = 0, size - 1
        if span is not None:
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        if not with_body:
            if self.blocks.size(address) is None:
                raise Gone(f"resource expired: the data of this object was removed ({address!r})")
            return Response(status_code=status, headers=headers)
        if end < start:  # an empty object: still 410 when its block is gone
            if self.blocks.size(address) is None:
                raise Gone(f"resource expired: the data of this object was removed ({address!r})")
            return Response(b"", status_code=status, headers=headers)
        chunks = self.blocks.read(address, start, end)
        first = next(chunks, b"")  # opens the block: one that is gone is a 410 before any header goes out

        def body() -> Iterator[bytes]:
            yield first
            yield from chunks

        return StreamingResponse(body(), status_code=status, headers=headers)

    def get_object(self, request: Request) -> Response:
        repository, ref = _param(request, "repository"), _param(request, "ref")
        path = validate_path(request.query_params.get("path"))
        entry = self.store.get_entry(repository, ref, path)
        if _bool(request, "presign") and self.presign_enabled:
            url, _ = self.presigner.url(request, "GET", entry[0])
            return Response(status_code=302, headers={"Location": url})
        return self._download(request, entry[0], entry, with_body=True)

    def head_object(self, request: Request) -> Response:
        repository, ref = _param(request, "repository"), _param(request, "ref")
        try:
            path = validate_path(request.query_params.get("path"))
            entry = self.store.get_entry(repository, ref, path)
            return self._download(request, entry[0], entry, with_body=False)
        except RangeNotSatisfiable as error:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{error.size}"})
        except ApiError as error:
            return Response(status_code=error.status)

    # -- objects: write ------------------------------------------------------------------------

    async def _receive(
        self, request: Request, address: str, *, multipart: bool
    ) -> tuple[int, str, str | None]:
        """Stream the request body (or its 'content' part) into a new block; return size, MD5, part type."""
        writer = self.blocks.writer(address)
        part_type: str | None = None
        try:
            if multipart:
                part_type = await self._receive_multipart(request, writer)
            else:
                async for chunk in request.stream():
                    writer.write(chunk)
            expected = request.headers.get("content-length")
            if not multipart and expected is not None and int(expected) != writer.size:
                raise BadRequest(f"upload truncated: got {writer.size} of {expected} bytes")
        except ClientDisconnect:
            writer.abort()
            raise BadRequest(
                "upload interrupted: the client disconnected before sending the whole body"
            ) from None
        except BaseException:
            writer.abort()
            raise
        size, md5 = await run_in_threadpool(writer.finish)
        return size, md5, part_type

    @staticmethod
    async def _receive_multipart(request: Request, writer) -> str | None:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("multipart upload without a boundary in Content-Type")
        state: dict[str, Any] = {
            "headers": {},
            "field": b"",
            "value": b"",
            "in_content": False,
            "found": False,
        }

        def on_part_begin() -> None:
            state["headers"] = {}

        def on_header_field(data: bytes, start: int, end: int) -> None:
            state["field"] += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            state["value"] += data[start:end]

        def on_header_end() -> None:
            state["headers"][state["field"].decode("latin-1").lower()] = state["value"].decode("latin-1")
            state["field"], state["value"] = b"", b""

        def on_headers_finished() -> None:
            _, disposition = parse_options_header(state["headers"].get("content-disposition", ""))
            state["in_content"] = disposition.get(b"name") == b"content" and not state["found"]
            if state["in_content"]:
                state["found"] = True
                state["part_type"] = state["headers"].get("content-type")

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if state["in_content"]:
                writer.write(data[start:end])

        def on_part_end() -> None:
            state["in_content"] = False

        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
                "on_part_end": on_part_end,
            },
        )
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if parser.state != MultipartState.END:
            raise BadRequest(
                "multipart upload is truncated (no closing boundary): nothing was stored, send it again"
            )
        if not state["found"]:
            raise BadRequest("multipart upload has no part named 'content'")
        return state.get("part_type")

    def _conditional(self, request: Request) -> bool:
        value = request.headers.get("if-none-match")
        if value is None:
            return False
        if value.strip() != "*":
            raise BadRequest(f"If-None-Match supports only '*', got {value!r}")
        return True

    async def upload_object(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        path = validate_path(request.query_params.get("path"))
        if_absent = self._conditional(request)

        def prepare() -> str:
            self.store.branch_commit(repository, branch)
            if if_absent:
                try:
                    self.store.get_entry(
                        repository, Resolved(self.store.branch_commit(repository, branch), branch), path
                    )
                except NotFound:
                    pass
                else:
                    raise PreconditionFailed(f"path already exists: {path!r} (If-None-Match: *)")
            return self._namespace(repository)

        namespace = await run_in_threadpool(prepare)
        content_type, _ = parse_options_header(request.headers.get("content-type", ""))
        multipart = content_type == b"multipart/form-data"
        metadata = {
            key[len(META_HEADER) :]: value
            for key, value in request.headers.items()
            if key.startswith(META_HEADER)
        }
        address = new_address(namespace)
        size, md5, part_type = await self._receive(request, address, multipart=multipart)
        object_type = (
            part_type if multipart else request.headers.get("content-type")
        ) or DEFAULT_CONTENT_TYPE
        entry = [address, md5, size, int(time.time()), object_type, metadata]
        await run_in_threadpool(
            self.store.stage, repository, branch, path, entry, if_absent=if_absent, received=True
        )
        return _json(object_stats(path, entry), 201)

    async def stage_object(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        path = validate_path(request.query_params.get("path"))
        body = await _body_json(request)
        address = _field(body, "physical_address", str)

        def stage() -> list[Any]:
            self._check_address(repository, address)
            entry = self._linked_entry(address, body, size_field="size_bytes", metadata_field="metadata")
            self.store.stage(repository, branch, path, entry)
            return entry

        return _json(object_stats(path, await run_in_threadpool(stage)), 201)

    def _linked_entry(
        self, address: str, body: dict[str, Any], *, size_field: str, metadata_field: str
    ) -> list:
        declared = _field(body, size_field, int)
        actual = self.blocks.size(address)
        if actual is None:
            raise BadRequest(f"no data at physical address {address!r}: upload it before linking")
        if actual != declared:
            raise BadRequest(f"size mismatch at {address!r}: declared {declared} bytes, stored {actual}")
        checksum = _field(body, "checksum", str).strip().strip('"')  # as lakeFS: quotes and spaces go
        if not checksum:
            raise BadRequest("checksum is required")
        received = self.store.block(address)
        if received is not None and received[1] != checksum:
            raise BadRequest(
                f"checksum mismatch at {address!r}: declared {checksum!r}, the bytes received have MD5 "
                f"{received[1]!r}; upload the object again"
            )
        return [
            address,
            checksum,
            actual,
            _field(body, "mtime", int, None) or int(time.time()),
            _field(body, "content_type", str, None) or DEFAULT_CONTENT_TYPE,
            _metadata(body, metadata_field),
        ]

    def delete_object(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        path = validate_path(request.query_params.get("path"))
        self.store.stage(repository, branch, path, None)
        return Response(status_code=204)

    async def delete_objects(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        body = await _body_json(request)
        paths = _field(body, "paths", list)
        if len(paths) > MAX_PAGE:
            raise BadRequest(f"too many paths ({len(paths)}): delete at most {MAX_PAGE} per request")

        def delete() -> list[dict[str, Any]]:
            self.store.branch_commit(repository, branch)
            errors = []
            for path in paths:
                try:
                    self.store.stage(repository, branch, validate_path(path), None)
                except NotFound:
                    continue  # lakeFS treats deleting a missing object in bulk as done
                except ApiError as error:
                    errors.append({"status_code": error.status, "message": error.message, "path": path})
            return errors

        return _json({"errors": await run_in_threadpool(delete)})

    async def copy_object(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        destination = validate_path(request.query_params.get("dest_path"))
        body = await _body_json(request)
        source_path = validate_path(_field(body, "src_path", str))
        source_ref = _field(body, "src_ref", str, "") or branch

        def copy() -> list[Any]:
            source = self.store.get_entry(repository, source_ref, source_path)
            # Blocks are immutable and never reused for other bytes, so the copy may share them.
            entry = [source[0], source[1], source[2], int(time.time()), source[4], dict(source[5] or {})]
            self.store.stage(repository, branch, destination, entry)
            return entry

        return _json(object_stats(destination, await run_in_threadpool(copy)), 201)

    async def update_user_metadata(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        path = validate_path(request.query_params.get("path"))
        body = await _body_json(request)
        metadata = _metadata(body, "set")

        def update() -> None:
            entry = list(self.store.get_entry(repository, branch, path))
            entry[5] = metadata
            self.store.stage(repository, branch, path, entry)

        await run_in_threadpool(update)
        return Response(status_code=201)

    # -- staging (presigned uploads) -----------------------------------------------------------

    def get_physical_address(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        validate_path(request.query_params.get("path"))
        self.store.branch_commit(repository, branch)
        address = new_address(self._namespace(repository))
        location: dict[str, Any] = {"physical_address": address}
        if _bool(request, "presign"):
            if not self.presign_enabled:
                raise BadRequest("presigned URLs are disabled on this server")
            url, expires = self.presigner.url(request, "PUT", address)
            location.update(presigned_url=url, presigned_url_expiry=expires)
        return _json(location)

    async def link_physical_address(self, request: Request) -> Response:
        repository, branch = _param(request, "repository"), _param(request, "branch")
        path = validate_path(request.query_params.get("path"))
        if_absent = self._conditional(request)
        body = await _body_json(request)
        staging = _field(body, "staging", dict)
        address = _field(staging, "physical_address", str)

        def link() -> list[Any]:
            self._check_address(repository, address)
            entry = self._linked_entry(address, body, size_field="size_bytes", metadata_field="user_metadata")
            self.store.stage(repository, branch, path, entry, if_absent=if_absent)
            return entry

        return _json(object_stats(path, await run_in_threadpool(link)))

    async def presigned(self, request: Request) -> Response:
        if request.method == "PUT":
            address = self.presigner.verify(request, "PUT")
            if await run_in_threadpool(self.blocks.size, address) is not None:
                raise Forbidden(f"physical address {address!r} is already written; ask for a new one")
            size, md5, _ = await self._receive(request, address, multipart=False)
            await run_in_threadpool(self.store.record_block, address, size=size, checksum=md5)
            return Response(status_code=200, headers={"ETag": f'"{md5}"'})
        address = self.presigner.verify(request, "GET")
        size = await run_in_threadpool(self.blocks.size, address)
        if size is None:
            raise NotFound(f"no data at {address!r}")
        entry = [address, "", size, int(time.time()), DEFAULT_CONTENT_TYPE, {}]
        return self._download(request, address, entry, with_body=request.method == "GET")

    # -- routing -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        repo = "/repositories/{repository}"
        branch = repo + "/branches/{branch}"
        table = [
            ("/healthcheck", self.healthcheck, ["GET"]),
            ("/config", self.get_config, ["GET"]),
            ("/config/storage", self.get_storage_config, ["GET"]),
            ("/config/version", self.get_version, ["GET"]),
            ("/user", self.get_current_user, ["GET"]),
            ("/repositories", self.list_repositories, ["GET"]),
            ("/repositories", self.create_repository, ["POST"]),
            (repo, self.get_repository, ["GET"]),
            (repo, self.delete_repository, ["DELETE"]),
            (repo + "/metadata", self.get_repository_metadata, ["GET"]),
            (repo + "/settings/gc_rules", self.get_gc_rules, ["GET"]),
            (repo + "/settings/gc_rules", self.set_gc_rules, ["PUT"]),
            (repo + "/settings/gc_rules", self.delete_gc_rules, ["DELETE"]),
            (repo + "/tags", self.list_tags, ["GET"]),
            (repo + "/tags", self.create_tag, ["POST"]),
            (repo + "/tags/{tag}", self.get_tag, ["GET"]),
            (repo + "/tags/{tag}", self.delete_tag, ["DELETE"]),
            (repo + "/branches", self.list_branches, ["GET"]),
            (repo + "/branches", self.create_branch, ["POST"]),
            (repo + "/refs/{ref}/commits", self.log_commits, ["GET"]),
            (repo + "/commits/{commitId}", self.get_commit, ["GET"]),
            (repo + "/refs/{sourceRef}/merge/{destinationBranch}", self.merge, ["POST"]),
            (repo + "/refs/{sourceRef}/merge/{destinationBranch}", self.find_merge_base, ["GET"]),
            (repo + "/refs/{leftRef}/diff/{rightRef}", self.diff_refs, ["GET"]),
            (repo + "/refs/{ref}/objects", self.get_object, ["GET"]),
            (repo + "/refs/{ref}/objects", self.head_object, ["HEAD"]),
            (repo + "/refs/{ref}/objects/stat", self.stat_object, ["GET"]),
            (repo + "/refs/{ref}/objects/ls", self.list_objects, ["GET"]),
            (branch, self.get_branch, ["GET"]),
            (branch, self.delete_branch, ["DELETE"]),
            (branch, self.reset_branch, ["PUT"]),
            (branch + "/hard_reset", self.hard_reset_branch, ["PUT"]),
            (branch + "/revert", self.revert_branch, ["POST"]),
            (branch + "/cherry-pick", self.cherry_pick, ["POST"]),
            (branch + "/commits", self.commit, ["POST"]),
            (branch + "/diff", self.diff_branch, ["GET"]),
            (branch + "/objects", self.upload_object, ["POST"]),
            (branch + "/objects", self.stage_object, ["PUT"]),
            (branch + "/objects", self.delete_object, ["DELETE"]),
            (branch + "/objects/delete", self.delete_objects, ["POST"]),
            (branch + "/objects/copy", self.copy_object, ["POST"]),
            (branch + "/objects/stat/user_metadata", self.update_user_metadata, ["PUT"]),
            (branch + "/staging/backing", self.get_physical_address, ["GET"]),
            (branch + "/staging/backing", self.link_physical_address, ["PUT"]),
        ]
        return [Route(path, endpoint, methods=methods) for path, endpoint, methods in table]


class EncodedSlashMiddleware:
    """Route on the raw path so that ``%2F`` inside a segment stays inside that segment."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and b"%2f" in raw.lower():
            segments = raw.split(b"?", 1)[0].decode("ascii", "replace").split("/")
            path = "/".join(unquote(segment).replace("/", _SLASH) for segment in segments)
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)


class BasicAuthMiddleware:
    """Require HTTP Basic credentials on every path but the health check and presigned URLs."""

    def __init__(self, app, *, access_key_id: str, secret_access_key: str) -> None:
        self.app = app
        self.expected = f"{access_key_id}:{secret_access_key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"message": "error authenticating request: missing or wrong credentials"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Basic realm="lakefs"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})

    def _authorized(self, scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                try:
                    return hmac.compare_digest(base64.b64decode(token.strip(), validate=True), self.expected)
                except (binascii.Error, ValueError):
                    return False
        return False


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    headers = {}
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _http_error(request: Request, error: Exception) -> Response:
    status = getattr(error, "status_code", 404)
    detail = getattr(error, "detail", "") or "not found"
    return JSONResponse({"message": f"{detail}: {request.method} {request.url.path}"}, status_code=status)


async def _unexpected(request: Request, error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"message": f"internal error: {type(error).__name__}: {error}"}, status_code=500)


def build_app(api: LakeFSApi, *, access_key_id: str, secret_access_key: str):
    """The ASGI app: the API under ``/api/v1`` (and at the root, as lakeFS clients may omit it)."""
    routes = api.routes()
    app = Starlette(
        routes=[
            Route(PRESIGN_PATH, api.presigned, methods=["GET", "PUT", "HEAD"]),
            Route(GC_PATH + "/{repository}", api.run_gc, methods=["POST"]),
            Mount("/api/v1", routes=routes),
            *routes,
        ],
        exception_handlers={ApiError: _api_error, 404: _http_error, 405: _http_error, Exception: _unexpected},
    )
    return BasicAuthMiddleware(
        EncodedSlashMiddleware(app), access_key_id=access_key_id, secret_access_key=secret_access_key
    )


__all__ = ["LakeFSApi", "Presigner", "build_app", "object_stats", "Unauthorized"]
