"""Input checks of tasks.versioning that run before any request: bad input fails fast, nothing is sent."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pandas as pd
import pytest

from infra import errors
from tasks.versioning import (
    Change,
    commit_changes,
    default_storage_namespace,
    merge_branch,
    read_dataframe,
    validate_metadata,
    write_dataframe,
)


class UnreachableClient:
    """A lakeFS client stand-in that fails the test if any request is attempted."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the lakeFS client was used ({name}) although the input was invalid")


CLIENT = UnreachableClient()


def test_validate_metadata_returns_a_plain_copy() -> None:
    given = {"run_id": "r1", "rows": "300"}
    checked = validate_metadata(given)
    assert checked == {"run_id": "r1", "rows": "300"}
    assert checked is not given
    assert validate_metadata(None) == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"rows": 300}, r"key 'rows' has a int value 300.*pass 'rows': '300'"),
        ({"ratio": 0.5}, r"key 'ratio' has a float value"),
        ({"tags": ["a"]}, r"key 'tags' has a list value"),
        ({"missing": None}, r"key 'missing' has a NoneType value"),
        ({1: "one"}, r"key 1 is not a non-empty string"),
        ({"": "empty"}, r"key '' is not a non-empty string"),
        ({"note": "two\nlines"}, r"key 'note' has a line break"),
    ],
)
def test_validate_metadata_names_the_bad_key(metadata: dict, message: str) -> None:
    with pytest.raises(errors.InvalidMetadataError, match=message):
        validate_metadata(metadata)


def test_validate_metadata_refuses_non_mappings() -> None:
    with pytest.raises(errors.InvalidMetadataError, match="must be a mapping of str to str, got list"):
        validate_metadata([("a", "b")])  # type: ignore[arg-type]


def test_object_metadata_keys_must_be_header_tokens() -> None:
    assert validate_metadata({"row-count_v2": "3"}, what="object metadata") == {"row-count_v2": "3"}
    with pytest.raises(errors.InvalidMetadataError, match="object metadata key 'row count'"):
        validate_metadata({"row count": "3"}, what="object metadata")
    # Commit metadata travels in a JSON body, so the same key is fine there.
    assert validate_metadata({"row count": "3"}) == {"row count": "3"}


def test_commit_with_non_string_metadata_fails_before_any_request() -> None:
    with pytest.raises(errors.InvalidMetadataError, match="commit metadata key 'rows'"):
        commit_changes("repo", "main", message="m", metadata={"rows": 3}, client=CLIENT)


def test_commit_with_empty_message_fails_before_any_request() -> None:
    with pytest.raises(
        errors.InvalidInputError, match="commit message for branch 'main' must be a non-empty"
    ):
        commit_changes("repo", "main", message="  ", metadata={}, client=CLIENT)


def test_merge_with_unknown_strategy_fails_before_any_request() -> None:
    with pytest.raises(errors.InvalidInputError, match="unknown merge strategy 'theirs'.*'source-wins'"):
        merge_branch("repo", source_ref="b", destination_branch="main", strategy="theirs", client=CLIENT)


def test_merge_with_non_string_metadata_fails_before_any_request() -> None:
    with pytest.raises(errors.InvalidMetadataError, match="merge metadata key 'attempt'"):
        merge_branch(
            "repo", source_ref="b", destination_branch="main", metadata={"attempt": 2}, client=CLIENT
        )


def test_write_refuses_non_dataframes() -> None:
    with pytest.raises(errors.InvalidInputError, match="needs a pandas DataFrame, got dict"):
        write_dataframe({"a": [1]}, repository="r", branch="b", path="x.parquet", client=CLIENT)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "   ", "/abs.parquet", "dir/"])
def test_write_and_read_refuse_bad_paths(path: str) -> None:
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(errors.InvalidInputError, match="object path"):
        write_dataframe(frame, repository="r", branch="b", path=path, client=CLIENT)
    with pytest.raises(errors.InvalidInputError, match="object path"):
        read_dataframe("r", ref="main", path=path, client=CLIENT)


def test_write_refuses_a_dataframe_parquet_cannot_encode() -> None:
    mixed = pd.DataFrame({"value": [1, "one", 2.5]}, dtype=object)
    with pytest.raises(errors.InvalidInputError, match=r"lakefs://r/b/x.parquet as Parquet.*value"):
        write_dataframe(mixed, repository="r", branch="b", path="x.parquet", client=CLIENT)


def test_write_refuses_bad_object_metadata_before_any_request() -> None:
    with pytest.raises(errors.InvalidMetadataError, match="object metadata key 'n'"):
        write_dataframe(
            pd.DataFrame({"a": [1]}),
            repository="r",
            branch="b",
            path="x.parquet",
            metadata={"n": 1},
            client=CLIENT,
        )


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("local://", "local://demo"),
        ("s3://bucket/lakefs", "s3://bucket/lakefs/demo"),
        ("s3://bucket/lakefs/", "s3://bucket/lakefs/demo"),
        (None, None),
        ("", None),
    ],
)
def test_default_storage_namespace_joins_prefix_and_name(prefix: str | None, expected: str | None) -> None:
    config = SimpleNamespace(storage_config=SimpleNamespace(default_namespace_prefix=prefix))
    config_api = SimpleNamespace(get_config=lambda: config)
    client = SimpleNamespace(sdk_client=SimpleNamespace(config_api=config_api))
    assert default_storage_namespace("demo", client=client) == expected  # type: ignore[arg-type]


def test_change_is_immutable() -> None:
    change = Change(path="a.parquet", type="added", size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.size = 11  # type: ignore[misc]


def test_error_types_fit_standard_handlers() -> None:
    # Callers that catch LookupError / ValueError keep working with the project's types.
    assert issubclass(errors.RefNotFoundError, LookupError)
    assert issubclass(errors.ObjectNotFoundError, LookupError)
    assert issubclass(errors.InvalidMetadataError, ValueError)
    for error_type in (errors.MergeConflictError, errors.NoChangesError, errors.RepositoryConflictError):
        assert issubclass(error_type, errors.LockgateError)


def test_unreachable_endpoint_and_refused_credentials_are_named() -> None:
    import lakefs

    from infra.processes import free_port
    from tasks.versioning import check_connection, list_branches

    closed = lakefs.Client(host=f"http://127.0.0.1:{free_port()}/api/v1", username="AKIA", password="x" * 20)
    with pytest.raises(errors.LakeFSUnavailableError, match="does not answer.*LOCKGATE_LAKEFS_ENDPOINT"):
        check_connection(closed)
    with pytest.raises(errors.LakeFSUnavailableError):
        list_branches("anything", client=closed)
