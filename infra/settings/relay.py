"""Secrets and limits of the webhook relay (``LOCKGATE_WEBHOOK_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from infra.settings.base import check_secret, settings_config

MIN_SECRET_LENGTH = 16


class RelaySettings(BaseSettings):
    """Secrets and limits of the webhook relay (``LOCKGATE_WEBHOOK_*``)."""

    model_config = settings_config("LOCKGATE_WEBHOOK_", "webhook relay settings")

    secret: SecretStr = Field(
        ...,
        description="Shared HMAC-SHA256 secret external systems sign /hooks/events requests with "
        f"(at least {MIN_SECRET_LENGTH} characters, no placeholder). Never logged.",
    )
    lakefs_token: SecretStr | None = Field(
        None,
        description="Bearer token lakeFS sends to /hooks/lakefs (the action's `headers: {Authorization: "
        "'Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}'}`), compared in constant time. Never logged.",
    )
    lakefs_secret: SecretStr | None = Field(
        None,
        description="HMAC secret /hooks/lakefs requests may be signed with instead (a signing proxy in "
        "front of lakeFS), in the X-Lockgate-* scheme.",
    )
    insecure_lakefs: bool = Field(
        False,
        description="Accept unauthenticated /hooks/lakefs requests (no token, no signature). Only for a "
        "relay no one but lakeFS can reach; the relay warns at start. Without it, and with no token or "
        "secret set, /hooks/lakefs answers 401.",
    )
    state_dir: Path = Field(
        Path.home() / ".lockgate" / "relay",
        description="Where the relay keeps the nonces of the replay window (SQLite, owner-only), so a "
        "captured request cannot be replayed after a restart.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For is believed (rate limits per "
        "client); empty: the socket's peer address is the client, whatever headers say.",
    )
    event_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long handing an event to Prefect's API may take (503 beyond)."
    )
    replay_window_s: int = Field(
        300,
        ge=1,
        le=3600,
        description="Largest clock difference accepted, and how long nonces are remembered.",
    )
    max_body_bytes: int = Field(65_536, ge=1, description="Largest request body (413 beyond it).")
    rate_limit_per_minute: int = Field(
        60, ge=1, description="Requests per minute per client address and event name (429 beyond it)."
    )
    nonce_cache_size: int = Field(
        10_000, ge=1, description="Nonces remembered at most; the oldest are forgotten first."
    )
    protected_branches: list[str] = Field(
        default_factory=lambda: ["main"],
        description="Branches (exact names) whose lakeFS pre-merge webhooks run the contract gate; a "
        "merge into any other branch is allowed unchecked. JSON list in the environment.",
    )
    require_contract_report: bool = Field(
        True,
        description="The contract gate also refuses data whose batch has no passed contract report "
        "on the source ref (see tasks.merge_gate).",
    )

    @field_validator("protected_branches")
    @classmethod
    def _check_branches(cls, value: list[str]) -> list[str]:
        if any(not branch.strip() for branch in value):
            raise ValueError("protected branch names must not be empty")
        return value

    @field_validator("secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr) -> SecretStr:
        return check_secret(value, "LOCKGATE_WEBHOOK_SECRET", min_length=MIN_SECRET_LENGTH)  # type: ignore[return-value]

    @field_validator("lakefs_secret")
    @classmethod
    def _refuse_weak_lakefs_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return check_secret(value, "LOCKGATE_WEBHOOK_LAKEFS_SECRET", min_length=MIN_SECRET_LENGTH)

    @field_validator("lakefs_token")
    @classmethod
    def _refuse_weak_lakefs_token(cls, value: SecretStr | None) -> SecretStr | None:
        return check_secret(value, "LOCKGATE_WEBHOOK_LAKEFS_TOKEN", min_length=MIN_SECRET_LENGTH)

    @model_validator(mode="after")
    def _insecure_only_alone(self) -> RelaySettings:
        if self.insecure_lakefs and (self.lakefs_token or self.lakefs_secret):
            raise ValueError(
                "insecure_lakefs accepts unauthenticated lakeFS webhooks; it makes no sense with "
                "LOCKGATE_WEBHOOK_LAKEFS_TOKEN or _LAKEFS_SECRET set: unset one of them"
            )
        return self

    @property
    def lakefs_authenticated(self) -> bool:
        """Whether /hooks/lakefs requires a token or a signature."""
        return not self.insecure_lakefs
