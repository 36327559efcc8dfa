"""Model registry in a lakeFS models repository: numbered versions, movable aliases, lineage, verified loads.

A model version is one commit holding ``models/<model>/<version>/``: the weights
(``model.safetensors``, never pickle), the model card (``model_card.json``, the lineage record) and any
artifacts (plots, metrics JSON). Two kinds of lakeFS tag name commits:

- ``<model>-v<N>``: the immutable version tag. Creating it is the atomic claim of the number: lakeFS
  refuses an existing tag with 409, so two concurrent registrations never share a version.
- ``<model>-champion`` / ``<model>-challenger``: movable aliases, re-created (``force``) on a version's
  commit only after that version's artifacts verified against their SHA-256s.

Registration writes on a branch of its own (``register-<model>-<run>``), commits, claims the version
tag on that commit, and only then merges into ``main``; a failure before the tag leaves no version, no
change on ``main`` and the branch kept for inspection. Loading reads every object at the resolved commit
ID (so an alias moved meanwhile cannot mix two versions) and refuses weights whose SHA-256 differs
from the card's. All functions take the ``lakefs.Client`` as ``client=``.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import lakefs
import lakefs_sdk
import numpy
import pandas
import safetensors
import safetensors.torch
import torch
from lakefs.exceptions import ConflictException, NotFoundException, api_exception_handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.errors import (
    InvalidInputError,
    LockgateError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelRegistrationError,
    RepositoryNotFoundError,
)
from tasks.versioning import (
    commit_changes,
    create_branch,
    default_storage_namespace,
    ensure_repository,
    merge_branch,
    upload_file,
)

MODELS_REPOSITORY = "lockgate-models"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
# Holdout rows (features, target, the model's probability) stored with a version: the monitoring
# reference and the holdout a retrain compares champion and challenger on.
REFERENCE_ARTIFACT = "reference.parquet"
ALIASES = ("champion", "challenger")
LATEST = "latest"
REQUIRED_LIBRARIES = ("torch", "numpy", "pandas", "safetensors", "lockgate")

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_VERSION_TAG = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_-]*)-v(?P<number>[1-9][0-9]*)$")
_ALIAS_TAG = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_-]*)-(?P<alias>" + "|".join(ALIASES) + r")$")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Each lost claim costs one upload; this many concurrent registrations of one model is far beyond use.
_MAX_CLAIM_ATTEMPTS = 20
_HASH_CHUNK_BYTES = 8 * 1024 * 1024
_TAG_PAGE_SIZE = 1000


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
        "lockgate": _installed_version("lockgate"),
    }


def current_code_version() -> str:
    """The code version to record: the git commit of lockgate's working tree, else the package version.

    Returns:
        ``git:<sha>`` (``git:<sha>-dirty`` with uncommitted changes to tracked files), or
        ``lockgate==<version>`` outside a git checkout.
    """
    root = Path(__file__).resolve().parents[1]
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
    return f"lockgate=={_installed_version('lockgate')}"


def register_model(
    model_name: str,
    *,
    state_dict: Mapping[str, torch.Tensor],
    lineage: ModelLineage,
    client: lakefs.Client,
    artifacts: Mapping[str, Path] | None = None,
    repository: str = MODELS_REPOSITORY,
    storage_namespace: str | None = None,
    run_id: str | None = None,
) -> RegisteredModel:
    """Store a new version of ``model_name``: weights, model card and artifacts, tagged ``<model>-v<N>``.

    The version number is one more than the highest existing one; when a concurrent registration claims
    it first, the upload is redone under the next number. A failure before the version tag is created
    leaves no new version and ``main`` unchanged (the ``register-<model>-<run>`` branch is kept).

    Args:
        model_name: Model name (letters, digits, ``_`` and ``-``; at most 63 characters).
        state_dict: Parameter name to tensor, e.g. ``model.state_dict()``; saved as safetensors.
        lineage: Where the model came from (data commit, contract report, training config, metrics, ...).
        client: The lakeFS client to use.
        artifacts: Extra files to store beside the weights, by file name (``{"roc.png": Path(...)}``).
        repository: The models repository; created when missing.
        storage_namespace: Namespace for a repository that does not exist yet (the server's default
            when omitted).
        run_id: Names the registration branch; a random ID when omitted. Pass the flow-run ID: a retry of
            the same run replaces the branch a failed attempt kept.

    Returns:
        The version label, its commit ID and tag, and the card as stored.

    Raises:
        InvalidInputError: a bad name, state dict, lineage or artifact (missing file, reserved name);
            nothing was written.
        ModelRegistrationError: no version number could be claimed, or the merge into ``main`` failed
            after the version was claimed (the message says which).
        RepositoryConflictError: the repository exists with another storage namespace.
    """
    _check_model_name(model_name)
    if not isinstance(lineage, ModelLineage) or isinstance(lineage, ModelCard):
        raise InvalidInputError(
            f"lineage must be a ModelLineage (the registry fills in version and hashes), got "
            f"{type(lineage).__name__}"
        )
    run_id = run_id or uuid.uuid4().hex[:12]
    if not _RUN_ID.match(run_id):
        raise InvalidInputError(f"run_id {run_id!r} must be 1-64 letters, digits, '_' or '-'")
    artifact_files = _check_artifacts(artifacts or {})
    tensors = _check_state_dict(state_dict, model_name=model_name)
    branch = f"register-{model_name}-{run_id}"

    with tempfile.TemporaryDirectory(prefix="lockgate-register-") as scratch:
        weights_path = Path(scratch) / WEIGHTS_FILE
        try:
            safetensors.torch.save_file(
                tensors, str(weights_path), metadata={"format": "pt", "model_name": model_name}
            )
        except (RuntimeError, ValueError) as error:
            raise InvalidInputError(
                f"cannot save the state dict of model {model_name!r} as safetensors: {error}"
            ) from error
        fields = lineage.model_dump()
        fields["code_version"] = lineage.code_version or current_code_version()
        fields |= {
            "model_name": model_name,
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": _hash_file(weights_path),
            "artifact_sha256": {name: _hash_file(path) for name, path in artifact_files.items()},
            "library_versions": collect_library_versions(),
            "created_at": datetime.now(UTC),
        }

        namespace = storage_namespace or default_storage_namespace(repository, client=client)
        if namespace is None:
            raise InvalidInputError(
                f"the lakeFS server suggests no storage namespace for repository {repository!r}: "
                "pass storage_namespace (e.g. 's3://bucket/lockgate-models')"
            )
        models = ensure_repository(repository, storage_namespace=namespace, client=client)
        main = models.properties.default_branch

        for _ in range(_MAX_CLAIM_ATTEMPTS):
            versions, _ = _model_tags(repository, model_name, client=client)
            number = max(versions, default=0) + 1
            card = ModelCard(**fields, version=f"v{number}")
            # Start from main each time: after a lost claim the branch must hold only this upload, and a
            # retried run (same run_id) replaces the branch its failed attempt left behind.
            _delete_branch_if_present(repository, branch, client=client)
            create_branch(repository, branch, source_ref=main, client=client)
            commit_id = _upload_version(
                repository,
                branch=branch,
                card=card,
                weights_path=weights_path,
                artifact_files=artifact_files,
                scratch=Path(scratch),
                client=client,
            )
            tag = _version_tag(model_name, number)
            try:
                lakefs.Tag(repository, tag, client=client).create(commit_id)
            except ConflictException:
                continue
            break
        else:
            raise ModelRegistrationError(
                f"could not claim a version number for model {model_name!r} in repository {repository!r} "
                f"after {_MAX_CLAIM_ATTEMPTS} attempts (other registrations kept taking them); nothing "
                f"was registered, branch {branch!r} is kept: try again"
            )

    try:
        merge_branch(
            repository,
            source_ref=branch,
            destination_branch=main,
            client=client,
            message=f"Register {model_name} {card.version}",
            metadata={"model_name": model_name, "model_version": card.version},
        )
    except LockgateError as error:
        raise ModelRegistrationError(
            f"model {model_name!r} {card.version} is registered (tag {tag!r} at commit {commit_id}), but "
            f"merging branch {branch!r} into {main!r} failed: {error}. The version loads as it is; merge "
            "the branch by hand to see it on main"
        ) from error
    lakefs.Branch(repository, branch, client=client).delete()
    return RegisteredModel(version=card.version, commit_id=commit_id, tag=tag, card=card)


def set_alias(
    model_name: str, alias: str, version: str, *, client: lakefs.Client, repository: str = MODELS_REPOSITORY
) -> ModelVersion:
    """Point ``alias`` of ``model_name`` at ``version``, after checking that version's artifacts.

    Args:
        model_name: Registered model name.
        alias: ``"champion"`` or ``"challenger"``.
        version: The version to point at: ``"v3"``, ``"latest"``, or the other alias (promotes it).
        client: The lakeFS client to use.
        repository: The models repository.

    Returns:
        The version the alias now points at (with all its aliases).

    Raises:
        InvalidInputError: ``alias`` is not one of the known aliases.
        ModelNotFoundError: the model or version does not exist (the message lists what does).
        ModelIntegrityError: the version's weights, card or artifacts are missing or do not match their
            SHA-256; the alias was not moved.
    """
    _check_alias(alias)
    target = _resolve(repository, model_name, version, client=client)
    card = _read_card(repository, target, client=client)
    _verify_object(repository, target, card.weights_file, card.weights_sha256, client=client)
    for name, digest in card.artifact_sha256.items():
        _verify_object(repository, target, name, digest, client=client)
    with api_exception_handler():
        client.sdk_client.tags_api.create_tag(
            repository,
            lakefs_sdk.TagCreation(id=_alias_tag(model_name, alias), ref=target.commit_id, force=True),
        )
    _, aliases = _model_tags(repository, model_name, client=client)
    on_target = tuple(name for name in ALIASES if aliases.get(name) == target.commit_id)
    return ModelVersion(model_name, target.version, target.commit_id, target.created_at, on_target)


def get_alias(
    model_name: str, alias: str, *, client: lakefs.Client, repository: str = MODELS_REPOSITORY
) -> ModelVersion:
    """The version ``alias`` of ``model_name`` points at.

    Args:
        model_name: Registered model name.
        alias: ``"champion"`` or ``"challenger"``.
        client: The lakeFS client to use.
        repository: The models repository.

    Returns:
        The version, its commit and all aliases on it.

    Raises:
        InvalidInputError: ``alias`` is not one of the known aliases.
        ModelNotFoundError: the model has no versions, or the alias is not set.
        ModelIntegrityError: the alias tag points at a commit that is no version of the model.
    """
    _check_alias(alias)
    return _resolve(repository, model_name, alias, client=client)


def list_models(
    *, client: lakefs.Client, repository: str = MODELS_REPOSITORY, model_name: str | None = None
) -> list[ModelVersion]:
    """Every registered version (of every model, or of ``model_name``), with creation time and aliases.

    Args:
        client: The lakeFS client to use.
        repository: The models repository; an absent repository has no models.
        model_name: Only this model's versions.

    Returns:
        The versions, sorted by model name and version number.
    """
    if model_name is not None:
        _check_model_name(model_name)
    try:
        tags = _list_tags(repository, prefix=f"{model_name}-" if model_name else None, client=client)
    except RepositoryNotFoundError:
        return []
    versions: dict[tuple[str, int], str] = {}
    aliases: dict[tuple[str, str], list[str]] = {}
    for tag, commit_id in tags.items():
        if match := _VERSION_TAG.match(tag):
            versions[(match["model"], int(match["number"]))] = commit_id
        elif match := _ALIAS_TAG.match(tag):
            aliases.setdefault((match["model"], commit_id), []).append(match["alias"])
    listing = []
    for (name, number), commit_id in sorted(versions.items()):
        if model_name is not None and name != model_name:
            continue
        listing.append(
            ModelVersion(
                model_name=name,
                version=f"v{number}",
                commit_id=commit_id,
                created_at=_commit_time(repository, commit_id, client=client),
                aliases=tuple(sorted(aliases.get((name, commit_id), []), key=ALIASES.index)),
            )
        )
    return listing


def show_model(
    model_name: str, ref: str, *, client: lakefs.Client, repository: str = MODELS_REPOSITORY
) -> ModelCard:
    """The model card of a version, without downloading its weights.

    Args:
        model_name: Registered model name.
        ref: ``"v3"``, ``"latest"``, ``"champion"`` or ``"challenger"``.
        client: The lakeFS client to use.
        repository: The models repository.

    Returns:
        The card.

    Raises:
        ModelNotFoundError: unknown model, version or alias (the message lists what exists).
        ModelIntegrityError: the card is missing, unreadable, or belongs to another version.
    """
    return _read_card(repository, _resolve(repository, model_name, ref, client=client), client=client)


def load_model(
    model_name: str, ref: str, *, client: lakefs.Client, repository: str = MODELS_REPOSITORY
) -> LoadedModel:
    """Load a version's weights and card, refusing weights whose SHA-256 differs from the card's.

    Args:
        model_name: Registered model name.
        ref: ``"v3"``, ``"latest"``, ``"champion"`` or ``"challenger"``.
        client: The lakeFS client to use.
        repository: The models repository.

    Returns:
        The card, the state dict (CPU tensors; ``model.load_state_dict`` takes it) and the commit ID
        both were read at.

    Raises:
        ModelNotFoundError: unknown model, version or alias (the message lists what exists).
        ModelIntegrityError: weights or card missing, unreadable or tampered with (expected and actual
            SHA-256 and the object's path in the message).
    """
    target = _resolve(repository, model_name, ref, client=client)
    card = _read_card(repository, target, client=client)
    payload = _read_verified(
        repository, target, card.weights_file, card.weights_sha256, client=client, what="weights"
    )
    path = _version_path(target, card.weights_file)
    try:
        state_dict = safetensors.torch.load(payload)
    except Exception as error:  # safetensors raises its own SafetensorError, not exported stably
        raise ModelIntegrityError(
            f"weights at {_location(repository, target.commit_id, path)} match their SHA-256 but are not "
            f"readable safetensors ({error})"
        ) from error
    return LoadedModel(card=card, state_dict=state_dict, commit_id=target.commit_id)


def read_artifact(
    model_name: str, ref: str, name: str, *, client: lakefs.Client, repository: str = MODELS_REPOSITORY
) -> bytes:
    """The bytes of artifact ``name`` (e.g. ``reference.parquet``) of a version, checked against its card.

    Raises:
        ModelNotFoundError: unknown model, version or alias, or the version has no artifact ``name``
            (the message lists the artifacts it has).
        ModelIntegrityError: the artifact is missing from storage or its SHA-256 differs from the card's.
    """
    target = _resolve(repository, model_name, ref, client=client)
    card = _read_card(repository, target, client=client)
    expected = card.artifact_sha256.get(name)
    if expected is None:
        raise ModelNotFoundError(
            f"model {model_name!r} {target.version} has no artifact {name!r}; it has: "
            f"{', '.join(sorted(card.artifact_sha256)) or 'none'}"
        )
    return _read_verified(repository, target, name, expected, client=client)


def _read_verified(
    repository: str,
    target: ModelVersion,
    name: str,
    expected: str,
    *,
    client: lakefs.Client,
    what: str | None = None,
) -> bytes:
    """The bytes of file ``name`` of ``target``, refused unless their SHA-256 is ``expected``."""
    path = _version_path(target, name)
    payload = _read_object(repository, target.commit_id, path, client=client)
    if payload is None:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no {what or repr(name)} at "
            f"{_location(repository, target.commit_id, path)}; re-register the model"
        )
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(_mismatch(repository, target, path, expected, actual))
    return payload


def _check_model_name(model_name: str) -> None:
    """Refuse model names that would not make valid branch and tag names."""
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise InvalidInputError(
            f"invalid model name {model_name!r}: use 1-63 letters, digits, '_' and '-', starting with a "
            "letter or digit"
        )


def _check_alias(alias: str) -> None:
    """Refuse anything but the known alias names."""
    if alias not in ALIASES:
        raise InvalidInputError(
            f"unknown alias {alias!r}: aliases are {' and '.join(repr(name) for name in ALIASES)}"
        )


def _check_artifacts(artifacts: Mapping[str, Path]) -> dict[str, Path]:
    """Check artifact names and that every file exists, before anything is written."""
    if not isinstance(artifacts, Mapping):
        raise InvalidInputError(f"artifacts must map file names to paths, got {type(artifacts).__name__}")
    checked = {}
    for name, path in artifacts.items():
        if not isinstance(name, str) or not _ARTIFACT_NAME.match(name):
            raise InvalidInputError(
                f"invalid artifact name {name!r}: use a plain file name (letters, digits, '.', '_', '-'; "
                "no '/')"
            )
        if name in (WEIGHTS_FILE, CARD_FILE):
            raise InvalidInputError(f"artifact name {name!r} is reserved for the registry: rename it")
        local = Path(path)
        if not local.is_file():
            raise InvalidInputError(f"artifact {name!r}: {str(local)!r} is not an existing file")
        checked[name] = local
    return checked


def _check_state_dict(state_dict: Mapping[str, torch.Tensor], *, model_name: str) -> dict[str, torch.Tensor]:
    """Non-empty, str keys, tensor values; returned as contiguous CPU tensors ready for safetensors."""
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise InvalidInputError(
            f"state_dict of model {model_name!r} must be a non-empty mapping of names to tensors "
            "(model.state_dict())"
        )
    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise InvalidInputError(
                f"state_dict of model {model_name!r}: entry {name!r} is a {type(tensor).__name__}, not a "
                "tensor under a str key"
            )
        tensors[name] = tensor.detach().cpu().contiguous()
    return tensors


def _upload_version(
    repository: str,
    *,
    branch: str,
    card: ModelCard,
    weights_path: Path,
    artifact_files: Mapping[str, Path],
    scratch: Path,
    client: lakefs.Client,
) -> str:
    """Upload weights, artifacts and card under ``models/<model>/<version>/`` and commit; the commit ID."""
    folder = f"models/{card.model_name}/{card.version}"
    upload_file(
        weights_path, repository=repository, branch=branch, path=f"{folder}/{WEIGHTS_FILE}", client=client
    )
    for name, local in artifact_files.items():
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        upload_file(
            local,
            repository=repository,
            branch=branch,
            path=f"{folder}/{name}",
            client=client,
            content_type=content_type,
        )
    card_path = scratch / CARD_FILE
    card_path.write_text(card.to_json(), encoding="utf-8")
    upload_file(
        card_path,
        repository=repository,
        branch=branch,
        path=f"{folder}/{CARD_FILE}",
        client=client,
        content_type="application/json",
    )
    metadata = {
        "model_name": card.model_name,
        "model_version": card.version,
        "weights_sha256": card.weights_sha256,
        "data_repository": card.data_repository,
        "data_commit_id": card.data_commit_id,
        "code_version": card.code_version,
    }
    if card.flow_run_id:
        metadata["flow_run_id"] = card.flow_run_id
    return commit_changes(
        repository,
        branch,
        message=f"Model {card.model_name} {card.version}",
        metadata=metadata,
        client=client,
    )


def _delete_branch_if_present(repository: str, branch: str, *, client: lakefs.Client) -> None:
    """Delete ``branch`` when it exists."""
    try:
        with api_exception_handler():
            lakefs.Branch(repository, branch, client=client).delete()
    except NotFoundException:
        pass


def _list_tags(repository: str, *, prefix: str | None, client: lakefs.Client) -> dict[str, str]:
    """All tags (starting with ``prefix``) of ``repository``, tag name to commit ID."""
    tags: dict[str, str] = {}
    after = ""
    try:
        with api_exception_handler():
            while True:
                page = client.sdk_client.tags_api.list_tags(
                    repository, prefix=prefix, after=after, amount=_TAG_PAGE_SIZE
                )
                tags.update((ref.id, ref.commit_id) for ref in page.results)
                if not page.pagination.has_more:
                    return tags
                after = page.pagination.next_offset
    except NotFoundException as error:
        raise RepositoryNotFoundError(f"models repository {repository!r} does not exist") from error


def _model_tags(
    repository: str, model_name: str, *, client: lakefs.Client
) -> tuple[dict[int, str], dict[str, str]]:
    """The version numbers and aliases of ``model_name``, each to its commit ID."""
    versions: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for tag, commit_id in _list_tags(repository, prefix=f"{model_name}-", client=client).items():
        if (match := _VERSION_TAG.match(tag)) and match["model"] == model_name:
            versions[int(match["number"])] = commit_id
        elif (match := _ALIAS_TAG.match(tag)) and match["model"] == model_name:
            aliases[match["alias"]] = commit_id
    return versions, aliases


def _resolve(repository: str, model_name: str, ref: str, *, client: lakefs.Client) -> ModelVersion:
    """Turn a version label, ``latest`` or an alias into the version and its commit."""
    _check_model_name(model_name)
    try:
        versions, aliases = _model_tags(repository, model_name, client=client)
    except RepositoryNotFoundError as error:
        raise ModelNotFoundError(
            f"no models are registered: repository {repository!r} does not exist (register a model first)"
        ) from error
    if not versions:
        known = sorted({entry.model_name for entry in _all_versions(repository, client=client)})
        raise ModelNotFoundError(
            f"model {model_name!r} has no versions in repository {repository!r}; registered models: "
            f"{', '.join(known) or 'none'}"
        )

    def on(commit_id: str) -> tuple[str, ...]:
        return tuple(name for name in ALIASES if aliases.get(name) == commit_id)

    if ref == LATEST:
        number = max(versions)
    elif (match := _VERSION.match(ref or "")) and int(match[1]) in versions:
        number = int(match[1])
    elif ref in ALIASES and ref in aliases:
        by_commit = {commit_id: number for number, commit_id in versions.items()}
        if aliases[ref] not in by_commit:
            raise ModelIntegrityError(
                f"alias {ref!r} of model {model_name!r} points at commit {aliases[ref]}, which is no "
                f"registered version ({_describe(versions, aliases)}): it was moved outside the "
                "registry; point it again with set_alias"
            )
        number = by_commit[aliases[ref]]
    else:
        what = f"alias {ref!r} is not set" if ref in ALIASES else f"unknown version or alias {ref!r}"
        raise ModelNotFoundError(
            f"model {model_name!r}: {what}. It has {_describe(versions, aliases)}; use a version, "
            f"{LATEST!r}, or an alias ({', '.join(ALIASES)})"
        )
    commit_id = versions[number]
    return ModelVersion(model_name, f"v{number}", commit_id, aliases=on(commit_id))


def _all_versions(repository: str, *, client: lakefs.Client) -> list[ModelVersion]:
    """Every version tag of the repository, without commit times (for error messages)."""
    return [
        ModelVersion(match["model"], f"v{match['number']}", commit_id)
        for tag, commit_id in _list_tags(repository, prefix=None, client=client).items()
        if (match := _VERSION_TAG.match(tag))
    ]


def _describe(versions: Mapping[int, str], aliases: Mapping[str, str]) -> str:
    """'versions v1, v2; aliases champion -> v1' for error messages."""
    by_commit = {commit_id: f"v{number}" for number, commit_id in versions.items()}
    labels = ", ".join(f"v{number}" for number in sorted(versions)) or "none"
    set_aliases = ", ".join(
        f"{name} -> {by_commit.get(commit_id, commit_id)}" for name, commit_id in sorted(aliases.items())
    )
    return f"versions {labels}; aliases {set_aliases or 'none set'}"


def _read_card(repository: str, target: ModelVersion, *, client: lakefs.Client) -> ModelCard:
    """The card of ``target`` read at its commit, checked to belong to that model and version."""
    path = _version_path(target, CARD_FILE)
    payload = _read_object(repository, target.commit_id, path, client=client)
    if payload is None:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no model card at "
            f"{_location(repository, target.commit_id, path)}"
        )
    try:
        card = ModelCard.from_json(payload)
    except ValidationError as error:
        raise ModelIntegrityError(
            f"model card at {_location(repository, target.commit_id, path)} is not a valid card: {error}"
        ) from error
    if (card.model_name, card.version) != (target.model_name, target.version):
        raise ModelIntegrityError(
            f"model card at {_location(repository, target.commit_id, path)} describes {card.model_name!r} "
            f"{card.version}, not {target.model_name!r} {target.version}"
        )
    return card


def _verify_object(
    repository: str, target: ModelVersion, name: str, expected: str, *, client: lakefs.Client
) -> None:
    """Stream one object of ``target`` through SHA-256 and compare with ``expected``."""
    path = _version_path(target, name)
    digest = hashlib.sha256()
    try:
        with (
            api_exception_handler(),
            lakefs.Reference(repository, target.commit_id, client=client).object(path).reader(mode="rb") as r,
        ):
            while chunk := r.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    except NotFoundException as error:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no {name!r} at "
            f"{_location(repository, target.commit_id, path)}"
        ) from error
    if digest.hexdigest() != expected:
        raise ModelIntegrityError(_mismatch(repository, target, path, expected, digest.hexdigest()))


def _read_object(repository: str, commit_id: str, path: str, *, client: lakefs.Client) -> bytes | None:
    """The object's bytes at ``commit_id``, or ``None`` when there is none."""
    try:
        with (
            api_exception_handler(),
            lakefs.Reference(repository, commit_id, client=client).object(path).reader(mode="rb") as reader,
        ):
            return reader.read()
    except NotFoundException:
        return None


def _commit_time(repository: str, commit_id: str, *, client: lakefs.Client) -> datetime:
    """When ``commit_id`` was made, UTC."""
    with api_exception_handler():
        commit = lakefs.Reference(repository, commit_id, client=client).get_commit()
    return datetime.fromtimestamp(commit.creation_date, tz=UTC)


def _mismatch(repository: str, target: ModelVersion, path: str, expected: str, actual: str) -> str:
    """The message for an artifact whose SHA-256 differs from the card's."""
    return (
        f"refusing model {target.model_name!r} {target.version}: "
        f"{_location(repository, target.commit_id, path)} has SHA-256 {actual}, but its model card "
        f"expects {expected}; the artifact was changed or is incomplete"
    )


def _hash_file(path: Path) -> str:
    """SHA-256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _version_path(target: ModelVersion, name: str) -> str:
    """Object path of file ``name`` of a version."""
    return f"models/{target.model_name}/{target.version}/{name}"


def _location(repository: str, commit_id: str, path: str) -> str:
    """lakefs:// URI of an object at a commit."""
    return f"lakefs://{repository}/{commit_id}/{path}"


def _version_tag(model_name: str, number: int) -> str:
    """The immutable tag of a version."""
    return f"{model_name}-v{number}"


def _alias_tag(model_name: str, alias: str) -> str:
    """The movable tag of an alias."""
    return f"{model_name}-{alias}"


def _installed_version(package: str) -> str:
    """The installed distribution's version, or ``unknown``."""
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"
