"""Live-traffic statistics per model version, and the SLO gate a rollout step must pass.

Every ingress replica counts requests, errors, latencies (a log-bucketed histogram) and predicted
probabilities (a fixed 20-bin histogram) per version; the counts merge by addition, so the rollout
control actor can sum what all replicas saw in a window. The gate compares the challenger with its own
thresholds (p99 latency, error rate) and with the champion (population stability index of the
predicted probabilities).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from contracts.slo import SLOThresholds
from tasks.psi import histogram_psi

# Latency bucket upper bounds in ms: 0.1 ms .. ~100 s, 12 buckets per decade (about 21 % apart).
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(0.1 * 10 ** (i / 12) for i in range(73))
# Ten bins: PSI over few records is noisy (its expected value with no shift at all is about
# (bins - 1) * (1/n + 1/m)); fewer bins keep that floor well under the gate's threshold.
PROBABILITY_BINS = 10


@dataclass
class VersionStats:
    """Counts of one version over one window; ``merge`` adds another replica's counts."""

    requests: int = 0
    errors: int = 0
    records: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    probability_counts: list[int] = field(default_factory=lambda: [0] * PROBABILITY_BINS)

    def observe(
        self, latency_ms: float, *, error: bool = False, probabilities=(), edges: list[float] | None = None
    ) -> None:
        """Count one request and its scores (``probabilities``: P(positive) of a binary classifier, in
        ten equal bins; with ``edges``, any score binned by those inner edges — class indexes, values)."""
        self.requests += 1
        self.errors += int(error)
        self.latency_counts[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        if (
            edges is not None
            and len(self.probability_counts) != len(edges) + 1
            and not any(self.probability_counts)
        ):
            self.probability_counts = [0] * (len(edges) + 1)
        for probability in probabilities:
            self.records += 1
            if edges is None:
                index = max(min(int(probability * PROBABILITY_BINS), PROBABILITY_BINS - 1), 0)
            else:
                index = bisect.bisect_right(edges, probability)
            self.probability_counts[min(index, len(self.probability_counts) - 1)] += 1

    def merge(self, other: VersionStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.records += other.records
        self.latency_counts = [a + b for a, b in zip(self.latency_counts, other.latency_counts, strict=True)]
        if not any(self.probability_counts) and len(other.probability_counts) != len(self.probability_counts):
            # Nothing counted yet: take the bins of the first report (a task's own score bins).
            self.probability_counts = [0] * len(other.probability_counts)
        self.probability_counts = [
            a + b for a, b in zip(self.probability_counts, other.probability_counts, strict=True)
        ]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def latency_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of latency in ms (upper bound of its bucket: never optimistic)."""
        total = sum(self.latency_counts)
        if not total:
            return None
        rank = math.ceil(q * total)
        running = 0
        for index, count in enumerate(self.latency_counts):
            running += count
            if running >= rank:
                return LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else math.inf
        return math.inf

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "records": self.records,
            "latency_counts": list(self.latency_counts),
            "probability_counts": list(self.probability_counts),
        }

    @classmethod
    def from_dict(cls, data: dict) -> VersionStats:
        return cls(
            requests=data["requests"],
            errors=data["errors"],
            records=data["records"],
            latency_counts=list(data["latency_counts"]),
            probability_counts=list(data["probability_counts"]),
        )

    def summary(self) -> dict:
        """Figures for people: counts, error rate, p50/p99 latency, mean predicted probability."""
        mean = None
        if self.records:
            mean = (
                sum(
                    (index + 0.5) / PROBABILITY_BINS * count
                    for index, count in enumerate(self.probability_counts)
                )
                / self.records
            )
        return {
            "requests": self.requests,
            "records": self.records,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p50_ms": _rounded(self.latency_quantile(0.50)),
            "p99_ms": _rounded(self.latency_quantile(0.99)),
            "mean_probability": None if mean is None else round(mean, 4),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 3)


@dataclass(frozen=True)
class GateVerdict:
    """The outcome of one SLO gate: passed or not, why, and the figures it was based on."""

    passed: bool
    reasons: tuple[str, ...]
    challenger: dict
    champion: dict | None
    prediction_psi: float | None

    def explain(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "all SLOs met"


def judge(
    challenger: VersionStats,
    champion: VersionStats | None,
    slo: SLOThresholds,
    *,
    challenger_predictions: VersionStats | None = None,
) -> GateVerdict:
    """Check a window's challenger statistics against ``slo`` (and its predictions against the champion's).

    Args:
        challenger: The challenger's counts in the step's window (latency, errors, traffic are judged here).
        champion: The champion's predictions to compare with (e.g. everything it answered during the
            rollout so far); ``None`` or empty skips the comparison.
        slo: The thresholds.
        challenger_predictions: The challenger's predictions to compare (e.g. all its steps so far);
            defaults to ``challenger``.

    Too little traffic fails the gate: a rollout never advances on evidence it does not have. The
    prediction comparison needs ``slo.min_psi_records`` on both sides; below that it is not made and
    ``prediction_psi`` is ``None`` (the caller decides whether a rollout may finish without it).
    """
    reasons = []
    if challenger.requests < slo.min_requests:
        reasons.append(
            f"insufficient traffic: {challenger.requests} request(s) reached the challenger, "
            f"{slo.min_requests} needed"
        )
    p99 = challenger.latency_quantile(0.99)
    reasons += slo.breaches(p99_ms=p99, errors=challenger.errors, requests=challenger.requests)
    predictions = challenger_predictions or challenger
    psi = None
    if (
        champion is not None
        and champion.records >= slo.min_psi_records
        and predictions.records >= slo.min_psi_records
    ):
        psi = histogram_psi(champion.probability_counts, predictions.probability_counts)
        if psi > slo.max_prediction_psi:
            reasons.append(
                f"prediction distribution moved: PSI {psi:.3f} > {slo.max_prediction_psi:g} "
                "against the champion"
            )
    return GateVerdict(
        passed=not reasons,
        reasons=tuple(reasons),
        challenger=challenger.summary(),
        champion=None if champion is None else champion.summary(),
        prediction_psi=None if psi is None else round(psi, 4),
    )
