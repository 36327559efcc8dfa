"""Refs: branches, commits, tags, diffs and merges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import lakefs
import lakefs_sdk
from lakefs.exceptions import BadRequestException, ConflictException, NotFoundException
from lakefs.models import Commit

from infra.errors import (
    BranchExistsError,
    InvalidInputError,
    MergeConflictError,
    NoChangesError,
    RefNotFoundError,
    RepositoryNotFoundError,
    TagExistsError,
)
from tasks.versioning.objects import validate_metadata
from tasks.versioning.translate import lakefs_call, missing_error, server_message

MERGE_STRATEGIES = ("dest-wins", "source-wins")
_BRANCH_NAME_HINT = "branch names use letters, digits, '_' and '-' only (no '/', '.', '~' or spaces)"
_TAG_PAGE_SIZE = 1000


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
        with lakefs_call(client):
            handle.create(source_ref, exist_ok=exist_ok)
    except ConflictException as error:
        raise BranchExistsError(
            f"branch {branch!r} already exists in repository {repository!r}: pick a new name, "
            "pass exist_ok=True to reuse it, or delete it first"
        ) from error
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[source_ref]) from error
    except BadRequestException as error:
        raise InvalidInputError(
            f"cannot create branch {branch!r} in repository {repository!r}: {server_message(error)}. "
            f"Hint: {_BRANCH_NAME_HINT}"
        ) from error
    return handle


def commit_changes(
    repository: str,
    branch: str,
    *,
    message: str,
    metadata: Mapping[str, str],
    client: lakefs.Client,
    allow_empty: bool = False,
    date: datetime | None = None,
) -> str:
    """Commit the uncommitted changes on ``branch``.

    Args:
        repository: Repository name.
        branch: Branch to commit.
        message: Commit message (non-empty).
        metadata: Commit metadata, str to str (e.g. run IDs, row counts as strings).
        client: The lakeFS client to use.
        allow_empty: Record a commit even when nothing changed.
        date: The commit's creation date (lakeFS's ``date``); the server's clock when unset.

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
        with lakefs_call(client):
            options = {"date": int(date.timestamp())} if date is not None else {}
            reference = lakefs.Branch(repository, branch, client=client).commit(
                message, metadata=commit_metadata, allow_empty=allow_empty, **options
            )
    except NotFoundException as error:
        raise missing_error(repository, client=client, branches=[branch]) from error
    except BadRequestException as error:
        if "no changes" in server_message(error).lower():
            raise NoChangesError(
                f"nothing to commit on branch {branch!r} of repository {repository!r}: write objects "
                "first, or pass allow_empty=True to record an empty commit"
            ) from error
        raise InvalidInputError(
            f"commit on {repository!r}/{branch!r} refused: {server_message(error)}"
        ) from error
    return reference.id


def diff_refs(
    repository: str,
    *,
    left_ref: str,
    right_ref: str,
    prefix: str = "",
    client: lakefs.Client,
    two_dot: bool = False,
) -> list[Change]:
    """List what ``right_ref`` changed relative to ``left_ref`` (as a merge of right into left would see it).

    Args:
        repository: Repository name.
        left_ref: Base ref (e.g. ``main``).
        right_ref: Compared ref (e.g. a feature branch).
        prefix: Only paths starting with this prefix.
        client: The lakeFS client to use.
        two_dot: Compare the two refs' contents directly (lakeFS's two-dot diff) instead of what
            ``right_ref`` changed since the refs' merge base; the same for refs on one line of history.

    Returns:
        The changes, sorted by path.

    Raises:
        RefNotFoundError: either ref does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    reference = lakefs.Reference(repository, left_ref, client=client)
    kind = {"type": "two_dot"} if two_dot else {}  # the server's default is three-dot
    try:
        with lakefs_call(client):
            changes = [
                Change(path=change.path, type=change.type, size=change.size_bytes)
                for change in reference.diff(right_ref, prefix=prefix or None, **kind)
            ]
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[left_ref, right_ref]) from error
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
        with lakefs_call(client):
            return lakefs.Reference(repository, source_ref, client=client).merge_into(
                destination_branch, **options
            )
    except ConflictException as error:
        raise MergeConflictError(
            f"merging {source_ref!r} into {destination_branch!r} in repository {repository!r} conflicts "
            f"({server_message(error)}); {destination_branch!r} is unchanged. To resolve: merge "
            f"{destination_branch!r} into the source branch, fix the conflicting objects there, commit, "
            "and merge again; or pass strategy='source-wins' or 'dest-wins' to pick a side"
        ) from error
    except NotFoundException as error:
        raise missing_error(
            repository, client=client, refs=[source_ref], branches=[destination_branch]
        ) from error
    except BadRequestException as error:
        if "no changes" in server_message(error).lower():
            raise NoChangesError(
                f"nothing to merge from {source_ref!r} into {destination_branch!r} in repository "
                f"{repository!r}: pass allow_empty=True to record an empty merge"
            ) from error
        raise InvalidInputError(
            f"merge of {source_ref!r} into {destination_branch!r} refused: {server_message(error)}"
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
        with lakefs_call(client):
            return list(lakefs.Reference(repository, ref, client=client).log(max_amount=limit))
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


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
        with lakefs_call(client):
            branches = list(lakefs.Repository(repository, client=client).branches())
            heads = [BranchHead(name=branch.id, commit_id=branch.get_commit().id) for branch in branches]
    except NotFoundException as error:
        raise missing_error(repository, client=client) from error
    return sorted(heads, key=lambda head: head.name)


def resolve_ref(repository: str, ref: str, *, client: lakefs.Client) -> str:
    """The commit ID ``ref`` (branch, tag, commit or expression such as ``main~1``) points at now.

    Pin a ref once and use the commit from then on: a branch may move meanwhile.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    return get_commit(repository, ref, client=client).id


def get_commit(repository: str, ref: str, *, client: lakefs.Client) -> Commit:
    """The commit ``ref`` points at (ID, parents, message, metadata, creation date, committer).

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            return lakefs.Reference(repository, ref, client=client).get_commit()
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


def commit_time(repository: str, ref: str, *, client: lakefs.Client) -> datetime:
    """When the commit ``ref`` points at was made (UTC)."""
    return datetime.fromtimestamp(get_commit(repository, ref, client=client).creation_date, tz=UTC)


def head_commit(repository: str, branch: str = "main", *, client: lakefs.Client) -> str | None:
    """The commit ``branch`` points at, or ``None`` while the repository or the branch does not exist."""
    try:
        return resolve_ref(repository, branch, client=client)
    except (RepositoryNotFoundError, RefNotFoundError):
        return None


def delete_branch(repository: str, branch: str, *, client: lakefs.Client, missing_ok: bool = True) -> bool:
    """Delete ``branch``; return whether it existed.

    Raises:
        RefNotFoundError: the branch does not exist and ``missing_ok`` is false.
    """
    try:
        with lakefs_call(client):
            lakefs.Branch(repository, branch, client=client).delete()
    except NotFoundException as error:
        if missing_ok:
            return False
        raise missing_error(repository, client=client, branches=[branch]) from error
    return True


def list_tags(repository: str, *, client: lakefs.Client, prefix: str | None = None) -> dict[str, str]:
    """Every tag (starting with ``prefix``) of ``repository``: tag name to commit ID.

    Raises:
        RepositoryNotFoundError: the repository does not exist.
    """
    tags: dict[str, str] = {}
    after = ""
    try:
        with lakefs_call(client):
            while True:
                page = client.sdk_client.tags_api.list_tags(
                    repository, prefix=prefix, after=after, amount=_TAG_PAGE_SIZE
                )
                tags.update((ref.id, ref.commit_id) for ref in page.results)
                if not page.pagination.has_more:
                    return tags
                after = page.pagination.next_offset
    except NotFoundException as error:
        raise RepositoryNotFoundError(f"repository {repository!r} does not exist") from error


def create_tag(repository: str, tag: str, *, ref: str, client: lakefs.Client, force: bool = False) -> str:
    """Tag the commit ``ref`` points at; return the commit ID.

    A tag is immutable unless ``force`` moves it: creating an existing one is refused, which makes a
    tag a safe claim on a name (two writers never both get it).

    Raises:
        TagExistsError: the tag exists and ``force`` is false.
        RefNotFoundError: ``ref`` does not resolve.
        InvalidInputError: the tag name was refused.
    """
    try:
        with lakefs_call(client):
            created = client.sdk_client.tags_api.create_tag(
                repository, lakefs_sdk.TagCreation(id=tag, ref=ref, force=force)
            )
    except ConflictException as error:
        raise TagExistsError(
            f"tag {tag!r} already exists in repository {repository!r}: tags are immutable"
        ) from error
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error
    except BadRequestException as error:
        raise InvalidInputError(f"cannot create tag {tag!r}: {server_message(error)}") from error
    return created.commit_id


def merge_base(repository: str, left: str, right: str, *, client: lakefs.Client) -> str:
    """The best common ancestor of two refs (a commit ID).

    Raises:
        RefNotFoundError: a ref does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            return client.sdk_client.refs_api.find_merge_base(repository, left, right).base_commit_id
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[left, right]) from error


def has_uncommitted(repository: str, branch: str, *, client: lakefs.Client) -> bool:
    """Whether ``branch`` has staged, uncommitted changes.

    Raises:
        RefNotFoundError: the branch does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            return any(
                True for _ in lakefs.Branch(repository, branch, client=client).uncommitted(max_amount=1)
            )
    except NotFoundException as error:
        raise missing_error(repository, client=client, branches=[branch]) from error
