"""Objects: Parquet and files written to a branch, read back at any ref, listed, streamed."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import lakefs
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from lakefs.exceptions import BadRequestException, NotFoundException

from infra.errors import DataFormatError, InvalidInputError, InvalidMetadataError
from tasks.versioning.translate import lakefs_call, missing_error, server_message

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
# Object metadata travels as X-Lakefs-Meta-<key> HTTP headers, so keys must be header-name tokens.
_OBJECT_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


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
        with lakefs_call(client):
            stored.storage_id()
        # The SDK's presigned-upload path lets raw lakefs_sdk errors escape; map them to lakefs ones.
        with (
            lakefs_call(client),
            stored.writer(mode="wb", content_type=content_type, metadata=metadata or None) as writer,
        ):
            shutil.copyfileobj(source, writer, length=1024 * 1024)
        with lakefs_call(client):
            return stored.stat()
    except NotFoundException as error:
        raise missing_error(repository, client=client, branches=[branch]) from error
    except BadRequestException as error:
        raise InvalidInputError(
            f"cannot write lakefs://{repository}/{branch}/{path}: {server_message(error)}"
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
    payload = read_object(repository, ref=ref, path=path, client=client)
    try:
        return pq.read_table(io.BytesIO(payload)).to_pandas()
    except (pa.ArrowInvalid, OSError) as error:
        raise DataFormatError(
            f"lakefs://{repository}/{ref}/{path} is not a readable Parquet file ({error}); "
            "was it written with write_dataframe?"
        ) from error


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


def write_bytes(
    payload: bytes,
    *,
    repository: str,
    branch: str,
    path: str,
    client: lakefs.Client,
    content_type: str = "application/octet-stream",
    metadata: Mapping[str, str] | None = None,
) -> lakefs.ObjectInfo:
    """Write ``payload`` to ``path`` on ``branch`` (uncommitted), like ``upload_file`` for bytes."""
    _check_object_path(path)
    object_metadata = validate_metadata(metadata, what="object metadata")
    return _upload(
        io.BytesIO(payload),
        repository=repository,
        branch=branch,
        path=path,
        client=client,
        content_type=content_type,
        metadata=object_metadata,
    )


@contextlib.contextmanager
def open_object(
    repository: str, *, ref: str, path: str, client: lakefs.Client, pre_sign: bool | None = False
) -> Iterator[BinaryIO]:
    """A seekable, read-only file of the object at ``ref`` (reads are HTTP range requests).

    Args:
        repository: Repository name.
        ref: Branch, tag, commit ID or expression; pin it to a commit first when it may move.
        path: Object path.
        client: The lakeFS client to use.
        pre_sign: Read through presigned URLs (``None``: as the server offers).

    Raises:
        ObjectNotFoundError / RefNotFoundError / RepositoryNotFoundError: as ``read_object``.
    """
    _check_object_path(path)
    try:
        with (
            lakefs_call(client),
            lakefs.Reference(repository, ref, client=client)
            .object(path)
            .reader(mode="rb", pre_sign=pre_sign) as reader,
        ):
            yield reader
    except NotFoundException as error:  # includes the SDK's ObjectNotFoundException
        raise missing_error(repository, client=client, refs=[ref], path=path) from error


def read_object(repository: str, *, ref: str, path: str, client: lakefs.Client) -> bytes:
    """The bytes of the object at ``path`` as it is at ``ref``.

    Raises:
        ObjectNotFoundError: ``ref`` has no object at ``path``.
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    with open_object(repository, ref=ref, path=path, client=client, pre_sign=None) as reader:
        return reader.read()


def object_exists(repository: str, *, ref: str, path: str, client: lakefs.Client) -> bool:
    """Whether ``ref`` holds an object at ``path`` (``ref`` itself must exist)."""
    _check_object_path(path)
    try:
        with lakefs_call(client):
            return lakefs.Reference(repository, ref, client=client).object(path).exists()
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


def list_objects(
    repository: str,
    *,
    ref: str,
    client: lakefs.Client,
    prefix: str = "",
    suffix: str = "",
    max_amount: int | None = None,
) -> list[str]:
    """Paths of the objects at ``ref`` under ``prefix`` (ending in ``suffix``), in path order.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            listed = lakefs.Reference(repository, ref, client=client).objects(
                prefix=prefix or None, max_amount=max_amount
            )
            return [item.path for item in listed if item.path.endswith(suffix)]
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


def list_folders(repository: str, *, ref: str, client: lakefs.Client, prefix: str = "") -> list[str]:
    """The folders (common prefixes, each ending in ``/``) directly under ``prefix`` at ``ref``: one
    listing of names, not of every object below them.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            listed = lakefs.Reference(repository, ref, client=client).objects(
                prefix=prefix or None, delimiter="/"
            )
            return [item.path for item in listed if item.path.endswith("/")]
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


def delete_objects(repository: str, *, branch: str, paths: list[str], client: lakefs.Client) -> int:
    """Stage the removal of ``paths`` on ``branch`` (at most 1,000 per request); return how many.

    Raises:
        RefNotFoundError: the branch does not exist.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            target = lakefs.Branch(repository, branch, client=client)
            for start in range(0, len(paths), 1000):
                target.delete_objects(paths[start : start + 1000])
    except NotFoundException as error:
        raise missing_error(repository, client=client, branches=[branch]) from error
    return len(paths)


def read_parquet_objects(
    repository: str, *, ref: str, paths: list[str], client: lakefs.Client
) -> pd.DataFrame | None:
    """The Parquet objects at ``ref`` read and concatenated, or ``None`` when ``paths`` is empty.

    Raises:
        DataFormatError: an object is not Parquet.
    """
    frames = []
    for path in paths:
        payload = read_object(repository, ref=ref, path=path, client=client)
        try:
            frames.append(pq.read_table(io.BytesIO(payload)).to_pandas())
        except (pa.ArrowInvalid, OSError) as error:
            raise DataFormatError(
                f"lakefs://{repository}/{ref}/{path} is not a readable Parquet file ({error})"
            ) from error
    return pd.concat(frames, ignore_index=True) if frames else None


def check_connection(client: lakefs.Client) -> None:
    """Ask the server for its version: proves the endpoint answers and accepts the credentials.

    Raises:
        LakeFSUnavailableError: the endpoint does not answer.
        ConfigurationError: it refuses the credentials.
    """
    with lakefs_call(client):
        client.sdk_client.config_api.get_config()


def server_version_context(client: lakefs.Client) -> str:
    """What the server says it is (``/config`` ``version_context``; ``lockgate-embedded`` for lockgate's
    embedded server, empty for lakeFS)."""
    with lakefs_call(client):
        config = client.sdk_client.config_api.get_config()
    return (config.version_config.version_context if config.version_config else None) or ""


def object_url(client: lakefs.Client, repository: str, ref: str, path: str) -> str:
    """Where the object is fetched from ``client``'s server (the API's object URL; credentials needed)."""
    return f"{client.config.host.rstrip('/')}/repositories/{repository}/refs/{ref}/objects?path={path}"
