"""What every settings class shares: how secrets are checked and how classes are configured."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

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
MIN_SECRET_LENGTH = 8


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


def settings_config(prefix: str, title: str) -> SettingsConfigDict:
    """The configuration of a lockgate settings class: env prefix, the title errors name it by, unknown
    variables ignored, no echo of input in validation errors (a value may be a secret), and fields read
    from several variables (``validation_alias``) still set by their own name as keyword arguments."""
    return SettingsConfigDict(
        env_prefix=prefix, title=title, extra="ignore", hide_input_in_errors=True, populate_by_name=True
    )


def check_secret(value: SecretStr | None, variable: str, *, min_length: int) -> SecretStr | None:
    """``value`` unless it looks like a placeholder or is shorter than ``min_length`` (never echoed)."""
    if value is None:
        return None
    secret = value.get_secret_value()
    if is_placeholder(secret) or len(secret) < min_length:
        raise ValueError(
            f"looks like a placeholder or is shorter than {min_length} characters: "
            f"set {variable} to a long random secret (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`)"
        )
    return value
