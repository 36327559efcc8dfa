"""Read a user's data file as ingestion reads it and describe each column: its type, nulls, range and values.

Types are decided the way the raw contract will coerce them: a CSV arrives as text, so a column is an
integer when every value converts with ``astype("int64")``, a float when every value converts with
``astype("float64")``, and text otherwise. The frame coerced to those types then goes through pandera's
own schema inference (``pandera.infer_schema``) for nullability and ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera
import pandera.errors
import pandera.pandas as pa
from pandera import dtypes

from infra.errors import InvalidInputError, SourceFormatError
from tasks.ingestion.sources import SUFFIX_FORMATS, read_chunks

ColumnKind = Literal["int", "float", "bool", "str", "datetime", "other"]
# Distinct values listed (for ``isin`` checks and class labels) when a column has at most this many.
MAX_LISTED_VALUES = 50
READ_CHUNK_ROWS = 250_000
# A text value with a leading zero ("02134", "007") is a code; converting it to a number loses the zero.
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
# The dtype each kind is coerced to here: what a raw model's nullable ``Series[int]``, ``Series[bool]``
# (pandas' nullable Int64 and boolean), ``Series[float]``... coerce to.
KIND_DTYPES: dict[str, Any] = {
    "int": "Int64",
    "float": float,
    "bool": "boolean",
    "str": str,
    "datetime": "datetime64[ns]",
    "other": object,
}


@dataclass(frozen=True)
class ColumnProfile:
    """What one column of the data file holds, once coerced to its declared type.

    Attributes:
        name: The column's name in the file.
        kind: How it is declared: ``int``, ``float``, ``bool``, ``str``, ``datetime`` or ``other``
            (a type no encoder takes, declared as Python objects).
        nulls: Rows where it is empty.
        distinct: Distinct non-null values.
        minimum: Smallest value (numbers only; from pandera's inferred ``ge`` check).
        maximum: Largest value (numbers only; from pandera's inferred ``le`` check).
        mean: Mean of the values (numbers only).
        std: Standard deviation of the values (numbers only).
        values: The distinct values, sorted, when there are at most ``MAX_LISTED_VALUES``.
        integral: Every value is a whole number (integers, or floats that are integers with nulls).
        text_booleans: The text values are all true/false words (kept as text: the contract cannot coerce
            the words to booleans).
        leading_zeros: Some text values are numbers with a leading zero (kept as text codes).
    """

    name: str
    kind: ColumnKind
    nulls: int
    distinct: int
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    values: tuple[Any, ...] | None = None
    integral: bool = False
    text_booleans: bool = False
    leading_zeros: bool = False

    @property
    def nullable(self) -> bool:
        return self.nulls > 0

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")


@dataclass(frozen=True)
class DataProfile:
    """A data file as ingestion reads it, coerced, and described column by column."""

    source: str
    rows: int
    frame: pd.DataFrame  # as read (a CSV's values are text), what the raw contract is given
    typed: pd.DataFrame  # coerced to the declared types
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def read_data_file(path: Path) -> pd.DataFrame:
    """The whole file as ingestion reads it (``tasks.ingestion.sources.read_chunks``).

    Raises:
        InvalidInputError: the file does not exist, is a directory, has an unknown suffix, cannot be
            parsed, or has no rows.
    """
    if not path.exists():
        raise InvalidInputError(f"data file {str(path)!r} does not exist")
    if not path.is_file():
        raise InvalidInputError(f"{str(path)!r} is not a file: give one CSV, Parquet or JSON-lines file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InvalidInputError(
            f"cannot read {str(path)!r}: its suffix {suffix!r} is none of {', '.join(sorted(SUFFIX_FORMATS))}"
        )
    try:
        chunks = list(read_chunks(path, SUFFIX_FORMATS[suffix], chunk_rows=READ_CHUNK_ROWS, name=str(path)))
    except SourceFormatError as error:
        raise InvalidInputError(f"cannot read the data file: {error}") from error
    except OSError as error:
        raise InvalidInputError(f"cannot read {str(path)!r}: {error.strerror or error}") from error
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    if frame.empty:
        raise InvalidInputError(
            f"{str(path)!r} has no rows: scaffolding needs data to infer the contract from"
        )
    frame.columns = [str(column) for column in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise InvalidInputError(f"{str(path)!r} names columns {duplicated} more than once; rename them")
    return frame


def profile_data(frame: pd.DataFrame, *, source: str) -> DataProfile:
    """Decide each column's type, coerce the frame as the raw contract will, and describe the columns.

    Args:
        frame: The rows as read (``read_data_file``), or any DataFrame.
        source: Name of the file, for messages.

    Raises:
        InvalidInputError: a column does not coerce to the type decided for it.
    """
    kinds = {column: _kind_of(frame[column]) for column in frame.columns}
    schema = pa.DataFrameSchema(
        {column: pa.Column(KIND_DTYPES[kind], nullable=True) for column, kind in kinds.items()},
        coerce=True,
        strict=True,
    )
    try:
        typed = schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        columns = sorted({str(c) for c in errors.failure_cases["column"].dropna()})
        raise InvalidInputError(
            f"{source}: columns {columns} hold values of mixed types that no single column type accepts; "
            "clean them (or convert them to text) and run init again"
        ) from errors
    inferred = pandera.infer_schema(typed)
    columns = tuple(
        _profile(column, kinds[column], typed[column], inferred.columns[column], frame[column])
        for column in frame.columns
    )
    return DataProfile(source=source, rows=len(frame), frame=frame, typed=typed, columns=columns)


def _kind_of(series: pd.Series) -> ColumnKind:
    """The type a column is declared as, decided from what ingestion reads."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        # An integer column with nulls is read as floats (NaN marks the missing value).
        return "float" if series.isna().any() else "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "other"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "str" if pd.api.types.infer_dtype(dtype.categories) == "string" else "other"
    values = series.dropna()
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return "bool"
    if inferred in ("integer", "floating", "mixed-integer-float"):
        return _numeric_kind(values, nulls=series.isna().any())
    if inferred != "string" and not values.empty:
        return "other"
    if values.empty or values.astype(str).str.match(_LEADING_ZERO).any():
        return "str"
    return _numeric_kind(values, nulls=series.isna().any())


def _numeric_kind(values: pd.Series, *, nulls: bool) -> ColumnKind:
    """``int``, ``float`` or ``str``: the first type every value converts to (as pandera will coerce)."""
    try:
        values.astype("int64")
        return "float" if nulls else "int"
    except (ValueError, TypeError, OverflowError):
        pass
    try:
        values.astype("float64")
        return "float"
    except (ValueError, TypeError, OverflowError):
        return "str"


def _profile(name: str, kind: ColumnKind, typed: pd.Series, inferred: Any, read: pd.Series) -> ColumnProfile:
    """One column's description, its range from pandera's inferred ``ge``/``le`` checks."""
    values = typed.dropna()
    distinct = int(values.nunique())
    listed = None
    if distinct <= MAX_LISTED_VALUES and kind in ("int", "float", "bool", "str"):
        listed = tuple(_native(v) for v in sorted(values.unique().tolist()))
    base = {
        "name": name,
        "kind": kind,
        "nulls": int(typed.isna().sum()),
        "distinct": distinct,
        "values": listed,
    }
    if kind in ("int", "float") and dtypes.is_numeric(inferred.dtype) and not values.empty:
        bounds = {check.name: check.statistics for check in inferred.checks}
        finite = values[np.isfinite(values.to_numpy(dtype=float))]
        minimum = bounds.get("greater_than_or_equal_to", {}).get("min_value")
        maximum = bounds.get("less_than_or_equal_to", {}).get("max_value")
        return ColumnProfile(
            **base,
            minimum=_finite(minimum),
            maximum=_finite(maximum),
            mean=float(finite.mean()) if len(finite) else None,
            std=float(finite.std(ddof=0)) if len(finite) else None,
            integral=bool(len(finite) == len(values) and (finite % 1 == 0).all()),
        )
    if kind == "str":
        words = {str(v).strip().lower() for v in values.unique()}
        raw_text = read.dropna().astype(str)
        return ColumnProfile(
            **base,
            text_booleans=bool(words) and words <= {"true", "false"},
            leading_zeros=bool(raw_text.str.match(_LEADING_ZERO).any()),
        )
    return ColumnProfile(**base)


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _native(value: Any) -> Any:
    """A NumPy scalar as the plain Python value a rendered literal shows."""
    return value.item() if isinstance(value, np.generic) else value
