"""Sources of an ingest: local files, directories, globs and ``s3://`` URIs, fingerprinted by content,
and read in bounded chunks (CSV, Parquet, JSON lines) with errors that name the file and the problem."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from infra.errors import SourceAccessError, SourceFormatError, SourceNotFoundError

SourceFormat = Literal["csv", "parquet", "jsonl"]
SUFFIX_FORMATS: dict[str, SourceFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, fingerprinted by its content."""

    uri: str
    format: SourceFormat
    size: int
    checksum: str  # sha256 of the bytes (local) or the S3 ETag


def _format_of(name: str) -> SourceFormat:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise SourceFormatError(
            f"cannot tell the format of {name!r} from its suffix {suffix!r}: "
            f"use one of {', '.join(sorted(SUFFIX_FORMATS))}"
        )
    return SUFFIX_FORMATS[suffix]


def file_sha256(path: Path) -> str:
    """SHA-256 of a local file, read in 1 MiB blocks (a local source's content fingerprint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_sources(source: str, *, s3_client=None) -> list[SourceFile]:
    """Expand a local path, directory, glob or ``s3://`` URI (prefix or glob) into its files.

    Raises:
        SourceNotFoundError: nothing matches.
        SourceAccessError: S3 refused the credentials.
    """
    if source.startswith("s3://"):
        return _resolve_s3(source, s3_client=s3_client)
    path = Path(source)
    # A path that exists is taken literally, so a file named "loans[2026].csv" is that file, not a glob.
    if path.is_file():
        matches = [path]
    elif path.is_dir():
        matches = sorted(p for p in _walk(path) if p.suffix.lower() in SUFFIX_FORMATS)
    elif any(ch in source for ch in "*?["):
        matches = [Path(p) for p in sorted(glob.glob(source, recursive=True)) if Path(p).is_file()]
    else:
        raise SourceNotFoundError(f"source {source!r} does not exist (no such file or directory)")
    matches = _distinct_files(matches)
    if not matches:
        raise SourceNotFoundError(f"source {source!r} matches no {'/'.join(sorted(SUFFIX_FORMATS))} file")
    return [SourceFile(str(p), _format_of(p.name), p.stat().st_size, file_sha256(p)) for p in matches]


def _walk(root: Path) -> list[Path]:
    """Files under ``root``, following symbolic links but entering each real directory once (a link
    back up the tree is a loop, not more data)."""
    seen: set[str] = set()
    files: list[Path] = []
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories[:] = []
            continue
        seen.add(real)
        subdirectories.sort()
        files.extend(Path(directory) / name for name in sorted(names))
    return [path for path in files if path.is_file()]


def _distinct_files(paths: list[Path]) -> list[Path]:
    """``paths`` with each file once, in order: of several names of one file (symbolic or hard links),
    the first that is not a symbolic link is kept."""
    chosen: dict[tuple[int, int], Path] = {}
    for path in sorted(paths, key=Path.is_symlink):  # stable: real names first, else in order
        status = path.stat()
        chosen.setdefault((status.st_dev, status.st_ino), path)
    kept = set(chosen.values())
    return [path for path in paths if path in kept]


def _resolve_s3(source: str, *, s3_client) -> list[SourceFile]:
    from botocore.exceptions import ClientError, NoCredentialsError

    if s3_client is None:
        raise SourceAccessError(f"reading {source!r} needs an S3 client (configure LOCKGATE_S3_* settings)")
    bucket, _, key = source[len("s3://") :].partition("/")
    if not bucket:
        raise SourceNotFoundError(f"invalid S3 URI {source!r}: expected s3://bucket/key-or-prefix")
    pattern = key if any(ch in key for ch in "*?[") else None
    prefix = key.split("*")[0].split("?")[0].split("[")[0] if pattern else key
    try:
        pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [item for page in pages for item in page.get("Contents", [])]
        if pattern is not None and any(item["Key"] == key for item in objects):
            pattern = None  # an object of that very name is taken literally, as a local file is
            objects = [item for item in objects if item["Key"] == key]
    except NoCredentialsError as error:
        raise SourceAccessError(f"cannot read {source!r}: no S3 credentials configured") from error
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            raise SourceNotFoundError(f"S3 bucket {bucket!r} does not exist (source {source!r})") from error
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"):
            raise SourceAccessError(
                f"S3 refused access to {source!r} ({code}): check the access key, secret and permissions"
            ) from error
        raise SourceAccessError(f"cannot list {source!r}: {code or error}") from error
    files = []
    for item in objects:
        name = item["Key"]
        if name.endswith("/"):
            continue
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        if pattern is None and name != key and Path(name).suffix.lower() not in SUFFIX_FORMATS:
            continue
        files.append(
            SourceFile(f"s3://{bucket}/{name}", _format_of(name), item["Size"], item["ETag"].strip('"'))
        )
    if not files:
        raise SourceNotFoundError(f"no object in s3://{bucket} matches {source!r}")
    return files


@contextlib.contextmanager
def local_copy(source: SourceFile, *, s3_client=None) -> Iterator[Path]:
    """The source as a local file (S3 objects are downloaded to a temporary file, in bounded memory)."""
    if not source.uri.startswith("s3://"):
        yield Path(source.uri)
        return
    bucket, _, key = source.uri[len("s3://") :].partition("/")
    with tempfile.TemporaryDirectory(prefix="lockgate-source-") as tmp:
        target = Path(tmp) / Path(key).name
        s3_client.download_file(bucket, key, str(target))
        yield target


def batch_fingerprint(dataset: str, sources: list[SourceFile]) -> str:
    """Identity of a batch's content: the same bytes give the same fingerprint wherever they live."""
    digest = hashlib.sha256(dataset.encode())
    for checksum in sorted(source.checksum for source in sources):
        digest.update(checksum.encode())
    return digest.hexdigest()


def read_chunks(
    path: Path, file_format: SourceFormat, *, chunk_rows: int, name: str
) -> Iterator[pd.DataFrame]:
    """Yield the file as DataFrames of at most ``chunk_rows`` rows; errors name the file (``name``)."""
    if path.stat().st_size == 0:
        raise SourceFormatError(f"{name}: the file is empty (0 bytes)")
    if file_format == "parquet":
        yield from _read_parquet(path, chunk_rows=chunk_rows, name=name)
    elif file_format == "csv":
        yield from _read_csv(path, chunk_rows=chunk_rows, name=name)
    else:
        yield from _read_jsonl(path, chunk_rows=chunk_rows, name=name)


def _refuse_repeated_columns(columns: list[str], *, name: str) -> None:
    """A file whose header names a column twice cannot be read unambiguously: say which, and where."""
    positions: dict[str, list[int]] = {}
    for number, column in enumerate(columns, start=1):
        positions.setdefault(column.strip().strip('"'), []).append(number)
    repeated = {column: numbers for column, numbers in positions.items() if len(numbers) > 1}
    if repeated:
        listed = "; ".join(
            f"{column!r} (columns {', '.join(map(str, numbers))})" for column, numbers in repeated.items()
        )
        raise SourceFormatError(
            f"{name}: the same column name appears more than once: {listed}; rename or drop the copies"
        )


def _read_parquet(path: Path, *, chunk_rows: int, name: str) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(path)
        _refuse_repeated_columns(parquet.schema_arrow.names, name=name)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise SourceFormatError(
            f"{name}: not a readable Parquet file (corrupt or truncated?): {error}"
        ) from error


def _read_csv(path: Path, *, chunk_rows: int, name: str) -> Iterator[pd.DataFrame]:
    with open(path, "rb") as handle:
        header = handle.readline()
    try:
        columns = header.decode("utf-8").strip().lstrip("\ufeff").split(",")
    except UnicodeDecodeError as error:
        raise SourceFormatError(
            f"{name}: not UTF-8 text (byte {header[error.start]:#04x} at offset {error.start} "
            "of the header); save the file as UTF-8"
        ) from error
    _refuse_repeated_columns(columns, name=name)
    if len(columns) == 1:
        for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in columns[0]:
                raise SourceFormatError(
                    f"{name}: the header looks {label}-separated ({columns[0][:60]!r}); "
                    "lockgate reads comma-separated CSV"
                )
    # Read every column as text and let the contract coerce it, so a bad value is reported with its row
    # instead of failing the whole file at the first block that does not parse.
    options = pacsv.ConvertOptions(
        column_types={column: pa.string() for column in columns}, strings_can_be_null=True
    )
    block = max(1 << 20, min(64 << 20, chunk_rows * 200))
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=block), convert_options=options
        )
        pending: list[pd.DataFrame] = []
        rows = 0
        for batch in reader:
            frame = batch.to_pandas()
            pending.append(frame)
            rows += len(frame)
            if rows >= chunk_rows:
                merged = pd.concat(pending, ignore_index=True)
                yield from (merged.iloc[i : i + chunk_rows] for i in range(0, len(merged), chunk_rows))
                pending, rows = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)
    except pa.ArrowInvalid as error:
        text = str(error)
        if "UTF8" in text or "utf-8" in text.lower():
            raise SourceFormatError(f"{name}: not UTF-8 text ({text}); save the file as UTF-8") from error
        raise SourceFormatError(f"{name}: not readable as comma-separated CSV: {text}") from error


def _read_jsonl(path: Path, *, chunk_rows: int, name: str) -> Iterator[pd.DataFrame]:
    try:
        with pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False, encoding="utf-8") as reader:
            yield from reader
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{name}: not UTF-8 text; save the file as UTF-8") from error
    except ValueError as error:
        raise SourceFormatError(f"{name}: not valid JSON lines: {error}") from error
