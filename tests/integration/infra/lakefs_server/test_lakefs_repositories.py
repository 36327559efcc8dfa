"""Repositories: create, get, list with paging, delete, name rules and errors."""

from __future__ import annotations

import time

import lakefs
import lakefs_sdk
import pytest
from lakefs.exceptions import ConflictException, NotFoundException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _create_unvalidated(sdk_client, name: str, namespace: str | None = None):
    """Send a creation request the SDK's own model validation would refuse client-side."""
    creation = lakefs_sdk.RepositoryCreation.construct(
        name=name, storage_namespace=namespace or f"local://ns-{time.time_ns()}", default_branch="main"
    )
    return sdk_client.repositories_api.create_repository(creation)


def test_repository_create_get_list_delete(lakefs_client, lk):
    name = lk.new_name()
    before = int(time.time()) - 5
    repo = lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}")
    props = lakefs.Repository(name, client=lakefs_client).properties
    assert props.id == name
    assert props.default_branch == "main"
    assert props.storage_namespace == f"local://{name}"
    assert props.creation_date >= before
    assert name in [r.id for r in lakefs.repositories(client=lakefs_client, prefix=name)]
    assert [b.id for b in repo.branches()] == ["main"]
    assert repo.branch("main").get_commit().parents == []

    repo.delete()
    with pytest.raises(NotFoundException):
        _ = lakefs.Repository(name, client=lakefs_client).properties
    assert name not in [r.id for r in lakefs.repositories(client=lakefs_client, prefix=name)]
    with pytest.raises(NotFoundException):
        lakefs.Repository(name, client=lakefs_client).delete()


def test_repository_custom_default_branch(lakefs_client, lk):
    name = lk.new_name()
    repo = lakefs.Repository(name, client=lakefs_client).create(
        storage_namespace=f"local://{name}", default_branch="trunk"
    )
    assert repo.properties.default_branch == "trunk"
    assert [b.id for b in repo.branches()] == ["trunk"]


def test_repository_listing_pages_with_prefix_after_amount(lakefs_client, sdk_client, lk):
    prefix = lk.new_name("pg")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in reversed(names):
        lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}")

    first = sdk_client.repositories_api.list_repositories(prefix=prefix, amount=2)
    assert [r.id for r in first.results] == names[:2]
    assert first.pagination.has_more is True
    assert first.pagination.next_offset == names[1]
    assert first.pagination.results == 2

    second = sdk_client.repositories_api.list_repositories(
        prefix=prefix, after=first.pagination.next_offset, amount=2
    )
    assert [r.id for r in second.results] == names[2:4]
    assert second.pagination.has_more is True

    third = sdk_client.repositories_api.list_repositories(
        prefix=prefix, after=second.pagination.next_offset, amount=2
    )
    assert [r.id for r in third.results] == names[4:]
    assert third.pagination.has_more is False

    # The high-level generator follows the pages by itself.
    assert [r.id for r in lakefs.repositories(client=lakefs_client, prefix=prefix, amount=2)] == names
    assert [r.id for r in lakefs.repositories(client=lakefs_client, prefix=prefix, after=names[2])] == names[
        3:
    ]


@pytest.mark.parametrize(
    "name",
    ["ab", "Upper-case", "-leading-hyphen", "under_score", "dot.name", "a" * 64, "has space"],
)
def test_repository_invalid_name_is_400(sdk_client, lk, name):
    status, message, _ = lk.call_error(_create_unvalidated, sdk_client, name)
    assert status == 400
    assert "name" in message.lower()
    assert name not in [r.id for r in sdk_client.repositories_api.list_repositories(amount=1000).results]


def test_repository_name_boundaries_accepted(sdk_client, lk):
    token = lk.new_name("x")[2:]
    for name in (f"0{token[:2]}", ("b" + token)[:63].ljust(63, "b")):
        repo = _create_unvalidated(sdk_client, name)
        assert repo.id == name
        sdk_client.repositories_api.delete_repository(name)


def test_repository_duplicate_is_409(lakefs_client, lk):
    name = lk.new_name()
    lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}")
    with pytest.raises(ConflictException) as raised:
        lakefs.Repository(name, client=lakefs_client).create(storage_namespace=f"local://{name}-other")
    assert raised.value.status_code == 409
    assert name in raised.value.body.get("message", "")
    # exist_ok returns the existing one, unchanged.
    existing = lakefs.Repository(name, client=lakefs_client).create(
        storage_namespace=f"local://{name}-other", exist_ok=True
    )
    assert existing.properties.storage_namespace == f"local://{name}"


def test_repository_get_missing_is_404(sdk_client, lk):
    name = lk.new_name("missing")
    status, message, _ = lk.call_error(sdk_client.repositories_api.get_repository, name)
    assert status == 404
    assert name in message or "not found" in message.lower()
    status, _, _ = lk.call_error(sdk_client.branches_api.list_branches, name)
    assert status == 404
