"""Checkpoints are read from the committed state: a crash between uploads cannot mix two epochs."""

from __future__ import annotations

import lakefs
import pytest
import torch

from tasks import versioning
from tasks.models import make_mlp
from tasks.training import CHECKPOINT_REPOSITORY, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.integration


def test_uncommitted_checkpoint_upload_is_ignored_on_resume(lakefs_client) -> None:
    namespace = versioning.default_storage_namespace(CHECKPOINT_REPOSITORY, client=lakefs_client) or ""
    versioning.ensure_repository(CHECKPOINT_REPOSITORY, storage_namespace=namespace, client=lakefs_client)
    branch = "train-crash-between-uploads"
    versioning.create_branch(
        CHECKPOINT_REPOSITORY, branch, source_ref="main", client=lakefs_client, exist_ok=True
    )
    torch.manual_seed(0)
    model = make_mlp(3, hidden=(4,))
    optimizer = torch.optim.Adam(model.parameters())
    state = {"epoch": 4, "history": [{"epoch": 4}], "best": {"loss": 1.0, "epoch": 4, "stale": 0}}
    save_checkpoint(
        run_id="crash",
        branch=branch,
        model=model,
        best_state=model.state_dict(),
        optimizer=optimizer,
        state=state,
        client=lakefs_client,
    )
    # Rank 0 dies after uploading the next epoch's weights but before its state file and commit.
    newer = make_mlp(3, hidden=(4,))
    torch.nn.init.constant_(newer[0].weight, 7.0)
    from safetensors.torch import save

    path = "checkpoints/crash/latest.safetensors"
    payload = save({f"model.{k}": v.contiguous() for k, v in newer.state_dict().items()})
    lakefs_client_branch = lakefs.Branch(CHECKPOINT_REPOSITORY, branch, client=lakefs_client)
    lakefs_client_branch.object(path).upload(payload)

    tensors, loaded_state = load_checkpoint(run_id="crash", branch=branch, client=lakefs_client)
    assert loaded_state["epoch"] == 4
    assert torch.equal(tensors["model.0.weight"], model.state_dict()["0.weight"])
