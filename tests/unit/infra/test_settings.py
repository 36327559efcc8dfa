"""LakeFSSettings: defaults select the embedded server; a real lakeFS needs real credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.clients import lakefs_api_url, make_lakefs_client
from infra.errors import ConfigurationError
from infra.settings import LakeFSSettings, is_placeholder

REAL_KEY = "AKIAJLG7Q2ZP4XKW3NDA"
REAL_SECRET = "s3cr3t-K9vTq2mZ8wXr4LpB"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read LOCKGATE_LAKEFS_*; a developer's shell must not leak into these tests."""
    for name in ("ENDPOINT", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "EMBEDDED_DATA_DIR", "VERIFY_SSL"):
        monkeypatch.delenv(f"LOCKGATE_LAKEFS_{name}", raising=False)


def test_defaults_select_the_embedded_server() -> None:
    settings = LakeFSSettings()
    assert settings.endpoint is None
    assert settings.embedded_data_dir == Path(".lockgate/lakefs")
    assert settings.verify_ssl is True
    assert settings.access_key_id is None and settings.secret_access_key is None


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCKGATE_LAKEFS_ENDPOINT", "https://lakefs.internal:8000/")
    monkeypatch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", REAL_KEY)
    monkeypatch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", REAL_SECRET)
    monkeypatch.setenv("LOCKGATE_LAKEFS_EMBEDDED_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOCKGATE_LAKEFS_VERIFY_SSL", "false")
    settings = LakeFSSettings()
    assert settings.endpoint == "https://lakefs.internal:8000"  # trailing slash dropped
    assert settings.access_key_id == REAL_KEY
    assert settings.secret_access_key is not None
    assert settings.secret_access_key.get_secret_value() == REAL_SECRET
    assert settings.embedded_data_dir == tmp_path
    assert settings.verify_ssl is False


def test_secret_is_not_shown_in_repr() -> None:
    settings = LakeFSSettings(
        endpoint="http://lakefs:8000", access_key_id=REAL_KEY, secret_access_key=REAL_SECRET
    )
    assert REAL_SECRET not in repr(settings)
    assert REAL_SECRET not in str(settings.model_dump())


@pytest.mark.parametrize(
    "secret",
    ["changeme", "CHANGEME-please", "<your-secret-key>", "placeholder-secret", "xxxxxxxxxx", "short1", "   "],
)
def test_real_endpoint_refuses_placeholder_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="secret_access_key looks like a placeholder"):
        LakeFSSettings(endpoint="http://lakefs:8000", access_key_id=REAL_KEY, secret_access_key=secret)


def test_refused_secret_is_not_echoed_in_the_error() -> None:
    secret = "changeme-but-long-and-unique-9731"
    with pytest.raises(ValidationError) as caught:
        LakeFSSettings(endpoint="http://lakefs:8000", access_key_id=REAL_KEY, secret_access_key=secret)
    assert secret not in str(caught.value)


def test_real_endpoint_refuses_placeholder_access_key() -> None:
    with pytest.raises(ValidationError, match="access_key_id looks like a placeholder"):
        LakeFSSettings(
            endpoint="http://lakefs:8000", access_key_id="<access-key>", secret_access_key=REAL_SECRET
        )


def test_real_endpoint_requires_both_credentials() -> None:
    with pytest.raises(ValidationError, match="LOCKGATE_LAKEFS_ACCESS_KEY_ID"):
        LakeFSSettings(endpoint="http://lakefs:8000")
    with pytest.raises(ValidationError, match="LOCKGATE_LAKEFS_SECRET_ACCESS_KEY"):
        LakeFSSettings(endpoint="http://lakefs:8000", access_key_id=REAL_KEY)


def test_embedded_mode_accepts_missing_credentials() -> None:
    # The embedded server's credentials come from its data directory, so none are needed here.
    assert LakeFSSettings(access_key_id=None).endpoint is None
    assert LakeFSSettings(endpoint="").endpoint is None


def test_endpoint_without_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        LakeFSSettings(endpoint="lakefs:8000", access_key_id=REAL_KEY, secret_access_key=REAL_SECRET)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("changeme", True),
        ("<secret>", True),
        ("****", True),
        ("", True),
        ("AKIAIOSFODNN7EXAMPLE", True),
        (REAL_KEY, False),
        (REAL_SECRET, False),
    ],
)
def test_is_placeholder(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://lakefs:8000", "http://lakefs:8000/api/v1"),
        ("http://lakefs:8000/", "http://lakefs:8000/api/v1"),
        ("http://lakefs:8000/api/v1", "http://lakefs:8000/api/v1"),
        ("https://example.org/lakefs/api/v1/", "https://example.org/lakefs/api/v1"),
    ],
)
def test_lakefs_api_url_appends_api_path_once(endpoint: str, expected: str) -> None:
    assert lakefs_api_url(endpoint) == expected


def test_make_lakefs_client_uses_settings() -> None:
    settings = LakeFSSettings(
        endpoint="http://lakefs:8000", access_key_id=REAL_KEY, secret_access_key=REAL_SECRET, verify_ssl=False
    )
    client = make_lakefs_client(settings)  # builds the client only; no request is made
    assert client.config.host == "http://lakefs:8000/api/v1"
    assert client.config.username == REAL_KEY
    assert client.config.password == REAL_SECRET
    assert client.config.verify_ssl is False


def test_make_lakefs_client_without_endpoint_points_to_the_embedded_server() -> None:
    with pytest.raises(ConfigurationError, match="EmbeddedLakeFS"):
        make_lakefs_client(LakeFSSettings())
