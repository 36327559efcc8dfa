"""GX suites run over DataFrames: real pass/fail outcomes, exact row counts, Data Docs on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.loans import KEY_COLUMN, TARGET_COLUMN, loan_expectation_suite
from infra.errors import InvalidInputError
from tasks.generate import GeneratorConfig, generate_frame
from tasks.gx_validation import EXACT_ROW_COUNT, GIVEN_FRAME, ExpectationReport, validate_expectations


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate_frame(GeneratorConfig(rows=5_000, seed=42))


def failed(report: ExpectationReport) -> set[tuple[str, str | None]]:
    return {(result["expectation"], result["column"]) for result in report.failures()}


def test_good_batch_passes_every_expectation(good: pd.DataFrame) -> None:
    report = validate_expectations(good, loan_expectation_suite)

    assert report.success, report.failures()
    assert report.data_docs_index is None
    assert report.statistics["evaluated_expectations"] == len(loan_expectation_suite().expectations) == 18
    assert report.statistics["unsuccessful_expectations"] == 0
    assert report.statistics["row_count"] == report.statistics["frame_rows"] == 5_000
    salary_mean = next(r for r in report.results if r["expectation"].endswith("mean_to_be_between"))
    assert salary_mean["column"] == "salary"
    assert salary_mean["observed_value"] == pytest.approx(good["salary"].mean())
    assert {result["evaluated_on"] for result in report.results} == {GIVEN_FRAME}
    json.dumps(report.results, allow_nan=False)  # strict JSON, ready for the contract report


@pytest.mark.parametrize("covariate_shift", [0.0, 1.0])
def test_every_labelling_function_passes_under_any_covariate_shift(covariate_shift: float) -> None:
    # Drift is monitoring's business: the gate must not refuse a shifted but well-formed batch.
    for function in range(10):
        frame = generate_frame(
            GeneratorConfig(rows=3_000, seed=function, function=function, covariate_shift=covariate_shift)
        )
        report = validate_expectations(frame, loan_expectation_suite)
        assert report.success, (function, report.failures())


def test_mostly_null_salary_fails_the_null_rate_expectation(good: pd.DataFrame) -> None:
    batch = good.assign(salary=good["salary"].where(np.arange(len(good)) % 5 >= 3))  # 60% null

    report = validate_expectations(batch, loan_expectation_suite)

    assert not report.success
    assert failed(report) == {("expect_column_values_to_not_be_null", "salary")}
    (result,) = report.failures()
    assert result["unexpected_count"] == 3_000
    assert result["unexpected_percent"] == pytest.approx(60.0)
    assert result["partial_unexpected_list"] == [None] * 5
    json.dumps(result, allow_nan=False)


def test_one_class_label_fails_label_balance(good: pd.DataFrame) -> None:
    report = validate_expectations(good.assign(**{TARGET_COLUMN: 1}), loan_expectation_suite)

    assert failed(report) == {("expect_column_mean_to_be_between", TARGET_COLUMN)}
    assert report.failures()[0]["observed_value"] == 1.0
    assert report.statistics["unsuccessful_expectations"] == 1


def test_salary_in_thousands_and_duplicated_batch_are_caught(good: pd.DataFrame) -> None:
    batch = pd.concat([good, good], ignore_index=True).assign(salary=lambda f: f["salary"] / 1_000)

    report = validate_expectations(batch, loan_expectation_suite)

    assert failed(report) == {
        ("expect_column_mean_to_be_between", "salary"),
        ("expect_column_stdev_to_be_between", "salary"),
        ("expect_column_proportion_of_unique_values_to_be_between", KEY_COLUMN),
    }
    uniqueness = next(r for r in report.failures() if r["column"] == KEY_COLUMN)
    assert uniqueness["observed_value"] == pytest.approx(0.5)


def test_missing_column_fails_with_gx_message(good: pd.DataFrame) -> None:
    report = validate_expectations(good.drop(columns=["age"]), loan_expectation_suite)

    assert failed(report) == {
        ("expect_column_values_to_not_be_null", "age"),
        ("expect_column_mean_to_be_between", "age"),
    }
    assert all('"age"' in result["exception"] for result in report.failures())


@pytest.mark.parametrize(
    ("row_count", "success"),
    [(5_000, True), (50_000_000, True), (50_000_001, False), (2_000_000, True)],
)
def test_exact_row_count_replaces_the_sample_length(
    good: pd.DataFrame, row_count: int, success: bool
) -> None:
    sample = good.sample(n=1_000, random_state=0)

    report = validate_expectations(sample, loan_expectation_suite, row_count=row_count)

    row_result = report.results[0]
    assert row_result["expectation"] == "expect_table_row_count_to_be_between"
    assert row_result["evaluated_on"] == EXACT_ROW_COUNT
    assert row_result["observed_value"] == row_count
    assert row_result["success"] is success
    assert report.success is success
    assert report.statistics["row_count"] == row_count
    assert report.statistics["frame_rows"] == 1_000
    assert all(r["evaluated_on"] == GIVEN_FRAME for r in report.results[1:])
    assert report.statistics["evaluated_expectations"] == 18


def test_row_count_is_judged_on_the_sample_without_an_exact_count() -> None:
    # Without ``row_count`` the frame is the batch: an empty frame fails the lower bound.
    empty = generate_frame(GeneratorConfig(rows=0))

    report = validate_expectations(empty, loan_expectation_suite)

    row_result = report.results[0]
    assert row_result["evaluated_on"] == GIVEN_FRAME
    assert row_result["observed_value"] == 0
    assert row_result["success"] is False


def test_strict_bounds_of_an_exact_row_count(good: pd.DataFrame) -> None:
    import great_expectations as gx

    def suite() -> gx.ExpectationSuite:
        return gx.ExpectationSuite(
            name="strict",
            expectations=[
                gx.expectations.ExpectTableRowCountToBeBetween(min_value=10, max_value=20, strict_max=True)
            ],
        )

    assert validate_expectations(good.head(5), suite, row_count=10).success
    assert not validate_expectations(good.head(5), suite, row_count=20).success
    assert not validate_expectations(good.head(5), suite, row_count=9).success


def test_bad_arguments_are_refused(good: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="cannot be the exact size"):
        validate_expectations(good, loan_expectation_suite, row_count=10)
    with pytest.raises(InvalidInputError, match="expected a pandas DataFrame"):
        validate_expectations(good.to_dict(), loan_expectation_suite)  # type: ignore[arg-type]


def test_validation_prints_nothing(good: pd.DataFrame, capfd: pytest.CaptureFixture[str]) -> None:
    validate_expectations(good, loan_expectation_suite)

    captured = capfd.readouterr()
    assert captured.out == ""
    assert "Calculating Metrics" not in captured.err


def test_data_docs_are_rendered_into_the_given_folder(good: pd.DataFrame, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    batch = good.assign(**{TARGET_COLUMN: 1})

    report = validate_expectations(batch, loan_expectation_suite, data_docs_dir=docs, row_count=60_000_000)

    assert report.data_docs_index == docs / "index.html"
    index = report.data_docs_index.read_text()
    assert "loans" in index
    assert (docs / "expectations" / "loans.html").is_file()
    (validation_page,) = (docs / "validations" / "loans").rglob("*.html")
    page = validation_page.read_text()
    assert "approved" in page
    # The exact row count is judged outside GX; the rendered suite says so in its notes.
    assert "exact count of 60,000,000 rows (failed)" in (docs / "expectations" / "loans.html").read_text()
    assert failed(report) == {
        ("expect_table_row_count_to_be_between", None),
        ("expect_column_mean_to_be_between", TARGET_COLUMN),
    }
    # Same results with or without rendering.
    plain = validate_expectations(batch, loan_expectation_suite, row_count=60_000_000)
    assert plain.results == report.results
