"""Every settings class of lockgate, one per concern, each field described.

Settings are read from ``LOCKGATE_*`` environment variables (and options the CLI passes as keyword
arguments, which win). Build them at entry points (CLI commands, flow bodies, a worker's task), never
at import time, and pass the clients built from them down. Nothing else in lockgate reads the
environment: ``infra.processes`` is the one place that copies it for child processes.

=========================  =============================  ======================================
class                      environment prefix             concern
=========================  =============================  ======================================
``WorkloadSettings``       ``LOCKGATE_``                  the dataset and model (``_DATASET``,
                                                          ``_MODEL_NAME``) when none is given
``LakeFSSettings``         ``LOCKGATE_LAKEFS_``           the lakeFS server clients talk to
``EmbeddedLakeFSSettings`` ``LOCKGATE_EMBEDDED_LAKEFS_``  the embedded lakeFS-API server
``S3Settings``             ``LOCKGATE_S3_``               S3 sources (``s3://`` URIs)
``DaskSettings``           ``LOCKGATE_DASK_``             where training runs
``ServingSettings``        ``LOCKGATE_SERVING_``          the Ray Serve app and its inference log
``RelaySettings``          ``LOCKGATE_WEBHOOK_``          the signed-webhook relay
``AutomationSettings``     ``LOCKGATE_AUTOMATION_``       deployments, schedules, triggers
``StackSettings``          ``LOCKGATE_STACK_``            ``lockgate up`` / ``down`` / ``status``
=========================  =============================  ======================================

``describe_settings`` (``lockgate settings``) shows each field's effective value and its source.
"""

from __future__ import annotations

from infra.settings.automation import AutomationSettings
from infra.settings.base import check_secret, is_placeholder
from infra.settings.compute import DaskSettings
from infra.settings.embedded import EmbeddedLakeFSSettings
from infra.settings.lakefs import LakeFSSettings
from infra.settings.relay import RelaySettings
from infra.settings.report import SettingRow, describe_settings
from infra.settings.serving import THROUGHPUT_ENVIRONMENT, ServingSettings
from infra.settings.stack import DEFAULT_STACK_DIR, StackSettings
from infra.settings.storage import S3Settings
from infra.settings.workload import (
    WorkloadSettings,
    dataset_from_settings,
    default_model_name,
    model_name_for_dataset,
    model_name_from_settings,
    require_dataset,
    require_model_name,
)

ALL_SETTINGS = (
    WorkloadSettings,
    LakeFSSettings,
    EmbeddedLakeFSSettings,
    S3Settings,
    DaskSettings,
    ServingSettings,
    RelaySettings,
    AutomationSettings,
    StackSettings,
)

__all__ = [
    "ALL_SETTINGS",
    "DEFAULT_STACK_DIR",
    "THROUGHPUT_ENVIRONMENT",
    "AutomationSettings",
    "DaskSettings",
    "EmbeddedLakeFSSettings",
    "LakeFSSettings",
    "RelaySettings",
    "S3Settings",
    "ServingSettings",
    "SettingRow",
    "StackSettings",
    "WorkloadSettings",
    "check_secret",
    "dataset_from_settings",
    "default_model_name",
    "describe_settings",
    "is_placeholder",
    "model_name_for_dataset",
    "model_name_from_settings",
    "require_dataset",
    "require_model_name",
]
