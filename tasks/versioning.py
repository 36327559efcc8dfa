"""Versioned storage over the lakeFS API: repositories, branches, Parquet objects, commits, diffs, merges.

Plain functions over the official ``lakefs`` SDK. The client is always passed in (``client=``), so the
same code talks to the embedded server or to a real lakeFS. SDK exceptions are translated into the
project's own types (``tasks.errors``) with the repository, ref and path in the message. Prefect
``@task`` adapters live in ``tasks.versioning_tasks``.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import lakefs
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from lakefs.exceptions import (
    BadRequestException,
    ConflictException,
    NotFoundException,
    ServerException,
    api_exception_handler,
)
from lakefs.models import Commit
from pydantic.v1 import ValidationError as SdkValidationError

from infra.errors import (
    BranchExistsError,
    DataFormatError,
    InvalidInputError,
    InvalidMetadataError,
    LockgateError,
    MergeConflictError,
    NoChangesError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryConflictError,
    RepositoryNotFoundError,
)

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
MERGE_STRATEGIES = ("dest-wins", "source-wins")
# Object metadata travels as X-Lakefs-Meta-<key> HTTP headers, so keys must be header-name tokens.
_OBJECT_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_BRANCH_NAME_HINT = "branch names use letters, digits, '_' and '-' only (no '/', '.', '~' or spaces)"


@dataclass(frozen=True)
class Change:
    """One difference between two refs.

    Attributes:
        path: Object path (or common prefix) that differs.
        type: ``added``, ``removed``, ``changed``, ``conflict`` or ``prefix_changed``.
        size: Size in bytes of the object on the right-hand side, when the server reports it.
    """

    path: str
    type: str
    size: int | None


@dataclass(frozen=True)
class BranchHead:
    """A branch and the commit it points at."""

    name: str
    commit_id: str


def validate_metadata(
    metadata: Mapping[str, object] | None, *, what: str = "commit metadata"
) -> dict[str, str]:
    """Check that ``metadata`` maps non-empty string keys to string values, as lakeFS requires.

    Args:
        metadata: The mapping to check; ``None`` means no metadata.
        what: How to name the mapping in error messages (``"commit metadata"``, ``"object metadata"``).

    Returns:
        A plain ``dict`` copy of the metadata (empty when ``None``).

    Raises:
        InvalidMetadataError: naming the first offending key and what to pass instead.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidMetadataError(
            f"{what} must be a mapping of str to str, got {type(metadata).__name__}: pass a dict"
        )
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadataError(
                f"{what} key {key!r} is not a non-empty string: lakeFS keys are strings"
            )
        if what == "object metadata" and not _OBJECT_METADATA_KEY.match(key):
            raise InvalidMetadataError(
                f"{what} key {key!r} is not allowed: use letters, digits, '_' and '-' "
                "(keys are sent as HTTP header names)"
            )
        if not isinstance(value, str):
            raise InvalidMetadataError(
                f"{what} key {key!r} has a {type(value).__name__} value {value!r}: lakeFS metadata maps "
                f"strings to strings, so pass {key!r}: {str(value)!r} (or json.dumps the value)"
            )
        if "\r" in value or "\n" in value:
            raise InvalidMetadataError(f"{what} key {key!r} has a line break in its value: remove it")
        checked[key] = value
    return checked


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
                f"cannot create repository {name!r} at {storage_namespace!r}: {_server_message(error)}"
            ) from error
        properties = repository.properties
    except BadRequestException as error:
        raise InvalidInputError(f"invalid repository name {name!r}: {_server_message(error)}") from error
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
    config = client.sdk_client.config_api.get_config().storage_config
    prefix = config.default_namespace_prefix if config is not None else None
    if not prefix:
        return None
    # "local://" and "s3://bucket/prefix/" both take the name directly after their last separator.
    return prefix + repository if prefix.endswith("/") else f"{prefix}/{repository}"


def create_branch(
    repository: str,
    branch: str,
    *,
    source_ref: str,
    client: lakefs.Client,
    exist_ok: bool = False,
) -> lakefs.Branch:
    """Create ``branch`` in ``repository`` pointing at ``source_ref``.

    Args:
        repository: Repository name.
        branch: New branch name (letters, digits, ``_`` and ``-``).
        source_ref: Branch, tag, commit ID or ref expression to branch from.
        client: The lakeFS client to use.
        exist_ok: Return an existing branch of that name (wherever it points) instead of failing.

    Returns:
        The branch.

    Raises:
        BranchExistsError: the branch exists and ``exist_ok`` is false.
        RefNotFoundError: ``source_ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
        InvalidInputError: the branch name was refused.
    """
    handle = lakefs.Branch(repository, branch, client=client)
    try:
        handle.create(source_ref, exist_ok=exist_ok)
    except ConflictException as error:
        raise BranchExistsError(
            f"branch {branch!r} already exists in repository {repository!r}: pick a new name, "
            "pass exist_ok=True to reuse it, or delete it first"
        ) from error
    except NotFoundException as error:
        raise _missing_error(repository, client=client, refs=[source_ref]) from error
    except BadRequestException as error:
        raise InvalidInputError(
            f"cannot create branch {branch!r} in repository {repository!r}: {_server_message(error)}. "
            f"Hint: {_BRANCH_NAME_HINT}"
        ) from error
    return handle


def write_dataframe(
    df: pd.DataFrame,
    *,
    repository: str,
    branch: str,
    path: str,
    client: lakefs.Client,
    metadata: Mapping[str, str] | None = None,
) -> lakefs.ObjectInfo:
    """Write ``df`` as one Parquet object to ``path`` on ``branch`` (uncommitted until ``commit_changes``).

    The DataFrame is serialised in memory first, so a DataFrame that cannot be encoded leaves the
    branch untouched; an existing object at ``path`` is replaced only by a complete upload.

    Args:
        df: The data; its index and dtypes are kept in the Parquet schema.
        repository: Repository name.
        branch: Branch to write to (tags and commits are read-only).
        path: Object path, e.g. ``datasets/readings.parquet``.
        client: The lakeFS client to use.
        metadata: Object user metadata (str to str; keys are letters, digits, ``_`` and ``-``).

    Returns:
        The stored object's stats (path, checksum, size, content type, metadata).

    Raises:
        InvalidInputError: ``df`` is not a DataFrame, cannot be encoded, or ``path`` is invalid.
        InvalidMetadataError: ``metadata`` is not str to str.
        RefNotFoundError: the branch does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError(f"write_dataframe needs a pandas DataFrame, got {type(df).__name__}")
    _check_object_path(path)
    object_metadata = validate_metadata(metadata, what="object metadata")
    payload = _encode_parquet(df, location=f"lakefs://{repository}/{branch}/{path}")
    return _upload(
        io.BytesIO(payload),
        repository=repository,
        branch=branch,
        path=path,
        client=client,
        content_type=PARQUET_CONTENT_TYPE,
        metadata=object_metadata,
    )


def upload_file(
    local_path: Path,
    *,
    repository: str,
    branch: str,
    path: str,
    client: lakefs.Client,
    content_type: str = "application/octet-stream",
    metadata: Mapping[str, str] | None = None,
) -> lakefs.ObjectInfo:
    """Upload a local file to ``path`` on ``branch`` in bounded memory (uncommitted).

    Args:
        local_path: The file to upload.
        repository: Repository name.
        branch: Branch to write to.
        path: Object path on the branch.
        client: The lakeFS client to use.
        content_type: Content type stored with the object.
        metadata: Object user metadata (str to str).

    Returns:
        The stored object's stats.

    Raises:
        InvalidInputError: invalid path or metadata.
        RefNotFoundError: the branch does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    _check_object_path(path)
    object_metadata = validate_metadata(metadata, what="object metadata")
    with open(local_path, "rb") as source:
        return _upload(
            source,
            repository=repository,
            branch=branch,
            path=path,
            client=client,
            content_type=content_type,
            metadata=object_metadata,
        )


def _upload(
    source: BinaryIO,
    *,
    repository: str,
    branch: str,
    path: str,
    client: lakefs.Client,
    content_type: str,
    metadata: dict[str, str],
) -> lakefs.ObjectInfo:
    """Stream ``source`` into one object; the object appears only when the upload is complete."""
    stored = lakefs.Branch(repository, branch, client=client).object(path)
    try:
        # Resolve (and cache) the repository first: the SDK's writer looks it up after opening its
        # buffer file and leaks that file when the repository is missing.
        stored.storage_id()
        # The SDK's presigned-upload path lets raw lakefs_sdk errors escape; map them to lakefs ones.
        with (
            api_exception_handler(),
            stored.writer(mode="wb", content_type=content_type, metadata=metadata or None) as writer,
        ):
            shutil.copyfileobj(source, writer, length=1024 * 1024)
        return stored.stat()
    except NotFoundException as error:
        raise _missing_error(repository, client=client, branches=[branch]) from error
    except BadRequestException as error:
        raise InvalidInputError(
            f"cannot write lakefs://{repository}/{branch}/{path}: {_server_message(error)}"
        ) from error


def commit_changes(
    repository: str,
    branch: str,
    *,
    message: str,
    metadata: Mapping[str, str],
    client: lakefs.Client,
    allow_empty: bool = False,
) -> str:
    """Commit the uncommitted changes on ``branch``.

    Args:
        repository: Repository name.
        branch: Branch to commit.
        message: Commit message (non-empty).
        metadata: Commit metadata, str to str (e.g. run IDs, row counts as strings).
        client: The lakeFS client to use.
        allow_empty: Record a commit even when nothing changed.

    Returns:
        The new commit ID.

    Raises:
        InvalidMetadataError: a metadata key or value is not a string; nothing is committed.
        InvalidInputError: the message is empty.
        NoChangesError: nothing to commit and ``allow_empty`` is false.
        RefNotFoundError: the branch does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    commit_metadata = validate_metadata(metadata, what="commit metadata")
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError(f"commit message for branch {branch!r} must be a non-empty string")
    try:
        reference = lakefs.Branch(repository, branch, client=client).commit(
            message, metadata=commit_metadata, allow_empty=allow_empty
        )
    except NotFoundException as error:
        raise _missing_error(repository, client=client, branches=[branch]) from error
    except BadRequestException as error:
        if "no changes" in _server_message(error).lower():
            raise NoChangesError(
                f"nothing to commit on branch {branch!r} of repository {repository!r}: write objects "
                "first, or pass allow_empty=True to record an empty commit"
            ) from error
        raise InvalidInputError(
            f"commit on {repository!r}/{branch!r} refused: {_server_message(error)}"
        ) from error
    return reference.id


def diff_refs(
    repository: str,
    *,
    left_ref: str,
    right_ref: str,
    prefix: str = "",
    client: lakefs.Client,
) -> list[Change]:
    """List what ``right_ref`` changed relative to ``left_ref`` (as a merge of right into left would see it).

    Args:
        repository: Repository name.
        left_ref: Base ref (e.g. ``main``).
        right_ref: Compared ref (e.g. a feature branch).
        prefix: Only paths starting with this prefix.
        client: The lakeFS client to use.

    Returns:
        The changes, sorted by path.

    Raises:
        RefNotFoundError: either ref does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    reference = lakefs.Reference(repository, left_ref, client=client)
    try:
        changes = [
            Change(path=change.path, type=change.type, size=change.size_bytes)
            for change in reference.diff(right_ref, prefix=prefix or None)
        ]
    except NotFoundException as error:
        raise _missing_error(repository, client=client, refs=[left_ref, right_ref]) from error
    return sorted(changes, key=lambda change: change.path)


def merge_branch(
    repository: str,
    *,
    source_ref: str,
    destination_branch: str,
    client: lakefs.Client,
    message: str | None = None,
    metadata: Mapping[str, str] | None = None,
    strategy: str | None = None,
    allow_empty: bool = False,
) -> str:
    """Merge ``source_ref`` into ``destination_branch`` atomically.

    Args:
        repository: Repository name.
        source_ref: Branch, tag or commit to merge.
        destination_branch: Branch that receives the merge commit.
        client: The lakeFS client to use.
        message: Merge commit message (the server picks one when omitted).
        metadata: Merge commit metadata, str to str.
        strategy: ``None`` (conflicts fail), ``"source-wins"`` or ``"dest-wins"``.
        allow_empty: Record a merge commit even when the source adds nothing.

    Returns:
        The merge commit ID.

    Raises:
        MergeConflictError: both sides changed the same paths; the destination is unchanged.
        NoChangesError: nothing to merge and ``allow_empty`` is false.
        InvalidMetadataError: a metadata key or value is not a string; nothing is merged.
        InvalidInputError: unknown strategy.
        RefNotFoundError: the source or destination does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    merge_metadata = validate_metadata(metadata, what="merge metadata")
    if strategy is not None and strategy not in MERGE_STRATEGIES:
        raise InvalidInputError(
            f"unknown merge strategy {strategy!r}: use None (fail on conflict), "
            + " or ".join(repr(known) for known in MERGE_STRATEGIES)
        )
    options: dict[str, object] = {"allow_empty": allow_empty}
    if message is not None:
        options["message"] = message
    if merge_metadata:
        options["metadata"] = merge_metadata
    if strategy is not None:
        options["strategy"] = strategy
    try:
        return lakefs.Reference(repository, source_ref, client=client).merge_into(
            destination_branch, **options
        )
    except ConflictException as error:
        raise MergeConflictError(
            f"merging {source_ref!r} into {destination_branch!r} in repository {repository!r} conflicts "
            f"({_server_message(error)}); {destination_branch!r} is unchanged. To resolve: merge "
            f"{destination_branch!r} into the source branch, fix the conflicting objects there, commit, "
            "and merge again; or pass strategy='source-wins' or 'dest-wins' to pick a side"
        ) from error
    except NotFoundException as error:
        raise _missing_error(
            repository, client=client, refs=[source_ref], branches=[destination_branch]
        ) from error
    except BadRequestException as error:
        if "no changes" in _server_message(error).lower():
            raise NoChangesError(
                f"nothing to merge from {source_ref!r} into {destination_branch!r} in repository "
                f"{repository!r}: pass allow_empty=True to record an empty merge"
            ) from error
        raise InvalidInputError(
            f"merge of {source_ref!r} into {destination_branch!r} refused: {_server_message(error)}"
        ) from error


def read_dataframe(repository: str, *, ref: str, path: str, client: lakefs.Client) -> pd.DataFrame:
    """Read the Parquet object at ``path`` as it is at ``ref``.

    Args:
        repository: Repository name.
        ref: Branch, tag, commit ID or ref expression such as ``main~1``.
        path: Object path.
        client: The lakeFS client to use.

    Returns:
        The DataFrame, with the index and dtypes it was written with.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        ObjectNotFoundError: ``ref`` has no object at ``path``.
        RepositoryNotFoundError: the repository does not exist.
        DataFormatError: the object is not Parquet.
    """
    _check_object_path(path)
    try:
        with (
            api_exception_handler(),
            lakefs.Reference(repository, ref, client=client).object(path).reader(mode="rb") as reader,
        ):
            payload = reader.read()
    except NotFoundException as error:  # includes the SDK's ObjectNotFoundException
        raise _missing_error(repository, client=client, refs=[ref], path=path) from error
    try:
        return pq.read_table(io.BytesIO(payload)).to_pandas()
    except (pa.ArrowInvalid, OSError) as error:
        raise DataFormatError(
            f"lakefs://{repository}/{ref}/{path} is not a readable Parquet file ({error}); "
            "was it written with write_dataframe?"
        ) from error


def log_commits(repository: str, *, ref: str, client: lakefs.Client, limit: int = 20) -> list[Commit]:
    """The newest ``limit`` commits reachable from ``ref``, newest first.

    Args:
        repository: Repository name.
        ref: Branch, tag or commit to start from.
        client: The lakeFS client to use.
        limit: Most commits to return.

    Returns:
        The commits (ID, parents, message, metadata, creation date, committer).

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        return list(lakefs.Reference(repository, ref, client=client).log(max_amount=limit))
    except NotFoundException as error:
        raise _missing_error(repository, client=client, refs=[ref]) from error


def list_branches(repository: str, *, client: lakefs.Client) -> list[BranchHead]:
    """All branches of ``repository`` with their head commits, sorted by name.

    Args:
        repository: Repository name.
        client: The lakeFS client to use.

    Returns:
        The branches.

    Raises:
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        branches = list(lakefs.Repository(repository, client=client).branches())
    except NotFoundException as error:
        raise _missing_error(repository, client=client) from error
    return sorted(
        (BranchHead(name=branch.id, commit_id=branch.get_commit().id) for branch in branches),
        key=lambda head: head.name,
    )


def _check_object_path(path: str) -> None:
    """Refuse paths lakeFS would store under a surprising name."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidInputError(f"object path must be a non-empty string, got {path!r}")
    if path.startswith("/") or path.endswith("/"):
        raise InvalidInputError(
            f"object path {path!r} must not start or end with '/': use e.g. 'datasets/readings.parquet'"
        )


def _encode_parquet(df: pd.DataFrame, *, location: str) -> bytes:
    """Serialise ``df`` to Parquet bytes."""
    try:
        table = pa.Table.from_pandas(df)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        raise InvalidInputError(f"cannot encode the DataFrame for {location} as Parquet: {error}") from error
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _server_message(error: ServerException) -> str:
    """The server's own explanation from an SDK exception, or the exception text."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error)


def _missing_error(
    repository: str,
    *,
    client: lakefs.Client,
    refs: Iterable[str] = (),
    branches: Iterable[str] = (),
    path: str | None = None,
) -> LockgateError:
    """Work out which of repository, branch, ref or path a 404 was about, as the error to raise.

    lakeFS answers 404 for all of them (object reads even with an empty body), so each candidate is
    checked in turn; this runs only on the error path.
    """
    try:
        lakefs.Repository(repository, client=client).properties  # noqa: B018 - the fetch is the check
    except NotFoundException:
        return RepositoryNotFoundError(
            f"repository {repository!r} does not exist on the lakeFS server: create it with ensure_repository"
        )
    for branch in branches:
        try:
            lakefs.Branch(repository, branch, client=client).head  # noqa: B018 - the fetch is the check
        except NotFoundException:
            return RefNotFoundError(
                f"branch {branch!r} does not exist in repository {repository!r}: create it with "
                "create_branch (tags and commit IDs cannot be written to)"
            )
    for ref in refs:
        try:
            lakefs.Reference(repository, ref, client=client).get_commit()
        except NotFoundException as error:
            return RefNotFoundError(
                f"ref {ref!r} not found in repository {repository!r} ({_server_message(error)}): use an "
                "existing branch, tag, commit ID, or an expression such as 'main~1' within the history"
            )
    if path is not None:
        where = ", ".join(refs) or ", ".join(branches)
        return ObjectNotFoundError(
            f"no object at path {path!r} in repository {repository!r} at ref {where!r}: "
            "check the path (diff_refs lists what changed) and the ref"
        )
    return LockgateError(f"lakeFS reported 'not found' for repository {repository!r}")
