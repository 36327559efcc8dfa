"""What commands build before they call a stage: the lakeFS connection and where events go.

Commands call the same ``run_*`` functions as the flows, with clients built here from settings and
options. Nothing is exported to the environment: processes the stages start (Dask workers, Ray
replicas, the deployment worker) are handed the endpoint and credentials explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flows.cli.app import console

if TYPE_CHECKING:
    import lakefs

    from infra.lakefs_server.launcher import EmbeddedLakeFS
    from infra.settings import LakeFSSettings
    from tasks.datasets import DatasetSpec
    from tasks.publishing import Publisher
    from tasks.registry import ModelCard


@dataclass(frozen=True)
class Connection:
    """A lakeFS client, the settings child processes build theirs from, and the embedded server if one
    was started for the command."""

    client: lakefs.Client
    settings: LakeFSSettings
    server: EmbeddedLakeFS | None = None


@contextlib.contextmanager
def lakefs_connection(data_dir: Path | None, *, quiet: bool = False) -> Iterator[Connection]:
    """The configured lakeFS (``LOCKGATE_LAKEFS_ENDPOINT``, checked to answer), or the embedded server
    started on ``data_dir`` for the command and stopped after it."""
    from infra.clients import lakefs_settings_of, make_lakefs_client
    from infra.lakefs_server.launcher import EmbeddedLakeFS
    from infra.settings import LakeFSSettings
    from tasks import versioning

    settings = LakeFSSettings()
    if settings.endpoint is not None:
        client = make_lakefs_client(settings)
        versioning.check_connection(client)
        if not quiet:
            console.print(f"Using the lakeFS server at [bold]{settings.endpoint}[/]")
        yield Connection(client=client, settings=settings)
        return
    server = EmbeddedLakeFS(data_dir or settings.embedded_data_dir)
    with console.status("Starting the embedded lakeFS-API server..."):
        server.start()
    if not quiet:
        console.print(f"Embedded lakeFS-API server on [bold]{server.endpoint}[/] (data in {server.data_dir})")
    try:
        client = server.client()
        yield Connection(client=client, settings=lakefs_settings_of(client), server=server)
    finally:
        server.stop()


def publisher() -> Publisher:
    """Prefect, when a Prefect API is configured (``PREFECT_API_URL``: automations hear the events and
    the UI shows the artifacts); otherwise the events have no listener and are only recorded."""
    from prefect.settings import PREFECT_API_URL

    from tasks.publishing import RecordingPublisher

    if PREFECT_API_URL.value():
        from flows.publishing import PrefectPublisher

        return PrefectPublisher()
    return RecordingPublisher()


def dataset_of_card(card: ModelCard) -> DatasetSpec:
    """The declared dataset a model version was trained on (``tasks.datasets.dataset_of_card``)."""
    from tasks.datasets import dataset_of_card as of_card

    return of_card(card)


def dataset_of_model(model_name: str, *, client: lakefs.Client) -> str | None:
    """The dataset the newest version of ``model_name`` was trained on; ``None`` for a model not yet
    registered."""
    from infra.errors import ModelNotFoundError
    from tasks.registry import LATEST, show_model

    try:
        card = show_model(model_name, LATEST, client=client)
    except ModelNotFoundError:
        return None
    return dataset_of_card(card).name
