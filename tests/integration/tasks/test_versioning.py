"""tasks.versioning against the real embedded lakeFS-API server, through the official SDK over HTTP."""

from __future__ import annotations

import uuid

import lakefs
import numpy as np
import pandas as pd
import pytest

from infra import errors
from tasks.versioning import (
    PARQUET_CONTENT_TYPE,
    Change,
    commit_changes,
    create_branch,
    diff_refs,
    ensure_repository,
    list_branches,
    log_commits,
    merge_branch,
    read_dataframe,
    write_dataframe,
)

pytestmark = pytest.mark.integration

DATA_PATH = "datasets/readings.parquet"


def unique_name(prefix: str) -> str:
    """A lakeFS-valid repository name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_frame(seed: int, rows: int = 50) -> pd.DataFrame:
    """A small frame with the dtypes pipelines use (int, float, str, bool, datetime)."""
    generator = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "value": generator.normal(size=rows),
            "label": generator.choice(["a", "b", "c"], size=rows),
            "flag": generator.random(rows) > 0.5,
            "at": pd.date_range("2025-01-01", periods=rows, freq="h", unit="us"),
        }
    )


def write_and_commit(repo: lakefs.Repository, branch: str, frame: pd.DataFrame, client, message: str) -> str:
    write_dataframe(frame, repository=repo.id, branch=branch, path=DATA_PATH, client=client)
    return commit_changes(repo.id, branch, message=message, metadata={"step": message}, client=client)


def test_round_trip_write_commit_diff_merge_read(repo: lakefs.Repository, lakefs_client) -> None:
    frame = make_frame(seed=1)
    create_branch(repo.id, "ingest-1", source_ref="main", client=lakefs_client)
    info = write_dataframe(
        frame,
        repository=repo.id,
        branch="ingest-1",
        path=DATA_PATH,
        client=lakefs_client,
        metadata={"rows": "50"},
    )
    assert info.path == DATA_PATH
    assert info.content_type == PARQUET_CONTENT_TYPE
    assert info.metadata == {"rows": "50"}
    assert info.size_bytes and info.size_bytes > 0

    commit_id = commit_changes(
        repo.id,
        "ingest-1",
        message="Add readings",
        metadata={"run_id": "r-1", "rows": "50"},
        client=lakefs_client,
    )
    assert len(commit_id) == 64

    changes = diff_refs(repo.id, left_ref="main", right_ref="ingest-1", client=lakefs_client)
    assert changes == [Change(path=DATA_PATH, type="added", size=info.size_bytes)]
    assert (
        diff_refs(repo.id, left_ref="main", right_ref="ingest-1", prefix="models/", client=lakefs_client)
        == []
    )

    merge_id = merge_branch(
        repo.id,
        source_ref="ingest-1",
        destination_branch="main",
        message="Publish readings",
        metadata={"gate": "passed"},
        client=lakefs_client,
    )
    assert merge_id != commit_id
    assert diff_refs(repo.id, left_ref="main", right_ref="ingest-1", client=lakefs_client) == []

    pd.testing.assert_frame_equal(
        read_dataframe(repo.id, ref=merge_id, path=DATA_PATH, client=lakefs_client), frame
    )
    pd.testing.assert_frame_equal(
        read_dataframe(repo.id, ref="main", path=DATA_PATH, client=lakefs_client), frame
    )

    merge_commit, branch_commit = log_commits(repo.id, ref="main", client=lakefs_client, limit=2)
    assert (merge_commit.id, merge_commit.message, merge_commit.metadata) == (
        merge_id,
        "Publish readings",
        {"gate": "passed", ".lakefs.merge.strategy": "default"},  # lakeFS adds the strategy
    )
    assert set(merge_commit.parents) >= {commit_id}
    assert (branch_commit.id, branch_commit.metadata) == (commit_id, {"run_id": "r-1", "rows": "50"})
    heads = {head.name: head.commit_id for head in list_branches(repo.id, client=lakefs_client)}
    assert heads == {"main": merge_id, "ingest-1": commit_id}


def test_read_at_tag_commit_and_ancestor_expression(repo: lakefs.Repository, lakefs_client) -> None:
    first, second = make_frame(seed=1), make_frame(seed=2)
    first_commit = write_and_commit(repo, "main", first, lakefs_client, "first")
    second_commit = write_and_commit(repo, "main", second, lakefs_client, "second")
    lakefs.Tag(repo.id, "v1", client=lakefs_client).create(first_commit)

    def read(ref: str) -> pd.DataFrame:
        return read_dataframe(repo.id, ref=ref, path=DATA_PATH, client=lakefs_client)

    pd.testing.assert_frame_equal(read("v1"), first)
    pd.testing.assert_frame_equal(read(first_commit), first)
    pd.testing.assert_frame_equal(read("main~1"), first)
    pd.testing.assert_frame_equal(read(second_commit), second)
    pd.testing.assert_frame_equal(read("main"), second)
    changes = diff_refs(repo.id, left_ref="v1", right_ref="main", client=lakefs_client)
    assert [(change.path, change.type) for change in changes] == [(DATA_PATH, "changed")]


def test_merge_conflict_raises_and_leaves_destination_unchanged(
    repo: lakefs.Repository, lakefs_client
) -> None:
    for branch in ("left", "right"):
        create_branch(repo.id, branch, source_ref="main", client=lakefs_client)
    left, right = make_frame(seed=10), make_frame(seed=20)
    write_and_commit(repo, "left", left, lakefs_client, "left")
    write_and_commit(repo, "right", right, lakefs_client, "right")
    after_left = merge_branch(repo.id, source_ref="left", destination_branch="main", client=lakefs_client)

    with pytest.raises(errors.MergeConflictError) as caught:
        merge_branch(repo.id, source_ref="right", destination_branch="main", client=lakefs_client)
    message = str(caught.value)
    assert "'right'" in message and "'main'" in message and repo.id in message
    assert "strategy='source-wins'" in message
    assert lakefs.Branch(repo.id, "main", client=lakefs_client).head.id == after_left
    pd.testing.assert_frame_equal(
        read_dataframe(repo.id, ref="main", path=DATA_PATH, client=lakefs_client), left
    )

    # The documented way out: pick a side explicitly.
    merge_branch(
        repo.id, source_ref="right", destination_branch="main", strategy="source-wins", client=lakefs_client
    )
    pd.testing.assert_frame_equal(
        read_dataframe(repo.id, ref="main", path=DATA_PATH, client=lakefs_client), right
    )


@pytest.mark.parametrize("ref", ["no-such-branch", "main~5", "0" * 64])
def test_missing_ref_raises_ref_not_found(repo: lakefs.Repository, lakefs_client, ref: str) -> None:
    write_and_commit(repo, "main", make_frame(seed=1), lakefs_client, "first")
    with pytest.raises(errors.RefNotFoundError, match=f"ref '{ref}' not found in repository '{repo.id}'"):
        read_dataframe(repo.id, ref=ref, path=DATA_PATH, client=lakefs_client)
    with pytest.raises(errors.RefNotFoundError, match=f"'{ref}'"):
        diff_refs(repo.id, left_ref="main", right_ref=ref, client=lakefs_client)
    with pytest.raises(errors.RefNotFoundError, match=f"'{ref}'"):
        create_branch(repo.id, "from-missing", source_ref=ref, client=lakefs_client)


def test_missing_path_raises_object_not_found(repo: lakefs.Repository, lakefs_client) -> None:
    write_and_commit(repo, "main", make_frame(seed=1), lakefs_client, "first")
    with pytest.raises(errors.ObjectNotFoundError) as caught:
        read_dataframe(repo.id, ref="main", path="datasets/absent.parquet", client=lakefs_client)
    assert "'datasets/absent.parquet'" in str(caught.value)
    assert f"'{repo.id}'" in str(caught.value) and "'main'" in str(caught.value)
    # The object existed only later in history: reading before it was written is also "not found".
    with pytest.raises(errors.ObjectNotFoundError):
        read_dataframe(repo.id, ref="main~1", path=DATA_PATH, client=lakefs_client)


def test_missing_repository_is_named(lakefs_client) -> None:
    name = unique_name("absent")
    with pytest.raises(errors.RepositoryNotFoundError, match=f"repository '{name}' does not exist"):
        read_dataframe(name, ref="main", path=DATA_PATH, client=lakefs_client)
    with pytest.raises(errors.RepositoryNotFoundError):
        write_dataframe(
            make_frame(seed=1), repository=name, branch="main", path=DATA_PATH, client=lakefs_client
        )


def test_non_string_metadata_commits_nothing(repo: lakefs.Repository, lakefs_client) -> None:
    head_before = lakefs.Branch(repo.id, "main", client=lakefs_client).head.id
    write_dataframe(
        make_frame(seed=1), repository=repo.id, branch="main", path=DATA_PATH, client=lakefs_client
    )
    with pytest.raises(errors.InvalidMetadataError, match="key 'rows' has a int value 50"):
        commit_changes(repo.id, "main", message="bad", metadata={"rows": 50}, client=lakefs_client)
    branch = lakefs.Branch(repo.id, "main", client=lakefs_client)
    assert branch.head.id == head_before
    assert [change.path for change in branch.uncommitted()] == [DATA_PATH]  # the write is kept, uncommitted
    fixed = commit_changes(repo.id, "main", message="good", metadata={"rows": "50"}, client=lakefs_client)
    assert branch.head.id == fixed


def test_commit_without_changes_and_allow_empty(repo: lakefs.Repository, lakefs_client) -> None:
    with pytest.raises(errors.NoChangesError, match="nothing to commit on branch 'main'"):
        commit_changes(repo.id, "main", message="empty", metadata={}, client=lakefs_client)
    commit_id = commit_changes(
        repo.id,
        "main",
        message="checkpoint",
        metadata={"kind": "marker"},
        allow_empty=True,
        client=lakefs_client,
    )
    assert lakefs.Branch(repo.id, "main", client=lakefs_client).head.id == commit_id


def test_write_to_missing_branch_or_tag_is_refused(repo: lakefs.Repository, lakefs_client) -> None:
    first_commit = write_and_commit(repo, "main", make_frame(seed=1), lakefs_client, "first")
    lakefs.Tag(repo.id, "release", client=lakefs_client).create(first_commit)
    for not_a_branch in ("no-such-branch", "release"):
        with pytest.raises(errors.RefNotFoundError, match=f"branch '{not_a_branch}' does not exist"):
            write_dataframe(
                make_frame(seed=2),
                repository=repo.id,
                branch=not_a_branch,
                path=DATA_PATH,
                client=lakefs_client,
            )
    pd.testing.assert_frame_equal(
        read_dataframe(repo.id, ref="release", path=DATA_PATH, client=lakefs_client), make_frame(seed=1)
    )


def test_create_branch_existing_and_invalid_names(repo: lakefs.Repository, lakefs_client) -> None:
    create_branch(repo.id, "work", source_ref="main", client=lakefs_client)
    with pytest.raises(errors.BranchExistsError, match="branch 'work' already exists"):
        create_branch(repo.id, "work", source_ref="main", client=lakefs_client)
    assert create_branch(repo.id, "work", source_ref="main", exist_ok=True, client=lakefs_client).id == "work"
    with pytest.raises(errors.InvalidInputError, match="no '/'"):
        create_branch(repo.id, "ingest/run-1", source_ref="main", client=lakefs_client)


def test_ensure_repository_is_idempotent_and_checks_namespace(lakefs_client) -> None:
    name = unique_name("ensure")
    created = ensure_repository(name, storage_namespace=f"local://{name}", client=lakefs_client)
    assert created.properties.default_branch == "main"
    again = ensure_repository(name, storage_namespace=f"local://{name}", client=lakefs_client)
    assert again.properties.creation_date == created.properties.creation_date
    with pytest.raises(errors.RepositoryConflictError, match=f"storage namespace 'local://{name}'"):
        ensure_repository(name, storage_namespace=f"local://{name}-elsewhere", client=lakefs_client)
    with pytest.raises(errors.InvalidInputError, match="invalid repository name 'Bad_Name'"):
        ensure_repository("Bad_Name", storage_namespace="local://bad", client=lakefs_client)


def test_merge_without_changes_and_unknown_destination(repo: lakefs.Repository, lakefs_client) -> None:
    create_branch(repo.id, "idle", source_ref="main", client=lakefs_client)
    with pytest.raises(errors.NoChangesError, match="nothing to merge from 'idle' into 'main'"):
        merge_branch(repo.id, source_ref="idle", destination_branch="main", client=lakefs_client)
    with pytest.raises(errors.RefNotFoundError, match="branch 'nowhere' does not exist"):
        merge_branch(repo.id, source_ref="idle", destination_branch="nowhere", client=lakefs_client)


def test_non_parquet_object_raises_data_format_error(repo: lakefs.Repository, lakefs_client) -> None:
    lakefs.Branch(repo.id, "main", client=lakefs_client).object("notes.parquet").upload(
        b"not parquet", mode="wb"
    )
    with pytest.raises(errors.DataFormatError, match="notes.parquet is not a readable Parquet file"):
        read_dataframe(repo.id, ref="main", path="notes.parquet", client=lakefs_client)
