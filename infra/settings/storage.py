"""How lockgate reaches S3-compatible object storage for sources (``LOCKGATE_S3_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from infra.settings.base import settings_config


class S3Settings(BaseSettings):
    """How lockgate reaches S3-compatible object storage for sources (``s3://`` URIs).

    Credentials left unset fall back to boto3's usual chain (environment, profile, instance role).
    """

    model_config = settings_config("LOCKGATE_S3_", "S3 settings")

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
