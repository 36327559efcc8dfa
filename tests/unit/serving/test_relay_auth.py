"""The relay's authentication parts, alone: tokens, the persisted replay window, client addresses,
and the embedded lakeFS server's ``{{ ENV.NAME }}`` expansion that carries the token."""

from __future__ import annotations

import re

import pytest

from infra.errors import RequestRejectedError
from infra.lakefs_server.hooks import expand_environment
from infra.settings.relay import MIN_SECRET_LENGTH
from serving.relay_auth import NonceStore, authenticate, check_bearer, client_address, sign


def test_nonces_survive_a_restart_and_expire_with_the_window(tmp_path):
    now = [1000.0]
    store = NonceStore(tmp_path / "n.db", 300, 10, clock=lambda: now[0])
    assert store.reserve("events", "a" * 16)
    store.close()
    again = NonceStore(tmp_path / "n.db", 300, 10, clock=lambda: now[0])
    assert not again.reserve("events", "a" * 16)  # remembered across the restart
    assert again.reserve("lakefs", "a" * 16)  # scopes are separate
    now[0] += 301
    assert again.reserve("events", "a" * 16)  # the window passed


def test_a_full_window_refuses_rather_than_forgets(tmp_path):
    store = NonceStore(None, 300, 2)
    assert store.reserve("e", "n" * 16) and store.reserve("e", "m" * 16)
    with pytest.raises(RequestRejectedError) as raised:
        store.reserve("e", "o" * 16)
    assert raised.value.status == 429
    assert not store.reserve("e", "n" * 16)  # the oldest is still remembered: no replay
    store.release("e", "m" * 16)
    assert store.reserve("e", "o" * 16)


def test_the_signature_covers_method_and_path():
    body = b"{}"
    headers = sign("s" * 16, body, path="/hooks/events/a")
    assert authenticate("s" * 16, headers, body, method="POST", path="/hooks/events/a", window_s=300)
    for method, path in (("POST", "/hooks/events/b"), ("PUT", "/hooks/events/a")):
        with pytest.raises(RequestRejectedError, match="bad signature"):
            authenticate("s" * 16, headers, body, method=method, path=path, window_s=300)


@pytest.mark.parametrize("nonce", ["a" * 16 + "\n", "é" * 16, "a" * 15, "a" * 129])
def test_nonces_are_exactly_16_to_128_ascii_characters(nonce):
    headers = sign("s" * 16, b"{}", path="/p", nonce=nonce)
    with pytest.raises(RequestRejectedError, match="Nonce"):
        authenticate("s" * 16, headers, b"{}", method="POST", path="/p", window_s=300)


def test_bearer_tokens():
    check_bearer("t" * 20, {"authorization": "Bearer " + "t" * 20})
    for header in ("", "Basic " + "t" * 20, "Bearer ", "Bearer " + "u" * 20):
        with pytest.raises(RequestRejectedError):
            check_bearer("t" * 20, {"authorization": header})


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    headers = {"x-forwarded-for": "203.0.113.5, 198.51.100.7"}
    assert client_address("127.0.0.1", headers, []) == "127.0.0.1"
    assert client_address("10.0.0.2", headers, ["10.0.0.2"]) == "198.51.100.7"
    assert client_address(None, {}, []) == "unknown"


def test_actions_read_only_the_environment_they_are_given():
    environment = {"LAKEFSACTION_TOKEN": "xyz"}
    assert expand_environment("Bearer {{ ENV.LAKEFSACTION_TOKEN }}", environment) == "Bearer xyz"
    assert expand_environment("no reference", environment) == "no reference"
    with pytest.raises(RuntimeError, match="HOME is not available"):
        expand_environment("{{ ENV.HOME }}", environment)


def test_relay_help_states_the_secret_length_the_settings_enforce():
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["relay", "--help"], terminal_width=200)
    assert result.exit_code == 0
    lengths = {int(n) for n in re.findall(r"at\s+least\s+(\d+)\s+characters", result.output)}
    assert lengths == {MIN_SECRET_LENGTH}, result.output
