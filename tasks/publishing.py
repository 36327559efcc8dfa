"""How a stage tells people and automations what it did, without knowing who listens.

Every ``run_*`` takes a ``Publisher``: it hands over events (``tasks.events.Event``) and artifacts
(tables, markdown, links) as it goes. The Prefect flows publish them as Prefect events and artifacts
(``flows.publishing.PrefectPublisher``); the CLI does the same when a Prefect API is configured; tests
and offline runs keep them in a ``RecordingPublisher``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tasks.events import Event


@dataclass(frozen=True)
class Artifact:
    """Something for a person to look at: a table (rows), markdown text, or a link."""

    kind: Literal["table", "markdown", "link"]
    key: str
    description: str
    table: tuple[dict[str, Any], ...] = ()
    markdown: str = ""
    link: str = ""
    link_text: str = ""


class Publisher(Protocol):
    """Where a stage's events and artifacts go."""

    def event(self, event: Event) -> None: ...

    def artifact(self, artifact: Artifact) -> None: ...


@dataclass
class RecordingPublisher:
    """Keeps everything in order, for tests and for runs nobody else listens to."""

    events: list[Event] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def artifact(self, artifact: Artifact) -> None:
        self.artifacts.append(artifact)

    def events_named(self, name: str) -> list[Event]:
        return [event for event in self.events if event.name == name]

    def artifact_named(self, key: str) -> Artifact:
        """The last artifact published under ``key``."""
        matches = [artifact for artifact in self.artifacts if artifact.key == key]
        if not matches:
            raise KeyError(f"no artifact {key!r}; published: {[a.key for a in self.artifacts]}")
        return matches[-1]


def table(key: str, rows: Sequence[Mapping[str, Any]], *, description: str) -> Artifact:
    """A table artifact."""
    return Artifact("table", artifact_key(key), description, table=tuple(dict(row) for row in rows))


def markdown(key: str, text: str, *, description: str) -> Artifact:
    """A markdown artifact."""
    return Artifact("markdown", artifact_key(key), description, markdown=text)


def link(key: str, url: str, *, text: str, description: str) -> Artifact:
    """A link artifact."""
    return Artifact("link", artifact_key(key), description, link=url, link_text=text)


def artifact_key(name: str) -> str:
    """Artifact keys are lower-case letters, digits and dashes (Prefect's rule)."""
    return name.lower().replace("_", "-")


def inline_png(name: str, png: bytes) -> str:
    """Markdown showing ``png`` inline (artifacts cannot link to files)."""
    return f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
