"""The statistics drift detection is built from: multiple-testing corrections, the PSI of raw values,
the chi-squared test of category counts and the MMD permutation test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from infra.errors import DriftError
from tasks.drift.results import MIN_CATEGORY_COUNT, Correction
from tasks.psi import histogram_psi


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
