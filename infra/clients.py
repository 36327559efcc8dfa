"""Client factories: build each external client once, at an entry point, from its settings."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from infra.errors import ConfigurationError, DaskUnavailableError
from infra.settings import DaskSettings, LakeFSSettings, S3Settings

if TYPE_CHECKING:
    import lakefs

API_PATH = "/api/v1"


def lakefs_api_url(endpoint: str) -> str:
    """The API base URL the ``lakefs`` SDK needs (it does not append ``/api/v1`` itself)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(API_PATH) else endpoint + API_PATH


def make_lakefs_client(settings: LakeFSSettings) -> lakefs.Client:
    """Return an official ``lakefs.Client`` for the lakeFS server named in ``settings``.

    Args:
        settings: Settings with ``endpoint`` and credentials set.

    Returns:
        The client.

    Raises:
        ConfigurationError: ``settings.endpoint`` is unset. The embedded server picks its port when it starts,
            so start it with ``infra.lakefs_server.launcher.EmbeddedLakeFS`` and use its ``.client()``.
    """
    import lakefs  # imported here so CLI start-up and --help stay fast

    if settings.endpoint is None:
        raise ConfigurationError(
            "LOCKGATE_LAKEFS_ENDPOINT is unset: start the embedded server "
            "(EmbeddedLakeFS(data_dir).start()) and use its .client(), or set the endpoint of a lakeFS server"
        )
    assert settings.access_key_id is not None and settings.secret_access_key is not None  # validated
    return lakefs.Client(
        host=lakefs_api_url(settings.endpoint),
        username=settings.access_key_id,
        password=settings.secret_access_key.get_secret_value(),
        verify_ssl=settings.verify_ssl,
    )


def lakefs_settings_of(client: lakefs.Client) -> LakeFSSettings:
    """The endpoint and credentials of ``client`` as settings, for processes that build their own
    client (Dask workers, Ray replicas) without reading the environment."""
    from pydantic import SecretStr

    config = client.config
    return LakeFSSettings(
        endpoint=config.host,
        access_key_id=config.username,
        secret_access_key=SecretStr(config.password),
        verify_ssl=config.verify_ssl,
    )


def s3_client_for(source: str, settings: S3Settings):
    """A boto3 S3 client when ``source`` is an ``s3://`` URI, else ``None`` (local files need none)."""
    return make_s3_client(settings) if source.startswith("s3://") else None


def make_s3_client(settings: S3Settings):
    """Return a boto3 S3 client for ``settings`` (endpoint, region, optional explicit credentials)."""
    import boto3

    credentials = {}
    if settings.access_key_id and settings.secret_access_key:
        credentials = {
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": settings.secret_access_key.get_secret_value(),
        }
    return boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region, **credentials)


@contextlib.contextmanager
def dask_client(settings: DaskSettings) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the configured scheduler, or for a LocalCluster started here.

    Connecting to a scheduler is retried ``connect_attempts`` times, each bounded by
    ``connect_timeout_s``; then a clear error names the address. LocalCluster workers inherit this
    process's environment (lakeFS settings included), so set it before entering.
    """
    from dask.distributed import Client, LocalCluster

    if settings.scheduler_address:
        last: Exception | None = None
        for attempt in range(1, settings.connect_attempts + 1):
            try:
                client = Client(settings.scheduler_address, timeout=f"{settings.connect_timeout_s}s")
                break
            except (OSError, TimeoutError) as error:
                last = error
                time.sleep(min(2.0 * attempt, 10.0))
        else:
            raise DaskUnavailableError(
                f"Dask scheduler at {settings.scheduler_address} unreachable after "
                f"{settings.connect_attempts} attempt(s) of {settings.connect_timeout_s:g}s "
                f"({type(last).__name__}: {last}); check LOCKGATE_DASK_SCHEDULER_ADDRESS or unset it "
                "to use a LocalCluster"
            ) from last
        with client:
            yield client
        return
    if settings.cuda:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as error:
            raise DaskUnavailableError(
                "LOCKGATE_DASK_CUDA is set but dask-cuda is not installed: `pip install dask-cuda` on the "
                "GPU machine, or unset it to train on a CPU LocalCluster"
            ) from error
        with LocalCUDACluster(dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=settings.n_workers,
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            dashboard_address=":0",  # a free port: never clash with another cluster's 8787
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
