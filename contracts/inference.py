"""The inference request contract, derived from a dataset's validated pandera model.

A request carries one value per feature column, under the same names, types and bounds that the
training data was held to; nothing is restated by hand, so the two cannot drift apart. The request
is stricter than a DataFrame row in what a JSON payload can get wrong: unknown fields are refused
(``extra='forbid'``), nulls are refused, floats must be finite, and types are strict (``"5"`` is not
a number, ``true`` is not 1, ``1.5`` is not an integer).

Only column checks are carried over. Dataframe-level checks (such as the loans contract's rule
tying commission to salary) describe how training rows were produced, not what a model can score,
and stay with the data contract.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Annotated, Any

import pandera.pandas as pa
import pydantic
from pydantic import AfterValidator, ConfigDict, Field, Strict

from infra.errors import UnsupportedContractError

# pandera check name -> the pydantic Field bounds it becomes (from the check's statistics).
_BOUND_CHECKS = {
    "greater_than": ("min_value", "gt"),
    "greater_than_or_equal_to": ("min_value", "ge"),
    "less_than": ("max_value", "lt"),
    "less_than_or_equal_to": ("max_value", "le"),
}


def request_model(
    validated_model: type[pa.DataFrameModel],
    *,
    feature_columns: Iterable[str],
    name: str,
    allowed_values: Mapping[str, list[Any]] | None = None,
    nullable: Collection[str] = (),
) -> type[pydantic.BaseModel]:
    """Build the pydantic model of one inference request from a dataset's validated model.

    Args:
        validated_model: The pandera model every training row satisfied (e.g. ``LoanApplication``).
        feature_columns: The model inputs, in order; each becomes a required field.
        name: Name of the generated class (shown in OpenAPI schemas and error messages).
        allowed_values: Per column, the only values a request may carry (a served model's vocabulary
            of a feature whose unseen values are refused); named in the 422 and the OpenAPI enum.
        nullable: Columns a request may leave null (imputed numbers, categories whose unknown
            bucket takes nulls).

    Returns:
        A pydantic model with one required, non-null field per feature column: ``int`` or ``float``
        from the pandera dtype, and ``ge``/``gt``/``le``/``lt`` bounds or an allowed set from the
        column checks.

    Raises:
        UnsupportedContractError: A feature column is not declared, has a dtype other than integer
            or float, or has a check this function cannot translate (so it is never silently
            dropped).
    """
    schema = validated_model.to_schema()
    fields: dict[str, Any] = {}
    for column in feature_columns:
        if column not in schema.columns:
            raise UnsupportedContractError(
                f"feature column {column!r} is not declared in {validated_model.__name__}"
            )
        annotated = _field_type(validated_model, schema.columns[column], (allowed_values or {}).get(column))
        fields[column] = (annotated | None, ...) if column in nullable else (annotated, ...)
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
    return pydantic.create_model(name, __config__=config, __doc__=_docstring(validated_model), **fields)


def _docstring(validated_model: type[pa.DataFrameModel]) -> str:
    """Docstring of the generated request class."""
    return f"One inference request: the feature columns of {validated_model.__name__}."


def _field_type(
    validated_model: type[pa.DataFrameModel], column: pa.Column, vocabulary: list[Any] | None = None
) -> Any:
    """The annotated pydantic type of one feature column."""
    python_type = _python_type(validated_model, column)
    bounds: dict[str, Any] = {}
    validators = []
    extra: dict[str, Any] = {}
    if vocabulary is not None:
        validators.append(AfterValidator(_one_of(list(vocabulary))))
        extra["enum"] = list(vocabulary)
    for check in column.checks:
        statistics = check.statistics or {}
        if check.name in _BOUND_CHECKS:
            statistic, bound = _BOUND_CHECKS[check.name]
            bounds[bound] = statistics[statistic]
        elif check.name == "in_range":
            bounds["ge" if statistics.get("include_min", True) else "gt"] = statistics["min_value"]
            bounds["le" if statistics.get("include_max", True) else "lt"] = statistics["max_value"]
        elif check.name in ("isin", "equal_to") and vocabulary is not None:
            continue  # the model's vocabulary (a subset of the allowed values) is stricter
        elif check.name == "str_length":
            bounds["min_length"] = statistics.get("min_value")
            bounds["max_length"] = statistics.get("max_value")
            bounds = {k: v for k, v in bounds.items() if v is not None}
        elif check.name in ("isin", "equal_to"):
            allowed = list(statistics["allowed_values"]) if check.name == "isin" else [statistics["value"]]
            # A validator, not ``Literal``: pydantic matches Literal members by equality, so it would
            # accept ``true`` for 1 and ``1.0`` for 1; the strict base type refuses both first.
            validators.append(AfterValidator(_one_of(allowed)))
            extra["enum"] = allowed
        elif check.name == "notin":
            validators.append(AfterValidator(_none_of(list(statistics["forbidden_values"]))))
        else:
            raise UnsupportedContractError(
                f"{validated_model.__name__}.{column.name}: check {check.name!r} has no request "
                "equivalent; add it to contracts.inference or drop it from the feature columns"
            )
    field = Field(
        description=_description(validated_model, column.name),
        json_schema_extra=extra or None,
        **bounds,
    )
    return Annotated[(python_type, Strict(), field, *validators)]


def _python_type(validated_model: type[pa.DataFrameModel], column: pa.Column) -> type:
    """``int``, ``float``, ``bool`` or ``str`` for a pandera integer, float, boolean or string dtype."""
    dtype = str(column.dtype).lower()
    if dtype.startswith("bool"):
        return bool
    if "int" in dtype and "interval" not in dtype:
        return int
    if "float" in dtype:
        return float
    if "str" in dtype or dtype in ("object", "category"):
        return str
    raise UnsupportedContractError(
        f"{validated_model.__name__}.{column.name}: dtype {column.dtype} has no request equivalent "
        "(integer, float, boolean and string features are supported)"
    )


def _description(validated_model: type[pa.DataFrameModel], column_name: str) -> str | None:
    """The column's description, from the nearest model in the hierarchy that gives one.

    Refined models (``LoanApplication``) redeclare fields to tighten them and usually leave the
    description on the raw model they inherit from.
    """
    for model in validated_model.__mro__:
        if issubclass(model, pa.DataFrameModel) and model is not pa.DataFrameModel:
            column = model.to_schema().columns.get(column_name)
            if column is not None and column.description:
                return column.description
    return None


def _one_of(allowed: list[Any]):
    """A validator accepting only values in ``allowed``."""
    allowed_set = set(allowed)

    def check(value: Any) -> Any:
        if value not in allowed_set:
            raise ValueError(f"must be one of {allowed}")
        return value

    return check


def _none_of(forbidden: list[Any]):
    """A validator refusing values in ``forbidden``."""
    forbidden_set = set(forbidden)

    def check(value: Any) -> Any:
        if value in forbidden_set:
            raise ValueError(f"must not be one of {forbidden}")
        return value

    return check
