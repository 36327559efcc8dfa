"""Faults a model deployment injects into its own answers, for rollout drills and game days."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultInjection(BaseModel):
    """Faults a model deployment injects into its own answers, for rollout drills and game days.

    Off by default; ``deploy_flow`` accepts it for the challenger only, so a drill can prove that the
    SLO gate rolls a slow or failing version back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(0.0, ge=0, le=60_000, description="Added to every request.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests that fail.")
