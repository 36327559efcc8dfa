"""Who may make the webhook relay act: request signatures, bearer tokens, the persisted replay window
and the rate limits, kept apart from the app (``serving.webhook_relay``) so each can be tested alone.

Signing scheme (implement it in any language)
---------------------------------------------
Every signed request carries three headers::

    X-Lockgate-Timestamp: <unix time in whole seconds, e.g. 1795762205>
    X-Lockgate-Nonce:     <16-128 characters of [A-Za-z0-9_-], unique per request, e.g. a UUID4 hex>
    X-Lockgate-Signature: sha256=<lowercase hex HMAC-SHA256>

where the HMAC key is the shared secret (UTF-8) and the message is the ASCII bytes
``f"{timestamp}.{nonce}.{METHOD}.{path}."`` followed by the exact raw request body; ``METHOD`` is
upper case and ``path`` the request path as sent (``/hooks/events/retrain``, no query). Signing the
method and path means a request signed for one event cannot be re-sent to another. In Python::

    message = f"{timestamp}.{nonce}.POST./hooks/events/retrain.".encode() + body
    signature = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

:func:`sign` builds the headers. Nonces are remembered for the replay window in SQLite under the
relay's ``state_dir``, so a captured request does not replay after a restart either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from infra.errors import RequestRejectedError

TIMESTAMP_HEADER = "X-Lockgate-Timestamp"
NONCE_HEADER = "X-Lockgate-Nonce"
SIGNATURE_HEADER = "X-Lockgate-Signature"
NONCE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
NONCE_DB = "nonces.db"


def _key(secret: str | SecretStr) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def signature(
    secret: str | SecretStr, body: bytes, *, timestamp: str, nonce: str, method: str, path: str
) -> str:
    """The ``X-Lockgate-Signature`` value of a request (see the module docstring)."""
    message = f"{timestamp}.{nonce}.{method.upper()}.{path}.".encode() + body
    return "sha256=" + hmac.new(_key(secret).encode(), message, hashlib.sha256).hexdigest()


def sign(
    secret: str | SecretStr,
    body: bytes,
    *,
    path: str,
    method: str = "POST",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign a ``method`` request to ``path`` with ``body``; ``timestamp`` defaults to
    now, ``nonce`` to a fresh random one."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(secret, body, timestamp=stamp, nonce=nonce, method=method, path=path),
    }


def authenticate(
    secret: str | SecretStr,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    window_s: float,
    now: float | None = None,
) -> str:
    """Check a request's signature headers; return its nonce (not yet remembered: see
    :class:`NonceStore`); raise :class:`RequestRejectedError` (401) when they fail."""
    stamp = headers.get(TIMESTAMP_HEADER)
    nonce = headers.get(NONCE_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not stamp or not nonce or not given:
        raise RequestRejectedError(
            401,
            f"missing signature headers: {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} needed",
        )
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise RequestRejectedError(401, f"bad {TIMESTAMP_HEADER}: unix time in whole seconds expected")
    if not 16 <= len(nonce) <= 128 or not NONCE_CHARACTERS.issuperset(nonce):
        raise RequestRejectedError(401, f"bad {NONCE_HEADER}: 16-128 characters of [A-Za-z0-9_-] expected")
    expected = signature(secret, body, timestamp=stamp, nonce=nonce, method=method, path=path)
    if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
        raise RequestRejectedError(401, "bad signature")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > window_s:
        raise RequestRejectedError(401, "expired")
    return nonce


def check_bearer(token: str | SecretStr, headers: Mapping[str, str]) -> None:
    """Require ``Authorization: Bearer <token>``; raise :class:`RequestRejectedError` (401) otherwise."""
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise RequestRejectedError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(_key(token).encode(), value.strip().encode("utf-8", "replace")):
        raise RequestRejectedError(401, "bad bearer token")


class NonceStore:
    """Nonces accepted in the last ``ttl_s`` seconds, at most ``capacity``, kept in SQLite at ``path``
    (``None``: in memory, for tests of one process) so that the replay window survives a restart.

    When the window is full, new requests are refused (429) rather than old nonces forgotten, which
    would reopen them to replay; only requests with a good signature ever take a place.
    """

    def __init__(
        self, path: Path | None, ttl_s: float, capacity: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # owner-only before SQLite opens it
        self._conn = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS nonces (scope TEXT NOT NULL, nonce TEXT NOT NULL, "
            "expiry REAL NOT NULL, PRIMARY KEY (scope, nonce)) WITHOUT ROWID"
        )

    def reserve(self, scope: str, nonce: str) -> bool:
        """Take ``nonce`` for ``scope``; False when it was taken within the window (a replay)."""
        now = self._clock()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM nonces WHERE expiry <= ?", (now,))
                (held,) = self._conn.execute("SELECT COUNT(*) FROM nonces").fetchone()
                taken = self._conn.execute(
                    "SELECT 1 FROM nonces WHERE scope = ? AND nonce = ?", (scope, nonce)
                ).fetchone()
                if taken:
                    return False
                if held >= self.capacity:
                    raise RequestRejectedError(
                        429,
                        f"replay window full ({self.capacity} requests in {self.ttl_s:g} s); retry later",
                        headers={"Retry-After": "5"},
                    )
                self._conn.execute("INSERT INTO nonces VALUES (?, ?, ?)", (scope, nonce, now + self.ttl_s))
                return True
            finally:
                self._conn.execute("COMMIT")

    def release(self, scope: str, nonce: str) -> None:
        """Give a nonce back (its request was not carried out, so the sender may send it again)."""
        with self._lock:
            self._conn.execute("DELETE FROM nonces WHERE scope = ? AND nonce = ?", (scope, nonce))

    def close(self) -> None:
        self._conn.close()


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to ``per_minute``."""

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str]) -> float:
        """Take a token for ``key``; return 0 when allowed, else the seconds until one is free."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:  # forget the least recently seen clients
                self._buckets.popitem(last=False)
            return wait


def client_address(peer: str | None, headers: Mapping[str, str], trusted_proxies: list[str]) -> str:
    """The client a request is charged to: the socket's peer, unless that peer is a trusted proxy,
    when the last address it appended to ``X-Forwarded-For`` is."""
    host = peer or "unknown"
    if host in trusted_proxies:
        forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return host
