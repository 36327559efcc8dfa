"""``ingest_flow``: land a source on its own branch, check it against the dataset's contracts, and
merge it into ``main`` only if it passes.

The flow only wires ``tasks.ingestion``; it adds what belongs to Prefect: typed parameters (a form in
the UI), artifacts for people, and the ``lockgate.dataset.merged`` / ``lockgate.dataset.rejected``
events that automations key on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, field_validator

from infra.clients import make_lakefs_client, make_s3_client
from infra.errors import ContractViolationError, IngestionError
from infra.settings import LakeFSSettings, S3Settings
from tasks import ingestion, versioning
from tasks.datasets import check_dataset_name, get_dataset

MERGED_EVENT = "lockgate.dataset.merged"
REJECTED_EVENT = "lockgate.dataset.rejected"


class IngestParameters(BaseModel):
    """What to ingest, and into which dataset."""

    source: str = Field(
        ...,
        min_length=1,
        description="Local file, directory or glob, or an s3:// URI (key, prefix or glob) of CSV, "
        "Parquet or JSON-lines files.",
        examples=["data/loans-2026-11.parquet", "s3://landing/loans/2026-11/*.csv"],
    )
    dataset: str = Field("loans", description="Name of a declared dataset (see `lockgate datasets`).")
    chunk_rows: int = Field(
        250_000, ge=1_000, le=5_000_000, description="Rows held in memory at once while reading."
    )

    _known_dataset = field_validator("dataset")(check_dataset_name)


resolve_sources_task = task(ingestion.resolve_sources, name="resolve-sources", cache_policy=NO_CACHE)
stage_batch_task = task(ingestion.stage_batch, name="stage-batch", cache_policy=NO_CACHE)
check_expectations_task = task(ingestion.check_expectations, name="check-expectations", cache_policy=NO_CACHE)
publish_report_task = task(ingestion.publish_report, name="publish-report", cache_policy=NO_CACHE)
merge_batch_task = task(ingestion.merge_batch, name="merge-batch", cache_policy=NO_CACHE)


@flow(name="ingest", description="Versioned ingestion gated by data contracts.", log_prints=True)
def ingest_flow(parameters: IngestParameters) -> dict[str, Any]:
    """Ingest ``parameters.source`` into ``parameters.dataset``; raise if the contract rejects it."""
    logger = get_run_logger()
    spec = get_dataset(parameters.dataset)
    client = make_lakefs_client(LakeFSSettings())
    s3_client = make_s3_client(S3Settings()) if parameters.source.startswith("s3://") else None
    namespace = versioning.default_storage_namespace(spec.repository, client=client)
    versioning.ensure_repository(spec.repository, storage_namespace=namespace or "", client=client)

    run_id = ingestion.new_run_id()
    try:
        sources = resolve_sources_task(parameters.source, s3_client=s3_client)
        fingerprint = ingestion.batch_fingerprint(spec.name, sources)
        already = ingestion.find_ingested(spec, fingerprint, client=client)
        if already:
            logger.info(
                "this content is already on main of %s at %s: nothing to do", spec.repository, already
            )
            return {"status": "unchanged", "repository": spec.repository, "commit": already, "rows": None}
        staged = stage_batch_task(
            spec,
            sources,
            client=client,
            run_id=run_id,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            s3_client=s3_client,
            chunk_rows=parameters.chunk_rows,
            progress=_progress_reporter(),
        )
    except IngestionError as error:
        # Unreadable sources are rejected batches too: automations and people must hear of them.
        emit_event(
            event=REJECTED_EVENT,
            resource={
                "prefect.resource.id": f"lakefs.{spec.repository}.main",
                "lakefs.repository": spec.repository,
                "lockgate.dataset": spec.name,
            },
            payload={"run_id": run_id, "source": parameters.source, "reason": str(error)},
        )
        raise
    with tempfile.TemporaryDirectory(prefix="lockgate-docs-") as docs:
        docs_dir = Path(docs) / "data_docs"
        if staged.data_committed:
            staged.report.expectations = check_expectations_task(spec, staged, data_docs_dir=docs_dir)
        report = publish_report_task(staged, client=client, data_docs_dir=docs_dir)
    _publish_artifacts(report)
    resource = {
        "prefect.resource.id": f"lakefs.{report.repository}.{report.branch}",
        "lakefs.repository": report.repository,
        "lakefs.branch": report.branch,
        "lockgate.dataset": report.dataset,
    }
    if not report.passed:
        report.status = "rejected"
        emit_event(
            event=REJECTED_EVENT,
            resource={**resource, "lakefs.commit": report.data_commit or ""},
            payload=_event_payload(report),
        )
        raise ContractViolationError(ingestion.rejection_message(report), report=report)
    merge_commit = merge_batch_task(report, client=client)
    emit_event(
        event=MERGED_EVENT,
        resource={
            **resource,
            "lakefs.branch": "main",
            "lakefs.commit": merge_commit,
            "lakefs.source_branch": report.branch,
        },
        payload=_event_payload(report),
    )
    logger.info("merged %s rows of %s into main at %s", report.rows, spec.name, merge_commit)
    return {
        "status": "merged",
        "repository": report.repository,
        "commit": merge_commit,
        "rows": report.rows,
        "report": report.report_path,
    }


def _event_payload(report: ingestion.IngestReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "rows": report.rows,
        "data_commit": report.data_commit,
        "merge_commit": report.merge_commit,
        "report": report.report_path,
        "failures": report.failure_count,
    }


def _publish_artifacts(report: ingestion.IngestReport) -> None:
    """What a person on call looks at: a summary, the worst failures, where the full report is."""
    expectations = report.expectations.get("results", [])
    create_table_artifact(
        key=f"ingest-{report.dataset}-summary",
        table=[
            {"field": "dataset", "value": report.dataset},
            {"field": "verdict", "value": "PASSED" if report.passed else "REJECTED"},
            {"field": "rows", "value": report.rows},
            {"field": "row-rule failures", "value": sum(c.count for c in report.row_checks)},
            {"field": "expectations failed", "value": sum(1 for r in expectations if not r.get("success"))},
            {"field": "branch", "value": report.branch},
            {"field": "data commit", "value": report.data_commit or "(none: source not coercible)"},
            {"field": "contract report", "value": report.report_path},
        ],
        description=f"Ingest of {report.dataset}, run {report.run_id}",
    )
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
            "rule": result.get("type"),
            "failures": result.get("unexpected_count"),
            "example row": None,
            "example value": str(result.get("observed_value")),
            "file": "(GX expectation)",
        }
        for result in expectations
        if not result.get("success")
    ]
    if failures:
        create_table_artifact(
            key=f"ingest-{report.dataset}-failures",
            table=failures,
            description="Top contract failures (full list in the contract report)",
        )
    docs = report.data_docs_path or "(not rendered)"
    create_markdown_artifact(
        key=f"ingest-{report.dataset}-report",
        markdown=(
            f"### Contract report for `{report.dataset}` run `{report.run_id}`\n\n"
            f"* Verdict: **{'passed, merged into main' if report.passed else 'rejected, main unchanged'}**\n"
            f"* Contract report (JSON): `{report.report_path}`\n"
            f"* Great Expectations Data Docs: `{docs}`\n"
            f"* Ingest branch (kept): `lakefs://{report.repository}/{report.branch}`\n"
        ),
        description="Where the full contract report and the Data Docs are",
    )


_reporter: ingestion.Progress | None = None


def set_progress_reporter(reporter: ingestion.Progress | None) -> None:
    """Let a front end (the CLI's progress bar) follow the rows read; flows report to logs otherwise."""
    global _reporter
    _reporter = reporter


def _progress_reporter() -> ingestion.Progress | None:
    return _reporter
