"""The model card (lineage record): JSON round trip, required fields, library and code versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy
import pytest
from pydantic import ValidationError

from tasks.registry import (
    REQUIRED_LIBRARIES,
    ModelCard,
    ModelLineage,
    collect_library_versions,
    current_code_version,
)


def lineage_fields() -> dict:
    return {
        "data_repository": "loans",
        "data_commit_id": "c" * 64,
        "contract_report": "lakefs://loans/" + "c" * 64 + "/reports/contract.json",
        "training_config": {"epochs": 3, "batch_size": 64, "learning_rate": 0.01, "hidden": [32, 16]},
        "seed": 7,
        "metrics": {"roc_auc": 0.81, "slices": {"age<30": {"roc_auc": 0.79}}},
        "feature_spec": {"columns": ["age", "salary"], "mean": [40.0, 5.0e4], "std": [12.0, 2.0e4]},
        "flow_run_id": "1b9a3c1e-0000-4000-8000-000000000000",
        "code_version": "git:abc123",
        "risk_level": "high",
        "notes": "reference MLP",
    }


def card_fields() -> dict:
    return lineage_fields() | {
        "model_name": "loan-mlp",
        "version": "v3",
        "weights_sha256": "a" * 64,
        "artifact_sha256": {"roc.png": "b" * 64},
        "library_versions": collect_library_versions(),
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }


def test_card_round_trips_through_json_with_every_field():
    card = ModelCard(**card_fields())

    text = card.to_json()
    again = ModelCard.from_json(text)

    assert again == card
    stored = json.loads(text)
    assert set(stored) == set(ModelCard.model_fields)
    assert stored["created_at"] == "2026-01-02T03:04:05Z"
    assert stored["metrics"]["slices"]["age<30"]["roc_auc"] == 0.79


def test_created_at_is_stored_in_utc_and_must_carry_a_zone():
    plus_two = timezone(timedelta(hours=2))
    card = ModelCard(**card_fields() | {"created_at": datetime(2026, 1, 2, 5, 4, 5, tzinfo=plus_two)})
    assert card.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert card.created_at.utcoffset() == timedelta(0)

    with pytest.raises(ValidationError, match="timezone-aware"):
        ModelCard(**card_fields() | {"created_at": datetime(2026, 1, 2)})


@pytest.mark.parametrize(
    "missing",
    ["data_repository", "data_commit_id", "contract_report", "training_config", "seed", "metrics",
     "feature_spec", "model_name", "version", "code_version", "weights_sha256", "library_versions",
     "created_at"],
)  # fmt: skip
def test_every_lineage_field_is_required(missing):
    fields = card_fields()
    del fields[missing]
    with pytest.raises(ValidationError, match=missing):
        ModelCard(**fields)


def test_optional_fields_have_defaults():
    fields = card_fields()
    for optional in ("flow_run_id", "risk_level", "notes", "artifact_sha256"):
        del fields[optional]
    card = ModelCard(**fields)
    assert (card.flow_run_id, card.risk_level, card.notes, card.artifact_sha256) == (None, "normal", "", {})
    assert card.weights_file == "model.safetensors"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", "3", "pattern"),
        ("weights_sha256", "not-a-hash", "pattern"),
        ("risk_level", "extreme", "normal"),
        ("artifact_sha256", {"roc.png": "xyz"}, "roc.png"),
        ("training_config", {"weights": numpy.zeros(2)}, "JSON"),
        ("data_commit_id", "", "at least 1"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValidationError, match=message):
        ModelCard(**card_fields() | {field: value})


def test_library_versions_must_name_the_libraries_that_shape_the_weights():
    versions = collect_library_versions()
    assert all(versions[name] for name in REQUIRED_LIBRARIES)
    assert versions["torch"].startswith("2.")

    without_torch = {name: value for name, value in versions.items() if name != "torch"}
    with pytest.raises(ValidationError, match="library_versions lacks torch"):
        ModelCard(**card_fields() | {"library_versions": without_torch})


def test_lineage_is_frozen_and_refuses_unknown_fields():
    lineage = ModelLineage(**lineage_fields())
    with pytest.raises(ValidationError):
        lineage.seed = 8
    with pytest.raises(ValidationError, match="weights_sha"):
        ModelLineage(**lineage_fields() | {"weights_sha": "a" * 64})


def test_code_version_names_a_git_commit_or_the_package():
    code_version = current_code_version()
    assert code_version.startswith(("git:", "lockgate=="))
    if code_version.startswith("git:"):
        assert len(code_version.removeprefix("git:").removesuffix("-dirty")) == 40
