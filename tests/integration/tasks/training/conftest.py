"""Fixtures for the training tests: one good loans batch ingested through the real engine into the
session's embedded lakeFS, and a 2-worker Dask ``LocalCluster`` (one process per rank) whose workers
build their lakeFS client from ``LakeFSSettings`` pointed at that server.

The batch goes into a repository of its own (the loans spec with another ``repository``), not the shared
``lockgate-loans``: the ingestion tests merge small batches of another Agrawal function into that one in
the same session, and training on a mix would make the AUC check depend on test order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import lakefs
import pytest

from infra.lakefs_server.launcher import EmbeddedLakeFS
from tasks import ingestion, versioning
from tasks.datasets import DatasetSpec, get_dataset
from tasks.generate import GeneratorConfig, write_batch
from tasks.training import TrainingData, resolve_training_data

TRAINING_REPOSITORY = "lockgate-loans-training"
# Several row groups in the one Parquet part, so each rank reads whole row groups of its own.
BATCH_ROWS, CHUNK_ROWS = 30_000, 10_000


def ingest_batch(
    spec: DatasetSpec,
    config: GeneratorConfig,
    *,
    folder: Path,
    run_id: str,
    client: lakefs.Client,
    merge: bool = True,
) -> ingestion.IngestReport:
    """Generate a batch and take it through stage -> contract report (-> merge), as the flow does."""
    source = folder / f"{run_id}.parquet"
    write_batch(config, str(source), chunk_rows=CHUNK_ROWS)
    staged = ingestion.stage_batch(
        spec, ingestion.resolve_sources(str(source)), client=client, run_id=run_id, chunk_rows=CHUNK_ROWS
    )
    if staged.data_committed and not staged.report.row_checks:
        staged.report.expectations = ingestion.check_expectations(spec, staged)
    report = ingestion.publish_report(staged, client=client)
    if merge:
        assert report.passed, f"the fixture batch should pass its contracts: {report.to_json()[:2000]}"
        ingestion.merge_batch(report, client=client)
    return report


@pytest.fixture(scope="session")
def lakefs_environment(lakefs_server: EmbeddedLakeFS) -> Iterator[None]:
    """``LOCKGATE_LAKEFS_*`` pointed at the session server (ranks read it in the worker processes).

    Set before the cluster starts (workers inherit the environment) and restored afterwards, since
    other test folders expect a clean environment.
    """
    access_key_id, secret = lakefs_server.credentials
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCKGATE_LAKEFS_ENDPOINT", lakefs_server.endpoint)
        patch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", access_key_id)
        patch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", secret)
        yield  # MonkeyPatch restores (or removes) each variable on exit


@pytest.fixture(scope="session")
def loans_spec() -> DatasetSpec:
    """The loans contract, stored in the training tests' own repository."""
    return dataclasses.replace(get_dataset("loans"), repository=TRAINING_REPOSITORY)


@pytest.fixture(scope="session")
def ingest():
    """``ingest_batch`` for tests (conftest modules are not importable from test modules)."""
    return ingest_batch


@pytest.fixture(scope="session")
def batch_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training-batches")


@pytest.fixture(scope="session")
def training_data(loans_spec: DatasetSpec, lakefs_client: lakefs.Client, batch_folder: Path) -> TrainingData:
    """30k good loan rows (Agrawal function 1) merged into ``main``, pinned to the merge commit."""
    namespace = versioning.default_storage_namespace(loans_spec.repository, client=lakefs_client) or ""
    versioning.ensure_repository(loans_spec.repository, storage_namespace=namespace, client=lakefs_client)
    report = ingest_batch(
        loans_spec,
        GeneratorConfig(rows=BATCH_ROWS, seed=11, function=1, first_id=10_000_000),
        folder=batch_folder,
        run_id="training-good",
        client=lakefs_client,
    )
    return resolve_training_data(loans_spec, report.merge_commit, client=lakefs_client)
