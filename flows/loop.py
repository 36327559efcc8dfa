"""The closed loop, driven from outside: start the deployment worker, wait for what automations start,
and read back their decisions (through Prefect's client). Used by the demo (``flows.demo.loop``), the
automation tests and ``bench/bench_loop.py``; nothing here decides anything the flows do not.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.errors import LoopError
from infra.processes import ManagedProcess, child_environment
from infra.settings import THROUGHPUT_ENVIRONMENT

WORKER_START_TIMEOUT_S = 90.0


def start_worker(environment: Mapping[str, str], log_path: Path) -> ManagedProcess:
    """Start the deployment worker (``python -m flows.deployments``) with ``environment`` added to this
    process's; output goes to ``log_path``."""
    # Ray Serve's throughput switches are for the Serve processes of a Ray this process started; a
    # driver that joins that Ray (deploy_flow in the worker's runs) needs Serve's defaults.
    env = child_environment(environment, drop=THROUGHPUT_ENVIRONMENT)
    worker = ManagedProcess(
        "deployment worker",
        [sys.executable, "-m", "flows.deployments"],
        log_path=log_path,
        env=env,
        grace_s=30,
    )
    return worker.start()


def wait_for_deployment(name: str, worker: ManagedProcess, *, timeout: float = WORKER_START_TIMEOUT_S) -> str:
    """The ID of deployment ``flow/name`` once ``worker`` has registered it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if not worker.running():
                raise LoopError(
                    f"the deployment worker exited ({worker.process.returncode}):\n{worker.log_tail(60)}"
                )
            try:
                return str(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                time.sleep(0.5)
    raise LoopError(f"the worker did not register {name} within {timeout:.0f} s:\n{worker.log_tail()}")


def flow_runs_of(deployment_id: str, *, since: datetime | None = None) -> list[Any]:
    """Flow runs of a deployment (created after ``since``), oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)]))
        )
    runs = [run for run in runs if since is None or run.created >= since]
    return sorted(runs, key=lambda run: run.created)


def wait_for_started_run(deployment_id: str, *, since: datetime, timeout: float) -> Any:
    """The first run of the deployment created after ``since`` (an automation made it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = flow_runs_of(deployment_id, since=since)
        if runs:
            return runs[0]
        time.sleep(0.5)
    raise LoopError(f"no automation started a run of deployment {deployment_id} within {timeout:.0f} s")


def wait_for_final(
    flow_run_id: str,
    *,
    timeout: float,
    on_poll: Callable[[Any], None] | None = None,
    worker: ManagedProcess | None = None,
) -> Any:
    """The flow run once it is in a final state (completed, failed, cancelled, crashed)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(uuid.UUID(flow_run_id))
            if on_poll is not None:
                on_poll(run)
            if run.state is not None and run.state.is_final():
                return run
            if worker is not None and not worker.running():
                raise LoopError(f"the deployment worker exited while {run.name} ran:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise LoopError(f"flow run {run.name} did not finish within {timeout:.0f} s")
            time.sleep(1.0)


def decision_of(flow_run_id: str) -> dict[str, Any]:
    """The retrain decision a run recorded in its ``retrain-<model>-decision`` table artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]))
        )
    # The rollout run's artifacts belong to its own (sub)flow run; the decision table is the retrain's.
    for artifact in sorted(artifacts, key=lambda a: a.created, reverse=True):
        if artifact.key and artifact.key.endswith("-decision"):
            table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
            return {row["item"]: row["value"] for row in table}
    raise LoopError(f"flow run {flow_run_id} recorded no retrain decision")
