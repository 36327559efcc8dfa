"""One ingest run's branch: the batch read, checked and committed there, its contract report beside it,
and the merge into ``main`` that happens only when the report passed.

The work happens on a branch of its own (``ingest-<dataset>-<run>``): the source is read in bounded
chunks, coerced to the contract's types, written as Parquet and committed; every row is checked against
the pandera contract while it streams past, and a uniform sample of the batch against the Great
Expectations suite. ``main`` moves only by the final merge, so a rejected or interrupted run leaves it
exactly as it was, with the branch kept for inspection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from infra.errors import IngestionError, SourceFormatError
from tasks import versioning
from tasks.contract_reports import DATA_PREFIX, REPORTS_PREFIX, report_path
from tasks.datasets import DatasetSpec
from tasks.ingestion.checks import (
    CheckFailures,
    KeyLedger,
    Reservoir,
    RowCheckCollector,
    check_keys_across_chunks,
    check_rows,
    coerce,
    unique_keys,
)
from tasks.ingestion.key_index import REPEATED_ACROSS_BATCHES, check_against_main
from tasks.ingestion.sources import SourceFile, batch_fingerprint, local_copy, read_chunks

if TYPE_CHECKING:
    import lakefs

GX_SAMPLE_ROWS = 100_000
PARQUET_CONTENT_TYPE = versioning.PARQUET_CONTENT_TYPE
Progress = Callable[[str, int], None]  # (stage, rows so far)


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
    main = versioning.default_branch(spec.repository, client=client)
    marker = f"{DATA_PREFIX}batch-{fingerprint[:20]}/"
    if versioning.list_objects(spec.repository, ref=main, prefix=marker, max_amount=1, client=client):
        return versioning.resolve_ref(spec.repository, main, client=client)
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
            versioning.delete_branch(spec.repository, branch, client=client)
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
    collector = RowCheckCollector(key_columns=spec.key_columns)
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
                    coerced = coerce(spec, chunk, collector, file=source.uri)
                    coercible &= coerced.complete
                    typed = coerced.typed
                    if typed is not None:
                        # Rows that could be typed are checked even after a failure elsewhere, so one
                        # bad column does not hide what is wrong with the others.
                        check_rows(spec, typed, collector, file=source.uri)
                        ledger.add(unique_keys(typed, spec.key_columns))
                    if coercible and typed is not None:
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
        check_keys_across_chunks(spec, ledger, collector)
        index_files: list[tuple[Path, str]] = []
        index_stale: list[str] = []
        if coercible and parts:
            if progress:
                progress("keys", report.rows)
            keys = check_against_main(
                spec,
                ledger,
                batch_folder=report.data_prefix,
                branch=branch,
                client=client,
                workdir=Path(tmp) / "index",
            )
            if keys.repeated:
                collector.add(
                    ",".join(spec.key_columns),
                    REPEATED_ACROSS_BATCHES,
                    count=keys.repeated,
                    examples=keys.examples,
                )
            index_files = keys.files
            index_stale = keys.stale
        report.row_checks = collector.summary()
        if schema is not None:
            report.schema_fingerprint = schema_fingerprint(schema)
        data_committed = False
        if coercible and parts:
            # The grown key index goes in the data's own commit: it reaches main with them or not at all.
            uploads = [(local, remote, PARQUET_CONTENT_TYPE) for local, remote in parts] + [
                (
                    local,
                    remote,
                    "application/json" if remote.endswith(".json") else "application/octet-stream",
                )
                for local, remote in index_files
            ]
            for local, remote, content_type in uploads:
                versioning.upload_file(
                    local,
                    repository=spec.repository,
                    branch=branch,
                    path=remote,
                    client=client,
                    content_type=content_type,
                )
            if index_stale:  # the index changed layout: its objects of the old one go in this commit
                versioning.delete_objects(spec.repository, branch=branch, paths=index_stale, client=client)
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
    report.report_path = f"lakefs://{report.repository}/{report.branch}/{report_path(report.run_id)}"
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
    versioning.write_bytes(
        report.to_json().encode(),
        repository=report.repository,
        branch=report.branch,
        path=report_path(report.run_id),
        client=client,
        content_type="application/json",
    )
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
        key = ", ".join(f"{column}={value!r}" for column, value in example.get("key", {}).items())
        where = f" e.g. row {example['row']}" if "row" in example else ""
        if key:
            where += f" ({key})" if where else f" e.g. {key}"
        value = f" value {example.get('value')!r}" if "value" in example else ""
        lines.append(
            f"- column {check.column!r} rule {check.check!r}: {check.count} failure(s){where}{value}"
        )
    for result in report.expectations.get("results", []):
        if not result.get("success"):
            observed = result.get("observed_value")
            seen = f" (observed {observed!r})" if observed is not None else ""
            lines.append(
                f"- expectation {result.get('expectation')} on {result.get('column') or 'the table'}: "
                f"failed{seen}"
            )
    return "\n".join(lines)
