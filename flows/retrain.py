"""``retrain_flow``: train a challenger on the newest validated data and promote it only if it is better.

Started by a Prefect automation (``lockgate.drift.detected``, ``lockgate.dataset.merged`` on ``main``,
a signed external webhook), by its schedule, or from the UI. The stage is
``tasks.retraining.run_retrain``; this flow gives it typed parameters, the clients from settings,
``train_flow`` and ``deploy_flow`` as subflows (each a run of its own in the UI), the cool-down clock as
the Prefect variable ``lockgate-retrain-<model>`` (visible and deletable in the UI) and Prefect as the
publisher of its decision. The deployment runs one retrain at a time (new runs are cancelled while one
runs); the cool-down covers the runs that start right after.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.variables import Variable

from flows import runtime
from flows.deploy import deploy_flow
from flows.train import train_flow
from infra.settings import ServingSettings
from tasks.clock import SYSTEM_CLOCK
from tasks.retraining import RetrainOutcome, RetrainParameters, run_retrain

__all__ = ["RetrainParameters", "cooldown_variable", "retrain_flow"]


def cooldown_variable(model_name: str) -> str:
    """Name of the Prefect variable holding the last retrain start of ``model_name``."""
    return f"lockgate-retrain-{model_name.lower().replace('_', '-')}"


class PrefectCooldowns:
    """The cool-down clock in Prefect variables, shared by every worker of the Prefect server."""

    def last_start(self, model_name: str) -> dict[str, Any] | None:
        value = Variable.get(cooldown_variable(model_name), default=None)
        return value if isinstance(value, dict) else None

    def record_start(self, model_name: str, record: dict[str, Any]) -> None:
        Variable.set(cooldown_variable(model_name), record, overwrite=True)


@flow(name="retrain", description="Retrain on the newest validated data; promote only a better model.")
def retrain_flow(parameters: RetrainParameters) -> RetrainOutcome:
    """Retrain ``parameters.model_name`` and roll it out when it beats the champion."""
    return run_retrain(
        parameters,
        client=runtime.lakefs_client(),
        cooldowns=PrefectCooldowns(),
        train=train_flow,
        deploy=deploy_flow,
        on_cluster=bool(ServingSettings(model_name=parameters.model_name).ray_address),
        clock=SYSTEM_CLOCK,
        publish=runtime.publisher(),
        run_id=runtime.run_id(),
        log=runtime.logger(),
    )
