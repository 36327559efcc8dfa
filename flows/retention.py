"""``retention_flow``: remove lockgate's data past its retention, then collect the garbage.

The stage is ``tasks.retention.run_retention_job``; this flow gives it typed parameters (a form in
the Prefect UI), the lakeFS client and inference repository from settings, and publishes what went as
a markdown artifact. Its deployment runs daily (``LOCKGATE_AUTOMATION_RETENTION_CRON``).
"""

from __future__ import annotations

from prefect import flow

from flows import runtime
from infra.settings import ServingSettings
from tasks.publishing import markdown
from tasks.retention import RetentionParameters, RetentionResult, run_retention_job

__all__ = ["RetentionParameters", "retention_flow"]


@flow(
    name="retention", description="Remove old inference logs, reports, checkpoints and rejected ingests; GC."
)
def retention_flow(parameters: RetentionParameters) -> RetentionResult:
    """Apply the retention policy in ``parameters`` to lockgate's repositories."""
    log = runtime.logger()
    result = run_retention_job(
        parameters,
        client=runtime.lakefs_client(),
        inference_repository=ServingSettings().inference_repository,
        progress=log.info,
    )
    runtime.publisher().artifact(
        markdown("retention", result.markdown(), description="What retention removed and GC freed.")
    )
    return result
