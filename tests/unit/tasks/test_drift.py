"""Drift detection: corrections by hand, PSI and chi-squared edge cases, and statistical behaviour.

The statistical tests are seeded, so each one is deterministic; their thresholds are set so that a
correct implementation passes with a wide margin, while a broken one (no multiple-testing
correction, a biased permutation p-value, a test that ignores a shift) fails.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from infra.errors import InvalidInputError
from tasks.drift import (
    DriftConfig,
    DriftReport,
    adjust_p_values,
    benjamini_hochberg,
    bonferroni,
    chi_squared_test,
    detect_drift,
    holm,
    mmd_test,
    population_stability_index,
)
from tasks.generate import GeneratorConfig, generate_frame

NUMERIC = ["salary", "commission", "age", "house_value", "years_house_owned", "loan_amount"]
CATEGORICAL = ["education_level", "car_maker", "zipcode"]


def loans(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    return generate_frame(GeneratorConfig(rows=rows, seed=seed, covariate_shift=shift))


def loans_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> DriftReport:
    return detect_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL, config=config)


def upper_binomial_limit(trials: int, rate: float, tail: float = 0.001) -> int:
    """Largest count a Binomial(trials, rate) exceeds with probability at most ``tail``."""
    return int(stats.binom.ppf(1.0 - tail, trials, rate))


# --- multiple-testing corrections, against values computed by hand --------------------------------

P_VALUES = [0.01, 0.04, 0.03, 0.005]


def test_bonferroni_multiplies_by_the_number_of_tests_and_caps_at_one() -> None:
    np.testing.assert_allclose(bonferroni(P_VALUES), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(bonferroni([0.5, 0.9]), [1.0, 1.0])


def test_holm_steps_down_with_a_running_maximum() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    np.testing.assert_allclose(holm(P_VALUES), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.04, 0.045]), [0.08, 0.08])


def test_benjamini_hochberg_steps_up_with_a_running_minimum_from_the_top() -> None:
    # sorted p * 4 / rank = 0.02, 0.02, 0.04, 0.04
    np.testing.assert_allclose(benjamini_hochberg(P_VALUES), [0.02, 0.04, 0.04, 0.02])
    # 0.04 * 2 / 1 = 0.08 is pulled down to 0.045 by the larger p-value: both rejected at 0.05,
    # where Holm and Bonferroni reject neither.
    np.testing.assert_allclose(benjamini_hochberg([0.04, 0.045]), [0.045, 0.045])
    np.testing.assert_allclose(benjamini_hochberg([0.9, 0.5]), [0.9, 0.9])


def test_adjust_p_values_dispatches_and_refuses_bad_p_values() -> None:
    for method, function in (
        ("benjamini-hochberg", benjamini_hochberg),
        ("holm", holm),
        ("bonferroni", bonferroni),
    ):
        np.testing.assert_allclose(adjust_p_values(P_VALUES, method), function(P_VALUES))
    assert adjust_p_values([], "holm").size == 0
    with pytest.raises(InvalidInputError, match="p-values"):
        adjust_p_values([0.1, 1.5], "holm")
    with pytest.raises(InvalidInputError, match="unknown correction"):
        adjust_p_values([0.1], "sidak")  # type: ignore[arg-type]


# --- PSI and chi-squared ---------------------------------------------------------------------------


def test_psi_matches_the_formula_and_is_zero_without_change() -> None:
    reference = ["a"] * 50 + ["b"] * 50
    current = ["a"] * 75 + ["b"] * 25
    expected = 0.25 * np.log(1.5) + (-0.25) * np.log(0.5)
    assert population_stability_index(reference, current, categorical=True) == pytest.approx(expected)
    values = np.random.default_rng(0).normal(size=1000)
    assert population_stability_index(values, values) == pytest.approx(0.0)
    shifted = population_stability_index(values, values + 0.5)
    assert 0.1 < shifted < 1.0  # half a standard deviation is a "moderate to large" PSI


def test_psi_stays_finite_when_current_holds_an_unseen_category() -> None:
    value = population_stability_index(["a"] * 100, ["a"] * 50 + ["new"] * 50, categorical=True)
    assert np.isfinite(value) and value > 1.0


def test_chi_squared_handles_a_single_category_and_counts_unseen_categories() -> None:
    assert chi_squared_test(np.array([300.0]), np.array([300.0])) == (0.0, 1.0)
    reference = pd.DataFrame({"x": ["a", "b"] * 150, "y": np.arange(300.0)})
    current = pd.DataFrame({"x": ["a", "b", "c"] * 100, "y": np.arange(300.0)})
    report = detect_drift(reference, current, numeric=["y"], categorical=["x"])
    feature = report.features[1]
    assert feature.test == "chi2" and feature.drifted and feature.status == "drift"
    same = detect_drift(
        reference.assign(x="only"), current.assign(x="only"), numeric=["y"], categorical=["x"]
    )
    assert same.features[1].statistic == 0.0 and same.features[1].p_value == 1.0 and not same.any_drift


def test_chi_squared_pools_rare_categories_instead_of_inflating_the_statistic() -> None:
    # Two categories seen once each would alone give a huge statistic if kept as separate cells.
    ref = np.array([500.0, 500.0, 1.0, 0.0])
    cur = np.array([500.0, 500.0, 0.0, 1.0])
    _, p_value = chi_squared_test(ref, cur)
    assert p_value > 0.5


# --- the whole report under no drift: false positives ---------------------------------------------


def test_false_positive_rate_of_the_whole_report_stays_at_alpha() -> None:
    """200 seeded repetitions, 500 rows a side, 10 tests (6 KS, 3 chi-squared, MMD) + outlier rule.

    Without the joint correction the alarm would fire in about 1 - 0.95^10 = 40% of runs. With it,
    the family-wise rate is at most alpha = 5%; KS on the integer-valued features is conservative,
    so the true rate is lower. If it were exactly 5%, a count above the 99.9% point of
    Binomial(200, 0.05) (21, i.e. 10.5%) would happen once in a thousand seeds.
    """
    config = DriftConfig()
    repetitions = 200
    alarms = 0
    for seed in range(repetitions):
        report = loans_drift(loans(500, 2 * seed), loans(500, 2 * seed + 1), config)
        assert report.status in ("ok", "drift")
        alarms += report.any_drift
    assert alarms <= upper_binomial_limit(repetitions, config.alpha)


# --- power under known shifts ---------------------------------------------------------------------

FAST = DriftConfig(mmd_permutations=50, mmd_max_samples=300)  # per-feature tests carry the power here


def test_half_sd_mean_shift_on_one_feature_is_detected_in_95_percent_of_runs() -> None:
    repetitions, detected, named = 50, 0, 0
    for seed in range(repetitions):
        reference, current = loans(1000, 1000 + 2 * seed), loans(1000, 1001 + 2 * seed)
        current["salary"] = current["salary"] + 0.5 * reference["salary"].std()
        report = loans_drift(reference, current, FAST)
        detected += report.any_drift
        named += "salary" in report.drifted_features
    assert detected >= 0.95 * repetitions
    assert named >= 0.95 * repetitions


def test_categorical_frequency_shift_is_detected() -> None:
    repetitions, detected = 50, 0
    for seed in range(repetitions):
        reference, current = loans(1000, 3000 + 2 * seed), loans(1000, 3001 + 2 * seed)
        rng = np.random.default_rng(seed)
        moved = rng.random(len(current)) < 0.15  # level 0: 20% -> about 32% of applicants
        current.loc[moved, "education_level"] = 0
        report = loans_drift(reference, current, FAST)
        detected += "education_level" in report.drifted_features
    assert detected >= 0.95 * repetitions


def test_loans_covariate_shift_is_detected_on_the_shifted_features() -> None:
    for seed in range(10):
        reference, current = loans(1000, 5000 + 2 * seed), loans(1000, 5001 + 2 * seed, shift=0.5)
        report = loans_drift(reference, current, FAST)
        assert report.status == "drift"
        assert {"salary", "age", "loan_amount"} <= set(report.drifted_features)
        assert "zipcode" not in report.drifted_features


def test_prediction_drift_is_tested_and_corrected_with_the_features() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"x": rng.normal(size=800), "p": rng.beta(2, 5, 800)})
    current = pd.DataFrame({"x": rng.permutation(reference["x"]), "p": rng.beta(3, 4, 800)})
    report = detect_drift(reference, current, numeric=["x"], categorical=[], prediction="p")
    assert report.prediction is not None and report.prediction.drifted and report.prediction.psi > 0.1
    assert [item.name for item in report.features] == ["x"]
    assert report.any_drift and report.drifted_features == []


# --- MMD -------------------------------------------------------------------------------------------


def test_mmd_permutation_p_value_is_roughly_uniform_under_the_null() -> None:
    """100 null repetitions at 60 rows a side, 99 permutations each.

    A valid permutation p-value rejects at 0.05 in at most 5% of runs (upper limit: the 99.9% point
    of Binomial(100, 0.05), 12) and falls below 0.5 about half the time (35-65 of 100 is a >99.8%
    interval of Binomial(100, 0.5)); a p-value without the "+1" or one compared the wrong way fails.
    """
    rng = np.random.default_rng(11)
    p_values = []
    for _ in range(100):
        x, y = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
        _, p_value, _, _, _ = mmd_test(x, y, permutations=99, rng=rng)
        p_values.append(p_value)
    p = np.array(p_values)
    assert np.count_nonzero(p <= 0.05) <= upper_binomial_limit(100, 0.05)
    assert 35 <= np.count_nonzero(p <= 0.5) <= 65
    assert p.min() >= 1 / 100


def test_mmd_detects_a_correlation_change_that_per_feature_tests_miss() -> None:
    rng = np.random.default_rng(3)
    n = 600
    reference = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"])
    correlated = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.8], [0.8, 1.0]], size=n)
    current = pd.DataFrame(correlated, columns=["a", "b"])  # same N(0, 1) marginals
    report = detect_drift(reference, current, numeric=["a", "b"], categorical=[])
    assert report.drifted_features == []
    assert report.multivariate is not None and report.multivariate.drifted
    assert report.multivariate.p_value == pytest.approx(1 / 201)
    assert report.status == "drift"


def test_mmd_subsamples_and_is_reproducible_by_seed() -> None:
    reference, current = loans(3000, 1), loans(2500, 2)
    config = DriftConfig(mmd_max_samples=400, mmd_permutations=30, seed=5)
    first = loans_drift(reference, current, config)
    second = loans_drift(reference, current, config)
    assert first.multivariate is not None
    assert (first.multivariate.reference_n, first.multivariate.current_n) == (400, 400)
    assert first.to_dict() == second.to_dict()


# --- outliers --------------------------------------------------------------------------------------


def test_outlier_rate_alarms_only_above_twice_the_reference_rate() -> None:
    reference, current = loans(2000, 21), loans(2000, 22)
    quiet = loans_drift(reference, current, FAST).outliers
    assert quiet is not None and not quiet.drifted and quiet.rate is not None
    assert quiet.threshold == pytest.approx(max(0.05, 2 * quiet.reference_rate))
    current.loc[: int(0.15 * len(current)), "loan_amount"] = 2e6  # 15% far above any reference loan
    loud = loans_drift(reference, current, FAST).outliers
    assert loud is not None and loud.drifted and loud.rate > 0.15


def test_outlier_rule_does_not_alarm_on_small_batches_from_the_same_distribution() -> None:
    """150 rows a side: measured in sample, the reference's own rate would be biased low (a row never
    exceeds the extremes of the sample that contains it) and fresh rows would alarm in about a quarter
    of runs; the out-of-sample reference rate keeps the rule quiet. Limit: the 99.9% point of
    Binomial(100, 0.05).
    """
    config = DriftConfig(min_samples=100, mmd_permutations=20)
    alarms = 0
    for seed in range(100):
        outliers = loans_drift(loans(150, 7000 + 2 * seed), loans(150, 7001 + 2 * seed), config).outliers
        assert outliers is not None and outliers.status != "insufficient data"
        alarms += outliers.drifted
    assert alarms <= upper_binomial_limit(100, 0.05)


# --- little or no data, bad input ------------------------------------------------------------------


def test_tiny_current_batch_is_insufficient_data_never_drift() -> None:
    reference, current = loans(1000, 1), loans(150, 2, shift=1.0)
    report = loans_drift(reference, current, DriftConfig())
    assert report.status == "insufficient data" and not report.any_drift
    assert all(item.status == "insufficient data" and item.p_value is None for item in report.features)
    assert report.multivariate is not None and report.multivariate.status == "insufficient data"
    assert report.outliers is not None and report.outliers.status == "insufficient data"


def test_feature_with_too_few_values_is_insufficient_while_others_are_tested() -> None:
    reference, current = loans(600, 1), loans(600, 2)
    current.loc[100:, "age"] = np.nan
    report = loans_drift(reference, current, FAST)
    age = next(item for item in report.features if item.name == "age")
    assert age.status == "insufficient data" and age.current_n == 100 and age.adjusted_p_value is None
    assert all(item.p_value is not None for item in report.features if item.name != "age")
    assert report.status == "insufficient data" and not report.any_drift


def test_empty_current_frame_is_no_data() -> None:
    reference = loans(500, 1)
    report = loans_drift(reference, reference.iloc[0:0], DriftConfig())
    assert report.status == "no data" and not report.any_drift and report.current_rows == 0
    json.dumps(report.to_dict())  # JSON-ready, no NaN


def test_report_to_dict_is_json_ready() -> None:
    report = loans_drift(loans(400, 1), loans(400, 2), FAST)
    values = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert values["status"] == report.status and values["any_drift"] == report.any_drift
    assert [item["name"] for item in values["features"]] == NUMERIC + CATEGORICAL


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns="age"), "lacks column"),
        (lambda frame: frame.assign(salary=["high"] * len(frame)), "'salary' holds non-numeric"),
        (lambda frame: frame.assign(salary=np.nan), "'salary' has no non-missing"),
        (lambda frame: frame.assign(zipcode=None), "'zipcode' has no non-missing"),
        (lambda frame: frame.assign(salary=np.inf), "'salary' holds infinite"),
    ],
)
def test_bad_current_frame_is_refused_naming_the_column(change, message: str) -> None:
    reference = loans(300, 1)
    with pytest.raises(InvalidInputError, match=message):
        loans_drift(reference, change(loans(300, 2)), DriftConfig())


def test_bad_arguments_are_refused() -> None:
    frame = loans(300, 1)
    with pytest.raises(InvalidInputError, match="more than once"):
        detect_drift(frame, frame, numeric=["age"], categorical=["age"])
    with pytest.raises(InvalidInputError, match="at least one"):
        detect_drift(frame, frame, numeric=[], categorical=[])
    with pytest.raises(InvalidInputError, match="reference frame is empty"):
        detect_drift(frame.iloc[0:0], frame, numeric=["age"], categorical=[])
    with pytest.raises(InvalidInputError, match="lacks column"):
        detect_drift(frame, frame, numeric=["age"], categorical=[], prediction="probability")
    with pytest.raises(ValidationError):
        DriftConfig(alpha=0.05, unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DriftConfig(outlier_quantiles=(0.9, 0.1))


def test_numeric_strings_are_accepted() -> None:
    reference, current = loans(300, 1), loans(300, 2)
    text = current.assign(age=current["age"].astype(str).astype(object))
    assert loans_drift(reference, text, FAST).to_dict() == loans_drift(reference, current, FAST).to_dict()
