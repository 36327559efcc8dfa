"""Reading the registry: resolve a version, alias or ``latest``, and load only what verifies."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import safetensors.torch
from pydantic import ValidationError

from infra.errors import (
    ModelIntegrityError,
    ModelNotFoundError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
)
from infra.naming import MODELS_REPOSITORY
from tasks import versioning
from tasks.registry.card import (
    _ALIAS_TAG,
    _VERSION,
    _VERSION_TAG,
    ALIASES,
    CARD_FILE,
    LATEST,
    LoadedModel,
    ModelCard,
    ModelVersion,
    check_alias,
    check_model_name,
    location,
    version_path,
)

if TYPE_CHECKING:
    import lakefs

_HASH_CHUNK_BYTES = 8 * 1024 * 1024


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
    check_alias(alias)
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
        check_model_name(model_name)
    try:
        tags = versioning.list_tags(
            repository, prefix=f"{model_name}-" if model_name else None, client=client
        )
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
                created_at=versioning.commit_time(repository, commit_id, client=client),
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
    path = version_path(target, card.weights_file)
    try:
        state_dict = safetensors.torch.load(payload)
    except Exception as error:  # safetensors raises its own SafetensorError, not exported stably
        raise ModelIntegrityError(
            f"weights at {location(repository, target.commit_id, path)} match their SHA-256 but are not "
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
    path = version_path(target, name)
    payload = _read_object(repository, target.commit_id, path, client=client)
    if payload is None:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no {what or repr(name)} at "
            f"{location(repository, target.commit_id, path)}; re-register the model"
        )
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(_mismatch(repository, target, path, expected, actual))
    return payload


def _model_tags(
    repository: str, model_name: str, *, client: lakefs.Client
) -> tuple[dict[int, str], dict[str, str]]:
    """The version numbers and aliases of ``model_name``, each to its commit ID."""
    versions: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for tag, commit_id in versioning.list_tags(repository, prefix=f"{model_name}-", client=client).items():
        if (match := _VERSION_TAG.match(tag)) and match["model"] == model_name:
            versions[int(match["number"])] = commit_id
        elif (match := _ALIAS_TAG.match(tag)) and match["model"] == model_name:
            aliases[match["alias"]] = commit_id
    return versions, aliases


def _resolve(repository: str, model_name: str, ref: str, *, client: lakefs.Client) -> ModelVersion:
    """Turn a version label, ``latest`` or an alias into the version and its commit."""
    check_model_name(model_name)
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
        for tag, commit_id in versioning.list_tags(repository, client=client).items()
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
    path = version_path(target, CARD_FILE)
    payload = _read_object(repository, target.commit_id, path, client=client)
    if payload is None:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no model card at "
            f"{location(repository, target.commit_id, path)}"
        )
    try:
        card = ModelCard.from_json(payload)
    except ValidationError as error:
        raise ModelIntegrityError(
            f"model card at {location(repository, target.commit_id, path)} is not a valid card: {error}"
        ) from error
    if (card.model_name, card.version) != (target.model_name, target.version):
        raise ModelIntegrityError(
            f"model card at {location(repository, target.commit_id, path)} describes {card.model_name!r} "
            f"{card.version}, not {target.model_name!r} {target.version}"
        )
    return card


def _verify_object(
    repository: str, target: ModelVersion, name: str, expected: str, *, client: lakefs.Client
) -> None:
    """Stream one object of ``target`` through SHA-256 and compare with ``expected``."""
    path = version_path(target, name)
    digest = hashlib.sha256()
    try:
        with versioning.open_object(
            repository, ref=target.commit_id, path=path, client=client, pre_sign=None
        ) as reader:
            while chunk := reader.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    except ObjectNotFoundError as error:
        raise ModelIntegrityError(
            f"model {target.model_name!r} {target.version} is incomplete: no {name!r} at "
            f"{location(repository, target.commit_id, path)}"
        ) from error
    if digest.hexdigest() != expected:
        raise ModelIntegrityError(_mismatch(repository, target, path, expected, digest.hexdigest()))


def _read_object(repository: str, commit_id: str, path: str, *, client: lakefs.Client) -> bytes | None:
    """The object's bytes at ``commit_id``, or ``None`` when there is none."""
    try:
        return versioning.read_object(repository, ref=commit_id, path=path, client=client)
    except ObjectNotFoundError:
        return None


def _mismatch(repository: str, target: ModelVersion, path: str, expected: str, actual: str) -> str:
    """The message for an artifact whose SHA-256 differs from the card's."""
    return (
        f"refusing model {target.model_name!r} {target.version}: "
        f"{location(repository, target.commit_id, path)} has SHA-256 {actual}, but its model card "
        f"expects {expected}; the artifact was changed or is incomplete"
    )
