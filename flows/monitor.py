"""``monitor_flow``: what the live model saw since the last run, judged against what it was trained for.

The stage is ``tasks.monitoring.run_monitor`` (drift, outliers, quality, SLOs, the report, the cursor,
the events); this flow gives it typed parameters, the lakeFS client and the inference repository the
serving app writes (``LOCKGATE_SERVING_INFERENCE_REPOSITORY``) from settings, a run name from the flow
run, and Prefect as the publisher of its artifacts and the drift / SLO events automations react to.
"""

from __future__ import annotations

from prefect import flow

from flows import runtime
from infra.settings import ServingSettings
from tasks.clock import SYSTEM_CLOCK
from tasks.monitoring import MonitorParameters, MonitorSummary, report_run_name, run_monitor

__all__ = ["MonitorParameters", "monitor_flow"]


@flow(name="monitor", description="Drift, outliers, quality and SLOs of the live model; report and events.")
def monitor_flow(parameters: MonitorParameters) -> MonitorSummary:
    """Check ``parameters.model_name``'s live traffic since the last run."""
    return run_monitor(
        parameters,
        client=runtime.lakefs_client(),
        inference_repository=ServingSettings().inference_repository,
        publish=runtime.publisher(),
        clock=SYSTEM_CLOCK,
        run_name=report_run_name(SYSTEM_CLOCK.now(), runtime.run_id()),
        log=runtime.logger(),
    )
