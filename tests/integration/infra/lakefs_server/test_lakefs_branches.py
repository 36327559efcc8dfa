"""Branches: create, get, list, delete, reset, revert, cherry-pick, uncommitted diff and errors."""

from __future__ import annotations

import lakefs_sdk
import pytest
from lakefs.exceptions import ConflictException, ForbiddenException, NotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_branch_create_get_list_delete(repo, main, lk):
    base = lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    assert feature.head.id == base
    assert feature.get_commit().id == base
    assert sorted(b.id for b in repo.branches()) == ["feature", "main"]
    assert lk.read(feature, "a.txt") == b"a"

    from_commit = repo.branch("from-commit").create(base)
    assert from_commit.head.id == base

    feature.delete()
    assert sorted(b.id for b in repo.branches()) == ["from-commit", "main"]
    with pytest.raises(NotFoundException):
        _ = repo.branch("feature").head
    with pytest.raises(NotFoundException):
        repo.branch("feature").delete()
    # Deleting a branch drops nothing committed.
    assert lk.read(repo.commit(base), "a.txt") == b"a"

    # A re-created branch starts clean: the old branch's staged changes are gone.
    again = repo.branch("again").create(main)
    lk.put(again, "staged.txt", b"s")
    again.delete()
    again = repo.branch("again").create(main)
    assert list(again.uncommitted()) == []
    assert not again.object("staged.txt").exists()


def test_branch_listing_pages(repo, main, sdk_client):
    names = [f"b-{i}" for i in range(5)]
    for name in reversed(names):
        repo.branch(name).create(main)
    first = sdk_client.branches_api.list_branches(repo.id, prefix="b-", amount=2)
    assert [r.id for r in first.results] == names[:2]
    assert first.pagination.has_more is True
    assert first.pagination.next_offset == names[1]
    second = sdk_client.branches_api.list_branches(repo.id, prefix="b-", after=names[1], amount=2)
    assert [r.id for r in second.results] == names[2:4]
    third = sdk_client.branches_api.list_branches(repo.id, prefix="b-", after=names[3], amount=2)
    assert [r.id for r in third.results] == names[4:]
    assert third.pagination.has_more is False
    assert [b.id for b in repo.branches(prefix="b-", amount=2)] == names
    assert [b.id for b in repo.branches()] == names + ["main"]


def test_reset_drops_all_uncommitted_changes(main, lk):
    head = lk.commit_files(main, {"keep.txt": b"committed"})
    lk.put(main, "new.txt", b"staged")
    lk.put(main, "keep.txt", b"overwritten")
    assert len(list(main.uncommitted())) == 2

    main.reset_changes()

    assert list(main.uncommitted()) == []
    assert not main.object("new.txt").exists()
    assert lk.read(main, "keep.txt") == b"committed"
    assert main.get_commit().id == head


def test_reset_one_object_path(main, lk):
    lk.commit_files(main, {"c.txt": b"committed"})
    lk.put(main, "a.txt", b"a")
    lk.put(main, "b.txt", b"b")
    lk.put(main, "c.txt", b"changed")

    main.reset_changes(path_type="object", path="a.txt")
    main.reset_changes(path_type="object", path="c.txt")

    assert [c.path for c in main.uncommitted()] == ["b.txt"]
    assert not main.object("a.txt").exists()
    assert lk.read(main, "c.txt") == b"committed"


def test_reset_common_prefix(main, lk):
    lk.put(main, "dir/x.txt", b"x")
    lk.put(main, "dir/sub/y.txt", b"y")
    lk.put(main, "dirt.txt", b"not under dir/")
    lk.put(main, "other.txt", b"o")

    main.reset_changes(path_type="common_prefix", path="dir/")

    assert [c.path for c in main.uncommitted()] == ["dirt.txt", "other.txt"]


def test_revert_commit_creates_undoing_commit(repo, main, lk):
    first = lk.commit_files(main, {"f.txt": b"v1", "keep.txt": b"k"})
    second = lk.commit_files(main, {"f.txt": b"v2", "g.txt": b"g"}, message="second")

    reverted = main.revert(second)

    assert reverted.id not in (first, second)
    assert reverted.parents == [second]
    assert main.get_commit().id == reverted.id
    assert lk.read(main, "f.txt") == b"v1"
    assert not main.object("g.txt").exists()
    assert lk.read(main, "keep.txt") == b"k"
    # The reverted commit itself is untouched.
    assert lk.read(repo.commit(second), "f.txt") == b"v2"


def test_revert_of_merge_needs_parent_number(repo, main, lk):
    lk.commit_files(main, {"base.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"feature.txt": b"f"})
    merge_id = feature.merge_into(main)
    assert len(repo.commit(merge_id).get_commit().parents) == 2

    status, message, _ = lk.call_error(main.revert, merge_id)  # parent_number 0
    assert status == 400
    assert "parent" in message.lower()
    assert main.get_commit().id == merge_id

    reverted = main.revert(merge_id, parent_number=1)
    assert reverted.parents == [merge_id]
    assert not main.object("feature.txt").exists()
    assert lk.read(main, "base.txt") == b"base"


def test_cherry_pick(repo, main, lk):
    lk.commit_files(main, {"base.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"one.txt": b"1"}, message="one")
    picked = lk.commit_files(feature, {"two.txt": b"2"}, message="two", metadata={"k": "v"})
    main_head = main.get_commit().id

    result = main.cherry_pick(picked)

    assert result.parents == [main_head]
    assert result.message == "two"
    assert main.get_commit().id == result.id
    assert lk.read(main, "two.txt") == b"2"
    # Only the picked commit's change, not its ancestors'.
    assert not main.object("one.txt").exists()


def test_revert_conflict_is_409_and_changes_nothing(repo, main, lk):
    lk.commit_files(main, {"f.txt": b"v1"})
    second = lk.commit_files(main, {"f.txt": b"v2"})
    third = lk.commit_files(main, {"f.txt": b"v3"})  # touches the same path again
    status, message, _ = lk.call_error(main.revert, second)
    assert status == 409
    assert "conflict" in message.lower() or "f.txt" in message
    assert main.get_commit().id == third
    assert lk.read(main, "f.txt") == b"v3"


def test_revert_and_cherry_pick_refuse_dirty_branch(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    second = lk.commit_files(main, {"b.txt": b"b"})
    feature = repo.branch("feature").create(main)
    picked = lk.commit_files(feature, {"c.txt": b"c"})
    lk.put(main, "dirty.txt", b"d")
    for call, ref in ((main.revert, second), (main.cherry_pick, picked)):
        status, message, _ = lk.call_error(call, ref)
        assert status == 400
        assert "dirty" in message.lower() or "uncommitted" in message.lower(), message
    assert main.get_commit().id == second
    assert [c.path for c in main.uncommitted()] == ["dirty.txt"]


def test_cherry_pick_of_merge_needs_parent_number(repo, main, lk):
    lk.commit_files(main, {"base.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"f.txt": b"f"})
    lk.commit_files(main, {"m.txt": b"m"})
    merge_id = feature.merge_into(main)
    target = repo.branch("target").create(merge_id + "~1")
    status, message, _ = lk.call_error(target.cherry_pick, merge_id)
    assert status == 400
    assert "parent" in message.lower()
    picked = target.cherry_pick(merge_id, parent_number=1)
    assert lk.read(repo.commit(picked.id), "f.txt") == b"f"


def test_uncommitted_diff(main, lk):
    lk.commit_files(main, {"changed.txt": b"old", "removed.txt": b"r", "same.txt": b"s"})
    lk.put(main, "added.txt", b"new")
    lk.put(main, "changed.txt", b"new content")
    main.object("removed.txt").delete()

    changes = {(c.path, c.type, c.path_type) for c in main.uncommitted()}

    assert changes == {
        ("added.txt", "added", "object"),
        ("changed.txt", "changed", "object"),
        ("removed.txt", "removed", "object"),
    }
    assert [c.path for c in main.uncommitted(prefix="ch")] == ["changed.txt"]
    assert [c.path for c in main.uncommitted(max_amount=1)] == ["added.txt"]


@pytest.mark.parametrize("name", ["a/b", "has space", "-lead", "dot.name", "tilde~1", "caret^", "at@", ""])
def test_invalid_branch_name_is_400(repo, lk, name):
    status, message, _ = lk.call_error(repo.branch(name).create, "main")
    assert status == 400
    assert "name" in message.lower() or "branch" in message.lower()
    assert [b.id for b in repo.branches()] == ["main"]


def test_valid_branch_names_accepted(repo):
    for name in ("_under", "a", "A-b_c9", "x" * 60):
        assert repo.branch(name).create("main").head.id == repo.branch("main").head.id


def test_branch_from_missing_ref_is_404(repo, lk):
    status, message, _ = lk.call_error(repo.branch("new").create, "no-such-ref")
    assert status == 404
    assert "no-such-ref" in message or "not found" in message.lower()
    with pytest.raises(NotFoundException):
        repo.branch("new2").create("a" * 64)
    assert [b.id for b in repo.branches()] == ["main"]


def test_deleting_default_branch_is_refused_403(repo, main, lk):
    head = lk.commit_files(main, {"a.txt": b"a"})
    with pytest.raises(ForbiddenException) as raised:
        main.delete()
    assert raised.value.status_code == 403
    assert "default" in raised.value.body.get("message", "").lower()
    assert main.get_commit().id == head
    assert lk.read(main, "a.txt") == b"a"


def test_duplicate_branch_is_409(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"b.txt": b"b"})
    feature_head = feature.get_commit().id
    with pytest.raises(ConflictException) as raised:
        repo.branch("feature").create(main)
    assert raised.value.status_code == 409
    assert "feature" in raised.value.body.get("message", "")
    # The existing branch was not moved.
    assert feature.get_commit().id == feature_head
    assert repo.branch("feature").create(main, exist_ok=True).get_commit().id == feature_head


def test_get_missing_branch_is_404(repo, sdk_client, lk):
    status, message, _ = lk.call_error(sdk_client.branches_api.get_branch, repo.id, "nope")
    assert status == 404
    assert "nope" in message or "not found" in message.lower()
    status, _, _ = lk.call_error(
        sdk_client.commits_api.commit, repo.id, "nope", lakefs_sdk.CommitCreation(message="m")
    )
    assert status == 404
