"""Publishing what a stage did to Prefect: its events (automations key on them) and its artifacts."""

from __future__ import annotations

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from tasks.events import Event
from tasks.publishing import Artifact


class PrefectPublisher:
    """Events through Prefect's events client, artifacts through its API (inside a flow run they
    belong to the run; outside one, e.g. from the CLI, they stand alone)."""

    def event(self, event: Event) -> None:
        emit_event(event=event.name, resource=event.resource, payload=event.payload)

    def artifact(self, artifact: Artifact) -> None:
        if artifact.kind == "table":
            create_table_artifact(
                key=artifact.key, table=list(artifact.table), description=artifact.description
            )
        elif artifact.kind == "markdown":
            create_markdown_artifact(
                key=artifact.key, markdown=artifact.markdown, description=artifact.description
            )
        else:
            create_link_artifact(
                key=artifact.key,
                link=artifact.link,
                link_text=artifact.link_text,
                description=artifact.description,
            )
