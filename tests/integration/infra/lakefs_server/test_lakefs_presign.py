"""Presigned URLs: advertised, served without auth, refused when tampered with or expired."""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import lakefs
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _tamper(url: str) -> list[str]:
    """Variants of ``url`` with each query parameter altered in turn, and without the signature."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert query, f"presigned URL carries no query: {url}"
    variants = []
    for i, (key, value) in enumerate(query):
        if value.isdigit():
            altered = str(int(value) + 3600)  # e.g. a later expiry
        elif value in ("GET", "PUT"):
            altered = "PUT" if value == "GET" else "GET"
        elif value:
            altered = value[:-1] + ("0" if value[-1] != "0" else "1")
        else:
            altered = "x"
        changed = [*query[:i], (key, altered), *query[i + 1 :]]
        variants.append(urlunsplit(parts._replace(query=urlencode(changed))))
    # The longest query value is the signature, whatever its parameter name.
    longest = max(range(len(query)), key=lambda i: len(query[i][1]))
    stripped = [(k, v) for i, (k, v) in enumerate(query) if i != longest]
    variants.append(urlunsplit(parts._replace(query=urlencode(stripped))))
    return variants


def test_presign_support_advertised(sdk_client):
    storage = sdk_client.config_api.get_config().storage_config
    assert storage.pre_sign_support is True


def test_presigned_stat_url_downloads_without_auth(repo, main, http, lk):
    data = os.urandom(1500)
    lk.put(main, "signed.bin", data)
    stats = main.object("signed.bin").stat(pre_sign=True)
    assert stats.physical_address.startswith(("http://", "https://"))
    assert stats.physical_address_expiry is None or stats.physical_address_expiry > time.time()
    response = http.request("GET", stats.physical_address)  # no Authorization header
    assert response.status == 200
    assert response.data == data
    # Ranged read through the presigned URL.
    part = http.request("GET", stats.physical_address, headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert part.data == data[10:20]
    # The high-level reader's presigned path returns the same bytes.
    with main.object("signed.bin").reader(pre_sign=True) as reader:
        assert reader.read() == data


def test_presigned_url_of_committed_object_at_commit(repo, main, http, lk):
    commit = lk.commit_files(main, {"c.txt": b"committed"})
    lk.put(main, "c.txt", b"staged later")
    stats = repo.commit(commit).object("c.txt").stat(pre_sign=True)
    assert http.request("GET", stats.physical_address).data == b"committed"


def test_tampered_presigned_url_is_403(repo, main, http, lk):
    lk.put(main, "t.bin", b"secret bytes")
    url = main.object("t.bin").stat(pre_sign=True).physical_address
    assert http.request("GET", url).status == 200
    for tampered in _tamper(url):
        response = http.request("GET", tampered)
        assert response.status == 403, (tampered, response.status, response.data[:200])
        assert b"secret bytes" not in response.data


def test_tampered_presigned_put_is_403(repo, main, sdk_client, http, lk):
    location = sdk_client.staging_api.get_physical_address(repo.id, "main", "upload.bin", presign=True)
    for tampered in _tamper(location.presigned_url):
        response = http.request("PUT", tampered, body=b"evil", headers={"Content-Length": "4"})
        assert response.status == 403, (tampered, response.status, response.data[:200])
    assert not main.object("upload.bin").exists()


def test_expired_presigned_url_is_403(own_server, lk):
    server = own_server(env={"LOCKGATE_EMBEDDED_LAKEFS_PRESIGN_TTL_SECONDS": "1"})
    client = server.client()
    name = lk.new_name()
    repo = lakefs.Repository(name, client=client).create(storage_namespace=f"local://{name}")
    main = repo.branch("main")
    lk.put(main, "e.bin", b"expiring")
    stats = main.object("e.bin").stat(pre_sign=True)
    location = client.sdk_client.staging_api.get_physical_address(name, "main", "late.bin", presign=True)
    import urllib3

    http = urllib3.PoolManager(retries=False)
    time.sleep(2.1)
    response = http.request("GET", stats.physical_address)
    assert response.status == 403
    assert b"expiring" not in response.data
    put = http.request("PUT", location.presigned_url, body=b"late", headers={"Content-Length": "4"})
    assert put.status == 403
    # A fresh URL works again.
    assert http.request("GET", main.object("e.bin").stat(pre_sign=True).physical_address).data == b"expiring"
