"""Settings of lockgate's clients, one pydantic-settings class per concern.

Construct them at entry points (CLI commands, flow entry functions), never at import time, and pass the
clients built from them down. The embedded lakeFS server's own settings are
``infra.lakefs_server.config.EmbeddedLakeFSSettings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from examples; a real lakeFS must never be reached with them.
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "example",
    "your-",
    "your_",
    "todo",
)
_MIN_SECRET_LENGTH = 8


def is_placeholder(value: str) -> bool:
    """Whether ``value`` looks like an example value rather than a real credential."""
    lowered = value.strip().lower()
    if not lowered:
        return True
    if lowered.startswith("<") and lowered.endswith(">"):
        return True
    if set(lowered) <= {"x", "*", "."}:
        return True
    return any(word in lowered for word in _PLACEHOLDER_WORDS)


class LakeFSSettings(BaseSettings):
    """Which lakeFS server lockgate's clients talk to, and how they authenticate.

    Leave ``endpoint`` unset to use the embedded lakeFS-API server (credentials are then read from its
    data directory); set it, with real credentials, to use a lakeFS server.
    """

    # hide_input_in_errors: a validation error must not echo the secret it was given.
    model_config = SettingsConfigDict(
        env_prefix="LOCKGATE_LAKEFS_", extra="ignore", hide_input_in_errors=True
    )

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
        if is_placeholder(secret) or len(secret) < _MIN_SECRET_LENGTH:
            # The value itself is not echoed: it may be a real, if weak, secret.
            raise ValueError(
                "secret_access_key looks like a placeholder or is shorter than "
                f"{_MIN_SECRET_LENGTH} characters: set LOCKGATE_LAKEFS_SECRET_ACCESS_KEY to the real secret"
            )
        return self


class S3Settings(BaseSettings):
    """How lockgate reaches S3-compatible object storage for sources (``s3://`` URIs).

    Credentials left unset fall back to boto3's usual chain (environment, profile, instance role).
    """

    model_config = SettingsConfigDict(env_prefix="LOCKGATE_S3_", extra="ignore", hide_input_in_errors=True)

    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, moto, ...); unset means AWS S3."
    )
    region: str = Field("us-east-1", description="Region to sign requests for.")
    access_key_id: str | None = Field(None, description="Access key ID; unset uses boto3's credential chain.")
    secret_access_key: SecretStr | None = Field(
        None, description="Secret access key, paired with access_key_id. Never logged."
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "set both LOCKGATE_S3_ACCESS_KEY_ID and LOCKGATE_S3_SECRET_ACCESS_KEY, or neither"
            )
        return self


class DaskSettings(BaseSettings):
    """Where training runs: an existing Dask scheduler, or a LocalCluster started for the run."""

    model_config = SettingsConfigDict(env_prefix="LOCKGATE_DASK_", extra="ignore")

    scheduler_address: str | None = Field(
        None,
        description="tcp://host:8786 of an existing scheduler (dask-kubernetes, dask-jobqueue, cloud); "
        "unset starts a LocalCluster.",
    )
    n_workers: int = Field(2, ge=1, le=512, description="Workers (ranks) of the LocalCluster.")
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per LocalCluster worker.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Timeout of one connection attempt.")
    connect_attempts: int = Field(3, ge=1, le=20, description="Connection attempts before giving up.")
    cuda: bool = Field(
        False,
        description="Start a dask-cuda LocalCUDACluster (one worker per GPU) instead of a LocalCluster; "
        "needs `pip install dask-cuda` on a CUDA machine.",
    )
