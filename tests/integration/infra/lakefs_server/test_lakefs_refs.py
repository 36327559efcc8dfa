"""lakeFS ref expressions: commit IDs and prefixes, branches, tags, ~N, ^N, @, $ and bad refs."""

from __future__ import annotations

import pytest
from lakefs.exceptions import NotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _history(repo, main, lk):
    """Three commits changing v.txt to v1, v2, v3; return their IDs, oldest first."""
    return [lk.commit_files(main, {"v.txt": f"v{i}"}, message=f"c{i}") for i in (1, 2, 3)]


def test_read_at_every_kind_of_ref(repo, main, sdk_client, lk):
    c1, c2, c3 = _history(repo, main, lk)
    repo.tag("tag-c2").create(c2)
    repo.branch("at-c1").create(c1)

    expectations = {
        c3: b"v3",  # full commit ID
        c2[:16]: b"v2",  # unique prefix
        c1[:8]: b"v1",
        "main": b"v3",  # branch
        "at-c1": b"v1",
        "tag-c2": b"v2",  # tag
        "main~1": b"v2",
        "main~2": b"v1",
        "main~": b"v2",
        "main@": b"v3",
        "tag-c2~1": b"v1",
        f"{c3}~2": b"v1",
    }
    for ref, expected in expectations.items():
        assert lk.read(repo.ref(ref), "v.txt") == expected, ref
        assert [o.path for o in repo.ref(ref).objects()] == ["v.txt"], ref
        assert repo.ref(ref).object("v.txt").stat().size_bytes == 2, ref
    assert repo.ref("main~1").get_commit().id == c2
    assert repo.ref(c2[:10]).get_commit().id == c2
    assert sdk_client.commits_api.get_commit(repo.id, "main~2").id == c1
    assert [c.id for c in repo.ref("main~1").log()][:2] == [c2, c1]


def test_caret_selects_merge_parents(repo, main, lk):
    lk.commit_files(main, {"base.txt": b"b"})
    feature = repo.branch("feature").create(main)
    feature_head = lk.commit_files(feature, {"f.txt": b"f"})
    main_head = lk.commit_files(main, {"m.txt": b"m"})
    merge = feature.merge_into(main)

    assert repo.ref("main^1").get_commit().id == main_head
    assert repo.ref("main^").get_commit().id == main_head
    assert repo.ref("main^2").get_commit().id == feature_head
    assert repo.ref(f"{merge}^2").get_commit().id == feature_head
    assert not repo.ref("main^1").object("f.txt").exists()
    assert lk.read(repo.ref("main^2"), "f.txt") == b"f"
    assert repo.ref("main^2~1").get_commit().id == repo.ref("main~2").get_commit().id
    with pytest.raises(NotFoundException):
        repo.ref("main^3").get_commit()


def test_at_suffix_reads_committed_state_only(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"committed", "gone.txt": b"g"})
    lk.put(main, "a.txt", b"staged")
    lk.put(main, "new.txt", b"n")
    main.object("gone.txt").delete()

    assert lk.read(repo.ref("main"), "a.txt") == b"staged"
    assert lk.read(repo.ref("main@"), "a.txt") == b"committed"
    assert [o.path for o in repo.ref("main").objects()] == ["a.txt", "new.txt"]
    assert [o.path for o in repo.ref("main@").objects()] == ["a.txt", "gone.txt"]
    assert not repo.ref("main@").object("new.txt").exists()
    assert repo.ref("main@").object("gone.txt").exists()


def test_dollar_suffix_includes_staging(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"committed"})
    lk.put(main, "a.txt", b"staged")
    lk.put(main, "new.txt", b"n")
    assert lk.read(repo.ref("main$"), "a.txt") == b"staged"
    assert [o.path for o in repo.ref("main$").objects()] == ["a.txt", "new.txt"]


def test_unknown_refs_are_404(repo, main, sdk_client, lk):
    _history(repo, main, lk)
    for ref in ("no-such-branch", "f" * 64, "main~10", "deadbeef"):
        status, message, _ = lk.call_error(sdk_client.commits_api.get_commit, repo.id, ref)
        assert status == 404, (ref, status, message)
        assert message, ref
        status, _, _ = lk.call_error(sdk_client.objects_api.list_objects, repo.id, ref)
        assert status == 404, ref


def test_malformed_refs_are_rejected(repo, main, sdk_client, lk):
    _history(repo, main, lk)
    for ref in ("main~x", "main@@"):
        status, message, _ = lk.call_error(sdk_client.commits_api.get_commit, repo.id, ref)
        assert status in (400, 404), (ref, status, message)
        assert message, ref


@pytest.mark.slow
def test_ambiguous_commit_prefix_is_refused(repo, main, sdk_client, lk):
    """Make empty commits until two IDs share a 4-hex-digit prefix, then use that prefix."""
    seen: dict[str, str] = {}
    prefix = None
    for i in range(2500):
        commit_id = main.commit(message=f"e{i}", allow_empty=True).get_commit().id
        if commit_id[:4] in seen:
            prefix = commit_id[:4]
            break
        seen[commit_id[:4]] = commit_id
    assert prefix is not None
    status, message, _ = lk.call_error(sdk_client.commits_api.get_commit, repo.id, prefix)
    assert status in (400, 404)
    assert "ambiguous" in message.lower(), message
    # A longer, unique prefix of the same commit resolves.
    full = seen[prefix]
    assert sdk_client.commits_api.get_commit(repo.id, full[:20]).id == full


def test_branch_and_tag_names_shadow_commit_prefixes(repo, main, lk):
    c1, c2, _ = _history(repo, main, lk)
    # A branch whose name is a prefix of another commit's ID resolves to the branch.
    repo.branch(c2[:8]).create(c1)
    assert repo.ref(c2[:8]).get_commit().id == c1
