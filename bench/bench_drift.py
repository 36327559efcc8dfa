"""Benchmark of ``tasks.drift.detect_drift``: false alarms, detection power, and runtime.

1. False-positive rate: the share of repetitions whose whole report alarms (``any_drift``) when
   reference and current are independent draws of the same loans distribution. Aim: <= alpha.
2. Power: the share that alarm under controlled shifts, with the share that name the shifted
   feature: salary mean + 0.5 sd, 15% of applicants moved to education level 0, and the loans
   generator's ``covariate_shift`` (0.2 and 0.5).
   Both at 100 / 1,000 / 10,000 rows per side (below ``--min-samples`` a test answers
   "insufficient data", shown as its own column).
3. Runtime: ``detect_drift`` on a current batch of 100,000 rows against a reference of 100,000,
   vs the baseline of ``scipy.stats.ks_2samp`` over the same numeric columns alone (best of
   ``--timing-runs``; generating the frames is not timed).

Run: ``.venv/bin/python bench/bench_drift.py [--repetitions 50] [--sizes 100 1000 10000]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from tasks.drift import DriftConfig, DriftReport, detect_drift
from tasks.generate import GeneratorConfig, generate_frame

NUMERIC = ["salary", "commission", "age", "house_value", "years_house_owned", "loan_amount"]
CATEGORICAL = ["education_level", "car_maker", "zipcode"]

Shift = Callable[[pd.DataFrame, pd.DataFrame, int], pd.DataFrame]


def _salary_shift(reference: pd.DataFrame, current: pd.DataFrame, seed: int) -> pd.DataFrame:
    return current.assign(salary=current["salary"] + 0.5 * reference["salary"].std())


def _education_shift(reference: pd.DataFrame, current: pd.DataFrame, seed: int) -> pd.DataFrame:
    moved = np.random.default_rng(seed).random(len(current)) < 0.15
    current = current.copy()
    current.loc[moved, "education_level"] = 0
    return current


# name -> (covariate_shift of the current batch, change applied after generation, feature expected)
SCENARIOS: dict[str, tuple[float, Shift | None, str | None]] = {
    "no shift (false alarms)": (0.0, None, None),
    "salary +0.5 sd": (0.0, _salary_shift, "salary"),
    "education level 0 +15%": (0.0, _education_shift, "education_level"),
    "covariate_shift 0.2": (0.2, None, "salary"),
    "covariate_shift 0.5": (0.5, None, "salary"),
}


def _report(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> DriftReport:
    return detect_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL, config=config)


def rates(size: int, repetitions: int, config: DriftConfig) -> list[tuple[str, float, float, float]]:
    """Per scenario: share alarming, share naming the expected feature, share with insufficient data."""
    rows = []
    for name, (shift, change, feature) in SCENARIOS.items():
        alarms = named = insufficient = 0
        for rep in range(repetitions):
            reference = generate_frame(GeneratorConfig(rows=size, seed=2 * rep))
            current = generate_frame(GeneratorConfig(rows=size, seed=2 * rep + 1, covariate_shift=shift))
            if change is not None:
                current = change(reference, current, rep)
            report = _report(reference, current, config)
            alarms += report.any_drift
            named += feature is not None and feature in report.drifted_features
            insufficient += report.status == "insufficient data"
        rows.append((name, alarms / repetitions, named / repetitions, insufficient / repetitions))
    return rows


def timing(rows: int, runs: int, config: DriftConfig) -> tuple[float, float]:
    """Best-of-``runs`` seconds of ``detect_drift`` and of bare ``ks_2samp`` over the numeric columns."""
    reference = generate_frame(GeneratorConfig(rows=rows, seed=1))
    current = generate_frame(GeneratorConfig(rows=rows, seed=2, covariate_shift=0.2))
    drift_times, ks_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        for column in NUMERIC:
            stats.ks_2samp(reference[column].to_numpy(), current[column].to_numpy())
        ks_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _report(reference, current, config)
        drift_times.append(time.perf_counter() - start)
    return min(drift_times), min(ks_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=50, help="repetitions per scenario and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000], help="rows per side")
    parser.add_argument("--min-samples", type=int, default=100, help="DriftConfig.min_samples")
    parser.add_argument("--permutations", type=int, default=200, help="DriftConfig.mmd_permutations")
    parser.add_argument("--timing-rows", type=int, default=100_000, help="rows per side for the runtime")
    parser.add_argument("--timing-runs", type=int, default=3, help="runs timed (best is kept)")
    args = parser.parse_args()
    config = DriftConfig(min_samples=args.min_samples, mmd_permutations=args.permutations)

    print(f"alpha {config.alpha}, correction {config.correction}, {args.repetitions} repetitions per cell")
    print(f"{'rows/side':>9}  {'scenario':<26} {'alarm':>6} {'named':>6} {'insuff.':>7}")
    for size in args.sizes:
        for name, alarm, named, insufficient in rates(size, args.repetitions, config):
            named_text = "-" if SCENARIOS[name][2] is None else f"{named:.2f}"
            print(f"{size:>9,}  {name:<26} {alarm:>6.2f} {named_text:>6} {insufficient:>7.2f}")
    print("(alarm: any_drift; under no shift it is the false-positive rate, else the power;")
    print(" named: the shifted feature is among drifted_features; insuff.: status 'insufficient data')")

    if args.timing_rows > 0:
        drift_s, ks_s = timing(args.timing_rows, args.timing_runs, config)
        print()
        print(f"runtime, {args.timing_rows:,} current rows vs a {args.timing_rows:,}-row reference:")
        print(f"  detect_drift (all tests, MMD on {config.mmd_max_samples} rows/side): {drift_s:8.3f} s")
        print(f"  baseline: ks_2samp over the {len(NUMERIC)} numeric columns:        {ks_s:8.3f} s")
        print(f"  ratio: {drift_s / ks_s:.1f}x")


if __name__ == "__main__":
    main()
