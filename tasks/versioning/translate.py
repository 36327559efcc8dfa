"""How lakeFS's answers become lockgate's errors: which of repository, ref or path a 404 was about,
and what an unreachable server or refused credentials mean for the user."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import lakefs
import urllib3.exceptions
from lakefs.exceptions import (
    ForbiddenException,
    NotAuthorizedException,
    NotFoundException,
    ServerException,
    api_exception_handler,
)

from infra.errors import (
    ConfigurationError,
    LakeFSUnavailableError,
    LockgateError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryNotFoundError,
)


@contextlib.contextmanager
def lakefs_call(client: lakefs.Client) -> Iterator[None]:
    """Raw SDK errors as ``lakefs`` ones; no answer or refused credentials as lockgate's, naming the
    endpoint and the settings to check."""
    try:
        with api_exception_handler():
            yield
    except urllib3.exceptions.HTTPError as error:  # connection refused, timeouts, broken responses
        raise LakeFSUnavailableError(
            f"lakeFS at {_host(client)} does not answer ({type(error).__name__}): start it (`lockgate up`, "
            "or unset LOCKGATE_LAKEFS_ENDPOINT to use the embedded server) or fix LOCKGATE_LAKEFS_ENDPOINT"
        ) from error
    except NotAuthorizedException as error:
        raise ConfigurationError(
            f"lakeFS at {_host(client)} refused the credentials ({server_message(error)}): check "
            "LOCKGATE_LAKEFS_ACCESS_KEY_ID and LOCKGATE_LAKEFS_SECRET_ACCESS_KEY"
        ) from error
    except ForbiddenException as error:
        raise ConfigurationError(
            f"lakeFS at {_host(client)} forbids this for the configured key ({server_message(error)}): "
            "grant the key access or use another"
        ) from error


def _host(client: lakefs.Client) -> str:
    config = getattr(client, "config", None)
    return getattr(config, "host", None) or "(unknown endpoint)"


def server_message(error: ServerException) -> str:
    """The server's own explanation from an SDK exception, or the exception text."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error)


def missing_error(
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
        with lakefs_call(client):
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
                f"ref {ref!r} not found in repository {repository!r} ({server_message(error)}): use an "
                "existing branch, tag, commit ID, or an expression such as 'main~1' within the history"
            )
    if path is not None:
        where = ", ".join(refs) or ", ".join(branches)
        return ObjectNotFoundError(
            f"no object at path {path!r} in repository {repository!r} at ref {where!r}: "
            "check the path (diff_refs lists what changed) and the ref"
        )
    return LockgateError(f"lakeFS reported 'not found' for repository {repository!r}")
