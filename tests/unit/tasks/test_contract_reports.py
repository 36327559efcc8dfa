"""The one contract-report reader: training and the merge gate agree on what a report vouches for."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pandas as pd
import pytest

from infra.errors import UncheckedDataError
from tasks import versioning
from tasks.contract_reports import passed_contract_reports, report_path
from tasks.datasets import get_dataset
from tasks.training import resolve_training_data


@pytest.fixture
def dataset_repository(lakefs_client):
    """A repository with two batches: ``good`` has a passed report, ``bad`` a report that is not JSON."""
    name = f"reports-{uuid.uuid4().hex[:8]}"
    versioning.ensure_repository(name, storage_namespace=f"local://{name}", client=lakefs_client)
    frame = pd.DataFrame({"x": [1, 2, 3]})
    for batch in ("good", "bad"):
        versioning.write_dataframe(
            frame,
            repository=name,
            branch="main",
            path=f"data/batch-{batch}/part-00000.parquet",
            client=lakefs_client,
        )
    reports = {
        "r-good": json.dumps({"passed": True, "data_prefix": "data/batch-good/"}),
        "r-bad": '{"passed": true, "data_prefix": "data/batch-bad/"',  # truncated: not JSON
        "r-list": json.dumps([{"passed": True}]),  # JSON, but not a report
        "r-failed": json.dumps({"passed": False, "data_prefix": "data/batch-bad/"}),
    }
    for run_id, text in reports.items():
        versioning.write_bytes(
            text.encode(), repository=name, branch="main", path=report_path(run_id), client=lakefs_client
        )
    commit = versioning.commit_changes(name, "main", message="two batches", metadata={}, client=lakefs_client)
    return name, commit


def test_only_readable_passed_reports_vouch(lakefs_client, dataset_repository) -> None:
    name, commit = dataset_repository
    assert passed_contract_reports(name, commit, client=lakefs_client) == {
        "data/batch-good/": report_path("r-good")
    }


def test_training_refuses_data_whose_report_is_unreadable(lakefs_client, dataset_repository) -> None:
    # Regression: training parsed every report itself and crashed on a malformed one (JSONDecodeError),
    # while the merge gate skipped it. Now both skip it, and training names the unchecked batch.
    name, commit = dataset_repository
    spec = dataclasses.replace(get_dataset("loans"), repository=name)
    with pytest.raises(UncheckedDataError, match="data/batch-bad/"):
        resolve_training_data(spec, commit, client=lakefs_client)
