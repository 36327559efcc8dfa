"""lockgate's adversarial suite, webhook relay: hypothesis sends random paths, content types, signature
headers (absent, forged, stale, replayed, valid) and bodies (JSON of any shape, deep nesting, bytes).

The properties: never a 5xx (lakeFS and the event sink are up), and an event is emitted only for a
request whose signature (or lakeFS token) was valid and fresh, at most once per nonce. The number of
requests tried is printed (``-s``) for the issue note.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.settings import RelaySettings
from serving.webhook_relay import create_app, sign
from tests.support.asgi import RelayClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXAMPLES = 300
SECRET = secrets.token_hex(16)

names = st.sampled_from(["retrain", "audit", "Retrain", "x" * 70, "a\n", "é", "a.b-c_d"]) | st.text(
    max_size=12
)
json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
).map(lambda value: json.dumps(value).encode())
bodies = (
    json_bodies
    | st.binary(max_size=100)
    | st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"x": NaN}', b'{"event_type": "post-merge"}', b""])
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
signing = st.sampled_from(["valid", "none", "forged", "stale", "other-path", "replay", "token", "bad-token"])


class Sink:
    """Where relayed events go in this test: counted, so that each can be checked against its request."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **arguments: Any) -> Any:
        self.calls.append(arguments)
        return None


def test_the_relay_never_5xx_and_never_emits_for_an_unauthenticated_request(
    prefect_server, lakefs_client, relay_token, tmp_path, capsys
):
    sink = Sink()
    app = create_app(
        RelaySettings(
            secret=SECRET,
            lakefs_token=relay_token,
            state_dir=tmp_path / "relay",
            rate_limit_per_minute=100_000,
        ),
        emit=sink,
        lakefs_client_factory=lambda: lakefs_client,
        datasets=lambda: {},
    )
    client = RelayClient(app)
    used: list[dict[str, str]] = []
    tally = {"requests": 0, "5xx": 0, "emitted": 0}
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(name=names, body=bodies, content_type=content_types, how=signing, lakefs=st.booleans())
    def probe(name: str, body: bytes, content_type: str, how: str, lakefs: bool) -> None:
        path = "/hooks/lakefs" if lakefs else f"/hooks/events/{name}"
        sent = "/hooks/lakefs" if lakefs else f"/hooks/events/{urllib.parse.quote(name, safe='')}"
        headers = {"Content-Type": content_type}
        if how == "valid":
            headers.update(sign(SECRET, body, path=path))
        elif how == "forged":
            headers.update(sign(secrets.token_hex(16), body, path=path))
        elif how == "stale":
            headers.update(sign(SECRET, body, path=path, timestamp=int(time.time()) - 3600))
        elif how == "other-path":
            headers.update(sign(SECRET, body, path="/hooks/events/elsewhere"))
        elif how == "replay" and used:
            headers.update(used[-1])
        elif how == "token":
            headers["Authorization"] = f"Bearer {relay_token}"
        elif how == "bad-token":
            headers["Authorization"] = f"Bearer {secrets.token_urlsafe(24)}"
        before = len(sink.calls)
        try:
            response = client.post(sent, content=body, headers=headers)
        except UnicodeEncodeError:
            return  # not a request a client can send
        tally["requests"] += 1
        if response.status_code >= 500:
            tally["5xx"] += 1
            failures.append(f"{path} {how} {body[:80]!r} -> {response.status_code} {response.text[:200]}")
        emitted = len(sink.calls) - before
        tally["emitted"] += emitted
        may_emit = (how == "valid" and not lakefs) or (how == "token" and lakefs)
        if emitted and not (may_emit and response.status_code == 202):
            failures.append(f"emitted for {how} request to {path}: {response.status_code}")
        if how == "valid" and response.status_code == 202:
            used.append({key: value for key, value in headers.items() if key.startswith("X-Lockgate")})

    probe()
    with capsys.disabled():
        print(
            f"\nrelay fuzz: {tally['requests']} requests, {tally['5xx']} 5xx, "
            f"{tally['emitted']} events (each from a valid, fresh request)"
        )
    assert not failures, "\n".join(failures[:10])
