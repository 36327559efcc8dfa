"""The signed webhook relay: signed requests become Prefect events on the real test server; every
refused request (401/400/413/429) emits nothing; lakeFS post-merge webhooks, from a crafted body and
from a real merge on the embedded lakeFS server, become ``lockgate.dataset.merged``."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.events import emit_event

from infra.settings import RelaySettings
from serving.webhook_relay import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, create_app, sign
from tasks.events import DATASET_MERGED as MERGED_EVENT
from tests.support.asgi import RelayClient, serve_on_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EVENT_TIMEOUT_S = 20.0


class RecordingEmit:
    """The real ``prefect.events.emit_event``, recording every call it relays."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> Any:
        self.calls.append(arguments)
        return emit_event(**arguments)


def read_events(name: str, resource_id: str, *, timeout: float = EVENT_TIMEOUT_S) -> list[Any]:
    """Events called ``name`` about ``resource_id``, read back from the Prefect server.

    Events reach the server asynchronously, so poll; the filter is rebuilt on every poll because its
    default ``occurred.until`` is "now" when it is built, and a lakeFS post-hook fires after the
    merge call returns, so its event can occur after the first poll.
    """
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            event_filter = EventFilter(
                event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id])
            )
            page = client.read_events(filter=event_filter, limit=50)
            if page.events or time.monotonic() > deadline:
                return list(page.events)
            time.sleep(0.25)


def unique_event_name() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def recorder() -> RecordingEmit:
    return RecordingEmit()


@pytest.fixture
def relay(prefect_server, secret: str, recorder: RecordingEmit) -> RelayClient:
    return RelayClient(create_app(RelaySettings(secret=secret), emit=recorder))


def post_signed(client: RelayClient, path: str, body: bytes, secret: str, **sign_kwargs: Any) -> Any:
    headers = {"Content-Type": "application/json", **sign(secret, body, **sign_kwargs)}
    return client.post(path, content=body, headers=headers)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["changeme-changeme-1234", "short-secret", "<your-webhook-secret>"])
def test_settings_refuse_placeholder_and_short_secrets(weak: str):
    with pytest.raises(ValueError, match="placeholder or is shorter") as raised:
        RelaySettings(secret=weak)
    assert weak not in str(raised.value)  # the secret is not echoed
    with pytest.raises(ValueError, match="LOCKGATE_WEBHOOK_LAKEFS_SECRET"):
        RelaySettings(secret=secrets.token_hex(16), lakefs_secret=weak)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, secret: str):
    monkeypatch.setenv("LOCKGATE_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("LOCKGATE_WEBHOOK_RATE_LIMIT_PER_MINUTE", "7")
    settings = RelaySettings()
    assert settings.secret.get_secret_value() == secret and settings.rate_limit_per_minute == 7
    assert settings.lakefs_secret is None and settings.replay_window_s == 300


# -- /hooks/events -------------------------------------------------------------------------------


def test_health(relay: RelayClient):
    assert relay.get("/health").json() == {"status": "ok"}


def test_signed_event_lands_in_prefect_with_its_payload(relay, secret, recorder):
    name = unique_event_name()
    payload = {"model": "loans-mlp", "reason": "drift", "score": 0.42, "tags": ["a", "b"]}

    response = post_signed(relay, f"/hooks/events/{name}", json.dumps(payload).encode(), secret)

    assert response.status_code == 202, response.text
    assert response.json()["event"] == f"lockgate.external.{name}"
    assert len(recorder.calls) == 1
    events = read_events(f"lockgate.external.{name}", f"lockgate.webhook.{name}")
    assert len(events) == 1
    assert events[0].payload == payload
    assert str(events[0].id) == response.json()["id"]


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("unsigned", "missing signature headers"),
        ("bad signature", "bad signature"),
        ("wrong secret", "bad signature"),
        ("tampered body", "bad signature"),
        ("bad nonce", "X-Lockgate-Nonce"),
        ("bad timestamp", "X-Lockgate-Timestamp"),
        ("expired", "expired"),
        ("future", "expired"),
    ],
)
def test_unauthenticated_requests_get_401_and_emit_nothing(relay, secret, recorder, case, detail):
    body = b'{"ok": true}'
    headers = {"Content-Type": "application/json", **sign(secret, body)}
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "bad signature":
        headers[SIGNATURE_HEADER] = "sha256=" + "0" * 64
    elif case == "wrong secret":
        headers = {"Content-Type": "application/json", **sign(secrets.token_hex(16), body)}
    elif case == "tampered body":
        body = b'{"ok": false}'
    elif case == "bad nonce":
        headers = {**headers, **sign(secret, body, nonce="short")}
    elif case == "bad timestamp":
        headers[TIMESTAMP_HEADER] = "yesterday"
    elif case == "expired":
        headers = {**headers, **sign(secret, body, timestamp=int(time.time()) - 301)}
    elif case == "future":
        headers = {**headers, **sign(secret, body, timestamp=int(time.time()) + 301)}

    response = relay.post(f"/hooks/events/{unique_event_name()}", content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert detail in response.json()["detail"]
    assert recorder.calls == []


def test_timestamps_inside_the_window_are_accepted(relay, secret, recorder):
    name = unique_event_name()
    for offset in (-290, 290):
        response = post_signed(
            relay, f"/hooks/events/{name}", b"{}", secret, timestamp=int(time.time()) + offset
        )
        assert response.status_code == 202, response.text
    assert len(recorder.calls) == 2


def test_a_replayed_nonce_gets_401_and_emits_once(relay, secret, recorder):
    name = unique_event_name()
    body = b'{"n": 1}'
    headers = {"Content-Type": "application/json", **sign(secret, body)}

    first = relay.post(f"/hooks/events/{name}", content=body, headers=headers)
    again = relay.post(f"/hooks/events/{name}", content=body, headers=headers)
    # The same nonce, freshly signed with a new timestamp, is still a replay.
    resigned = post_signed(relay, f"/hooks/events/{name}", body, secret, nonce=headers[NONCE_HEADER])

    assert first.status_code == 202
    assert (again.status_code, again.json()["detail"]) == (401, "replayed")
    assert (resigned.status_code, resigned.json()["detail"]) == (401, "replayed")
    assert len(recorder.calls) == 1


def test_a_badly_signed_request_does_not_burn_its_nonce(relay, secret, recorder):
    body = b"{}"
    nonce = uuid.uuid4().hex
    forged = {**sign(secrets.token_hex(16), body, nonce=nonce)}
    assert relay.post(f"/hooks/events/{unique_event_name()}", content=body, headers=forged).status_code == 401
    response = post_signed(relay, f"/hooks/events/{unique_event_name()}", body, secret, nonce=nonce)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object, not list"),
        (b'"text"', "must be a JSON object, not str"),
        (b"null", "must be a JSON object, not NoneType"),
    ],
)
def test_signed_bodies_that_are_not_json_objects_get_400(relay, secret, recorder, body, detail):
    response = post_signed(relay, f"/hooks/events/{unique_event_name()}", body, secret)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert recorder.calls == []


@pytest.mark.parametrize("name", ["Upper", "9lives", "has space", "x" * 65, "-lead", "semi;colon"])
def test_bad_event_names_get_400(relay, secret, recorder, name):
    response = post_signed(relay, f"/hooks/events/{name}", b"{}", secret)
    assert response.status_code == 400, response.text
    assert "bad event name" in response.json()["detail"]
    assert recorder.calls == []


def test_a_name_with_a_slash_matches_no_route(relay, secret, recorder):
    response = post_signed(relay, "/hooks/events/a/b", b"{}", secret)
    assert response.status_code == 404
    assert recorder.calls == []


def test_oversized_bodies_get_413(prefect_server, secret, recorder):
    client = RelayClient(create_app(RelaySettings(secret=secret, max_body_bytes=1024), emit=recorder))
    name = unique_event_name()
    at_limit = json.dumps({"pad": "x" * (1024 - 11)}).encode()
    assert len(at_limit) == 1024
    too_big = json.dumps({"pad": "x" * 1024}).encode()

    big = post_signed(client, f"/hooks/events/{name}", too_big, secret)
    ok = post_signed(client, f"/hooks/events/{name}", at_limit, secret)

    assert big.status_code == 413, big.text
    assert ok.status_code == 202, ok.text
    assert len(recorder.calls) == 1


def test_rate_limit_gives_429_with_retry_after_per_event_name(prefect_server, secret, recorder):
    client = RelayClient(create_app(RelaySettings(secret=secret, rate_limit_per_minute=3), emit=recorder))
    name, other = unique_event_name(), unique_event_name()

    statuses = [post_signed(client, f"/hooks/events/{name}", b"{}", secret).status_code for _ in range(3)]
    limited = post_signed(client, f"/hooks/events/{name}", b"{}", secret)
    elsewhere = post_signed(client, f"/hooks/events/{other}", b"{}", secret)

    assert statuses == [202, 202, 202]
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 20  # one token refills in 60/3 s
    assert elsewhere.status_code == 202  # the bucket is per client and event name
    assert len(recorder.calls) == 4


# -- /hooks/lakefs -------------------------------------------------------------------------------


def lakefs_body(event_type: str, repository: str, branch: str = "main", **extra: Any) -> dict[str, Any]:
    """A webhook body as lakeFS (and infra/lakefs_server/hooks.py) sends it."""
    return {
        "event_type": event_type,
        "event_time": "2026-11-27T06:00:00Z",
        "action_name": "relay merges",
        "hook_id": "to-prefect",
        "repository_id": repository,
        "branch_id": branch,
        "source_ref": "ingest/run-1",
        "commit_id": uuid.uuid4().hex * 2,
        "commit_message": "Merge 'ingest/run-1' into 'main'",
        "committer": "admin",
        "commit_metadata": {"lockgate.run_id": "run-1"},
        **extra,
    }


def test_lakefs_post_merge_becomes_a_dataset_merged_event(relay, recorder):
    repository = f"loans-{uuid.uuid4().hex[:8]}"
    body = lakefs_body("post-merge", repository)

    response = relay.post("/hooks/lakefs", json=body)

    assert response.status_code == 202, response.text
    events = read_events(MERGED_EVENT, f"lakefs.{repository}.main")
    assert len(events) == 1
    resource = dict(events[0].resource)
    assert resource["lakefs.repository"] == repository
    assert resource["lakefs.branch"] == "main"
    assert resource["lakefs.commit"] == body["commit_id"]
    assert resource["lakefs.source_ref"] == "ingest/run-1"
    assert events[0].payload["commit_message"] == body["commit_message"]
    assert events[0].payload["commit_metadata"] == {"lockgate.run_id": "run-1"}


@pytest.mark.parametrize("event_type", ["post-commit", "pre-commit", "post-create-branch"])
def test_other_lakefs_events_are_ignored(relay, recorder, event_type):
    response = relay.post("/hooks/lakefs", json=lakefs_body(event_type, "loans"))
    assert response.status_code == 200, response.text
    assert response.json() == {"ignored": event_type}
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{broken", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"repository_id": "loans"}', "'event_type'"),
        (
            json.dumps({"event_type": "post-merge", "branch_id": "main", "commit_id": "c1"}).encode(),
            "repository_id",
        ),
        (
            json.dumps({"event_type": "post-merge", "repository_id": "r", "commit_id": "c1"}).encode(),
            "branch_id",
        ),
        (
            json.dumps({"event_type": "post-merge", "repository_id": "r", "branch_id": "main"}).encode(),
            "commit_id",
        ),
    ],
)
def test_malformed_lakefs_webhooks_get_400(relay, recorder, body, detail):
    response = relay.post("/hooks/lakefs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert recorder.calls == []


def test_lakefs_webhooks_must_be_signed_when_lakefs_secret_is_set(prefect_server, secret, recorder):
    lakefs_secret = secrets.token_hex(16)
    client = RelayClient(create_app(RelaySettings(secret=secret, lakefs_secret=lakefs_secret), emit=recorder))
    repository = f"loans-{uuid.uuid4().hex[:8]}"
    body = json.dumps(lakefs_body("post-merge", repository)).encode()

    unsigned = client.post("/hooks/lakefs", content=body, headers={"Content-Type": "application/json"})
    other_secret = post_signed(client, "/hooks/lakefs", body, secret)  # the events secret is not it
    signed = post_signed(client, "/hooks/lakefs", body, lakefs_secret)

    assert unsigned.status_code == 401 and other_secret.status_code == 401
    assert signed.status_code == 202, signed.text
    assert len(recorder.calls) == 1
    assert len(read_events(MERGED_EVENT, f"lakefs.{repository}.main")) == 1


# -- end to end: a real merge on the embedded lakeFS server --------------------------------------


@pytest.fixture
def serve_relay(prefect_server, recorder: RecordingEmit) -> Iterator[Callable[[RelaySettings], str]]:
    """Start the relay with uvicorn on a real local port, in a background thread; returns its URL."""
    with contextlib.ExitStack() as stack:
        yield lambda settings: stack.enter_context(
            serve_on_port(create_app(settings, emit=recorder), name="webhook-relay")
        )


def relay_action(url: str, event: str) -> str:
    """An actions file calling the relay's lakeFS endpoint on ``event`` into main."""
    return "\n".join(
        [
            f"name: relay {event} to prefect",
            "on:",
            f"  {event}:",
            "    branches: [main]",
            "hooks:",
            "  - id: to-prefect",
            "    type: webhook",
            "    properties:",
            f"      url: {url}/hooks/lakefs",
            "      timeout: 10s",
            "",
        ]
    )


def feature_branch(repo, action: str):
    """Commit ``action`` on main, then a branch off it with one new data commit."""
    main = repo.branch("main")
    main.object("_lakefs_actions/relay.yaml").upload(action, pre_sign=False)
    main.commit(message="install the relay action")
    feature = repo.branch("ingest-run-1").create(main)
    feature.object("data/part-0.csv").upload("a,b\n1,2\n", pre_sign=False)
    feature.commit(message="ingest run 1")
    return main, feature


def test_a_real_lakefs_merge_emits_dataset_merged(repo, serve_relay, secret, recorder):
    # No lakefs_secret: lakeFS webhooks carry no signature headers, so the endpoint takes them unsigned.
    url = serve_relay(RelaySettings(secret=secret))
    main, feature = feature_branch(repo, relay_action(url, "post-merge"))

    merge_id = feature.merge_into(main)

    events = read_events(MERGED_EVENT, f"lakefs.{repo.id}.main")
    assert len(events) == 1, recorder.calls
    resource = dict(events[0].resource)
    assert resource["lakefs.repository"] == repo.id
    assert resource["lakefs.branch"] == "main"
    assert resource["lakefs.commit"] == merge_id
    assert resource["lakefs.source_ref"] == "ingest-run-1"
    assert events[0].payload["event_type"] == "post-merge"
    assert events[0].payload["action_name"] == "relay post-merge to prefect"
    assert [call["event"] for call in recorder.calls] == [MERGED_EVENT]


def test_a_real_lakefs_pre_merge_outside_any_dataset_is_allowed(repo, serve_relay, secret, recorder):
    # A pre-merge hook blocks the merge unless the relay answers 2xx: the merge going through proves the
    # relay let the real, unsigned lakeFS request pass unchecked, as ``repo`` holds no declared dataset
    # (the contract gate itself is tested in test_merge_gate.py).
    url = serve_relay(RelaySettings(secret=secret))
    main, feature = feature_branch(repo, relay_action(url, "pre-merge"))

    merge_id = feature.merge_into(main)

    assert main.get_commit().id == merge_id
    assert recorder.calls == []


def test_with_lakefs_secret_set_real_unsigned_lakefs_hooks_are_refused(repo, serve_relay, secret, recorder):
    from lakefs.exceptions import ServerException

    url = serve_relay(RelaySettings(secret=secret, lakefs_secret=secrets.token_hex(16)))
    main, feature = feature_branch(repo, relay_action(url, "pre-merge"))
    head = main.get_commit().id

    with pytest.raises(ServerException) as raised:
        feature.merge_into(main)

    assert raised.value.status_code == 412  # the relay answered 401, so lakeFS aborted the merge
    assert "HTTP 401" in str(raised.value)
    assert main.get_commit().id == head
    assert recorder.calls == []
