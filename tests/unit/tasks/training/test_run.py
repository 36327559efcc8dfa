"""``run_train`` without Prefect: one Dask worker, the embedded lakeFS, a recording publisher, a fake
clock for the retry."""

from __future__ import annotations

import dataclasses
import uuid
from functools import partial

import pytest

from infra.clients import dask_client
from infra.errors import RefNotFoundError, TrainingError
from infra.settings import DaskSettings
from tasks import events, registry
from tasks.datasets import get_dataset
from tasks.generate import GeneratorConfig, write_batch
from tasks.ingestion import IngestParameters, run_ingest
from tasks.publishing import RecordingPublisher
from tasks.training import TrainingConfig, TrainParameters, run_train
from tests.support.fakes import FakeClock


@pytest.fixture(scope="module")
def trained_on(lakefs_client, tmp_path_factory):
    """A repository of its own holding one good, merged loans batch."""
    spec = dataclasses.replace(get_dataset("loans"), repository=f"train-{uuid.uuid4().hex[:10]}")
    source = tmp_path_factory.mktemp("train") / "loans.parquet"
    write_batch(GeneratorConfig(rows=6_000, seed=31, function=1, first_id=31_000_000), str(source))
    run_ingest(
        IngestParameters(source=str(source), dataset="loans"),
        client=lakefs_client,
        s3_client=None,
        publish=RecordingPublisher(),
        spec=spec,
    )
    return spec


def test_run_train_registers_a_traceable_version(lakefs_client, trained_on) -> None:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    published = RecordingPublisher()
    result = run_train(
        TrainParameters(dataset="loans", model_name=name, config=TrainingConfig(epochs=2, batch_size=256)),
        client=lakefs_client,
        dask_cluster=partial(dask_client, DaskSettings(n_workers=1)),
        publish=published,
        run_id=uuid.uuid4().hex,
        flow_run_id="flow-run-1",
        spec=trained_on,
    )
    card = registry.show_model(name, "challenger", client=lakefs_client)
    assert card.version == result.version and card.data_commit_id == result.data_commit
    assert card.data_repository == trained_on.repository and card.flow_run_id == "flow-run-1"
    assert result.metrics["roc_auc"] > 0.6 and result.epochs == 2
    (event,) = published.events_named(events.MODEL_REGISTERED)
    assert event.resource["lockgate.version"] == result.version
    assert {f"train-{name}-metrics", f"train-{name}-slices", f"train-{name}-plots"} == {
        a.key for a in published.artifacts
    }
    assert "reference.parquet" in card.artifact_sha256


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("no-such-branch", RefNotFoundError, "no-such-branch"),
        ("main~1", TrainingError, "nothing to train on"),
    ],
)
def test_refs_without_trainable_data_are_refused_before_any_cluster_starts(
    lakefs_client, trained_on, ref, error, message
) -> None:
    def no_cluster():
        raise AssertionError("the cluster must not start for data that cannot be trained on")

    with pytest.raises(error, match=message):
        run_train(
            TrainParameters(dataset="loans", ref=ref, model_name="never"),
            client=lakefs_client,
            dask_cluster=no_cluster,
            publish=RecordingPublisher(),
            run_id="x",
            spec=trained_on,
        )


def test_a_failed_distributed_attempt_is_retried(monkeypatch, lakefs_client, trained_on) -> None:
    import tasks.training.run as training_run

    attempts = []

    def flaky(config, data, spec, *, client, lakefs_client, run_id):
        attempts.append(run_id)
        raise TrainingError("distributed training failed on 1 worker(s): a peer timed out")

    monkeypatch.setattr(training_run, "train_distributed", flaky)
    clock = FakeClock()
    import contextlib

    with pytest.raises(TrainingError, match="peer timed out"):
        run_train(
            TrainParameters(dataset="loans", model_name="never"),
            client=lakefs_client,
            dask_cluster=contextlib.nullcontext,
            publish=RecordingPublisher(),
            run_id="same-run",
            attempts=3,
            clock=clock,
            spec=trained_on,
        )
    assert attempts == ["same-run"] * 3 and clock.sleeps == [5.0, 5.0]
