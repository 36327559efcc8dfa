"""The effective value of every setting and where it came from, secrets masked (``lockgate settings``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_settings import BaseSettings

Source = Literal["option", "environment", "default"]
MASK = "********"


@dataclass(frozen=True)
class SettingRow:
    """One field of one settings class, as it takes effect."""

    group: str
    name: str
    variables: tuple[str, ...]
    value: str
    source: Source
    description: str


def environment_names(settings_class: type[BaseSettings], field: str) -> tuple[str, ...]:
    """The environment variables a field is read from (upper case)."""
    info = settings_class.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice).upper() for choice in alias.choices)
    if isinstance(alias, str):
        return (alias.upper(),)
    prefix = settings_class.model_config.get("env_prefix", "")
    return (f"{prefix}{field}".upper(),)


def describe_settings(
    settings_class: type[BaseSettings],
    *,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[SettingRow], str | None]:
    """Each field of ``settings_class`` with its effective value and source, secrets masked.

    Args:
        settings_class: A lockgate settings class.
        options: Values given on the command line (they win over the environment); ``None`` values
            count as not given.
        environ: The environment to look in; this process's by default.

    Returns:
        The rows, and ``None`` or the reason the settings are invalid (field and message, never the
        value); invalid settings still list what each field was given.
    """
    given = {name: value for name, value in (options or {}).items() if value is not None}
    environment = {key.upper(): value for key, value in (os.environ if environ is None else environ).items()}
    problem = None
    try:
        effective: BaseSettings | None = settings_class(**given)
    except ValidationError as error:
        effective = None
        problem = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
    rows = []
    for name, info in settings_class.model_fields.items():
        variables = environment_names(settings_class, name)
        if name in given:
            source: Source = "option"
            raw: Any = given[name]
        elif any(variable in environment for variable in variables):
            source = "environment"
            raw = next(environment[variable] for variable in variables if variable in environment)
        else:
            source = "default"
            raw = info.get_default(call_default_factory=True)
        value = getattr(effective, name) if effective is not None else raw
        secret = _is_secret(info.annotation)
        rows.append(
            SettingRow(
                group=settings_class.__name__,
                name=name,
                variables=variables,
                value=_render(value, secret=secret),
                source=source,
                description=info.description or "",
            )
        )
    return rows, problem


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _render(value: Any, *, secret: bool) -> str:
    if value is None:
        return "(unset)"
    if secret or isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
