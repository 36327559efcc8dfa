"""``detect_drift``: every test over a reference and a current batch, corrected as one family."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from infra.errors import DriftError
from tasks.drift.results import (
    INSUFFICIENT_DATA,
    DriftConfig,
    DriftReport,
    FeatureDrift,
    MultivariateDrift,
    OutlierDrift,
    ReportStatus,
    Status,
)
from tasks.drift.statistics import (
    _category_counts,
    _quantile_bin_counts,
    adjust_p_values,
    chi_squared_test,
    mmd_test,
)
from tasks.psi import histogram_psi


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    prediction: str | None = None,
    config: DriftConfig | None = None,
    prediction_categorical: bool = False,
) -> DriftReport:
    """Test whether ``current`` comes from the same distribution as ``reference``.

    Args:
        reference: The batch taken as normal (e.g. the training data), with every named column.
        current: The batch to check (e.g. the last day's requests), with every named column.
        numeric: Numeric feature columns (KS test, PSI on reference quantiles, MMD, outliers).
        categorical: Categorical feature columns (chi-squared test, PSI on categories).
        prediction: Column of prediction scores (probabilities, values) to test like a numeric feature;
            optional.
        config: Test settings; ``DriftConfig()`` when None.
        prediction_categorical: Test ``prediction`` like a categorical feature (predicted classes).

    Returns:
        The report. An empty ``current`` gives status ``no data``; fewer than ``min_samples``
        non-missing values on either side gives ``insufficient data`` for that test, never drift.

    Raises:
        DriftError: A column is missing from either frame, named twice, numeric but holding
            non-numeric or infinite values, or has no non-missing value; no feature is named; the
            reference frame is empty.
    """
    config = config or DriftConfig()
    config = config.model_copy(update={"min_samples": config.needed_samples(len(reference))})
    numeric, categorical = list(numeric), list(categorical)
    _check_columns(reference, current, numeric, categorical, prediction)
    if len(reference) == 0:
        raise DriftError("the reference frame is empty; drift needs a reference batch")
    numeric_prediction = prediction is not None and not prediction_categorical
    numeric_columns = [*numeric, *([prediction] if numeric_prediction else [])]
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
    if prediction is not None and prediction_categorical:
        raw.append(_categorical_test(prediction, reference[prediction], current[prediction], config))
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

    if numeric_prediction:
        features = tests[: len(numeric)] + tests[len(numeric_columns) :]
        prediction_test = tests[len(numeric)]
    elif prediction is not None:
        features, prediction_test = tests[:-1], tests[-1]
    else:
        features, prediction_test = tests, None
    outliers = _outliers(reference, current, numeric, config) if numeric else None
    parts: list[Any] = [*tests, multivariate, outliers]
    statuses = {part.status for part in parts if part is not None}
    if "drift" in statuses:
        status: ReportStatus = "drift"
    elif INSUFFICIENT_DATA in statuses:
        status = INSUFFICIENT_DATA
    else:
        status = "ok"
    needed = config.min_samples
    notes = [
        f"{test.name}: insufficient data: {_side_counts(test.reference_n, test.current_n, needed)}"
        for test in [*features, *([prediction_test] if prediction_test else [])]
        if test.status == INSUFFICIENT_DATA
    ]
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
        notes=tuple(notes),
    )


def _side_counts(reference_n: int, current_n: int, needed: int) -> str:
    """Which side is short, by how much: the words of an "insufficient data" note."""
    short = [
        f"{side} has {count} value(s)"
        for side, count in (("current window", current_n), ("reference", reference_n))
        if count < needed
    ]
    return f"{' and '.join(short)}; {needed} needed per side"


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
