"""Loan-application batches on the schema of the Agrawal et al. (1993) benchmark.

Nine applicant attributes (salary, commission, age, education level, car maker, zip code, house
value, years the house is owned, loan amount) and a label from one of the benchmark's ten
classification functions, with label noise. Everything is vectorised and reproducible by seed.

Knobs for later stages: ``covariate_shift`` skews salary, age and loan amount inside their valid
ranges (the inputs drift, the rule does not); switching ``function`` changes the labelling rule
(concept drift); ``defect_rate`` plants contract violations for testing the ingestion gate.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.loans import KEY_COLUMN, TARGET_COLUMN
from infra.errors import GenerationError

CHUNK_ROWS = 500_000
BLOCK_ROWS = 100_000  # rows per seeded random stream: output does not depend on the chunk size


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate.

    Attributes:
        rows: Number of applications.
        seed: Random seed; the same config always gives the same rows.
        function: Agrawal classification function, 0-9 (switching it is concept drift).
        label_noise: Probability that a label is flipped.
        covariate_shift: 0 (benchmark distribution) to 1 (strongly skewed to high salary, older
            applicants and larger loans), within the valid ranges.
        first_id: First ``application_id``; batches with disjoint ID ranges never collide.
        defect_rate: Fraction of rows given a contract violation (null salary, negative age,
            unknown education level or a duplicated ID), for testing the gate.
    """

    rows: int
    seed: int = 0
    function: int = 0
    label_noise: float = 0.05
    covariate_shift: float = 0.0
    first_id: int = 0
    defect_rate: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.rows < 0:
            problems.append(f"rows must be >= 0 (got {self.rows})")
        if not 0 <= self.function <= 9:
            problems.append(f"function must be 0-9 (got {self.function})")
        for name in ("label_noise", "covariate_shift", "defect_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1 (got {value})")
        if problems:
            raise GenerationError("invalid generator settings: " + "; ".join(problems))


def _between(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (low <= values) & (values <= high)


def _disposable(frame: dict[str, np.ndarray]) -> np.ndarray:
    return 0.67 * (frame["salary"] + frame["commission"])


def classify(function: int, x: dict[str, np.ndarray]) -> np.ndarray:
    """Return True where the benchmark's function ``function`` puts the applicant in group A."""
    age, salary, elevel, loan = x["age"], x["salary"], x["education_level"], x["loan_amount"]
    young, middle = age < 40, (age >= 40) & (age < 60)

    def by_age(young_rule: np.ndarray, middle_rule: np.ndarray, old_rule: np.ndarray) -> np.ndarray:
        return np.where(young, young_rule, np.where(middle, middle_rule, old_rule))

    if function == 0:
        return ~middle
    if function == 1:
        return by_age(
            _between(salary, 50e3, 100e3), _between(salary, 75e3, 125e3), _between(salary, 25e3, 75e3)
        )
    if function == 2:
        return by_age(np.isin(elevel, (0, 1)), np.isin(elevel, (1, 2, 3)), np.isin(elevel, (2, 3, 4)))
    if function == 3:
        return by_age(
            np.where(np.isin(elevel, (0, 1)), _between(salary, 25e3, 75e3), _between(salary, 50e3, 100e3)),
            np.where(
                np.isin(elevel, (1, 2, 3)), _between(salary, 50e3, 100e3), _between(salary, 75e3, 125e3)
            ),
            np.where(np.isin(elevel, (2, 3, 4)), _between(salary, 50e3, 100e3), _between(salary, 25e3, 75e3)),
        )
    if function == 4:
        return by_age(
            np.where(
                _between(salary, 50e3, 100e3), _between(loan, 100e3, 300e3), _between(loan, 200e3, 400e3)
            ),
            np.where(
                _between(salary, 75e3, 125e3), _between(loan, 200e3, 400e3), _between(loan, 300e3, 500e3)
            ),
            np.where(
                _between(salary, 25e3, 75e3), _between(loan, 300e3, 500e3), _between(loan, 100e3, 300e3)
            ),
        )
    if function == 5:
        total = x["salary"] + x["commission"]
        return by_age(_between(total, 50e3, 100e3), _between(total, 75e3, 125e3), _between(total, 25e3, 75e3))
    if function == 6:
        return _disposable(x) - 0.2 * loan - 20e3 > 0
    if function == 7:
        return _disposable(x) - 5e3 * elevel - 20e3 > 0
    if function == 8:
        return _disposable(x) - 5e3 * elevel - 0.2 * loan - 10e3 > 0
    equity = np.where(
        x["years_house_owned"] >= 20, 0.1 * x["house_value"] * (x["years_house_owned"] - 20), 0.0
    )
    return _disposable(x) - 5e3 * elevel + 0.2 * equity - 10e3 > 0


def _skewed(rng: np.random.Generator, shift: float, size: int) -> np.ndarray:
    """Uniform on [0, 1] at shift 0, leaning towards 1 as the shift grows."""
    return rng.beta(1.0 + 4.0 * shift, 1.0, size) if shift > 0 else rng.random(size)


def _generate_block(config: GeneratorConfig, *, start: int, rows: int) -> pd.DataFrame:
    """One fixed block of rows, drawn from its own seeded stream (``start`` is a multiple of BLOCK_ROWS)."""
    rng = np.random.default_rng([config.seed, start // BLOCK_ROWS])
    shift = config.covariate_shift
    # Round to cents before deciding the commission: the rule must hold for the stored value.
    salary = (20e3 + 130e3 * _skewed(rng, shift, rows)).round(2)
    commission = np.where(salary >= 75e3, 0.0, 10e3 + 65e3 * rng.random(rows))
    age = (20 + np.floor(61 * _skewed(rng, shift, rows))).astype("int64")
    zipcode = rng.integers(0, 9, rows)
    x = {
        "salary": salary,
        "commission": commission.round(2),
        "age": age,
        "education_level": rng.integers(0, 5, rows),
        "car_maker": rng.integers(1, 21, rows),
        "zipcode": zipcode,
        "house_value": ((9 - zipcode) * 100e3 * (0.5 + rng.random(rows))).round(2),
        "years_house_owned": rng.integers(1, 31, rows),
        "loan_amount": (500e3 * _skewed(rng, shift, rows)).round(2),
    }
    label = classify(config.function, x)
    flip = rng.random(rows) < config.label_noise
    frame = pd.DataFrame(
        {KEY_COLUMN: np.arange(config.first_id + start, config.first_id + start + rows), **x}
    )
    frame[TARGET_COLUMN] = np.where(flip, ~label, label).astype("int64")
    if config.defect_rate > 0:
        _plant_defects(frame, rng, config.defect_rate)
    return frame


def _plant_defects(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> None:
    """Give about ``rate`` of the rows one contract violation each, of four kinds in turn."""
    rows = np.flatnonzero(rng.random(len(frame)) < rate)
    if len(rows) == 0 and len(frame):
        rows = np.array([0])
    frame["salary"] = frame["salary"].astype("float64")
    for kind, index in enumerate(rows):
        if kind % 4 == 0:
            frame.loc[index, "salary"] = np.nan
        elif kind % 4 == 1:
            frame.loc[index, "age"] = -frame.loc[index, "age"]
        elif kind % 4 == 2:
            frame.loc[index, "education_level"] = 7
        else:
            frame.loc[index, KEY_COLUMN] = frame.loc[(index + 1) % len(frame), KEY_COLUMN]


def generate_chunk(config: GeneratorConfig, *, start: int, rows: int) -> pd.DataFrame:
    """Rows ``start .. start + rows`` of the batch: the same rows whatever the chunking."""
    first = start - start % BLOCK_ROWS
    blocks = [
        _generate_block(config, start=block, rows=min(BLOCK_ROWS, config.rows - block))
        for block in range(first, min(start + rows, config.rows), BLOCK_ROWS)
    ]
    if not blocks:
        return _generate_block(config, start=0, rows=0)
    frame = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
    return frame.iloc[start - first : start - first + rows].reset_index(drop=True)


def generate_batches(config: GeneratorConfig, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Yield the batch in chunks of at most ``chunk_rows`` rows (bounded memory at any size)."""
    for start in range(0, config.rows, chunk_rows):
        yield generate_chunk(config, start=start, rows=min(chunk_rows, config.rows - start))


def generate_frame(config: GeneratorConfig) -> pd.DataFrame:
    """The whole batch as one DataFrame (for small batches and tests)."""
    chunks = list(generate_batches(config))
    return pd.concat(chunks, ignore_index=True) if chunks else _generate_block(config, start=0, rows=0)


def write_batch(
    config: GeneratorConfig,
    destination: str,
    *,
    file_format: Literal["csv", "parquet"] = "parquet",
    s3_client=None,
    chunk_rows: int = CHUNK_ROWS,
) -> str:
    """Write the batch to a local file or an ``s3://bucket/key`` URI, chunk by chunk.

    Args:
        config: What to generate.
        destination: A file path, or ``s3://bucket/key``; parent folders are created locally.
        file_format: ``parquet`` or ``csv``.
        s3_client: A boto3 S3 client, required for ``s3://`` destinations.
        chunk_rows: Rows held in memory at once.

    Returns:
        The destination written.
    """
    return write_destination(
        destination,
        lambda handle: write_chunks(generate_batches(config, chunk_rows=chunk_rows), handle, file_format),
        file_format=file_format,
        s3_client=s3_client,
    )


def write_destination(
    destination: str,
    write: Callable[[BinaryIO], None],
    *,
    file_format: str,
    s3_client=None,
) -> str:
    """Run ``write`` into a local file or an ``s3://bucket/key`` object, published only when complete.

    Locally the bytes go to ``<name>.partial`` and are renamed at the end; for S3 they are spooled to a
    temporary file and uploaded (bounded memory at any size).
    """
    if file_format not in ("csv", "parquet"):
        raise GenerationError(f"unknown format {file_format!r}: use 'csv' or 'parquet'")
    if destination.startswith("s3://"):
        if s3_client is None:
            raise GenerationError("writing to s3:// needs an S3 client")
        bucket, _, key = destination[len("s3://") :].partition("/")
        if not bucket or not key:
            raise GenerationError(f"invalid S3 destination {destination!r}: expected s3://bucket/key")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(key).name
            with open(local, "wb") as handle:
                write(handle)
            s3_client.upload_file(str(local), bucket, key)
        return destination
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as handle:
            write(handle)
        partial.replace(path)  # never leave a half-written batch under the final name
    finally:
        partial.unlink(missing_ok=True)
    return destination


def write_chunks(chunks: Iterator[pd.DataFrame], handle: BinaryIO, file_format: str) -> None:
    writer = None
    for index, chunk in enumerate(chunks):
        if file_format == "csv":
            buffer = io.StringIO()
            chunk.to_csv(buffer, index=False, header=index == 0)
            handle.write(buffer.getvalue().encode())
        else:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(handle, table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()
