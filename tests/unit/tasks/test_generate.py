"""The loan generator: reproducible, labelled by the benchmark's functions, with drift and defect knobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.generate import GenerationError, GeneratorConfig, classify, generate_frame, write_batch


def test_same_config_same_rows_and_chunking_does_not_matter() -> None:
    config = GeneratorConfig(rows=3_000, seed=11, function=3)
    whole = generate_frame(config)
    pd.testing.assert_frame_equal(whole, generate_frame(config))
    assert not whole.equals(generate_frame(GeneratorConfig(rows=3_000, seed=12, function=3)))
    assert whole["application_id"].is_unique


def test_labels_follow_the_function_up_to_the_noise() -> None:
    clean = generate_frame(GeneratorConfig(rows=20_000, seed=1, function=1, label_noise=0.0))
    middle = (clean["age"] >= 40) & (clean["age"] < 60)
    expected = np.where(middle, clean["salary"].between(75e3, 125e3), False)
    assert (clean.loc[middle, "approved"] == expected[middle]).all()
    noisy = generate_frame(GeneratorConfig(rows=20_000, seed=1, function=1, label_noise=0.2))
    flipped = (noisy["approved"] != clean["approved"]).mean()
    assert 0.17 < flipped < 0.23


def test_function_zero_approves_young_and_old() -> None:
    x = {
        "age": np.array([25, 45, 70]),
        "salary": np.zeros(3),
        "education_level": np.zeros(3),
        "loan_amount": np.zeros(3),
        "commission": np.zeros(3),
    }
    assert classify(0, x).tolist() == [True, False, True]


def test_covariate_shift_moves_inputs_within_range_not_the_rule() -> None:
    base = generate_frame(GeneratorConfig(rows=20_000, seed=5))
    shifted = generate_frame(GeneratorConfig(rows=20_000, seed=5, covariate_shift=1.0))
    assert shifted["salary"].mean() > base["salary"].mean() + 20_000
    assert shifted["salary"].between(20_000, 150_000).all() and shifted["age"].between(20, 80).all()


def test_defects_are_planted_of_each_kind() -> None:
    frame = generate_frame(GeneratorConfig(rows=4_000, seed=2, defect_rate=0.01))
    assert frame["salary"].isna().sum() > 0
    assert (frame["age"] < 0).sum() > 0
    assert (frame["education_level"] == 7).sum() > 0
    assert frame["application_id"].duplicated().sum() > 0


@pytest.mark.parametrize("field", ["rows", "function", "label_noise", "covariate_shift", "defect_rate"])
def test_bad_settings_are_refused_with_the_field_named(field: str) -> None:
    values = {"rows": -1, "function": 10, "label_noise": 1.5, "covariate_shift": -0.1, "defect_rate": 2.0}
    with pytest.raises(GenerationError, match=field):
        GeneratorConfig(**{"rows": 10, field: values[field]})


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_write_batch_round_trips_in_chunks(tmp_path: Path, file_format: str) -> None:
    config = GeneratorConfig(rows=2_500, seed=3)
    target = tmp_path / "nested" / f"batch.{file_format}"
    write_batch(config, str(target), file_format=file_format, chunk_rows=1_000)
    read = pd.read_csv(target) if file_format == "csv" else pd.read_parquet(target)
    pd.testing.assert_frame_equal(read, generate_frame(config), check_dtype=False)
    assert not list(tmp_path.rglob("*.partial"))


def test_write_batch_refuses_bad_destinations(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="needs an S3 client"):
        write_batch(GeneratorConfig(rows=1), "s3://bucket/key.parquet")
    with pytest.raises(GenerationError, match="unknown format"):
        write_batch(GeneratorConfig(rows=1), str(tmp_path / "x.txt"), file_format="xlsx")


def test_commission_rule_holds_on_the_stored_cents(monkeypatch: pytest.MonkeyPatch) -> None:
    # A salary of 74,999.996 is stored as 75,000.00, so it must get no commission.
    from tasks import generate

    just_under = (74_999.996 - 20_000) / 130_000
    monkeypatch.setattr(generate, "_skewed", lambda rng, shift, size: np.full(size, just_under))
    frame = generate_frame(GeneratorConfig(rows=10, seed=1))
    assert (frame["salary"] == 75_000.0).all()
    assert (frame["commission"] == 0.0).all()
