"""Writing the registry: register a version (an atomic claim of its number), move an alias."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import safetensors.torch
import torch

from infra.errors import InvalidInputError, LockgateError, ModelRegistrationError, TagExistsError
from infra.naming import MODELS_REPOSITORY
from tasks import versioning
from tasks.registry.card import (
    ALIASES,
    CARD_FILE,
    WEIGHTS_FILE,
    ModelCard,
    ModelLineage,
    ModelVersion,
    RegisteredModel,
    alias_tag,
    check_alias,
    check_model_name,
    collect_library_versions,
    current_code_version,
    version_tag,
)
from tasks.registry.read import _model_tags, _read_card, _resolve, _verify_object

if TYPE_CHECKING:
    import lakefs

_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Each lost claim costs one upload; this many concurrent registrations of one model is far beyond use.
_MAX_CLAIM_ATTEMPTS = 20
_HASH_CHUNK_BYTES = 8 * 1024 * 1024


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
    check_model_name(model_name)
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

        namespace = storage_namespace or versioning.default_storage_namespace(repository, client=client)
        if namespace is None:
            raise InvalidInputError(
                f"the lakeFS server suggests no storage namespace for repository {repository!r}: "
                "pass storage_namespace (e.g. 's3://bucket/lockgate-models')"
            )
        models = versioning.ensure_repository(repository, storage_namespace=namespace, client=client)
        main = models.properties.default_branch

        for _ in range(_MAX_CLAIM_ATTEMPTS):
            versions, _ = _model_tags(repository, model_name, client=client)
            number = max(versions, default=0) + 1
            card = ModelCard(**fields, version=f"v{number}")
            # Start from main each time: after a lost claim the branch must hold only this upload, and a
            # retried run (same run_id) replaces the branch its failed attempt left behind.
            versioning.delete_branch(repository, branch, client=client)
            versioning.create_branch(repository, branch, source_ref=main, client=client)
            commit_id = _upload_version(
                repository,
                branch=branch,
                card=card,
                weights_path=weights_path,
                artifact_files=artifact_files,
                scratch=Path(scratch),
                client=client,
            )
            tag = version_tag(model_name, number)
            try:
                versioning.create_tag(repository, tag, ref=commit_id, client=client)
            except TagExistsError:
                continue
            break
        else:
            raise ModelRegistrationError(
                f"could not claim a version number for model {model_name!r} in repository {repository!r} "
                f"after {_MAX_CLAIM_ATTEMPTS} attempts (other registrations kept taking them); nothing "
                f"was registered, branch {branch!r} is kept: try again"
            )

    try:
        versioning.merge_branch(
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
    versioning.delete_branch(repository, branch, client=client, missing_ok=False)
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
    check_alias(alias)
    target = _resolve(repository, model_name, version, client=client)
    card = _read_card(repository, target, client=client)
    _verify_object(repository, target, card.weights_file, card.weights_sha256, client=client)
    for name, digest in card.artifact_sha256.items():
        _verify_object(repository, target, name, digest, client=client)
    versioning.create_tag(
        repository, alias_tag(model_name, alias), ref=target.commit_id, client=client, force=True
    )
    _, aliases = _model_tags(repository, model_name, client=client)
    on_target = tuple(name for name in ALIASES if aliases.get(name) == target.commit_id)
    return ModelVersion(model_name, target.version, target.commit_id, target.created_at, on_target)


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
    versioning.upload_file(
        weights_path, repository=repository, branch=branch, path=f"{folder}/{WEIGHTS_FILE}", client=client
    )
    for name, local in artifact_files.items():
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        versioning.upload_file(
            local,
            repository=repository,
            branch=branch,
            path=f"{folder}/{name}",
            client=client,
            content_type=content_type,
        )
    card_path = scratch / CARD_FILE
    card_path.write_text(card.to_json(), encoding="utf-8")
    versioning.upload_file(
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
    return versioning.commit_changes(
        repository,
        branch,
        message=f"Model {card.model_name} {card.version}",
        metadata=metadata,
        client=client,
    )


def _hash_file(path: Path) -> str:
    """SHA-256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
