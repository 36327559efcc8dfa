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

========================  ====================================================================
``tasks.drift.results``   the configuration and the report types
``tasks.drift.statistics`` corrections, PSI, chi-squared, MMD
``tasks.drift.detect``    ``detect_drift``
========================  ====================================================================
"""

from __future__ import annotations

from tasks.drift.detect import detect_drift
from tasks.drift.results import (
    INSUFFICIENT_DATA,
    MIN_CATEGORY_COUNT,
    RARE_CATEGORIES,
    Correction,
    DriftConfig,
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutlierDrift,
    ReportStatus,
    Status,
)
from tasks.drift.statistics import (
    adjust_p_values,
    benjamini_hochberg,
    bonferroni,
    chi_squared_test,
    holm,
    mmd_test,
    population_stability_index,
)
from tasks.psi import PSI_FLOOR

__all__ = [
    "INSUFFICIENT_DATA",
    "MIN_CATEGORY_COUNT",
    "PSI_FLOOR",
    "RARE_CATEGORIES",
    "Correction",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "MultivariateDrift",
    "OutlierDrift",
    "ReportStatus",
    "Status",
    "adjust_p_values",
    "benjamini_hochberg",
    "bonferroni",
    "chi_squared_test",
    "detect_drift",
    "holm",
    "mmd_test",
    "population_stability_index",
]
