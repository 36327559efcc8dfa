"""lakeFS actions: ``_lakefs_actions/*.yaml`` on a ref, webhooks fired around commits, merges,
branch and tag creation. A failing pre-hook aborts the operation (412); post-hooks are fired after
it, off the request path, and their failures are only logged (as in lakeFS).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from .errors import PreconditionFailed

ACTIONS_PREFIX = "_lakefs_actions/"
EVENTS = {
    "pre-commit",
    "post-commit",
    "pre-merge",
    "post-merge",
    "pre-create-branch",
    "post-create-branch",
    "pre-create-tag",
    "post-create-tag",
}
MAX_ACTION_FILE = 1024 * 1024
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# lakeFS actions read secrets from the server's environment as {{ ENV.NAME }}; the server hands the
# runner only the variables actions may read (as lakeFS's actions.env.prefix, LAKEFSACTION_* by default).
_ENV_REFERENCE = re.compile(r"\{\{\s*ENV\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
logger = logging.getLogger("lockgate.lakefs.hooks")


@dataclass(frozen=True)
class Hook:
    action: str
    hook_id: str
    url: str
    timeout: float
    query_params: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    name: str
    source: str
    on: dict[str, list[str] | None]  # event -> branch patterns (None: all branches)
    hooks: tuple[Hook, ...]

    def hooks_for(self, event: str, branch: str | None) -> tuple[Hook, ...]:
        if event not in self.on:
            return ()
        patterns = self.on[event]
        if patterns and not any(fnmatch.fnmatchcase(branch or "", pattern) for pattern in patterns):
            return ()
        return self.hooks


def parse_duration(text: Any, default: float) -> float:
    """Go-style duration ('2s', '1m30s', '500ms') in seconds."""
    if text is None:
        return default
    if isinstance(text, int | float):
        return float(text)
    parts = _DURATION.findall(str(text).strip())
    if not parts or "".join(number + unit for number, unit in parts) != str(text).strip():
        raise ValueError(f"invalid duration {text!r} (use e.g. '2s', '500ms', '1m')")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_action(source: str, raw: bytes, *, default_timeout: float) -> Action:
    """Parse one actions file; raise ValueError naming the file and the problem."""

    def fail(problem: str) -> ValueError:
        return ValueError(f"invalid action file {source}: {problem}")

    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise fail(f"not valid YAML ({error})".replace("\n", " ")) from error
    if not isinstance(document, dict):
        raise fail("expected a mapping with 'name', 'on' and 'hooks'")
    name = document.get("name")
    # YAML 1.1 reads a bare `on:` key as the boolean true.
    on = document.get("on", document.get(True))
    hooks = document.get("hooks")
    if not name or not isinstance(name, str):
        raise fail("missing 'name'")
    if not isinstance(on, dict) or not on:
        raise fail("missing 'on': map each event (e.g. pre-merge) to an optional {branches: [...]}")
    events: dict[str, list[str] | None] = {}
    for event, spec in on.items():
        if event not in EVENTS:
            raise fail(f"unknown event {event!r}; known: {', '.join(sorted(EVENTS))}")
        branches = (spec or {}).get("branches") if isinstance(spec, dict) else None
        if branches is not None and not (
            isinstance(branches, list) and all(isinstance(b, str) for b in branches)
        ):
            raise fail(f"'on.{event}.branches' must be a list of branch names or patterns")
        events[event] = branches
    if not isinstance(hooks, list) or not hooks:
        raise fail("missing 'hooks': a list of {id, type: webhook, properties: {url}}")
    parsed = []
    for index, hook in enumerate(hooks):
        if not isinstance(hook, dict) or not hook.get("id"):
            raise fail(f"hook #{index + 1} needs an 'id'")
        if hook.get("type") != "webhook":
            raise fail(f"hook {hook['id']!r}: type {hook.get('type')!r} is not supported (only 'webhook')")
        properties = hook.get("properties") or {}
        url = properties.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise fail(f"hook {hook['id']!r}: 'properties.url' must be an http(s) URL")
        try:
            timeout = parse_duration(properties.get("timeout"), default_timeout)
        except ValueError as error:
            raise fail(f"hook {hook['id']!r}: {error}") from error
        headers = properties.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise fail(f"hook {hook['id']!r}: 'properties.headers' must map header names to strings")
        parsed.append(
            Hook(
                name, str(hook["id"]), url, timeout, dict(properties.get("query_params") or {}), dict(headers)
            )
        )
    return Action(name, source, events, tuple(parsed))


def expand_environment(text: str, environment: Mapping[str, str]) -> str:
    """Replace each ``{{ ENV.NAME }}`` with ``environment[NAME]``; raise RuntimeError when it is not
    there (unset, or outside the prefix actions may read: the hook then fails, as in lakeFS)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environment:
            raise RuntimeError(
                f"environment variable {name} is not available to actions (unset on the lakeFS server, "
                "or outside LOCKGATE_EMBEDDED_LAKEFS_ACTION_ENV_PREFIX)"
            )
        return environment[name]

    return _ENV_REFERENCE.sub(value, text)


def call_webhook(hook: Hook, body: dict[str, Any], environment: Mapping[str, str] | None = None) -> None:
    """POST the event to the hook; raise RuntimeError on a non-2xx answer or a timeout."""
    environment = environment or {}
    url = hook.url
    if hook.query_params:
        params = {
            key: [expand_environment(str(item), environment) for item in value]
            if isinstance(value, list)
            else expand_environment(str(value), environment)
            for key, value in hook.query_params.items()
        }
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{url}{'&' if '?' in url else '?'}{query}"
    headers = {name: expand_environment(value, environment) for name, value in hook.headers.items()}
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=hook.timeout) as response:  # noqa: S310 - user-configured
            response.read()
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"webhook answered HTTP {error.code}") from error
    except TimeoutError as error:
        raise RuntimeError(f"webhook timed out after {hook.timeout:g}s") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise RuntimeError(f"webhook timed out after {hook.timeout:g}s") from error
        raise RuntimeError(f"webhook unreachable: {reason}") from error


class HookRunner:
    """Finds the actions on a ref and runs their webhooks for an event.

    Args:
        load_actions: Returns ``(source path, raw bytes)`` of every actions file at a ref.
        default_timeout: Hook timeout when an action sets none.
        environment: What actions may read as ``{{ ENV.NAME }}`` in ``headers`` and ``query_params``.
    """

    def __init__(
        self,
        load_actions: Callable[[str, str], list[tuple[str, bytes]]],
        *,
        default_timeout: float,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self._load_actions = load_actions
        self.default_timeout = default_timeout
        self.environment = dict(environment or {})

    def _actions(self, repository: str, ref: str) -> list[Action]:
        return [
            parse_action(source, raw, default_timeout=self.default_timeout)
            for source, raw in self._load_actions(repository, ref)
        ]

    def run_pre(self, event: str, *, repository: str, actions_ref: str, record: dict[str, Any]) -> None:
        """Run the pre-event hooks found at ``actions_ref``; raise 412 when one fails."""
        run_id = uuid.uuid4().hex[:20]
        try:
            actions = self._actions(repository, actions_ref)
        except ValueError as error:
            raise PreconditionFailed(f"{event} hook aborted, run id '{run_id}': {error}") from error
        for action in actions:
            for hook in action.hooks_for(event, record.get("branch_id")):
                try:
                    call_webhook(hook, self._body(event, hook, repository, record), self.environment)
                except RuntimeError as error:
                    raise PreconditionFailed(
                        f"{event} hook aborted, run id '{run_id}': action {action.name!r} "
                        f"({action.source}) hook {hook.hook_id!r}: {error}"
                    ) from error

    def run_post(self, event: str, *, repository: str, actions_ref: str, record: dict[str, Any]) -> None:
        """Fire the post-event hooks found at ``actions_ref`` in the background."""
        try:
            actions = self._actions(repository, actions_ref)
        except ValueError as error:
            logger.warning("%s hooks skipped: %s", event, error)
            return
        calls = [
            (action, hook) for action in actions for hook in action.hooks_for(event, record.get("branch_id"))
        ]
        if not calls:
            return

        def fire() -> None:
            for action, hook in calls:
                try:
                    call_webhook(hook, self._body(event, hook, repository, record), self.environment)
                except RuntimeError as error:
                    logger.warning("%s hook %s/%s failed: %s", event, action.name, hook.hook_id, error)

        threading.Thread(target=fire, name=f"lakefs-{event}", daemon=True).start()

    @staticmethod
    def _body(event: str, hook: Hook, repository: str, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_type": event,
            "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "action_name": hook.action,
            "hook_id": hook.hook_id,
            "repository_id": repository,
            **record,
        }
