"""Settings of the embedded lakeFS-API server (one class, env prefix ``LOCKGATE_EMBEDDED_LAKEFS_``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from infra.settings.base import settings_config


class EmbeddedLakeFSSettings(BaseSettings):
    """How the embedded lakeFS-compatible server listens, authenticates and stores data."""

    model_config = settings_config("LOCKGATE_EMBEDDED_LAKEFS_", "embedded lakeFS settings")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")
    data_dir: Path = Field(
        Path(".lockgate/lakefs"),
        description="Directory holding the SQLite metadata, the local block store and the credentials file.",
    )
    access_key_id: str | None = Field(
        None, description="Access key ID clients must present; generated and stored in data_dir when unset."
    )
    secret_access_key: str | None = Field(
        None, description="Secret access key clients must present; generated with the access key when unset."
    )
    block_store: Literal["local", "s3"] = Field(
        "local", description="Where object bytes live: 'local' (data_dir/blocks) or 's3' (through boto3)."
    )
    s3_bucket: str | None = Field(None, description="Bucket of the S3 block store (block_store='s3').")
    s3_prefix: str = Field("lakefs", description="Key prefix inside the S3 bucket.")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, moto); AWS when unset."
    )
    s3_region: str = Field("us-east-1", description="Region of the S3 block store.")
    presign: bool = Field(True, description="Advertise and serve presigned PUT/GET URLs.")
    action_env_prefix: str = Field(
        "LAKEFSACTION_",
        min_length=1,
        description="Environment variables actions may read as {{ ENV.NAME }} (e.g. a webhook token in "
        "`headers`) must start with this, as lakeFS's actions.env.prefix.",
    )
    presign_ttl_seconds: int = Field(900, gt=0, description="Lifetime of presigned URLs.")
    hook_timeout_seconds: float = Field(
        30.0, gt=0, description="Default timeout of action webhooks (an action may set its own)."
    )
    gc_batch_size: int = Field(
        1000, ge=1, le=10_000, description="Blocks garbage collection deletes per write transaction."
    )
    gc_pause_seconds: float = Field(
        0.01,
        ge=0,
        le=60,
        description="Pause between GC batches, so writers waiting on the metadata get through.",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=4096,
        le=1 << 20,
        description="Largest request head (request line and headers) read before authentication; a longer "
        "one is answered 431 and the connection closed (lakeFS's own server allows 1 MiB).",
    )
    header_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Time a client has to send a complete request head once it connects or starts a "
        "request; slower ones are answered 408 and disconnected.",
    )
    public_url: str | None = Field(
        None, description="Base URL clients reach the server at, used in presigned URLs; derived when unset."
    )

    @model_validator(mode="after")
    def _check_credentials_and_store(self) -> EmbeddedLakeFSSettings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither (one is generated)")
        if self.secret_access_key is not None and len(self.secret_access_key) < 8:
            raise ValueError("secret_access_key must be at least 8 characters")
        if self.block_store == "s3" and not self.s3_bucket:
            raise ValueError("block_store='s3' needs s3_bucket")
        return self

    def action_environment(self) -> dict[str, str]:
        """The server's environment variables actions may read (``action_env_prefix``)."""
        return {name: value for name, value in os.environ.items() if name.startswith(self.action_env_prefix)}
