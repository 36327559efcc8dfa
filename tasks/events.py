"""lockgate's event vocabulary: names and the resources they are about, written once.

Stages return ``Event`` values; the flows (or the CLI) publish them as Prefect events, which
automations and deployment triggers key on. The resource of an event says what it is about, with
labels a trigger can match (``lockgate.model``, ``lakefs.repository``, ``lakefs.branch``):

=============================  =================================================================
event                          resource
=============================  =================================================================
``lockgate.dataset.merged``    ``lakefs.<repository>.<branch>``: a batch reached the branch
``lockgate.dataset.rejected``  ``lakefs.<repository>.<ingest branch>``: a contract refused a batch
``lockgate.model.registered``  ``lockgate.model.<model>.<version>``: a version was stored
``lockgate.model.promoted``    ``lockgate.model.<model>.<version>``: it serves 100 % as champion
``lockgate.model.rolled_back`` ``lockgate.model.<model>.<version>``: its rollout was undone
``lockgate.drift.detected``    ``lockgate.model.<model>``: the live champion's inputs or quality moved
``lockgate.slo.breached``      ``lockgate.model.<model>``: a live version missed its service levels
``lockgate.external.<name>``   ``lockgate.external.<name>``: a signed webhook from outside
=============================  =================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASET_MERGED = "lockgate.dataset.merged"
DATASET_REJECTED = "lockgate.dataset.rejected"
MODEL_REGISTERED = "lockgate.model.registered"
MODEL_PROMOTED = "lockgate.model.promoted"
MODEL_ROLLED_BACK = "lockgate.model.rolled_back"
DRIFT_DETECTED = "lockgate.drift.detected"
SLO_BREACHED = "lockgate.slo.breached"
EXTERNAL_PREFIX = "lockgate.external."
EXTERNAL_RETRAIN = f"{EXTERNAL_PREFIX}retrain"


@dataclass(frozen=True)
class Event:
    """One event a stage wants published: its name, what it is about, and the evidence."""

    name: str
    resource: dict[str, str]
    payload: dict[str, Any] = field(default_factory=dict)


def external(name: str) -> str:
    """The name of an external event relayed from a signed webhook (``lockgate.external.<name>``)."""
    return f"{EXTERNAL_PREFIX}{name}"


def dataset_resource(
    repository: str,
    branch: str,
    *,
    dataset: str | None = None,
    commit: str | None = None,
    **labels: str,
) -> dict[str, str]:
    """A branch of a dataset repository (``lakefs.<repository>.<branch>``), with optional labels."""
    resource = {
        "prefect.resource.id": f"lakefs.{repository}.{branch}",
        "lakefs.repository": repository,
        "lakefs.branch": branch,
    }
    if dataset is not None:
        resource["lockgate.dataset"] = dataset
    if commit is not None:
        resource["lakefs.commit"] = commit
    resource.update(labels)
    return resource


def model_version_resource(model_name: str, version: str, **labels: str) -> dict[str, str]:
    """One version of a model (``lockgate.model.<model>.<version>``)."""
    return {
        "prefect.resource.id": f"lockgate.model.{model_name}.{version}",
        "lockgate.model": model_name,
        "lockgate.version": version,
        **labels,
    }


def model_resource(model_name: str, version: str) -> dict[str, str]:
    """A model as served (``lockgate.model.<model>``), naming the version that was live."""
    return {
        "prefect.resource.id": f"lockgate.model.{model_name}",
        "lockgate.model": model_name,
        "lockgate.version": version,
    }
