"""The inference request contract is derived from the validated data contract and refuses bad payloads."""

from __future__ import annotations

import math
from typing import Any

import pandera.pandas as pa
import pydantic
import pytest
from pandera.typing import Series

from contracts.breast_cancer import FEATURE_COLUMNS as BREAST_CANCER_FEATURES
from contracts.breast_cancer import BreastCancerSample
from contracts.inference import UnsupportedContractError, request_model
from contracts.loans import FEATURE_COLUMNS, LoanApplication

# Built here, as a serving replica builds its own from the dataset's spec (nothing is built at import).
LoanInferenceRequest = request_model(
    LoanApplication, feature_columns=FEATURE_COLUMNS, name="LoanInferenceRequest"
)

VALID: dict[str, Any] = {
    "salary": 52_000.0,
    "commission": 12_500.5,
    "age": 34,
    "education_level": 2,
    "car_maker": 7,
    "zipcode": 3,
    "house_value": 250_000.0,
    "years_house_owned": 5,
    "loan_amount": 120_000,  # an int where a float is expected is a valid JSON number
}


def rejected_fields(payload: dict[str, Any]) -> dict[tuple, str]:
    """Field location -> error type of a payload that must be refused."""
    with pytest.raises(pydantic.ValidationError) as caught:
        LoanInferenceRequest.model_validate(payload)
    return {error["loc"]: error["type"] for error in caught.value.errors()}


def test_valid_record_is_accepted_with_its_types() -> None:
    request = LoanInferenceRequest.model_validate(VALID)

    assert list(request.model_dump()) == list(FEATURE_COLUMNS)
    assert request.loan_amount == 120_000.0
    assert isinstance(request.loan_amount, float)
    assert isinstance(request.age, int)


def test_json_payload_is_accepted() -> None:
    request = LoanInferenceRequest.model_validate_json(
        '{"salary": 80000, "commission": 0, "age": 61, "education_level": 4, "car_maker": 20,'
        ' "zipcode": 8, "house_value": 0, "years_house_owned": 30, "loan_amount": 500000}'
    )
    assert request.zipcode == 8


def test_fields_bounds_and_descriptions_come_from_the_pandera_model() -> None:
    schema = LoanInferenceRequest.model_json_schema()

    assert schema["required"] == list(FEATURE_COLUMNS)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["salary"] == {
        "description": "Yearly salary (USD).",
        "maximum": 150000,
        "minimum": 20000,
        "title": "Salary",
        "type": "number",
    }
    assert schema["properties"]["age"]["type"] == "integer"
    assert schema["properties"]["education_level"]["enum"] == [0, 1, 2, 3, 4]


def test_missing_field_is_named() -> None:
    payload = {key: value for key, value in VALID.items() if key != "age"}
    assert rejected_fields(payload) == {("age",): "missing"}


def test_extra_field_is_named() -> None:
    assert rejected_fields({**VALID, "approved": 1}) == {("approved",): "extra_forbidden"}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("age", "34", "int_type"),
        ("age", 34.5, "int_type"),
        ("age", True, "int_type"),
        ("education_level", 2.0, "int_type"),
        ("salary", "52000", "float_type"),
        ("salary", None, "float_type"),
        ("salary", math.nan, "finite_number"),
        ("house_value", math.inf, "finite_number"),
        ("loan_amount", -math.inf, "finite_number"),
    ],
)
def test_wrong_type_null_and_non_finite_are_refused(field: str, value: Any, error: str) -> None:
    assert rejected_fields({**VALID, field: value}) == {(field,): error}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("salary", 19_999.99, "greater_than_equal"),
        ("salary", 150_000.01, "less_than_equal"),
        ("age", 81, "less_than_equal"),
        ("car_maker", 0, "greater_than_equal"),
        ("education_level", 5, "value_error"),
        ("years_house_owned", 31, "less_than_equal"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: Any, error: str) -> None:
    assert rejected_fields({**VALID, field: value}) == {(field,): error}


def test_every_bad_field_is_reported_at_once() -> None:
    payload = {**VALID, "age": 10, "zipcode": "x", "salary": math.nan}
    assert set(rejected_fields(payload)) == {("age",), ("zipcode",), ("salary",)}


def test_breast_cancer_request_carries_strict_positive_and_unit_interval_bounds() -> None:
    model = request_model(
        BreastCancerSample, feature_columns=BREAST_CANCER_FEATURES, name="BreastCancerRequest"
    )
    valid = dict.fromkeys(BREAST_CANCER_FEATURES, 0.5)

    assert model.model_validate(valid).mean_radius == 0.5
    with pytest.raises(pydantic.ValidationError, match="mean_radius") as caught:
        model.model_validate({**valid, "mean_radius": 0.0, "worst_fractal_dimension": 1.5})
    assert {error["loc"][0] for error in caught.value.errors()} == {"mean_radius", "worst_fractal_dimension"}


def test_untranslatable_checks_and_types_are_refused_not_dropped() -> None:
    class Texty(pa.DataFrameModel):
        code: Series[str] = pa.Field(str_matches=r"^[A-Z]+$")
        score: Series[float] = pa.Field(ge=0)
        ratio: Series[float] = pa.Field(in_range={"min_value": 0, "max_value": 1, "include_max": False})

    with pytest.raises(UnsupportedContractError, match="Texty.code"):
        request_model(Texty, feature_columns=["code"], name="T")
    with pytest.raises(UnsupportedContractError, match="'missing' is not declared"):
        request_model(Texty, feature_columns=["score", "missing"], name="T")

    ratio = request_model(Texty, feature_columns=["score", "ratio"], name="T")
    assert ratio(score=1, ratio=0).ratio == 0
    with pytest.raises(pydantic.ValidationError, match="less than 1"):
        ratio(score=1, ratio=1)


def test_request_model_follows_the_data_contract() -> None:
    # Derived, not restated: the request bounds are exactly the validated model's column checks.
    schema = LoanApplication.to_schema()
    properties = LoanInferenceRequest.model_json_schema()["properties"]
    for column in FEATURE_COLUMNS:
        statistics = {}
        for check in schema.columns[column].checks:
            statistics.update(check.statistics)
        if "min_value" in statistics:
            assert properties[column]["minimum"] == statistics["min_value"]
            assert properties[column]["maximum"] == statistics["max_value"]
        else:
            assert properties[column]["enum"] == statistics["allowed_values"]
