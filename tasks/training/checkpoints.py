"""Training checkpoints in lakeFS: rank 0 commits one per epoch on the run's branch; a retry resumes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

from infra.naming import MODELS_REPOSITORY
from tasks import versioning

if TYPE_CHECKING:
    import lakefs

# Checkpoints live beside the models: branches train-<run> of the models repository.
CHECKPOINT_REPOSITORY = MODELS_REPOSITORY


def _checkpoint_paths(run_id: str) -> tuple[str, str]:
    base = f"checkpoints/{run_id}/"
    return base + "latest.safetensors", base + "latest.json"


def save_checkpoint(
    *,
    run_id: str,
    branch: str,
    model: nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    client: lakefs.Client,
) -> None:
    """Write weights, best weights, optimizer moments and progress, then commit (atomic per epoch)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v.detach().cpu().clone().contiguous() for k, v in best_state.items()}
    for index, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    weights_path, state_path = _checkpoint_paths(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "checkpoint.safetensors"
        save_file(tensors, str(local))
        versioning.upload_file(
            local, repository=CHECKPOINT_REPOSITORY, branch=branch, path=weights_path, client=client
        )
        meta = Path(tmp) / "checkpoint.json"
        meta.write_text(json.dumps(state))
        versioning.upload_file(
            meta,
            repository=CHECKPOINT_REPOSITORY,
            branch=branch,
            path=state_path,
            client=client,
            content_type="application/json",
        )
    versioning.commit_changes(
        CHECKPOINT_REPOSITORY,
        branch,
        message=f"checkpoint {run_id} epoch {state['epoch']}",
        metadata={"lockgate.run_id": run_id, "lockgate.epoch": str(state["epoch"])},
        client=client,
    )


def load_checkpoint(
    *, run_id: str, branch: str, client: lakefs.Client
) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The last checkpoint of ``run_id`` on ``branch``, or None."""
    weights_path, state_path = _checkpoint_paths(run_id)
    # Committed state only ("@"): a rank killed between the two uploads must not mix two epochs.
    committed = f"{branch}@"
    repository = CHECKPOINT_REPOSITORY
    if not versioning.object_exists(repository, ref=committed, path=state_path, client=client):
        return None
    state = json.loads(versioning.read_object(repository, ref=committed, path=state_path, client=client))
    tensors = load_safetensors(
        versioning.read_object(repository, ref=committed, path=weights_path, client=client)
    )
    return tensors, state


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Load the Adam moments a checkpoint holds into ``optimizer``."""
    saved = optimizer.state_dict()
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            moments.setdefault(int(index), {})[key] = value
    saved["state"] = moments
    optimizer.load_state_dict(saved)


def prepare_checkpoint_branch(run_id: str, *, client: lakefs.Client) -> str:
    """The run's checkpoint branch (``train-<run>``), created when missing (a retry finds its own)."""
    branch = f"train-{run_id}"
    versioning.ensure_default_repository(CHECKPOINT_REPOSITORY, client=client)
    versioning.create_branch(CHECKPOINT_REPOSITORY, branch, source_ref="main", client=client, exist_ok=True)
    return branch
