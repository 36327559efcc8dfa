"""Sources as people really hand them over: repeated column names, brackets in file names, links that
loop, values that will not coerce. Each is a clear rejection (or the right files), never a traceback,
an empty branch left behind or a failure hidden by another (issue 14, item 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from infra.errors import ContractViolationError, SourceFormatError
from tasks import events, versioning
from tasks.generate import GeneratorConfig, generate_frame
from tasks.ingestion import IngestParameters, run_ingest
from tasks.ingestion.sources import resolve_sources
from tasks.ingestion.staging import IngestReport, rejection_message
from tasks.publishing import RecordingPublisher


def ingest(client, spec, source) -> tuple[object, RecordingPublisher]:
    published = RecordingPublisher()
    parameters = IngestParameters(source=str(source), dataset="loans", chunk_rows=1_000)
    return run_ingest(parameters, client=client, s3_client=None, publish=published, spec=spec), published


def branches(spec, client) -> set[str]:
    return {branch.name for branch in versioning.list_branches(spec.repository, client=client)}


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_a_repeated_column_name_is_a_rejected_batch_with_no_branch_left(
    lakefs_client, spec, tmp_path: Path, file_format: str
) -> None:
    frame = generate_frame(GeneratorConfig(rows=50, seed=3))
    source = tmp_path / f"twice.{file_format}"
    columns = [*frame.columns, "age"]
    arrays = [pa.array(frame[column]) for column in frame.columns] + [pa.array(frame["age"])]
    table = pa.Table.from_arrays(arrays, names=columns)
    if file_format == "csv":
        pacsv.write_csv(table, source)
    else:
        pq.write_table(table, source)
    published = RecordingPublisher()

    with pytest.raises(SourceFormatError, match=r"'age' \(columns \d+, \d+\)"):
        run_ingest(
            IngestParameters(source=str(source), dataset="loans"),
            client=lakefs_client,
            s3_client=None,
            publish=published,
            spec=spec,
        )

    (rejected,) = published.events_named(events.DATASET_REJECTED)
    assert "more than once" in rejected.payload["reason"]
    assert branches(spec, lakefs_client) == {"main"}


def test_a_file_name_with_brackets_is_that_file_not_a_glob(tmp_path: Path) -> None:
    literal = tmp_path / "loans[1].csv"
    literal.write_text("a\n1\n")
    (tmp_path / "loans1.csv").write_text("a\n2\n")  # what the glob "loans[1].csv" would match

    (source,) = resolve_sources(str(literal))
    assert source.uri == str(literal)
    # Globs still work, and a bracketed name found by one is read as itself.
    assert [Path(s.uri).name for s in resolve_sources(str(tmp_path / "*.csv"))] == [
        "loans1.csv",
        "loans[1].csv",
    ]


def test_a_symbolic_link_loop_ingests_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    (root / "2026").mkdir(parents=True)
    (root / "2026" / "a.csv").write_text("a\n1\n")
    (root / "b.csv").write_text("a\n2\n")
    os.symlink(root, root / "2026" / "again")  # a loop back up the tree
    os.symlink(root / "b.csv", root / "b-link.csv")  # a second name of one file

    found = resolve_sources(str(root))

    assert sorted(Path(s.uri).name for s in found) == ["a.csv", "b.csv"]
    assert len(resolve_sources(str(root / "**" / "*.csv"))) == 2


def test_uncoercible_values_keep_their_rows_and_hide_no_other_failure(lakefs_client, spec, tmp_path) -> None:
    frame = generate_frame(GeneratorConfig(rows=2_000, seed=5, first_id=5_000_000))
    frame["age"] = frame["age"].astype(float)
    frame.loc[10, "age"] = 30.5  # not an integer: pandera names no row for this failure
    frame["salary"] = frame["salary"].astype(str)  # as text, so one value can be no number
    frame.loc[20, "salary"] = "lots"  # not a number
    frame.loc[30, "loan_amount"] = -1.0  # coercible, but breaks its range
    source = tmp_path / "mixed.parquet"
    frame.to_parquet(source)

    with pytest.raises(ContractViolationError) as raised:
        ingest(lakefs_client, spec, source)

    report = raised.value.report
    checks = {(c.column, c.check): c for c in report.row_checks}
    age = checks[("age", "coerce_dtype('Int64')")]
    assert age.count == 1 and age.examples[0]["row"] == 10 and age.examples[0]["value"] == 30.5
    salary = checks[("salary", "coerce_dtype('float64')")]
    assert salary.count == 1 and salary.examples[0]["row"] == 20
    # The same bad value is not listed a second time as a dtype failure ...
    assert not [key for key in checks if key[1].startswith("dtype(")]
    # ... and the other columns' range checks still ran.
    (loan,) = [c for (column, _), c in checks.items() if column == "loan_amount"]
    assert loan.examples[0]["row"] == 30
    # Rejection messages name the row's key, not only its position.
    key = int(frame.loc[10, "application_id"])
    assert age.examples[0]["key"] == {"application_id": key}
    assert f"row 10 (application_id={key})" in str(raised.value)
    assert report.data_commit is None  # nothing coerced is committed as data


def test_failed_expectations_are_named_in_the_rejection_message() -> None:
    report = IngestReport(
        dataset="loans", run_id="r", repository="repo", branch="b", sources=[], report_path="lakefs://x"
    )
    report.expectations = {
        "results": [
            {
                "expectation": "expect_column_mean_to_be_between",
                "column": "salary",
                "success": False,
                "observed_value": 1.5,
            },
            {"expectation": "expect_table_row_count_to_be_between", "column": None, "success": False},
        ]
    }

    message = rejection_message(report)

    assert "expectation None" not in message
    assert "expect_column_mean_to_be_between on salary: failed (observed 1.5)" in message
    assert "expect_table_row_count_to_be_between on the table: failed" in message
