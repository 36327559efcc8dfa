"""Objects: upload (raw, presigned, multipart), conditional create, metadata, download, ranges,
stat, HEAD, listing, delete, bulk delete and copy."""

from __future__ import annotations

import hashlib
import json
import os
import time
from urllib.parse import quote

import lakefs_sdk
import pytest
import urllib3
from lakefs.exceptions import NotFoundException, ObjectExistsException, ObjectNotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _objects_url(server, repo_id: str, branch: str, path: str) -> str:
    return f"{server.endpoint}/repositories/{repo_id}/branches/{branch}/objects?path={quote(path, safe='')}"


def test_upload_raw_body_via_sdk(repo, main, lk):
    data = os.urandom(3000)
    main.object("raw/data.bin").upload(data, pre_sign=False)
    stats = main.object("raw/data.bin").stat()
    assert stats.size_bytes == len(data)
    assert stats.path == "raw/data.bin"
    assert stats.checksum == hashlib.md5(data).hexdigest()
    assert lk.read(main, "raw/data.bin") == data
    assert [(c.path, c.type) for c in main.uncommitted()] == [("raw/data.bin", "added")]


def test_upload_presigned_via_sdk(repo, main, sdk_client, lk):
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "probe.bin", presign=True)
    assert location.presigned_url and location.presigned_url.startswith("http")
    assert location.physical_address

    data = os.urandom(2048)
    main.object("signed/data.bin").upload(data, pre_sign=True, metadata={"origin": "presigned"})
    stats = main.object("signed/data.bin").stat()
    assert stats.size_bytes == len(data)
    assert stats.metadata == {"origin": "presigned"}
    assert lk.read(main, "signed/data.bin") == data
    # The probe address was never linked, so it is not an object.
    assert not main.object("probe.bin").exists()


def test_upload_multipart_form_via_generated_client(repo, main, sdk_client, tmp_path, lk):
    data = b"multipart body \x00\x01\x02" * 100
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    stats = sdk_client.objects_api.upload_object(repo.id, "main", "form/upload.bin", content=str(source))
    assert stats.path == "form/upload.bin"
    assert stats.size_bytes == len(data)
    assert lk.read(main, "form/upload.bin") == data


def test_raw_body_and_multipart_forms_store_exact_bytes(lakefs_server, repo, main, http, auth_headers, lk):
    data = b"--not-a-boundary--\r\n" + os.urandom(500)
    raw = http.request(
        "POST",
        _objects_url(lakefs_server, repo.id, "main", "forms/raw.bin"),
        body=data,
        headers={**auth_headers, "Content-Type": "application/octet-stream"},
    )
    assert raw.status == 201, raw.data
    assert json.loads(raw.data)["size_bytes"] == len(data)

    body, content_type = urllib3.encode_multipart_formdata(
        {"content": ("f.bin", data, "application/octet-stream")}
    )
    form = http.request(
        "POST",
        _objects_url(lakefs_server, repo.id, "main", "forms/multipart.bin"),
        body=body,
        headers={**auth_headers, "Content-Type": content_type},
    )
    assert form.status == 201, form.data
    assert json.loads(form.data)["size_bytes"] == len(data)

    assert lk.read(main, "forms/raw.bin") == data
    assert lk.read(main, "forms/multipart.bin") == data

    # If-None-Match: * on the raw-body form refuses an existing path.
    again = http.request(
        "POST",
        _objects_url(lakefs_server, repo.id, "main", "forms/raw.bin"),
        body=b"replacement",
        headers={**auth_headers, "Content-Type": "application/octet-stream", "If-None-Match": "*"},
    )
    assert again.status == 412, again.data
    assert json.loads(again.data)["message"]
    assert lk.read(main, "forms/raw.bin") == data


def test_if_none_match_star_refuses_existing_object(repo, main, sdk_client, tmp_path, lk):
    lk.put(main, "exists.txt", b"original")
    source = tmp_path / "new.txt"
    source.write_bytes(b"replacement")

    status, message, _ = lk.call_error(
        sdk_client.objects_api.upload_object,
        repo.id,
        "main",
        "exists.txt",
        if_none_match="*",
        content=str(source),
    )
    assert status == 412
    assert message
    assert lk.read(main, "exists.txt") == b"original"

    created = sdk_client.objects_api.upload_object(
        repo.id, "main", "fresh.txt", if_none_match="*", content=str(source)
    )
    assert created.size_bytes == len(b"replacement")

    # The high-level SDK's exclusive mode, both transfer paths.
    for pre_sign in (False, True):
        with pytest.raises(ObjectExistsException):
            main.object("exists.txt").upload(b"again", mode="x", pre_sign=pre_sign)
    assert lk.read(main, "exists.txt") == b"original"
    main.object("brand-new.txt").upload(b"x", mode="x", pre_sign=False)
    assert lk.read(main, "brand-new.txt") == b"x"


def test_if_none_match_on_presigned_link_of_existing_path(repo, main, sdk_client, http, lk):
    lk.commit_files(main, {"committed.txt": b"c"})
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "committed.txt", presign=True)
    put = http.request("PUT", location.presigned_url, body=b"other", headers={"Content-Length": "5"})
    assert put.status in (200, 201, 204), put.data
    metadata = lakefs_sdk.StagingMetadata(
        staging=location, checksum=hashlib.md5(b"other").hexdigest(), size_bytes=5
    )
    status, message, _ = lk.call_error(
        sdk_client.staging_api.link_physical_address,
        repo.id,
        "main",
        "committed.txt",
        staging_metadata=metadata,
        if_none_match="*",
    )
    assert status == 412
    assert message
    assert lk.read(main, "committed.txt") == b"c"
    assert list(main.uncommitted()) == []


def test_user_metadata_round_trips(repo, main, lk):
    metadata = {"owner": "alice", "purpose": "training-set"}
    lk.put(main, "meta.txt", b"m", metadata=metadata)
    assert main.object("meta.txt").stat().metadata == metadata
    commit = main.commit(message="with metadata")
    assert repo.commit(commit.id).object("meta.txt").stat().metadata == metadata
    listed = [o for o in main.objects() if o.path == "meta.txt"]
    assert listed and listed[0].size_bytes == 1


def test_content_type_round_trips(repo, main, sdk_client, lk):
    lk.put(main, "doc.json", b'{"a": 1}', content_type="application/json")
    lk.put(main, "plain.bin", b"\x00")
    assert main.object("doc.json").stat().content_type == "application/json"
    assert main.object("plain.bin").stat().content_type == "application/octet-stream"
    response = sdk_client.objects_api.get_object_with_http_info(repo.id, "main", "doc.json")
    assert response.headers["Content-Type"].startswith("application/json")


def test_download_whole_and_ranges(repo, main, sdk_client, lk):
    data = os.urandom(1000)
    lk.put(main, "ranged.bin", data)

    whole = sdk_client.objects_api.get_object_with_http_info(repo.id, "main", "ranged.bin")
    assert whole.status_code == 200
    assert bytes(whole.data) == data

    part = sdk_client.objects_api.get_object_with_http_info(
        repo.id, "main", "ranged.bin", range="bytes=100-149"
    )
    assert part.status_code == 206
    assert bytes(part.data) == data[100:150]
    assert part.headers["Content-Range"] == "bytes 100-149/1000"
    assert int(part.headers["Content-Length"]) == 50

    tail = sdk_client.objects_api.get_object_with_http_info(repo.id, "main", "ranged.bin", range="bytes=990-")
    assert tail.status_code == 206
    assert bytes(tail.data) == data[990:]
    assert tail.headers["Content-Range"] == "bytes 990-999/1000"

    suffix = sdk_client.objects_api.get_object_with_http_info(
        repo.id, "main", "ranged.bin", range="bytes=-10"
    )
    assert suffix.status_code == 206
    assert bytes(suffix.data) == data[-10:]
    assert suffix.headers["Content-Range"] == "bytes 990-999/1000"

    clipped = sdk_client.objects_api.get_object_with_http_info(
        repo.id, "main", "ranged.bin", range="bytes=995-5000"
    )
    assert bytes(clipped.data) == data[995:]
    assert clipped.headers["Content-Range"] == "bytes 995-999/1000"

    with main.object("ranged.bin").reader(pre_sign=False) as reader:
        reader.seek(500)
        assert reader.read(10) == data[500:510]
        assert reader.read() == data[510:]


def test_range_past_the_end_is_416(lakefs_server, repo, main, http, auth_headers, lk):
    data = os.urandom(1000)
    lk.put(main, "short.bin", data)
    url = f"{lakefs_server.endpoint}/repositories/{repo.id}/refs/main/objects?path=short.bin"
    response = http.request("GET", url, headers={**auth_headers, "Range": "bytes=2000-2100"})
    assert response.status == 416
    assert response.headers.get("Content-Range") == "bytes */1000"
    assert "range" in json.loads(response.data)["message"].lower()
    # The high-level reader treats it as end of file.
    with main.object("short.bin").reader(pre_sign=False) as reader:
        reader.seek(5000)
        assert reader.read() == b""
    assert lk.read(main, "short.bin") == data


def test_stat_and_head(repo, main, lk):
    before = int(time.time()) - 5
    lk.put(main, "s.txt", b"12345")
    stats = main.object("s.txt").stat()
    assert stats.path == "s.txt"
    assert stats.size_bytes == 5
    assert stats.mtime >= before
    assert stats.checksum == hashlib.md5(b"12345").hexdigest()
    assert stats.physical_address.startswith("local://")

    assert main.object("s.txt").exists() is True
    assert main.object("missing.txt").exists() is False
    with pytest.raises(ObjectNotFoundException):
        main.object("missing.txt").stat()
    with pytest.raises(ObjectNotFoundException):
        lk.read(main, "missing.txt")


def test_list_prefix_delimiter_after_amount(repo, main, sdk_client, lk):
    for path in ("a/1", "a/2", "a/b/3", "c", "d/4"):
        lk.put(main, path, path.encode())

    top = [(o.path, type(o).__name__) for o in main.objects(delimiter="/")]
    assert top == [("a/", "CommonPrefix"), ("c", "ObjectInfo"), ("d/", "CommonPrefix")]
    raw_top = sdk_client.objects_api.list_objects(repo.id, "main", delimiter="/")
    assert [(o.path, o.path_type) for o in raw_top.results] == [
        ("a/", "common_prefix"),
        ("c", "object"),
        ("d/", "common_prefix"),
    ]

    assert [o.path for o in main.objects(prefix="a/", delimiter="/")] == ["a/1", "a/2", "a/b/"]
    assert [o.path for o in main.objects(prefix="a/")] == ["a/1", "a/2", "a/b/3"]
    assert [o.path for o in main.objects(after="a/2")] == ["a/b/3", "c", "d/4"]

    page = sdk_client.objects_api.list_objects(repo.id, "main", amount=2)
    assert [o.path for o in page.results] == ["a/1", "a/2"]
    assert page.pagination.has_more is True
    assert page.pagination.next_offset == "a/2"
    rest = sdk_client.objects_api.list_objects(repo.id, "main", amount=2, after=page.pagination.next_offset)
    assert [o.path for o in rest.results] == ["a/b/3", "c"]
    last = sdk_client.objects_api.list_objects(repo.id, "main", amount=2, after=rest.pagination.next_offset)
    assert [o.path for o in last.results] == ["d/4"]
    assert last.pagination.has_more is False
    assert [o.path for o in main.objects(amount=2)] == ["a/1", "a/2", "a/b/3", "c", "d/4"]


def test_delete_object(repo, main, lk):
    commit = lk.commit_files(main, {"gone.txt": b"g", "stays.txt": b"s"})
    main.object("gone.txt").delete()
    assert not main.object("gone.txt").exists()
    assert [(c.path, c.type) for c in main.uncommitted()] == [("gone.txt", "removed")]
    assert repo.commit(commit).object("gone.txt").exists()
    main.commit(message="delete")
    assert [o.path for o in main.objects()] == ["stays.txt"]
    with pytest.raises(ObjectNotFoundException):
        main.object("never-was.txt").delete()


def test_bulk_delete_objects(repo, main, lk):
    for path in ("x/1", "x/2", "x/3", "y"):
        lk.put(main, path, b"d")
    main.delete_objects(["x/1", "x/3", main.object("y")])
    assert [o.path for o in main.objects()] == ["x/2"]


def test_copy_within_branch_and_from_other_ref(repo, main, lk):
    lk.put(main, "src.txt", b"source", content_type="text/plain", metadata={"k": "v"})
    copied = main.object("src.txt").copy("main", "copy.txt")
    assert lk.read(main, "copy.txt") == b"source"
    assert copied.stat().size_bytes == 6
    assert copied.stat().content_type == "text/plain"

    commit = main.commit(message="c1").get_commit().id
    repo.tag("t1").create(commit)
    lk.put(main, "src.txt", b"changed later")
    repo.tag("t1").object("src.txt").copy("main", "from-tag.txt")
    repo.commit(commit).object("src.txt").copy("main", "from-commit.txt")
    feature = repo.branch("feature").create(commit)
    lk.put(feature, "only-feature.txt", b"feature bytes")
    feature.object("only-feature.txt").copy("main", "from-feature.txt")

    assert lk.read(main, "from-tag.txt") == b"source"
    assert lk.read(main, "from-commit.txt") == b"source"
    assert lk.read(main, "from-feature.txt") == b"feature bytes"
    with pytest.raises(NotFoundException):
        main.object("nope.txt").copy("main", "never.txt")
    assert not main.object("never.txt").exists()


def test_paths_with_special_characters(repo, main, lk):
    paths = [
        "dir with space/file.txt",
        "ünïcödé/ファイル.txt",
        "odd/#hash?q=1&x=%20.txt",
        "plus+sign.txt",
        "a//double",
    ]
    for i, path in enumerate(paths):
        lk.put(main, path, f"content {i}")
    main.commit(message="special paths")
    for i, path in enumerate(paths):
        assert lk.read(main, path) == f"content {i}".encode(), path
        assert main.object(path).stat().path == path
    assert sorted(o.path for o in main.objects()) == sorted(paths)
    assert [o.path for o in main.objects(prefix="odd/")] == ["odd/#hash?q=1&x=%20.txt"]


def test_empty_object(repo, main, lakefs_server, http, auth_headers, lk):
    main.object("empty-raw").upload(b"", pre_sign=False)
    main.object("empty-signed").upload(b"", pre_sign=True)
    for path in ("empty-raw", "empty-signed"):
        assert main.object(path).stat().size_bytes == 0
        assert lk.read(main, path) == b""
    response = http.request(
        "GET",
        f"{lakefs_server.endpoint}/repositories/{repo.id}/refs/main/objects?path=empty-raw",
        headers={**auth_headers, "Range": "bytes=0-10"},
    )
    assert response.status == 416
    assert response.headers.get("Content-Range") == "bytes */0"


def test_large_object_streams_intact(repo, main, lk):
    data = os.urandom(9 * 1024 * 1024 + 17)
    lk.put(main, "large.bin", data)
    stats = main.object("large.bin").stat()
    assert stats.size_bytes == len(data)
    assert stats.checksum == hashlib.md5(data).hexdigest()
    assert lk.read(main, "large.bin") == data


def test_bulk_delete_ignores_missing_paths(repo, main, lk):
    lk.put(main, "present", b"p")
    result = main.delete_objects(["present", "never-existed"])
    assert not main.object("present").exists()
    assert [e for e in (result.errors if result else []) if e.path == "present"] == []


def test_upload_to_non_branch_ref_is_refused(repo, main, sdk_client, tmp_path, lk):
    commit = lk.commit_files(main, {"a.txt": b"a"})
    repo.tag("v1").create(commit)
    source = tmp_path / "x.bin"
    source.write_bytes(b"x")
    for ref in ("v1", commit, "no-such-branch"):
        status, message, _ = lk.call_error(
            sdk_client.objects_api.upload_object, repo.id, ref, "x.bin", content=str(source)
        )
        assert status in (400, 404), (ref, status, message)
        assert message
    assert not main.object("x.bin").exists()
