"""The signed webhook relay: signed requests become Prefect events on the real test server; every
refused request (401/400/413/415/422/429/503) emits nothing; lakeFS post-merge webhooks, authenticated
and checked against the embedded lakeFS server, become ``lockgate.dataset.merged``."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.settings import RelaySettings
from serving.webhook_relay import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    create_app,
    deliver_event,
    sign,
)
from tasks.events import DATASET_MERGED as MERGED_EVENT
from tests.support.asgi import RelayClient, serve_on_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EVENT_TIMEOUT_S = 20.0


class RecordingEmit:
    """The relay's own delivery to Prefect's API, recording every call it relays."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> Any:
        self.calls.append(arguments)
        return deliver_event(**arguments)


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
def settings(secret: str, relay_token: str, tmp_path) -> Callable[..., RelaySettings]:
    """Relay settings with the session's lakeFS token and a private replay window."""

    def make(**overrides: Any) -> RelaySettings:
        values = {"secret": secret, "lakefs_token": relay_token, "state_dir": tmp_path / "relay", **overrides}
        return RelaySettings(**values)

    return make


@pytest.fixture
def make_relay(prefect_server, settings, recorder, lakefs_client) -> Callable[..., RelayClient]:
    def make(**overrides: Any) -> RelayClient:
        return RelayClient(
            create_app(settings(**overrides), emit=recorder, lakefs_client_factory=lambda: lakefs_client)
        )

    return make


@pytest.fixture
def relay(make_relay) -> RelayClient:
    return make_relay()


def post_signed(client: RelayClient, path: str, body: bytes, secret: str, **sign_kwargs: Any) -> Any:
    headers = {"Content-Type": "application/json", **sign(secret, body, path=path, **sign_kwargs)}
    return client.post(path, content=body, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


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
    path = f"/hooks/events/{unique_event_name()}"
    headers = {"Content-Type": "application/json", **sign(secret, body, path=path)}
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "bad signature":
        headers[SIGNATURE_HEADER] = "sha256=" + "0" * 64
    elif case == "wrong secret":
        headers = {"Content-Type": "application/json", **sign(secrets.token_hex(16), body, path=path)}
    elif case == "tampered body":
        body = b'{"ok": false}'
    elif case == "bad nonce":
        headers = {**headers, **sign(secret, body, path=path, nonce="short")}
    elif case == "bad timestamp":
        headers[TIMESTAMP_HEADER] = "yesterday"
    elif case == "expired":
        headers = {**headers, **sign(secret, body, path=path, timestamp=int(time.time()) - 301)}
    elif case == "future":
        headers = {**headers, **sign(secret, body, path=path, timestamp=int(time.time()) + 301)}

    response = relay.post(path, content=body, headers=headers)

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
    headers = {"Content-Type": "application/json", **sign(secret, body, path=f"/hooks/events/{name}")}

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
    path = f"/hooks/events/{unique_event_name()}"
    forged = {"Content-Type": "application/json", **sign(secrets.token_hex(16), body, path=path, nonce=nonce)}
    assert relay.post(path, content=body, headers=forged).status_code == 401
    response = post_signed(relay, path, body, secret, nonce=nonce)
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


def test_oversized_bodies_get_413(make_relay, secret, recorder):
    client = make_relay(max_body_bytes=1024)
    name = unique_event_name()
    at_limit = json.dumps({"pad": "x" * (1024 - 11)}).encode()
    assert len(at_limit) == 1024
    too_big = json.dumps({"pad": "x" * 1024}).encode()

    big = post_signed(client, f"/hooks/events/{name}", too_big, secret)
    ok = post_signed(client, f"/hooks/events/{name}", at_limit, secret)

    assert big.status_code == 413, big.text
    assert ok.status_code == 202, ok.text
    assert len(recorder.calls) == 1


def test_rate_limit_gives_429_with_retry_after_per_event_name(make_relay, secret, recorder):
    client = make_relay(rate_limit_per_minute=3)
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


def merged(repo) -> tuple[str, str, str]:
    """A real merge into main of ``repo``: (merge commit, source commit, a commit only on the source)."""
    main = repo.branch("main")
    feature = repo.branch(f"ingest-{uuid.uuid4().hex[:6]}").create(main)
    feature.object("data/part-0.csv").upload("a,b\n1,2\n", pre_sign=False)
    source = feature.commit(message="ingest").get_commit().id
    merge = feature.merge_into(main)
    feature.object("data/part-1.csv").upload("a,b\n3,4\n", pre_sign=False)
    unmerged = feature.commit(message="not merged").get_commit().id
    return merge, source, unmerged


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


def test_lakefs_post_merge_becomes_a_dataset_merged_event(relay, recorder, repo, relay_token):
    merge, source, _ = merged(repo)
    body = lakefs_body("post-merge", repo.id, commit_id=merge, source_ref=source)

    response = relay.post("/hooks/lakefs", json=body, headers=bearer(relay_token))

    assert response.status_code == 202, response.text
    events = read_events(MERGED_EVENT, f"lakefs.{repo.id}.main")
    assert len(events) == 1
    resource = dict(events[0].resource)
    assert resource["lakefs.repository"] == repo.id
    assert resource["lakefs.branch"] == "main"
    assert resource["lakefs.commit"] == merge
    assert resource["lakefs.source_ref"] == source
    assert events[0].payload["commit_message"] == body["commit_message"]
    assert events[0].payload["commit_metadata"] == {"lockgate.run_id": "run-1"}


@pytest.mark.parametrize("event_type", ["post-commit", "pre-commit", "post-create-branch"])
def test_other_lakefs_events_are_ignored(relay, recorder, event_type, relay_token):
    response = relay.post("/hooks/lakefs", json=lakefs_body(event_type, "loans"), headers=bearer(relay_token))
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
        (b'{"event_type": "post-merge", "x": NaN}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_lakefs_webhooks_get_400(make_relay, recorder, body, detail, relay_token):
    relay = make_relay(max_body_bytes=1_000_000)
    response = relay.post("/hooks/lakefs", content=body, headers=bearer(relay_token))
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert recorder.calls == []


def test_lakefs_webhooks_can_be_signed_instead(make_relay, secret, recorder, repo):
    lakefs_secret = secrets.token_hex(16)
    client = make_relay(lakefs_token=None, lakefs_secret=lakefs_secret)
    merge, source, _ = merged(repo)
    body = json.dumps(lakefs_body("post-merge", repo.id, commit_id=merge)).encode()

    unsigned = client.post("/hooks/lakefs", content=body, headers={"Content-Type": "application/json"})
    other_secret = post_signed(client, "/hooks/lakefs", body, secret)  # the events secret is not it
    signed = post_signed(client, "/hooks/lakefs", body, lakefs_secret)

    assert unsigned.status_code == 401 and other_secret.status_code == 401
    assert signed.status_code == 202, signed.text
    assert len(recorder.calls) == 1


# -- issue 14: nothing unauthenticated acts; nothing accepted is lost ----------------------------


def test_unauthenticated_lakefs_webhooks_are_refused_by_default(make_relay, recorder, repo, relay_token):
    merge, _, _ = merged(repo)
    body = lakefs_body("post-merge", repo.id, commit_id=merge)
    no_token = make_relay(lakefs_token=None)  # nothing configured: refused, and the answer says what to set

    refused = no_token.post("/hooks/lakefs", json=body)
    assert refused.status_code == 401 and "LOCKGATE_WEBHOOK_LAKEFS_TOKEN" in refused.json()["detail"]
    relay = make_relay()
    assert relay.post("/hooks/lakefs", json=body).status_code == 401
    wrong = relay.post("/hooks/lakefs", json=body, headers=bearer(secrets.token_urlsafe(24)))
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "bad bearer token")
    assert recorder.calls == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_non_json_content_types_are_refused(relay, recorder, repo, relay_token, secret, content_type):
    """What a web page can send without a CORS preflight cannot act, even with valid credentials."""
    merge, _, _ = merged(repo) if content_type == "text/plain" else ("0" * 64, None, None)
    body = json.dumps(lakefs_body("post-merge", repo.id, commit_id=merge)).encode()
    headers = {**bearer(relay_token), "Content-Type": content_type}
    assert relay.post("/hooks/lakefs", content=body, headers=headers).status_code == 415
    path = f"/hooks/events/{unique_event_name()}"
    signed = {**sign(secret, body, path=path), "Content-Type": content_type}
    assert relay.post(path, content=body, headers=signed).status_code == 415
    assert recorder.calls == []


def test_post_merge_events_are_checked_against_lakefs(relay, recorder, repo, relay_token):
    merge, _, unmerged = merged(repo)
    cases = {
        "a commit only on another branch": lakefs_body("post-merge", repo.id, commit_id=unmerged),
        "an unknown commit": lakefs_body("post-merge", repo.id, commit_id="f" * 64),
        "an unknown branch": lakefs_body("post-merge", repo.id, branch="nope", commit_id=merge),
        "an unknown repository": lakefs_body("post-merge", "no-such-repo", commit_id=merge),
    }
    for case, body in cases.items():
        response = relay.post("/hooks/lakefs", json=body, headers=bearer(relay_token))
        assert response.status_code == 422, (case, response.text)
    assert recorder.calls == []


def test_insecure_lakefs_is_explicit_and_warned(make_relay, recorder, repo, caplog):
    merge, _, _ = merged(repo)
    with caplog.at_level("WARNING", logger="lockgate.relay"):
        relay = make_relay(lakefs_token=None, insecure_lakefs=True)
    assert "insecure_lakefs" in caplog.text
    response = relay.post("/hooks/lakefs", json=lakefs_body("post-merge", repo.id, commit_id=merge))
    assert response.status_code == 202, response.text
    with pytest.raises(ValueError, match="insecure_lakefs"):
        RelaySettings(secret=secrets.token_hex(16), lakefs_token=secrets.token_hex(16), insecure_lakefs=True)


def test_junk_cannot_starve_signed_callers(make_relay, secret, recorder, relay_token):
    relay = make_relay(rate_limit_per_minute=5)
    name = unique_event_name()
    junk = [
        relay.post(f"/hooks/events/{name}", content=b"{}", headers={"Content-Type": "application/json"})
        for _ in range(60)
    ]
    assert {r.status_code for r in junk[:5]} == {401} and {r.status_code for r in junk[5:]} == {429}
    # Spoofed X-Forwarded-For from a client that is no trusted proxy changes nothing.
    spoofed = relay.post(
        f"/hooks/events/{name}",
        content=b"{}",
        headers={"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"},
    )
    assert spoofed.status_code == 429
    assert post_signed(relay, f"/hooks/events/{name}", b"{}", secret).status_code == 202
    assert (
        relay.post(
            "/hooks/lakefs", json=lakefs_body("post-commit", "r"), headers=bearer(relay_token)
        ).status_code
        == 200
    )


def test_forwarded_for_counts_only_from_trusted_proxies(make_relay):
    relay = make_relay(rate_limit_per_minute=2, trusted_proxies=["127.0.0.1"])
    statuses = [
        relay.post(
            "/hooks/events/x",
            content=b"{}",
            headers={"Content-Type": "application/json", "X-Forwarded-For": ip},
        ).status_code
        for ip in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2")
    ]
    assert statuses == [401, 401, 429, 401]  # each forwarded client has its own budget


def test_a_request_signed_for_one_event_cannot_be_sent_to_another(relay, secret, recorder):
    body = b'{"reason": "audit"}'
    headers = {"Content-Type": "application/json", **sign(secret, body, path="/hooks/events/audit")}
    redirected = relay.post("/hooks/events/retrain", content=body, headers=headers)
    assert (redirected.status_code, redirected.json()["detail"]) == (401, "bad signature")
    assert relay.post("/hooks/events/audit", content=body, headers=headers).status_code == 202
    assert [call["event"] for call in recorder.calls] == ["lockgate.external.audit"]


def test_a_captured_request_does_not_replay_after_a_restart(make_relay, secret, recorder):
    path = f"/hooks/events/{unique_event_name()}"
    body = b'{"n": 1}'
    headers = {"Content-Type": "application/json", **sign(secret, body, path=path)}
    assert make_relay().post(path, content=body, headers=headers).status_code == 202
    restarted = make_relay()  # a new app on the same state_dir: the relay process restarted
    again = restarted.post(path, content=body, headers=headers)
    assert (again.status_code, again.json()["detail"]) == (401, "replayed")
    assert len(recorder.calls) == 1


def test_nonce_store_is_owner_only(settings, make_relay):
    make_relay()
    path = settings().state_dir
    assert path.stat().st_mode & 0o777 == 0o700
    assert (path / "nonces.db").stat().st_mode & 0o777 == 0o600


def test_unreachable_prefect_is_503_and_the_sender_may_retry(prefect_server, settings, lakefs_client):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infra.processes import free_port

    app = create_app(settings(event_timeout_s=2), lakefs_client_factory=lambda: lakefs_client)
    client = RelayClient(app)
    secret = settings().secret.get_secret_value()
    name = unique_event_name()
    path = f"/hooks/events/{name}"
    body = b'{"k": 1}'
    headers = {"Content-Type": "application/json", **sign(secret, body, path=path)}
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        down = client.post(path, content=body, headers=headers)
    assert down.status_code == 503, down.text
    assert "not delivered" in down.json()["detail"]

    retried = client.post(path, content=body, headers=headers)  # the same request, once Prefect is back
    assert retried.status_code == 202, retried.text
    assert len(read_events(f"lockgate.external.{name}", f"lockgate.webhook.{name}")) == 1


def test_an_accepted_event_survives_the_relay_being_killed_right_after(prefect_server, tmp_path, secret):
    """202 means Prefect's API has the event: a relay process killed the moment it answered (no
    background sender left to flush) loses nothing."""
    import os
    import signal
    import subprocess
    import sys

    import httpx
    from prefect.settings import get_current_settings

    from infra.processes import free_port

    port = free_port()
    env = {
        **os.environ,
        "PREFECT_API_URL": get_current_settings().api.url,
        "LOCKGATE_WEBHOOK_SECRET": secret,
        "LOCKGATE_WEBHOOK_STATE_DIR": str(tmp_path / "relay"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "relay", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "relay did not start"
                time.sleep(0.2)
        name = unique_event_name()
        path = f"/hooks/events/{name}"
        body = b'{"k": "kept"}'
        headers = {"Content-Type": "application/json", **sign(secret, body, path=path)}
        response = httpx.post(f"http://127.0.0.1:{port}{path}", content=body, headers=headers, timeout=30)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert response.status_code == 202, response.text
    (event,) = read_events(f"lockgate.external.{name}", f"lockgate.webhook.{name}")
    assert event.payload == {"k": "kept"}


# -- end to end: a real merge on the embedded lakeFS server --------------------------------------


@pytest.fixture
def serve_relay(
    prefect_server, recorder: RecordingEmit, lakefs_client
) -> Iterator[Callable[[RelaySettings], str]]:
    """Start the relay with uvicorn on a real local port, in a background thread; returns its URL."""
    with contextlib.ExitStack() as stack:
        yield lambda settings: stack.enter_context(
            serve_on_port(
                create_app(settings, emit=recorder, lakefs_client_factory=lambda: lakefs_client),
                name="webhook-relay",
            )
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
            "      headers:",
            '        Authorization: "Bearer {{ ENV.LAKEFSACTION_LOCKGATE_TOKEN }}"',
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


def test_a_real_lakefs_merge_emits_dataset_merged(repo, serve_relay, settings, recorder):
    # lakeFS sends the token from its environment through the action's headers.
    url = serve_relay(settings())
    main, feature = feature_branch(repo, relay_action(url, "post-merge"))

    merge_id = feature.merge_into(main)

    events = read_events(MERGED_EVENT, f"lakefs.{repo.id}.main")
    assert len(events) == 1, recorder.calls
    resource = dict(events[0].resource)
    assert resource["lakefs.repository"] == repo.id
    assert resource["lakefs.branch"] == "main"
    assert resource["lakefs.commit"] == merge_id
    assert resource["lakefs.source_ref"] == feature.get_commit().id  # lakeFS sends the commit
    assert events[0].payload["event_type"] == "post-merge"
    assert events[0].payload["action_name"] == "relay post-merge to prefect"
    assert [call["event"] for call in recorder.calls] == [MERGED_EVENT]


def test_a_real_lakefs_pre_merge_outside_any_dataset_is_allowed(repo, serve_relay, settings, recorder):
    # A pre-merge hook blocks the merge unless the relay answers 2xx: the merge going through proves the
    # relay let the real, authenticated lakeFS request pass unchecked, as ``repo`` holds no declared
    # dataset (the contract gate itself is tested in test_merge_gate.py).
    url = serve_relay(settings())
    main, feature = feature_branch(repo, relay_action(url, "pre-merge"))

    merge_id = feature.merge_into(main)

    assert main.get_commit().id == merge_id
    assert recorder.calls == []


def test_real_lakefs_hooks_with_the_wrong_token_are_refused(repo, serve_relay, settings, recorder):
    from lakefs.exceptions import ServerException

    url = serve_relay(settings(lakefs_token=secrets.token_urlsafe(24)))
    main, feature = feature_branch(repo, relay_action(url, "pre-merge"))
    head = main.get_commit().id

    with pytest.raises(ServerException) as raised:
        feature.merge_into(main)

    assert raised.value.status_code == 412  # the relay answered 401, so lakeFS aborted the merge
    assert "HTTP 401" in str(raised.value)
    assert main.get_commit().id == head
    assert recorder.calls == []
