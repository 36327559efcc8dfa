"""The model registry on the embedded lakeFS server: versions, aliases, lineage, tamper refusal, atomicity."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from pathlib import Path

import lakefs
import lakefs_sdk
import pytest
import safetensors.torch
import torch

from infra.errors import InvalidInputError, ModelIntegrityError, ModelNotFoundError
from tasks import registry, versioning
from tasks.registry import (
    ModelCard,
    ModelLineage,
    get_alias,
    list_models,
    load_model,
    register_model,
    set_alias,
    show_model,
)

pytestmark = pytest.mark.integration


def unique_name(prefix: str) -> str:
    """A lakeFS-valid, collision-free repository name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def tiny_model(seed: int) -> torch.nn.Linear:
    """A Linear(4, 2) whose parameters depend only on ``seed`` (a local generator: safe in threads)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 4, generator=generator))
        model.bias.copy_(torch.randn(2, generator=generator))
    return model


def lineage(seed: int = 7, **changes) -> ModelLineage:
    commit = hashlib.sha256(f"data-{seed}".encode()).hexdigest()
    fields = {
        "data_repository": "loans",
        "data_commit_id": commit,
        "contract_report": f"lakefs://loans/{commit}/reports/contract.json",
        "training_config": {"epochs": 2, "batch_size": 32, "learning_rate": 0.05},
        "seed": seed,
        "metrics": {"roc_auc": 0.8, "slices": {"age<30": {"accuracy": 0.7}}},
        "feature_spec": {"columns": ["a", "b", "c", "d"], "mean": [0.0] * 4, "std": [1.0] * 4},
        "flow_run_id": f"flow-run-{seed}",
        "code_version": "git:" + "0" * 40,
        "risk_level": "high",
        "notes": f"seed {seed}",
    }
    return ModelLineage(**fields | changes)


@pytest.fixture
def models_repo(lakefs_client) -> str:
    """A fresh, empty models repository name (created by the first registration)."""
    return unique_name("models")


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    plot = tmp_path / "roc.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"fake plot")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"roc_auc": 0.8}))
    return {"roc.png": plot, "metrics.json": metrics}


def register(name, seed, *, client, repository, artifacts=None, **changes):
    return register_model(
        name,
        state_dict=tiny_model(seed).state_dict(),
        lineage=lineage(seed, **changes),
        artifacts=artifacts,
        client=client,
        repository=repository,
    )


def main_head(repository: str, client) -> str:
    return lakefs.Branch(repository, "main", client=client).get_commit().id


def test_versions_increase_and_the_card_round_trips_with_every_field(lakefs_client, models_repo, artifacts):
    first = register("loan-mlp", 1, client=lakefs_client, repository=models_repo, artifacts=artifacts)
    second = register("loan-mlp", 2, client=lakefs_client, repository=models_repo)

    assert (first.version, first.tag) == ("v1", "loan-mlp-v1")
    assert (second.version, second.tag) == ("v2", "loan-mlp-v2")
    assert first.commit_id != second.commit_id

    card = show_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)
    assert card == first.card
    expected = lineage(1).model_dump()
    assert {key: getattr(card, key) for key in expected} == expected
    assert card.model_name == "loan-mlp" and card.version == "v1"
    assert set(card.artifact_sha256) == {"roc.png", "metrics.json"}
    assert card.artifact_sha256["roc.png"] == hashlib.sha256(artifacts["roc.png"].read_bytes()).hexdigest()
    assert {"torch", "numpy", "pandas", "safetensors", "lockgate"} <= set(card.library_versions)
    assert card.created_at.utcoffset().total_seconds() == 0

    # The weights file at the version's commit is exactly what the card's hash describes.
    stored = lakefs.Reference(models_repo, first.commit_id, client=lakefs_client)
    weights = stored.object("models/loan-mlp/v1/model.safetensors").reader(mode="rb").read()
    assert hashlib.sha256(weights).hexdigest() == card.weights_sha256
    assert stored.object("models/loan-mlp/v1/roc.png").reader(mode="rb").read() == (
        artifacts["roc.png"].read_bytes()
    )
    commit = stored.get_commit()
    assert commit.metadata["model_version"] == "v1"
    assert commit.metadata["weights_sha256"] == card.weights_sha256

    # Both versions are on main; registration branches are gone.
    main = lakefs.Reference(models_repo, "main", client=lakefs_client)
    paths = {entry.path for entry in main.objects(prefix="models/loan-mlp/")}
    assert "models/loan-mlp/v1/model_card.json" in paths and "models/loan-mlp/v2/model.safetensors" in paths
    branches = [branch.id for branch in lakefs.Repository(models_repo, client=lakefs_client).branches()]
    assert branches == ["main"]

    # Code version defaults to the working tree's when the lineage leaves it out.
    third = register("loan-mlp", 3, client=lakefs_client, repository=models_repo, code_version=None)
    assert third.card.code_version == registry.current_code_version()


def test_aliases_move_and_loads_by_version_and_alias_agree(lakefs_client, models_repo):
    first = register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    second = register("loan-mlp", 2, client=lakefs_client, repository=models_repo)

    champion = set_alias("loan-mlp", "champion", "v1", client=lakefs_client, repository=models_repo)
    assert (champion.version, champion.commit_id, champion.aliases) == ("v1", first.commit_id, ("champion",))
    set_alias("loan-mlp", "challenger", "v2", client=lakefs_client, repository=models_repo)
    assert get_alias("loan-mlp", "challenger", client=lakefs_client, repository=models_repo).version == "v2"

    by_alias = load_model("loan-mlp", "champion", client=lakefs_client, repository=models_repo)
    by_version = load_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)
    assert by_alias.card.version == "v1" and by_alias.commit_id == first.commit_id
    expected = tiny_model(1).state_dict()
    for loaded in (by_alias, by_version):
        assert loaded.state_dict.keys() == expected.keys()
        for key in expected:
            assert torch.equal(loaded.state_dict[key], expected[key])
    model = torch.nn.Linear(4, 2)
    model.load_state_dict(by_alias.state_dict)

    # Promote: champion moves to v2 and points at v2's commit; 'latest' is v2 as well.
    moved = set_alias("loan-mlp", "champion", "challenger", client=lakefs_client, repository=models_repo)
    assert (moved.version, moved.commit_id, moved.aliases) == (
        "v2",
        second.commit_id,
        ("champion", "challenger"),
    )
    tag = lakefs.Tag(models_repo, "loan-mlp-champion", client=lakefs_client)
    assert tag.get_commit().id == second.commit_id
    assert (
        load_model("loan-mlp", "champion", client=lakefs_client, repository=models_repo).card.version == "v2"
    )
    latest = load_model("loan-mlp", "latest", client=lakefs_client, repository=models_repo)
    assert latest.card.version == "v2"
    assert torch.equal(latest.state_dict["weight"], tiny_model(2).state_dict()["weight"])

    listing = list_models(client=lakefs_client, repository=models_repo)
    assert [(entry.model_name, entry.version, entry.commit_id, entry.aliases) for entry in listing] == [
        ("loan-mlp", "v1", first.commit_id, ()),
        ("loan-mlp", "v2", second.commit_id, ("champion", "challenger")),
    ]
    assert all(entry.created_at is not None for entry in listing)


def test_models_are_kept_apart_by_name(lakefs_client, models_repo):
    register("loan", 1, client=lakefs_client, repository=models_repo)
    register("loan-v2", 2, client=lakefs_client, repository=models_repo)  # a name that looks like a tag
    register("loan-v2", 3, client=lakefs_client, repository=models_repo)

    assert [(e.model_name, e.version) for e in list_models(client=lakefs_client, repository=models_repo)] == [
        ("loan", "v1"),
        ("loan-v2", "v1"),
        ("loan-v2", "v2"),
    ]
    only = list_models(client=lakefs_client, repository=models_repo, model_name="loan")
    assert [(e.model_name, e.version) for e in only] == [("loan", "v1")]
    assert list_models(client=lakefs_client, repository=unique_name("absent")) == []


def tamper_version(repository: str, client, tag: str, path: str, payload: bytes) -> None:
    """Commit other bytes at ``path`` on top of ``tag``'s commit; move the tag there behind the registry."""
    branch = lakefs.Branch(repository, unique_name("tamper"), client=client).create(tag)
    branch.object(path).upload(payload)
    commit = branch.commit("tamper")
    client.sdk_client.tags_api.create_tag(
        repository, lakefs_sdk.TagCreation(id=tag, ref=commit.get_commit().id, force=True)
    )


def test_tampered_weights_are_refused_and_aliases_do_not_move_onto_them(lakefs_client, models_repo):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    good = register("loan-mlp", 2, client=lakefs_client, repository=models_repo)
    set_alias("loan-mlp", "champion", "v2", client=lakefs_client, repository=models_repo)
    path = "models/loan-mlp/v1/model.safetensors"
    other = safetensors.torch.save(tiny_model(99).state_dict())
    tamper_version(models_repo, lakefs_client, "loan-mlp-v1", path, other)

    with pytest.raises(ModelIntegrityError) as refused:
        load_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)
    message = str(refused.value)
    card = show_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)
    assert card.weights_sha256 in message
    assert hashlib.sha256(other).hexdigest() in message
    assert path in message

    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        set_alias("loan-mlp", "champion", "v1", client=lakefs_client, repository=models_repo)
    assert get_alias("loan-mlp", "champion", client=lakefs_client, repository=models_repo).commit_id == (
        good.commit_id
    )


def test_a_card_whose_hash_was_changed_is_refused(lakefs_client, models_repo):
    registered = register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    forged = registered.card.model_copy(update={"weights_sha256": "f" * 64})
    tamper_version(
        models_repo,
        lakefs_client,
        "loan-mlp-v1",
        "models/loan-mlp/v1/model_card.json",
        forged.to_json().encode(),
    )
    with pytest.raises(ModelIntegrityError, match="f" * 64):
        load_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)


def test_incomplete_versions_are_refused(lakefs_client, models_repo):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    branch = lakefs.Branch(models_repo, unique_name("strip"), client=lakefs_client).create("loan-mlp-v1")
    branch.object("models/loan-mlp/v1/model.safetensors").delete()
    commit = branch.commit("drop the weights").get_commit().id
    lakefs_client.sdk_client.tags_api.create_tag(
        models_repo, lakefs_sdk.TagCreation(id="loan-mlp-v1", ref=commit, force=True)
    )
    with pytest.raises(ModelIntegrityError, match="incomplete: no weights"):
        load_model("loan-mlp", "v1", client=lakefs_client, repository=models_repo)

    register("other", 1, client=lakefs_client, repository=models_repo)
    tamper_version(models_repo, lakefs_client, "other-v1", "models/other/v1/model_card.json", b"{not json")
    with pytest.raises(ModelIntegrityError, match="not a valid card"):
        show_model("other", "v1", client=lakefs_client, repository=models_repo)


def test_an_alias_moved_outside_the_registry_is_refused(lakefs_client, models_repo):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    lakefs_client.sdk_client.tags_api.create_tag(
        models_repo, lakefs_sdk.TagCreation(id="loan-mlp-champion", ref="main~1", force=True)
    )
    with pytest.raises(ModelIntegrityError, match="no registered version"):
        load_model("loan-mlp", "champion", client=lakefs_client, repository=models_repo)


def test_unknown_versions_aliases_and_models_list_what_exists(lakefs_client, models_repo):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    register("loan-mlp", 2, client=lakefs_client, repository=models_repo)
    set_alias("loan-mlp", "champion", "v1", client=lakefs_client, repository=models_repo)

    with pytest.raises(ModelNotFoundError, match=r"'v7'.*versions v1, v2; aliases champion -> v1"):
        load_model("loan-mlp", "v7", client=lakefs_client, repository=models_repo)
    with pytest.raises(ModelNotFoundError, match=r"alias 'challenger' is not set.*champion -> v1"):
        load_model("loan-mlp", "challenger", client=lakefs_client, repository=models_repo)
    with pytest.raises(ModelNotFoundError, match=r"'stable'.*versions v1, v2"):
        show_model("loan-mlp", "stable", client=lakefs_client, repository=models_repo)
    with pytest.raises(ModelNotFoundError, match=r"'v9'"):
        set_alias("loan-mlp", "challenger", "v9", client=lakefs_client, repository=models_repo)
    with pytest.raises(ModelNotFoundError, match=r"'fraud-mlp' has no versions.*registered models: loan-mlp"):
        load_model("fraud-mlp", "latest", client=lakefs_client, repository=models_repo)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model("loan-mlp", "v1", client=lakefs_client, repository=unique_name("absent"))


@pytest.mark.parametrize("alias", ["production", "Champion", "latest", "v1", ""])
def test_only_known_alias_names_are_accepted(lakefs_client, models_repo, alias):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    with pytest.raises(InvalidInputError, match=r"unknown alias.*'champion' and 'challenger'"):
        set_alias("loan-mlp", alias, "v1", client=lakefs_client, repository=models_repo)
    with pytest.raises(InvalidInputError, match="unknown alias"):
        get_alias("loan-mlp", alias, client=lakefs_client, repository=models_repo)
    assert list_models(client=lakefs_client, repository=models_repo)[0].aliases == ()


def test_bad_registration_input_is_refused_before_anything_is_written(lakefs_client, models_repo, tmp_path):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    head = main_head(models_repo, lakefs_client)

    cases = [
        ({"artifacts": {"roc.png": tmp_path / "missing.png"}}, "not an existing file"),
        ({"artifacts": {"model_card.json": Path(__file__)}}, "reserved"),
        ({"artifacts": {"plots/roc.png": Path(__file__)}}, "invalid artifact name"),
        ({"state_dict": {}}, "non-empty mapping"),
        ({"state_dict": {"weight": [1.0, 2.0]}}, "not a tensor"),
        ({"model_name": "loan/mlp"}, "invalid model name"),
        ({"lineage": {"seed": 1}}, "must be a ModelLineage"),
    ]
    for changes, message in cases:
        arguments = {
            "model_name": "loan-mlp",
            "state_dict": tiny_model(2).state_dict(),
            "lineage": lineage(2),
            "artifacts": None,
        } | changes
        with pytest.raises(InvalidInputError, match=message):
            register_model(
                arguments.pop("model_name"), **arguments, client=lakefs_client, repository=models_repo
            )

    assert main_head(models_repo, lakefs_client) == head
    assert [entry.version for entry in list_models(client=lakefs_client, repository=models_repo)] == ["v1"]


def test_a_registration_failing_mid_upload_leaves_no_version_and_main_unchanged(
    lakefs_client, models_repo, artifacts, monkeypatch
):
    register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    head = main_head(models_repo, lakefs_client)
    real_upload = versioning.upload_file

    def upload_then_fail(local_path, **kwargs):
        if kwargs["path"].endswith("/model_card.json"):
            raise ConnectionError("network went away")
        return real_upload(local_path, **kwargs)

    monkeypatch.setattr(versioning, "upload_file", upload_then_fail)
    with pytest.raises(ConnectionError):
        register_model(
            "loan-mlp",
            state_dict=tiny_model(2).state_dict(),
            lineage=lineage(2),
            artifacts=artifacts,
            client=lakefs_client,
            repository=models_repo,
            run_id="broken",
        )

    assert main_head(models_repo, lakefs_client) == head
    tags = [tag.id for tag in lakefs.Repository(models_repo, client=lakefs_client).tags()]
    assert tags == ["loan-mlp-v1"]
    # The half-written branch is kept for inspection, and the next registration still gets v2.
    kept = lakefs.Branch(models_repo, "register-loan-mlp-broken", client=lakefs_client)
    assert any(change.path.endswith("model.safetensors") for change in kept.uncommitted())
    # A retry of the same run replaces that branch and registers v2.
    monkeypatch.setattr(versioning, "upload_file", real_upload)
    retried = register_model(
        "loan-mlp",
        state_dict=tiny_model(2).state_dict(),
        lineage=lineage(2),
        artifacts=artifacts,
        client=lakefs_client,
        repository=models_repo,
        run_id="broken",
    )
    assert retried.version == "v2"
    assert load_model("loan-mlp", "latest", client=lakefs_client, repository=models_repo).card.seed == 2


def test_parallel_registrations_get_distinct_versions(lakefs_client, models_repo, monkeypatch):
    register("loan-mlp", 0, client=lakefs_client, repository=models_repo)  # the repository exists first
    # Hold every thread's first commit until all three have picked a number, so all pick v2 and two
    # must lose the tag claim and redo their upload under the next number.
    all_picked = threading.Barrier(3, timeout=60)
    committed_once: set[int] = set()
    branches_created: list[str] = []
    real_commit, real_branch = versioning.commit_changes, versioning.create_branch

    def commit_together(*args, **kwargs):
        if threading.get_ident() not in committed_once:
            committed_once.add(threading.get_ident())
            all_picked.wait()
        return real_commit(*args, **kwargs)

    def count_branch(*args, **kwargs):
        branches_created.append(args[1])
        return real_branch(*args, **kwargs)

    monkeypatch.setattr(versioning, "commit_changes", commit_together)
    monkeypatch.setattr(versioning, "create_branch", count_branch)
    results: dict[int, object] = {}

    def worker(seed: int) -> None:
        try:
            results[seed] = register("loan-mlp", seed, client=lakefs_client, repository=models_repo)
        except Exception as error:  # reported by the assertion below
            results[seed] = error

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert all(not isinstance(result, Exception) for result in results.values()), results
    assert sorted(result.version for result in results.values()) == ["v2", "v3", "v4"]
    assert len(branches_created) >= 5  # at least two lost claims were redone
    for seed, result in results.items():
        loaded = load_model("loan-mlp", result.version, client=lakefs_client, repository=models_repo)
        assert loaded.card.seed == seed
        assert torch.equal(loaded.state_dict["bias"], tiny_model(seed).state_dict()["bias"])
    listed = [entry.version for entry in list_models(client=lakefs_client, repository=models_repo)]
    assert listed == ["v1", "v2", "v3", "v4"]
    paths = {entry.path for entry in lakefs.Reference(models_repo, "main", client=lakefs_client).objects()}
    assert {f"models/loan-mlp/v{number}/model.safetensors" for number in range(1, 5)} <= paths


def test_weights_are_safetensors_not_pickle(lakefs_client, models_repo):
    registered = register("loan-mlp", 1, client=lakefs_client, repository=models_repo)
    reference = lakefs.Reference(models_repo, registered.commit_id, client=lakefs_client)
    payload = reference.object("models/loan-mlp/v1/model.safetensors").reader(mode="rb").read()
    header_length = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + header_length])
    assert header["__metadata__"] == {"format": "pt", "model_name": "loan-mlp"}
    assert set(header) - {"__metadata__"} == {"weight", "bias"}
    with pytest.raises(Exception):  # noqa: B017 - any failure proves it is not a pickle
        torch.load(io.BytesIO(payload), weights_only=True)
    card = reference.object("models/loan-mlp/v1/model_card.json").reader().read()
    assert ModelCard.from_json(card) == registered.card
