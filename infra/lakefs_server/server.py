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


def _protocol():
    """uvicorn's HTTP protocol, answering a request it cannot parse as lakeFS does: a JSON error body.

    A body longer than its declared ``Content-Length`` shows up here (the extra bytes do not parse as
    a next request); the upload it belonged to is dropped unpublished, never stored half-written.
    """
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    class LakeFSHttpProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"message": MALFORMED}).encode()
            head = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                head.extend([name, b": ", value, b"\r\n"])
            head.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(head))
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
        http=_protocol(),
    )
