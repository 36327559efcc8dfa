"""The row-level contract checks, shared by the ingest gate and the pre-merge gate (``tasks.merge_gate``):
coerce a chunk to the raw model's types, check the validated model's rules, find keys repeated across
chunks in bounded memory, and collect failures (all counted, a few kept as examples)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors

from tasks.datasets import DatasetSpec

EXAMPLES_PER_CHECK = 5


@dataclass
class CheckFailures:
    """Failures of one rule on one column, with a few examples."""

    column: str
    check: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


class RowCheckCollector:
    """Accumulates pandera failure cases over chunks: counts in full, a few examples per rule."""

    def __init__(self, *, examples: int = EXAMPLES_PER_CHECK, key_columns: tuple[str, ...] = ()) -> None:
        self.examples = examples
        self.key_columns = key_columns
        self.checks: dict[tuple[str, str], CheckFailures] = {}

    def add(self, column: str, check: str, *, count: int, examples: list[dict[str, Any]]) -> None:
        entry = self.checks.setdefault((column, check), CheckFailures(column, check))
        entry.count += count
        room = self.examples - len(entry.examples)
        if room > 0:
            entry.examples.extend(examples[:room])

    def add_schema_errors(
        self, errors: pandera.errors.SchemaErrors | pd.DataFrame, frame: pd.DataFrame, *, file: str
    ) -> None:
        cases = (errors.failure_cases if isinstance(errors, pandera.errors.SchemaErrors) else errors).copy()
        # A dataframe-level check fails whole rows; pandera lists every column of each failing row.
        row_level = (cases["schema_context"] == "DataFrameSchema") & cases["index"].notna()
        if row_level.any():
            cases.loc[row_level, "column"] = "(row)"
            cases.loc[row_level, "failure_case"] = None
            cases = cases.drop_duplicates(subset=["column", "check", "index"])
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            examples = []
            for _, case in group.head(self.examples).iterrows():
                example: dict[str, Any] = {"file": file, "value": _json_safe(case["failure_case"])}
                index = case["index"]
                if index is not None and not (isinstance(index, float) and np.isnan(index)):
                    example["row"] = int(index)
                    if index in frame.index:
                        record = {k: _json_safe(v) for k, v in frame.loc[index].items()}
                        example["record"] = record
                        key = {column: record[column] for column in self.key_columns if column in record}
                        if key:
                            example["key"] = key
                examples.append(example)
            self.add(str(column), str(check), count=len(group), examples=examples)

    @property
    def failed(self) -> bool:
        return bool(self.checks)

    def summary(self) -> list[CheckFailures]:
        return sorted(self.checks.values(), key=lambda c: -c.count)


def _json_safe(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Reservoir:
    """A uniform random sample of at most ``size`` rows over a stream of chunks (seeded)."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.sample: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame) -> None:
        keyed = frame.assign(_reservoir_key=self.rng.random(len(frame)))
        combined = keyed if self.sample is None else pd.concat([self.sample, keyed])
        self.sample = (
            combined.nsmallest(self.size, "_reservoir_key") if len(combined) > self.size else combined
        )

    def frame(self) -> pd.DataFrame:
        if self.sample is None:
            return pd.DataFrame()
        return self.sample.drop(columns="_reservoir_key").sort_index()


@dataclass(frozen=True)
class Coerced:
    """A chunk coerced to the contract's types: all of it (``complete``), or only the rows that could be
    (failures recorded), so the other rules are still checked on those; ``typed`` is None when not even
    that was possible (a column missing)."""

    typed: pd.DataFrame | None
    complete: bool


def coerce(spec: DatasetSpec, chunk: pd.DataFrame, collector: RowCheckCollector, *, file: str) -> Coerced:
    """Coerce ``chunk`` to the raw model's types; every row that cannot be is recorded with its row."""
    try:
        return Coerced(spec.raw_model.validate(chunk, lazy=True), True)
    except pandera.errors.SchemaErrors as errors:
        cases = _coercion_cases(errors.failure_cases, spec, chunk)
    collector.add_schema_errors(cases, chunk, file=file)
    failing = cases["index"].dropna().unique()
    rest = chunk.drop(index=[index for index in failing if index in chunk.index])
    if len(rest) == len(chunk):
        return Coerced(None, False)  # not a row-level problem (a missing column): nothing to check on
    try:
        return Coerced(spec.raw_model.validate(rest, lazy=True), False)
    except pandera.errors.SchemaErrors:
        return Coerced(None, False)


def _coercion_cases(cases: pd.DataFrame, spec: DatasetSpec, chunk: pd.DataFrame) -> pd.DataFrame:
    """pandera's failure cases, each bad value once and with its row.

    pandera lists a value it cannot coerce twice (``coerce_dtype(...)`` and ``dtype(...)``), and a
    column that fails as a whole (floats with a fraction into an integer column) with no row at all;
    here the second listing goes and the rows of a whole-column failure are found value by value.
    """
    coerced_columns = set(cases.loc[cases["check"].astype(str).str.startswith("coerce_dtype("), "column"])
    duplicate = cases["check"].astype(str).str.startswith("dtype(") & cases["column"].isin(coerced_columns)
    cases = cases[~duplicate]
    whole = cases["check"].astype(str).str.startswith("coerce_dtype(") & cases["index"].isna()
    if not whole.any():
        return cases
    columns = spec.raw_model.to_schema().columns
    found = []
    for _, case in cases[whole].iterrows():
        column = case["column"]
        if column not in chunk.columns or column not in columns:
            found.append(case.to_frame().T)
            continue
        bad = _uncoercible(chunk[column], columns[column].dtype)
        found.append(
            pd.DataFrame(
                {
                    "schema_context": case["schema_context"],
                    "column": column,
                    "check": case["check"],
                    "check_number": case.get("check_number"),
                    "failure_case": chunk.loc[bad, column].to_numpy(),
                    "index": chunk.index[bad],
                }
            )
        )
    return pd.concat([cases[~whole], *found], ignore_index=True)


def _uncoercible(values: pd.Series, dtype: Any) -> np.ndarray:
    """Which non-null ``values`` cannot be coerced to the pandera ``dtype``, one value at a time."""
    present = values.notna().to_numpy()
    if pd.api.types.is_integer_dtype(dtype.type):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return present & ~(np.isfinite(numbers) & (np.floor(numbers) == numbers))
    bad = np.zeros(len(values), dtype=bool)
    for position in np.flatnonzero(present):
        try:
            dtype.coerce(values.iloc[position : position + 1])
        except Exception:  # any refusal of the value is what is being found
            bad[position] = True
    return bad


def check_rows(spec: DatasetSpec, typed: pd.DataFrame, collector: RowCheckCollector, *, file: str) -> None:
    """Check ``typed`` (coerced) rows against the validated model; failures go to ``collector``."""
    try:
        spec.validated_model.validate(typed, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        collector.add_schema_errors(errors, typed, file=file)


def unique_keys(frame: pd.DataFrame, key_columns: tuple[str, ...]) -> np.ndarray:
    """The distinct keys of a chunk (the integer key itself, or a hash of the key columns), sorted."""
    if len(key_columns) == 1 and pd.api.types.is_integer_dtype(frame[key_columns[0]]):
        keys = frame[key_columns[0]].to_numpy(dtype=np.int64, na_value=-1)  # sorting ints beats hashing
    else:
        keys = pd.util.hash_pandas_object(frame[list(key_columns)], index=False).to_numpy()
    return _sorted_unique(keys)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy's hash-based unique is several times slower on int keys)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


class KeyLedger:
    """Every chunk's keys, spilled to disk in hash buckets, to find keys repeated across chunks.

    Memory stays bounded by one chunk plus one bucket (1/64 of the keys), not by the file: exact
    duplicate detection over a source larger than memory, like an external sort.
    """

    BUCKET_BITS = 6

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chunks = 0
        self.integer_keys = True

    def add(self, keys: np.ndarray) -> None:
        """Record one chunk's keys (unique within the chunk)."""
        self.chunks += 1
        self.integer_keys &= keys.dtype.kind == "i"
        keys = keys.view(np.int64)
        spread = self.bucket_of(keys)
        order = np.argsort(spread, kind="stable")
        bounds = np.searchsorted(spread[order], np.arange(1, 1 << self.BUCKET_BITS), side="left")
        for bucket, part in enumerate(np.split(keys[order], bounds)):
            if len(part):
                with open(self.directory / f"keys-{bucket:02d}.bin", "ab") as handle:
                    part.tofile(handle)

    @classmethod
    def bucket_of(cls, keys: np.ndarray) -> np.ndarray:
        """The hash bucket of each key (Fibonacci hashing of its 64 bits: even for sequential IDs)."""
        return (keys.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - cls.BUCKET_BITS)

    def bucket(self, bucket: int) -> np.ndarray:
        """The distinct keys of one hash bucket, sorted (empty when no key fell into it)."""
        path = self.directory / f"keys-{bucket:02d}.bin"
        if not path.exists():
            return np.empty(0, dtype=np.int64)
        return _sorted_unique(np.fromfile(path, dtype=np.int64))

    def repeated(self) -> tuple[int, list[int]]:
        """How many keys occur in more than one chunk, and a few of them."""
        if self.chunks < 2:
            return 0, []
        count, examples = 0, []
        for path in sorted(self.directory.glob("keys-*.bin")):
            ordered = np.sort(np.fromfile(path, dtype=np.int64))
            repeated = _sorted_unique(ordered[1:][ordered[1:] == ordered[:-1]])
            count += len(repeated)
            examples.extend(int(value) for value in repeated[: EXAMPLES_PER_CHECK - len(examples)])
        return count, examples


def check_keys_across_chunks(spec: DatasetSpec, ledger: KeyLedger, collector: RowCheckCollector) -> None:
    """Keys repeated across chunks (duplicates inside one chunk are the contract's own check)."""
    count, examples = ledger.repeated()
    if count:
        name = "value" if ledger.integer_keys and len(spec.key_columns) == 1 else "key_hash"
        collector.add(
            ",".join(spec.key_columns),
            "unique across chunks",
            count=count,
            examples=[{name: value} for value in examples],
        )
