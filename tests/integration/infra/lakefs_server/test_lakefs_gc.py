"""Garbage collection of the embedded server: lakeFS's rules, what goes and what stays, dry run,
concurrent writers and a kill -9 in the middle."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import lakefs
import lakefs_sdk
import pytest
from lakefs.exceptions import ServerException

from infra.errors import GarbageCollectionError
from infra.lakefs_server.gc import request_gc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
DAY = 86_400


def _rules(sdk_client, repository: str, default: int, **branches: int) -> None:
    sdk_client.repositories_api.set_gc_rules(
        repository,
        lakefs_sdk.GarbageCollectionRules(
            default_retention_days=default,
            branches=[
                lakefs_sdk.GarbageCollectionRule(branch_id=b, retention_days=d) for b, d in branches.items()
            ],
        ),
    )


def _gc(server, repository: str, **options):
    return request_gc(server.endpoint, *server.credentials, repository, min_age_hours=0, **options)


def _commit(branch, lk, files: dict, days_ago: float, message: str = "change") -> str:
    for path, data in files.items():
        if data is None:
            branch.object(path).delete()
        else:
            lk.put(branch, path, data)
    return branch.commit(message=message, date=int(time.time() - days_ago * DAY)).get_commit().id


def _blocks(data_dir: Path, repository: str) -> set[str]:
    folder = data_dir / "blocks" / repository / "data"
    return {f"local://{repository}/data/{p.name}" for p in folder.iterdir()} if folder.exists() else set()


def _reachable(repo, lk) -> dict[tuple[str, str], bytes]:
    """Every object every branch can reach (committed and staged), read back in full."""
    found = {}
    for branch in repo.branches():
        for obj in branch.objects():
            found[(branch.id, obj.path)] = lk.read(branch, obj.path)
    return found


def _address(repo, ref: str, path: str) -> str:
    return repo.ref(ref).object(path).stat().physical_address


# -- rules --------------------------------------------------------------------------------------------


def test_gc_rules_round_trip_as_in_lakefs(repo, sdk_client, lk):
    status, _, _ = lk.call_error(sdk_client.repositories_api.get_gc_rules, repo.id)
    assert status == 404
    _rules(sdk_client, repo.id, 7, main=30)
    rules = sdk_client.repositories_api.get_gc_rules(repo.id)
    assert rules.default_retention_days == 7
    assert [(r.branch_id, r.retention_days) for r in rules.branches] == [("main", 30)]
    sdk_client.repositories_api.delete_gc_rules(repo.id)
    assert lk.call_error(sdk_client.repositories_api.get_gc_rules, repo.id)[0] == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"default_retention_days": 0}, "at least 1 day"),
        (
            {"default_retention_days": 7, "branches": [{"branch_id": "main", "retention_days": 0}]},
            "at least 1",
        ),
        ({"default_retention_days": -3}, "at least 1 day"),
        ({"branches": []}, "whole number of days"),
        ({"default_retention_days": "7"}, "whole number of days"),
        ({"default_retention_days": 7, "branches": [{"branch_id": "main"}]}, "whole number"),
        (
            {
                "default_retention_days": 7,
                "branches": [
                    {"branch_id": "a", "retention_days": 1},
                    {"branch_id": "a", "retention_days": 2},
                ],
            },
            "more than one rule",
        ),
    ],
)
def test_bad_gc_rules_are_refused(repo, lakefs_server, http, auth_headers, body, says):
    """Raw HTTP: the SDK's own model validation would stop most of these before they are sent."""
    url = f"{lakefs_server.endpoint}/repositories/{repo.id}/settings/gc_rules"
    response = http.request(
        "PUT", url, body=json.dumps(body), headers={**auth_headers, "Content-Type": "application/json"}
    )
    assert response.status == 400, response.data
    assert says in json.loads(response.data)["message"]


def test_gc_refuses_a_repository_without_rules(repo, lakefs_server):
    with pytest.raises(GarbageCollectionError, match="no GC rules set"):
        _gc(lakefs_server, repo.id)


# -- what goes, what stays ----------------------------------------------------------------------------


def _history(repo, main, lk, sdk_client):
    """main: v1 (40 days ago), v2 (35 days ago), v3 (now); a deleted branch from 30 days ago; one
    from today; an overwritten staged upload; a tag on the oldest commit (tags protect nothing)."""
    v1 = _commit(main, lk, {"a.txt": b"v1", "keep.txt": b"forever"}, 40)
    v2 = _commit(main, lk, {"a.txt": b"v2"}, 35)
    old = repo.branch("old-feature").create(main)
    _commit(old, lk, {"old.txt": b"old feature"}, 30)
    new = repo.branch("new-feature").create(main)
    _commit(new, lk, {"new.txt": b"new feature"}, 0)
    v3 = _commit(main, lk, {"a.txt": b"v3"}, 0)
    repo.tag("first").create(v1)
    addresses = {
        "v1": _address(repo, v1, "a.txt"),
        "v2": _address(repo, v2, "a.txt"),
        "v3": _address(repo, v3, "a.txt"),
        "keep": _address(repo, v3, "keep.txt"),
        "old": _address(repo, "old-feature", "old.txt"),
        "new": _address(repo, "new-feature", "new.txt"),
    }
    old.delete()
    new.delete()
    lk.put(main, "draft.txt", b"first draft")
    addresses["overwritten"] = _address(repo, "main", "draft.txt")
    lk.put(main, "draft.txt", b"second draft")
    addresses["draft"] = _address(repo, "main", "draft.txt")
    _rules(sdk_client, repo.id, 7)
    return {"v1": v1, "v2": v2, "v3": v3}, addresses


def test_gc_deletes_exactly_what_no_retained_commit_or_staged_entry_references(
    repo, main, lk, sdk_client, lakefs_server
):
    commits, addresses = _history(repo, main, lk, sdk_client)
    data_dir = lakefs_server.data_dir
    before = _reachable(repo, lk)

    dry = _gc(lakefs_server, repo.id, dry_run=True)
    assert _blocks(data_dir, repo.id) >= set(addresses.values())  # a dry run deletes nothing
    real = _gc(lakefs_server, repo.id)
    assert {d["address"] for d in dry["deleted"]} == {d["address"] for d in real["deleted"]}
    assert real["deleted_blocks"] == dry["deleted_blocks"] > 0

    gone = {d["address"] for d in real["deleted"]}
    assert gone == {addresses["v1"], addresses["old"], addresses["overwritten"]}
    assert not gone & _blocks(data_dir, repo.id)
    assert _reachable(repo, lk) == before  # everything a branch reaches reads back the same

    # v2 is the first commit older than the retention: it stays, and so does all it references.
    assert lk.read(repo.ref(commits["v2"]), "a.txt") == b"v2"
    # v1 expired: its own data answers 410 (lakeFS: "resource expired"), shared data still reads.
    status, _, _ = lk.call_error(
        sdk_client.objects_api.get_object, repo.id, commits["v1"], "a.txt", presign=False
    )
    assert status == 410
    assert lk.read(repo.ref(commits["v1"]), "keep.txt") == b"forever"
    # No branch may build on an expired commit any more; a tag may name it (tags protect nothing,
    # as in lakeFS), and reads through it answer 410 for what is gone.
    status, message, _ = lk.call_error(repo.branch("revive").create, commits["v1"])
    assert status == 410 and "expired" in message
    repo.tag("again").create(commits["v1"])
    assert (
        lk.call_error(sdk_client.objects_api.get_object, repo.id, "again", "a.txt", presign=False)[0] == 410
    )
    # A copy of removed data is refused, never a dangling entry.
    status, _, _ = lk.call_error(
        sdk_client.objects_api.copy_object,
        repo.id,
        "main",
        "copy.txt",
        lakefs_sdk.ObjectCopyCreation(src_path="a.txt", src_ref=commits["v1"]),
    )
    assert status == 410 and "copy.txt" not in {o.path for o in main.objects()}

    assert _gc(lakefs_server, repo.id)["deleted_blocks"] == 0  # a second run finds nothing


def test_gc_keeps_young_blocks_an_upload_may_still_link(repo, main, lk, sdk_client, lakefs_server):
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "late.bin", presign=True)
    import urllib3

    assert urllib3.request("PUT", location.presigned_url, body=b"uploaded, not linked yet").status == 200
    _rules(sdk_client, repo.id, 1)
    result = request_gc(lakefs_server.endpoint, *lakefs_server.credentials, repo.id, min_age_hours=1)
    assert result["deleted_blocks"] == 0 and result["too_young"] == 1
    assert location.physical_address in _blocks(lakefs_server.data_dir, repo.id)


def test_branch_rules_outlive_the_default(repo, main, lk, sdk_client, lakefs_server):
    old = _commit(main, lk, {"a.txt": b"old"}, 20)
    _commit(main, lk, {"a.txt": b"mid"}, 15)
    _commit(main, lk, {"a.txt": b"new"}, 0)
    address = _address(repo, old, "a.txt")
    _rules(sdk_client, repo.id, 7, main=30)
    assert _gc(lakefs_server, repo.id)["deleted_blocks"] == 0
    assert lk.read(repo.ref(old), "a.txt") == b"old"
    _rules(sdk_client, repo.id, 7)
    assert address in {d["address"] for d in _gc(lakefs_server, repo.id)["deleted"]}


# -- concurrent writers and crashes ------------------------------------------------------------------


def _garbage_repo(server, lk, files: int):
    """A repository whose first commit's ``files`` objects are referenced by nothing retained."""
    client = server.client()
    name = lk.new_name()
    repo = lakefs.Repository(name, client=client).create(storage_namespace=f"local://{name}")
    main = repo.branch("main")
    old = _commit(main, lk, {f"old/{i:04d}.bin": f"old {i}".encode() for i in range(files)}, 40)
    _commit(main, lk, {f"old/{i:04d}.bin": None for i in range(files)}, 39)
    _commit(main, lk, {"now.txt": b"now"}, 0)
    _rules(client.sdk_client, name, 7)
    return repo, main, old


def test_gc_never_deletes_what_concurrent_writers_make_reachable(own_server, lk):
    server = own_server(
        env={
            "LOCKGATE_EMBEDDED_LAKEFS_GC_BATCH_SIZE": "4",
            "LOCKGATE_EMBEDDED_LAKEFS_GC_PAUSE_SECONDS": "0.1",
        }
    )
    repo, main, old = _garbage_repo(server, lk, 120)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(_gc(server, repo.id)))
    runner.start()
    time.sleep(0.5)

    # While the sweep runs: revive old blocks three ways, and keep writing new ones.
    outcomes = {}
    try:
        repo.branch("revived").create(old)
        outcomes["branch"] = "created"
    except Exception as error:  # noqa: BLE001 - either outcome is lawful; losing data is not
        outcomes["branch"] = getattr(error, "status_code", error)
    work = repo.branch("work").create(main)
    client = server.client().sdk_client
    copied = 0
    for index in range(40, 60):
        try:
            client.objects_api.copy_object(
                repo.id,
                "work",
                f"copy-{index}.bin",
                lakefs_sdk.ObjectCopyCreation(src_path=f"old/{index:04d}.bin", src_ref=old),
            )
            copied += 1
        except lakefs_sdk.ApiException as error:
            assert error.status == 410  # refused, never a dangling copy
    for index in range(10):
        _commit(work, lk, {f"new/{index}.txt": f"new {index}".encode()}, 0)
    runner.join(120)
    assert not runner.is_alive() and result

    # Everything any branch reaches reads back in full: nothing reachable was deleted.
    reachable = _reachable(repo, lk)
    if outcomes["branch"] == "created":
        assert all(reachable[("revived", f"old/{i:04d}.bin")] == f"old {i}".encode() for i in range(120))
        assert result["revived"] > 0
    else:
        assert outcomes["branch"] == 410
    assert sum(1 for (branch, path) in reachable if branch == "work" and path.startswith("copy-")) == copied
    assert all(reachable[("work", f"new/{i}.txt")] == f"new {i}".encode() for i in range(10))


def test_gc_killed_mid_sweep_restarts_cleanly(own_server, lk, tmp_path):
    env = {"LOCKGATE_EMBEDDED_LAKEFS_GC_BATCH_SIZE": "2", "LOCKGATE_EMBEDDED_LAKEFS_GC_PAUSE_SECONDS": "0.2"}
    data_dir = tmp_path / "killed"
    server = own_server(env=env, data_dir=data_dir)
    repo, main, _ = _garbage_repo(server, lk, 60)
    before = _reachable(repo, lk)
    blocks_before = len(_blocks(data_dir, repo.id))

    thread = threading.Thread(target=lambda: _gc_quietly(server, repo.id), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while len(_blocks(data_dir, repo.id)) > blocks_before - 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # kill -9 in the middle of the sweep
    thread.join(30)
    left = len(_blocks(data_dir, repo.id))
    assert blocks_before - 60 < left < blocks_before  # some garbage went, not all

    server = own_server(env=env, data_dir=data_dir)
    repo = lakefs.Repository(repo.id, client=server.client())
    assert _reachable(repo, lk) == before  # nothing referenced was lost
    rerun = _gc(server, repo.id)
    assert rerun["deleted_blocks"] == left - (blocks_before - 60)
    assert len(_blocks(data_dir, repo.id)) == blocks_before - 60
    assert _reachable(repo, lk) == before


def _gc_quietly(server, repository: str) -> None:
    with contextlib.suppress(Exception):  # the server is killed under this request on purpose
        _gc(server, repository)


def test_expired_data_is_gone_through_lakefs_spec(repo, main, lk, sdk_client, lakefs_server):
    from lakefs_spec import LakeFSFileSystem

    old = _commit(main, lk, {"a.txt": b"old"}, 40)
    _commit(main, lk, {"a.txt": b"newer"}, 39)
    _commit(main, lk, {"a.txt": b"newest"}, 0)
    _rules(sdk_client, repo.id, 7)
    _gc(lakefs_server, repo.id)
    key, secret = lakefs_server.credentials
    fs = LakeFSFileSystem(host=lakefs_server.endpoint, username=key, password=secret)
    # As against lakeFS: lakefs-spec checks existence with HEAD first, which answers a bare 410 for
    # expired data, and passes the wrapper's ServerException on.
    with pytest.raises(ServerException) as raised:
        fs.cat(f"{repo.id}/{old}/a.txt")
    assert raised.value.status_code == 410
    assert fs.cat(f"{repo.id}/main/a.txt") == b"newest"
