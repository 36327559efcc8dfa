"""Helpers for the serving tests: register small loans models, send requests."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from contracts.loans import FEATURE_COLUMNS
from tasks.generate import GeneratorConfig, generate_frame
from tasks.models import make_mlp, predict_proba
from tasks.preprocessing import Preprocessor
from tasks.registry import ModelLineage, register_model

MODEL_NAME = "loans-mlp"


def loan_records(rows: int, *, seed: int = 0) -> list[dict]:
    """Valid inference records (the loans feature columns of generated applications)."""
    frame = generate_frame(GeneratorConfig(rows=rows, seed=seed))
    return [
        {column: value.item() if hasattr(value, "item") else value for column, value in row.items()}
        for row in frame[list(FEATURE_COLUMNS)].to_dict(orient="records")
    ]


def loans_network(seed: int, *, bias: float | None = None) -> tuple[torch.nn.Module, Preprocessor]:
    """A seeded MLP over standardised loans features (``bias`` forces the output logit's bias)."""
    frame = generate_frame(GeneratorConfig(rows=2_000, seed=123))[list(FEATURE_COLUMNS)]
    values = frame.to_numpy(dtype=np.float64)
    spec = Preprocessor.standardise(
        tuple(FEATURE_COLUMNS),
        tuple(float(v) for v in values.mean(axis=0)),
        tuple(float(v) if v > 0 else 1.0 for v in values.std(axis=0)),
    )
    torch.manual_seed(seed)
    network = make_mlp(len(FEATURE_COLUMNS), hidden=(16, 8))
    if bias is not None:
        with torch.no_grad():
            network[-1].bias.fill_(bias)
    return network, spec


def register_loans_model(
    client,
    *,
    seed: int = 0,
    bias: float | None = None,
    risk_level: str = "normal",
    model_name: str = MODEL_NAME,
    repository: str | None = None,
    artifacts: dict | None = None,
):
    """Register a loans MLP (untrained, seeded) with a complete lineage; returns the registered version."""
    network, spec = loans_network(seed, bias=bias)
    commit = hashlib.sha256(f"loans-{seed}".encode()).hexdigest()
    lineage = ModelLineage(
        data_repository="lockgate-loans",
        data_commit_id=commit,
        contract_report=f"lakefs://lockgate-loans/{commit}/reports/contract.json",
        training_config={"epochs": 0, "seed": seed},
        seed=seed,
        metrics={"holdout": {"roc_auc": 0.5 + seed / 1000}},
        feature_spec={**spec.to_dict(), "model": "mlp", "hidden": [16, 8], "target": "label"},
        risk_level=risk_level,
    )
    options = {"repository": repository} if repository else {}
    if artifacts:
        options["artifacts"] = artifacts
    return register_model(
        model_name, state_dict=network.state_dict(), lineage=lineage, client=client, **options
    )


def loans_probabilities(frame, *, seed: int = 0, bias: float | None = None) -> np.ndarray:
    """What the model ``register_loans_model(seed=, bias=)`` answers for the rows of ``frame``."""
    network, spec = loans_network(seed, bias=bias)
    return predict_proba(network, spec.transform(frame))


def register_monitored_model(
    client, tmp_path, *, model_name: str, seed: int = 0, reference_rows: int = 3_000
):
    """A loans model whose reference sample (``reference.parquet``) is generated loans data with the
    model's own probabilities, as ``train_flow`` stores it; returns the registered version."""
    frame = generate_frame(GeneratorConfig(rows=reference_rows, seed=10_000 + seed))
    frame["probability"] = loans_probabilities(frame, seed=seed)
    path = tmp_path / f"{model_name}-reference.parquet"
    frame.to_parquet(path, index=False)
    return register_loans_model(
        client, seed=seed, model_name=model_name, artifacts={"reference.parquet": path}
    )
