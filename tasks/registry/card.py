"""What a model version is: its card (the lineage record), the names of its files and tags."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import numpy
import pandas
import safetensors
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infra.errors import InvalidInputError
from infra.naming import MODEL_NAME_PATTERN, MODEL_NAME_RULE, MODELS_REPOSITORY

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
# Holdout rows (features, target, the model's probability) stored with a version: the monitoring
# reference and the holdout a retrain compares champion and challenger on.
REFERENCE_ARTIFACT = "reference.parquet"
ALIASES = ("champion", "challenger")
LATEST = "latest"
REQUIRED_LIBRARIES = ("torch", "numpy", "pandas", "safetensors", "lockgate")

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_VERSION_TAG = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_-]*)-v(?P<number>[1-9][0-9]*)$")
_ALIAS_TAG = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_-]*)-(?P<alias>" + "|".join(ALIASES) + r")$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelLineage(BaseModel):
    """What the caller knows about a model it registers: its data, contracts, training and run.

    Everything else on the card (name, version, hashes, library and code versions, creation time) is
    filled in by ``register_model``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_repository: str = Field(min_length=1, description="lakeFS repository the training data came from.")
    data_commit_id: str = Field(min_length=1, description="Commit ID the training data was read at.")
    contract_report: str = Field(
        min_length=1,
        description="Where the contract report that let the data through lives, "
        "e.g. lakefs://loans/<commit>/reports/contract.json.",
    )
    training_config: dict[str, Any] = Field(description="Training parameters (JSON-serialisable).")
    seed: int = Field(description="Random seed the training ran with.")
    metrics: dict[str, Any] = Field(description="Evaluation metrics, possibly nested (per slice).")
    feature_spec: dict[str, Any] = Field(
        description="Feature columns and normalisation statistics the model expects (opaque to the registry)."
    )
    flow_run_id: str | None = Field(default=None, description="Prefect flow-run ID that trained the model.")
    code_version: str | None = Field(
        default=None,
        description="Code version; when omitted, the registry records the git commit or package version.",
    )
    risk_level: Literal["normal", "high"] = Field(
        default="normal", description="'high' asks for human approval before promotion."
    )
    notes: str = Field(default="", description="Free-form notes.")

    @field_validator("training_config", "metrics", "feature_spec")
    @classmethod
    def _json_serialisable(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{info.field_name} must hold only JSON values (str, int, float, bool, None, lists, "
                f"dicts with str keys): {error}; convert numpy scalars with .item() and arrays with .tolist()"
            ) from error
        return value


class ModelCard(ModelLineage):
    """The lineage record stored beside the weights (``model_card.json``) of one model version."""

    model_name: str = Field(description="Registered model name.")
    version: str = Field(pattern=r"^v[1-9][0-9]*$", description="Version label, e.g. 'v3'.")
    code_version: str = Field(
        min_length=1, description="git commit of the working tree ('git:<sha>[-dirty]') or 'lockgate==<ver>'."
    )
    weights_file: str = Field(
        default=WEIGHTS_FILE, description="Weights file name inside the version folder."
    )
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the weights file.")
    artifact_sha256: dict[str, str] = Field(
        default_factory=dict,
        description="SHA-256 of every other artifact (plots, metrics JSON), by file name.",
    )
    library_versions: dict[str, str] = Field(
        description="Versions of the libraries that produced the weights (torch, numpy, pandas, ...)."
    )
    created_at: datetime = Field(description="Registration time, UTC.")

    @field_validator("library_versions")
    @classmethod
    def _libraries_present(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [name for name in REQUIRED_LIBRARIES if not value.get(name)]
        if missing:
            raise ValueError(f"library_versions lacks {', '.join(missing)}: use collect_library_versions()")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("created_at must be timezone-aware: use datetime.now(UTC)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _artifact_hashes(self) -> ModelCard:
        for name, digest in self.artifact_sha256.items():
            if not _SHA256.match(digest):
                raise ValueError(f"artifact_sha256[{name!r}] is not a lower-case hex SHA-256: {digest!r}")
        return self

    def to_json(self) -> str:
        """The card as indented JSON (``created_at`` in ISO 8601, UTC)."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse a card written by ``to_json``; raises pydantic's ``ValidationError`` when it is not one."""
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version and where it lives.

    Attributes:
        model_name: Registered model name.
        version: Version label, e.g. ``v3``.
        commit_id: The commit holding ``models/<model>/<version>/``.
        created_at: When that commit was made (UTC), when it was looked up.
        aliases: Aliases pointing at this version, e.g. ``("champion",)``.
    """

    model_name: str
    version: str
    commit_id: str
    created_at: datetime | None = None
    aliases: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        """The version number (3 for ``v3``)."""
        return int(self.version[1:])


@dataclass(frozen=True)
class RegisteredModel:
    """What ``register_model`` produced: the version, its commit and tag, and the card as stored."""

    version: str
    commit_id: str
    tag: str
    card: ModelCard


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version: its card, its weights, and the commit they were read at."""

    card: ModelCard
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    commit_id: str


def collect_library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the weights, for the model card.

    Returns:
        ``{"python", "torch", "numpy", "pandas", "safetensors", "lockgate"}`` to version strings.
    """
    import platform

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "safetensors": safetensors.__version__,
        "lockgate": installed_version("lockgate"),
    }


def current_code_version() -> str:
    """The code version to record: the git commit of lockgate's working tree, else the package version.

    Returns:
        ``git:<sha>`` (``git:<sha>-dirty`` with uncommitted changes to tracked files), or
        ``lockgate==<version>`` outside a git checkout.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            head = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            if head:
                return f"git:{head}-dirty" if status else f"git:{head}"
    return f"lockgate=={installed_version('lockgate')}"


def check_model_name(model_name: str) -> None:
    """Refuse model names that would not make valid branch and tag names."""
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise InvalidInputError(f"invalid model name {model_name!r}: use {MODEL_NAME_RULE}")


def check_alias(alias: str) -> None:
    """Refuse anything but the known alias names."""
    if alias not in ALIASES:
        raise InvalidInputError(
            f"unknown alias {alias!r}: aliases are {' and '.join(repr(name) for name in ALIASES)}"
        )


def version_path(target: ModelVersion, name: str) -> str:
    """Object path of file ``name`` of a version."""
    return f"models/{target.model_name}/{target.version}/{name}"


def location(repository: str, commit_id: str, path: str) -> str:
    """lakefs:// URI of an object at a commit."""
    return f"lakefs://{repository}/{commit_id}/{path}"


def version_tag(model_name: str, number: int) -> str:
    """The immutable tag of a version."""
    return f"{model_name}-v{number}"


def alias_tag(model_name: str, alias: str) -> str:
    """The movable tag of an alias."""
    return f"{model_name}-{alias}"


def installed_version(package: str) -> str:
    """The installed distribution's version, or ``unknown``."""
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


__all__ = ["MODELS_REPOSITORY"]
