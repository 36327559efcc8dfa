"""The breast cancer contracts accept scikit-learn's data and refuse corrupted copies of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors as pandera_errors
import pytest

from contracts.breast_cancer import (
    FEATURE_COLUMNS,
    KEY_COLUMN,
    TARGET_COLUMN,
    BreastCancerRaw,
    BreastCancerSample,
)
from tasks.sample_data import breast_cancer_frame, write_breast_cancer


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return breast_cancer_frame()


@pytest.fixture
def frame(reference: pd.DataFrame) -> pd.DataFrame:
    return reference.copy()


def failures(frame: pd.DataFrame, model=BreastCancerSample) -> pd.DataFrame:
    with pytest.raises(pandera_errors.SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    return caught.value.failure_cases


def test_frame_has_the_contract_columns_and_sklearn_values(reference: pd.DataFrame) -> None:
    assert list(reference.columns) == [KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN]
    assert len(FEATURE_COLUMNS) == 30
    assert FEATURE_COLUMNS[0] == "mean_radius"
    assert FEATURE_COLUMNS[-1] == "worst_fractal_dimension"
    assert list(reference[KEY_COLUMN]) == list(range(569))
    # scikit-learn's bundled data: 357 benign (target 1), 212 malignant.
    assert reference[TARGET_COLUMN].sum() == 357
    assert reference.loc[0, "mean_radius"] == pytest.approx(17.99)
    assert reference.loc[568, "worst_fractal_dimension"] == pytest.approx(0.07039)


def test_sklearn_frame_passes_both_stages(frame: pd.DataFrame) -> None:
    validated = BreastCancerSample.validate(BreastCancerRaw.validate(frame, lazy=True), lazy=True)
    assert validated.shape == (569, 32)


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("mean_radius", 0.0, "greater_than(0)"),
        ("worst_area", -5.0, "greater_than(0)"),
        ("mean_texture", -0.1, "greater_than_or_equal_to(0)"),
        ("concavity_error", -1e-6, "greater_than_or_equal_to(0)"),
        ("mean_fractal_dimension", 1.06, "less_than_or_equal_to(1)"),
        ("mean_compactness", np.nan, "not_nullable"),
        (TARGET_COLUMN, 2, "isin([0, 1])"),
    ],
)
def test_corrupted_value_fails_its_rule(frame: pd.DataFrame, column: str, value: object, check: str) -> None:
    frame.loc[10, column] = value

    cases = failures(frame)

    column_cases = cases[cases["schema_context"] == "Column"]
    assert set(zip(column_cases["column"], column_cases["check"], strict=True)) == {(column, check)}
    assert list(column_cases["index"]) == [10]


def test_duplicated_sample_id_is_named(frame: pd.DataFrame) -> None:
    frame.loc[5, KEY_COLUMN] = 4

    cases = failures(frame)

    assert set(cases["check"]) == {"field_uniqueness"}
    assert set(cases["index"]) == {4, 5}


def test_worst_below_mean_is_rejected(frame: pd.DataFrame) -> None:
    # Swapping a row's mean and worst radius is the column mix-up the dataframe check exists for.
    row = 20
    mean, worst = frame.loc[row, "mean_radius"], frame.loc[row, "worst_radius"]
    assert worst > mean
    frame.loc[row, "mean_radius"], frame.loc[row, "worst_radius"] = worst, mean

    cases = failures(frame)

    assert set(cases["index"]) == {row}
    assert cases["check"].str.startswith("worst_<measurement> must not be below mean_<measurement>").all()


def test_strict_raw_model_rejects_extra_and_reports_missing_columns(frame: pd.DataFrame) -> None:
    extra = failures(frame.assign(patient_name="x"), BreastCancerRaw)
    assert list(extra["failure_case"]) == ["patient_name"]
    assert set(extra["check"]) == {"column_in_schema"}

    missing = failures(frame.drop(columns=["worst_symmetry"]), BreastCancerRaw)
    assert list(missing["failure_case"]) == ["worst_symmetry"]
    assert set(missing["check"]) == {"column_in_dataframe"}


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_written_file_reads_back_valid(tmp_path, reference: pd.DataFrame, file_format: str) -> None:
    destination = tmp_path / "nested" / f"breast_cancer.{file_format}"

    assert write_breast_cancer(str(destination), file_format=file_format) == str(destination)

    read = pd.read_csv(destination) if file_format == "csv" else pd.read_parquet(destination)
    validated = BreastCancerSample.validate(BreastCancerRaw.validate(read))
    pd.testing.assert_frame_equal(validated, reference, check_exact=False, rtol=1e-12)
    assert list(destination.parent.iterdir()) == [destination]  # no '.partial' left behind


def test_write_to_s3_uploads_through_the_given_client(tmp_path, reference: pd.DataFrame) -> None:
    uploads: dict[tuple[str, str], bytes] = {}

    class RecordingS3:
        def upload_file(self, filename: str, bucket: str, key: str) -> None:
            with open(filename, "rb") as handle:
                uploads[(bucket, key)] = handle.read()

    write_breast_cancer("s3://sources/bc/batch.parquet", file_format="parquet", s3_client=RecordingS3())

    (target,) = uploads
    assert target == ("sources", "bc/batch.parquet")
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(uploads[target])
    pd.testing.assert_frame_equal(pd.read_parquet(copy), reference)


@pytest.mark.parametrize(
    ("destination", "options", "message"),
    [
        ("out.json", {"file_format": "json"}, "unknown format 'json'"),
        ("s3://bucket/key.csv", {"file_format": "csv"}, "needs an S3 client"),
        ("s3://bucket-only", {"file_format": "csv", "s3_client": object()}, "expected s3://bucket/key"),
    ],
)
def test_write_refuses_bad_arguments(tmp_path, destination: str, options: dict, message: str) -> None:
    from infra.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=message):
        write_breast_cancer(
            destination if destination.startswith("s3") else str(tmp_path / destination), **options
        )
    assert list(tmp_path.iterdir()) == []


def test_expectation_suite_passes_on_the_reference_data(reference: pd.DataFrame) -> None:
    from contracts.breast_cancer import breast_cancer_expectation_suite
    from tasks.gx_validation import validate_expectations

    report = validate_expectations(reference, breast_cancer_expectation_suite)

    assert report.success, report.failures()
    assert report.statistics["evaluated_expectations"] == 1 + 32 + 5
    means = {
        r["column"]: r["observed_value"]
        for r in report.results
        if r["expectation"].endswith("mean_to_be_between")
    }
    assert means[TARGET_COLUMN] == pytest.approx(357 / 569)
    assert means["mean_radius"] == pytest.approx(reference["mean_radius"].mean())


def test_expectation_suite_fails_on_one_class_and_wrong_units(reference: pd.DataFrame) -> None:
    from contracts.breast_cancer import breast_cancer_expectation_suite
    from tasks.gx_validation import validate_expectations

    # Malignant cases only, with radii in another unit (x 10): both batch-level, every row is valid.
    malignant = reference[reference[TARGET_COLUMN] == 0]
    batch = malignant.assign(
        mean_radius=malignant["mean_radius"] * 10, worst_radius=malignant["worst_radius"] * 10
    )
    BreastCancerSample.validate(batch)

    report = validate_expectations(batch, breast_cancer_expectation_suite)

    assert not report.success
    assert {(r["expectation"], r["column"]) for r in report.failures()} == {
        ("expect_column_mean_to_be_between", TARGET_COLUMN),
        ("expect_column_mean_to_be_between", "mean_radius"),
    }
