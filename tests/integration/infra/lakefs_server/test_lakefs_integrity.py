"""Integrity under races and abuse: what a careless client or an attacker on the network tries.

Each test here failed on the server before issue 14: a committed object's bytes changed under a
second upload to the same presigned URL, a merge took a commit its pre-merge hook never saw, and
malformed input (huge ranges, deep JSON, out-of-range dates, bad namespaces, loose names) gave 500s.
The races run with controlled interleavings (a slow upload held open; a hook that commits while the
merge waits for it), repeated ``RACE_ITERATIONS`` times.
"""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import time
from urllib.parse import urlparse

import lakefs_sdk
import pytest
import urllib3

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RACE_ITERATIONS = 20


def _link(sdk_client, repo_id: str, path: str, address: str, data: bytes) -> None:
    staging = lakefs_sdk.StagingMetadata(
        staging=lakefs_sdk.StagingLocation(physical_address=address),
        checksum=hashlib.md5(data).hexdigest(),
        size_bytes=len(data),
    )
    sdk_client.staging_api.link_physical_address(repo_id, "main", path, staging)


def _answer(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


# -- 1. a committed object's bytes never change --------------------------------------------------------


def test_a_slow_second_upload_to_a_used_presigned_url_cannot_replace_committed_bytes(repo, sdk_client, lk):
    """The slow upload starts first, the fast one finishes, is linked and committed; then the slow one
    completes. It must be refused: the block is published no-clobber."""
    main = repo.branch("main")
    for iteration in range(RACE_ITERATIONS):
        path = f"race/{iteration}.bin"
        location = sdk_client.staging_api.get_physical_address(repo.id, "main", path, presign=True)
        url = urlparse(location.presigned_url)
        slow_body = b"S" * 4096
        fast_body = f"fast bytes {iteration}".encode()
        with socket.create_connection((url.hostname, url.port), timeout=30) as slow:
            head = (
                f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Length: {len(slow_body)}\r\n\r\n"
            )
            slow.sendall(head.encode() + slow_body[:100])  # the slow upload is under way

            assert urllib3.request("PUT", location.presigned_url, body=fast_body).status == 200
            _link(sdk_client, repo.id, path, location.physical_address, fast_body)
            committed = main.commit(message=f"fast {iteration}").get_commit()

            slow.sendall(slow_body[100:])  # now the slow one completes
            answer = _answer(slow)
        head_line, _, payload = answer.partition(b"\r\n\r\n")
        assert head_line.startswith(b"HTTP/1.1 403"), head_line
        assert "already written" in json.loads(payload)["message"]

        assert lk.read(main, path) == fast_body
        stats = main.object(path).stat()
        assert stats.checksum == hashlib.md5(fast_body).hexdigest()
        assert main.get_commit().id == committed.id


def test_s3_block_store_never_replaces_a_block(s3_endpoint, tmp_path):
    import boto3

    from infra.lakefs_server.blockstore import AlreadyWritten, S3BlockStore

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="noclobber")
    store = S3BlockStore(client, tmp_path / "tmp", "s3://noclobber/lakefs")
    address = "s3://noclobber/lakefs/repo/data/block-1"
    first, second = store.writer(address), store.writer(address)
    first.write(b"first")
    second.write(b"second, racing")
    assert second.finish()[0] == len(b"second, racing")
    with pytest.raises(AlreadyWritten):
        first.finish()
    assert b"".join(store.read(address, 0, 100)) == b"second, racing"


# -- 2. the merge gate judges exactly what is merged ---------------------------------------------------


def test_a_commit_made_while_the_pre_merge_hook_runs_is_not_merged(repo, main, lk, hook_receiver):
    from tests.integration.infra.lakefs_server.test_lakefs_actions import _action

    lk.commit_files(
        main,
        {
            "_lakefs_actions/gate.yaml": _action(
                "gate", {"pre-merge": ["main"]}, [("gate", f"{hook_receiver.url}/gate", "20s")]
            )
        },
    )
    for iteration in range(RACE_ITERATIONS // 2):
        feature = repo.branch(f"feature-{iteration}").create(main)
        judged = lk.commit_files(feature, {f"good-{iteration}.txt": b"checked"})

        def sneak_in(body, feature=feature, iteration=iteration) -> None:
            if (body or {}).get("event_type") == "pre-merge":
                lk.commit_files(feature, {f"unchecked-{iteration}.txt": b"never judged"})

        hook_receiver.on_call = sneak_in
        hook_receiver.clear()
        merge_id = feature.merge_into(main)
        hook_receiver.on_call = None

        (body,) = hook_receiver.bodies("pre-merge")
        assert body["source_ref"] == judged  # the commit, as lakeFS sends it
        merged = repo.commit(merge_id).get_commit()
        assert merged.parents[1] == judged
        assert lk.read(main, f"good-{iteration}.txt") == b"checked"
        assert not main.object(f"unchecked-{iteration}.txt").exists()
        assert feature.get_commit().id != judged  # the sneaked commit exists, just not on main


# -- 8. truncated or oversized input is refused ---------------------------------------------------------


def test_a_multipart_upload_without_its_closing_boundary_stores_nothing(
    repo, lakefs_server, http, auth_headers
):
    body = b'--xx\r\nContent-Disposition: form-data; name="content"; filename="a"\r\n\r\npartial bytes'
    response = http.request(
        "POST",
        f"{lakefs_server.endpoint}/repositories/{repo.id}/branches/main/objects?path=cut.bin",
        body=body,
        headers={**auth_headers, "Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert response.status == 400, response.data
    assert "truncated" in json.loads(response.data)["message"]
    assert not repo.branch("main").object("cut.bin").exists()


def test_json_bodies_have_a_size_limit(repo, lakefs_server, http, auth_headers):
    message = "x" * (9 * 1024 * 1024)
    response = http.request(
        "POST",
        f"{lakefs_server.endpoint}/repositories/{repo.id}/branches/main/commits",
        body=json.dumps({"message": message}).encode(),
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert response.status == 413, response.status
    assert "larger than" in json.loads(response.data)["message"]


def _raw_exchange(
    endpoint: str, chunks: list[bytes], *, pause_s: float = 0.0, timeout_s: float = 10
) -> bytes:
    """Send ``chunks`` on one raw connection (``pause_s`` apart) and return what the server answered."""
    address = urlparse(endpoint)
    with socket.create_connection((address.hostname, address.port), timeout=timeout_s) as connection:
        try:
            for chunk in chunks:
                connection.sendall(chunk)
                time.sleep(pause_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close as soon as it has answered
        answer = b""
        while True:
            try:
                data = connection.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize(
    "head",
    [
        [b"X-Junk: " + b"a" * (70 * 1024) + b"\r\n"],
        [b"X-Junk-%d: %s\r\n" % (number, b"b" * 40) for number in range(2_000)],
        [b"X-Cookie: c\r\n"] * 20_000,
    ],
    ids=["one-long-header", "many-headers", "repeated-headers"],
)
def test_an_oversized_request_head_is_431_before_authentication(lakefs_server, head):
    request = [b"GET /api/v1/repositories HTTP/1.1\r\nHost: lakefs\r\n", *head, b"\r\n"]
    answer = _raw_exchange(lakefs_server.endpoint.removesuffix("/api/v1"), [b"".join(request)])
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request head larger than" in answer
    # The server is fine afterwards.
    assert urllib3.request("GET", f"{lakefs_server.endpoint}/healthcheck").status == 204


def test_a_request_head_sent_too_slowly_is_408(tmp_path):
    from infra.lakefs_server.launcher import EmbeddedLakeFS

    with EmbeddedLakeFS(
        tmp_path / "lakefs", env={"LOCKGATE_EMBEDDED_LAKEFS_HEADER_TIMEOUT_SECONDS": "1"}
    ) as server:
        base = server.endpoint.removesuffix("/api/v1")
        # A slowloris: a byte of head every half second, never the end of it.
        started = time.monotonic()
        answer = _raw_exchange(base, [b"GET /api/v1/healthcheck HTTP/1.1\r\n"] + [b"X"] * 8, pause_s=0.5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert time.monotonic() - started < 8
        # Connecting and saying nothing is cut off the same way.
        assert _raw_exchange(base, [], timeout_s=10).startswith(b"HTTP/1.1 408 ")
        # A head sent in time is served, however long the connection then takes.
        answer = _raw_exchange(
            base, [b"GET /api/v1/healthcheck HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n"]
        )
        assert answer.startswith(b"HTTP/1.1 204 "), answer[:200]


# -- 9. malformed input is a 4xx with a message, never a 500 -------------------------------------------


def test_malformed_input_is_a_4xx_with_a_message(repo, lakefs_server, http, auth_headers, lk):
    main = repo.branch("main")
    lk.commit_files(main, {"a.txt": b"abc"})
    base = f"{lakefs_server.endpoint}/repositories/{repo.id}"
    json_headers = {**auth_headers, "Content-Type": "application/json"}
    cases = {
        "huge range": (
            "GET",
            f"{base}/refs/main/objects?path=a.txt",
            None,
            {**auth_headers, "Range": "bytes=" + "9" * 5000 + "-"},
        ),
        "huge ~N": ("GET", f"{base}/refs/main~{'9' * 5000}/objects/stat?path=a.txt", None, auth_headers),
        "deep JSON": ("POST", f"{base}/branches/main/commits", b"[" * 100_000 + b"]" * 100_000, json_headers),
        "deep JSON object": (
            "POST",
            f"{base}/branches/main/commits",
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            json_headers,
        ),
        "date out of range": (
            "POST",
            f"{base}/branches/main/commits",
            json.dumps({"message": "m", "date": 10**30}).encode(),
            json_headers,
        ),
        "negative date": (
            "POST",
            f"{base}/branches/main/commits",
            json.dumps({"message": "m", "date": -1}).encode(),
            json_headers,
        ),
        "not UTF-8": ("POST", f"{base}/branches/main/commits", b"\xff\xfe{}", json_headers),
    }
    for case, (method, url, body, headers) in cases.items():
        response = http.request(method, url, body=body, headers=headers)
        assert 400 <= response.status < 500, (case, response.status, response.data[:200])
        assert json.loads(response.data)["message"], case
    assert lk.read(main, "a.txt") == b"abc"


@pytest.mark.parametrize(
    ("namespace", "problem"),
    [
        ("local://", "path"),
        ("local://..", "path"),
        ("local://a/../b", "path"),
        ("local://a//b", "path"),
        ("local://with-nul\x00", "printable"),
        ("local://" + "n" * 2000, "longer than"),
        ("local://née", "printable"),
    ],
)
def test_namespaces_that_can_never_work_are_refused(lakefs_client, lk, namespace, problem):
    status, message, _ = lk.call_error(
        lakefs_client.sdk_client.repositories_api.create_repository,
        lakefs_sdk.RepositoryCreation(name=lk.new_name(), storage_namespace=namespace),
    )
    assert status == 400 and problem in message, message


def test_a_trailing_slash_cannot_alias_a_namespace(repo, lakefs_client, lk, sdk_client):
    namespace = sdk_client.repositories_api.get_repository(repo.id).storage_namespace
    status, message, _ = lk.call_error(
        sdk_client.repositories_api.create_repository,
        lakefs_sdk.RepositoryCreation(name=lk.new_name(), storage_namespace=namespace + "/"),
    )
    assert status == 400 and "can't share storage namespace" in message, message


# -- 10. names exactly as strict as lakeFS's ------------------------------------------------------------


@pytest.mark.parametrize("name", ["repo-name\n", "répo-name", "repo\u0660name"])
def test_repository_names_are_ascii_and_whole(lakefs_server, http, auth_headers, lk, name):
    # Raw HTTP: the generated client checks the pattern itself and would never send these.
    response = http.request(
        "POST",
        f"{lakefs_server.endpoint}/repositories",
        body=json.dumps({"name": name, "storage_namespace": f"local://{lk.new_name()}"}).encode(),
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert response.status == 400, response.data
    assert "invalid repository name" in json.loads(response.data)["message"]


@pytest.mark.parametrize("name", ["main\n", "brånch", "feature\u0661", "ß"])
def test_branch_names_are_ascii_and_whole(repo, sdk_client, lk, name):
    status, message, _ = lk.call_error(
        sdk_client.branches_api.create_branch,
        repo.id,
        lakefs_sdk.BranchCreation(name=name, source="main"),
    )
    assert status == 400 and "invalid branch name" in message, message


# -- 12. owner-only files whatever the umask --------------------------------------------------------------


def test_data_dir_database_and_blocks_are_owner_only_under_umask_000(tmp_path):
    import os

    from infra.lakefs_server.server import create_server_app
    from infra.settings import EmbeddedLakeFSSettings

    data_dir = tmp_path / "lakefs"
    old = os.umask(0)
    try:
        create_server_app(EmbeddedLakeFSSettings(data_dir=data_dir))
    finally:
        os.umask(old)
    for path in (data_dir, data_dir / "blocks", data_dir / "tmp"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (data_dir / "metadata.db", data_dir / "credentials.json", data_dir / "presign.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
