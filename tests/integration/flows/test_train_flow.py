"""train_flow end to end: ingest through the gate, DDP on a LocalCluster, evaluate, register, alias, event."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tasks import registry
from tests.support.prefect import read_artifacts, read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def flow_environment(lakefs_environment, prefect_server, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ranks in the LocalCluster's worker processes build their lakeFS client from LOCKGATE_LAKEFS_*.
    monkeypatch.setenv("LOCKGATE_DASK_N_WORKERS", "2")
    monkeypatch.delenv("LOCKGATE_DASK_SCHEDULER_ADDRESS", raising=False)


def test_train_flow_registers_a_traceable_model(flow_environment, lakefs_client, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.ingest import IngestParameters, ingest_flow
    from flows.train import TrainParameters, train_flow
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.training import TrainingConfig

    source = tmp_path / "loans.parquet"
    write_batch(
        GeneratorConfig(rows=12_000, seed=404, function=1, first_id=404_000_000),
        str(source),
        chunk_rows=4_000,
    )
    ingest_flow(IngestParameters(source=str(source), dataset="loans"))
    main_commit = lakefs_client.sdk_client.branches_api.get_branch("lockgate-loans", "main").commit_id

    parameters = TrainParameters(
        dataset="loans",
        ref="main",
        model_name="flow-test-mlp",
        config=TrainingConfig(epochs=3, batch_size=256),
    )
    state = train_flow(parameters, return_state=True)
    result = state.result()

    assert result.data_commit == main_commit
    assert result.metrics["roc_auc"] > 0.8
    loaded = registry.load_model("flow-test-mlp", "challenger", client=lakefs_client)
    assert loaded.card.version == result.version
    assert loaded.card.data_commit_id == main_commit and loaded.card.data_repository == "lockgate-loans"
    assert "contract_report.json" in loaded.card.contract_report
    assert loaded.card.flow_run_id == str(state.state_details.flow_run_id)
    assert loaded.card.training_config["epochs"] == 3 and loaded.card.seed == 0
    assert loaded.card.metrics["holdout"]["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert any(row["slice"] == "age_band" for row in loaded.card.metrics["slices"])
    assert all(isinstance(tensor, torch.Tensor) for tensor in loaded.state_dict.values())

    flow_run_id = str(state.state_details.flow_run_id)
    events = read_events("lockgate.model.registered", flow_run_id=flow_run_id)
    assert len(events) == 1 and events[0].resource["lockgate.version"] == result.version
    keys = {artifact.key for artifact in read_artifacts(flow_run_id)}
    assert {"train-flow-test-mlp-metrics", "train-flow-test-mlp-slices", "train-flow-test-mlp-plots"} <= keys
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).state.is_completed()


def test_train_flow_refuses_unknown_refs_before_training(flow_environment) -> None:
    from flows.train import TrainParameters, train_flow
    from infra.errors import RefNotFoundError

    with pytest.raises(RefNotFoundError, match="no-such-branch"):
        train_flow(TrainParameters(dataset="loans", ref="no-such-branch", model_name="never-registered"))
    assert "never-registered" not in {row.model_name for row in registry.list_models(client=_client())}


def _client():
    from infra.clients import make_lakefs_client
    from infra.settings import LakeFSSettings

    return make_lakefs_client(LakeFSSettings())
