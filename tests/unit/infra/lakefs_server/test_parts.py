"""Pure parts of the embedded lakeFS server: names, ranges, presigned URLs, action files."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from infra.lakefs_server.app import Presigner, _parse_range
from infra.lakefs_server.errors import BadRequest, Forbidden, RangeNotSatisfiable
from infra.lakefs_server.hooks import parse_action, parse_duration
from infra.lakefs_server.names import validate_branch_name, validate_repository_name, validate_tag_name


@pytest.mark.parametrize("name", ["abc", "my-repo-1", "0ab"])
def test_valid_repository_names(name: str) -> None:
    validate_repository_name(name)


@pytest.mark.parametrize("name", ["ab", "-abc", "Abc", "a_b_c", "a" * 64, "with space"])
def test_invalid_repository_names_say_the_rule(name: str) -> None:
    with pytest.raises(BadRequest, match="3-63 lower-case"):
        validate_repository_name(name)


@pytest.mark.parametrize("name", ["main", "feature_1", "ingest-loans-20261127", "_x"])
def test_valid_branch_names(name: str) -> None:
    validate_branch_name(name)


@pytest.mark.parametrize("name", ["ingest/loans", "-x", "a.b", "a~1", "", "a b"])
def test_invalid_branch_names(name: str) -> None:
    with pytest.raises(BadRequest, match="invalid branch name"):
        validate_branch_name(name)


@pytest.mark.parametrize("name", ["v1", "v1.0.2", "release/2026-11", "model_v3"])
def test_valid_tag_names(name: str) -> None:
    validate_tag_name(name)


@pytest.mark.parametrize("name", ["v1..2", "a~1", "x^", "bad name", "-v1", "v1.", "v1.lock", "a//b", ""])
def test_invalid_tag_names(name: str) -> None:
    with pytest.raises(BadRequest, match="invalid tag name"):
        validate_tag_name(name)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=2-", (2, 9)),
        ("bytes=-3", (7, 9)),
        ("bytes=5-100", (5, 9)),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert _parse_range(header, 10) == expected


def test_range_past_the_end_is_416_with_size() -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        _parse_range("bytes=10-20", 10)
    assert caught.value.size == 10


@pytest.mark.parametrize("header", ["bytes=a-b", "items=0-1", "bytes=-", "bytes=5-2"])
def test_malformed_ranges_are_400(header: str) -> None:
    with pytest.raises(BadRequest):
        _parse_range(header, 10)


def _request(url: str) -> Request:
    path, _, query = url.partition("?")
    return Request(
        {"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "headers": []}
    )


def test_presigned_urls_verify_and_refuse_tampering_and_expiry() -> None:
    presigner = Presigner(b"k" * 32, ttl_seconds=60, public_url="http://127.0.0.1:1")
    url, _ = presigner.url(_request("/"), "GET", "local://repo/data/abc")
    query = url.split("?", 1)[1]
    assert presigner.verify(_request("/?" + query), "GET") == "local://repo/data/abc"
    with pytest.raises(Forbidden, match="signed for"):
        presigner.verify(_request("/?" + query), "PUT")
    with pytest.raises(Forbidden, match="signature"):
        presigner.verify(_request("/?" + query.replace("abc", "abd")), "GET")
    expired = Presigner(b"k" * 32, ttl_seconds=-1, public_url="http://127.0.0.1:1")
    url, _ = expired.url(_request("/"), "GET", "local://repo/data/abc")
    with pytest.raises(Forbidden, match="expired"):
        expired.verify(_request("/?" + url.split("?", 1)[1]), "GET")


def test_durations() -> None:
    assert parse_duration("2s", 30) == 2
    assert parse_duration("1m30s", 30) == 90
    assert parse_duration("500ms", 30) == 0.5
    assert parse_duration(None, 30) == 30
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("soon", 30)


GOOD_ACTION = b"""
name: gate
on:
  pre-merge:
    branches: [main]
  post-commit:
hooks:
  - id: check
    type: webhook
    properties:
      url: http://127.0.0.1:9/hook
      timeout: 2s
"""


def test_action_file_parses_events_branches_and_hooks() -> None:
    action = parse_action("_lakefs_actions/gate.yaml", GOOD_ACTION, default_timeout=30)
    assert action.name == "gate"
    assert [hook.hook_id for hook in action.hooks_for("pre-merge", "main")] == ["check"]
    assert action.hooks_for("pre-merge", "dev") == ()
    assert action.hooks_for("post-commit", "anything")[0].timeout == 2
    assert action.hooks_for("pre-commit", "main") == ()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"name: [unclosed", "not valid YAML"),
        (b"- a list", "expected a mapping"),
        (b"on: {pre-merge: {}}\nhooks: []", "missing 'name'"),
        (b"name: x\nhooks: []", "missing 'on'"),
        (
            b"name: x\non: {pre-push: {}}\nhooks: [{id: a, type: webhook, properties: {url: 'http://h'}}]",
            "unknown event",
        ),
        (b"name: x\non: {pre-merge: {}}", "missing 'hooks'"),
        (b"name: x\non: {pre-merge: {}}\nhooks: [{id: a, type: lua}]", "not supported"),
        (
            b"name: x\non: {pre-merge: {}}\nhooks: [{id: a, type: webhook, properties: {url: ftp://h}}]",
            "http(s) URL",
        ),
    ],
)
def test_malformed_action_files_name_the_file_and_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match="_lakefs_actions/bad.yaml") as caught:
        parse_action("_lakefs_actions/bad.yaml", raw, default_timeout=30)
    assert problem in str(caught.value)
