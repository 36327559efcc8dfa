"""The dataset and the model the loop works on when a command or flow names none (``LOCKGATE_DATASET``,
``LOCKGATE_MODEL_NAME``).

Set them once and every command, flow parameter form, the serving app and the deployments agree; the
framework itself names no dataset. ``ServingSettings`` and ``AutomationSettings`` read the same two
variables (their own ``LOCKGATE_SERVING_*`` / ``LOCKGATE_AUTOMATION_*`` ones win). A model name left
unset is ``<dataset>-mlp``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings

from infra.errors import ConfigurationError
from infra.naming import MODEL_NAME_PATTERN
from infra.settings.base import settings_config

DATASET_VARIABLE = "LOCKGATE_DATASET"
MODEL_NAME_VARIABLE = "LOCKGATE_MODEL_NAME"


def default_model_name(dataset: str) -> str:
    """The name a model of ``dataset`` is registered under when none is given: ``<dataset>-mlp``."""
    return f"{dataset}-mlp"


def require_dataset(dataset: str | None) -> str:
    """``dataset``, or a ``ConfigurationError`` saying how to name one."""
    if dataset:
        return dataset
    raise ConfigurationError(
        f"no dataset named: pass one (--dataset, or the `dataset` parameter) or set {DATASET_VARIABLE} "
        "once (`lockgate datasets` lists the declared ones)"
    )


def require_model_name(model_name: str | None) -> str:
    """``model_name``, or a ``ConfigurationError`` saying how to name one."""
    if model_name:
        return model_name
    raise ConfigurationError(
        f"no model named: pass one (--model-name, or the `model_name` parameter) or set "
        f"{MODEL_NAME_VARIABLE} (or {DATASET_VARIABLE}: its model is '<dataset>-mlp')"
    )


class WorkloadSettings(BaseSettings):
    """The dataset and model commands and flows use when they are given none."""

    model_config = settings_config("LOCKGATE_", "workload settings")

    dataset: str | None = Field(
        None,
        description="Dataset commands and flows work on when none is given (see `lockgate datasets`); "
        "unset: they ask for one.",
    )
    model_name: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="Model commands and flows work on when none is given; unset: '<dataset>-mlp' of the "
        "dataset setting.",
    )

    def model_for(self, dataset: str) -> str:
        """The model of ``dataset``: the model setting when it belongs to ``dataset`` (the dataset setting
        is ``dataset`` or unset), else ``<dataset>-mlp`` (a model is never trained on another's data)."""
        if self.model_name and self.dataset in (None, dataset):
            return self.model_name
        return default_model_name(dataset)

    def required_model_name(self) -> str:
        """The model setting, else ``<dataset>-mlp`` of the dataset setting; refused when both are unset."""
        if self.model_name:
            return self.model_name
        return require_model_name(default_model_name(self.dataset) if self.dataset else None)


def dataset_from_settings() -> str:
    """The dataset setting, as the ``default_factory`` of a ``dataset`` parameter (refused when unset)."""
    return require_dataset(WorkloadSettings().dataset)


def model_name_from_settings() -> str:
    """The model setting (or ``<dataset>-mlp``), as the ``default_factory`` of a ``model_name`` parameter."""
    return WorkloadSettings().required_model_name()


def model_name_for_dataset(data: dict[str, Any]) -> str:
    """The model of the parameters' own ``dataset`` (``WorkloadSettings.model_for``), as the
    ``default_factory`` of a ``model_name`` declared after ``dataset`` (pydantic calls it only once
    ``dataset`` is valid)."""
    return WorkloadSettings().model_for(data["dataset"])
