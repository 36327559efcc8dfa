"""/config, /healthcheck and authentication of the embedded lakeFS-API server."""

from __future__ import annotations

import json
import stat

import lakefs
import pytest
from lakefs.exceptions import NotAuthorizedException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _protected_requests(repo_id: str) -> list[tuple[str, str, dict | None]]:
    """(method, path below /api/v1, JSON body) for every kind of protected endpoint."""
    r = f"/repositories/{repo_id}"
    return [
        ("GET", "/config", None),
        ("GET", "/repositories", None),
        ("POST", "/repositories", {"name": "unauth-repo", "storage_namespace": "local://unauth-repo"}),
        ("GET", r, None),
        ("DELETE", r, None),
        ("GET", f"{r}/metadata", None),
        ("GET", f"{r}/branches", None),
        ("POST", f"{r}/branches", {"name": "unauth", "source": "main"}),
        ("GET", f"{r}/branches/main", None),
        ("DELETE", f"{r}/branches/main", None),
        ("PUT", f"{r}/branches/main", {"type": "reset"}),
        ("GET", f"{r}/branches/main/diff", None),
        ("POST", f"{r}/branches/main/commits", {"message": "unauth"}),
        ("POST", f"{r}/branches/main/revert", {"ref": "main", "parent_number": 0}),
        ("POST", f"{r}/branches/main/cherry-pick", {"ref": "main"}),
        ("GET", f"{r}/commits/main", None),
        ("GET", f"{r}/refs/main/commits", None),
        ("GET", f"{r}/refs/main/diff/main", None),
        ("POST", f"{r}/refs/main/merge/main", {}),
        ("GET", f"{r}/tags", None),
        ("POST", f"{r}/tags", {"id": "unauth", "ref": "main"}),
        ("GET", f"{r}/tags/unauth", None),
        ("DELETE", f"{r}/tags/unauth", None),
        ("GET", f"{r}/refs/main/objects?path=a.txt", None),
        ("HEAD", f"{r}/refs/main/objects?path=a.txt", None),
        ("GET", f"{r}/refs/main/objects/stat?path=a.txt", None),
        ("GET", f"{r}/refs/main/objects/ls", None),
        ("POST", f"{r}/branches/main/objects?path=a.txt", None),
        ("DELETE", f"{r}/branches/main/objects?path=a.txt", None),
        ("POST", f"{r}/branches/main/objects/delete", {"paths": ["a.txt"]}),
        ("POST", f"{r}/branches/main/objects/copy?dest_path=b.txt", {"src_path": "a.txt"}),
        ("GET", f"{r}/branches/main/staging/backing?path=a.txt", None),
        (
            "PUT",
            f"{r}/branches/main/staging/backing?path=a.txt",
            {"staging": {"physical_address": "x"}, "checksum": "x", "size_bytes": 1},
        ),
    ]


def test_config_reports_storage_and_presign_support(sdk_client, lakefs_client):
    config = sdk_client.config_api.get_config()
    storage = config.storage_config
    assert storage is not None
    assert storage.blockstore_type == "local"
    assert storage.pre_sign_support is True
    assert storage.blockstore_namespace_example.startswith("local://")
    # The high-level SDK reads the same config to decide on presigned transfers.
    assert lakefs_client.storage_config.pre_sign_support is True
    assert lakefs_client.storage_config.blockstore_type == "local"


def test_healthcheck_needs_no_auth(lakefs_server, http):
    response = http.request("GET", f"{lakefs_server.endpoint}/healthcheck")
    assert response.status == 204
    assert response.data == b""


def test_every_protected_endpoint_answers_401_without_credentials(lakefs_server, http, repo):
    failures = []
    for method, path, body in _protected_requests(repo.id):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = http.request(
            method,
            lakefs_server.endpoint + path,
            body=json.dumps(body).encode() if body is not None else None,
            headers=headers,
        )
        if response.status != 401:
            failures.append(f"{method} {path}: {response.status} {response.data[:200]!r}")
        elif method != "HEAD":
            message = json.loads(response.data).get("message")
            if not message:
                failures.append(f"{method} {path}: 401 without a JSON message: {response.data[:200]!r}")
    assert not failures, "\n".join(failures)
    # Nothing was changed by the unauthenticated writes.
    assert repo.branch("main").get_commit().message == "Repository created"
    assert list(repo.tags()) == []


def test_every_protected_endpoint_answers_401_with_wrong_credentials(lakefs_server, http, repo, lk):
    access_key, _ = lakefs_server.credentials
    for credentials in ((access_key, "wrong-secret-value"), ("AKIAWRONGWRONGWRONG", "wrong-secret-value")):
        auth = lk.basic_auth(credentials)
        failures = []
        for method, path, body in _protected_requests(repo.id):
            headers = {**auth, "Content-Type": "application/json"} if body is not None else auth
            response = http.request(
                method,
                lakefs_server.endpoint + path,
                body=json.dumps(body).encode() if body is not None else None,
                headers=headers,
            )
            if response.status != 401:
                failures.append(
                    f"{credentials[0]} {method} {path}: {response.status} {response.data[:200]!r}"
                )
        assert not failures, "\n".join(failures)


def test_lakefs_sdk_with_wrong_credentials_raises_not_authorized(lakefs_server, repo, lk):
    access_key, _ = lakefs_server.credentials
    bad = lk.make_client(lakefs_server, (access_key, "definitely-not-the-secret"))
    with pytest.raises(NotAuthorizedException) as listing:
        list(lakefs.repositories(client=bad))
    assert listing.value.status_code == 401
    with pytest.raises(NotAuthorizedException):
        lakefs.Repository(repo.id, client=bad).branch("main").get_commit()
    with pytest.raises(NotAuthorizedException):
        lakefs.Repository(lk.new_name(), client=bad).create(storage_namespace="local://never-created")
    with pytest.raises(NotAuthorizedException):
        lk.put(lakefs.Repository(repo.id, client=bad).branch("main"), "x.txt", b"x")
    # Nothing written with the bad key.
    assert not repo.branch("main").object("x.txt").exists()


def test_credentials_given_in_env_are_enforced(own_server, lk):
    credentials = ("AKIAENVGIVENKEY00001", "env-given-secret-0123456789")
    server = own_server(
        env={
            "LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID": credentials[0],
            "LOCKGATE_EMBEDDED_LAKEFS_SECRET_ACCESS_KEY": credentials[1],
        }
    )
    good = lk.make_client(server, credentials)
    name = lk.new_name()
    lakefs.Repository(name, client=good).create(storage_namespace=f"local://{name}")
    assert [r.id for r in lakefs.repositories(client=good)] == [name]
    for wrong in (
        (credentials[0], "env-given-secret-WRONG"),
        ("AKIAOTHERKEY00000001", credentials[1]),
    ):
        with pytest.raises(NotAuthorizedException):
            list(lakefs.repositories(client=lk.make_client(server, wrong)))


def test_generated_credentials_file_is_private_and_works(lakefs_server, lk):
    path = lakefs_server.data_dir / "credentials.json"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["access_key_id"] and stored["secret_access_key"]
    client = lk.make_client(lakefs_server, (stored["access_key_id"], stored["secret_access_key"]))
    assert isinstance(list(lakefs.repositories(client=client)), list)
