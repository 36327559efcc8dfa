"""``ingest_flow`` end to end: real Prefect (test harness), the embedded lakeFS server, moto S3.

Each test proves one promise of the ingestion gate: what a passing batch leaves on ``main`` (data,
report, lineage metadata, event, artifacts), that the same content is not ingested twice, and that
every kind of bad input gets an error naming what was wrong while ``main`` stays exactly where it was.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from infra import errors
from tasks import ingestion, versioning
from tasks.datasets import get_dataset
from tasks.ingestion.key_index import KEYS_PREFIX

pytestmark = pytest.mark.integration

LOANS = "lockgate-loans"
BREAST_CANCER = "lockgate-breast-cancer"
MERGED = "lockgate.dataset.merged"
REJECTED = "lockgate.dataset.rejected"


# -- helpers ----------------------------------------------------------------------------------


def report_location(report_path: str) -> tuple[str, str, str]:
    """``lakefs://repo/branch/path`` -> (repo, branch, path)."""
    assert report_path.startswith("lakefs://"), report_path
    repository, branch, path = report_path[len("lakefs://") :].split("/", 2)
    return repository, branch, path


def read_report(kit, report_path: str) -> dict:
    repository, branch, path = report_location(report_path)
    return json.loads(kit.read_object(repository, branch, path))


def batch_changes(kit, repository: str, before: str, after: str) -> list[versioning.Change]:
    return versioning.diff_refs(repository, left_ref=before, right_ref=after, client=kit.client)


def data_on_main(kit, repository: str, before: str, after: str) -> pd.DataFrame:
    """The rows a merge added to ``main``: every ``data/`` part that differs between the two heads."""
    changes = batch_changes(kit, repository, before, after)
    parts = [c.path for c in changes if c.path.startswith(ingestion.DATA_PREFIX)]
    assert parts, f"the merge added no data under {ingestion.DATA_PREFIX}: {changes}"
    # Only added objects, but for the dataset's key index, which grows with every batch.
    assert all(c.type == "added" for c in changes if not c.path.startswith(KEYS_PREFIX)), changes
    return kit.read_parquet_parts(repository, after, parts)


def assert_rejected(kit, run, *, repository: str, head_before: str) -> tuple[str, dict]:
    """A contract rejection: the error names the report, main unchanged, branch + report kept, event sent.

    Returns the error message and the stored contract report.
    """
    error = run.error()
    assert isinstance(error, errors.ContractViolationError), repr(error)
    message = str(error)
    report = error.report
    assert report.report_path and report.report_path in message
    assert kit.head(repository) == head_before, "a rejected batch moved main"
    assert kit.branch_exists(repository, report.branch), "the rejected branch was not kept"
    stored = read_report(kit, report.report_path)
    assert stored["passed"] is False
    assert stored["branch"] == report.branch
    events = kit.events(REJECTED, flow_run_id=run.flow_run_id)
    assert len(events) == 1, f"expected one {REJECTED} event, got {events}"
    resource = events[0].resource
    assert resource["lakefs.repository"] == repository
    assert resource["lakefs.branch"] == report.branch
    assert events[0].payload["report"] == report.report_path
    assert not kit.events(MERGED, flow_run_id=run.flow_run_id, timeout=0)
    return message, stored


def assert_source_error(kit, run, error_type: type[Exception], *, repository: str, head_before: str) -> str:
    """A source that cannot be read at all: the run fails with ``error_type``; main unchanged, no merge."""
    error = run.error()
    assert isinstance(error, error_type), repr(error)
    assert kit.head(repository) == head_before, "a failed ingest moved main"
    assert not kit.events(MERGED, flow_run_id=run.flow_run_id, timeout=0)
    return str(error)


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same columns, order and values; integer columns may come back as the contract's nullable ``Int64``."""
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


# -- pass path ----------------------------------------------------------------------------------


def test_good_parquet_batch_is_merged_with_data_report_lineage_event_and_artifacts(kit, tmp_path):
    frame = kit.good_loans()
    source = write_frame(frame, tmp_path / "loans.parquet")
    before = kit.head(LOANS)

    run = kit.run(source)

    result = run.result
    assert result.status == "merged"
    after = kit.head(LOANS)
    assert after != before and after == result.commit
    # The data on main is exactly the generated rows.
    got = data_on_main(kit, LOANS, before, after)
    assert_same_rows(got, frame)
    # The contract report is on main (merged from the branch) and says passed.
    report = read_report(kit, result.report)
    assert report["passed"] is True and report["rows"] == len(frame)
    assert report["row_checks"] == []
    assert report["expectations"]["success"] is True
    # Lineage on the data commit.
    metadata = dict(
        versioning.log_commits(LOANS, ref=report["data_commit"], client=kit.client, limit=1)[0].metadata
    )
    sources = json.loads(metadata["lockgate.sources"])
    assert sources == [{"uri": str(source), "checksum": ingestion.file_sha256(source)}]
    assert metadata["lockgate.rows"] == str(len(frame))
    assert metadata["lockgate.schema_fingerprint"] == report["schema_fingerprint"] != ""
    assert metadata["lockgate.flow_run_id"] == run.flow_run_id
    # The merged event names where the data now is.
    events = kit.events(MERGED, flow_run_id=run.flow_run_id)
    assert len(events) == 1
    resource = events[0].resource
    assert resource["lakefs.repository"] == LOANS
    assert resource["lakefs.branch"] == "main"
    assert resource["lakefs.commit"] == after
    assert not kit.events(REJECTED, flow_run_id=run.flow_run_id, timeout=0)
    # Artifacts for people: a summary table and a markdown note naming the report.
    artifacts = {artifact.key: artifact for artifact in kit.artifacts(run.flow_run_id)}
    assert artifacts["ingest-loans-summary"].type == "table"
    assert "PASSED" in json.dumps(artifacts["ingest-loans-summary"].data)
    assert artifacts["ingest-loans-report"].type == "markdown"
    assert result.report in artifacts["ingest-loans-report"].data
    assert "ingest-loans-failures" not in artifacts
    # The Data Docs the markdown links to are on the branch.
    assert report["data_docs_path"] and report["data_docs_path"] in artifacts["ingest-loans-report"].data
    docs_repository, docs_branch, docs_path = report_location(report["data_docs_path"])
    assert b"<html" in kit.read_object(docs_repository, docs_branch, docs_path).lower()


def test_s3_glob_of_two_csv_files_is_merged(kit):
    prefix = f"loans/{uuid.uuid4().hex[:8]}"
    frames = [kit.good_loans(), kit.good_loans()]
    for number, frame in enumerate(frames):
        kit.s3.put_object(
            Bucket=kit.bucket, Key=f"{prefix}/part-{number}.csv", Body=frame.to_csv(index=False)
        )
    # A file the glob must not pick up.
    kit.s3.put_object(Bucket=kit.bucket, Key=f"{prefix}/notes.txt", Body=b"not data")
    before = kit.head(LOANS)

    run = kit.run(f"s3://{kit.bucket}/{prefix}/*.csv")

    assert run.result.status == "merged"
    after = kit.head(LOANS)
    got = data_on_main(kit, LOANS, before, after)
    assert_same_rows(got, pd.concat(frames, ignore_index=True))
    report = read_report(kit, run.result.report)
    assert sorted(s["uri"] for s in report["sources"]) == [
        f"s3://{kit.bucket}/{prefix}/part-0.csv",
        f"s3://{kit.bucket}/{prefix}/part-1.csv",
    ]


def test_json_lines_source_is_merged(kit, tmp_path):
    frame = kit.good_loans()
    source = write_frame(frame, tmp_path / "loans.jsonl")
    before = kit.head(LOANS)

    run = kit.run(source)

    assert run.result.status == "merged"
    got = data_on_main(kit, LOANS, before, kit.head(LOANS))
    assert_same_rows(got, frame)


def test_same_content_again_under_another_name_is_unchanged(kit, tmp_path):
    source = kit.write_loans(tmp_path / "first.parquet")
    first = kit.run(source).result
    assert first.status == "merged"
    head = kit.head(LOANS)
    copy = tmp_path / "renamed" / "second-name.parquet"
    copy.parent.mkdir()
    shutil.copyfile(source, copy)

    again = kit.run(copy)

    assert again.result.status == "unchanged"
    assert again.result.commit == head
    assert kit.head(LOANS) == head
    assert not kit.events(MERGED, flow_run_id=again.flow_run_id, timeout=2)


def test_breast_cancer_dataset_is_merged_into_its_own_repository(kit, tmp_path):
    from tasks.sample_data import breast_cancer_frame, write_breast_cancer

    source = Path(write_breast_cancer(str(tmp_path / "breast_cancer.parquet"), file_format="parquet"))
    before = kit.head(BREAST_CANCER)
    loans_before = kit.head(LOANS)

    run = kit.run(source, dataset="breast-cancer")

    assert run.result.status == "merged"
    assert run.result.repository == BREAST_CANCER
    after = kit.head(BREAST_CANCER)
    got = data_on_main(kit, BREAST_CANCER, before, after)
    assert_same_rows(got, breast_cancer_frame())
    assert kit.head(LOANS) == loans_before
    events = kit.events(MERGED, flow_run_id=run.flow_run_id)
    assert [e.resource["lakefs.repository"] for e in events] == [BREAST_CANCER]


# -- sources that cannot be read ----------------------------------------------------------------


def test_missing_path_names_the_path(kit, tmp_path):
    before = kit.head(LOANS)
    missing = tmp_path / "no-such-batch.parquet"

    message = assert_source_error(
        kit, kit.run(missing), errors.SourceNotFoundError, repository=LOANS, head_before=before
    )

    assert str(missing) in message and "does not exist" in message


def test_missing_bucket_names_the_bucket(kit):
    before = kit.head(LOANS)

    message = assert_source_error(
        kit,
        kit.run("s3://no-such-bucket-lockgate/loans/*.csv"),
        errors.SourceNotFoundError,
        repository=LOANS,
        head_before=before,
    )

    assert "no-such-bucket-lockgate" in message and "does not exist" in message


@pytest.fixture
def s3_enforcing_auth(s3_endpoint):
    """Make the moto server check credentials (it accepts any by default) for the test's duration."""
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_wrong_s3_credentials_are_an_access_error(kit, monkeypatch, s3_enforcing_auth):
    monkeypatch.setenv("LOCKGATE_S3_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("LOCKGATE_S3_SECRET_ACCESS_KEY", "not-the-secret")
    before = kit.head(LOANS)
    source = f"s3://{kit.bucket}/loans/anything.csv"

    message = assert_source_error(
        kit, kit.run(source), errors.SourceAccessError, repository=LOANS, head_before=before
    )

    assert source in message
    assert "InvalidAccessKeyId" in message or "refused" in message


def test_corrupt_parquet_names_the_file(kit, tmp_path):
    source = tmp_path / "corrupt.parquet"
    source.write_bytes(np.random.default_rng(1).bytes(4096))
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "Parquet" in message


def test_truncated_parquet_names_the_file(kit, tmp_path):
    whole = kit.write_loans(tmp_path / "whole.parquet")
    source = tmp_path / "truncated.parquet"
    payload = whole.read_bytes()
    source.write_bytes(payload[: len(payload) // 2])
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "Parquet" in message


def test_semicolon_delimited_csv_is_named_as_such(kit, tmp_path):
    source = tmp_path / "semicolons.csv"
    kit.good_loans(rows=50).to_csv(source, index=False, sep=";")
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "semicolon" in message


def test_latin1_csv_is_named_as_not_utf8(kit, tmp_path):
    source = tmp_path / "latin1.csv"
    text = kit.good_loans(rows=50).to_csv(index=False)
    lines = text.splitlines()
    # A salary written with a latin-1 "é" (byte 0xe9), as a spreadsheet export in latin-1 would.
    lines[20] = lines[20].replace(",", ",9é", 1)
    source.write_bytes("\n".join(lines).encode("latin-1"))
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "UTF-8" in message


def test_latin1_header_is_named_as_not_utf8(kit, tmp_path):
    source = tmp_path / "latin1-header.csv"
    text = kit.good_loans(rows=50).to_csv(index=False).replace("salary", "salaire_brut_é", 1)
    source.write_bytes(text.encode("latin-1"))
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "UTF-8" in message and "0xe9" in message


def test_empty_file_names_the_file(kit, tmp_path):
    source = tmp_path / "empty.parquet"
    source.write_bytes(b"")
    before = kit.head(LOANS)

    message = assert_source_error(
        kit, kit.run(source), errors.SourceFormatError, repository=LOANS, head_before=before
    )

    assert str(source) in message and "empty" in message


def test_header_only_csv_is_rejected_as_empty(kit, tmp_path):
    source = tmp_path / "header-only.csv"
    source.write_text(",".join(kit.good_loans(rows=1).columns) + "\n")
    before = kit.head(LOANS)

    run = kit.run(source)

    error = run.error()
    assert kit.head(LOANS) == before
    message = str(error)
    assert str(source) in message, message
    assert any(word in message for word in ("no rows", "0 rows", "empty")), message


# -- contract violations ------------------------------------------------------------------------


def test_missing_column_is_named(kit, tmp_path):
    source = write_frame(kit.good_loans().drop(columns=["house_value"]), tmp_path / "no-house.parquet")
    before = kit.head(LOANS)

    message, report = assert_rejected(kit, kit.run(source), repository=LOANS, head_before=before)

    assert "house_value" in message and "column_in_dataframe" in message
    assert report["data_commit"] is None


def test_unexpected_extra_column_is_rejected_by_policy(kit, tmp_path):
    frame = kit.good_loans().assign(nationality="FR")
    source = write_frame(frame, tmp_path / "extra.parquet")
    before = kit.head(LOANS)

    message, report = assert_rejected(kit, kit.run(source), repository=LOANS, head_before=before)

    assert "nationality" in message and "column_in_schema" in message
    assert get_dataset("loans").extra_columns == "reject"


def test_text_in_numeric_column_names_column_and_row(kit, tmp_path):
    frame = kit.good_loans().astype({"age": "object"})
    frame.loc[37, "age"] = "forty"
    source = write_frame(frame, tmp_path / "text-age.csv")
    before = kit.head(LOANS)

    message, report = assert_rejected(kit, kit.run(source), repository=LOANS, head_before=before)

    assert "'age'" in message and "row 37" in message and "forty" in message
    [check] = [c for c in report["row_checks"] if c["column"] == "age" and "coerce" in c["check"]]
    assert check["examples"][0]["file"] == str(source) and check["examples"][0]["row"] == 37


def test_out_of_range_value_names_column_rule_and_row(kit, tmp_path):
    frame = kit.good_loans()
    frame.loc[120, "age"] = 150
    source = write_frame(frame, tmp_path / "old.parquet")
    before = kit.head(LOANS)

    run = kit.run(source)
    message, report = assert_rejected(kit, run, repository=LOANS, head_before=before)

    assert "'age'" in message and "row 120" in message and "150" in message
    [check] = [c for c in report["row_checks"] if c["column"] == "age"]
    assert "80" in check["check"] and check["count"] == 1
    assert check["examples"][0]["record"]["application_id"] == int(frame.loc[120, "application_id"])
    artifacts = {artifact.key: artifact for artifact in kit.artifacts(run.flow_run_id)}
    failures = artifacts["ingest-loans-failures"].data
    assert any(row["column"] == "age" and row["example row"] == 120 for row in json.loads(failures)), failures
    assert "REJECTED" in artifacts["ingest-loans-summary"].data


def test_null_where_forbidden_names_column_and_row(kit, tmp_path):
    frame = kit.good_loans()
    frame.loc[[3, 900], "salary"] = np.nan
    source = write_frame(frame, tmp_path / "null-salary.parquet")
    before = kit.head(LOANS)

    message, report = assert_rejected(kit, kit.run(source), repository=LOANS, head_before=before)

    assert "'salary'" in message and "not_nullable" in message and "row 3" in message
    [check] = [c for c in report["row_checks"] if c["column"] == "salary" and c["check"] == "not_nullable"]
    assert check["count"] == 2 and [e["row"] for e in check["examples"]] == [3, 900]


def test_duplicate_keys_within_a_chunk_are_named(kit, tmp_path):
    frame = kit.good_loans()
    frame.loc[10, "application_id"] = frame.loc[5, "application_id"]
    source = write_frame(frame, tmp_path / "dup-in-chunk.parquet")
    before = kit.head(LOANS)

    message, report = assert_rejected(
        kit, kit.run(source, chunk_rows=1_000), repository=LOANS, head_before=before
    )

    assert "'application_id'" in message and "field_uniqueness" in message
    [check] = [c for c in report["row_checks"] if c["check"] == "field_uniqueness"]
    assert sorted(e["row"] for e in check["examples"]) == [5, 10]


def test_duplicate_keys_across_chunks_are_named(kit, tmp_path):
    frame = kit.good_loans()  # 1,500 rows: chunks of 1,000 and 500
    frame.loc[1_200, "application_id"] = frame.loc[3, "application_id"]
    source = write_frame(frame, tmp_path / "dup-across-chunks.parquet")
    before = kit.head(LOANS)

    message, report = assert_rejected(
        kit, kit.run(source, chunk_rows=1_000), repository=LOANS, head_before=before
    )

    assert "application_id" in message and "unique across chunks" in message
    [check] = [c for c in report["row_checks"] if c["check"] == "unique across chunks"]
    assert check["count"] == 1


# -- size and interruption ----------------------------------------------------------------------


def test_source_larger_than_a_chunk_is_streamed(kit, tmp_path):
    from tasks.ingestion import IngestParameters, run_ingest
    from tasks.publishing import RecordingPublisher

    rows, chunk_rows = 20_000, 1_000
    source = kit.write_loans(tmp_path / "big.csv", rows=rows, file_format="csv")
    seen: list[int] = []
    process = psutil.Process()
    rss = [process.memory_info().rss]

    def follow(stage: str, rows_so_far: int) -> None:
        seen.append(rows_so_far)
        rss.append(process.memory_info().rss)

    published = RecordingPublisher()
    result = run_ingest(
        IngestParameters(source=str(source), dataset="loans", chunk_rows=chunk_rows),
        client=kit.client,
        s3_client=None,
        publish=published,
        progress=follow,
    )

    assert result.status == "merged" and result.rows == rows
    assert [event.name for event in published.events] == ["lockgate.dataset.merged"]
    steps = np.diff([0, *seen])
    assert seen[-1] == rows
    assert len(seen) >= rows // chunk_rows and steps.max() <= chunk_rows, steps
    # 20,000 rows are ~2 MB in memory: the process must not grow by more than noise while streaming.
    assert max(rss) - rss[0] < 150 * 2**20


KILL_SCRIPT = """
import os, signal, sys
from infra.clients import make_lakefs_client
from infra.settings import LakeFSSettings
from tasks import ingestion
from tasks.datasets import get_dataset

source, run_id = sys.argv[1], sys.argv[2]
def die_mid_way(stage, rows):
    if rows >= 2_000:
        os.kill(os.getpid(), signal.SIGKILL)
ingestion.stage_batch(
    get_dataset("loans"), ingestion.resolve_sources(source), client=make_lakefs_client(LakeFSSettings()),
    run_id=run_id, chunk_rows=1_000, progress=die_mid_way,
)
"""


def test_run_killed_mid_read_leaves_main_untouched_and_rerun_merges(kit, tmp_path):
    frame = kit.good_loans(rows=4_000)
    source = write_frame(frame, tmp_path / "killed.parquet")
    before = kit.head(LOANS)
    run_id = f"killed-{uuid.uuid4().hex[:6]}"

    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(source), run_id], env=os.environ.copy(), timeout=120
    )

    assert killed.returncode == -signal.SIGKILL
    assert kit.head(LOANS) == before
    killed_branch = ingestion.ingest_branch_name("loans", run_id)
    assert kit.branch_exists(LOANS, killed_branch)  # left for inspection, never merged
    rerun = kit.run(source, chunk_rows=1_000)
    assert rerun.result.status == "merged"
    got = data_on_main(kit, LOANS, before, kit.head(LOANS))
    assert_same_rows(got, frame)  # all rows once: nothing from the killed run


def test_run_abandoned_after_data_commit_leaves_main_untouched_and_rerun_merges(kit, tmp_path):
    frame = kit.good_loans()
    source = write_frame(frame, tmp_path / "abandoned.parquet")
    before = kit.head(LOANS)
    spec = get_dataset("loans")
    staged = ingestion.stage_batch(
        spec,
        ingestion.resolve_sources(str(source)),
        client=kit.client,
        run_id=f"abandoned-{uuid.uuid4().hex[:6]}",
    )
    assert staged.data_committed  # the crash comes after the data commit, before the report and merge
    assert kit.head(LOANS) == before

    rerun = kit.run(source)

    assert rerun.result.status == "merged"
    after = kit.head(LOANS)
    assert_same_rows(data_on_main(kit, LOANS, before, after), frame)
    [event] = kit.events(MERGED, flow_run_id=rerun.flow_run_id)
    assert event.resource["lakefs.source_branch"] != staged.report.branch
