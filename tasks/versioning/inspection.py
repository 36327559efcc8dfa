"""Looking at stored objects without writing: their stats, Parquet row counts from the footers,
``lakefs://`` URIs, and copies of a folder into a local directory."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lakefs
import pyarrow as pa
import pyarrow.parquet as pq
from lakefs.exceptions import NotFoundException

from infra.errors import DataFormatError, InvalidInputError, ObjectNotFoundError
from tasks.versioning.objects import open_object
from tasks.versioning.refs import get_commit
from tasks.versioning.translate import lakefs_call, missing_error

URI_SCHEME = "lakefs://"
_COPY_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ObjectStat:
    """One object as a listing shows it.

    Attributes:
        path: Object path.
        size_bytes: Size in bytes.
        checksum: The server's checksum of the bytes (changes whenever they change).
        content_type: Content type stored with the object, when one was.
        mtime: When the object was written (Unix seconds).
    """

    path: str
    size_bytes: int
    checksum: str
    content_type: str | None
    mtime: int


def stat_objects(
    repository: str, *, ref: str, client: lakefs.Client, prefix: str = "", max_amount: int | None = None
) -> list[ObjectStat]:
    """The objects at ``ref`` under ``prefix`` with their size and checksum, in path order.

    Args:
        repository: Repository name.
        ref: Branch, tag, commit ID or expression; pin it to a commit first when it may move.
        client: The lakeFS client to use.
        prefix: Only paths starting with this.
        max_amount: Most objects to return.

    Raises:
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    try:
        with lakefs_call(client):
            listed = lakefs.Reference(repository, ref, client=client).objects(
                prefix=prefix or None, max_amount=max_amount
            )
            return [
                ObjectStat(
                    path=item.path,
                    size_bytes=item.size_bytes or 0,
                    checksum=item.checksum,
                    content_type=item.content_type,
                    mtime=item.mtime,
                )
                for item in listed
            ]
    except NotFoundException as error:
        raise missing_error(repository, client=client, refs=[ref]) from error


@dataclass(frozen=True)
class RefContents:
    """What a ref holds under a prefix: its objects and, when counted, the rows of its Parquet objects.

    Attributes:
        repository: Repository name.
        ref: The ref as asked for (``main``, a tag, ``main~1``).
        commit: The commit ``ref`` pointed at when it was listed (everything below is read there).
        prefix: The path prefix listed (``""``: everything).
        objects: The objects, in path order.
        rows: Rows per Parquet object (``.parquet``), from the footers; ``None`` when not counted.
    """

    repository: str
    ref: str
    commit: str
    prefix: str
    objects: tuple[ObjectStat, ...]
    rows: dict[str, int] | None

    @property
    def total_bytes(self) -> int:
        return sum(stored.size_bytes for stored in self.objects)

    @property
    def parquet_objects(self) -> int:
        return sum(stored.path.endswith(".parquet") for stored in self.objects)

    @property
    def total_rows(self) -> int | None:
        return None if self.rows is None else sum(self.rows.values())


def ref_contents(
    repository: str, *, ref: str, client: lakefs.Client, prefix: str = "", count_rows: bool = True
) -> RefContents:
    """The objects at ``ref`` under ``prefix``, read at the commit ``ref`` points at now.

    Args:
        repository: Repository name.
        ref: Branch, tag, commit ID or expression.
        client: The lakeFS client to use.
        prefix: Only paths starting with this.
        count_rows: Read each Parquet object's footer for its row count (a few range reads per object;
            the data itself is not read).

    Raises:
        DataFormatError: a ``.parquet`` object is not Parquet (only when counting rows).
        RefNotFoundError: ``ref`` does not resolve.
        RepositoryNotFoundError: the repository does not exist.
    """
    commit = get_commit(repository, ref, client=client).id
    objects = tuple(stat_objects(repository, ref=commit, prefix=prefix, client=client))
    rows = (
        {
            stored.path: parquet_row_count(repository, ref=commit, path=stored.path, client=client)
            for stored in objects
            if stored.path.endswith(".parquet")
        }
        if count_rows
        else None
    )
    return RefContents(repository, ref, commit, prefix, objects, rows)


def parquet_row_count(repository: str, *, ref: str, path: str, client: lakefs.Client) -> int:
    """The rows of the Parquet object at ``path``, read from its footer (range reads, not the data).

    Raises:
        DataFormatError: the object is not Parquet.
        ObjectNotFoundError / RefNotFoundError / RepositoryNotFoundError: as ``read_object``.
    """
    with open_object(repository, ref=ref, path=path, client=client) as reader:
        try:
            return pq.ParquetFile(reader).metadata.num_rows
        except (pa.ArrowInvalid, OSError) as error:
            raise DataFormatError(
                f"lakefs://{repository}/{ref}/{path} is not a readable Parquet file ({error})"
            ) from error


def object_uri(repository: str, ref: str, path: str = "") -> str:
    """``lakefs://<repository>/<ref>/<path>``, as lockgate prints locations."""
    return f"{URI_SCHEME}{repository}/{ref}/{path}"


def parse_uri(uri: str) -> tuple[str, str, str]:
    """The repository, ref and path of ``lakefs://<repository>/<ref>/<path>`` (the path may be empty).

    Raises:
        InvalidInputError: ``uri`` is not of that form.
    """
    repository, _, rest = uri.removeprefix(URI_SCHEME).partition("/")
    ref, _, path = rest.partition("/")
    if not uri.startswith(URI_SCHEME) or not repository or not ref:
        raise InvalidInputError(
            f"{uri!r} is not a lakeFS location: use lakefs://<repository>/<ref>/<path>, as lockgate "
            "prints them"
        )
    return repository, ref, path


def download_folder(
    repository: str, *, ref: str, prefix: str, destination: Path, client: lakefs.Client
) -> list[Path]:
    """Copy every object under ``prefix`` at ``ref`` into ``destination`` (paths relative to ``prefix``).

    The copy is written to a temporary folder beside ``destination`` and renamed into place when
    complete, so an interrupted download leaves no half-written folder; an existing ``destination`` is
    replaced.

    Args:
        repository: Repository name.
        ref: Branch, tag or commit; pin it to a commit first when it may move.
        prefix: The folder, ending in ``/``.
        destination: Local folder to create (its parent is created when missing).
        client: The lakeFS client to use.

    Returns:
        The local files, in path order.

    Raises:
        InvalidInputError: ``prefix`` does not end in ``/``, ``destination`` is a file, or an object
            path would land outside ``destination`` (``..``).
        ObjectNotFoundError: nothing is stored under ``prefix`` at ``ref``.
        RefNotFoundError / RepositoryNotFoundError: as ``stat_objects``.
    """
    if not prefix.endswith("/"):
        raise InvalidInputError(f"folder {prefix!r} must end in '/'")
    objects = stat_objects(repository, ref=ref, prefix=prefix, client=client)
    if not objects:
        raise ObjectNotFoundError(f"nothing is stored under {object_uri(repository, ref, prefix)}")
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise InvalidInputError(f"{str(destination)!r} is a file: download into a folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for stored in objects:
            local = staging / stored.path.removeprefix(prefix)
            if not local.resolve().is_relative_to(staging.resolve()):
                raise InvalidInputError(f"refusing to download {stored.path!r}: it names a place outside")
            local.parent.mkdir(parents=True, exist_ok=True)
            with (
                open_object(repository, ref=ref, path=stored.path, client=client) as reader,
                local.open("wb") as target,
            ):
                shutil.copyfileobj(reader, target, length=_COPY_CHUNK_BYTES)
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [destination / stored.path.removeprefix(prefix) for stored in objects]
