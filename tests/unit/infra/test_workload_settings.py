"""WorkloadSettings: one LOCKGATE_DATASET / LOCKGATE_MODEL_NAME for every command, flow form, the serving
app, the deployments and the stack; nothing configured means no dataset, never the demo's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contracts.rollout import DeployParameters
from infra.errors import ConfigurationError
from infra.settings import AutomationSettings, ServingSettings, WorkloadSettings, describe_settings
from tasks.ingestion import IngestParameters
from tasks.monitoring import MonitorParameters
from tasks.retraining import RetrainParameters
from tasks.training import TrainParameters


@pytest.fixture(autouse=True)
def nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in ("LOCKGATE_DATASET", "LOCKGATE_MODEL_NAME") or name.startswith(
            ("LOCKGATE_SERVING_", "LOCKGATE_AUTOMATION_")
        ):
            monkeypatch.delenv(name)


def test_nothing_configured_names_no_dataset_or_model() -> None:
    assert WorkloadSettings().dataset is None and WorkloadSettings().model_name is None
    assert ServingSettings().model_name is None and ServingSettings().dataset is None
    assert AutomationSettings().model_name is None and AutomationSettings().dataset is None
    with pytest.raises(ConfigurationError, match="LOCKGATE_DATASET"):
        TrainParameters()
    with pytest.raises(ConfigurationError, match="LOCKGATE_DATASET"):
        IngestParameters(source="batch.csv")
    for parameters in (MonitorParameters, DeployParameters, RetrainParameters):
        with pytest.raises(ConfigurationError, match="LOCKGATE_MODEL_NAME"):
            parameters()


def test_one_dataset_setting_reaches_every_parameter_form_and_settings_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    assert (TrainParameters().dataset, TrainParameters().model_name) == ("penguins", "penguins-mlp")
    assert IngestParameters(source="batch.csv").dataset == "penguins"
    assert RetrainParameters().dataset == "penguins" and RetrainParameters().model_name == "penguins-mlp"
    assert MonitorParameters().model_name == DeployParameters().model_name == "penguins-mlp"
    assert ServingSettings().model_name == AutomationSettings().model_name == "penguins-mlp"
    assert ServingSettings().dataset == AutomationSettings().dataset == "penguins"


def test_the_model_setting_belongs_to_its_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    monkeypatch.setenv("LOCKGATE_MODEL_NAME", "penguin-net")
    assert TrainParameters().model_name == "penguin-net"
    assert TrainParameters(dataset="diabetes").model_name == "diabetes-mlp"  # never into another's model
    assert TrainParameters(dataset="diabetes", model_name="sugar").model_name == "sugar"
    assert MonitorParameters().model_name == ServingSettings().model_name == "penguin-net"
    monkeypatch.delenv("LOCKGATE_DATASET")
    assert WorkloadSettings().model_for("diabetes") == "penguin-net"  # no dataset it belongs to
    assert WorkloadSettings().required_model_name() == "penguin-net"


def test_each_concerns_own_variable_and_keyword_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKGATE_MODEL_NAME", "everywhere")
    monkeypatch.setenv("LOCKGATE_SERVING_MODEL_NAME", "served")
    monkeypatch.setenv("LOCKGATE_AUTOMATION_DATASET", "diabetes")
    assert ServingSettings().model_name == "served"
    assert ServingSettings(model_name="given").model_name == "given"
    automation = AutomationSettings()
    assert (automation.model_name, automation.dataset) == ("everywhere", "diabetes")
    assert AutomationSettings(dataset="penguins", model_name="m").dataset == "penguins"


def test_lockgate_settings_shows_both_variables_and_where_a_value_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKGATE_DATASET", "penguins")
    rows = {row.name: row for row in describe_settings(ServingSettings)[0]}
    assert rows["dataset"].variables == ("LOCKGATE_SERVING_DATASET", "LOCKGATE_DATASET")
    assert rows["dataset"].source == "environment" and rows["dataset"].value == "penguins"
    assert rows["model_name"].value == "penguins-mlp"
    workload = {row.name: row for row in describe_settings(WorkloadSettings)[0]}
    assert workload["dataset"].variables == ("LOCKGATE_DATASET",)
    assert workload["model_name"].variables == ("LOCKGATE_MODEL_NAME",)


def test_the_stack_hands_its_dataset_and_model_to_every_service(tmp_path: Path) -> None:
    from infra.stack import StackConfig
    from infra.stack.services import stack_environment

    def environment(config: StackConfig) -> dict[str, str]:
        return stack_environment(
            config, lakefs_credentials=("k", "s"), webhook_secret="w", ray_token_path=tmp_path / "t"
        )

    chosen = environment(StackConfig(stack_dir=tmp_path, dataset="penguins", model_name="penguin-net"))
    assert (chosen["LOCKGATE_DATASET"], chosen["LOCKGATE_MODEL_NAME"]) == ("penguins", "penguin-net")
    assert "LOCKGATE_DATASET" not in environment(StackConfig(stack_dir=tmp_path))
