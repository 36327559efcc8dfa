"""A model version traced back to what made it: weights and code, the run that trained it, the data
commit it read, and the contract reports that let that data through (all from its model card)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks import registry

if TYPE_CHECKING:
    import lakefs


@dataclass(frozen=True)
class LineageChain:
    """From a model version back to the bytes it was trained on."""

    model_name: str
    version: str
    weights: str  # "weights sha256 <prefix>..., code <version>"
    flow_run_id: str | None
    data: str  # lakefs://<repository>/<commit>
    reports: tuple[str, ...]
    metrics: str  # the headline holdout metrics, as JSON


def lineage_chain(client: lakefs.Client, model_name: str, ref: str = "champion") -> LineageChain:
    """The lineage of ``model_name`` at ``ref`` (a version or an alias)."""
    card = registry.show_model(model_name, ref, client=client)
    holdout = card.metrics.get("holdout", {})
    return LineageChain(
        model_name=model_name,
        version=card.version,
        weights=f"weights sha256 {card.weights_sha256[:16]}..., code {card.code_version}",
        flow_run_id=card.flow_run_id,
        data=f"lakefs://{card.data_repository}/{card.data_commit_id}",
        reports=tuple(report.strip() for report in card.contract_report.split(",") if report.strip()),
        metrics=json.dumps({key: holdout.get(key) for key in ("roc_auc", "accuracy")}),
    )
