"""Where the embedded server used to differ from lakeFS: each case as lakeFS's clients see it.

Driven through the official ``lakefs`` wrapper and the generated ``lakefs_sdk`` client; raw HTTP only
for what no client sends (a body longer than its ``Content-Length``).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from urllib.parse import urlparse

import lakefs_sdk
import pytest
from lakefs.exceptions import BadRequestException, ConflictException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _uncommitted(branch) -> list[tuple[str, str]]:
    return [(change.path, change.type) for change in branch.uncommitted()]


# -- sameness is content, not address ----------------------------------------------------------------


def test_reuploading_identical_bytes_is_no_change(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"same bytes"})
    lk.put(main, "a.txt", b"same bytes")  # a new physical address, the same object
    assert _uncommitted(main) == []
    status, message, _ = lk.call_error(main.commit, message="nothing new")
    assert status == 400 and "no changes" in message

    lk.put(main, "a.txt", b"same bytes", metadata={"owner": "x"})  # metadata is part of the object
    assert _uncommitted(main) == [("a.txt", "changed")]
    lk.put(main, "a.txt", b"same bytes")  # and back: no change again
    assert _uncommitted(main) == []


def test_identity_includes_content_type(main, lk):
    lk.commit_files(main, {"a.csv": b"x,y\n"})
    lk.put(main, "a.csv", b"x,y\n", content_type="text/csv")
    assert _uncommitted(main) == [("a.csv", "changed")]


def test_deleting_and_restoring_the_same_bytes_is_no_change(main, lk):
    lk.commit_files(main, {"a.txt": b"kept"})
    main.object("a.txt").delete()
    assert _uncommitted(main) == [("a.txt", "removed")]
    lk.put(main, "a.txt", b"kept")
    assert _uncommitted(main) == []


def test_identical_changes_on_both_sides_are_no_conflict(repo, main, lk):
    lk.commit_files(main, {"base.txt": b"base"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"both.txt": b"the same", "base.txt": None, "f.txt": b"f"})
    lk.commit_files(main, {"both.txt": b"the same", "base.txt": None})

    merged = feature.merge_into(main)
    assert repo.commit(merged).get_commit().parents[1] == feature.get_commit().id
    assert {o.path for o in main.objects()} == {"both.txt", "f.txt"}
    assert lk.read(main, "both.txt") == b"the same"


# -- merge: "no changes", the destination already has the change, strategy metadata -----------------


def test_merge_is_no_changes_only_when_the_source_brings_nothing(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    status, message, _ = lk.call_error(feature.merge_into, main)
    assert status == 400 and "no changes" in message  # source == merge base

    picked = lk.commit_files(feature, {"b.txt": b"b"}, message="add b")
    main.cherry_pick(picked)
    # main already has feature's change through the cherry-pick; lakeFS still merges (a merge commit).
    before = main.get_commit().id
    merged = feature.merge_into(main)
    commit = repo.commit(merged).get_commit()
    assert commit.parents == [before, picked]
    assert commit.metadata[".lakefs.merge.strategy"] == "default"


@pytest.mark.parametrize("strategy", ["dest-wins", "source-wins"])
def test_merge_commits_carry_the_strategy(repo, main, lk, strategy):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"a.txt": b"feature"})
    lk.commit_files(main, {"a.txt": b"main"})
    merged = feature.merge_into(main, strategy=strategy)
    assert repo.commit(merged).get_commit().metadata[".lakefs.merge.strategy"] == strategy
    assert lk.read(main, "a.txt") == (b"main" if strategy == "dest-wins" else b"feature")


def test_cherry_pick_records_its_origin(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    origin = lk.commit_files(feature, {"b.txt": b"b"}, message="add b", metadata={"team": "data"})
    picked = main.cherry_pick(origin)
    assert picked.message == "add b"
    assert picked.metadata["cherry-pick-origin"] == origin
    # As lakeFS: the origin commit's committer (the picker is the new commit's committer).
    assert picked.metadata["cherry-pick-committer"] == repo.commit(origin).get_commit().committer
    assert picked.committer == "admin"
    assert picked.metadata["team"] == "data"


# -- hard reset never discards uncommitted data --------------------------------------------------------


def test_hard_reset_refuses_a_dirty_branch_and_keeps_its_changes(repo, main, sdk_client, lk):
    first = lk.commit_files(main, {"a.txt": b"1"})
    lk.commit_files(main, {"a.txt": b"2"})
    lk.put(main, "draft.txt", b"not committed yet")

    status, message, _ = lk.call_error(
        sdk_client.experimental_api.hard_reset_branch, repo.id, "main", ref=first
    )
    assert status == 400 and "dirty branch" in message
    assert lk.read(main, "draft.txt") == b"not committed yet"  # nothing was lost
    assert _uncommitted(main) == [("draft.txt", "added")]

    main.reset_changes()
    sdk_client.experimental_api.hard_reset_branch(repo.id, "main", ref=first)
    assert main.get_commit().id == first and lk.read(main, "a.txt") == b"1"


# -- paging, hidden branches, repositories, version, diff entries --------------------------------------


def test_log_with_limit_returns_at_most_amount_and_no_next_page(repo, main, sdk_client, lk):
    for index in range(4):
        lk.commit_files(main, {f"{index}.txt": b"x"})
    page = sdk_client.refs_api.log_commits(repo.id, "main", amount=2, limit=True)
    assert len(page.results) == 2 and page.pagination.has_more is False
    assert page.pagination.next_offset == ""
    unlimited = sdk_client.refs_api.log_commits(repo.id, "main", amount=2)
    assert len(unlimited.results) == 2 and unlimited.pagination.has_more is True


def test_hidden_branches_are_left_out_of_listings(repo, main, sdk_client):
    repo.branch("visible").create(main)
    repo.branch("hidden-one").create(main, hidden=True)
    assert {b.id for b in repo.branches()} == {"main", "visible"}
    shown = sdk_client.branches_api.list_branches(repo.id, show_hidden=True)
    assert {b.id for b in shown.results} == {"main", "visible", "hidden-one"}
    assert repo.branch("hidden-one").get_commit().id == main.get_commit().id  # still a branch


def test_repositories_carry_a_storage_id(lakefs_client, sdk_client, lk):
    import lakefs

    name = lk.new_name()
    created = lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}")
    assert created.properties.storage_id == ""
    assert sdk_client.repositories_api.get_repository(name).storage_id == ""
    listed = [r for r in sdk_client.repositories_api.list_repositories(prefix=name).results]
    assert [r.storage_id for r in listed] == [""]

    other = lk.new_name()
    status, message, _ = lk.call_error(
        lakefs.Repository(other, client=lakefs_client).create,
        storage_namespace=f"local://{other}",
        storage_id="elsewhere",
    )
    assert status == 400 and "elsewhere" in message
    assert lk.call_error(sdk_client.repositories_api.get_repository, other)[0] == 404


def test_sample_data_creates_the_quickstart_repository(lakefs_client, lk):
    import lakefs
    import pyarrow.parquet as pq

    name = lk.new_name()
    repo = lakefs.Repository(name, client=lakefs_client).create(
        storage_namespace=f"local://{name}", include_samples=True
    )
    main = repo.branch("main")
    paths = {o.path for o in main.objects()}
    assert {"README.md", "lakes.parquet"} <= paths
    assert main.uncommitted() is not None and _uncommitted(main) == []  # committed, not staged
    lakes = pq.read_table(main.object("lakes.parquet").reader(mode="rb", pre_sign=False))
    assert lakes.num_rows > 0 and "Country" in lakes.column_names
    assert b"lakeFS" in lk.read(main, "README.md")


def test_config_version_is_plain_semver_and_names_the_server(lakefs_client, sdk_client):
    from packaging.version import Version

    version = lakefs_client.version
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert Version(version) >= Version("1.0.0")
    config = sdk_client.config_api.get_config()
    assert config.version_config.version == version
    assert config.version_config.version_context == "lockgate-embedded"


def test_uncommitted_removals_carry_size_zero(main, lk):
    lk.commit_files(main, {"gone.txt": b"12345"})
    main.object("gone.txt").delete()
    lk.put(main, "new.txt", b"abc")
    sizes = {c.path: (c.type, c.size_bytes) for c in main.uncommitted()}
    assert sizes == {"gone.txt": ("removed", 0), "new.txt": ("added", 3)}


# -- lakeFS's own error wording -----------------------------------------------------------------------


def test_errors_use_lakefs_wording(repo, main, lk):
    lk.commit_files(main, {"a.txt": b"a"})
    feature = repo.branch("feature").create(main)
    lk.commit_files(feature, {"b.txt": b"b"})
    lk.put(main, "dirt.txt", b"uncommitted")

    status, message, error = lk.call_error(feature.merge_into, main)
    assert status == 400 and "dirty branch" in message
    assert isinstance(error, BadRequestException)

    repo.tag("v1").create(main)
    status, message, error = lk.call_error(repo.tag("v1").create, main)
    assert status == 409 and "tag already exists" in message
    assert isinstance(error, ConflictException)

    status, message, _ = lk.call_error(repo.branch("feature").create, main)
    assert status == 409 and "branch already exists" in message

    main.reset_changes()
    status, message, _ = lk.call_error(main.commit, message="empty")
    assert status == 400 and "no changes" in message


# -- presigned PUT: a body longer than its Content-Length --------------------------------------------


def test_presigned_put_longer_than_its_content_length_stores_nothing(repo, sdk_client, lk):
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "a.bin", presign=True)
    url = urlparse(location.presigned_url)
    body = b"0123456789" + b"EXTRA-BYTES"
    request = (
        f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: 10\r\n\r\n"
    ).encode() + body
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head.lower()
    assert "Content-Length" in json.loads(payload)["message"]

    staging = lakefs_sdk.StagingMetadata(
        staging=lakefs_sdk.StagingLocation(physical_address=location.physical_address),
        checksum=hashlib.md5(body).hexdigest(),
        size_bytes=len(body),
    )
    status, message, _ = lk.call_error(
        sdk_client.staging_api.link_physical_address, repo.id, "main", "a.bin", staging
    )
    assert status == 400 and "no data" in message  # nothing half-written to link


def test_presigned_put_cut_at_its_content_length_cannot_be_linked_as_the_longer_body(repo, sdk_client, lk):
    """The extra bytes arrive after the server answered: it stored exactly the declared length, and a
    link claiming the whole body's checksum is refused rather than publishing other bytes."""
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "b.bin", presign=True)
    url = urlparse(location.presigned_url)
    declared, rest = b"0123456789", b"EXTRA-BYTES"
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: 10\r\n\r\n"
        sock.sendall(head.encode() + declared)
        answer = sock.recv(65536)
        time.sleep(0.1)
        sock.sendall(rest)
    assert answer.startswith(b"HTTP/1.1 200")

    whole = declared + rest
    staging = lakefs_sdk.StagingMetadata(
        staging=lakefs_sdk.StagingLocation(physical_address=location.physical_address),
        checksum=hashlib.md5(whole).hexdigest(),
        size_bytes=len(declared),
    )
    status, message, _ = lk.call_error(
        sdk_client.staging_api.link_physical_address, repo.id, "main", "b.bin", staging
    )
    assert status == 400 and "checksum" in message
    staging.checksum = hashlib.md5(declared).hexdigest()
    sdk_client.staging_api.link_physical_address(repo.id, "main", "b.bin", staging)
    assert lk.read(repo.branch("main"), "b.bin") == declared


# -- one spelling per block, one owner per namespace --------------------------------------------------


def test_a_block_can_be_linked_only_under_its_own_spelling(repo, sdk_client, lk):
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "a.bin", presign=True)
    import urllib3

    assert urllib3.request("PUT", location.presigned_url, body=b"data").status == 200
    namespace, _, block = location.physical_address.rpartition("/data/")
    for alias in (f"{namespace}//data/{block}", f"{namespace}/./data/{block}", f"{namespace}/data//{block}"):
        staging = lakefs_sdk.StagingMetadata(
            staging=lakefs_sdk.StagingLocation(physical_address=alias),
            checksum=hashlib.md5(b"data").hexdigest(),
            size_bytes=4,
        )
        status, message, _ = lk.call_error(
            sdk_client.staging_api.link_physical_address, repo.id, "main", "a.bin", staging
        )
        assert status == 400 and "invalid physical address" in message, alias


def test_nested_storage_namespaces_are_refused(lakefs_client, lk):
    import lakefs

    outer = lk.new_name()
    lakefs.Repository(outer, client=lakefs_client).create(storage_namespace=f"local://{outer}")
    for namespace in (f"local://{outer}/inner", f"local://{outer}/"):
        status, message, _ = lk.call_error(
            lakefs.Repository(lk.new_name(), client=lakefs_client).create, storage_namespace=namespace
        )
        assert status == 400 and "can't share storage namespace" in message, namespace


def test_force_creating_over_a_dirty_branch_is_refused(repo, main, lk, sdk_client):
    lk.commit_files(main, {"a.txt": b"a"})
    work = repo.branch("work").create(main)
    lk.put(work, "draft.txt", b"uncommitted")
    status, message, _ = lk.call_error(
        sdk_client.branches_api.create_branch,
        repo.id,
        lakefs_sdk.BranchCreation(name="work", source="main", force=True),
    )
    assert status == 400 and "dirty branch" in message
    assert lk.read(work, "draft.txt") == b"uncommitted"
