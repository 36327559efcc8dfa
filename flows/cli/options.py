"""Options shared by several commands, declared once.

An option left out is ``None`` and does not override its setting, so the environment
(``LOCKGATE_*``) applies; an option given wins over the environment (``settings_with``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        file_okay=False,
        help="Data directory of the embedded lakeFS server, started for the command when "
        "LOCKGATE_LAKEFS_ENDPOINT names no lakeFS. [default: .lockgate/lakefs]",
    ),
]
ModelName = Annotated[
    str | None,
    typer.Option(
        "--model-name",
        help="Registered model name. [default: LOCKGATE_MODEL_NAME, else <dataset>-mlp of LOCKGATE_DATASET]",
    ),
]
Dataset = Annotated[
    str | None,
    typer.Option("--dataset", help="Declared dataset (see `lockgate datasets`). [default: LOCKGATE_DATASET]"),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="Dask LocalCluster workers = DDP ranks. (env LOCKGATE_DASK_N_WORKERS; default 2)",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster ('auto', 'host:6379', 'ray://head:10001'); unset starts a local Ray. "
        "(env LOCKGATE_SERVING_RAY_ADDRESS)",
    ),
]
Hold = Annotated[
    float, typer.Option("--hold", min=0.1, help="Seconds each rollout step is held and measured.")
]

SettingsT = TypeVar("SettingsT")


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not ``None``): what a class's own defaults must not override."""
    return {name: value for name, value in options.items() if value is not None}


def settings_with(settings_class: type[SettingsT], **options: Any) -> SettingsT:
    """``settings_class`` with the options that were given (not ``None``) over the environment."""
    return settings_class(**given(**options))
