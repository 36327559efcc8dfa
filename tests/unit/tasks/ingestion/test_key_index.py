"""Keys are unique across batches, not only inside one: every ingest checks its keys against the key
index ``main`` holds beside the data (issue 14, item 7), whatever file format carried them."""

from __future__ import annotations

import io
import json
import re
import threading
import uuid

import numpy as np
import pandas as pd
import pytest

from infra.errors import ContractViolationError
from tasks import versioning
from tasks.generate import GeneratorConfig, generate_frame, write_batch
from tasks.ingestion import IngestParameters, key_index, run_ingest
from tasks.ingestion import run as ingest_run
from tasks.ingestion.key_index import REPEATED_ACROSS_BATCHES, bucket_path, index_prefix, one_file_path
from tasks.publishing import RecordingPublisher

ROWS = 2_000


def ingest(client, spec, source):
    parameters = IngestParameters(source=str(source), dataset="loans", chunk_rows=1_000)
    return run_ingest(parameters, client=client, s3_client=None, publish=RecordingPublisher(), spec=spec)


def main_head(spec, client) -> str:
    return versioning.resolve_ref(spec.repository, "main", client=client)


def read_json(spec, client, path: str):
    return json.loads(versioning.read_object(spec.repository, ref="main", path=path, client=client))


def index_keys(spec, client) -> np.ndarray:
    """Every key of the index on main, whichever layout it has."""
    manifest = read_json(spec, client, f"{index_prefix('loans')}index.json")
    paths = (
        [one_file_path("loans")] if manifest["buckets"] == 1 else [bucket_path("loans", b) for b in range(64)]
    )
    parts = [
        np.load(io.BytesIO(versioning.read_object(spec.repository, ref="main", path=path, client=client)))
        for path in paths
    ]
    return np.sort(np.concatenate(parts))


def repeated(error: ContractViolationError):
    return {check.check: check for check in error.report.row_checks}.get(REPEATED_ACROSS_BATCHES)


def test_the_same_rows_in_another_format_are_refused_with_their_keys(lakefs_client, spec, tmp_path) -> None:
    config = GeneratorConfig(rows=ROWS, seed=31, first_id=31_000_000)
    write_batch(config, str(tmp_path / "batch.parquet"))
    write_batch(config, str(tmp_path / "batch.csv"), file_format="csv")
    first = ingest(lakefs_client, spec, tmp_path / "batch.parquet")

    # The index reached main in the merge, beside the data it describes.
    manifest = json.loads(
        versioning.read_object(
            spec.repository, ref="main", path=f"{index_prefix('loans')}index.json", client=lakefs_client
        )
    )
    assert manifest["keys"] == ROWS and manifest["key_columns"] == ["application_id"]
    assert len(manifest["batches"]) == 1 and manifest["batches"][0].startswith("data/batch-")

    with pytest.raises(ContractViolationError, match=re.escape(REPEATED_ACROSS_BATCHES)) as raised:
        ingest(lakefs_client, spec, tmp_path / "batch.csv")

    assert main_head(spec, lakefs_client) == first.commit  # main unchanged
    check = repeated(raised.value)
    assert check.count == ROWS
    assert check.examples[0]["key"]["application_id"] in range(31_000_000, 31_000_000 + ROWS)
    assert "e.g. application_id=310000" in str(raised.value)


def test_only_the_keys_main_already_has_are_counted(lakefs_client, spec, tmp_path) -> None:
    write_batch(GeneratorConfig(rows=ROWS, seed=32, first_id=32_000_000), str(tmp_path / "a.parquet"))
    ingest(lakefs_client, spec, tmp_path / "a.parquet")
    overlap = generate_frame(GeneratorConfig(rows=ROWS, seed=33, first_id=32_000_000 + ROWS - 7))
    overlap.to_parquet(tmp_path / "b.parquet")

    with pytest.raises(ContractViolationError) as raised:
        ingest(lakefs_client, spec, tmp_path / "b.parquet")

    check = repeated(raised.value)
    assert check.count == 7
    assert {e["key"]["application_id"] for e in check.examples} <= set(
        range(32_000_000 + ROWS - 7, 32_000_000 + ROWS)
    )
    # A batch of new keys after it is merged, and the index grows by exactly its keys.
    write_batch(GeneratorConfig(rows=ROWS, seed=34, first_id=34_000_000), str(tmp_path / "c.parquet"))
    ingest(lakefs_client, spec, tmp_path / "c.parquet")
    keys = [index_keys(spec, lakefs_client)]
    everything = np.sort(np.concatenate(keys))
    expected = np.concatenate(
        [np.arange(32_000_000, 32_000_000 + ROWS), np.arange(34_000_000, 34_000_000 + ROWS)]
    )
    np.testing.assert_array_equal(everything, expected)


def test_data_merged_by_another_tool_is_indexed_before_it_is_trusted(lakefs_client, spec, tmp_path) -> None:
    write_batch(GeneratorConfig(rows=ROWS, seed=35, first_id=35_000_000), str(tmp_path / "a.parquet"))
    ingest(lakefs_client, spec, tmp_path / "a.parquet")
    # Rows committed to main by hand (no lockgate ingest, so the index does not account for them).
    manual = generate_frame(GeneratorConfig(rows=100, seed=36, first_id=36_000_000))
    versioning.write_dataframe(
        manual,
        repository=spec.repository,
        branch="main",
        path="data/batch-by-hand/part-00000.parquet",
        client=lakefs_client,
    )
    versioning.commit_changes(spec.repository, "main", message="by hand", metadata={}, client=lakefs_client)
    again = generate_frame(GeneratorConfig(rows=500, seed=37, first_id=36_000_000 + 90))
    again.to_parquet(tmp_path / "b.parquet")

    with pytest.raises(ContractViolationError) as raised:
        ingest(lakefs_client, spec, tmp_path / "b.parquet")

    assert repeated(raised.value).count == 10


def test_a_removed_batch_frees_its_keys_the_update_policy(lakefs_client, spec, tmp_path) -> None:
    write_batch(GeneratorConfig(rows=ROWS, seed=38, first_id=38_000_000), str(tmp_path / "a.parquet"))
    ingest(lakefs_client, spec, tmp_path / "a.parquet")
    corrected = generate_frame(GeneratorConfig(rows=ROWS, seed=39, first_id=38_000_000))
    corrected.to_parquet(tmp_path / "corrected.parquet")
    with pytest.raises(ContractViolationError):
        ingest(lakefs_client, spec, tmp_path / "corrected.parquet")

    # Keys are append-only; to replace rows, remove their batch from main, then ingest the correction.
    branch = f"remove-{uuid.uuid4().hex[:6]}"
    versioning.create_branch(spec.repository, branch, source_ref="main", client=lakefs_client)
    parts = versioning.list_objects(spec.repository, ref=branch, prefix="data/", client=lakefs_client)
    versioning.delete_objects(spec.repository, branch=branch, paths=parts, client=lakefs_client)
    versioning.commit_changes(
        spec.repository, branch, message="remove the batch", metadata={}, client=lakefs_client
    )
    versioning.merge_branch(
        spec.repository, source_ref=branch, destination_branch="main", client=lakefs_client
    )

    result = ingest(lakefs_client, spec, tmp_path / "corrected.parquet")
    assert result.status == "merged"
    manifest = json.loads(
        versioning.read_object(
            spec.repository, ref="main", path=f"{index_prefix('loans')}index.json", client=lakefs_client
        )
    )
    assert manifest["keys"] == ROWS and len(manifest["batches"]) == 1


def test_two_batches_with_one_key_checked_at_once_cannot_both_reach_main(
    lakefs_client, spec, tmp_path, monkeypatch
) -> None:
    write_batch(GeneratorConfig(rows=ROWS, seed=40, first_id=40_000_000), str(tmp_path / "a.parquet"))
    rival = generate_frame(GeneratorConfig(rows=ROWS, seed=41, first_id=40_000_000 + ROWS - 1))
    rival.to_parquet(tmp_path / "rival.parquet")
    real_merge = ingest_run.merge_batch
    raced = threading.Event()

    def merge_after_a_rival(report, *, client):
        # Controlled interleaving: batch a is checked (main has no keys yet); before it merges, a rival
        # sharing one key is ingested and merged; then a's merge runs.
        if not raced.is_set():
            raced.set()
            assert ingest(client, spec, tmp_path / "rival.parquet").status == "merged"
        return real_merge(report, client=client)

    monkeypatch.setattr(ingest_run, "merge_batch", merge_after_a_rival)

    with pytest.raises(ContractViolationError) as raised:
        ingest(lakefs_client, spec, tmp_path / "a.parquet")

    assert repeated(raised.value).count == 1
    paths = versioning.list_objects(spec.repository, ref="main", prefix="data/", client=lakefs_client)
    on_main = versioning.read_parquet_objects(spec.repository, ref="main", paths=paths, client=lakefs_client)
    assert on_main["application_id"].is_unique and len(on_main) == ROWS
    pd.testing.assert_series_equal(
        on_main["application_id"].sort_values(ignore_index=True),
        rival["application_id"].sort_values(ignore_index=True),
        check_dtype=False,
    )


def test_a_large_index_is_split_into_buckets_and_still_finds_every_repeat(
    lakefs_client, spec, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(key_index, "ONE_FILE_KEYS", 1_000)  # what a million keys do, at test size
    write_batch(GeneratorConfig(rows=500, seed=42, first_id=42_000_000), str(tmp_path / "a.parquet"))
    ingest(lakefs_client, spec, tmp_path / "a.parquet")
    assert read_json(spec, lakefs_client, f"{index_prefix('loans')}index.json")["buckets"] == 1

    write_batch(GeneratorConfig(rows=ROWS, seed=43, first_id=43_000_000), str(tmp_path / "b.parquet"))
    ingest(lakefs_client, spec, tmp_path / "b.parquet")
    manifest = read_json(spec, lakefs_client, f"{index_prefix('loans')}index.json")
    assert manifest["buckets"] == 64 and manifest["keys"] == 500 + ROWS
    listed = versioning.list_objects(
        spec.repository, ref="main", prefix=index_prefix("loans"), client=lakefs_client
    )
    assert one_file_path("loans") not in listed  # the one-file layout went in the same commit
    np.testing.assert_array_equal(
        index_keys(spec, lakefs_client),
        np.concatenate([np.arange(42_000_000, 42_000_500), np.arange(43_000_000, 43_000_000 + ROWS)]),
    )

    overlap = generate_frame(GeneratorConfig(rows=100, seed=44, first_id=42_000_497))  # 3 from a, rest new
    overlap.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(ContractViolationError) as raised:
        ingest(lakefs_client, spec, tmp_path / "c.parquet")
    assert repeated(raised.value).count == 3
