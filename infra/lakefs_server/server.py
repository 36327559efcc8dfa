"""Assemble and run the embedded lakeFS-API server from ``EmbeddedLakeFSSettings``."""

from __future__ import annotations

import json
import logging
import os
import secrets
import string
from pathlib import Path

from infra.settings import EmbeddedLakeFSSettings

from .app import LakeFSApi, Presigner, build_app
from .blockstore import LocalBlockStore, S3BlockStore
from .launcher import CREDENTIALS_FILE
from .store import Store

logger = logging.getLogger("lockgate.lakefs")
_KEY_ALPHABET = string.ascii_uppercase + string.digits


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def load_or_create_credentials(settings: EmbeddedLakeFSSettings) -> tuple[str, str]:
    """Credentials from settings, else those stored in the data dir, else a new pair stored there."""
    if settings.access_key_id and settings.secret_access_key:
        return settings.access_key_id, settings.secret_access_key
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        return stored["access_key_id"], stored["secret_access_key"]
    access_key_id = "AKIALG" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(14))
    secret = secrets.token_urlsafe(30)
    _write_private(path, json.dumps({"access_key_id": access_key_id, "secret_access_key": secret}).encode())
    logger.warning("generated credentials for the embedded lakeFS server; stored owner-only in %s", path)
    return access_key_id, secret


def _presign_key(data_dir: Path) -> bytes:
    path = data_dir / "presign.key"
    if not path.exists():
        _write_private(path, secrets.token_bytes(32))
    return path.read_bytes()


def create_server_app(settings: EmbeddedLakeFSSettings):
    """Build the ASGI app (and its storage) for ``settings``; no socket is opened."""
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # owner-only whatever the umask, also for a directory made before
    access_key_id, secret = load_or_create_credentials(settings)
    if settings.block_store == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)
        namespace = f"s3://{settings.s3_bucket}/{settings.s3_prefix.strip('/')}".rstrip("/")
        blocks = S3BlockStore(client, data_dir / "tmp", namespace)
        default_prefix = namespace
    else:
        blocks = LocalBlockStore(data_dir / "blocks", data_dir / "tmp")
        default_prefix = "local://"
    blocks.clear_tmp()
    api = LakeFSApi(
        store=Store(data_dir / "metadata.db"),
        blocks=blocks,
        presigner=Presigner(_presign_key(data_dir), settings.presign_ttl_seconds, settings.public_url),
        presign_enabled=settings.presign,
        hook_timeout=settings.hook_timeout_seconds,
        action_environment=settings.action_environment(),
        block_store_type=settings.block_store,
        default_namespace_prefix=default_prefix,
        gc_batch_size=settings.gc_batch_size,
        gc_pause_seconds=settings.gc_pause_seconds,
    )
    return build_app(api, access_key_id=access_key_id, secret_access_key=secret)


MALFORMED = (
    "invalid HTTP request: malformed, or the body is longer than its Content-Length; "
    "nothing was stored, send the request again"
)


def _protocol(*, max_header_bytes: int, header_timeout_s: float):
    """uvicorn's HTTP protocol, answering a request it cannot parse as lakeFS does: a JSON error body;
    and bounding what an unauthenticated client can make it hold: a request head longer than
    ``max_header_bytes`` is answered 431, one not complete ``header_timeout_s`` after the connection or
    the request began is answered 408, and the connection is closed either way.

    A body longer than its declared ``Content-Length`` shows up here (the extra bytes do not parse as
    a next request); the upload it belonged to is dropped unpublished, never stored half-written.
    """
    import asyncio

    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    def answer(status: int, message: str) -> bytes:
        body = json.dumps({"message": message}).encode()
        return b"".join(
            [
                STATUS_LINE[status],
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )

    class HeadTooLarge(Exception):
        pass

    class LakeFSHttpProtocol(HttpToolsProtocol):
        head_bytes = 0
        head_too_large = False
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.head_bytes = 0
            if self.head_timer is None:
                self._start_head_timer()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._start_head_timer()  # the next request on a kept-alive connection has its own

        def _count(self, size: int) -> None:
            self.head_bytes += size
            if self.head_bytes > max_header_bytes:
                self.head_too_large = True
                raise HeadTooLarge  # the parser turns this into an error; send_400_response answers

        def _start_head_timer(self) -> None:
            self._stop_head_timer()
            self.head_timer = asyncio.get_running_loop().call_later(header_timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_timed_out(self) -> None:
            self.head_timer = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return  # a request is being served: its body and response are not the head's business
            self.transport.write(
                answer(408, f"the request head was not complete within {header_timeout_s:g} s; send it again")
            )
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self._stop_head_timer()
            if self.head_too_large:
                message = (
                    f"request head larger than {max_header_bytes} bytes (request line and headers); "
                    "nothing was read, send fewer or shorter headers"
                )
                self.transport.write(answer(431, message))
            else:
                self.transport.write(answer(400, MALFORMED))
            self.transport.close()

    return LakeFSHttpProtocol


def run_server(settings: EmbeddedLakeFSSettings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_server_app(settings)
    logger.info(
        "embedded lakeFS API on http://%s:%s/api/v1 (data in %s, %s block store)",
        settings.host,
        settings.port,
        settings.data_dir,
        settings.block_store,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        http=_protocol(
            max_header_bytes=settings.max_header_bytes, header_timeout_s=settings.header_timeout_seconds
        ),
    )
