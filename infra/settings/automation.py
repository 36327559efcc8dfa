"""Which model the deployments watch, how often, and how automatic runs behave (``LOCKGATE_AUTOMATION_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings

from infra.naming import MODEL_NAME_PATTERN
from infra.settings.base import settings_config
from infra.settings.workload import DATASET_VARIABLE, MODEL_NAME_VARIABLE, default_model_name


class AutomationSettings(BaseSettings):
    """Which model the deployments watch and how often (LOCKGATE_AUTOMATION_*)."""

    model_config = settings_config("LOCKGATE_AUTOMATION_", "automation settings")

    model_name: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        validation_alias=AliasChoices("LOCKGATE_AUTOMATION_MODEL_NAME", MODEL_NAME_VARIABLE),
        description="Model the deployments watch; LOCKGATE_MODEL_NAME is read too; unset: '<dataset>-mlp'.",
    )
    dataset: str | None = Field(
        None,
        validation_alias=AliasChoices("LOCKGATE_AUTOMATION_DATASET", DATASET_VARIABLE),
        description="Dataset the model trains on; LOCKGATE_DATASET is read too; the deployments need one.",
    )
    monitor_interval_s: int = Field(300, ge=10, description="Seconds between scheduled monitor runs.")
    monitor_metrics_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus /metrics endpoints of the serving cluster for SLOs (JSON list); empty: "
        "SLOs from the inference log.",
    )
    retrain_cron: str = Field("0 3 * * 1", description="Scheduled retrain (cron, UTC); '' for none.")
    retention_cron: str = Field(
        "17 2 * * *", description="Scheduled retention and garbage collection (cron, UTC); '' for none."
    )
    retrain_cooldown_s: int = Field(600, ge=0, description="No retrain of the model this soon after another.")
    rollout_hold_s: float = Field(
        30.0, gt=0, description="Hold of each rollout step of an automatic retrain."
    )
    retrain_on_merge: bool = Field(True, description="Retrain when new data is merged into main.")
    data_repository: str | None = Field(
        None, description="lakeFS repository whose merges into main start a retrain (default: the dataset's)."
    )
    train_epochs: int | None = Field(
        None, ge=1, le=1000, description="Epochs of an automatic retrain (unset: adapt to the data)."
    )
    rollout_slo: dict[str, float] = Field(
        default_factory=dict,
        description="SLOs of an automatic rollout: fields of contracts.slo.SLOThresholds (JSON object in "
        "the environment); unset fields keep their defaults.",
    )
    rollout_max_wait_s: float = Field(120.0, ge=0, description="Extra wait per rollout step for traffic.")

    @model_validator(mode="after")
    def _model_of_the_dataset(self) -> AutomationSettings:
        if self.model_name is None and self.dataset:
            self.model_name = default_model_name(self.dataset)
        return self
