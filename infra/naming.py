"""Names lockgate gives and checks, each written once: model names and its own lakeFS repositories."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Model names become parts of lakeFS branch and tag names (``register-<model>-<run>``, ``<model>-v3``).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
MODEL_NAME_RULE = "1-63 letters, digits, '_' and '-', starting with a letter or digit"

ModelName = Annotated[
    str, Field(pattern=MODEL_NAME_PATTERN, description=f"Registered model name ({MODEL_NAME_RULE}).")
]

# lockgate's own repositories (datasets name theirs in their DatasetSpec).
MODELS_REPOSITORY = "lockgate-models"  # model versions, aliases and training checkpoints
INFERENCE_REPOSITORY = "lockgate-inference"  # default; ServingSettings.inference_repository sets it
MONITORING_REPOSITORY = "lockgate-monitoring"  # monitor reports and cursors
