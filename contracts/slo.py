"""The service-level contract: what a model version must deliver on live traffic.

One model, used twice: a rollout step judges the challenger's window against it
(``serving.stats.judge``), and every monitor run judges each live version's window against it
(``tasks.monitoring``). ``breaches`` holds the comparison both make, so the two cannot disagree on
what a breach is.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class SLOThresholds(BaseModel):
    """Thresholds of latency, errors, throughput and prediction shift, and the evidence a verdict needs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    p99_latency_ms: float = Field(
        250.0,
        gt=0,
        # ``max_p99_latency_ms`` is the name monitor parameters used before there was one model.
        validation_alias=AliasChoices("p99_latency_ms", "max_p99_latency_ms"),
        description="Highest acceptable p99 request latency (ms).",
    )
    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="Highest acceptable share of failed requests."
    )
    min_throughput_rps: float = Field(
        0.0, ge=0, description="Fewest requests per second over a window (0: not checked)."
    )
    max_prediction_psi: float = Field(
        0.25,
        gt=0,
        description="Highest acceptable population stability index of a challenger's predicted "
        "probabilities against the champion's in the same rollout (rollouts only).",
    )
    min_requests: int = Field(
        30, ge=1, description="Requests a window needs before it is judged (fewer: insufficient data)."
    )
    min_psi_records: int = Field(
        200,
        ge=10,
        description="Predictions each side needs before their distributions are compared (PSI of small "
        "samples is noise).",
    )

    def breaches(
        self,
        *,
        p99_ms: float | None,
        errors: int,
        requests: int,
        throughput_rps: float | None = None,
    ) -> list[str]:
        """What a window of ``requests`` broke, one sentence each (empty: nothing).

        Args:
            p99_ms: The window's p99 latency; ``None`` when unknown (not judged).
            errors: Failed requests in the window.
            requests: Requests in the window (the caller checks ``min_requests``).
            throughput_rps: Requests per second; ``None`` when the window has no duration.
        """
        found = []
        if p99_ms is not None and p99_ms > self.p99_latency_ms:
            found.append(f"p99 latency {p99_ms:.1f} ms > {self.p99_latency_ms:g} ms")
        if requests and errors / requests > self.max_error_rate:
            found.append(
                f"error rate {errors / requests:.2%} > {self.max_error_rate:.2%} ({errors} of {requests})"
            )
        if (
            self.min_throughput_rps
            and throughput_rps is not None
            and throughput_rps < self.min_throughput_rps
        ):
            found.append(f"throughput {throughput_rps:.2f} req/s < {self.min_throughput_rps:g} req/s")
        return found


# A monitoring window is longer than a rollout step: more requests, and a laxer p99 (a window spans cold
# starts and batch traffic). Fields left out of a monitor's thresholds take these, then the model's.
MONITOR_DEFAULTS = {"p99_latency_ms": 500.0, "min_requests": 50}


def monitor_slo(given: object = None) -> SLOThresholds:
    """A monitor's thresholds: ``given`` (a mapping or ``SLOThresholds``) over ``MONITOR_DEFAULTS``."""
    if isinstance(given, SLOThresholds):
        return given
    values = dict(given or {})
    if "max_p99_latency_ms" in values:  # the name monitor parameters used before there was one model
        values["p99_latency_ms"] = values.pop("max_p99_latency_ms")
    return SLOThresholds.model_validate({**MONITOR_DEFAULTS, **values})
