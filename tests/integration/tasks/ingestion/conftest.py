"""Fixtures for the ingestion tests: a real Prefect server (test harness), the session's embedded
lakeFS server and moto S3, wired to ``ingest_flow`` through its settings environment.

Every test ingests into its dataset's fixed repository (``lockgate-loans``, ``lockgate-breast-cancer``),
so tests never rely on each other's state: each batch gets its own ``application_id`` range (different
bytes, hence a different batch fingerprint), and each test compares ``main``'s head before and after.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lakefs
import pandas as pd
import pyarrow.parquet as pq
import pytest

from infra.lakefs_server.launcher import EmbeddedLakeFS
from tasks import versioning
from tasks.datasets import get_dataset
from tasks.generate import GeneratorConfig, generate_frame, write_batch
from tasks.ingestion import IngestResult
from tests.support.prefect import read_artifacts, read_events

# Enough rows for the loans GX suite's mean checks to be stable (it assumes a few hundred or more).
BATCH_ROWS = 1_500
S3_BUCKET = "lockgate-landing"
EVENT_TIMEOUT_S = 20.0

_first_ids = itertools.count(start=1_000_000, step=BATCH_ROWS * 100)


@pytest.fixture(scope="session", autouse=True)
def _prefect_for_every_test(prefect_server: None) -> None:
    """Every test in this folder runs flows against the session's Prefect server."""


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str):
    """A boto3 client for the moto server, with the bucket sources are read from."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=S3_BUCKET)
    return client


@pytest.fixture(scope="session", autouse=True)
def ingest_environment(lakefs_server: EmbeddedLakeFS, s3_endpoint: str) -> Iterator[None]:
    """Point ``LakeFSSettings`` at the session's embedded server and ``S3Settings`` at moto."""
    access_key_id, secret = lakefs_server.credentials
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCKGATE_LAKEFS_ENDPOINT", lakefs_server.endpoint)
        patch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", access_key_id)
        patch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", secret)
        patch.setenv("LOCKGATE_S3_ENDPOINT_URL", s3_endpoint)
        patch.setenv("LOCKGATE_S3_REGION", "us-east-1")
        patch.setenv("LOCKGATE_S3_ACCESS_KEY_ID", "testing")
        patch.setenv("LOCKGATE_S3_SECRET_ACCESS_KEY", "testing")
        yield


@pytest.fixture(scope="session", autouse=True)
def dataset_repositories(lakefs_client: lakefs.Client, ingest_environment: None) -> None:
    """Create the datasets' repositories up front, so a test that is rejected first still has a ``main``
    whose head can be compared before and after (the flow would create the repository itself)."""
    for name in ("loans", "breast-cancer"):
        spec = get_dataset(name)
        namespace = versioning.default_storage_namespace(spec.repository, client=lakefs_client)
        versioning.ensure_repository(spec.repository, storage_namespace=namespace or "", client=lakefs_client)


@pytest.fixture
def loans_repository() -> str:
    return get_dataset("loans").repository


def next_first_id() -> int:
    """A fresh ``application_id`` range, so every generated batch has bytes of its own."""
    return next(_first_ids)


def loan_config(rows: int = BATCH_ROWS, **overrides: Any) -> GeneratorConfig:
    """A good loan batch config with IDs no other test uses."""
    settings: dict[str, Any] = {"rows": rows, "seed": 7, "first_id": next_first_id()}
    settings.update(overrides)
    return GeneratorConfig(**settings)


def good_loans(rows: int = BATCH_ROWS, **overrides: Any) -> pd.DataFrame:
    """A good loan batch as a DataFrame (unique IDs)."""
    return generate_frame(loan_config(rows, **overrides))


def write_loans(
    path: Path, *, rows: int = BATCH_ROWS, file_format: str = "parquet", **overrides: Any
) -> Path:
    """Write a good loan batch to ``path`` and return the path."""
    write_batch(loan_config(rows, **overrides), str(path), file_format=file_format)
    return path


def main_head(repository: str, client: lakefs.Client) -> str:
    """The commit ``main`` points at."""
    return lakefs.Repository(repository, client=client).branch("main").get_commit().id


def branch_exists(repository: str, branch: str, client: lakefs.Client) -> bool:
    return any(head.name == branch for head in versioning.list_branches(repository, client=client))


def read_object(repository: str, ref: str, path: str, client: lakefs.Client) -> bytes:
    with lakefs.Reference(repository, ref, client=client).object(path).reader(mode="rb") as reader:
        return reader.read()


def read_parquet_parts(repository: str, ref: str, paths: list[str], client: lakefs.Client) -> pd.DataFrame:
    """Concatenate the Parquet objects at ``paths`` as they are at ``ref``."""
    import io

    frames = [
        pq.read_table(io.BytesIO(read_object(repository, ref, path, client))).to_pandas() for path in paths
    ]
    return pd.concat(frames, ignore_index=True)


@dataclass
class IngestRun:
    """The outcome of one flow run through the Prefect server."""

    state: Any
    flow_run_id: str

    @property
    def result(self) -> IngestResult:
        return self.state.result()

    def error(self) -> BaseException:
        """The exception the run failed with (the test fails if the run did not fail)."""
        assert self.state.is_failed(), (
            f"expected the run to fail, got {self.state.type}: {self.state.message}"
        )
        with pytest.raises(BaseException) as raised:
            self.state.result()
        return raised.value


def run_ingest(source: str | Path, *, dataset: str = "loans", chunk_rows: int = 250_000) -> IngestRun:
    """Run ``ingest_flow`` against the harness's Prefect server and keep its final state."""
    from flows.ingest import IngestParameters, ingest_flow

    parameters = IngestParameters(source=str(source), dataset=dataset, chunk_rows=chunk_rows)
    state = ingest_flow(parameters, return_state=True)
    return IngestRun(state=state, flow_run_id=str(state.state_details.flow_run_id))


@dataclass
class IngestKit:
    """The helpers above, bound to the session's lakeFS client (test modules cannot import a conftest)."""

    client: lakefs.Client
    s3: Any
    bucket: str = S3_BUCKET

    run = staticmethod(run_ingest)
    events = staticmethod(read_events)
    artifacts = staticmethod(read_artifacts)
    loan_config = staticmethod(loan_config)
    good_loans = staticmethod(good_loans)
    write_loans = staticmethod(write_loans)

    def head(self, repository: str) -> str:
        return main_head(repository, self.client)

    def branch_exists(self, repository: str, branch: str) -> bool:
        return branch_exists(repository, branch, self.client)

    def read_object(self, repository: str, ref: str, path: str) -> bytes:
        return read_object(repository, ref, path, self.client)

    def read_parquet_parts(self, repository: str, ref: str, paths: list[str]) -> pd.DataFrame:
        return read_parquet_parts(repository, ref, paths, self.client)


@pytest.fixture
def kit(lakefs_client: lakefs.Client, s3_client) -> IngestKit:
    return IngestKit(client=lakefs_client, s3=s3_client)
