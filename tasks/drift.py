"""Data drift between a reference batch and a current batch: per-feature tests, MMD, outliers.

Plain functions on pandas frames for the monitor flow; nothing here knows about Prefect, lakeFS or
serving. Typical use::

    report = detect_drift(training_frame, last_day, numeric=["salary", "age"],
                          categorical=["zipcode"], prediction="probability")
    if report.any_drift:
        ...  # emit an event that starts retraining

What is tested, and how the report's alarm keeps its false-positive rate at ``alpha``:

* every numeric feature (and the prediction column, when given): two-sample Kolmogorov-Smirnov;
* every categorical feature: Pearson chi-squared on the 2 x K table over the union of the
  categories seen in either batch (a category the reference never saw counts);
* all numeric features together: maximum mean discrepancy (MMD) with a Gaussian kernel and a
  permutation p-value, which also sees changes in the joint distribution (correlations) that no
  single-feature test can.

All these p-values form ONE family and are corrected together (Benjamini-Hochberg, Holm or
Bonferroni), so under no drift at all the chance that anything is flagged is at most ``alpha``
(Holm and Bonferroni: always; Benjamini-Hochberg: under the complete null its FDR guarantee is a
family-wise one). The population stability index (PSI) is reported as an effect size beside each
test; it never raises the alarm on its own, because its scale does not depend on the sample size.
The outlier check is a rule, not a test: the share of current rows with any numeric value outside
the reference's quantile envelope, flagged when it exceeds ``max(max_outlier_rate, 2 x the
reference's own rate)``.

Below ``min_samples`` values on either side a test answers "insufficient data" and never alarms.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from infra.errors import DriftError
from tasks.psi import histogram_psi

Correction = Literal["benjamini-hochberg", "holm", "bonferroni"]
Status = Literal["ok", "drift", "insufficient data"]
ReportStatus = Literal["ok", "drift", "insufficient data", "no data"]
INSUFFICIENT_DATA = "insufficient data"
MIN_CATEGORY_COUNT = 10  # categories rarer than this (both batches together) are pooled for chi-squared
RARE_CATEGORIES = "__rare__"


class DriftConfig(BaseModel):
    """How drift is tested.

    Attributes:
        alpha: Family-wise significance level of the whole report (after correction).
        correction: Multiple-testing correction across all tests of the report.
        min_samples: Fewest non-missing values per side for a test to run; below it the test says
            "insufficient data" and never alarms.
        psi_bins: Reference-quantile bins for the PSI of numeric features.
        mmd_permutations: Permutations for the MMD p-value; its smallest possible value is
            ``1 / (mmd_permutations + 1)``, so keep it above ``tests / alpha`` (200 suffices for up
            to 10 tests at alpha 0.05) or MMD can never fire on its own.
        mmd_max_samples: Rows per side used by MMD (a seeded random subsample above it).
        outlier_quantiles: Reference quantiles bounding the "normal" envelope of each numeric feature.
        max_outlier_rate: Current outlier share that is always tolerated.
        seed: Seed of the subsampling and permutations (same inputs, same report).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Family-wise significance level.")
    correction: Correction = Field(default="benjamini-hochberg", description="Multiple-testing correction.")
    min_samples: int = Field(default=200, ge=2, description="Fewest values per side for a test to run.")
    psi_bins: int = Field(default=10, ge=2, description="Reference-quantile bins for numeric PSI.")
    mmd_permutations: int = Field(default=200, ge=1, description="Permutations for the MMD p-value.")
    mmd_max_samples: int = Field(default=1000, ge=2, description="Rows per side used by MMD.")
    outlier_quantiles: tuple[float, float] = Field(
        default=(0.005, 0.995), description="Reference quantiles bounding each numeric feature."
    )
    max_outlier_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="Outlier share tolerated.")
    seed: int = Field(default=0, ge=0, description="Seed for subsampling and permutations.")

    @model_validator(mode="after")
    def _quantiles_ordered(self) -> DriftConfig:
        low, high = self.outlier_quantiles
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"outlier_quantiles must satisfy 0 <= low < high <= 1 (got {low}, {high})")
        return self


@dataclass(frozen=True)
class FeatureDrift:
    """Drift test of one column.

    Attributes:
        name: Column name.
        kind: ``numeric`` (KS test) or ``categorical`` (chi-squared test).
        test: ``ks`` or ``chi2``.
        statistic: KS distance or chi-squared statistic; None with insufficient data.
        p_value: Raw p-value; None with insufficient data.
        adjusted_p_value: p-value after the report's multiple-testing correction.
        psi: Population stability index (effect size); None with insufficient data.
        drifted: ``adjusted_p_value <= alpha``.
        reference_n: Non-missing reference values.
        current_n: Non-missing current values.
        status: ``ok``, ``drift`` or ``insufficient data``.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    psi: float | None
    drifted: bool
    reference_n: int
    current_n: int
    status: Status


@dataclass(frozen=True)
class MultivariateDrift:
    """MMD test of all numeric features together (standardised with the reference's mean and sd).

    Attributes:
        statistic: Unbiased MMD^2 estimate; None with insufficient data.
        p_value: Permutation p-value, ``(1 + #{permuted >= observed}) / (1 + permutations)``.
        adjusted_p_value: p-value after the report's multiple-testing correction.
        drifted: ``adjusted_p_value <= alpha``.
        reference_n: Reference rows used (complete rows, subsampled to ``mmd_max_samples``).
        current_n: Current rows used.
        bandwidth: Kernel bandwidth (median pairwise distance within the reference sample).
        permutations: Permutations drawn.
        status: ``ok``, ``drift`` or ``insufficient data``.
    """

    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    drifted: bool
    reference_n: int
    current_n: int
    bandwidth: float | None
    permutations: int
    status: Status


@dataclass(frozen=True)
class OutlierDrift:
    """Share of rows with any numeric value outside the reference's quantile envelope.

    Attributes:
        rate: Share of current rows outside the envelope; None with insufficient data.
        reference_rate: The reference's own share, measured out of sample (the envelope of one
            random half applied to the other, both ways, averaged), so that it is not biased low.
        threshold: ``max(max_outlier_rate, 2 * reference_rate)``.
        drifted: ``rate > threshold``.
        status: ``ok``, ``drift`` or ``insufficient data``.
    """

    rate: float | None
    reference_rate: float | None
    threshold: float | None
    drifted: bool
    status: Status


@dataclass(frozen=True)
class DriftReport:
    """Everything ``detect_drift`` found.

    Attributes:
        features: One test per numeric then categorical feature, in the order given.
        multivariate: MMD over the numeric features; None when there are none or no current rows.
        prediction: KS test and PSI of the prediction column; None when none was named.
        outliers: Outlier share; None when there are no numeric features or no current rows.
        alpha: Significance level used.
        correction: Correction used across all tests.
        reference_rows: Rows in the reference frame.
        current_rows: Rows in the current frame.
        status: ``drift`` if anything drifted; else ``no data`` for an empty current frame,
            ``insufficient data`` if any test lacked data; else ``ok``.
        notes: Remarks in words (e.g. why there is nothing to test).
    """

    features: list[FeatureDrift]
    multivariate: MultivariateDrift | None
    prediction: FeatureDrift | None
    outliers: OutlierDrift | None
    alpha: float
    correction: Correction
    reference_rows: int
    current_rows: int
    status: ReportStatus
    notes: tuple[str, ...] = field(default=())

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features whose corrected test rejected "no drift"."""
        return [item.name for item in self.features if item.drifted]

    @property
    def any_drift(self) -> bool:
        """True when a feature, the MMD test, the prediction test or the outlier rule alarmed."""
        parts = [self.multivariate, self.prediction, self.outliers]
        return bool(self.drifted_features) or any(part is not None and part.drifted for part in parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (non-finite numbers as None), e.g. for a Prefect artifact."""
        values = asdict(self)
        values["notes"] = list(self.notes)
        values["drifted_features"] = self.drifted_features
        values["any_drift"] = self.any_drift
        return _finite(values)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------------
# Multiple-testing corrections


def adjust_p_values(p_values: Sequence[float] | np.ndarray, method: Correction) -> np.ndarray:
    """Adjusted p-values; rejecting where ``adjusted <= alpha`` is the method's procedure at ``alpha``.

    Args:
        p_values: Raw p-values in [0, 1].
        method: ``benjamini-hochberg`` (false discovery rate), ``holm`` or ``bonferroni``
            (family-wise error rate).

    Returns:
        Adjusted p-values, in the input order, capped at 1.

    Raises:
        DriftError: A p-value is NaN or outside [0, 1], or the method is unknown.
    """
    p = np.asarray(p_values, dtype="float64").ravel()
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise DriftError(f"p-values must lie in [0, 1] (got {p.tolist()})")
    if method == "benjamini-hochberg":
        return benjamini_hochberg(p)
    if method == "holm":
        return holm(p)
    if method == "bonferroni":
        return bonferroni(p)
    raise DriftError(f"unknown correction {method!r}; expected benjamini-hochberg, holm or bonferroni")


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni: ``min(1, m * p)``."""
    p = np.asarray(p_values, dtype="float64")
    return np.minimum(1.0, p * p.size)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down: the i-th smallest gets ``max_{j <= i} (m - j + 1) p_(j)``, capped at 1."""
    p = np.asarray(p_values, dtype="float64")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up: the i-th smallest gets ``min_{j >= i} m p_(j) / j``, capped at 1."""
    p = np.asarray(p_values, dtype="float64")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted


# ---------------------------------------------------------------------------------------------------
# Effect size and tests


def population_stability_index(
    reference: Sequence[Any] | np.ndarray | pd.Series,
    current: Sequence[Any] | np.ndarray | pd.Series,
    *,
    bins: int = 10,
    categorical: bool = False,
) -> float:
    """PSI, ``sum((c - r) * ln(c / r))`` over bins; about 0.1 is a moderate shift, 0.25 a large one.

    Numeric values are binned on the reference's quantiles (at most ``bins`` bins, fewer where
    quantiles coincide, open-ended at both sides); categorical values use the union of categories.
    An empty bin counts as a share of 1e-4, so the index stays finite. Missing values are dropped.

    Args:
        reference: Reference values.
        current: Current values.
        bins: Quantile bins for numeric values.
        categorical: Treat values as categories.

    Returns:
        The index (0 for identical binned distributions).

    Raises:
        DriftError: Either side has no non-missing value, or ``bins`` is below 2.
    """
    if bins < 2:
        raise DriftError(f"bins must be >= 2 (got {bins})")
    ref = pd.Series(np.asarray(reference, dtype=object) if categorical else np.asarray(reference)).dropna()
    cur = pd.Series(np.asarray(current, dtype=object) if categorical else np.asarray(current)).dropna()
    if ref.empty or cur.empty:
        raise DriftError("PSI needs at least one non-missing value on each side")
    if categorical:
        ref_counts, cur_counts = _category_counts(ref, cur)
    else:
        ref_counts, cur_counts = _quantile_bin_counts(
            ref.to_numpy(dtype="float64"), cur.to_numpy(dtype="float64"), bins
        )
    return histogram_psi(ref_counts, cur_counts)


def _quantile_bin_counts(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_idx = np.searchsorted(edges, ref, side="right")
    cur_idx = np.searchsorted(edges, cur, side="right")
    size = edges.size + 1
    return np.bincount(ref_idx, minlength=size), np.bincount(cur_idx, minlength=size)


def _category_counts(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref_counts = ref.value_counts()
    cur_counts = cur.value_counts()
    union = ref_counts.index.union(cur_counts.index, sort=False)
    return (
        ref_counts.reindex(union, fill_value=0).to_numpy(dtype="float64"),
        cur_counts.reindex(union, fill_value=0).to_numpy(dtype="float64"),
    )


def chi_squared_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-squared test of homogeneity on a 2 x K table of category counts.

    Categories seen fewer than 10 times in both batches together are pooled into one (and dropped
    if the pool is still that rare), so small expected counts do not inflate the statistic. With a
    single category left there is nothing to compare: statistic 0, p-value 1.

    Args:
        ref_counts: Reference count per category.
        cur_counts: Current count per category, aligned with ``ref_counts``.

    Returns:
        ``(statistic, p_value)``.
    """
    ref_counts = np.asarray(ref_counts, dtype="float64")
    cur_counts = np.asarray(cur_counts, dtype="float64")
    totals = ref_counts + cur_counts
    rare = totals < MIN_CATEGORY_COUNT
    columns = [np.stack([ref_counts[~rare], cur_counts[~rare]])]
    if totals[rare].sum() >= MIN_CATEGORY_COUNT:
        columns.append(np.array([[ref_counts[rare].sum()], [cur_counts[rare].sum()]]))
    table = np.concatenate(columns, axis=1)
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int,
    rng: np.random.Generator,
    max_samples: int | None = None,
) -> tuple[float, float, float, int, int]:
    """Maximum mean discrepancy two-sample test with a Gaussian kernel and a permutation p-value.

    Both samples are standardised with the reference's mean and standard deviation; the kernel
    bandwidth is the median pairwise distance within the (subsampled) reference. The statistic is
    the unbiased MMD^2 estimate; permutations reshuffle the pooled rows between the two sides.

    Args:
        reference: Reference rows, shape (n, d), no missing values.
        current: Current rows, shape (m, d).
        permutations: Permutations drawn for the p-value.
        rng: Source of the subsampling and permutations.
        max_samples: Rows per side kept (seeded random subsample); None keeps all.

    Returns:
        ``(statistic, p_value, bandwidth, reference_n, current_n)`` with the row counts used.
    """
    x = np.asarray(reference, dtype="float64")
    y = np.asarray(current, dtype="float64")
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    if max_samples is not None:
        if len(x) > max_samples:
            x = x[rng.choice(len(x), max_samples, replace=False)]
        if len(y) > max_samples:
            y = y[rng.choice(len(y), max_samples, replace=False)]
    if len(x) < 2 or len(y) < 2:
        raise DriftError("MMD needs at least 2 rows on each side")
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    x, y = (x - mean) / sd, (y - mean) / sd
    pooled = np.concatenate([x, y])
    sq_norms = np.einsum("ij,ij->i", pooled, pooled)
    sq_dist = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    n, m = len(x), len(y)
    ref_dist = np.sqrt(sq_dist[:n, :n][np.triu_indices(n, k=1)])
    bandwidth = float(np.median(ref_dist))
    if not bandwidth > 0:
        bandwidth = 1.0
    kernel = np.exp(-sq_dist / (2.0 * bandwidth**2))
    # Column 0 is the observed split; the others are permutations of the pooled rows.
    labels = np.zeros((n + m, permutations + 1))
    labels[:n, 0] = 1.0
    base = labels[:, 0].copy()
    for column in range(1, permutations + 1):
        labels[:, column] = rng.permutation(base)
    statistics = _mmd_unbiased(kernel, labels, n, m)
    observed = statistics[0]
    p_value = (1.0 + np.count_nonzero(statistics[1:] >= observed)) / (1.0 + permutations)
    return float(observed), float(p_value), bandwidth, n, m


def _mmd_unbiased(kernel: np.ndarray, labels: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD^2 for every labelling column (1 = reference) at once; the kernel's diagonal is 1."""
    other = 1.0 - labels
    k_labels = kernel @ labels
    k_other = kernel @ other
    sum_xx = np.einsum("ij,ij->j", labels, k_labels) - n
    sum_yy = np.einsum("ij,ij->j", other, k_other) - m
    sum_xy = np.einsum("ij,ij->j", other, k_labels)
    return sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2.0 * sum_xy / (n * m)


# ---------------------------------------------------------------------------------------------------
# The report


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    prediction: str | None = None,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Test whether ``current`` comes from the same distribution as ``reference``.

    Args:
        reference: The batch taken as normal (e.g. the training data), with every named column.
        current: The batch to check (e.g. the last day's requests), with every named column.
        numeric: Numeric feature columns (KS test, PSI on reference quantiles, MMD, outliers).
        categorical: Categorical feature columns (chi-squared test, PSI on categories).
        prediction: Column of predicted probabilities to test like a numeric feature; optional.
        config: Test settings; ``DriftConfig()`` when None.

    Returns:
        The report. An empty ``current`` gives status ``no data``; fewer than ``min_samples``
        non-missing values on either side gives ``insufficient data`` for that test, never drift.

    Raises:
        DriftError: A column is missing from either frame, named twice, numeric but holding
            non-numeric or infinite values, or has no non-missing value; no feature is named; the
            reference frame is empty.
    """
    config = config or DriftConfig()
    numeric, categorical = list(numeric), list(categorical)
    _check_columns(reference, current, numeric, categorical, prediction)
    if len(reference) == 0:
        raise DriftError("the reference frame is empty; drift needs a reference batch")
    numeric_columns = [*numeric, *([prediction] if prediction is not None else [])]
    ref_numeric = {name: _numeric_values(reference, name, "reference") for name in numeric_columns}
    if len(current) == 0:
        return _empty_report(reference, numeric, categorical, prediction, config)
    cur_numeric = {name: _numeric_values(current, name, "current") for name in numeric_columns}
    for name in categorical:
        for frame, side in ((reference, "reference"), (current, "current")):
            if frame[name].notna().sum() == 0:
                raise DriftError(f"categorical column {name!r} has no non-missing value in the {side} frame")

    raw: list[dict[str, Any]] = []
    for name in numeric_columns:
        raw.append(_numeric_test(name, ref_numeric[name], cur_numeric[name], config))
    for name in categorical:
        raw.append(_categorical_test(name, reference[name], current[name], config))
    mmd = _multivariate(reference, current, numeric, config) if numeric else None

    # One family: every feature test, the prediction test and MMD, corrected together.
    p_values = [item["p_value"] for item in raw if item["p_value"] is not None]
    if mmd is not None and mmd["p_value"] is not None:
        p_values.append(mmd["p_value"])
    adjusted = iter(adjust_p_values(p_values, config.correction).tolist())
    tests = [
        _finish_feature(item, next(adjusted) if item["p_value"] is not None else None, config) for item in raw
    ]
    multivariate = None
    if mmd is not None:
        multivariate = _finish_mmd(mmd, next(adjusted) if mmd["p_value"] is not None else None, config)

    features = tests[: len(numeric)] + tests[len(numeric_columns) :]
    prediction_test = tests[len(numeric)] if prediction is not None else None
    outliers = _outliers(reference, current, numeric, config) if numeric else None
    parts: list[Any] = [*tests, multivariate, outliers]
    statuses = {part.status for part in parts if part is not None}
    if "drift" in statuses:
        status: ReportStatus = "drift"
    elif INSUFFICIENT_DATA in statuses:
        status = INSUFFICIENT_DATA
    else:
        status = "ok"
    return DriftReport(
        features=features,
        multivariate=multivariate,
        prediction=prediction_test,
        outliers=outliers,
        alpha=config.alpha,
        correction=config.correction,
        reference_rows=len(reference),
        current_rows=len(current),
        status=status,
    )


def _check_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    prediction: str | None,
) -> None:
    for frame, side in ((reference, "reference"), (current, "current")):
        if not isinstance(frame, pd.DataFrame):
            raise DriftError(f"the {side} batch must be a pandas DataFrame (got {type(frame).__name__})")
    names = [*numeric, *categorical, *([prediction] if prediction is not None else [])]
    if not numeric and not categorical:
        raise DriftError("name at least one numeric or categorical feature")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DriftError(f"columns named more than once across numeric/categorical/prediction: {duplicated}")
    for frame, side in ((reference, "reference"), (current, "current")):
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise DriftError(f"the {side} frame lacks column(s) {missing}")


def _numeric_values(frame: pd.DataFrame, name: str, side: str) -> np.ndarray:
    column = frame[name]
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        try:
            column = pd.to_numeric(column, errors="raise")
        except (ValueError, TypeError) as error:
            raise DriftError(
                f"numeric column {name!r} holds non-numeric values in the {side} frame ({error})"
            ) from None
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]
    if len(frame) and values.size == 0:
        raise DriftError(f"numeric column {name!r} has no non-missing value in the {side} frame")
    if np.isinf(values).any():
        raise DriftError(f"numeric column {name!r} holds infinite values in the {side} frame")
    return values


def _insufficient(name: str, kind: str, test: str, reference_n: int, current_n: int) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "test": test,
        "statistic": None,
        "p_value": None,
        "psi": None,
        "reference_n": reference_n,
        "current_n": current_n,
    }


def _numeric_test(name: str, ref: np.ndarray, cur: np.ndarray, config: DriftConfig) -> dict[str, Any]:
    result = _insufficient(name, "numeric", "ks", ref.size, cur.size)
    if min(ref.size, cur.size) < config.min_samples:
        return result
    ks = stats.ks_2samp(ref, cur)
    result["statistic"] = float(ks.statistic)
    result["p_value"] = float(ks.pvalue)
    result["psi"] = histogram_psi(*_quantile_bin_counts(ref, cur, config.psi_bins))
    return result


def _categorical_test(
    name: str, reference: pd.Series, current: pd.Series, config: DriftConfig
) -> dict[str, Any]:
    ref, cur = reference.dropna(), current.dropna()
    result = _insufficient(name, "categorical", "chi2", len(ref), len(cur))
    if min(len(ref), len(cur)) < config.min_samples:
        return result
    ref_counts, cur_counts = _category_counts(ref, cur)
    result["statistic"], result["p_value"] = chi_squared_test(ref_counts, cur_counts)
    result["psi"] = histogram_psi(ref_counts, cur_counts)
    return result


def _finish_feature(item: dict[str, Any], adjusted: float | None, config: DriftConfig) -> FeatureDrift:
    drifted = adjusted is not None and adjusted <= config.alpha
    status: Status = INSUFFICIENT_DATA if adjusted is None else ("drift" if drifted else "ok")
    return FeatureDrift(**item, adjusted_p_value=adjusted, drifted=drifted, status=status)


def _complete_rows(frame: pd.DataFrame, numeric: list[str]) -> np.ndarray:
    values = frame[numeric].apply(pd.to_numeric).to_numpy(dtype="float64", na_value=np.nan)
    return values[~np.isnan(values).any(axis=1)]


def _multivariate(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], config: DriftConfig
) -> dict[str, Any]:
    ref, cur = _complete_rows(reference, numeric), _complete_rows(current, numeric)
    used = min(len(ref), config.mmd_max_samples), min(len(cur), config.mmd_max_samples)
    result: dict[str, Any] = {"statistic": None, "p_value": None, "bandwidth": None, "n": used}
    if min(used) < config.min_samples:
        return result
    rng = np.random.default_rng(config.seed)
    statistic, p_value, bandwidth, n, m = mmd_test(
        ref, cur, permutations=config.mmd_permutations, rng=rng, max_samples=config.mmd_max_samples
    )
    return {"statistic": statistic, "p_value": p_value, "bandwidth": bandwidth, "n": (n, m)}


def _finish_mmd(item: dict[str, Any], adjusted: float | None, config: DriftConfig) -> MultivariateDrift:
    drifted = adjusted is not None and adjusted <= config.alpha
    return MultivariateDrift(
        statistic=item["statistic"],
        p_value=item["p_value"],
        adjusted_p_value=adjusted,
        drifted=drifted,
        reference_n=item["n"][0],
        current_n=item["n"][1],
        bandwidth=item["bandwidth"],
        permutations=config.mmd_permutations,
        status=INSUFFICIENT_DATA if adjusted is None else ("drift" if drifted else "ok"),
    )


def _outliers(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], config: DriftConfig
) -> OutlierDrift:
    ref = reference[numeric].apply(pd.to_numeric).to_numpy(dtype="float64", na_value=np.nan)
    cur = current[numeric].apply(pd.to_numeric).to_numpy(dtype="float64", na_value=np.nan)
    if min(len(ref), len(cur)) < config.min_samples:
        return OutlierDrift(
            rate=None, reference_rate=None, threshold=None, drifted=False, status=INSUFFICIENT_DATA
        )
    # The reference's rate is measured out of sample (2-fold: the envelope of one half applied to
    # the other half, averaged): measured on the rows that set the envelope it would be biased low
    # (a row can never exceed the maximum of a sample it belongs to), so small references would
    # alarm on fresh data from the very same distribution.
    order = np.random.default_rng(config.seed).permutation(len(ref))
    first, second = ref[order[: len(ref) // 2]], ref[order[len(ref) // 2 :]]
    reference_rate = 0.5 * (
        _outside_rate(second, _envelope(first, config)) + _outside_rate(first, _envelope(second, config))
    )
    current_rate = _outside_rate(cur, _envelope(ref, config))
    threshold = max(config.max_outlier_rate, 2.0 * reference_rate)
    drifted = current_rate > threshold
    return OutlierDrift(
        rate=current_rate,
        reference_rate=reference_rate,
        threshold=threshold,
        drifted=drifted,
        status="drift" if drifted else "ok",
    )


def _envelope(values: np.ndarray, config: DriftConfig) -> np.ndarray:
    """Per-column reference quantiles ``(low, high)``, shape (2, columns); NaN where a column is empty."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column in a small half: no bound
        return np.nanquantile(values, config.outlier_quantiles, axis=0)


def _outside_rate(values: np.ndarray, envelope: np.ndarray) -> float:
    """Share of rows with any value outside the envelope (missing values and bounds never count)."""
    with np.errstate(invalid="ignore"):
        outside = (values < envelope[0]) | (values > envelope[1])
    return float(outside.any(axis=1).mean())


def _empty_report(
    reference: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    prediction: str | None,
    config: DriftConfig,
) -> DriftReport:
    def empty(name: str, kind: Literal["numeric", "categorical"]) -> FeatureDrift:
        return FeatureDrift(
            name=name,
            kind=kind,
            test="ks" if kind == "numeric" else "chi2",
            statistic=None,
            p_value=None,
            adjusted_p_value=None,
            psi=None,
            drifted=False,
            reference_n=int(reference[name].notna().sum()),
            current_n=0,
            status=INSUFFICIENT_DATA,
        )

    return DriftReport(
        features=[empty(name, "numeric") for name in numeric]
        + [empty(name, "categorical") for name in categorical],
        multivariate=None,
        prediction=empty(prediction, "numeric") if prediction is not None else None,
        outliers=None,
        alpha=config.alpha,
        correction=config.correction,
        reference_rows=len(reference),
        current_rows=0,
        status="no data",
        notes=("the current frame has no rows",),
    )
