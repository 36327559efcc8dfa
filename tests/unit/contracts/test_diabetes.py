"""The diabetes contracts accept scikit-learn's data in original units and refuse corrupted copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors as pandera_errors
import pytest

from contracts.diabetes import (
    FEATURE_COLUMNS,
    KEY_COLUMN,
    TARGET_COLUMN,
    DiabetesPatient,
    DiabetesRaw,
    diabetes_expectation_suite,
)
from tasks.datasets import Slice, get_dataset
from tasks.ingestion.sources import read_chunks
from tasks.sample_data import diabetes_frame, write_sample_data

FRIEDEWALD = "s2 (LDL) must equal s1 - s3 - exp(s5) / 5 (Friedewald) within 1 mg/dL"
RATIO = "s4 (TC/HDL) must equal s1 / s3 within 1"


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return diabetes_frame()


@pytest.fixture
def frame(reference: pd.DataFrame) -> pd.DataFrame:
    return reference.copy()


def failures(frame: pd.DataFrame, model=DiabetesPatient) -> pd.DataFrame:
    with pytest.raises(pandera_errors.SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    return caught.value.failure_cases


def test_frame_has_the_contract_columns_and_sklearn_values(reference: pd.DataFrame) -> None:
    assert list(reference.columns) == [KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN]
    assert list(reference[KEY_COLUMN]) == list(range(442))
    assert reference["age"].dtype == "int64" and reference["sex"].dtype == "int64"
    # Original units (scaled=False): the first patient is 59, BMI 32.1, progression 151.
    assert reference.loc[0, ["age", "sex", "bmi", "bp", "s1", "s6"]].tolist() == [59, 2, 32.1, 101, 157, 87]
    assert reference.loc[0, "s5"] == pytest.approx(4.8598)
    assert reference.loc[0, TARGET_COLUMN] == 151.0
    assert reference["sex"].value_counts().to_dict() == {1: 235, 2: 207}
    assert reference[TARGET_COLUMN].mean() == pytest.approx(152.1335, abs=1e-4)


def test_sklearn_frame_passes_both_stages(frame: pd.DataFrame) -> None:
    validated = DiabetesPatient.validate(DiabetesRaw.validate(frame, lazy=True), lazy=True)
    assert validated.shape == (442, 12)


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("age", 17, "greater_than_or_equal_to(18)"),
        ("age", 590, "less_than_or_equal_to(120)"),  # months, or a typo
        ("sex", 0, "isin([1, 2])"),  # 0/1 coding
        ("bmi", 0.0617, "greater_than_or_equal_to(10)"),  # scikit-learn's scaled value
        ("bp", 0.0, "greater_than(0)"),
        ("s6", -1.0, "greater_than(0)"),
        (TARGET_COLUMN, -5.0, "greater_than_or_equal_to(0)"),
        ("bmi", np.nan, "not_nullable"),
        ("s5", np.nan, "not_nullable"),  # reported once: the Friedewald check skips a missing value
    ],
)
def test_corrupted_value_fails_its_rule(frame: pd.DataFrame, column: str, value: object, check: str) -> None:
    frame.loc[10, column] = value

    cases = failures(frame)

    assert set(zip(cases["column"], cases["check"], strict=True)) == {(column, check)}
    assert list(cases["index"]) == [10]


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({"s2": lambda row: row["s2"] + 10}, {FRIEDEWALD}),  # LDL shifted
        ({"s4": lambda row: row["s4"] + 2}, {RATIO}),  # ratio of another row
        ({"s5": lambda row: np.exp(row["s5"])}, {FRIEDEWALD}),  # triglycerides not logged
        ({"s5": lambda row: 1_000.0}, {FRIEDEWALD}),  # exp(1000) overflows: a failure, not a warning
        # Total cholesterol and HDL swapped: LDL no longer follows and the ratio drops below 1.
        ({"s1": lambda row: row["s3"], "s3": lambda row: row["s1"]}, {FRIEDEWALD, RATIO}),
    ],
)
def test_inconsistent_lipids_fail_the_row(frame: pd.DataFrame, change: dict, rules: set[str]) -> None:
    row = 20
    original = frame.loc[row].copy()
    for column, compute in change.items():
        frame.loc[row, column] = compute(original)

    cases = failures(frame)

    frame_cases = cases[cases["schema_context"] == "DataFrameSchema"]
    assert set(frame_cases["check"]) == rules
    assert set(frame_cases["index"]) == {row}


def test_strict_raw_model_rejects_extra_and_reports_missing_columns(frame: pd.DataFrame) -> None:
    extra = failures(frame.assign(patient_name="x"), DiabetesRaw)
    assert list(extra["failure_case"]) == ["patient_name"]
    assert set(extra["check"]) == {"column_in_schema"}

    missing = failures(frame.drop(columns=["s3"]), DiabetesRaw)
    assert list(missing["failure_case"]) == ["s3"]
    assert set(missing["check"]) == {"column_in_dataframe"}


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_written_file_reads_back_valid_through_the_ingest_reader(
    tmp_path, reference: pd.DataFrame, file_format: str
) -> None:
    destination = tmp_path / "nested" / f"diabetes.{file_format}"

    assert write_sample_data("diabetes", str(destination), file_format=file_format) == str(destination)

    read = pd.concat(read_chunks(destination, file_format, chunk_rows=100, name=destination.name))
    validated = DiabetesPatient.validate(DiabetesRaw.validate(read.reset_index(drop=True)))
    pd.testing.assert_frame_equal(validated, reference, check_exact=False, rtol=1e-12)
    assert list(destination.parent.iterdir()) == [destination]  # no '.partial' left behind


def test_expectation_suite_passes_on_the_reference_data(reference: pd.DataFrame) -> None:
    from tasks.gx_validation import validate_expectations

    report = validate_expectations(reference, diabetes_expectation_suite)

    assert report.success, report.failures()
    assert report.statistics["evaluated_expectations"] == 1 + 12 + 6 + 1 + 1
    means = {
        r["column"]: r["observed_value"]
        for r in report.results
        if r["expectation"].endswith("mean_to_be_between")
    }
    assert means[TARGET_COLUMN] == pytest.approx(reference[TARGET_COLUMN].mean())


def test_expectation_suite_fails_on_one_sex_and_a_degenerate_target(reference: pd.DataFrame) -> None:
    from tasks.gx_validation import validate_expectations

    # Patients coded 1 only, every outcome 1,500 (another scale, and constant): every row is valid.
    batch = reference[reference["sex"] == 1].assign(**{TARGET_COLUMN: 1_500.0})
    DiabetesPatient.validate(batch)

    report = validate_expectations(batch, diabetes_expectation_suite)

    assert not report.success
    assert {(r["expectation"], r["column"]) for r in report.failures()} == {
        ("expect_column_mean_to_be_between", "sex"),
        ("expect_column_mean_to_be_between", TARGET_COLUMN),
        ("expect_column_stdev_to_be_between", TARGET_COLUMN),
    }


def test_spec_is_a_sound_regression_dataset(reference: pd.DataFrame) -> None:
    spec = get_dataset("diabetes")

    assert spec.problems() == []
    assert (spec.task, spec.target, spec.key_columns) == ("regression", TARGET_COLUMN, (KEY_COLUMN,))
    assert spec.categorical_columns == ("sex",)
    assert spec.feature_encodings == {**dict.fromkeys(FEATURE_COLUMNS, "numeric"), "sex": "one_hot"}
    assert spec.slices == (Slice("sex"), Slice("age", bins=(18, 40, 60, 120), name="age_band"))
    bands = spec.slices[1].groups(reference).value_counts(sort=False).to_dict()
    assert bands == {"18-39": 117, "40-59": 222, "60-120": 103}  # every patient in a band
