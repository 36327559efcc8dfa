"""What every flow body shares: its clients built from settings, its run ID, its publisher and logger.

A flow run by a deployment (worker, schedule, automation, UI) has only the environment to go by, so
its clients come from ``infra.settings`` here, once per run, and are passed down to the ``run_*`` it
calls. The CLI builds its own (with its options) and calls the same ``run_*`` without a flow.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from prefect import get_run_logger
from prefect.runtime import flow_run

from flows.publishing import PrefectPublisher
from infra.clients import make_lakefs_client
from infra.settings import LakeFSSettings

if TYPE_CHECKING:
    import lakefs


def lakefs_client() -> lakefs.Client:
    """The lakeFS client of this run (``LOCKGATE_LAKEFS_*``)."""
    return make_lakefs_client(LakeFSSettings())


def run_id() -> str | None:
    """This flow run's ID, or ``None`` outside a flow run."""
    return str(flow_run.id) if flow_run.id else None


def run_id_or_random() -> str:
    """This flow run's ID, or a random one (a run outside Prefect still needs a name)."""
    return run_id() or uuid.uuid4().hex


def publisher() -> PrefectPublisher:
    return PrefectPublisher()


def logger():
    """Prefect's run logger (what the UI shows for the run)."""
    return get_run_logger()
