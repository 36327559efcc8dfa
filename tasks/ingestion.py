"""Ingestion of a source into a dataset's lakeFS repository, gated by the dataset's contracts.

The work happens on a branch of its own (``ingest-<dataset>-<run>``): the source is read in bounded
chunks, coerced to the contract's types, written as Parquet and committed; every row is checked
against the pandera contract while it streams past, and a uniform sample of the batch against the
Great Expectations suite. ``main`` moves only by the final merge, so a rejected or interrupted run
leaves it exactly as it was, with the branch kept for inspection.

Plain functions: the lakeFS and S3 clients are injected; Prefect lives in ``flows.ingest``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lakefs
import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from infra.errors import (
    IngestionError,
    SourceAccessError,
    SourceFormatError,
    SourceNotFoundError,
)
from tasks import versioning
from tasks.datasets import DatasetSpec

SourceFormat = Literal["csv", "parquet", "jsonl"]
SUFFIX_FORMATS: dict[str, SourceFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
DATA_PREFIX = "data/"
REPORTS_PREFIX = "_lockgate/reports/"
GX_SAMPLE_ROWS = 100_000
EXAMPLES_PER_CHECK = 5
PARQUET_CONTENT_TYPE = versioning.PARQUET_CONTENT_TYPE
Progress = Callable[[str, int], None]  # (stage, rows so far)


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, fingerprinted by its content."""

    uri: str
    format: SourceFormat
    size: int
    checksum: str  # sha256 of the bytes (local) or the S3 ETag


@dataclass
class CheckFailures:
    """Failures of one rule on one column, with a few examples."""

    column: str
    check: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IngestReport:
    """The contract report: what was read, what was checked, what failed. Stored as JSON."""

    dataset: str
    run_id: str
    repository: str
    branch: str
    sources: list[dict[str, Any]]
    rows: int = 0
    schema_fingerprint: str = ""
    data_prefix: str = ""
    row_checks: list[CheckFailures] = field(default_factory=list)
    expectations: dict[str, Any] = field(default_factory=dict)
    data_commit: str | None = None
    report_path: str = ""
    data_docs_path: str | None = None
    passed: bool = False
    status: Literal["merged", "rejected", "unchanged"] = "rejected"
    merge_commit: str | None = None
    message: str = ""

    @property
    def failure_count(self) -> int:
        return sum(check.count for check in self.row_checks) + sum(
            1 for result in self.expectations.get("results", []) if not result.get("success")
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


# -- sources ----------------------------------------------------------------------------------


def _format_of(name: str) -> SourceFormat:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise SourceFormatError(
            f"cannot tell the format of {name!r} from its suffix {suffix!r}: "
            f"use one of {', '.join(sorted(SUFFIX_FORMATS))}"
        )
    return SUFFIX_FORMATS[suffix]


def _sha256(path: Path) -> str:
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
    if any(ch in source for ch in "*?["):
        matches = [Path(p) for p in sorted(glob.glob(source, recursive=True)) if Path(p).is_file()]
    elif path.is_dir():
        matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIX_FORMATS)
    elif path.is_file():
        matches = [path]
    else:
        raise SourceNotFoundError(f"source {source!r} does not exist (no such file or directory)")
    if not matches:
        raise SourceNotFoundError(f"source {source!r} matches no {'/'.join(sorted(SUFFIX_FORMATS))} file")
    return [SourceFile(str(p), _format_of(p.name), p.stat().st_size, _sha256(p)) for p in matches]


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


# -- reading ----------------------------------------------------------------------------------


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


def _read_parquet(path: Path, *, chunk_rows: int, name: str) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(path)
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


# -- validation -------------------------------------------------------------------------------


class RowCheckCollector:
    """Accumulates pandera failure cases over chunks: counts in full, a few examples per rule."""

    def __init__(self, *, examples: int = EXAMPLES_PER_CHECK) -> None:
        self.examples = examples
        self.checks: dict[tuple[str, str], CheckFailures] = {}

    def add(self, column: str, check: str, *, count: int, examples: list[dict[str, Any]]) -> None:
        entry = self.checks.setdefault((column, check), CheckFailures(column, check))
        entry.count += count
        room = self.examples - len(entry.examples)
        if room > 0:
            entry.examples.extend(examples[:room])

    def add_schema_errors(
        self, errors: pandera.errors.SchemaErrors, frame: pd.DataFrame, *, file: str
    ) -> None:
        cases = errors.failure_cases.copy()
        # A dataframe-level check fails whole rows; pandera lists every column of each failing row.
        row_level = (cases["schema_context"] == "DataFrameSchema") & cases["index"].notna()
        if row_level.any():
            cases.loc[row_level, "column"] = "(row)"
            cases.loc[row_level, "failure_case"] = None
            cases = cases.drop_duplicates(subset=["column", "check", "index"])
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            examples = []
            for _, case in group.head(self.examples).iterrows():
                example: dict[str, Any] = {"file": file, "value": _json_safe(case["failure_case"])}
                index = case["index"]
                if index is not None and not (isinstance(index, float) and np.isnan(index)):
                    example["row"] = int(index)
                    if index in frame.index:
                        example["record"] = {k: _json_safe(v) for k, v in frame.loc[index].items()}
                examples.append(example)
            self.add(str(column), str(check), count=len(group), examples=examples)

    @property
    def failed(self) -> bool:
        return bool(self.checks)

    def summary(self) -> list[CheckFailures]:
        return sorted(self.checks.values(), key=lambda c: -c.count)


def _json_safe(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Reservoir:
    """A uniform random sample of at most ``size`` rows over a stream of chunks (seeded)."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.sample: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame) -> None:
        keyed = frame.assign(_reservoir_key=self.rng.random(len(frame)))
        combined = keyed if self.sample is None else pd.concat([self.sample, keyed])
        self.sample = (
            combined.nsmallest(self.size, "_reservoir_key") if len(combined) > self.size else combined
        )

    def frame(self) -> pd.DataFrame:
        if self.sample is None:
            return pd.DataFrame()
        return self.sample.drop(columns="_reservoir_key").sort_index()


def schema_fingerprint(schema: pa.Schema) -> str:
    """Short, stable hash of column names and Arrow types."""
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class StagedBatch:
    """What ``stage_batch`` leaves on the ingest branch."""

    report: IngestReport
    sample: pd.DataFrame
    data_committed: bool


def ingest_branch_name(dataset: str, run_id: str) -> str:
    """Branch for one ingest run; lakeFS branch names allow no '/'."""
    return f"ingest-{dataset}-{run_id}"[:200]


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def find_ingested(spec: DatasetSpec, fingerprint: str, *, client: lakefs.Client) -> str | None:
    """The commit of ``main`` that already holds this batch, if any."""
    repository = lakefs.Repository(spec.repository, client=client)
    main = repository.branch(repository.properties.default_branch)
    marker = f"{DATA_PREFIX}batch-{fingerprint[:20]}/"
    if any(True for _ in main.objects(prefix=marker, max_amount=1)):
        return main.get_commit().id
    return None


def stage_batch(
    spec: DatasetSpec,
    sources: list[SourceFile],
    *,
    client: lakefs.Client,
    run_id: str,
    flow_run_id: str | None = None,
    s3_client=None,
    chunk_rows: int = 250_000,
    progress: Progress | None = None,
) -> StagedBatch:
    """Read, coerce, check and write the batch on a new branch; commit the data.

    The branch gets ``data/batch-<fingerprint>/part-NNNNN.parquet`` (one part per source file) as long
    as every chunk could be coerced to the contract's types. Row-level contract failures are collected
    (all of them counted, a few kept as examples) but the data is still committed, so the person on
    call can inspect exactly what was rejected.
    """
    fingerprint = batch_fingerprint(spec.name, sources)
    branch = ingest_branch_name(spec.name, run_id)
    versioning.create_branch(spec.repository, branch, source_ref="main", client=client)
    try:
        return _fill_branch(
            spec,
            sources,
            branch=branch,
            fingerprint=fingerprint,
            client=client,
            run_id=run_id,
            flow_run_id=flow_run_id,
            s3_client=s3_client,
            chunk_rows=chunk_rows,
            progress=progress,
        )
    except IngestionError:
        # The source could not be read, so nothing was committed: an empty branch helps nobody.
        with contextlib.suppress(Exception):
            lakefs.Branch(spec.repository, branch, client=client).delete()
        raise


def _fill_branch(
    spec: DatasetSpec,
    sources: list[SourceFile],
    *,
    branch: str,
    fingerprint: str,
    client: lakefs.Client,
    run_id: str,
    flow_run_id: str | None,
    s3_client,
    chunk_rows: int,
    progress: Progress | None,
) -> StagedBatch:
    """Read, coerce, check and write every source onto ``branch``; commit the data if it is typed."""
    report = IngestReport(
        dataset=spec.name,
        run_id=run_id,
        repository=spec.repository,
        branch=branch,
        sources=[asdict(source) for source in sources],
    )
    report.data_prefix = f"{DATA_PREFIX}batch-{fingerprint[:20]}/"
    collector = RowCheckCollector()
    reservoir = Reservoir(GX_SAMPLE_ROWS)
    coercible = True
    schema = None
    with tempfile.TemporaryDirectory(prefix="lockgate-ingest-") as tmp:
        ledger = KeyLedger(Path(tmp) / "keys")
        parts: list[tuple[Path, str]] = []
        for number, source in enumerate(sources):
            part = Path(tmp) / f"part-{number:05d}.parquet"
            writer = None
            with local_copy(source, s3_client=s3_client) as path:
                rows_before = report.rows
                for chunk in read_chunks(path, source.format, chunk_rows=chunk_rows, name=source.uri):
                    chunk.index = pd.RangeIndex(report.rows, report.rows + len(chunk))
                    report.rows += len(chunk)
                    typed = _coerce(spec, chunk, collector, file=source.uri)
                    if typed is None:
                        coercible = False
                    if coercible and typed is not None:
                        _check_rows(spec, typed, collector, file=source.uri)
                        ledger.add(_unique_keys(typed, spec.key_columns))
                        reservoir.add(typed)
                        table = pa.Table.from_pandas(typed, preserve_index=False)
                        if writer is None:
                            schema = table.schema
                            writer = pq.ParquetWriter(part, schema)
                        writer.write_table(table.cast(schema))
                    if progress:
                        progress("read", report.rows)
                if report.rows == rows_before:
                    raise SourceFormatError(
                        f"{source.uri}: empty: no data rows (the file has a header or schema only)"
                    )
            if writer is not None:
                writer.close()
                parts.append((part, f"{report.data_prefix}part-{number:05d}.parquet"))
        if coercible:
            _check_cross_chunk_keys(spec, ledger, collector)
        report.row_checks = collector.summary()
        if schema is not None:
            report.schema_fingerprint = schema_fingerprint(schema)
        data_committed = False
        if coercible and parts:
            for local, remote in parts:
                versioning.upload_file(
                    local,
                    repository=spec.repository,
                    branch=branch,
                    path=remote,
                    client=client,
                    content_type=PARQUET_CONTENT_TYPE,
                )
            report.data_commit = versioning.commit_changes(
                spec.repository,
                branch,
                message=f"ingest {spec.name}: {report.rows} rows from {len(sources)} file(s)",
                metadata=_commit_metadata(report, sources, fingerprint, flow_run_id),
                client=client,
            )
            data_committed = True
    return StagedBatch(report=report, sample=reservoir.frame(), data_committed=data_committed)


def _commit_metadata(
    report: IngestReport, sources: list[SourceFile], fingerprint: str, flow_run_id: str | None
) -> dict[str, str]:
    return {
        "lockgate.dataset": report.dataset,
        "lockgate.run_id": report.run_id,
        "lockgate.rows": str(report.rows),
        "lockgate.schema_fingerprint": report.schema_fingerprint,
        "lockgate.batch_fingerprint": fingerprint,
        "lockgate.sources": json.dumps([{"uri": s.uri, "checksum": s.checksum} for s in sources]),
        "lockgate.flow_run_id": flow_run_id or "",
    }


def _coerce(
    spec: DatasetSpec, chunk: pd.DataFrame, collector: RowCheckCollector, *, file: str
) -> pd.DataFrame | None:
    """The chunk with the contract's column types, or None (failures recorded) when it cannot be coerced."""
    try:
        return spec.raw_model.validate(chunk, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        collector.add_schema_errors(errors, chunk, file=file)
        return None


def _check_rows(spec: DatasetSpec, typed: pd.DataFrame, collector: RowCheckCollector, *, file: str) -> None:
    try:
        spec.validated_model.validate(typed, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        collector.add_schema_errors(errors, typed, file=file)


def _unique_keys(frame: pd.DataFrame, key_columns: tuple[str, ...]) -> np.ndarray:
    if len(key_columns) == 1 and pd.api.types.is_integer_dtype(frame[key_columns[0]]):
        keys = frame[key_columns[0]].to_numpy(dtype=np.int64, na_value=-1)  # sorting ints beats hashing
    else:
        keys = pd.util.hash_pandas_object(frame[list(key_columns)], index=False).to_numpy()
    return _sorted_unique(keys)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy's hash-based unique is several times slower on int keys)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


class KeyLedger:
    """Every chunk's keys, spilled to disk in hash buckets, to find keys repeated across chunks.

    Memory stays bounded by one chunk plus one bucket (1/64 of the keys), not by the file: exact
    duplicate detection over a source larger than memory, like an external sort.
    """

    BUCKET_BITS = 6

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chunks = 0
        self.integer_keys = True

    def add(self, keys: np.ndarray) -> None:
        """Record one chunk's keys (unique within the chunk)."""
        self.chunks += 1
        self.integer_keys &= keys.dtype.kind == "i"
        keys = keys.view(np.int64)
        spread = (keys.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - self.BUCKET_BITS)
        order = np.argsort(spread, kind="stable")
        bounds = np.searchsorted(spread[order], np.arange(1, 1 << self.BUCKET_BITS), side="left")
        for bucket, part in enumerate(np.split(keys[order], bounds)):
            if len(part):
                with open(self.directory / f"keys-{bucket:02d}.bin", "ab") as handle:
                    part.tofile(handle)

    def repeated(self) -> tuple[int, list[int]]:
        """How many keys occur in more than one chunk, and a few of them."""
        if self.chunks < 2:
            return 0, []
        count, examples = 0, []
        for path in sorted(self.directory.glob("keys-*.bin")):
            ordered = np.sort(np.fromfile(path, dtype=np.int64))
            repeated = _sorted_unique(ordered[1:][ordered[1:] == ordered[:-1]])
            count += len(repeated)
            examples.extend(int(value) for value in repeated[: EXAMPLES_PER_CHECK - len(examples)])
        return count, examples


def _check_cross_chunk_keys(spec: DatasetSpec, ledger: KeyLedger, collector: RowCheckCollector) -> None:
    """Keys repeated across chunks (duplicates inside one chunk are the contract's own check)."""
    count, examples = ledger.repeated()
    if count:
        name = "value" if ledger.integer_keys and len(spec.key_columns) == 1 else "key_hash"
        collector.add(
            ",".join(spec.key_columns),
            "unique across chunks",
            count=count,
            examples=[{name: value} for value in examples],
        )


def check_expectations(
    spec: DatasetSpec, staged: StagedBatch, *, data_docs_dir: Path | None = None
) -> dict[str, Any]:
    """Run the dataset's GX suite over the batch sample (row count checked exactly)."""
    from tasks.gx_validation import validate_expectations

    result = validate_expectations(
        staged.sample, spec.expectation_suite, data_docs_dir=data_docs_dir, row_count=staged.report.rows
    )
    return {
        "success": result.success,
        "results": result.results,
        "statistics": result.statistics,
        "sample_rows": len(staged.sample),
        "data_docs_index": str(result.data_docs_index) if result.data_docs_index else None,
    }


def publish_report(
    staged: StagedBatch, *, client: lakefs.Client, data_docs_dir: Path | None = None
) -> IngestReport:
    """Store the contract report (and the Data Docs) on the ingest branch and commit them."""
    report = staged.report
    report.passed = (
        staged.data_committed and not report.row_checks and bool(report.expectations.get("success"))
    )
    prefix = f"{REPORTS_PREFIX}{report.run_id}/"
    report.report_path = f"lakefs://{report.repository}/{report.branch}/{prefix}contract_report.json"
    if data_docs_dir is not None and data_docs_dir.exists():
        for local in sorted(p for p in data_docs_dir.rglob("*") if p.is_file()):
            relative = local.relative_to(data_docs_dir).as_posix()
            content_type = "text/html" if local.suffix == ".html" else "application/octet-stream"
            versioning.upload_file(
                local,
                repository=report.repository,
                branch=report.branch,
                path=f"{prefix}data_docs/{relative}",
                client=client,
                content_type=content_type,
            )
        report.data_docs_path = f"lakefs://{report.repository}/{report.branch}/{prefix}data_docs/index.html"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(report.to_json())
    try:
        versioning.upload_file(
            Path(handle.name),
            repository=report.repository,
            branch=report.branch,
            path=f"{prefix}contract_report.json",
            client=client,
            content_type="application/json",
        )
    finally:
        Path(handle.name).unlink(missing_ok=True)
    versioning.commit_changes(
        report.repository,
        report.branch,
        message=f"contract report for {report.dataset} run {report.run_id}: "
        + ("passed" if report.passed else "FAILED"),
        metadata={"lockgate.run_id": report.run_id, "lockgate.contract_passed": str(report.passed).lower()},
        client=client,
    )
    return report


def merge_batch(report: IngestReport, *, client: lakefs.Client) -> str:
    """Merge the ingest branch into ``main`` (the only moment ``main`` changes)."""
    report.merge_commit = versioning.merge_branch(
        report.repository,
        source_ref=report.branch,
        destination_branch="main",
        client=client,
        message=f"ingest {report.dataset}: {report.rows} rows (run {report.run_id})",
        metadata={
            "lockgate.run_id": report.run_id,
            "lockgate.contract_report": report.report_path,
            "lockgate.data_commit": report.data_commit or "",
        },
    )
    report.status = "merged"
    return report.merge_commit


def rejection_message(report: IngestReport) -> str:
    """A message a person can act on: where the report is and the worst failures."""
    lines = [
        f"dataset {report.dataset!r} batch rejected by its contract; main is unchanged. "
        f"Report: {report.report_path} (branch {report.branch!r} kept for inspection)."
    ]
    for check in report.row_checks[:5]:
        example = check.examples[0] if check.examples else {}
        where = f" e.g. row {example['row']}" if "row" in example else ""
        value = f" value {example.get('value')!r}" if "value" in example else ""
        lines.append(
            f"- column {check.column!r} rule {check.check!r}: {check.count} failure(s){where}{value}"
        )
    for result in report.expectations.get("results", []):
        if not result.get("success"):
            lines.append(f"- expectation {result.get('type')} on {result.get('column', 'table')}: failed")
    return "\n".join(lines)
