"""What a relayed request becomes: the JSON bodies the relay accepts, the Prefect events it makes
of them, and their delivery to Prefect's API (``serving.webhook_relay`` is the app)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.errors import EventDeliveryError, RequestRejectedError
from tasks import events

LAKEFS_FIELDS = (
    "event_type",
    "event_time",
    "action_name",
    "hook_id",
    "repository_id",
    "branch_id",
    "source_ref",
    "commit_id",
    "commit_message",
    "committer",
    "commit_metadata",
)


def deliver_event(*, event: str, resource: dict[str, str], payload: dict[str, Any], timeout: float = 10.0):
    """Hand one event to Prefect's API (``POST /api/events``) and return it once stored.

    Unlike ``prefect.events.emit_event``, which queues the event for a background sender, this
    returns only after the server answered, so the relay never says 202 for an event it may lose.

    Raises:
        EventDeliveryError: the API is not configured, unreachable, slow beyond ``timeout`` or
            refused the event.
    """
    from prefect.client.orchestration import get_client
    from prefect.events import Event
    from prefect.settings import get_current_settings

    try:
        built = Event(event=event, resource=resource, payload=payload)
        document = [built.model_dump(mode="json")]
    except (TypeError, ValueError) as error:
        raise EventDeliveryError(f"the event cannot be serialised: {error}") from error
    if not get_current_settings().api.url:
        raise EventDeliveryError("PREFECT_API_URL is not set: point it at the Prefect server's API")
    try:
        with get_client(sync_client=True, httpx_settings={"timeout": timeout}) as client:
            client.request("POST", "/events", json=document)
    except Exception as error:  # noqa: BLE001 - httpx, HTTP status and Prefect errors alike
        raise EventDeliveryError(
            f"Prefect's API did not take the event: {type(error).__name__}: {error}"
        ) from error
    return built


# -- parsing -------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (Prefect could not store the event)")


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; raise :class:`RequestRejectedError` (400) for anything else."""
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestRejectedError(400, f"body is not valid JSON: {error}") from error
    except RecursionError:
        raise RequestRejectedError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise RequestRejectedError(400, f"body must be a JSON object, not {type(document).__name__}")
    return document


def lakefs_merge_event(hook: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``emit_event`` arguments for a lakeFS webhook body, or None when its event type is not
    relayed; raise :class:`RequestRejectedError` (400) when the body lacks what a merge event needs."""
    event_type = hook.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise RequestRejectedError(400, "lakeFS webhook body needs a string 'event_type'")
    if event_type != "post-merge":
        return None
    fields = {}
    for key in ("repository_id", "branch_id", "commit_id"):
        value = hook.get(key)
        if not isinstance(value, str) or not value:
            raise RequestRejectedError(400, f"lakeFS post-merge webhook body needs a string {key!r}")
        fields[key] = value
    repository, branch, commit = fields["repository_id"], fields["branch_id"], fields["commit_id"]
    resource = events.dataset_resource(repository, branch, commit=commit)
    if isinstance(hook.get("source_ref"), str):
        resource["lakefs.source_ref"] = hook["source_ref"]
    payload = {key: hook[key] for key in LAKEFS_FIELDS if key in hook}
    payload["source"] = "lakefs-webhook"
    return {"event": events.DATASET_MERGED, "resource": resource, "payload": payload}


def pre_merge_request(hook: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(repository, destination branch, source ref)`` of a lakeFS pre-merge webhook body; raise
    :class:`RequestRejectedError` (400) when one is missing."""
    fields = []
    for key in ("repository_id", "branch_id", "source_ref"):
        value = hook.get(key)
        if not isinstance(value, str) or not value:
            raise RequestRejectedError(400, f"lakeFS pre-merge webhook body needs a string {key!r}")
        fields.append(value)
    return fields[0], fields[1], fields[2]
