"""The population stability index, one definition for every caller.

``histogram_psi`` compares two histograms over the same bins: the rollout gate uses it on the
predicted-probability histograms of champion and challenger (``serving.stats``), drift monitoring on
reference-quantile bins and category counts (``tasks.drift``). About 0.1 is read as a moderate shift,
0.25 as a large one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from infra.errors import DriftError

PSI_FLOOR = 1e-4  # share given to an empty bin, so PSI stays finite when a bin empties


def histogram_psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """``sum((a - e) * ln(a / e))`` over the bins' shares (0: the same shape, whatever the totals).

    Args:
        expected: Counts of the reference (or champion) per bin.
        actual: Counts of the compared side over the same bins.

    Raises:
        DriftError: either histogram is empty, or they have different numbers of bins.
    """
    if len(expected) != len(actual):
        raise DriftError(f"PSI needs histograms over the same bins ({len(expected)} vs {len(actual)})")
    total_expected, total_actual = float(sum(expected)), float(sum(actual))
    if not total_expected or not total_actual:
        raise DriftError("PSI needs two non-empty histograms")
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = max(e / total_expected, PSI_FLOOR)
        q = max(a / total_actual, PSI_FLOOR)
        psi += (q - p) * math.log(q / p)
    return psi
