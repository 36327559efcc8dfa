"""Distributed training on a real 2-worker ``LocalCluster`` with data read from the embedded lakeFS.

Proves: DDP trains a useful model end to end and checkpoints every epoch; the seed alone decides the
weights; a killed worker fails the run within the process-group timeout and the retry resumes from the
last checkpoint; every bad input stops with the project's own error and a message naming the problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time

import lakefs
import pandera.pandas as pa
import pytest
import torch
from pandera.typing import Series
from sklearn.metrics import roc_auc_score

from contracts.loans import LoanApplicationRaw
from infra.errors import RefNotFoundError, RepositoryNotFoundError
from tasks import versioning
from tasks.generate import GeneratorConfig
from tasks.models import make_mlp
from tasks.training import (
    CHECKPOINT_REPOSITORY,
    TrainingConfig,
    TrainingError,
    TrainingResult,
    UncheckedDataError,
    resolve_training_data,
    train_distributed,
)

pytestmark = pytest.mark.integration

BASE_CONFIG = TrainingConfig(epochs=4, batch_size=512, seed=0, patience=None, checkpoint_every_s=0)


def checkpoint_epochs(run_id: str, client: lakefs.Client) -> list[int]:
    """The epoch of every checkpoint commit on the run's branch, oldest first (none before it exists)."""
    branch = f"train-{run_id}"
    try:
        if branch not in {
            head.name for head in versioning.list_branches(CHECKPOINT_REPOSITORY, client=client)
        }:
            return []
    except RepositoryNotFoundError:
        return []
    commits = versioning.log_commits(CHECKPOINT_REPOSITORY, ref=branch, client=client, limit=200)
    epochs = [
        int(c.metadata["lockgate.epoch"]) for c in commits if c.metadata.get("lockgate.run_id") == run_id
    ]
    return epochs[::-1]


@pytest.fixture(scope="module")
def trained(training_data, loans_spec, dask_client, lakefs_client) -> TrainingResult:
    """One reference run (seed 0), shared by the end-to-end and determinism tests."""
    return train_distributed(
        BASE_CONFIG, training_data, loans_spec, client=dask_client, lakefs_client=lakefs_client, run_id="e2e"
    )


# -- happy path -------------------------------------------------------------------------------


def test_ddp_trains_a_useful_model_and_checkpoints_every_epoch(trained, loans_spec, lakefs_client):
    assert (trained.world_size, trained.backend) == (2, "gloo")
    assert trained.resumed_from_epoch is None
    assert trained.epochs_run == len(trained.history) == BASE_CONFIG.epochs
    assert [h["epoch"] for h in trained.history] == list(range(BASE_CONFIG.epochs))
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["valid_loss"]) for h in trained.history)
    assert trained.history[-1]["train_loss"] < trained.history[0]["train_loss"]

    # Holdout rows come from both ranks (about 10% of 30k rows, by key hash).
    assert 2_000 < len(trained.holdout) < 4_000
    assert trained.holdout["application_id"].is_unique
    auc = roc_auc_score(trained.holdout[loans_spec.target], trained.holdout["probability"])
    assert auc > 0.85, f"holdout AUC {auc:.3f} on Agrawal function 1"

    reference = make_mlp(len(loans_spec.feature_columns), hidden=tuple(BASE_CONFIG.hidden)).state_dict()
    assert {k: v.shape for k, v in trained.state_dict.items()} == {k: v.shape for k, v in reference.items()}
    assert trained.preprocessor.columns == loans_spec.feature_columns
    assert (trained.problem.task, trained.problem.classes) == ("binary", (0, 1))

    assert checkpoint_epochs("e2e", lakefs_client) == list(range(BASE_CONFIG.epochs))


def test_same_seed_and_data_give_identical_weights(
    trained, training_data, loans_spec, dask_client, lakefs_client
):
    again = train_distributed(
        BASE_CONFIG,
        training_data,
        loans_spec,
        client=dask_client,
        lakefs_client=lakefs_client,
        run_id="det-a",
    )
    assert again.resumed_from_epoch is None
    assert again.state_dict.keys() == trained.state_dict.keys()
    assert all(torch.equal(again.state_dict[k], trained.state_dict[k]) for k in trained.state_dict)
    assert again.history == trained.history

    other_seed = BASE_CONFIG.model_copy(update={"seed": 1})
    other = train_distributed(
        other_seed, training_data, loans_spec, client=dask_client, lakefs_client=lakefs_client, run_id="det-b"
    )
    assert not all(torch.equal(other.state_dict[k], trained.state_dict[k]) for k in trained.state_dict)


# -- a worker killed mid-training ---------------------------------------------------------------


def wait_for_workers(client, count: int, *, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = sorted(client.scheduler_info()["workers"])
        if len(workers) == count:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"the cluster did not get back to {count} workers in {timeout_s} s")


@pytest.mark.slow
def test_killed_worker_fails_fast_and_the_retry_resumes(
    training_data, loans_spec, dask_client, lakefs_client
):
    config = TrainingConfig(
        epochs=20, batch_size=64, seed=3, patience=None, process_group_timeout_s=15, checkpoint_every_s=0
    )
    run_id = "resume"
    outcome: dict[str, object] = {}

    def first_attempt() -> None:
        try:
            outcome["result"] = train_distributed(
                config,
                training_data,
                loans_spec,
                client=dask_client,
                lakefs_client=lakefs_client,
                run_id=run_id,
            )
        except Exception as error:  # noqa: BLE001 - handed to the test thread below
            outcome["error"] = error
        finally:
            outcome["ended"] = time.monotonic()

    workers = wait_for_workers(dask_client, 2, timeout_s=30)
    thread = threading.Thread(target=first_attempt, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if max(checkpoint_epochs(run_id, lakefs_client), default=-1) >= 1:
            break
        assert thread.is_alive(), f"training ended before the kill: {outcome}"
        time.sleep(0.05)
    else:
        pytest.fail("no checkpoint for epoch 1 within 60 s")

    # Rank 1 (not the one that checkpoints) dies as if the machine went away: SIGKILL, no clean-up.
    victim = workers[1]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=config.process_group_timeout_s + 30)
    assert not thread.is_alive(), "train_distributed did not return after a worker was killed"
    assert "result" not in outcome, "training finished although a rank was killed"
    assert isinstance(outcome["error"], TrainingError), repr(outcome.get("error"))
    assert outcome["ended"] - killed_at < config.process_group_timeout_s + 15

    wait_for_workers(dask_client, 2, timeout_s=60)  # the nanny restarts the killed worker process
    resumed = train_distributed(
        config, training_data, loans_spec, client=dask_client, lakefs_client=lakefs_client, run_id=run_id
    )
    assert resumed.resumed_from_epoch is not None and resumed.resumed_from_epoch >= 1
    assert resumed.epochs_run == len(resumed.history) == config.epochs
    assert [h["epoch"] for h in resumed.history] == list(range(config.epochs))
    assert checkpoint_epochs(run_id, lakefs_client) == list(range(config.epochs))
    auc = roc_auc_score(resumed.holdout[loans_spec.target], resumed.holdout["probability"])
    assert auc > 0.85


# -- bad inputs -------------------------------------------------------------------------------


def test_unknown_ref_is_refused(training_data, loans_spec, lakefs_client):
    with pytest.raises(RefNotFoundError, match="no-such-branch"):
        resolve_training_data(loans_spec, "no-such-branch", client=lakefs_client)


def test_ref_whose_contracts_failed_is_refused(
    training_data, loans_spec, lakefs_client, batch_folder, ingest
):
    report = ingest(
        loans_spec,
        GeneratorConfig(rows=2_000, seed=12, function=1, first_id=20_000_000, defect_rate=0.01),
        folder=batch_folder,
        run_id="training-defective",
        client=lakefs_client,
        merge=False,
    )
    assert not report.passed and report.data_prefix
    with pytest.raises(UncheckedDataError, match=report.data_prefix) as caught:
        resolve_training_data(loans_spec, report.branch, client=lakefs_client)
    # Only the failed batch is named, not the good one it was branched from.
    assert training_data.parts[0].rsplit("/", 1)[0] not in str(caught.value)


def test_empty_dataset_is_refused(loans_spec, lakefs_client):
    empty = dataclasses.replace(loans_spec, repository="lockgate-loans-empty")
    namespace = versioning.default_storage_namespace(empty.repository, client=lakefs_client) or ""
    versioning.ensure_repository(empty.repository, storage_namespace=namespace, client=lakefs_client)
    with pytest.raises(TrainingError, match="no data"):
        resolve_training_data(empty, "main", client=lakefs_client)


def test_missing_feature_column_is_named(training_data, loans_spec, dask_client, lakefs_client):
    # A contract that declares (and trains on) a column the stored data does not have. Defined here, so
    # cloudpickle ships the class to the workers by value.
    class WithCreditScore(LoanApplicationRaw):
        credit_score: Series[float] = pa.Field(nullable=True)

    spec = dataclasses.replace(
        loans_spec,
        raw_model=WithCreditScore,
        feature_columns=(*loans_spec.feature_columns, "credit_score"),
    )
    with pytest.raises(TrainingError, match="credit_score"):
        train_distributed(
            BASE_CONFIG,
            training_data,
            spec,
            client=dask_client,
            lakefs_client=lakefs_client,
            run_id="missing",
        )


def test_nan_loss_stops_with_a_clear_error(training_data, loans_spec, dask_client, lakefs_client):
    # TrainingConfig caps the learning rate at 10, and Adam with BCE-with-logits stays finite there on
    # this data, so poison the model instead: an MLP whose output bias is NaN, registered in each worker
    # (nested functions travel to the workers by value).
    def register_nan_model() -> None:
        from tasks import models

        def make_nan_mlp(features: int, **options: object):
            model = models.make_mlp(features, **options)
            torch.nn.init.constant_(model[-1].bias, float("nan"))
            return model

        models.MODEL_FACTORIES["nan-mlp"] = make_nan_mlp

    def unregister_nan_model() -> None:
        from tasks import models

        models.MODEL_FACTORIES.pop("nan-mlp", None)

    dask_client.run(register_nan_model)
    try:
        config = BASE_CONFIG.model_copy(update={"model": "nan-mlp"})
        with pytest.raises(TrainingError, match="NaN") as caught:
            train_distributed(
                config,
                training_data,
                loans_spec,
                client=dask_client,
                lakefs_client=lakefs_client,
                run_id="nan",
            )
    finally:
        dask_client.run(unregister_nan_model)
    assert "epoch 0" in str(caught.value) and "nothing was registered" in str(caught.value)
    assert checkpoint_epochs("nan", lakefs_client) == []  # no checkpoint of NaN weights either


def test_unreachable_scheduler_fails_within_bounded_time():
    from dask.distributed import Client

    started = time.monotonic()
    with pytest.raises((OSError, TimeoutError)):
        Client("tcp://127.0.0.1:1", timeout="3s")
    assert time.monotonic() - started < 15
