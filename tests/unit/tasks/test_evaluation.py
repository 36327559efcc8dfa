"""Evaluation: metrics agree with scikit-learn, bad input is refused by name, slices, plots, champion rule."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from infra.errors import EvaluationError, InvalidInputError
from tasks.evaluation import (
    INSUFFICIENT_DATA,
    SLICE_METRICS,
    Decision,
    Metrics,
    age_bands,
    compare_to_champion,
    evaluate_predictions,
    evaluate_slices,
    plot_calibration,
    plot_roc,
    plot_slices,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


def noisy_predictions(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the probabilities: an imperfect but informative classifier."""
    rng = np.random.default_rng(seed)
    probabilities = rng.random(rows)
    labels = (rng.random(rows) < probabilities).astype(np.int64)
    return labels, probabilities


# --- metrics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 5_000)
    probabilities = rng.random(5_000)
    probabilities[:500] = np.clip(np.round(probabilities[:500], 1), 0.1, 0.9)  # ties, for the AUC

    metrics = evaluate_predictions(labels, probabilities, threshold=0.3)

    assert metrics.roc_auc == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-9)
    assert metrics.accuracy == pytest.approx(accuracy_score(labels, probabilities >= 0.3), abs=1e-9)
    assert metrics.log_loss == pytest.approx(log_loss(labels, probabilities), abs=1e-9)
    assert metrics.brier_score == pytest.approx(brier_score_loss(labels, probabilities), abs=1e-9)
    assert metrics.positive_rate == pytest.approx(np.mean(probabilities >= 0.3), abs=1e-12)
    assert metrics.base_rate == pytest.approx(np.mean(labels), abs=1e-12)
    assert metrics.count == 5_000
    assert metrics.notes == ()


def test_perfect_classifier_scores_auc_one_and_full_accuracy() -> None:
    labels = np.array([0] * 50 + [1] * 50)
    probabilities = np.concatenate([np.linspace(0.0, 0.4, 50), np.linspace(0.6, 1.0, 50)])

    metrics = evaluate_predictions(labels, probabilities)

    assert metrics.roc_auc == 1.0
    assert metrics.accuracy == 1.0


def test_random_classifier_scores_auc_near_half() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 100_000)
    probabilities = rng.random(100_000)  # independent of the labels

    metrics = evaluate_predictions(labels, probabilities)

    assert metrics.roc_auc == pytest.approx(0.5, abs=0.01)
    assert metrics.accuracy == pytest.approx(0.5, abs=0.01)


def test_confident_misses_give_a_finite_log_loss() -> None:
    metrics = evaluate_predictions(np.array([1, 0]), np.array([0.0, 1.0]))

    assert metrics.log_loss == pytest.approx(-math.log(1e-15), abs=1e-12)


def test_calibration_error_of_a_hand_worked_example() -> None:
    # Two bins: [0, 0.5) holds p 0.1, 0.2 (mean 0.15, rate 0.5); [0.5, 1] holds 0.8, 0.9 (0.85, 0.5).
    metrics = evaluate_predictions(np.array([0, 1, 1, 0]), np.array([0.1, 0.2, 0.8, 0.9]), bins=2)

    assert metrics.expected_calibration_error == pytest.approx(0.35, abs=1e-12)


def test_calibration_error_weights_bins_by_row_count() -> None:
    # Bin [0, 0.5): 3 rows, p=0.25, rate 1/3 (gap 1/12); bin [0.5, 1]: 1 row, p=1.0, rate 1 (gap 0).
    metrics = evaluate_predictions(np.array([1, 0, 0, 1]), np.array([0.25, 0.25, 0.25, 1.0]), bins=2)

    assert metrics.expected_calibration_error == pytest.approx(3 / 4 * 1 / 12, abs=1e-12)


def test_calibration_error_is_near_zero_for_calibrated_probabilities() -> None:
    labels, probabilities = noisy_predictions(200_000, seed=3)

    metrics = evaluate_predictions(labels, probabilities)

    assert metrics.expected_calibration_error < 0.01


def test_calibration_error_is_large_for_miscalibrated_probabilities() -> None:
    labels, probabilities = noisy_predictions(200_000, seed=3)

    # Reporting p^2 when the truth is p: the expected gap is E[p - p^2] = 1/2 - 1/3 for uniform p.
    metrics = evaluate_predictions(labels, probabilities**2)

    assert metrics.expected_calibration_error == pytest.approx(1 / 6, abs=0.01)


@pytest.mark.parametrize("present", [0, 1])
def test_single_class_reports_no_auc_with_a_note(present: int) -> None:
    metrics = evaluate_predictions(np.full(10, present), np.linspace(0.0, 1.0, 10))

    assert metrics.roc_auc is None
    assert metrics.notes == (f"roc_auc undefined: only label {present} is present in y_true",)
    assert math.isfinite(metrics.log_loss)


def test_labels_may_be_bool_or_float() -> None:
    probabilities = np.array([0.2, 0.7, 0.9])

    from_bool = evaluate_predictions(np.array([False, True, True]), probabilities)
    from_float = evaluate_predictions(np.array([0.0, 1.0, 1.0]), probabilities)

    assert from_bool == from_float


BAD_INPUTS = [
    pytest.param([0, 1, 1], [0.1, 0.9], r"different lengths \(3 and 2\)", id="lengths-differ"),
    pytest.param([], [], "empty", id="empty"),
    pytest.param([0, 1, 1], [0.1, math.nan, 0.3], "must be finite; 1 are NaN or infinite", id="nan"),
    pytest.param([0, 1, 1], [0.1, math.inf, 0.3], "must be finite; 1 are NaN or infinite", id="inf"),
    pytest.param([0, 1, 1], [0.1, 1.5, -0.2], r"must lie in \[0, 1\]; 2 are outside", id="outside-0-1"),
    pytest.param([0, 2, 1], [0.1, 0.5, 0.3], "labels must be 0 or 1; 1 are not", id="label-2"),
    pytest.param([0, -1, 1], [0.1, 0.5, 0.3], "labels must be 0 or 1", id="label-minus-1"),
    pytest.param([0, math.nan, 1], [0.1, 0.5, 0.3], "labels must be 0 or 1", id="label-nan"),
    pytest.param(["no", "yes"], [0.1, 0.5], "labels must be 0 or 1", id="label-strings"),
    pytest.param([[0, 1]], [[0.1, 0.5]], "must be 1-D", id="two-dimensional"),
]


@pytest.mark.parametrize(("y_true", "y_prob", "message"), BAD_INPUTS)
def test_bad_input_is_refused_naming_the_problem(y_true: list, y_prob: list, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_predictions(np.array(y_true), np.array(y_prob))


def test_refusal_points_at_the_offending_rows() -> None:
    probabilities = np.array([0.1, 0.2, 1.7, 0.4, -3.0])

    with pytest.raises(EvaluationError, match=r"\(2, 1\.7\), \(4, -3\.0\)"):
        evaluate_predictions(np.zeros(5), probabilities)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"threshold": 1.5}, "threshold must be a number in"),
        ({"bins": 0}, "bins must be an integer >= 1"),
        ({"bins": 2.5}, "bins must be an integer >= 1"),
    ],
)
def test_bad_threshold_or_bins_is_refused(keywords: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_predictions(np.array([0, 1]), np.array([0.2, 0.8]), **keywords)


def test_evaluation_error_is_a_project_input_error() -> None:
    assert issubclass(EvaluationError, InvalidInputError)
    assert issubclass(EvaluationError, ValueError)


def test_metrics_round_trip_through_json() -> None:
    metrics = evaluate_predictions(np.ones(4), np.array([0.2, 0.4, 0.6, 0.8]))

    restored = Metrics.from_dict(json.loads(json.dumps(metrics.to_dict())))

    assert restored == metrics
    assert metrics.to_dict()["notes"] == list(metrics.notes)


def test_metrics_from_an_incomplete_mapping_is_refused() -> None:
    with pytest.raises(EvaluationError, match=r"lacks \['accuracy'"):
        Metrics.from_dict({"count": 3, "roc_auc": 0.7})


# --- slices -----------------------------------------------------------------------------------------


def test_age_bands_put_boundary_ages_in_the_right_band() -> None:
    ages = pd.Series([20, 29, 30, 39.5, 69, 70, 79, 80, 19, 81, None], name="age")

    bands = age_bands(ages)

    assert bands.iloc[:8].tolist() == ["20-29", "20-29", "30-39", "30-39", "60-69", "70-80", "70-80", "70-80"]
    assert bands.iloc[8:].isna().all()  # outside the contract's 20-80, or missing
    assert list(bands.cat.categories) == ["20-29", "30-39", "40-49", "50-59", "60-69", "70-80"]
    assert bands.index.equals(ages.index)


@pytest.fixture
def holdout() -> tuple[pd.DataFrame, np.ndarray]:
    """80 rows per band from 20-29 to 60-69, 10 in 70-80, 3 with an out-of-range age; shuffled index."""
    rng = np.random.default_rng(11)
    ages = np.concatenate(
        [rng.integers(low, low + 10, 80) for low in (20, 30, 40, 50, 60)]
        + [rng.integers(70, 81, 10), [85] * 3]
    )
    labels, probabilities = noisy_predictions(ages.size, seed=12)
    index = rng.permutation(ages.size) + 1000  # not a RangeIndex: slices must align by label, not position
    frame = pd.DataFrame({"age": ages, "label": labels}, index=index)
    return frame, probabilities


def test_slice_table_has_one_row_per_band_with_its_count(holdout: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, probabilities = holdout

    table = evaluate_slices(frame, probabilities, target="label", slices={"age": age_bands(frame["age"])})

    assert table[["slice", "group", "count"]].values.tolist() == [
        ["overall", "all", 413],
        ["age", "20-29", 80],
        ["age", "30-39", 80],
        ["age", "40-49", 80],
        ["age", "50-59", 80],
        ["age", "60-69", 80],
        ["age", "70-80", 10],
        ["age", "missing", 3],
    ]


def test_slice_metrics_and_gaps_match_evaluating_the_band_alone(
    holdout: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, probabilities = holdout
    bands = age_bands(frame["age"])

    table = evaluate_slices(frame, probabilities, target="label", slices={"age": bands})

    in_band = (bands == "40-49").to_numpy()
    expected = evaluate_predictions(frame["label"].to_numpy()[in_band], probabilities[in_band])
    overall = evaluate_predictions(frame["label"].to_numpy(), probabilities)
    row = table.set_index("group").loc["40-49"]
    assert row["status"] == "ok"
    for metric in SLICE_METRICS:
        assert row[metric] == pytest.approx(getattr(expected, metric), abs=1e-12)
        assert row[f"{metric}_gap"] == pytest.approx(
            getattr(expected, metric) - getattr(overall, metric), abs=1e-12
        )
    assert (table.loc[table["slice"] == "overall", [f"{m}_gap" for m in SLICE_METRICS]] == 0).all(axis=None)


def test_small_slices_are_marked_insufficient_without_metrics(
    holdout: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, probabilities = holdout

    table = evaluate_slices(frame, probabilities, target="label", slices={"age": age_bands(frame["age"])})

    small = table[table["group"].isin(["70-80", "missing"])]
    assert (small["status"] == INSUFFICIENT_DATA).all()
    assert small[list(SLICE_METRICS)].isna().all(axis=None)
    assert small[[f"{m}_gap" for m in SLICE_METRICS]].isna().all(axis=None)
    assert small["note"].str.contains("fewer than 50").all()
    assert (table.loc[~table["group"].isin(["70-80", "missing"]), "status"] == "ok").all()


def test_minimum_slice_size_is_configurable(holdout: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, probabilities = holdout

    table = evaluate_slices(
        frame, probabilities, target="label", slices={"age": age_bands(frame["age"])}, min_rows=5
    )

    assert table.set_index("group").loc["70-80", "status"] == "ok"


def test_empty_category_is_listed_as_insufficient() -> None:
    frame = pd.DataFrame({"age": [25] * 60, "label": [0, 1] * 30})

    table = evaluate_slices(frame, np.full(60, 0.5), target="label", slices={"age": age_bands(frame["age"])})

    assert table.set_index("group").loc["30-39", ["count", "status"]].tolist() == [0, INSUFFICIENT_DATA]


def test_single_class_slice_reports_no_auc_with_a_note() -> None:
    frame = pd.DataFrame({"group": ["a"] * 60 + ["b"] * 60, "label": [1] * 60 + [0, 1] * 30})
    probabilities = np.linspace(0.01, 0.99, 120)

    table = evaluate_slices(frame, probabilities, target="label", slices={"group": frame["group"]})

    row = table.set_index("group").loc["a"]
    assert row["status"] == "ok"
    assert math.isnan(row["roc_auc"]) and math.isnan(row["roc_auc_gap"])
    assert "only label 1" in row["note"]
    assert not math.isnan(row["accuracy"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "outcome"}, "target column 'outcome' is not in the frame"),
        ({"slices": {}}, "slices is empty"),
        ({"y_prob": np.full(3, 0.5)}, "y_prob has shape"),
        ({"min_rows": 0}, "min_rows must be at least 1"),
    ],
)
def test_bad_slice_input_is_refused(
    holdout: tuple[pd.DataFrame, np.ndarray], change: dict, message: str
) -> None:
    frame, probabilities = holdout
    arguments = {
        "target": "label",
        "slices": {"age": age_bands(frame["age"])},
        "y_prob": probabilities,
    } | change

    with pytest.raises(EvaluationError, match=message):
        evaluate_slices(frame, **arguments)


def test_slice_on_another_index_is_refused(holdout: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, probabilities = holdout
    misaligned = age_bands(frame["age"]).reset_index(drop=True)

    with pytest.raises(EvaluationError, match="slice 'age' must be a pandas Series on the frame's index"):
        evaluate_slices(frame, probabilities, target="label", slices={"age": misaligned})


# --- plots ------------------------------------------------------------------------------------------

HISTORY = [
    {"epoch": 1, "train_loss": 0.69, "valid_loss": 0.66, "valid_auc": None},
    {"epoch": 2, "train_loss": 0.52, "valid_loss": 0.55, "valid_auc": 0.81},
    {"epoch": 3, "train_loss": 0.41, "valid_loss": 0.49, "valid_auc": 0.86},
]


def draw_every_plot(folder: Path) -> list[Path]:
    """Each plot once, on fixed data."""
    labels, probabilities = noisy_predictions(2_000, seed=5)
    frame = pd.DataFrame({"age": np.random.default_rng(5).integers(20, 81, 2_000), "label": labels})
    table = evaluate_slices(frame, probabilities, target="label", slices={"age": age_bands(frame["age"])})
    return [
        plot_training_curves(HISTORY, folder / "curves.png"),
        plot_roc(labels, probabilities, folder / "roc.png", label="v1"),
        plot_calibration(labels, probabilities, folder / "calibration.png"),
        plot_slices(table, folder / "nested" / "slices.png", metric="accuracy"),
    ]


def test_plots_are_valid_png_files(tmp_path: Path) -> None:
    import matplotlib.image

    for path in draw_every_plot(tmp_path):
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE), path
        assert b"Matplotlib" not in content  # no version stamp in the metadata
        height, width, _ = matplotlib.image.imread(path).shape
        assert height > 100 and width > 100


def test_plots_are_byte_identical_for_identical_inputs(tmp_path: Path) -> None:
    first = [path.read_bytes() for path in draw_every_plot(tmp_path / "first")]
    second = [path.read_bytes() for path in draw_every_plot(tmp_path / "second")]

    assert first == second


def test_plotting_never_touches_pyplot_or_a_window(tmp_path: Path) -> None:
    # A fresh interpreter asking for a GUI backend and without a display: plotting must still work
    # and must never import pyplot (the only route by which matplotlib opens a window).
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tests.unit.tasks.test_evaluation import draw_every_plot
        draw_every_plot(Path({str(tmp_path)!r}))
        print("pyplot imported:", "matplotlib.pyplot" in sys.modules)
        """
    )
    environment = {
        key: value for key, value in os.environ.items() if key not in {"DISPLAY", "WAYLAND_DISPLAY"}
    }
    environment["MPLBACKEND"] = "TkAgg"

    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pyplot imported: False"
    assert len(list(tmp_path.rglob("*.png"))) == 4


def test_training_curves_refuse_an_incomplete_history(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"history\[1\] lacks \['valid_loss'\]"):
        plot_training_curves([HISTORY[0], {"epoch": 2, "train_loss": 0.5}], tmp_path / "c.png")
    with pytest.raises(EvaluationError, match="history is empty"):
        plot_training_curves([], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_training_curves_without_auc_draw_the_loss_alone(tmp_path: Path) -> None:
    losses_only = [{key: entry[key] for key in ("epoch", "train_loss", "valid_loss")} for entry in HISTORY]

    with_auc = plot_training_curves(HISTORY, tmp_path / "with_auc.png")
    without_auc = plot_training_curves(losses_only, tmp_path / "without_auc.png")

    assert without_auc.read_bytes().startswith(PNG_SIGNATURE)
    assert without_auc.read_bytes() != with_auc.read_bytes()


def test_roc_plot_refuses_a_single_class(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="cannot draw a ROC curve: only label 0"):
        plot_roc(np.zeros(5), np.linspace(0, 1, 5), tmp_path / "roc.png")


def test_slice_plot_refuses_an_unknown_metric_or_table(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="cannot plot 'f1'"):
        plot_slices(pd.DataFrame(), tmp_path / "s.png", metric="f1")
    with pytest.raises(EvaluationError, match="slice_table lacks columns"):
        plot_slices(pd.DataFrame({"slice": ["age"]}), tmp_path / "s.png", metric="roc_auc")


# --- champion comparison ----------------------------------------------------------------------------

BASE = Metrics(
    count=1_000,
    roc_auc=0.80,
    accuracy=0.75,
    log_loss=0.50,
    expected_calibration_error=0.05,
    brier_score=0.17,
    positive_rate=0.5,
    base_rate=0.5,
    threshold=0.5,
    bins=10,
)


def with_values(**values: object) -> Metrics:
    return dataclasses.replace(BASE, **values)


def test_no_champion_means_the_challenger_is_better() -> None:
    decision = compare_to_champion(BASE, None, margin=0.01)

    assert decision == Decision(True, "no champion yet; challenger roc_auc=0.800000")


@pytest.mark.parametrize(
    ("challenger_auc", "better"),
    [(0.82, True), (0.8101, True), (0.81, False), (0.805, False), (0.80, False), (0.70, False)],
)
def test_challenger_must_beat_the_champion_by_more_than_the_margin(
    challenger_auc: float, better: bool
) -> None:
    decision = compare_to_champion(with_values(roc_auc=challenger_auc), BASE, margin=0.01 + 1e-12)

    assert decision.better is better
    assert "champion 0.800000" in decision.reason


def test_zero_margin_rejects_a_tie() -> None:
    assert compare_to_champion(BASE, BASE, margin=0.0).better is False
    assert compare_to_champion(with_values(roc_auc=0.8001), BASE, margin=0.0).better is True


@pytest.mark.parametrize("metric", ["log_loss", "brier_score", "expected_calibration_error"])
def test_lower_is_better_for_loss_metrics(metric: str) -> None:
    lower = with_values(**{metric: getattr(BASE, metric) - 0.02})
    higher = with_values(**{metric: getattr(BASE, metric) + 0.02})

    assert compare_to_champion(lower, BASE, margin=0.01, metric=metric).better is True
    assert compare_to_champion(higher, BASE, margin=0.01, metric=metric).better is False
    assert "lower is better" in compare_to_champion(lower, BASE, margin=0.01, metric=metric).reason


def test_challenger_without_auc_is_not_better() -> None:
    challenger = with_values(roc_auc=None, notes=("roc_auc undefined: only label 1 is present in y_true",))

    decision = compare_to_champion(challenger, BASE, margin=0.0)

    assert decision.better is False
    assert "only label 1" in decision.reason


def test_champion_without_auc_is_beaten() -> None:
    assert compare_to_champion(BASE, with_values(roc_auc=None), margin=0.01).better is True


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"margin": -0.01}, "margin must be a finite number >= 0"),
        ({"margin": math.nan}, "margin must be a finite number >= 0"),
        ({"margin": 0.01, "metric": "positive_rate"}, "cannot compare on 'positive_rate'"),
    ],
)
def test_bad_comparison_arguments_are_refused(keywords: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        compare_to_champion(BASE, BASE, **keywords)
