"""``train_flow``: train on a contract-checked dataset commit with DDP on Dask, evaluate, register.

The stage is ``tasks.training.run_train``; this flow gives it typed parameters (a form in the Prefect
UI), the lakeFS client and the Dask cluster from settings (``LOCKGATE_DASK_*``), the flow run's ID
(recorded in the model card; a retried run resumes from its checkpoints) and Prefect as the publisher
of its artifacts and the ``lockgate.model.registered`` event.
"""

from __future__ import annotations

from prefect import flow

from flows import runtime
from infra.clients import dask_client
from infra.settings import DaskSettings
from tasks.training import TrainParameters, TrainResult, run_train

__all__ = ["TrainParameters", "train_flow"]


@flow(name="train", description="DDP training on Dask, evaluation and registration with lineage.")
def train_flow(parameters: TrainParameters) -> TrainResult:
    """Train ``parameters.model_name`` on ``parameters.dataset`` at ``parameters.ref`` and register it."""
    settings = DaskSettings()
    return run_train(
        parameters,
        client=runtime.lakefs_client(),
        dask_cluster=lambda: dask_client(settings),
        publish=runtime.publisher(),
        run_id=runtime.run_id_or_random(),
        flow_run_id=runtime.run_id(),
        log=runtime.logger(),
    )
