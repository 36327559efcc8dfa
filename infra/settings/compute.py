"""Where training runs (``LOCKGATE_DASK_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings

from infra.settings.base import settings_config


class DaskSettings(BaseSettings):
    """Where training runs: an existing Dask scheduler, or a LocalCluster started for the run."""

    model_config = settings_config("LOCKGATE_DASK_", "Dask settings")

    scheduler_address: str | None = Field(
        None,
        description="tcp://host:8786 of an existing scheduler (dask-kubernetes, dask-jobqueue, cloud); "
        "unset starts a LocalCluster.",
    )
    n_workers: int = Field(2, ge=1, le=512, description="Workers (ranks) of the LocalCluster.")
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per LocalCluster worker.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Timeout of one connection attempt.")
    connect_attempts: int = Field(3, ge=1, le=20, description="Connection attempts before giving up.")
    cuda: bool = Field(
        False,
        description="Start a dask-cuda LocalCUDACluster (one worker per GPU) instead of a LocalCluster; "
        "needs `pip install dask-cuda` on a CUDA machine.",
    )
    rendezvous_host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("LOCKGATE_DASK_RENDEZVOUS_HOST", "LOCKGATE_RENDEZVOUS_HOST"),
        description="Address rank 0's worker publishes for the DDP rendezvous, read on that worker (set it "
        "on multi-host clusters to an address the other workers reach; LOCKGATE_RENDEZVOUS_HOST is read "
        "too).",
    )
