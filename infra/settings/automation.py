"""Which model the deployments watch, how often, and how automatic runs behave (``LOCKGATE_AUTOMATION_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from infra.naming import MODEL_NAME_PATTERN
from infra.settings.base import settings_config


class AutomationSettings(BaseSettings):
    """Which model the deployments watch and how often (LOCKGATE_AUTOMATION_*)."""

    model_config = settings_config("LOCKGATE_AUTOMATION_", "automation settings")

    model_name: str = Field(
        "loans-mlp", pattern=MODEL_NAME_PATTERN, description="Model the deployments watch."
    )
    dataset: str = Field("loans", description="Dataset the model trains on.")
    monitor_interval_s: int = Field(300, ge=10, description="Seconds between scheduled monitor runs.")
    monitor_metrics_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus /metrics endpoints of the serving cluster for SLOs (JSON list); empty: "
        "SLOs from the inference log.",
    )
    retrain_cron: str = Field("0 3 * * 1", description="Scheduled retrain (cron, UTC); '' for none.")
    retrain_cooldown_s: int = Field(600, ge=0, description="No retrain of the model this soon after another.")
    rollout_hold_s: float = Field(
        30.0, gt=0, description="Hold of each rollout step of an automatic retrain."
    )
    retrain_on_merge: bool = Field(True, description="Retrain when new data is merged into main.")
    data_repository: str | None = Field(
        None, description="lakeFS repository whose merges into main start a retrain (default: the dataset's)."
    )
    train_epochs: int = Field(8, ge=1, le=1000, description="Epochs of an automatic retrain.")
    rollout_slo: dict[str, float] = Field(
        default_factory=dict,
        description="SLOs of an automatic rollout: fields of contracts.slo.SLOThresholds (JSON object in "
        "the environment); unset fields keep their defaults.",
    )
    rollout_max_wait_s: float = Field(120.0, ge=0, description="Extra wait per rollout step for traffic.")
