"""Tags: create, get, list, delete, name rules, errors, and reading objects at a tag."""

from __future__ import annotations

import lakefs_sdk
import pytest
from lakefs.exceptions import ConflictException, NotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_tag_create_get_list_delete(repo, main, sdk_client, lk):
    first = lk.commit_files(main, {"a.txt": b"a"})
    second = lk.commit_files(main, {"b.txt": b"b"})
    repo.tag("v1").create(first)
    repo.tag("v2").create("main")

    assert sdk_client.tags_api.get_tag(repo.id, "v1").commit_id == first
    assert repo.tag("v2").get_commit().id == second
    assert [t.id for t in repo.tags()] == ["v1", "v2"]

    page = sdk_client.tags_api.list_tags(repo.id, amount=1)
    assert [(t.id, t.commit_id) for t in page.results] == [("v1", first)]
    assert page.pagination.has_more is True
    rest = sdk_client.tags_api.list_tags(repo.id, after=page.pagination.next_offset, amount=1)
    assert [(t.id, t.commit_id) for t in rest.results] == [("v2", second)]
    assert [t.id for t in repo.tags(prefix="v2")] == ["v2"]

    repo.tag("v1").delete()
    assert [t.id for t in repo.tags()] == ["v2"]
    status, _, _ = lk.call_error(sdk_client.tags_api.get_tag, repo.id, "v1")
    assert status == 404
    with pytest.raises(NotFoundException):
        repo.tag("v1").delete()
    # The commit outlives its tag.
    assert repo.commit(first).get_commit().id == first


def test_tag_on_missing_ref_is_404(repo, lk):
    status, message, _ = lk.call_error(repo.tag("t").create, "no-such-branch")
    assert status == 404
    assert "no-such-branch" in message or "not found" in message.lower()
    assert list(repo.tags()) == []


def test_duplicate_tag_is_409(repo, main, lk):
    first = lk.commit_files(main, {"a.txt": b"a"})
    repo.tag("release").create(first)
    lk.commit_files(main, {"b.txt": b"b"})
    with pytest.raises(ConflictException) as raised:
        repo.tag("release").create("main")
    assert raised.value.status_code == 409
    assert "release" in raised.value.body.get("message", "")
    assert repo.tag("release").get_commit().id == first
    repo.tag("release").create("main", exist_ok=True)
    assert repo.tag("release").get_commit().id == first


def test_read_objects_at_tag(repo, main, lk):
    tagged = lk.commit_files(main, {"data.csv": b"v1", "dir/x.txt": b"x"})
    repo.tag("snapshot").create(tagged)
    lk.commit_files(main, {"data.csv": b"v2", "dir/x.txt": None, "new.txt": b"n"})
    lk.put(main, "staged.txt", b"s")

    tag = repo.tag("snapshot")
    assert lk.read(tag, "data.csv") == b"v1"
    assert [o.path for o in tag.objects()] == ["data.csv", "dir/x.txt"]
    assert tag.object("dir/x.txt").exists()
    assert not tag.object("new.txt").exists()
    assert tag.object("data.csv").stat().size_bytes == 2


@pytest.mark.parametrize(
    "name",
    [
        "has space",
        "a..b",
        "x~1",
        "x^1",
        "x:y",
        "q?",
        "star*",
        "br[",
        "back\\slash",
        "end.lock",
        "-lead",
        "/lead",
        "trail/",
        "trail.",
        "a@{b",
        "a//b",
        "@",
    ],
)
def test_invalid_tag_name_is_400(repo, main, lk, name):
    lk.commit_files(main, {"a.txt": b"a"})
    status, message, _ = lk.call_error(_create_tag, repo, name)
    assert status == 400, (name, status, message)
    assert "tag" in message.lower() or "name" in message.lower()
    assert list(repo.tags()) == []


def _create_tag(repo, name):
    return repo.tag(name).create("main")


def test_git_like_tag_names_accepted(repo, main, lk):
    commit = lk.commit_files(main, {"a.txt": b"a"})
    names = ["v1.0.0", "release/2024-01", "a_b-c.d", "RC1"]
    for name in names:
        repo.tag(name).create(commit)
    assert sorted(t.id for t in repo.tags()) == sorted(names)
    assert repo.tag("release/2024-01").get_commit().id == commit


def test_tag_id_in_url_path_is_escaped(repo, main, sdk_client, lk):
    commit = lk.commit_files(main, {"a.txt": b"a"})
    sdk_client.tags_api.create_tag(repo.id, lakefs_sdk.TagCreation(id="rel/1", ref=commit))
    assert sdk_client.tags_api.get_tag(repo.id, "rel/1").commit_id == commit
    sdk_client.tags_api.delete_tag(repo.id, "rel/1")
    assert list(repo.tags()) == []


def test_tag_with_slash_works_as_a_ref(repo, main, lk):
    """The SDK percent-encodes '/' in path parameters; the ref must still resolve."""
    commit = lk.commit_files(main, {"a.txt": b"tagged"})
    repo.tag("rel/2").create(commit)
    lk.commit_files(main, {"a.txt": b"later"})
    tag = repo.tag("rel/2")
    assert tag.get_commit().id == commit
    assert lk.read(tag, "a.txt") == b"tagged"
    assert [o.path for o in tag.objects()] == ["a.txt"]
    assert [c.id for c in tag.log(max_amount=1)] == [commit]
    assert [(d.path, d.type) for d in tag.diff("main")] == [("a.txt", "changed")]
    repo.tag("rel/2").delete()
    assert list(repo.tags()) == []
