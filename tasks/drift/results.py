"""What drift detection is configured with and what it reports."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
            "insufficient data" and never alarms. Scaled down for a small reference: the test needs
            ``min_samples_share`` of the reference's rows when that is fewer (at least 5).
        min_samples_share: Share of the reference's rows a side needs when that is below
            ``min_samples`` (small datasets are monitored too).
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
    min_samples_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Share of a small reference's rows a side needs instead."
    )
    psi_bins: int = Field(default=10, ge=2, description="Reference-quantile bins for numeric PSI.")
    mmd_permutations: int = Field(default=200, ge=1, description="Permutations for the MMD p-value.")
    mmd_max_samples: int = Field(default=1000, ge=2, description="Rows per side used by MMD.")
    outlier_quantiles: tuple[float, float] = Field(
        default=(0.005, 0.995), description="Reference quantiles bounding each numeric feature."
    )
    max_outlier_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="Outlier share tolerated.")
    seed: int = Field(default=0, ge=0, description="Seed for subsampling and permutations.")

    def needed_samples(self, reference_rows: int) -> int:
        """Values per side a test needs against a reference of ``reference_rows`` rows."""
        return max(
            min(self.min_samples, 5),
            min(self.min_samples, math.ceil(self.min_samples_share * reference_rows)),
        )

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
