"""Ingestion of a source into a dataset's lakeFS repository, gated by the dataset's contracts.

=================================  ================================================================
``tasks.ingestion.sources``        resolve and fingerprint sources; read them in bounded chunks
``tasks.ingestion.checks``         row-level contract checks (shared with the pre-merge gate)
``tasks.ingestion.key_index``      the key index on ``main``: keys unique across batches
``tasks.ingestion.staging``        the run's branch: stage, check expectations, report, merge
``tasks.ingestion.run``            ``run_ingest``: the stage, its events and artifacts
=================================  ================================================================

Plain functions: the lakeFS and S3 clients and the publisher are injected; Prefect lives in
``flows.ingest``.
"""

from __future__ import annotations

from infra.errors import (
    ContractViolationError,
    IngestionError,
    SourceAccessError,
    SourceFormatError,
    SourceNotFoundError,
)
from tasks.contract_reports import DATA_PREFIX, REPORTS_PREFIX
from tasks.ingestion.checks import (
    EXAMPLES_PER_CHECK,
    CheckFailures,
    KeyLedger,
    Reservoir,
    RowCheckCollector,
    check_keys_across_chunks,
    check_rows,
    coerce,
    unique_keys,
)
from tasks.ingestion.run import IngestParameters, IngestResult, ingest_artifacts, run_ingest
from tasks.ingestion.sources import (
    SUFFIX_FORMATS,
    SourceFile,
    SourceFormat,
    batch_fingerprint,
    file_sha256,
    local_copy,
    read_chunks,
    resolve_sources,
)
from tasks.ingestion.staging import (
    GX_SAMPLE_ROWS,
    IngestReport,
    Progress,
    StagedBatch,
    check_expectations,
    find_ingested,
    ingest_branch_name,
    merge_batch,
    new_run_id,
    publish_report,
    rejection_message,
    schema_fingerprint,
    stage_batch,
)

__all__ = [
    "DATA_PREFIX",
    "EXAMPLES_PER_CHECK",
    "GX_SAMPLE_ROWS",
    "REPORTS_PREFIX",
    "SUFFIX_FORMATS",
    "CheckFailures",
    "ContractViolationError",
    "IngestParameters",
    "IngestReport",
    "IngestResult",
    "IngestionError",
    "KeyLedger",
    "Progress",
    "Reservoir",
    "RowCheckCollector",
    "SourceAccessError",
    "SourceFile",
    "SourceFormat",
    "SourceFormatError",
    "SourceNotFoundError",
    "StagedBatch",
    "batch_fingerprint",
    "check_expectations",
    "check_keys_across_chunks",
    "check_rows",
    "coerce",
    "file_sha256",
    "find_ingested",
    "ingest_artifacts",
    "ingest_branch_name",
    "local_copy",
    "merge_batch",
    "new_run_id",
    "publish_report",
    "read_chunks",
    "rejection_message",
    "resolve_sources",
    "run_ingest",
    "schema_fingerprint",
    "stage_batch",
    "unique_keys",
]
