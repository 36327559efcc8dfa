"""What a rollout is asked to do, and what it reports: the plan, its parameters, its result.

Plain types shared by the rollout engine (``serving.rollout.run_rollout``), ``retrain_flow`` (which
rolls a better challenger out) and the CLI (``lockgate deploy``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.slo import SLOThresholds
from infra.naming import MODEL_NAME_PATTERN
from infra.settings import model_name_from_settings

RolloutOutcome = Literal["promoted", "already-champion"]


class FaultInjection(BaseModel):
    """Faults a model deployment injects into its own answers, for rollout drills and game days.

    Off by default; ``deploy_flow`` accepts it for the challenger only, so a drill can prove that the
    SLO gate rolls a slow or failing version back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(0.0, ge=0, le=60_000, description="Added to every request.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests that fail.")


class RolloutStep(BaseModel):
    """One step of a rollout plan."""

    traffic: float = Field(ge=0, le=1, description="Share of live traffic the challenger answers (0..1).")
    shadow: bool = Field(False, description="Challenger gets a copy of every request; answers not returned.")
    hold_s: float = Field(30.0, gt=0, le=86_400, description="How long the step is held and measured.")

    @model_validator(mode="after")
    def _shadow_has_no_share(self) -> RolloutStep:
        if self.shadow and self.traffic:
            raise ValueError("a shadow step answers no traffic: set traffic to 0")
        if not self.shadow and not self.traffic:
            raise ValueError("a step needs traffic > 0, or shadow: true")
        return self

    @property
    def label(self) -> str:
        return "shadow" if self.shadow else f"{self.traffic:.0%}"


def default_plan(hold_s: float = 30.0) -> list[RolloutStep]:
    """shadow -> 5 % -> 25 % -> 50 % -> 100 %, each held ``hold_s``."""
    return [RolloutStep(traffic=0, shadow=True, hold_s=hold_s)] + [
        RolloutStep(traffic=share, hold_s=hold_s) for share in (0.05, 0.25, 0.5, 1.0)
    ]


def parse_plan(text: str, *, hold_s: float) -> list[RolloutStep]:
    """``"shadow,5,25,100"`` (percentages, ``%`` allowed) as steps each held ``hold_s``.

    Raises:
        ValueError: a step is neither ``shadow`` nor a number.
    """
    steps = []
    for part in (item.strip().lower().removesuffix("%") for item in text.split(",")):
        if not part:
            continue
        if part == "shadow":
            steps.append(RolloutStep(traffic=0, shadow=True, hold_s=hold_s))
            continue
        try:
            share = float(part)
        except ValueError:
            raise ValueError(f"plan step {part!r} is neither 'shadow' nor a percentage") from None
        steps.append(RolloutStep(traffic=share / 100, hold_s=hold_s))
    return steps


class DeployParameters(BaseModel):
    """Which version to roll out, how, and what it must meet on live traffic."""

    model_name: str = Field(
        default_factory=model_name_from_settings,
        pattern=MODEL_NAME_PATTERN,
        description="Model; unset: LOCKGATE_MODEL_NAME (or '<dataset>-mlp' of LOCKGATE_DATASET).",
    )
    version: str = Field(
        "challenger", min_length=1, description="Version to roll out: v3, 'challenger' or 'latest'."
    )
    plan: list[RolloutStep] = Field(default_factory=default_plan, min_length=1, description="Rollout steps.")
    slo: SLOThresholds = Field(default_factory=SLOThresholds, description="What every step must meet.")
    max_wait_s: float = Field(
        120.0, ge=0, description="Extra time a step may wait for enough traffic before it fails."
    )
    require_approval: bool = Field(
        False, description="Pause for a person's approval in the Prefect UI (always for high-risk models)."
    )
    approval_timeout_s: int = Field(3600, ge=10, description="How long the approval may take.")
    approval_poll_s: int = Field(5, ge=1, le=60, description="How often the paused run checks for an answer.")
    faults: FaultInjection | None = Field(
        None, description="Drill only: faults the challenger injects (latency, errors) to test the gate."
    )

    @model_validator(mode="after")
    def _ends_at_full_traffic(self) -> DeployParameters:
        if self.plan[-1].shadow or self.plan[-1].traffic < 1.0:
            raise ValueError("the last step of the plan must send 100% of traffic to the challenger")
        return self


@dataclass(frozen=True)
class ApprovalAnswer:
    """A reviewer's answer to a rollout that needs approval."""

    approve: bool
    reviewer: str = ""
    reason: str = ""


@dataclass(frozen=True)
class StepResult:
    """What one step of a rollout saw and decided."""

    step: str
    passed: bool
    reason: str
    challenger_requests: int = 0
    challenger_records: int = 0
    challenger_errors: int = 0
    challenger_error_rate: float = 0.0
    challenger_p50_ms: float | None = None
    challenger_p99_ms: float | None = None
    challenger_mean_probability: float | None = None
    champion_p99_ms: float | None = None
    prediction_psi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutResult:
    """How a rollout ended (a rollback raises ``RolloutError`` instead of returning)."""

    model: str
    version: str
    outcome: RolloutOutcome
    previous_champion: str | None = None
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    first_deployment: bool = False
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": [step.to_dict() for step in self.steps]}
