"""Which lakeFS server lockgate's clients talk to (``LOCKGATE_LAKEFS_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from infra.settings.base import MIN_SECRET_LENGTH, is_placeholder, settings_config


class LakeFSSettings(BaseSettings):
    """Which lakeFS server lockgate's clients talk to, and how they authenticate.

    Leave ``endpoint`` unset to use the embedded lakeFS-API server (credentials are then read from its
    data directory); set it, with real credentials, to use a lakeFS server.
    """

    model_config = settings_config("LOCKGATE_LAKEFS_", "lakeFS settings")

    endpoint: str | None = Field(
        None,
        description=(
            "Base URL of a lakeFS server, e.g. https://lakefs.example.com (the /api/v1 suffix is added "
            "when missing). Unset: use the embedded server."
        ),
    )
    access_key_id: str | None = Field(
        None, description="lakeFS access key ID; required when endpoint is set."
    )
    secret_access_key: SecretStr | None = Field(
        None, description="lakeFS secret access key; required when endpoint is set. Never logged."
    )
    embedded_data_dir: Path = Field(
        Path(".lockgate/lakefs"),
        description="Data directory of the embedded server (metadata, blocks, generated credentials).",
    )
    verify_ssl: bool = Field(True, description="Verify the lakeFS server's TLS certificate.")

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None or not endpoint.strip():
            return None
        endpoint = endpoint.strip().rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {endpoint!r} must start with http:// or https://")
        return endpoint

    @model_validator(mode="after")
    def _refuse_placeholder_credentials(self) -> LakeFSSettings:
        if self.endpoint is None:
            return self
        if self.access_key_id is None or self.secret_access_key is None:
            raise ValueError(
                f"endpoint {self.endpoint!r} is a real lakeFS: set LOCKGATE_LAKEFS_ACCESS_KEY_ID and "
                "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY, or unset LOCKGATE_LAKEFS_ENDPOINT to use the "
                "embedded server"
            )
        if is_placeholder(self.access_key_id):
            raise ValueError(
                "access_key_id looks like a placeholder: set LOCKGATE_LAKEFS_ACCESS_KEY_ID to a real key"
            )
        secret = self.secret_access_key.get_secret_value()
        if is_placeholder(secret) or len(secret) < MIN_SECRET_LENGTH:
            # The value itself is not echoed: it may be a real, if weak, secret.
            raise ValueError(
                "secret_access_key looks like a placeholder or is shorter than "
                f"{MIN_SECRET_LENGTH} characters: set LOCKGATE_LAKEFS_SECRET_ACCESS_KEY to the real secret"
            )
        return self
