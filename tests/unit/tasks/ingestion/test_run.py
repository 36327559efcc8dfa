"""``run_ingest`` without Prefect: the embedded lakeFS, a recording publisher, a repository of its own."""

from __future__ import annotations

import pytest

from infra.errors import ContractViolationError, SourceNotFoundError
from tasks import events, versioning
from tasks.generate import GeneratorConfig, write_batch
from tasks.ingestion import IngestParameters, run_ingest
from tasks.publishing import RecordingPublisher


def ingest(client, spec, source) -> tuple[object, RecordingPublisher]:
    published = RecordingPublisher()
    parameters = IngestParameters(source=str(source), dataset="loans", chunk_rows=1_000)
    return run_ingest(parameters, client=client, s3_client=None, publish=published, spec=spec), published


def test_a_good_batch_is_merged_once_and_published(lakefs_client, spec, tmp_path) -> None:
    source = tmp_path / "good.parquet"
    write_batch(GeneratorConfig(rows=3_000, seed=21, first_id=21_000_000), str(source))

    result, published = ingest(lakefs_client, spec, source)

    assert result.status == "merged" and result.rows == 3_000 and result.repository == spec.repository
    assert versioning.resolve_ref(spec.repository, "main", client=lakefs_client) == result.commit
    (merged,) = published.events_named(events.DATASET_MERGED)
    branch = merged.resource["lakefs.source_branch"]
    assert branch.startswith("ingest-loans-")
    assert merged.resource == {
        "prefect.resource.id": f"lakefs.{spec.repository}.{branch}",
        "lakefs.repository": spec.repository,
        "lakefs.branch": "main",
        "lakefs.commit": result.commit,
        "lakefs.source_branch": branch,
        "lockgate.dataset": "loans",
    }
    assert {a.key for a in published.artifacts} == {"ingest-loans-summary", "ingest-loans-report"}

    again, published = ingest(lakefs_client, spec, source)
    assert again.status == "unchanged" and again.commit == result.commit and not published.events


def test_a_batch_that_breaks_its_contract_is_rejected_and_main_is_kept(lakefs_client, spec, tmp_path) -> None:
    good = tmp_path / "good.parquet"
    write_batch(GeneratorConfig(rows=2_000, seed=22, first_id=22_000_000), str(good))
    ingest(lakefs_client, spec, good)
    head = versioning.resolve_ref(spec.repository, "main", client=lakefs_client)
    bad = tmp_path / "bad.csv"
    write_batch(
        GeneratorConfig(rows=2_000, seed=23, first_id=23_000_000, defect_rate=0.01),
        str(bad),
        file_format="csv",
    )
    published = RecordingPublisher()

    with pytest.raises(ContractViolationError, match="rejected by its contract") as raised:
        run_ingest(
            IngestParameters(source=str(bad), dataset="loans"),
            client=lakefs_client,
            s3_client=None,
            publish=published,
            spec=spec,
        )

    assert versioning.resolve_ref(spec.repository, "main", client=lakefs_client) == head
    report = raised.value.report
    assert not report.passed and report.row_checks and report.branch.startswith("ingest-loans-")
    (rejected,) = published.events_named(events.DATASET_REJECTED)
    assert rejected.resource["lakefs.branch"] == report.branch and rejected.payload["failures"] > 0
    assert "ingest-loans-failures" in {a.key for a in published.artifacts}


def test_a_missing_source_is_a_rejected_batch_too(lakefs_client, spec, tmp_path) -> None:
    published = RecordingPublisher()
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        ingest_missing = IngestParameters(source=str(tmp_path / "nothing.csv"), dataset="loans")
        run_ingest(ingest_missing, client=lakefs_client, s3_client=None, publish=published, spec=spec)
    (rejected,) = published.events_named(events.DATASET_REJECTED)
    assert "does not exist" in rejected.payload["reason"]
