"""Pure parts of the ingestion engine: key ledger, reservoir sample, failure collection, readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.ingestion import KeyLedger, Reservoir, SourceFormatError, read_chunks, resolve_sources


def test_key_ledger_finds_exactly_the_keys_repeated_across_chunks(tmp_path: Path) -> None:
    ledger = KeyLedger(tmp_path / "keys")
    rng = np.random.default_rng(0)
    chunks = [np.unique(rng.integers(0, 10**12, 50_000)) for _ in range(4)]
    planted = np.array([chunks[0][5], chunks[1][7], chunks[2][9]])
    chunks[3] = np.unique(np.concatenate([chunks[3], planted]))
    for chunk in chunks:
        ledger.add(chunk)
    count, examples = ledger.repeated()
    everything = np.concatenate(chunks)
    values, counts = np.unique(everything, return_counts=True)
    assert count == int((counts > 1).sum()) >= 3
    assert set(examples) <= set(values[counts > 1].tolist())
    assert len(list((tmp_path / "keys").glob("keys-*.bin"))) > 1  # spread over buckets


def test_key_ledger_single_chunk_reports_nothing(tmp_path: Path) -> None:
    ledger = KeyLedger(tmp_path / "keys")
    ledger.add(np.arange(10, dtype=np.int64))
    assert ledger.repeated() == (0, [])


def test_reservoir_is_bounded_and_roughly_uniform() -> None:
    reservoir = Reservoir(1_000, seed=1)
    for start in range(0, 100_000, 10_000):
        reservoir.add(
            pd.DataFrame({"x": np.arange(start, start + 10_000)}, index=np.arange(start, start + 10_000))
        )
    sample = reservoir.frame()
    assert len(sample) == 1_000 and sample["x"].is_unique
    assert 40_000 < sample["x"].mean() < 60_000  # uniform over 0..99,999


def test_readers_name_the_file_for_unreadable_input(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(SourceFormatError, match="bad.parquet.*Parquet"):
        list(read_chunks(corrupt, "parquet", chunk_rows=10, name=str(corrupt)))
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(SourceFormatError, match="semicolon"):
        list(read_chunks(semicolons, "csv", chunk_rows=10, name=str(semicolons)))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("nämе,b\n1,2\n".encode("latin-1", errors="replace"))
    with pytest.raises(SourceFormatError, match="UTF-8"):
        list(read_chunks(latin, "csv", chunk_rows=10, name=str(latin)))


def test_csv_chunks_respect_the_chunk_size(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    pd.DataFrame({"a": range(2_500), "b": ["x"] * 2_500}).to_csv(source, index=False)
    sizes = [len(chunk) for chunk in read_chunks(source, "csv", chunk_rows=1_000, name="rows.csv")]
    assert sum(sizes) == 2_500 and max(sizes) <= 1_000


def test_unknown_suffix_and_missing_paths_are_named(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_bytes(b"x")
    with pytest.raises(SourceFormatError, match="suffix"):
        resolve_sources(str(tmp_path / "data.xlsx"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_sources(str(tmp_path / "nope.csv"))
