"""The penguin contracts accept the Palmer penguins data, nulls included, and refuse corrupted copies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pandera.errors as pandera_errors
import pytest

from contracts.penguins import (
    FEATURE_COLUMNS,
    KEY_COLUMN,
    MEASUREMENT_COLUMNS,
    TARGET_COLUMN,
    Penguin,
    PenguinRaw,
    penguin_expectation_suite,
)
from tasks.datasets import Slice, get_dataset
from tasks.ingestion.sources import read_chunks
from tasks.sample_data import penguins_frame, write_sample_data


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return penguins_frame()


@pytest.fixture
def frame(reference: pd.DataFrame) -> pd.DataFrame:
    return reference.copy()


def failures(frame: pd.DataFrame, model=Penguin) -> pd.DataFrame:
    with pytest.raises(pandera_errors.SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    return caught.value.failure_cases


def test_frame_has_the_contract_columns_and_the_package_values(reference: pd.DataFrame) -> None:
    assert list(reference.columns) == [KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN]
    assert list(reference[KEY_COLUMN]) == list(range(344))
    assert reference[TARGET_COLUMN].value_counts().to_dict() == {
        "Adelie": 152,
        "Gentoo": 124,
        "Chinstrap": 68,
    }
    first = reference.loc[0]
    assert (first["island"], first["sex"], first["year"]) == ("Torgersen", "male", 2007)
    assert [first[c] for c in MEASUREMENT_COLUMNS] == [39.1, 18.7, 181.0, 3750.0]
    # The package's missing values are kept: two birds never measured, eleven of undetermined sex.
    assert reference[list(MEASUREMENT_COLUMNS)].isna().sum().to_dict() == dict.fromkeys(
        MEASUREMENT_COLUMNS, 2
    )
    assert reference.loc[[3, 271], list(MEASUREMENT_COLUMNS)].isna().all(axis=None)
    assert reference["sex"].isna().sum() == 11


def test_package_frame_passes_both_stages_with_its_nulls(frame: pd.DataFrame) -> None:
    validated = Penguin.validate(PenguinRaw.validate(frame, lazy=True), lazy=True)
    assert validated.shape == (344, 9)
    assert validated["sex"].isna().sum() == 11 and validated["body_mass_g"].isna().sum() == 2


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("bill_length_mm", 3.91, "greater_than_or_equal_to(20)"),  # centimetres
        ("bill_depth_mm", 44.0, "less_than_or_equal_to(40)"),  # the length's value
        ("flipper_length_mm", 2_010.0, "less_than_or_equal_to(350)"),
        ("body_mass_g", 3.75, "greater_than_or_equal_to(1000)"),  # kilograms
        ("island", "Anvers", "isin(['Biscoe', 'Dream', 'Torgersen'])"),
        ("island", None, "not_nullable"),
        ("sex", "MALE", "isin(['female', 'male'])"),
        ("year", 20_009, "less_than_or_equal_to(2100)"),
        ("year", 1_999, "greater_than_or_equal_to(2007)"),
        (TARGET_COLUMN, "Emperor", "isin(['Adelie', 'Chinstrap', 'Gentoo'])"),
        (TARGET_COLUMN, None, "not_nullable"),
    ],
)
def test_corrupted_value_fails_its_rule(frame: pd.DataFrame, column: str, value: object, check: str) -> None:
    frame.loc[10, column] = value

    cases = failures(frame)

    assert set(zip(cases["column"], cases["check"], strict=True)) == {(column, check)}
    assert list(cases["index"]) == [10]


def test_missing_measurements_and_sex_are_allowed(frame: pd.DataFrame) -> None:
    # The declared policy: nulls in the measurements are imputed at training, a null sex is one-hot's
    # unknown bucket; neither is a contract violation.
    frame.loc[10, [*MEASUREMENT_COLUMNS, "sex"]] = np.nan

    validated = Penguin.validate(frame, lazy=True)

    assert validated.loc[10, [*MEASUREMENT_COLUMNS, "sex"]].isna().all()


def test_duplicated_penguin_id_is_named(frame: pd.DataFrame) -> None:
    frame.loc[5, KEY_COLUMN] = 4

    cases = failures(frame)

    assert set(cases["check"]) == {"field_uniqueness"}
    assert set(cases["index"]) == {4, 5}


def test_strict_raw_model_rejects_extra_and_reports_missing_columns(frame: pd.DataFrame) -> None:
    extra = failures(frame.assign(band_number="x"), PenguinRaw)
    assert list(extra["failure_case"]) == ["band_number"]
    assert set(extra["check"]) == {"column_in_schema"}

    missing = failures(frame.drop(columns=["island"]), PenguinRaw)
    assert list(missing["failure_case"]) == ["island"]
    assert set(missing["check"]) == {"column_in_dataframe"}


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_written_file_reads_back_valid_through_the_ingest_reader(
    tmp_path, reference: pd.DataFrame, file_format: str
) -> None:
    destination = tmp_path / "nested" / f"penguins.{file_format}"

    assert write_sample_data("penguins", str(destination), file_format=file_format) == str(destination)

    # The reader `lockgate ingest` uses (CSV: every column as text, empty fields null).
    read = pd.concat(read_chunks(destination, file_format, chunk_rows=100, name=destination.name))
    validated = Penguin.validate(PenguinRaw.validate(read.reset_index(drop=True)))
    pd.testing.assert_frame_equal(validated, reference)
    assert list(destination.parent.iterdir()) == [destination]  # no '.partial' left behind


def test_expectation_suite_passes_on_the_reference_data(reference: pd.DataFrame) -> None:
    from tasks.gx_validation import validate_expectations

    report = validate_expectations(reference, penguin_expectation_suite)

    assert report.success, report.failures()
    assert report.statistics["evaluated_expectations"] == 1 + 4 + 4 + 1 + 4 + 1 + 1
    means = {
        r["column"]: r["observed_value"]
        for r in report.results
        if r["expectation"].endswith("mean_to_be_between")
    }
    assert means["body_mass_g"] == pytest.approx(reference["body_mass_g"].mean())  # nulls skipped


def test_expectation_suite_fails_on_one_species_and_a_lost_column(reference: pd.DataFrame) -> None:
    from tasks.gx_validation import validate_expectations

    # Adelies only, body mass missing for a fifth of them: both batch-level, every row is valid.
    adelie = reference[reference[TARGET_COLUMN] == "Adelie"].copy()
    adelie.loc[adelie.index[::5], "body_mass_g"] = np.nan
    Penguin.validate(adelie)

    report = validate_expectations(adelie, penguin_expectation_suite)

    assert not report.success
    assert {(r["expectation"], r["column"]) for r in report.failures()} == {
        ("expect_column_unique_value_count_to_be_between", TARGET_COLUMN),
        ("expect_column_values_to_not_be_null", "body_mass_g"),
    }


def test_spec_is_a_sound_multiclass_dataset(reference: pd.DataFrame) -> None:
    spec = get_dataset("penguins")

    assert spec.problems() == []
    assert (spec.task, spec.target, spec.key_columns) == ("multiclass", TARGET_COLUMN, (KEY_COLUMN,))
    assert spec.feature_encodings == {
        "island": "one_hot",
        **dict.fromkeys(MEASUREMENT_COLUMNS, "numeric"),
        "sex": "one_hot",
        "year": "numeric",
    }
    assert set(spec.categorical_columns) == {"island", "sex"}
    assert dict(spec.missing) == dict.fromkeys(MEASUREMENT_COLUMNS, "mean")
    assert spec.slices == (Slice("sex"), Slice("island"))
    sexes = spec.slices[0].groups(reference).value_counts(dropna=False).to_dict()
    assert sexes == {"male": 168, "female": 165, np.nan: 11}
    # The isin on the target is what tells three classes: declared binary, the spec is refused.
    binary = dataclasses.replace(spec, task="binary")
    assert any("allows 3" in problem for problem in binary.problems())
