"""The demo's closed loop: drift injected into live traffic; monitoring, a Prefect automation, retraining
and an SLO-gated rollout respond; the new champion is traced back to its data.

The deployments run in a worker process (``python -m flows.deployments``) against a Prefect server
(the one ``PREFECT_API_URL`` names, or a temporary one started here); this process plays the world
around them: live traffic, outcomes that arrive, and the scheduled monitor run, whose drift event is
what the automation reacts to.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flows import loop
from flows.demo.serving import DEMO_DATASET, DEMO_MODEL, loan_records

if TYPE_CHECKING:
    import lakefs

    from flows.demo import DemoReporter
    from infra.settings import LakeFSSettings, ServingSettings

DECISION_ITEMS = (
    "trigger",
    "challenger",
    "champion",
    "metric",
    "challenger_metric",
    "champion_metric",
    "decision",
    "reason",
)


def worker_environment(
    *, prefect_api_url: str, lakefs_settings: LakeFSSettings, serving: ServingSettings, ray_address: str
) -> dict[str, str]:
    """The deployment worker's environment: where everything is, and how fast the demo's loop turns."""
    from infra.settings import DaskSettings

    secret = lakefs_settings.secret_access_key
    return {
        "PREFECT_API_URL": prefect_api_url,
        "LOCKGATE_LAKEFS_ENDPOINT": lakefs_settings.endpoint or "",
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": lakefs_settings.access_key_id or "",
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        "LOCKGATE_SERVING_RAY_ADDRESS": ray_address,
        "LOCKGATE_SERVING_PORT": str(serving.port),
        # The demo's dataset and model, for the deployments (AutomationSettings) and everything they run.
        "LOCKGATE_DATASET": DEMO_DATASET,
        "LOCKGATE_MODEL_NAME": serving.model_name or DEMO_MODEL,
        "LOCKGATE_SERVING_MODEL_NAME": serving.model_name or DEMO_MODEL,
        "LOCKGATE_SERVING_INFERENCE_REPOSITORY": serving.inference_repository,
        "LOCKGATE_DASK_N_WORKERS": str(DaskSettings().n_workers),
        # The demo wants the drift alarm, not the merge of new data, to start the retrain.
        "LOCKGATE_AUTOMATION_RETRAIN_ON_MERGE": "false",
        "LOCKGATE_AUTOMATION_MONITOR_INTERVAL_S": "3600",
        "LOCKGATE_AUTOMATION_TRAIN_EPOCHS": "6",
        "LOCKGATE_AUTOMATION_RETRAIN_COOLDOWN_S": "30",
        "LOCKGATE_AUTOMATION_ROLLOUT_HOLD_S": "4",
        "LOCKGATE_AUTOMATION_ROLLOUT_MAX_WAIT_S": "30",
        # A better model for a shifted population answers differently: judge latency and errors here.
        "LOCKGATE_AUTOMATION_ROLLOUT_SLO": json.dumps(
            {"p99_latency_ms": 2_000, "min_requests": 20, "max_prediction_psi": 5.0}
        ),
    }


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API this process talks to while inside: ``PREFECT_API_URL``, or a temporary server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server.api_url


def run_loop_demo(
    *,
    client: lakefs.Client,
    lakefs_settings: LakeFSSettings,
    serving: ServingSettings,
    url: str,
    reporter: DemoReporter,
) -> None:
    """Inject drift into live traffic and follow the loop until the new champion serves (or not)."""
    import ray

    from flows.publishing import PrefectPublisher
    from serving.traffic import TrafficGenerator
    from tasks.clock import SYSTEM_CLOCK
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.ingestion import IngestParameters, run_ingest
    from tasks.lineage import lineage_chain
    from tasks.monitoring import MonitorParameters, report_run_name, run_monitor

    reporter.section("Closing the loop: drift -> monitor -> automation -> retrain -> rollout")
    records = loan_records(2_000, seed=8, covariate_shift=0.8)
    work = Path(tempfile.mkdtemp(prefix="lockgate-loop-"))
    with prefect_api() as api_url:
        publish = PrefectPublisher()
        environment = worker_environment(
            prefect_api_url=api_url,
            lakefs_settings=lakefs_settings,
            serving=serving,
            ray_address=ray.get_runtime_context().gcs_address,
        )
        worker = loop.start_worker(environment, work / "worker.log")
        try:
            with reporter.busy("Starting the deployment worker (every flow as a Prefect deployment) ..."):
                retrain_id = loop.wait_for_deployment(f"retrain/{serving.model_name}", worker)
            reporter.info(
                f"[green]serving[/] deployments with schedules and triggers (worker log {worker.log_path})"
            )
            injected_at, started = datetime.now(UTC), time.monotonic()
            with TrafficGenerator(url, records, concurrency=4, rate_per_s=80) as traffic:
                reporter.info(
                    "[yellow]drift injected[/]: live applicants now come from a shifted population (older,"
                    " higher salaries), and their outcomes follow a different rule (Agrawal function 2"
                    " instead of 0)"
                )
                source = work / "shifted.parquet"
                write_batch(
                    GeneratorConfig(
                        rows=8_000, seed=9, covariate_shift=0.8, function=2, first_id=900_000_000
                    ),
                    str(source),
                )
                with reporter.busy("Outcomes of the shifted population arrive: ingest_flow ..."):
                    merged = run_ingest(
                        IngestParameters(source=str(source), dataset=DEMO_DATASET),
                        client=client,
                        s3_client=None,
                        publish=publish,
                    )
                reporter.info(
                    f"[green]merged[/] {merged.rows or 8000:,} labelled rows into lockgate-loans main"
                )
                SYSTEM_CLOCK.sleep(4)  # a few seconds of shifted traffic reach the inference log
                with reporter.busy("monitor_flow (scheduled in production; run now) ..."):
                    summary = run_monitor(
                        MonitorParameters(model_name=serving.model_name),
                        client=client,
                        inference_repository=serving.inference_repository,
                        publish=publish,
                        clock=SYSTEM_CLOCK,
                        run_name=report_run_name(SYSTEM_CLOCK.now(), None),
                    )
                alarm_s = time.monotonic() - started
                reporter.monitor_line(summary)
                if summary.status != "drift":
                    reporter.info("No drift alarm, so no automatic retrain this time.")
                    return
                with reporter.busy("Waiting for the automation to start retrain_flow ..."):
                    run = loop.wait_for_started_run(retrain_id, since=injected_at, timeout=120)
                triggered_s = time.monotonic() - started
                trigger = run.parameters["parameters"]["trigger"]
                reporter.info(f"[green]automation fired[/]: {run.name} (trigger {trigger})")
                with reporter.busy("retrain_flow: training, champion vs challenger, rollout ...") as update:
                    final = loop.wait_for_final(
                        str(run.id),
                        timeout=900,
                        on_poll=lambda current: update(
                            f"retrain_flow {current.name}: {current.state.name if current.state else '...'}"
                        ),
                        worker=worker,
                    )
                done_s = time.monotonic() - started
            decision = loop.decision_of(str(run.id))
            reporter.items(
                f"retrain {run.name}: {final.state.name}",
                [(key, decision.get(key, "")) for key in DECISION_ITEMS],
            )
            report = traffic.report
            reporter.info(
                f"traffic during the loop: {report.requests:,} requests, {report.failed} failed, answered by "
                + ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items()))
            )
            serving_note = " and serving 100%" if decision.get("decision") == "promoted" else ""
            reporter.info(
                f"drift injected -> alarm {alarm_s:.1f} s -> retrain started {triggered_s:.1f} s -> "
                f"decided{serving_note} {done_s:.1f} s "
                f"(retrain_flow run itself: {final.total_run_time.total_seconds():.1f} s)"
            )
            if not final.state.is_completed():
                reporter.panel(worker.log_tail(60), title="retrain did not complete", style="red")
                return
            reporter.lineage_tree(lineage_chain(client, serving.model_name), decision)
        finally:
            worker.stop()


__all__ = ["DEMO_MODEL", "run_loop_demo", "worker_environment"]
