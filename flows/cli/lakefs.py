"""``lockgate lakefs serve``: the embedded lakeFS-API server in the foreground."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import console, lakefs_app
from flows.cli.options import settings_with


class BlockStore(enum.StrEnum):
    """Where the embedded server keeps object bytes."""

    local = "local"
    s3 = "s3"


@lakefs_app.command("serve")
def serve_lakefs(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on. (env LOCKGATE_EMBEDDED_LAKEFS_HOST; default 127.0.0.1)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="TCP port; 0 picks a free one. (env LOCKGATE_EMBEDDED_LAKEFS_PORT; default 8000)",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help=(
                "Directory for the SQLite metadata, local blocks and credentials.json. "
                "(env LOCKGATE_EMBEDDED_LAKEFS_DATA_DIR; default .lockgate/lakefs)"
            ),
        ),
    ] = None,
    access_key_id: Annotated[
        str | None,
        typer.Option(
            help=(
                "Access key ID clients must present; with --secret-access-key. When both are unset a pair "
                "is generated on first start and stored owner-only in DATA_DIR/credentials.json. "
                "(env LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID)"
            )
        ),
    ] = None,
    secret_access_key: Annotated[
        str | None,
        typer.Option(
            help=(
                "Secret access key (8+ characters). Prefer the environment variable: command lines are "
                "visible to other users. (env LOCKGATE_EMBEDDED_LAKEFS_SECRET_ACCESS_KEY)"
            )
        ),
    ] = None,
    block_store: Annotated[
        BlockStore | None,
        typer.Option(
            case_sensitive=False,
            help=(
                "Where object bytes live: 'local' (DATA_DIR/blocks) or 's3' (needs --s3-bucket). "
                "(env LOCKGATE_EMBEDDED_LAKEFS_BLOCK_STORE; default local)"
            ),
        ),
    ] = None,
    s3_bucket: Annotated[
        str | None,
        typer.Option(help="Bucket of the S3 block store. (env LOCKGATE_EMBEDDED_LAKEFS_S3_BUCKET)"),
    ] = None,
    s3_prefix: Annotated[
        str | None,
        typer.Option(
            help="Key prefix inside the S3 bucket. (env LOCKGATE_EMBEDDED_LAKEFS_S3_PREFIX; default lakefs)"
        ),
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "S3-compatible endpoint (MinIO, moto); AWS when unset. AWS credentials come from the usual "
                "boto3 sources. (env LOCKGATE_EMBEDDED_LAKEFS_S3_ENDPOINT_URL)"
            )
        ),
    ] = None,
    presign: Annotated[
        bool | None,
        typer.Option(
            "--presign/--no-presign",
            help="Offer presigned upload/download URLs to clients. (env LOCKGATE_EMBEDDED_LAKEFS_PRESIGN)",
        ),
    ] = None,
) -> None:
    """Run the embedded lakeFS-API server in the foreground until Ctrl+C.

    Options override LOCKGATE_EMBEDDED_LAKEFS_* environment variables. Point any lakeFS client
    (the lakefs SDK, lakectl) at the endpoint the first line prints: http://HOST:PORT/api/v1, with
    the port picked when --port is 0.
    """
    from infra.processes import free_port
    from infra.settings import EmbeddedLakeFSSettings

    settings = settings_with(
        EmbeddedLakeFSSettings,
        host=host,
        port=port,
        data_dir=data_dir,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        block_store=block_store.value if block_store is not None else None,
        s3_bucket=s3_bucket,
        s3_prefix=s3_prefix,
        s3_endpoint_url=s3_endpoint_url,
        presign=presign,
    )
    if settings.port == 0:
        # Picked here rather than by the listening socket, so the line below can name it before the
        # server blocks; taken meanwhile by another process, the server stops with "address in use".
        settings = settings.model_copy(update={"port": free_port(settings.host)})
    from infra.lakefs_server.launcher import CREDENTIALS_FILE
    from infra.lakefs_server.server import run_server

    credentials = (
        "the given key pair"
        if settings.access_key_id
        else f"{settings.data_dir / CREDENTIALS_FILE} (generated on first start, owner-only)"
    )
    host = f"[{settings.host}]" if ":" in settings.host else settings.host  # an IPv6 address
    # One unwrapped line, so a script can read the endpoint from it.
    console.print(
        f"Embedded lakeFS-API server on http://{host}:{settings.port}/api/v1 "
        f"(data in {settings.data_dir}; credentials: {credentials}). Press Ctrl+C to stop.",
        highlight=False,
        soft_wrap=True,
    )
    run_server(settings)
