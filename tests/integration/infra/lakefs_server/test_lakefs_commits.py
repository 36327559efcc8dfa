"""Commits: metadata, empty commits, get by ID, log paging and first-parent, commit identity."""

from __future__ import annotations

import re
import time

import lakefs_sdk
import pytest
from lakefs.exceptions import BadRequestException, NotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def test_commit_metadata_round_trips(repo, main, lk):
    before = int(time.time()) - 5
    lk.put(main, "a.txt", b"a")
    ref = main.commit(message="add a", metadata={"run": "42", "owner": "ci"})
    commit = repo.commit(ref.id).get_commit()
    assert commit.message == "add a"
    assert commit.metadata == {"run": "42", "owner": "ci"}
    assert commit.creation_date >= before
    assert isinstance(commit.committer, str)
    assert main.get_commit().id == commit.id
    assert list(main.uncommitted()) == []

    lk.put(main, "b.txt", b"b")
    dated = main.commit(message="dated", date=1_600_000_000).get_commit()
    assert dated.creation_date == 1_600_000_000


def test_commit_with_no_changes_is_400_unless_allow_empty(repo, main, lk):
    head = main.get_commit().id
    with pytest.raises(BadRequestException) as raised:
        main.commit(message="nothing")
    assert raised.value.status_code == 400
    assert (
        "no changes" in raised.value.body.get("message", "").lower()
        or "empty" in raised.value.body.get("message", "").lower()
    )
    assert main.get_commit().id == head

    empty = main.commit(message="empty on purpose", allow_empty=True).get_commit()
    assert empty.parents == [head]
    assert empty.meta_range_id == repo.commit(head).get_commit().meta_range_id


def test_get_commit_by_id(repo, main, sdk_client, lk):
    first = lk.commit_files(main, {"a.txt": b"a"}, message="first")
    second = lk.commit_files(main, {"b.txt": b"b"}, message="second")
    got = sdk_client.commits_api.get_commit(repo.id, second)
    assert got.id == second
    assert got.parents == [first]
    assert got.message == "second"
    assert repo.commit(first).get_commit().message == "first"
    status, _, _ = lk.call_error(sdk_client.commits_api.get_commit, repo.id, "f" * 64)
    assert status == 404


def test_log_pages_with_amount_and_after(repo, main, sdk_client, lk):
    ids = [lk.commit_files(main, {f"f{i}.txt": str(i)}, message=f"c{i}") for i in range(5)]
    newest_first = list(reversed(ids))

    full = [c.id for c in main.log()]
    assert full[:5] == newest_first
    assert len(full) == 6  # plus "Repository created"
    assert main.log().__next__().message == "c4"

    page = sdk_client.refs_api.log_commits(repo.id, "main", amount=2)
    assert [c.id for c in page.results] == newest_first[:2]
    assert page.pagination.has_more is True
    assert page.pagination.next_offset == newest_first[1]
    page2 = sdk_client.refs_api.log_commits(repo.id, "main", amount=2, after=page.pagination.next_offset)
    assert [c.id for c in page2.results] == newest_first[2:4]
    page3 = sdk_client.refs_api.log_commits(repo.id, "main", amount=2, after=page2.pagination.next_offset)
    assert [c.id for c in page3.results] == [newest_first[4], full[5]]
    assert page3.pagination.has_more is False

    assert [c.id for c in main.log(max_amount=3)] == newest_first[:3]
    assert [c.id for c in main.log(amount=2)] == full


def test_log_first_parent_on_merge_history(repo, main, lk):
    base = lk.commit_files(main, {"base.txt": b"b"}, message="base")
    feature = repo.branch("feature").create(main)
    f1 = lk.commit_files(feature, {"f1.txt": b"1"}, message="f1")
    f2 = lk.commit_files(feature, {"f2.txt": b"2"}, message="f2")
    m1 = lk.commit_files(main, {"m1.txt": b"m"}, message="m1")
    merge = feature.merge_into(main)

    everything = [c.id for c in main.log()]
    assert everything[0] == merge
    assert set(everything) >= {merge, m1, f1, f2, base}
    assert everything.index(f2) < everything.index(f1) < everything.index(base)

    first_parent = [c.id for c in main.log(first_parent=True)]
    assert first_parent[:3] == [merge, m1, base]
    assert f1 not in first_parent and f2 not in first_parent
    assert len(first_parent) == 4


def test_commit_ids_are_sha256_hex(repo, main, lk):
    commit_id = lk.commit_files(main, {"a.txt": b"a"})
    assert SHA256_HEX.match(commit_id), commit_id
    assert SHA256_HEX.match(main.get_commit().parents[0])
    for commit in main.log():
        assert SHA256_HEX.match(commit.id)


def test_commits_are_immutable(repo, main, sdk_client, lk):
    commit_id = lk.commit_files(main, {"a.txt": b"v1"}, metadata={"k": "v"})
    before = sdk_client.commits_api.get_commit(repo.id, commit_id).to_dict()
    lk.commit_files(main, {"a.txt": b"v2"})
    repo.tag("snap").create(commit_id)
    main.revert(main.get_commit().id)
    after = sdk_client.commits_api.get_commit(repo.id, commit_id).to_dict()
    assert after == before
    assert sdk_client.commits_api.get_commit(repo.id, "snap").to_dict() == before
    assert lk.read(repo.commit(commit_id), "a.txt") == b"v1"


def test_commit_ids_are_content_addressed(repo, main, lk):
    date = 1_700_000_000
    left = repo.branch("left").create(main)
    right = repo.branch("right").create(main)
    lk.put(left, "data.txt", b"left content")
    lk.put(right, "data.txt", b"right content")
    left_id = left.commit(message="same message", date=date).get_commit().id
    right_id = right.commit(message="same message", date=date).get_commit().id
    assert left_id != right_id
    assert repo.commit(left_id).get_commit().meta_range_id != repo.commit(right_id).get_commit().meta_range_id
    # Same tree, different message: a different commit too.
    twin = repo.branch("twin").create(left_id)
    twin_id = twin.commit(message="another message", date=date, allow_empty=True).get_commit().id
    assert twin_id != left_id
    assert repo.commit(twin_id).get_commit().meta_range_id == repo.commit(left_id).get_commit().meta_range_id


def test_commit_on_missing_branch_is_404(repo, sdk_client, lk):
    status, message, _ = lk.call_error(
        sdk_client.commits_api.commit, repo.id, "ghost", lakefs_sdk.CommitCreation(message="m")
    )
    assert status == 404
    assert "ghost" in message or "not found" in message.lower()
    with pytest.raises(NotFoundException):
        repo.branch("ghost").commit(message="m")
