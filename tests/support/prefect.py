"""Reading back what flows left on the Prefect server (events, artifacts), for integration tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

EVENT_TIMEOUT_S = 20.0


def read_events(name: str, *, flow_run_id: str, timeout: float = EVENT_TIMEOUT_S) -> list[Any]:
    """Events called ``name`` that ``flow_run_id`` emitted, read back from the Prefect server.

    Events reach the server asynchronously (the events worker sends them over a websocket), so poll.
    With ``timeout`` short, an empty answer says "none arrived yet", which is how tests check that a
    run emitted nothing.
    """
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            # Rebuilt on every poll: the filter's default ``occurred.until`` is "now" when it is built.
            event_filter = EventFilter(
                event=EventNameFilter(name=[name]),
                related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
            )
            page = client.read_events(filter=event_filter, limit=50)
            if page.events or time.monotonic() > deadline:
                return list(page.events)
            time.sleep(0.25)


def read_artifacts(flow_run_id: str) -> list[Any]:
    """The artifacts ``flow_run_id`` created, from the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]))
        )
