"""Repositories: create-if-missing, and the storage namespace the server suggests."""

from __future__ import annotations

import lakefs
from lakefs.exceptions import BadRequestException, NotFoundException
from pydantic.v1 import ValidationError as SdkValidationError

from infra.errors import InvalidInputError, RepositoryConflictError, RepositoryNotFoundError
from tasks.versioning.translate import lakefs_call, missing_error, server_message


def ensure_repository(
    name: str,
    *,
    storage_namespace: str,
    default_branch: str = "main",
    client: lakefs.Client,
) -> lakefs.Repository:
    """Return the repository ``name``, creating it when it does not exist yet.

    Idempotent: calling it again with the same namespace returns the existing repository (its default
    branch is left as it is).

    Args:
        name: Repository name (3-63 lower-case letters, digits and hyphens).
        storage_namespace: Where the repository's objects live, e.g. ``local://name`` or ``s3://bucket/name``.
        default_branch: Default branch of a newly created repository.
        client: The lakeFS client to use.

    Returns:
        The repository.

    Raises:
        RepositoryConflictError: the repository exists with another storage namespace.
        InvalidInputError: the name or namespace was refused.
    """
    repository = lakefs.Repository(name, client=client)
    try:
        with lakefs_call(client):
            properties = repository.properties
    except NotFoundException:
        try:
            repository.create(
                storage_namespace=storage_namespace, default_branch=default_branch, exist_ok=True
            )
        except SdkValidationError as error:
            raise InvalidInputError(
                f"invalid repository name {name!r}: use 3-63 lower-case letters, digits and hyphens, "
                "starting with a letter or digit"
            ) from error
        except BadRequestException as error:
            raise InvalidInputError(
                f"cannot create repository {name!r} at {storage_namespace!r}: {server_message(error)}"
            ) from error
        properties = repository.properties
    except BadRequestException as error:
        raise InvalidInputError(f"invalid repository name {name!r}: {server_message(error)}") from error
    if properties.storage_namespace != storage_namespace:
        raise RepositoryConflictError(
            f"repository {name!r} already exists with storage namespace {properties.storage_namespace!r}, "
            f"not {storage_namespace!r}: use that namespace, or choose another repository name"
        )
    return repository


def default_storage_namespace(repository: str, *, client: lakefs.Client) -> str | None:
    """The namespace the server suggests for a new repository, or ``None`` when it suggests none.

    Args:
        repository: Name of the repository to place.
        client: The lakeFS client to use.

    Returns:
        ``<server default prefix>/<repository>`` (``local://<repository>`` on a local block store).
    """
    # Asked afresh: lakefs 0.16 caches storage configs in a dict shared by every Client in the process,
    # so client.storage_config can describe another server.
    with lakefs_call(client):
        config = client.sdk_client.config_api.get_config().storage_config
    prefix = config.default_namespace_prefix if config is not None else None
    if not prefix:
        return None
    # "local://" and "s3://bucket/prefix/" both take the name directly after their last separator.
    return prefix + repository if prefix.endswith("/") else f"{prefix}/{repository}"


def ensure_default_repository(name: str, *, client: lakefs.Client) -> lakefs.Repository:
    """The repository ``name`` as it is, or created in the namespace the server suggests (for lockgate's
    own repositories, which a person may also have created by hand wherever they like).

    Raises:
        InvalidInputError: it is missing and the server suggests no namespace (a real lakeFS without a
            default prefix): create it yourself, then lockgate uses it.
    """
    repository = lakefs.Repository(name, client=client)
    try:
        with lakefs_call(client):
            repository.properties  # noqa: B018 - the fetch is the check
        return repository
    except NotFoundException:
        pass
    except BadRequestException as error:
        raise InvalidInputError(f"invalid repository name {name!r}: {server_message(error)}") from error
    namespace = default_storage_namespace(name, client=client)
    if namespace is None:
        raise InvalidInputError(
            f"the lakeFS server suggests no storage namespace for repository {name!r}: create it yourself "
            f"(e.g. `lakectl repo create lakefs://{name} s3://bucket/{name}`)"
        )
    return ensure_repository(name, storage_namespace=namespace, client=client)


def default_branch(repository: str, *, client: lakefs.Client) -> str:
    """The repository's default branch (``main`` unless it was created otherwise)."""
    try:
        with lakefs_call(client):
            return lakefs.Repository(repository, client=client).properties.default_branch
    except NotFoundException as error:
        raise missing_error(repository, client=client) from error


def gc_rules(repository: str, *, client: lakefs.Client) -> dict[str, int] | None:
    """The repository's garbage-collection rules as ``{branch or "*": days}``, None when unset.

    ``"*"`` is the default retention; lakeFS and the embedded server keep the same rules.

    Raises:
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            rules = client.sdk_client.repositories_api.get_gc_rules(repository)
    except NotFoundException as error:  # unset rules and a missing repository both answer 404
        missing = missing_error(repository, client=client)
        if isinstance(missing, RepositoryNotFoundError):
            raise missing from error
        return None
    found = {"*": rules.default_retention_days}
    found.update({rule.branch_id: rule.retention_days for rule in rules.branches or []})
    return found


def set_gc_rules(repository: str, rules: dict[str, int], *, client: lakefs.Client) -> None:
    """Set the repository's garbage-collection rules (``{"*": default days, branch: days}``).

    Raises:
        InvalidInputError: no default, or the server refused a rule (e.g. fewer than 1 day).
        RepositoryNotFoundError: the repository does not exist.
    """
    import lakefs_sdk

    if "*" not in rules:
        raise InvalidInputError(f"GC rules for {repository!r} need a default retention ('*')")
    body = lakefs_sdk.GarbageCollectionRules(
        default_retention_days=rules["*"],
        branches=[
            lakefs_sdk.GarbageCollectionRule(branch_id=branch, retention_days=days)
            for branch, days in sorted(rules.items())
            if branch != "*"
        ],
    )
    try:
        with lakefs_call(client):
            client.sdk_client.repositories_api.set_gc_rules(repository, body)
    except NotFoundException as error:
        raise missing_error(repository, client=client) from error
    except BadRequestException as error:
        raise InvalidInputError(f"GC rules for {repository!r} refused: {server_message(error)}") from error
