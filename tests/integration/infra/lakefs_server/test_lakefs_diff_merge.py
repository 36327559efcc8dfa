"""Diff (two-dot, three-dot, prefix) and merge (three-way, conflicts, strategies, squash, errors)."""

from __future__ import annotations

import pytest
from lakefs.exceptions import BadRequestException, ConflictException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _diverged(repo, main, lk):
    """main and feature both changed since their merge base; return (base, feature head, main head)."""
    base = lk.commit_files(main, {"shared.txt": b"base", "dir/a.txt": b"a"}, message="base")
    feature = repo.branch("feature").create(main)
    feature_head = lk.commit_files(feature, {"feature-only.txt": b"f", "dir/b.txt": b"b"}, message="feature")
    main_head = lk.commit_files(main, {"main-only.txt": b"m"}, message="main moved on")
    return base, feature_head, main_head


def test_diff_two_dot_vs_three_dot(repo, main, lk):
    _diverged(repo, main, lk)

    two_dot = {(d.path, d.type) for d in main.diff("feature", type="two_dot")}
    three_dot = {(d.path, d.type) for d in main.diff("feature", type="three_dot")}

    # two-dot compares the two trees as they are: main's own change shows as removed.
    assert two_dot == {("feature-only.txt", "added"), ("dir/b.txt", "added"), ("main-only.txt", "removed")}
    # three-dot shows only what feature changed since the merge base.
    assert three_dot == {("feature-only.txt", "added"), ("dir/b.txt", "added")}
    # The default diff is three-dot, as in lakeFS.
    assert {(d.path, d.type) for d in main.diff("feature")} == three_dot


def test_diff_changed_and_prefix_filter(repo, main, lk):
    first = lk.commit_files(main, {"dir/a.txt": b"1", "dir/b.txt": b"1", "top.txt": b"1"})
    second = lk.commit_files(
        main, {"dir/a.txt": b"2", "dir/b.txt": None, "top.txt": b"2", "dir/c.txt": b"new"}
    )
    changes = {(d.path, d.type, d.path_type) for d in repo.commit(first).diff(second, prefix="dir/")}
    assert changes == {
        ("dir/a.txt", "changed", "object"),
        ("dir/b.txt", "removed", "object"),
        ("dir/c.txt", "added", "object"),
    }
    assert [d.path for d in repo.commit(first).diff(second)] == [
        "dir/a.txt",
        "dir/b.txt",
        "dir/c.txt",
        "top.txt",
    ]
    assert [d.path for d in repo.commit(first).diff(second, max_amount=2)] == ["dir/a.txt", "dir/b.txt"]
    assert list(repo.commit(second).diff(second)) == []


def test_merge_is_three_way_against_merge_base(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a0", "b.txt": b"b0", "c.txt": b"c0"})
    feature = repo.branch("feature").create(main)
    feature_head = lk.commit_files(feature, {"b.txt": b"b-feature", "c.txt": None, "new.txt": b"n"})
    main_head = lk.commit_files(main, {"a.txt": b"a-main"})

    merge_id = feature.merge_into(main, message="merge feature", metadata={"why": "test"})

    merge = repo.commit(merge_id).get_commit()
    assert merge.parents == [main_head, feature_head]
    assert merge.message == "merge feature"
    assert merge.metadata == {"why": "test", ".lakefs.merge.strategy": "default"}
    assert main.get_commit().id == merge_id
    assert lk.read(main, "a.txt") == b"a-main"  # destination's change kept
    assert lk.read(main, "b.txt") == b"b-feature"  # source's change applied
    assert not main.object("c.txt").exists()  # source's delete applied
    assert lk.read(main, "new.txt") == b"n"
    # The source is untouched.
    assert feature.get_commit().id == feature_head
    assert lk.read(feature, "a.txt") == b"a0"


def test_merge_conflict_is_409_and_changes_nothing(repo, main, lk):
    lk.commit_files(main, {"x.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"x.txt": b"feature"})
    main_head = lk.commit_files(main, {"x.txt": b"main"})

    with pytest.raises(ConflictException) as raised:
        feature.merge_into(main)
    assert raised.value.status_code == 409
    assert "conflict" in raised.value.body.get("message", "").lower()
    assert main.get_commit().id == main_head
    assert lk.read(main, "x.txt") == b"main"
    assert list(main.uncommitted()) == []


@pytest.mark.parametrize(("strategy", "expected"), [("dest-wins", b"main"), ("source-wins", b"feature")])
def test_merge_strategy_resolves_conflict(repo, main, lk, strategy, expected):
    lk.commit_files(main, {"x.txt": b"base", "y.txt": b"y0"})
    feature = repo.branch("feature").create(main)
    feature_head = lk.commit_files(feature, {"x.txt": b"feature", "y.txt": b"y-feature"})
    main_head = lk.commit_files(main, {"x.txt": b"main"})

    merge_id = feature.merge_into(main, strategy=strategy)

    assert repo.commit(merge_id).get_commit().parents == [main_head, feature_head]
    assert lk.read(main, "x.txt") == expected
    assert lk.read(main, "y.txt") == b"y-feature"  # non-conflicting change always merges


def test_merge_without_changes_is_400_unless_allow_empty(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    head = main.get_commit().id
    with pytest.raises(BadRequestException) as raised:
        feature.merge_into(main)
    assert raised.value.status_code == 400
    assert main.get_commit().id == head
    merge_id = feature.merge_into(main, allow_empty=True)
    assert merge_id != head
    assert repo.commit(merge_id).get_commit().parents[0] == head


def test_squash_merge_makes_single_parent_commit(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"b.txt": b"b"})
    lk.commit_files(feature, {"c.txt": b"c"})
    main_head = main.get_commit().id

    merge_id = feature.merge_into(main, squash_merge=True, message="squashed")

    merged = repo.commit(merge_id).get_commit()
    assert merged.parents == [main_head]
    assert merged.message == "squashed"
    assert lk.read(main, "b.txt") == b"b" and lk.read(main, "c.txt") == b"c"
    assert [c.id for c in main.log()][:2] == [merge_id, main_head]


def test_merge_into_dirty_destination_is_refused(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"b.txt": b"b"})
    head = main.get_commit().id
    lk.put(main, "uncommitted.txt", b"dirty")

    with pytest.raises(BadRequestException) as raised:
        feature.merge_into(main)
    assert raised.value.status_code == 400
    assert "dirty" in raised.value.body.get("message", "").lower()
    assert main.get_commit().id == head
    assert not main.object("b.txt").exists()
    assert [c.path for c in main.uncommitted()] == ["uncommitted.txt"]
    assert lk.read(main, "uncommitted.txt") == b"dirty"


def test_merge_from_commit_and_tag_refs(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    tagged = lk.commit_files(feature, {"t.txt": b"tagged"})
    lk.commit_files(feature, {"later.txt": b"later"})
    repo.tag("ready").create(tagged)
    repo.tag("ready").merge_into(main)
    assert lk.read(main, "t.txt") == b"tagged"
    assert not main.object("later.txt").exists()


def test_merge_base_is_used_after_previous_merge(repo, main, lk):
    """A second merge only brings changes made after the first one (no false conflicts)."""
    lk.commit_files(main, {"x.txt": b"0"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"x.txt": b"1"})
    feature.merge_into(main)
    lk.commit_files(main, {"x.txt": b"2"})  # main changes x again after the merge
    lk.commit_files(feature, {"y.txt": b"y"})  # feature changes something else
    feature.merge_into(main)
    assert lk.read(main, "x.txt") == b"2"
    assert lk.read(main, "y.txt") == b"y"
