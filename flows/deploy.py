"""``deploy_flow``: move live traffic to a registered version step by step, gated by SLOs.

The rollout engine is ``serving.rollout.run_rollout`` (plan, SLO gate, rollback, promotion); this flow
gives it typed parameters (a form in the Prefect UI), the clients from settings, Prefect as the
publisher of its artifacts and events, and a reviewer in the UI when a rollout needs approval
(``pause_flow_run`` waiting for an ``Approval``).
"""

from __future__ import annotations

from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from contracts.rollout import ApprovalAnswer, DeployParameters, RolloutResult, RolloutStep, default_plan
from flows import runtime
from infra.settings import LakeFSSettings, ServingSettings
from serving.operations import RayServing
from serving.rollout import run_rollout
from tasks.clock import SYSTEM_CLOCK
from tasks.registry import ModelCard

__all__ = ["Approval", "DeployParameters", "RolloutStep", "default_plan", "deploy_flow"]


class Approval(RunInput):
    """A reviewer's answer to a paused rollout."""

    approve: bool = Field(description="Roll the version out.")
    reviewer: str = Field("", description="Who decided.")
    reason: str = Field("", description="Why.")


@flow(name="deploy", description="SLO-gated progressive rollout on Ray Serve, with rollback and approval.")
def deploy_flow(parameters: DeployParameters) -> RolloutResult:
    """Roll ``parameters.version`` of ``parameters.model_name`` out to the serving app."""
    lakefs = LakeFSSettings()
    serving = RayServing(ServingSettings(model_name=parameters.model_name), lakefs=lakefs)
    return run_rollout(
        parameters,
        client=runtime.lakefs_client(),
        serving=serving,
        clock=SYSTEM_CLOCK,
        publish=runtime.publisher(),
        approve=ask_in_prefect_ui,
        log=runtime.logger(),
    )


def ask_in_prefect_ui(card: ModelCard, parameters: DeployParameters) -> ApprovalAnswer:
    """Pause the run until a reviewer answers in the Prefect UI (or the approval times out)."""
    answer = pause_flow_run(
        wait_for_input=Approval.with_initial_data(
            description=f"Roll out {card.model_name} {card.version}? See the evaluation artifact.",
            approve=False,
        ),
        timeout=parameters.approval_timeout_s,
        poll_interval=parameters.approval_poll_s,
        key=f"approve-{card.model_name}-{card.version}",
    )
    return ApprovalAnswer(approve=answer.approve, reviewer=answer.reviewer, reason=answer.reason)
