"""``lockgate models alias`` against the session's embedded lakeFS server: it moves an alias only onto a
registered version whose weights verify, and says in one line why it refused otherwise."""

from __future__ import annotations

import hashlib
import uuid

import lakefs
import lakefs_sdk
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

from flows.cli import app
from infra.errors import ModelNotFoundError
from infra.naming import MODELS_REPOSITORY
from tasks.registry import ModelLineage, get_alias, register_model

pytestmark = pytest.mark.integration


def tiny_weights(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(2, 4, generator=generator), "bias": torch.randn(2, generator=generator)}


def lineage(seed: int) -> ModelLineage:
    commit = hashlib.sha256(f"data-{seed}".encode()).hexdigest()
    return ModelLineage(
        data_repository="lockgate-loans",
        data_commit_id=commit,
        contract_report=f"lakefs://lockgate-loans/{commit}/_lockgate/reports/run/contract_report.json",
        training_config={"epochs": 1},
        seed=seed,
        metrics={"holdout": {"roc_auc": 0.7}},
        feature_spec={"columns": ["a", "b", "c", "d"]},
    )


@pytest.fixture
def model(lakefs_client) -> str:
    """A fresh model with versions v1 and v2 in the default models repository, no alias set."""
    name = f"cli-alias-{uuid.uuid4().hex[:8]}"
    for seed in (1, 2):
        register_model(name, state_dict=tiny_weights(seed), lineage=lineage(seed), client=lakefs_client)
    return name


@pytest.fixture
def cli(lakefs_environment, monkeypatch):
    """Invoke ``lockgate ...`` against the session server, on a console wide enough for one-line errors."""
    monkeypatch.setenv("COLUMNS", "2000")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def alias_version(name: str, alias: str, client) -> str | None:
    try:
        return get_alias(name, alias, client=client).version
    except ModelNotFoundError:
        return None


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_alias_moves_onto_a_verified_version_and_says_from_where(cli, model, lakefs_client):
    first = cli("models", "alias", model, "v1", "champion")
    assert first.exit_code == 0, first.output
    assert f"{model} champion -> v1" in first.stdout and "was unset" in first.stdout
    assert alias_version(model, "champion", lakefs_client) == "v1"

    moved = cli("models", "alias", model, "v2", "champion")
    assert moved.exit_code == 0, moved.output
    assert "champion -> v2" in moved.stdout and "was v1" in moved.stdout
    assert alias_version(model, "champion", lakefs_client) == "v2"

    promoted = cli("models", "alias", model, "latest", "challenger")
    assert promoted.exit_code == 0, promoted.output
    assert alias_version(model, "challenger", lakefs_client) == "v2"


def test_an_unknown_version_or_alias_name_is_refused_and_nothing_moves(cli, model, lakefs_client):
    assert cli("models", "alias", model, "v1", "champion").exit_code == 0

    unknown = cli("models", "alias", model, "v9", "champion")
    assert unknown.exit_code == 1
    assert "unknown version or alias 'v9'" in one_line_error(unknown)
    assert alias_version(model, "champion", lakefs_client) == "v1"

    bad_alias = cli("models", "alias", model, "v2", "production")
    assert bad_alias.exit_code == 2
    assert "production" in one_line_error(bad_alias)

    no_model = cli("models", "alias", f"{model}-missing", "v1", "champion")
    assert no_model.exit_code == 1
    assert "has no versions" in one_line_error(no_model)


def test_a_version_whose_weights_fail_verification_is_refused(cli, model, lakefs_client):
    assert cli("models", "alias", model, "v1", "champion").exit_code == 0
    # Other bytes committed over v2's weights, and v2's tag moved onto them behind the registry's back.
    path = f"models/{model}/v2/model.safetensors"
    branch = lakefs.Branch(MODELS_REPOSITORY, f"tamper-{uuid.uuid4().hex[:8]}", client=lakefs_client)
    branch.create(f"{model}-v2")
    branch.object(path).upload(safetensors.torch.save(tiny_weights(99)))
    commit = branch.commit("tamper").get_commit().id
    lakefs_client.sdk_client.tags_api.create_tag(
        MODELS_REPOSITORY, lakefs_sdk.TagCreation(id=f"{model}-v2", ref=commit, force=True)
    )

    refused = cli("models", "alias", model, "v2", "champion")
    assert refused.exit_code == 1
    message = one_line_error(refused)
    assert "SHA-256" in message and path in message
    assert alias_version(model, "champion", lakefs_client) == "v1"
    assert cli("models", "alias", model, "v2", "challenger").exit_code == 1
    assert alias_version(model, "challenger", lakefs_client) is None
