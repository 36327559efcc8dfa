"""The loan contracts accept what the generator produces and name every planted defect exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pandera.errors as pandera_errors
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import FailedHealthCheck

from contracts.loans import (
    FEATURE_COLUMNS,
    KEY_COLUMN,
    TARGET_COLUMN,
    LoanApplication,
    LoanApplicationRaw,
)
from tasks.generate import GeneratorConfig, generate_frame


def failures(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> pd.DataFrame:
    """Failure cases of a lazy validation that must fail."""
    with pytest.raises(pandera_errors.SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    return caught.value.failure_cases


def failed_pairs(cases: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(cases["column"], cases["check"], strict=True))


def good_batch(rows: int = 300, **options) -> pd.DataFrame:
    return generate_frame(GeneratorConfig(rows=rows, **options))


def test_columns_are_declared_in_both_stages() -> None:
    declared = list(LoanApplicationRaw.to_schema().columns)
    assert declared == [KEY_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN]
    assert list(LoanApplication.to_schema().columns) == declared


@pytest.mark.parametrize("function", range(10))
@pytest.mark.parametrize("covariate_shift", [0.0, 0.5, 1.0])
def test_generated_batches_pass_both_stages(function: int, covariate_shift: float) -> None:
    frame = good_batch(seed=function * 7 + 1, function=function, covariate_shift=covariate_shift)

    raw = LoanApplicationRaw.validate(frame, lazy=True)
    validated = LoanApplication.validate(raw, lazy=True)

    assert len(validated) == 300
    assert validated[KEY_COLUMN].is_unique


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_large_batch_with_many_ids_passes(seed: int) -> None:
    frame = good_batch(rows=20_000, seed=seed, first_id=10**9)
    assert len(LoanApplication.validate(frame, lazy=True)) == 20_000


def test_every_planted_defect_kind_is_named_by_column_and_check() -> None:
    frame = good_batch(rows=400, seed=3, defect_rate=0.03)

    cases = failures(LoanApplication, frame)

    assert failed_pairs(cases) == {
        ("salary", "not_nullable"),
        ("age", "greater_than_or_equal_to(20)"),
        ("education_level", "isin([0, 1, 2, 3, 4])"),
        (KEY_COLUMN, "field_uniqueness"),
    }
    # Each failing row is reported with its index, so the report can show the offending rows.
    negative_ages = cases[cases["column"] == "age"]
    assert (negative_ages["failure_case"] < 0).all()
    assert set(negative_ages["index"]) == set(frame.index[frame["age"] < 0])


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("salary", np.nan, "not_nullable"),
        ("salary", 10_000.0, "greater_than_or_equal_to(20000)"),
        ("age", 81, "less_than_or_equal_to(80)"),
        ("education_level", 5, "isin([0, 1, 2, 3, 4])"),
        ("car_maker", 0, "greater_than_or_equal_to(1)"),
        ("zipcode", 9, "less_than_or_equal_to(8)"),
        ("house_value", -1.0, "greater_than_or_equal_to(0)"),
        ("years_house_owned", 31, "less_than_or_equal_to(30)"),
        ("loan_amount", 500_001.0, "less_than_or_equal_to(500000)"),
        (TARGET_COLUMN, 2, "isin([0, 1])"),
    ],
)
def test_one_bad_value_fails_only_its_rule(column: str, value: object, check: str) -> None:
    frame = good_batch(rows=50, seed=11)
    if isinstance(value, float):
        frame[column] = frame[column].astype("float64")
    frame.loc[7, column] = value

    cases = failures(LoanApplication, frame)

    assert failed_pairs(cases) == {(column, check)}
    assert list(cases["index"]) == [7]


def test_commission_must_follow_salary() -> None:
    frame = good_batch(rows=50, seed=5)
    high_earner = int(np.flatnonzero(frame["salary"] >= 75_000)[0])
    frame.loc[high_earner, "commission"] = 5_000.0

    cases = failures(LoanApplication, frame)

    # A dataframe-level check reports every column of the failing row, all under its message.
    assert set(cases["schema_context"]) == {"DataFrameSchema"}
    assert set(cases["index"]) == {high_earner}
    assert cases["check"].str.startswith("commission must be 0 when salary >= 75,000").all()


def test_extra_column_is_rejected_by_the_strict_raw_model() -> None:
    frame = good_batch(rows=20).assign(credit_score=700)

    cases = failures(LoanApplicationRaw, frame)

    assert failed_pairs(cases) == {("LoanApplicationRaw", "column_in_schema")}
    assert list(cases["failure_case"]) == ["credit_score"]


def test_missing_column_is_reported_by_name() -> None:
    frame = good_batch(rows=20).drop(columns=["age", "loan_amount"])

    cases = failures(LoanApplicationRaw, frame)

    assert set(cases["check"]) == {"column_in_dataframe"}
    assert set(cases["failure_case"]) == {"age", "loan_amount"}


def test_raw_model_coerces_text_numbers_and_reports_text_that_is_not_one() -> None:
    frame = good_batch(rows=20).astype({"age": str, "salary": str})
    assert LoanApplicationRaw.validate(frame)["salary"].dtype == "float64"

    frame.loc[4, "age"] = "forty"
    cases = failures(LoanApplicationRaw, frame)

    assert set(cases["column"]) == {"age"}
    assert "forty" in set(cases["failure_case"])
    assert set(cases["index"].dropna()) == {4}


def _without_dataframe_checks(model: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    schema = model.to_schema()
    return pa.DataFrameSchema(
        columns=schema.columns, checks=[], strict=schema.strict, coerce=schema.coerce, name=schema.name
    )


def _follow_commission_rule(frame: pd.DataFrame) -> pd.DataFrame:
    """Apply the benchmark's commission rule to drawn values, keeping them in their column's domain."""
    high = frame["salary"] >= 75_000
    commission = frame["commission"].clip(10_000, 75_000).where(~high, 0.0)
    return frame.assign(commission=commission)


# pandera cannot draw frames for LoanApplication's dataframe-level check (commission is 0 exactly
# when salary >= 75,000): it falls back to filtering whole drawn frames, which virtually never pass
# (hypothesis fails its filter_too_much health check, after a UserWarning). So the property is split:
# the column strategies honour every column check, and applying the documented commission rule to
# any such frame yields a frame the full model accepts.
# Hypothesis warns when the global `random` state changes while a strategy draws; after the integration
# tests, background threads of the session's servers (Prefect's event and log workers) draw from it
# concurrently, which is not the strategy's doing.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_without_dataframe_checks(LoanApplication).strategy(size=25))
def test_strategy_frames_satisfy_the_contract(frame: pd.DataFrame) -> None:
    assert frame[KEY_COLUMN].is_unique
    assert frame["education_level"].isin([0, 1, 2, 3, 4]).all()

    validated = LoanApplication.validate(_follow_commission_rule(frame), lazy=True)

    assert len(validated) == 25


@pytest.mark.slow
def test_full_model_strategy_cannot_satisfy_the_dataframe_check() -> None:
    # Documents why the property test above draws from the column strategies: if pandera ever
    # learns to draw for this check, this test fails and the property test should use the model.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Dataframe check doesn't have a defined strategy")
        strategy = LoanApplication.strategy(size=25)

        @settings(max_examples=5, deadline=None, database=None)
        @given(frame=strategy)
        def draw(frame: pd.DataFrame) -> None:
            LoanApplication.validate(frame)

        with pytest.raises(FailedHealthCheck, match="filtering out a lot of inputs"):
            draw()
