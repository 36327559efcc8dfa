"""Error responses: lakeFS's status codes, JSON bodies {"message": ...} that say what was wrong,
and nothing stored lost when a request is refused."""

from __future__ import annotations

import json

import lakefs_sdk
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _error(call, *args, **kwargs) -> lakefs_sdk.ApiException:
    with pytest.raises(lakefs_sdk.ApiException) as raised:
        call(*args, **kwargs)
    return raised.value


def _json_message(error: lakefs_sdk.ApiException) -> str:
    headers = {k.lower(): v for k, v in dict(error.headers or {}).items()}
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(error.body)
    assert isinstance(body, dict)
    assert isinstance(body.get("message"), str) and body["message"], body
    return body["message"]


def test_error_bodies_carry_lakefs_status_and_json_message(repo, main, sdk_client, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    api = sdk_client

    cases = [
        (404, "missing-repo", lambda: api.repositories_api.get_repository("missing-repo-xyz")),
        (404, "nope", lambda: api.branches_api.get_branch(repo.id, "nope")),
        (404, "missing.txt", lambda: api.objects_api.stat_object(repo.id, "main", "missing.txt")),
        (
            409,
            "main",
            lambda: api.branches_api.create_branch(
                repo.id, lakefs_sdk.BranchCreation(name="main", source="main")
            ),
        ),
        (
            400,
            "",
            lambda: api.commits_api.commit(repo.id, "main", lakefs_sdk.CommitCreation(message="nothing")),
        ),
        (403, "default", lambda: api.branches_api.delete_branch(repo.id, "main")),
        (
            400,
            "bad/name",
            lambda: api.branches_api.create_branch(
                repo.id, lakefs_sdk.BranchCreation(name="bad/name", source="main")
            ),
        ),
    ]
    for status, hint, call in cases:
        error = _error(call)
        assert error.status == status, (hint, error.status, error.body)
        message = _json_message(error)
        assert hint.lower() in message.lower(), (hint, message)


def test_object_errors_are_json(lakefs_server, repo, main, http, auth_headers, lk):
    lk.put(main, "a.txt", b"abc")
    base = f"{lakefs_server.endpoint}/repositories/{repo.id}"
    cases = [
        ("GET", f"{base}/refs/main/objects?path=missing.txt", {}, 404),
        ("GET", f"{base}/refs/main/objects?path=a.txt", {"Range": "bytes=10-20"}, 416),
        ("GET", f"{base}/refs/no-such-ref/objects?path=a.txt", {}, 404),
        ("GET", f"{base}/refs/main/objects", {}, 400),  # path is required
        (
            "POST",
            f"{base}/branches/no-such-branch/objects?path=x",
            {"Content-Type": "application/octet-stream"},
            404,
        ),
    ]
    for method, url, headers, status in cases:
        response = http.request(
            method, url, headers={**auth_headers, **headers}, body=b"x" if method == "POST" else None
        )
        assert response.status == status, (url, response.status, response.data)
        assert response.headers["Content-Type"].startswith("application/json"), url
        assert json.loads(response.data)["message"], url


def test_unknown_repository_in_every_scope_is_404(sdk_client, lk):
    missing = "no-such-repo-404"
    calls = [
        lambda: sdk_client.branches_api.list_branches(missing),
        lambda: sdk_client.tags_api.list_tags(missing),
        lambda: sdk_client.refs_api.log_commits(missing, "main"),
        lambda: sdk_client.objects_api.list_objects(missing, "main"),
        lambda: sdk_client.refs_api.diff_refs(missing, "main", "main"),
        lambda: sdk_client.commits_api.get_commit(missing, "main"),
    ]
    for call in calls:
        status, message, _ = lk.call_error(call)
        assert status == 404
        assert missing in message or "not found" in message.lower()


def test_refused_requests_lose_nothing(repo, main, sdk_client, lk):
    """A battery of refused writes leaves the branch head, its objects and its staging untouched."""
    lk.commit_files(main, {"keep.txt": b"keep", "x.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"x.txt": b"feature"})
    lk.commit_files(main, {"x.txt": b"main"})
    lk.put(main, "staged.txt", b"staged")
    head = main.get_commit().id

    refused = [
        lambda: feature.merge_into(main),  # dirty destination
        lambda: repo.branch("main").create("feature"),  # duplicate
        lambda: main.delete(),  # default branch
        lambda: main.revert("no-such-ref"),
        lambda: main.cherry_pick("no-such-ref"),
        lambda: repo.tag("bad tag").create("main"),
    ]
    for call in refused:
        status, message, _ = lk.call_error(call)
        assert 400 <= status < 500 and message, (status, message)

    main.commit(message="commit the staged file")
    head = main.get_commit().id
    status, message, _ = lk.call_error(feature.merge_into, main)  # now a conflict
    assert status == 409 and "x.txt" in message

    assert main.get_commit().id == head
    assert lk.read(main, "keep.txt") == b"keep"
    assert lk.read(main, "x.txt") == b"main"
    assert lk.read(main, "staged.txt") == b"staged"
    assert lk.read(feature, "x.txt") == b"feature"
