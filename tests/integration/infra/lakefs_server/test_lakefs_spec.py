"""The embedded server through ``lakefs-spec``, the fsspec filesystem people use on top of lakeFS."""

from __future__ import annotations

import hashlib

import pytest
from lakefs_spec import LakeFSFileSystem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module", params=[False, True], ids=["direct", "presigned"])
def fs(request, lakefs_server) -> LakeFSFileSystem:
    """A filesystem per transfer mode: through the API, and through presigned URLs (storage id "")."""
    key, secret = lakefs_server.credentials
    return LakeFSFileSystem(
        host=lakefs_server.endpoint,
        username=key,
        password=secret,
        pre_sign=request.param,
        skip_instance_cache=True,
    )


def test_touch_works_because_the_version_parses(fs, repo):
    fs.touch(f"{repo.id}/main/empty.txt")  # lakefs-spec compares the server version with 1.3.1
    assert fs.info(f"{repo.id}/main/empty.txt")["size"] == 0


def test_writes_read_back_with_their_checksum(fs, repo):
    path = f"{repo.id}/main/data/a.bin"
    payload = b"lakes and rivers" * 1000
    fs.pipe(path, payload)
    assert fs.cat(path) == payload
    assert fs.info(path)["checksum"] == hashlib.md5(payload).hexdigest()
    assert fs.checksum(path) == hashlib.md5(payload).hexdigest()


def test_rewriting_identical_bytes_is_no_change(fs, repo):
    main = repo.branch("main")
    fs.pipe(f"{repo.id}/main/a.txt", b"same")
    head = main.commit(message="first").get_commit().id

    fs.pipe(f"{repo.id}/main/a.txt", b"same")  # no precheck: the bytes go up again, a new address
    assert list(main.uncommitted()) == []

    with fs.transaction(repo.id, "main") as tx:
        fs.pipe(f"{repo.id}/{tx.branch.id}/a.txt", b"same")
        tx.commit(message="nothing new")  # lakefs-spec skips the commit: the diff is empty
    assert main.get_commit().id == head  # and nothing was merged

    with fs.transaction(repo.id, "main") as tx:
        fs.pipe(f"{repo.id}/{tx.branch.id}/a.txt", b"changed")
        tx.commit(message="a real change")
    assert main.get_commit().id != head and fs.cat(f"{repo.id}/main/a.txt") == b"changed"


def test_exclusive_create_refuses_an_existing_path(fs, repo):
    path = f"{repo.id}/main/once.txt"
    with fs.open(path, "xb") as handle:
        handle.write(b"first")
    with pytest.raises(FileExistsError), fs.open(path, "xb") as handle:
        handle.write(b"second")
    assert fs.cat(path) == b"first"


def test_removed_files_show_in_the_diff_with_size_zero(fs, repo):
    main = repo.branch("main")
    fs.pipe(f"{repo.id}/main/gone.txt", b"12345")
    main.commit(message="add")
    fs.rm(f"{repo.id}/main/gone.txt")
    assert not fs.exists(f"{repo.id}/main/gone.txt")
    assert [(c.path, c.type, c.size_bytes) for c in main.uncommitted()] == [("gone.txt", "removed", 0)]


def test_a_missing_path_is_file_not_found(fs, repo):
    with pytest.raises(FileNotFoundError):
        fs.cat(f"{repo.id}/main/never-written.txt")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{repo.id}/no-such-branch/a.txt")
