"""``run_ingest``: land a source on its own branch, check it against the dataset's contracts, and merge
it into ``main`` only if it passes.

A source already on ``main`` (same bytes, same dataset) is "unchanged": no branch, no commit. An
unreadable source and a batch that breaks its contract are both rejected batches: the stage publishes
``lockgate.dataset.rejected`` and raises (``IngestionError`` / ``ContractViolationError``), ``main``
untouched and the branch, with its contract report, kept. A passing batch is merged and published as
``lockgate.dataset.merged``, the event retraining automations key on. People get artifacts: a
summary, the worst failures, and where the full report and the Data Docs are.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from infra.errors import ContractViolationError, IngestionError, MergeConflictError
from infra.settings import dataset_from_settings
from tasks import events, publishing, versioning
from tasks.datasets import DatasetSpec, check_dataset_name, get_dataset
from tasks.ingestion.sources import batch_fingerprint, resolve_sources
from tasks.ingestion.staging import (
    IngestReport,
    Progress,
    check_expectations,
    find_ingested,
    merge_batch,
    new_run_id,
    publish_report,
    rejection_message,
    stage_batch,
)
from tasks.publishing import Publisher

if TYPE_CHECKING:
    import lakefs

logger = logging.getLogger(__name__)

# A merge can conflict only on the key index, when another batch of the dataset merged meanwhile.
MERGE_ATTEMPTS = 3


class IngestParameters(BaseModel):
    """What to ingest, and into which dataset."""

    source: str = Field(
        ...,
        min_length=1,
        description="Local file, directory or glob, or an s3:// URI (key, prefix or glob) of CSV, "
        "Parquet or JSON-lines files.",
        examples=["data/loans-2026-11.parquet", "s3://landing/loans/2026-11/*.csv"],
    )
    dataset: str = Field(
        default_factory=dataset_from_settings,
        description="Name of a declared dataset (see `lockgate datasets`); unset: LOCKGATE_DATASET.",
    )
    chunk_rows: int = Field(
        250_000, ge=1_000, le=5_000_000, description="Rows held in memory at once while reading."
    )

    _known_dataset = field_validator("dataset")(check_dataset_name)


@dataclass(frozen=True)
class IngestResult:
    """A batch that reached ``main`` (``merged``), or was already there (``unchanged``)."""

    status: Literal["merged", "unchanged"]
    repository: str
    commit: str
    rows: int | None = None
    report: str | None = None
    run_id: str | None = None


def run_ingest(
    parameters: IngestParameters,
    *,
    client: lakefs.Client,
    s3_client: Any | None,
    publish: Publisher,
    flow_run_id: str | None = None,
    progress: Progress | None = None,
    spec: DatasetSpec | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> IngestResult:
    """Ingest ``parameters.source`` into ``parameters.dataset``; raise if the contract rejects it.

    Args:
        parameters: Source, dataset and chunk size.
        client: lakeFS client.
        s3_client: A boto3 S3 client for ``s3://`` sources (``None`` for local ones).
        publish: Receives the artifacts and the merged / rejected events.
        flow_run_id: The Prefect flow run, recorded in the data commit's metadata.
        progress: Called as ``progress(stage, rows_so_far)`` while the source is read.
        spec: The dataset's spec; the one declared as ``parameters.dataset`` when omitted.
        log: Where progress is logged.

    Raises:
        IngestionError: the source is missing, unreadable or inaccessible (nothing was committed).
        ContractViolationError: the batch broke its contract (``.report`` says how; ``main`` unchanged).
    """
    spec = spec or get_dataset(parameters.dataset)
    versioning.ensure_default_repository(spec.repository, client=client)
    for attempt in range(1, MERGE_ATTEMPTS + 1):
        checked = _stage_and_check(
            parameters,
            spec,
            client=client,
            s3_client=s3_client,
            publish=publish,
            flow_run_id=flow_run_id,
            progress=progress,
            log=log,
        )
        if isinstance(checked, IngestResult):
            return checked
        report = checked
        try:
            merge_commit = merge_batch(report, client=client)
            break
        except MergeConflictError:
            # Another batch of this dataset reached main since this one was checked: its key index
            # (and so the keys this batch was checked against) moved. Check again on the new main.
            if attempt == MERGE_ATTEMPTS:
                raise
            log.info(
                "another ingest of %s reached main while this batch was checked; checking it again "
                "(attempt %d of %d)",
                spec.name,
                attempt + 1,
                MERGE_ATTEMPTS,
            )
            versioning.delete_branch(spec.repository, report.branch, client=client)
    publish.event(
        events.Event(
            events.DATASET_MERGED,
            {
                # The resource is the ingest branch (as ever); its labels say the data is now on main.
                **events.dataset_resource(report.repository, report.branch, dataset=report.dataset),
                "lakefs.branch": "main",
                "lakefs.commit": merge_commit,
                "lakefs.source_branch": report.branch,
            },
            _payload(report),
        )
    )
    log.info("merged %s rows of %s into main at %s", report.rows, spec.name, merge_commit)
    return IngestResult(
        status="merged",
        repository=report.repository,
        commit=merge_commit,
        rows=report.rows,
        report=report.report_path,
        run_id=report.run_id,
    )


def _stage_and_check(
    parameters: IngestParameters,
    spec: DatasetSpec,
    *,
    client: lakefs.Client,
    s3_client: Any | None,
    publish: Publisher,
    flow_run_id: str | None,
    progress: Progress | None,
    log: logging.Logger | logging.LoggerAdapter,
) -> IngestResult | IngestReport:
    """One attempt up to the merge: ``unchanged``, a passed report to merge, or a rejection raised."""
    run_id = new_run_id()
    try:
        sources = resolve_sources(parameters.source, s3_client=s3_client)
        fingerprint = batch_fingerprint(spec.name, sources)
        already = find_ingested(spec, fingerprint, client=client)
        if already:
            log.info("this content is already on main of %s at %s: nothing to do", spec.repository, already)
            return IngestResult(status="unchanged", repository=spec.repository, commit=already)
        staged = stage_batch(
            spec,
            sources,
            client=client,
            run_id=run_id,
            flow_run_id=flow_run_id,
            s3_client=s3_client,
            chunk_rows=parameters.chunk_rows,
            progress=progress,
        )
    except IngestionError as error:
        # Unreadable sources are rejected batches too: automations and people must hear of them.
        publish.event(
            events.Event(
                events.DATASET_REJECTED,
                {
                    "prefect.resource.id": f"lakefs.{spec.repository}.main",
                    "lakefs.repository": spec.repository,
                    "lockgate.dataset": spec.name,
                },
                {"run_id": run_id, "source": parameters.source, "reason": str(error)},
            )
        )
        raise
    with tempfile.TemporaryDirectory(prefix="lockgate-docs-") as docs:
        docs_dir = Path(docs) / "data_docs"
        if staged.data_committed:
            staged.report.expectations = check_expectations(spec, staged, data_docs_dir=docs_dir)
        report = publish_report(staged, client=client, data_docs_dir=docs_dir)
    for artifact in ingest_artifacts(report):
        publish.artifact(artifact)
    if not report.passed:
        report.status = "rejected"
        publish.event(
            events.Event(
                events.DATASET_REJECTED,
                events.dataset_resource(
                    report.repository, report.branch, dataset=report.dataset, commit=report.data_commit or ""
                ),
                _payload(report),
            )
        )
        raise ContractViolationError(rejection_message(report), report=report)
    return report


def _payload(report: IngestReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "rows": report.rows,
        "data_commit": report.data_commit,
        "merge_commit": report.merge_commit,
        "report": report.report_path,
        "failures": report.failure_count,
    }


def ingest_artifacts(report: IngestReport) -> list[publishing.Artifact]:
    """What a person on call looks at: a summary, the worst failures, where the full report is."""
    expectations = report.expectations.get("results", [])
    published = [
        publishing.table(
            f"ingest-{report.dataset}-summary",
            [
                {"field": "dataset", "value": report.dataset},
                {"field": "verdict", "value": "PASSED" if report.passed else "REJECTED"},
                {"field": "rows", "value": report.rows},
                {"field": "row-rule failures", "value": sum(c.count for c in report.row_checks)},
                {
                    "field": "expectations failed",
                    "value": sum(1 for r in expectations if not r.get("success")),
                },
                {"field": "branch", "value": report.branch},
                {"field": "data commit", "value": report.data_commit or "(none: source not coercible)"},
                {"field": "contract report", "value": report.report_path},
            ],
            description=f"Ingest of {report.dataset}, run {report.run_id}",
        )
    ]
    failures = [
        {
            "column": check.column,
            "rule": check.check,
            "failures": check.count,
            "example row": check.examples[0].get("row") if check.examples else None,
            "example value": check.examples[0].get("value") if check.examples else None,
            "file": check.examples[0].get("file") if check.examples else None,
        }
        for check in report.row_checks[:20]
    ] + [
        {
            "column": result.get("column", "(table)"),
            "rule": result.get("expectation"),
            "failures": result.get("unexpected_count"),
            "example row": None,
            "example value": str(result.get("observed_value")),
            "file": "(GX expectation)",
        }
        for result in expectations
        if not result.get("success")
    ]
    if failures:
        published.append(
            publishing.table(
                f"ingest-{report.dataset}-failures",
                failures,
                description="Top contract failures (full list in the contract report)",
            )
        )
    docs = report.data_docs_path or "(not rendered)"
    published.append(
        publishing.markdown(
            f"ingest-{report.dataset}-report",
            f"### Contract report for `{report.dataset}` run `{report.run_id}`\n\n"
            f"* Verdict: **{'passed, merged into main' if report.passed else 'rejected, main unchanged'}**\n"
            f"* Contract report (JSON): `{report.report_path}`\n"
            f"* Great Expectations Data Docs: `{docs}`\n"
            f"* Ingest branch (kept): `lakefs://{report.repository}/{report.branch}`\n",
            description="Where the full contract report and the Data Docs are",
        )
    )
    return published
