"""Live-traffic statistics: counting, merging, quantiles, PSI and the SLO gate."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest

from contracts.slo import SLOThresholds
from serving.stats import LATENCY_BOUNDS_MS, PROBABILITY_BINS, VersionStats, judge
from tasks.psi import histogram_psi

BUCKET_RATIO = 10 ** (1 / 12)  # consecutive latency bounds are this factor apart


def stats_of(
    latencies_ms, *, errors: int = 0, probabilities=(), records_per_request: int | None = None
) -> VersionStats:
    """Stats of one request per latency; the first ``errors`` requests failed.

    ``probabilities`` are spread over the requests, ``records_per_request`` at a time (all on the
    first request when not given).
    """
    stats = VersionStats()
    probabilities = list(probabilities)
    for index, latency in enumerate(latencies_ms):
        if records_per_request is None:
            chunk = probabilities if index == 0 else []
        else:
            chunk = probabilities[index * records_per_request : (index + 1) * records_per_request]
        stats.observe(latency, error=index < errors, probabilities=chunk)
    return stats


def probability_histogram(samples: np.ndarray) -> VersionStats:
    stats = VersionStats()
    stats.observe(1.0, probabilities=samples.tolist())
    return stats


# --- VersionStats ------------------------------------------------------------------------------------


def test_latency_bounds_are_log_spaced_from_a_tenth_of_a_millisecond_to_100_seconds() -> None:
    assert LATENCY_BOUNDS_MS[0] == pytest.approx(0.1)
    assert LATENCY_BOUNDS_MS[-1] == pytest.approx(100_000.0)
    ratios = [b / a for a, b in zip(LATENCY_BOUNDS_MS, LATENCY_BOUNDS_MS[1:], strict=False)]
    assert ratios == pytest.approx([BUCKET_RATIO] * len(ratios))


def test_observe_counts_requests_errors_records_and_buckets() -> None:
    stats = VersionStats()
    stats.observe(12.0, probabilities=[0.1, 0.9])
    stats.observe(3.0, error=True)
    stats.observe(12.0, probabilities=[0.5])
    assert (stats.requests, stats.errors, stats.records) == (3, 1, 3)
    assert sum(stats.latency_counts) == 3
    assert sum(stats.probability_counts) == 3
    assert stats.latency_counts[np.searchsorted(LATENCY_BOUNDS_MS, 12.0)] == 2


@pytest.mark.parametrize(
    ("probability", "bin_index"),
    [(0.0, 0), (0.099, 0), (0.1, 1), (0.5, 5), (0.901, 9), (0.999999, 9), (1.0, 9)],
)
def test_probabilities_fall_into_ten_equal_bins(probability: float, bin_index: int) -> None:
    stats = VersionStats()
    stats.observe(1.0, probabilities=[probability])
    expected = [0] * PROBABILITY_BINS
    expected[bin_index] = 1
    assert stats.probability_counts == expected


def test_out_of_range_probabilities_are_clamped_to_the_end_bins() -> None:
    stats = VersionStats()
    stats.observe(1.0, probabilities=[-0.2, 1.7])
    assert stats.probability_counts[0] == 1
    assert stats.probability_counts[-1] == 1


def test_a_latency_on_a_bound_belongs_to_that_bound_s_bucket() -> None:
    bound = LATENCY_BOUNDS_MS[30]
    on_bound, just_above = VersionStats(), VersionStats()
    on_bound.observe(bound)
    just_above.observe(bound * 1.0001)
    assert on_bound.latency_quantile(0.5) == bound
    assert just_above.latency_quantile(0.5) == LATENCY_BOUNDS_MS[31]


def test_latency_quantile_of_no_traffic_is_none() -> None:
    assert VersionStats().latency_quantile(0.99) is None
    assert VersionStats().summary()["p99_ms"] is None


def test_latency_beyond_the_last_bound_gives_an_infinite_quantile() -> None:
    stats = stats_of([5.0] * 98 + [200_000.0] * 2)
    assert stats.latency_quantile(0.99) == math.inf
    assert stats.latency_quantile(0.5) == pytest.approx(
        LATENCY_BOUNDS_MS[np.searchsorted(LATENCY_BOUNDS_MS, 5.0)]
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_latency_quantile_is_the_upper_bound_of_the_true_quantile_s_bucket(seed: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    latencies = rng.lognormal(mean=math.log(40.0), sigma=1.0, size=1_000)
    stats = stats_of(latencies)
    true_quantile = float(np.quantile(latencies, q, method="inverted_cdf"))
    estimate = stats.latency_quantile(q)
    # Never optimistic, and never more than one bucket (about 21 %) pessimistic.
    assert true_quantile <= estimate <= true_quantile * BUCKET_RATIO * (1 + 1e-12)
    assert estimate in LATENCY_BOUNDS_MS


def test_merge_adds_counts_like_observing_everything_in_one_place() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(3.0, 0.8, size=300)
    probabilities = rng.random(600)
    whole = stats_of(latencies, errors=9, probabilities=probabilities, records_per_request=2)
    first = stats_of(latencies[:100], errors=9, probabilities=probabilities[:200], records_per_request=2)
    second = stats_of(latencies[100:], probabilities=probabilities[200:], records_per_request=2)
    first.merge(second)
    assert first.to_dict() == whole.to_dict()
    assert first.latency_quantile(0.99) == whole.latency_quantile(0.99)
    assert (first.requests, first.errors, first.records) == (300, 9, 600)


def test_merge_leaves_the_other_stats_untouched() -> None:
    mine, other = stats_of([1.0]), stats_of([2.0, 3.0], errors=1)
    before = other.to_dict()
    mine.merge(other)
    mine.observe(4.0)
    assert other.to_dict() == before


def test_merge_refuses_histograms_of_another_shape() -> None:
    mine = VersionStats()
    mine.observe(1.0, probabilities=[0.5])
    other = VersionStats(probability_counts=[0] * (PROBABILITY_BINS + 1))
    with pytest.raises(ValueError):
        mine.merge(other)


def test_an_empty_window_takes_the_bins_of_its_first_report() -> None:
    # A multiclass model's scores are class indexes: three bins, not the probability's ten.
    report = VersionStats()
    report.observe(1.0, probabilities=[0.0, 2.0, 2.0], edges=[0.5, 1.5])
    window = VersionStats()
    window.merge(report)
    assert window.probability_counts == [1, 0, 2]


def test_error_rate() -> None:
    assert VersionStats().error_rate == 0.0
    assert stats_of([1.0] * 8, errors=2).error_rate == 0.25
    assert stats_of([1.0] * 3, errors=3).error_rate == 1.0


def test_to_dict_and_from_dict_round_trip_without_sharing_lists() -> None:
    stats = stats_of([0.5, 30.0, 30.0, 900.0], errors=1, probabilities=[0.1, 0.2, 0.95])
    data = stats.to_dict()
    assert set(data) == {"requests", "errors", "records", "latency_counts", "probability_counts"}
    restored = VersionStats.from_dict(data)
    assert restored == stats
    # The dict is a snapshot: changing it (or the restored copy) leaves the others alone.
    data["latency_counts"][0] += 100
    data["probability_counts"][0] += 100
    assert restored == stats
    restored.observe(1.0)
    assert stats.requests == 4
    assert VersionStats.from_dict(data) != stats


def test_summary_figures() -> None:
    stats = stats_of([10.0] * 3 + [20.0], errors=1, probabilities=[0.02, 0.52, 0.52, 0.97])
    summary = stats.summary()
    assert summary["requests"] == 4
    assert summary["records"] == 4
    assert summary["errors"] == 1
    assert summary["error_rate"] == 0.25
    assert summary["p50_ms"] == round(stats.latency_quantile(0.5), 3)
    assert summary["p50_ms"] >= 10.0
    assert summary["p99_ms"] >= 20.0
    # Mean over bin midpoints: bins 0, 5, 5 and 9 -> (0.05 + 0.55 * 2 + 0.95) / 4.
    assert summary["mean_probability"] == pytest.approx((0.05 + 0.55 * 2 + 0.95) / 4, abs=1e-4)
    assert VersionStats().summary()["mean_probability"] is None


# --- population stability index ----------------------------------------------------------------------


def test_psi_of_identical_or_proportional_histograms_is_zero() -> None:
    histogram = [5, 10, 0, 40, 45]
    assert histogram_psi(histogram, histogram) == 0.0
    assert histogram_psi(histogram, [3 * count for count in histogram]) == pytest.approx(0.0)


def test_psi_known_value() -> None:
    # Shares (0.5, 0.5) against (0.9, 0.1): sum of (q - p) * ln(q / p) over the two bins.
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert histogram_psi([50, 50], [90, 10]) == pytest.approx(expected)
    assert histogram_psi([90, 10], [50, 50]) == pytest.approx(expected)  # symmetric


def test_psi_grows_as_the_distribution_shifts() -> None:
    baseline = [100, 100, 100, 100, 100]
    values = []
    for moved in (0, 20, 40, 60, 80, 99):
        shifted = [100 - moved, 100, 100, 100, 100 + moved]
        values.append(histogram_psi(baseline, shifted))
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_psi_stays_finite_with_empty_bins() -> None:
    psi = histogram_psi([100, 0], [0, 100])
    assert math.isfinite(psi)
    assert psi > 5


@pytest.mark.parametrize(("expected", "actual"), [([0, 0], [1, 1]), ([1, 1], [0, 0]), ([], [])])
def test_psi_of_an_empty_histogram_raises(expected: list[int], actual: list[int]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        histogram_psi(expected, actual)


def test_psi_refuses_histograms_over_different_bins() -> None:
    with pytest.raises(ValueError):
        histogram_psi([1, 2, 3], [1, 2])


def test_psi_rarely_flags_two_samples_of_the_same_distribution() -> None:
    # Between two samples of n each from one distribution, PSI is about (2 / n) * chi-squared with
    # (bins - 1) degrees of freedom: mean 19 * 2 / 2000 = 0.019, standard deviation about
    # sqrt(2 * 19) * 0.001 = 0.006. The 0.25 threshold lies ~35 standard deviations out, so any false
    # alarm in 200 repetitions means the index (or the binning) is wrong.
    threshold = SLOThresholds().max_prediction_psi
    rng = np.random.default_rng(2024)
    values = []
    for _ in range(200):
        champion = probability_histogram(rng.beta(2, 5, size=2_000))
        challenger = probability_histogram(rng.beta(2, 5, size=2_000))
        values.append(histogram_psi(champion.probability_counts, challenger.probability_counts))
    false_alarms = sum(value > threshold for value in values)
    assert false_alarms == 0
    assert 0.005 < float(np.mean(values)) < 0.05  # near the chi-squared mean, and not a constant 0


def test_psi_always_flags_a_real_shift() -> None:
    # Beta(2, 5) has mean 0.29, Beta(5, 2) mean 0.71: the classifier's scores moved across 0.5.
    slo = SLOThresholds()
    rng = np.random.default_rng(99)
    for _ in range(50):
        champion = probability_histogram(rng.beta(2, 5, size=2_000))
        challenger = probability_histogram(rng.beta(5, 2, size=2_000))
        psi = histogram_psi(champion.probability_counts, challenger.probability_counts)
        assert psi > 4 * slo.max_prediction_psi


# --- judge -------------------------------------------------------------------------------------------


def healthy(requests: int = 200, *, seed: int = 0, errors: int = 0) -> VersionStats:
    """Fast requests, no errors unless asked, scores drawn from Beta(2, 5)."""
    rng = np.random.default_rng(seed)
    return stats_of(
        rng.uniform(5.0, 50.0, size=requests),
        errors=errors,
        probabilities=rng.beta(2, 5, size=requests * 5),
        records_per_request=5,
    )


def test_judge_passes_a_healthy_window() -> None:
    champion, challenger = healthy(seed=1), healthy(seed=2)
    verdict = judge(challenger, champion, SLOThresholds())
    assert verdict.passed
    assert verdict.reasons == ()
    assert verdict.explain() == "all SLOs met"
    assert verdict.prediction_psi is not None
    assert 0 <= verdict.prediction_psi < 0.25
    assert verdict.challenger == challenger.summary()
    assert verdict.champion == champion.summary()


def test_judge_fails_on_insufficient_traffic() -> None:
    # No champion: PSI of a few records is noisy (about 0.2 with no shift at all over 10 bins) and
    # would add a second reason.
    verdict = judge(healthy(10), None, SLOThresholds(min_requests=30))
    assert not verdict.passed
    assert verdict.reasons == ("insufficient traffic: 10 request(s) reached the challenger, 30 needed",)
    assert judge(healthy(30), None, SLOThresholds(min_requests=30)).passed


def test_judge_fails_a_challenger_with_no_traffic_at_all() -> None:
    verdict = judge(VersionStats(), None, SLOThresholds())
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("insufficient traffic: 0 request(s)")


def test_judge_fails_on_p99_latency() -> None:
    # Two slow requests in a hundred: the 99th-percentile request is a slow one.
    challenger = stats_of([20.0] * 98 + [1_000.0] * 2)
    verdict = judge(challenger, None, SLOThresholds(p99_latency_ms=250))
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("p99 latency ")
    assert verdict.reasons[0].endswith(" ms > 250 ms")
    # One slow request in a hundred is the 100th percentile, not the 99th.
    assert judge(stats_of([20.0] * 99 + [1_000.0]), None, SLOThresholds(p99_latency_ms=250)).passed


def test_judge_fails_on_error_rate() -> None:
    slo = SLOThresholds(max_error_rate=0.01)
    verdict = judge(healthy(100, errors=2), None, slo)
    assert not verdict.passed
    assert verdict.reasons == ("error rate 2.00% > 1.00% (2 of 100)",)
    assert judge(healthy(100, errors=1), None, slo).passed  # exactly at the limit passes


def test_judge_fails_on_a_prediction_shift() -> None:
    rng = np.random.default_rng(5)
    champion = healthy(seed=3)
    challenger = stats_of(
        rng.uniform(5.0, 50.0, size=200), probabilities=rng.beta(5, 2, size=1_000), records_per_request=5
    )
    verdict = judge(challenger, champion, SLOThresholds())
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("prediction distribution moved: PSI ")
    assert verdict.reasons[0].endswith("> 0.25 against the champion")
    assert verdict.prediction_psi > 0.25


def test_judge_without_champion_skips_the_prediction_check() -> None:
    rng = np.random.default_rng(6)
    challenger = stats_of(rng.uniform(5.0, 50.0, size=100), probabilities=[0.99] * 500, records_per_request=5)
    verdict = judge(challenger, None, SLOThresholds())
    assert verdict.passed
    assert verdict.prediction_psi is None
    assert verdict.champion is None
    # A champion without scored records cannot be compared either.
    without_records = stats_of([10.0] * 50)
    verdict = judge(challenger, without_records, SLOThresholds())
    assert verdict.passed
    assert verdict.prediction_psi is None
    assert verdict.champion == without_records.summary()


def test_judge_compares_predictions_only_with_enough_records_on_both_sides() -> None:
    rng = np.random.default_rng(8)
    champion = stats_of([10.0] * 100, probabilities=rng.beta(2, 5, size=500))
    shifted = stats_of([10.0] * 40, probabilities=rng.beta(5, 2, size=40))
    slo = SLOThresholds(min_requests=30, min_psi_records=200)
    small = judge(shifted, champion, slo)
    assert small.passed and small.prediction_psi is None  # 40 records: not judged, not a false alarm
    # The same shift over enough records (e.g. everything the challenger answered so far) is caught.
    cumulative = stats_of([10.0] * 300, probabilities=rng.beta(5, 2, size=300))
    verdict = judge(shifted, champion, slo, challenger_predictions=cumulative)
    assert not verdict.passed and verdict.prediction_psi > slo.max_prediction_psi
    assert verdict.challenger == shifted.summary()  # latency and errors still from the window


def test_psi_false_alarms_stay_rare_at_the_smallest_judged_sample() -> None:
    # 200 records against 200, same distribution: the expected PSI is about 9 * (2/200) = 0.09.
    rng = np.random.default_rng(11)
    slo = SLOThresholds()
    alarms = 0
    for _ in range(300):
        a = stats_of([10.0], probabilities=rng.beta(2, 5, size=slo.min_psi_records))
        b = stats_of([10.0], probabilities=rng.beta(2, 5, size=slo.min_psi_records))
        alarms += histogram_psi(a.probability_counts, b.probability_counts) > slo.max_prediction_psi
    assert alarms <= 3, alarms


def test_judge_lists_every_failed_slo() -> None:
    challenger = stats_of([1_000.0] * 10, errors=5)
    verdict = judge(challenger, None, SLOThresholds())
    assert len(verdict.reasons) == 3
    assert [reason.split(" ")[0] for reason in verdict.reasons] == ["insufficient", "p99", "error"]
    assert verdict.explain() == "; ".join(verdict.reasons)


@pytest.mark.parametrize(
    "options",
    [
        {"p99_latency_ms": 0},
        {"max_error_rate": 1.5},
        {"max_prediction_psi": 0},
        {"min_requests": 0},
        {"other": 1},
    ],
)
def test_slo_thresholds_refuse_bad_values(options: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        SLOThresholds(**options)
