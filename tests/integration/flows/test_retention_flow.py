"""retention_flow through a real Prefect server, on a private embedded lakeFS (retention deletes
branches and objects of lockgate's shared repositories, so it must not share them with other tests)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lakefs
import pytest

from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.naming import INFERENCE_REPOSITORY
from tests.support.prefect import read_artifacts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def private_lakefs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server
) -> Iterator[EmbeddedLakeFS]:
    with EmbeddedLakeFS(tmp_path / "lakefs") as server:
        key, secret = server.credentials
        monkeypatch.setenv("LOCKGATE_LAKEFS_ENDPOINT", server.endpoint)
        monkeypatch.setenv("LOCKGATE_LAKEFS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("LOCKGATE_LAKEFS_SECRET_ACCESS_KEY", secret)
        monkeypatch.delenv("LOCKGATE_SERVING_INFERENCE_REPOSITORY", raising=False)
        yield server


def test_the_retention_flow_removes_old_logs_and_reports_it(private_lakefs):
    from flows.retention import RetentionParameters, retention_flow

    client = private_lakefs.client()
    main = (
        lakefs.Repository(INFERENCE_REPOSITORY, client=client)
        .create(storage_namespace=f"local://{INFERENCE_REPOSITORY}")
        .branch("main")
    )
    today = datetime.now(UTC).date()
    old, recent = (today - timedelta(days=40)).isoformat(), today.isoformat()
    for day in (old, recent):
        main.object(f"logs/date={day}/replica-1-00000001.parquet").upload(day.encode(), pre_sign=False)
    main.commit(message="logs")

    state = retention_flow(RetentionParameters(gc_min_age_hours=0), return_state=True)
    result = state.result()
    (inference,) = [r for r in result.repositories if r.repository == INFERENCE_REPOSITORY]
    assert inference.removed_objects == [f"logs/date={old}/replica-1-00000001.parquet"]
    assert [o.path for o in main.objects()] == [f"logs/date={recent}/replica-1-00000001.parquet"]
    assert [g.repository for g in result.garbage] == [INFERENCE_REPOSITORY]  # the rules it set, then GC
    artifacts = read_artifacts(str(state.state_details.flow_run_id))
    (report,) = [a for a in artifacts if a.key == "retention"]
    assert "removed 1 object(s)" in report.data
