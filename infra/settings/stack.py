"""Where ``lockgate up`` keeps the one-machine stack, and the secret it shares (``LOCKGATE_STACK_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings

from infra.settings.base import settings_config

DEFAULT_STACK_DIR = Path("~/.lockgate/stack")


class StackSettings(BaseSettings):
    """The stack directory and the webhook secret the stack's relay and callers share."""

    model_config = settings_config("LOCKGATE_STACK_", "stack settings")

    dir: Path = Field(
        DEFAULT_STACK_DIR,
        description="Stack directory: state, logs, Prefect/lakeFS data, secrets and stack.env.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("LOCKGATE_WEBHOOK_SECRET"),
        description="Webhook secret of the stack's relay (LOCKGATE_WEBHOOK_SECRET); unset: one is "
        "generated once into an owner-only file in the stack directory. Never logged.",
    )
