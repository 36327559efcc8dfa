"""``ingest_flow``: land a source on its own branch, check it against the dataset's contracts, and merge
it into ``main`` only if it passes.

The stage is ``tasks.ingestion.run_ingest``; this flow gives it typed parameters (a form in the UI),
the lakeFS and S3 clients from settings, the flow run's ID (recorded in the data commit), a progress
line in the run's log, and Prefect as the publisher of its artifacts and of the
``lockgate.dataset.merged`` / ``lockgate.dataset.rejected`` events automations key on.
"""

from __future__ import annotations

from prefect import flow

from flows import runtime
from infra.clients import s3_client_for
from infra.settings import S3Settings
from tasks.ingestion import IngestParameters, IngestResult, run_ingest

__all__ = ["IngestParameters", "ingest_flow"]


@flow(name="ingest", description="Versioned ingestion gated by data contracts.", log_prints=True)
def ingest_flow(parameters: IngestParameters) -> IngestResult:
    """Ingest ``parameters.source`` into ``parameters.dataset``; raise if the contract rejects it."""
    return run_ingest(
        parameters,
        client=runtime.lakefs_client(),
        s3_client=s3_client_for(parameters.source, S3Settings()),
        publish=runtime.publisher(),
        flow_run_id=runtime.run_id(),
        log=runtime.logger(),
    )
