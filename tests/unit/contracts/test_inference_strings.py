"""The request contract of string, boolean and nullable features, and of a served vocabulary."""

from __future__ import annotations

import pandera.pandas as pa
import pydantic
import pytest
from pandera.typing import Series

from contracts.inference import request_model


class Pets(pa.DataFrameModel):
    species: Series[str] = pa.Field(isin=["cat", "dog", "fish"])
    indoor: Series[bool]
    weight: Series[float] = pa.Field(ge=0, nullable=True)


def test_strings_and_booleans_are_strict() -> None:
    model = request_model(Pets, feature_columns=["species", "indoor", "weight"], name="Pet")
    model(species="cat", indoor=True, weight=4.0)
    with pytest.raises(pydantic.ValidationError, match="must be one of"):
        model(species="cow", indoor=True, weight=4.0)
    with pytest.raises(pydantic.ValidationError):
        model(species="cat", indoor="yes", weight=4.0)  # not a boolean
    with pytest.raises(pydantic.ValidationError):
        model(species="cat", indoor=True, weight=None)  # nulls only where the model imputes them


def test_a_served_vocabulary_and_imputed_nulls() -> None:
    model = request_model(
        Pets,
        feature_columns=["species", "indoor", "weight"],
        name="Pet",
        allowed_values={"species": ["cat", "dog"]},  # fish never seen in training, refused by policy
        nullable={"weight"},
    )
    model(species="dog", indoor=False, weight=None)
    with pytest.raises(pydantic.ValidationError, match=r"must be one of \['cat', 'dog'\]"):
        model(species="fish", indoor=False, weight=1.0)
    schema = model.model_json_schema()["properties"]["species"]
    assert schema["enum"] == ["cat", "dog"]
