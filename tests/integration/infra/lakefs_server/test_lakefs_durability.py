"""Durability: restarts, a crash in the middle of an upload, and truncated uploads."""

from __future__ import annotations

import http.client
import os
import time
from urllib.parse import quote, urlsplit

import lakefs
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _new_repo(server, lk):
    name = lk.new_name()
    repo = lakefs.Repository(name, client=server.client()).create(storage_namespace=f"local://{name}")
    return repo, repo.branch("main")


def _open_upload(server, lk, repo_id: str, path: str, declared: int) -> http.client.HTTPConnection:
    """Start a raw-body upload declaring ``declared`` bytes; the caller sends (part of) the body."""
    endpoint = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    conn.putrequest(
        "POST", f"{endpoint.path}/repositories/{repo_id}/branches/main/objects?path={quote(path, safe='')}"
    )
    for key, value in {
        **lk.basic_auth(server.credentials),
        "Content-Type": "application/octet-stream",
        "Content-Length": str(declared),
    }.items():
        conn.putheader(key, value)
    conn.endheaders()
    return conn


def _state(repo, main, lk) -> dict:
    return {
        "branches": sorted(b.id for b in repo.branches()),
        "tags": sorted(t.id for t in repo.tags()),
        "main_head": main.get_commit().id,
        "objects": {o.path: lk.read(main, o.path) for o in main.objects()},
        "uncommitted": sorted((c.path, c.type) for c in main.uncommitted()),
    }


def test_restart_keeps_data_branches_and_staged_changes(own_server, lk):
    server = own_server()
    repo, main = _new_repo(server, lk)
    first = lk.commit_files(main, {"a.txt": b"a", "dir/b.bin": os.urandom(4096)})
    repo.tag("v1").create(first)
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"f.txt": b"feature"})
    lk.put(main, "staged.txt", b"staged")
    main.object("a.txt").delete()
    before = _state(repo, main, lk)
    feature_before = feature.get_commit().id

    server.stop()
    server.start()

    repo = lakefs.Repository(repo.id, client=server.client())
    main = repo.branch("main")
    assert _state(repo, main, lk) == before
    assert repo.branch("feature").get_commit().id == feature_before
    assert lk.read(repo.branch("feature"), "f.txt") == b"feature"
    assert lk.read(repo.tag("v1"), "a.txt") == b"a"
    # And it keeps working.
    main.commit(message="after restart")
    assert lk.read(main, "staged.txt") == b"staged"
    assert not main.object("a.txt").exists()


def test_sigkill_keeps_everything_acknowledged(own_server, lk):
    server = own_server()
    repo, main = _new_repo(server, lk)
    lk.commit_files(main, {"a.txt": b"a"})
    lk.put(main, "staged.txt", b"staged")
    before = _state(repo, main, lk)

    server.kill()
    server.start()

    repo = lakefs.Repository(repo.id, client=server.client())
    assert _state(repo, repo.branch("main"), lk) == before


def test_kill_during_upload_leaves_nothing_visible(own_server, lk):
    server = own_server()
    repo, main = _new_repo(server, lk)
    head = lk.commit_files(main, {"before.txt": b"before"})
    chunk = os.urandom(256 * 1024)
    declared = 64 * 1024 * 1024

    conn = _open_upload(server, lk, repo.id, "big.bin", declared)
    for _ in range(8):  # 2 MiB of 64 MiB, slowly
        conn.send(chunk)
        time.sleep(0.02)
    server.kill()
    with pytest.raises(OSError):
        for _ in range(256):
            conn.send(chunk)
        conn.getresponse()
    conn.close()

    server.start()
    repo = lakefs.Repository(repo.id, client=server.client())
    main = repo.branch("main")
    assert not main.object("big.bin").exists()
    assert list(main.uncommitted()) == []
    assert [o.path for o in main.objects()] == ["before.txt"]
    assert main.get_commit().id == head
    assert lk.read(main, "before.txt") == b"before"
    # A re-upload of the same path works and the branch commits normally.
    data = os.urandom(1024 * 1024)
    lk.put(main, "big.bin", data)
    assert lk.read(main, "big.bin") == data
    assert main.commit(message="re-upload").get_commit().parents == [head]


def test_truncated_upload_leaves_nothing_visible(lakefs_server, repo, main, lk):
    head = lk.commit_files(main, {"keep.txt": b"keep"})
    lk.put(main, "victim.bin", b"previous version")

    conn = _open_upload(lakefs_server, lk, repo.id, "victim.bin", 100_000)
    conn.send(os.urandom(1000))
    conn.sock.shutdown(2)
    conn.close()

    conn = _open_upload(lakefs_server, lk, repo.id, "new.bin", 100_000)
    conn.send(os.urandom(1000))
    conn.close()

    for _ in range(5):  # whatever the server is still doing with the dropped requests
        assert lk.read(main, "victim.bin") == b"previous version"
        assert not main.object("new.bin").exists()
        time.sleep(0.1)
    assert sorted((c.path, c.type) for c in main.uncommitted()) == [("victim.bin", "added")]
    assert main.get_commit().id == head
    lk.put(main, "new.bin", b"complete")
    assert lk.read(main, "new.bin") == b"complete"
