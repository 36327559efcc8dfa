"""Retention of lockgate's own data, on a private embedded server (it deletes branches of the shared
repositories, so it must not share them with other tests), and its CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import lakefs
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from flows.cli.app import app
from infra.lakefs_server.launcher import EmbeddedLakeFS
from infra.naming import MODELS_REPOSITORY, MONITORING_REPOSITORY
from tasks import versioning
from tasks.retention import (
    RetentionParameters,
    RetentionPolicy,
    expired_log_paths,
    run_retention,
    run_retention_job,
)
from tests.support.fakes import FakeClock

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
INFERENCE = "retention-inference"
DATA = "retention-data"
DAY = 86_400


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedLakeFS]:
    with EmbeddedLakeFS(tmp_path / "lakefs") as started:
        yield started


def _repo(client, name: str) -> lakefs.Repository:
    return lakefs.Repository(name, client=client).create(storage_namespace=f"local://{name}")


def _write(branch, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        branch.object(path).upload(data, pre_sign=False)


def _commit(branch, files: dict[str, bytes], days_ago: float, run: str | None = None) -> str:
    _write(branch, files)
    metadata = {"lockgate.run_id": run} if run else None
    return (
        branch.commit(message="work", metadata=metadata, date=int(time.time() - days_ago * DAY))
        .get_commit()
        .id
    )


def _layout(client, today: date) -> None:
    inference = _repo(client, INFERENCE).branch("main")
    days = {age: (today - timedelta(days=age)).isoformat() for age in (40, 31, 30, 1)}
    _commit(
        inference,
        {
            **{f"logs/date={d}/replica-1-0.parquet": f"log {age}".encode() for age, d in days.items()},
            f"labels/date={days[40]}/batch.parquet": b"labels 40",
            f"labels/date={days[1]}/batch.parquet": b"labels 1",
            "logs/README.txt": b"not a partition: kept",
        },
        0,
    )
    _commit(_repo(client, MONITORING_REPOSITORY).branch("main"), {"reports/m/run-1/report.html": b"r"}, 0)
    models = _repo(client, MODELS_REPOSITORY)
    _commit(models.branch("main"), {"models/m/v1/weights.safetensors": b"w"}, 30)
    _commit(models.branch("train-old").create("main"), {"checkpoints/old/latest.json": b"{}"}, 20, "old")
    _commit(models.branch("train-new").create("main"), {"checkpoints/new/latest.json": b"{}"}, 0, "new")
    models.branch("train-starting").create("main")  # a job's branch before its first checkpoint
    data = _repo(client, DATA)
    _commit(data.branch("main"), {"data.parquet": b"d"}, 40)
    _commit(data.branch("ingest-x-rejected").create("main"), {"data.parquet": b"bad"}, 30, "r1")
    merged = data.branch("ingest-x-merged").create("main")
    _commit(merged, {"data.parquet": b"good"}, 30, "r2")
    merged.merge_into(data.branch("main"))
    _commit(data.branch("ingest-x-fresh").create("main"), {"data.parquet": b"fresh"}, 1, "r3")
    busy = data.branch("ingest-x-busy").create("main")
    _commit(busy, {"data.parquet": b"busy"}, 30, "r4")
    _write(busy, {"more.parquet": b"being written"})  # staged: in use
    _commit(data.branch("ingest-by-hand").create("main"), {"data.parquet": b"hand"}, 30)  # not lockgate's


def test_expired_log_paths_reads_day_partitions():
    paths = ["logs/date=2026-01-01/a.parquet", "labels/date=2026-03-01/b.parquet", "logs/other.txt"]
    assert expired_log_paths(paths, today=date(2026, 3, 2), keep_days=30) == [
        "logs/date=2026-01-01/a.parquet"
    ]


def test_retention_removes_only_what_is_past_its_time(server):
    client = server.client()
    now = datetime.now(UTC)
    _layout(client, now.date())
    policy = RetentionPolicy(
        inference_log_days=30, report_days=90, checkpoint_days=7, rejected_ingest_days=14
    )
    heads = {name: versioning.resolve_ref(name, "main", client=client) for name in (INFERENCE, DATA)}

    dry = run_retention(
        policy,
        client=client,
        dataset_repositories=[DATA],
        inference_repository=INFERENCE,
        dry_run=True,
        clock=FakeClock(now),
    )
    assert {name: versioning.resolve_ref(name, "main", client=client) for name in heads} == heads
    assert versioning.gc_rules(INFERENCE, client=client) is None  # a dry run sets nothing either

    real = run_retention(
        policy,
        client=client,
        dataset_repositories=[DATA],
        inference_repository=INFERENCE,
        clock=FakeClock(now),
    )
    by_repo = {r.repository: r for r in real.repositories}
    assert {r.repository: (r.removed_objects, r.removed_branches) for r in dry.repositories} == {
        name: (r.removed_objects, r.removed_branches) for name, r in by_repo.items()
    }
    d40, d31 = ((now.date() - timedelta(days=age)).isoformat() for age in (40, 31))
    assert sorted(by_repo[INFERENCE].removed_objects) == sorted(
        [
            f"labels/date={d40}/batch.parquet",
            f"logs/date={d31}/replica-1-0.parquet",
            f"logs/date={d40}/replica-1-0.parquet",
        ]
    )
    left = versioning.list_objects(INFERENCE, ref="main", client=client)
    assert len(left) == 4 and "logs/README.txt" in left
    assert by_repo[MODELS_REPOSITORY].removed_branches == ["train-old"]
    assert by_repo[DATA].removed_branches == ["ingest-x-rejected"]
    branches = {b.name for b in versioning.list_branches(DATA, client=client)}
    assert branches == {"main", "ingest-x-merged", "ingest-x-fresh", "ingest-x-busy", "ingest-by-hand"}
    assert "train-starting" in {b.name for b in versioning.list_branches(MODELS_REPOSITORY, client=client)}
    assert by_repo[MONITORING_REPOSITORY].removed_objects == []  # the report is new
    # GC rules on lockgate's repositories, none on the user's data (its history is the lineage).
    for name in (INFERENCE, MONITORING_REPOSITORY, MODELS_REPOSITORY):
        assert versioning.gc_rules(name, client=client) == {"*": 7}
    assert versioning.gc_rules(DATA, client=client) is None
    # The removed logs still read at the commit before retention's, until GC expires it.
    assert (
        versioning.read_object(
            INFERENCE, ref=heads[INFERENCE], path=f"logs/date={d40}/replica-1-0.parquet", client=client
        )
        == b"log 40"
    )

    later = run_retention(
        policy,
        client=client,
        dataset_repositories=[DATA],
        inference_repository=INFERENCE,
        clock=FakeClock(now + timedelta(days=91)),
    )
    reports = next(r for r in later.repositories if r.repository == MONITORING_REPOSITORY)
    assert reports.removed_objects == ["reports/m/run-1/report.html"]


def test_the_job_collects_garbage_on_the_embedded_server(server):
    client = server.client()
    _layout(client, datetime.now(UTC).date())
    result = run_retention_job(
        RetentionParameters(gc_min_age_hours=0, dataset_repositories=[DATA]),
        client=client,
        inference_repository=INFERENCE,
    )
    assert {g.repository for g in result.garbage} == {INFERENCE, MONITORING_REPOSITORY, MODELS_REPOSITORY}
    # train-old's checkpoint is referenced only by a deleted branch's 20-day-old commit: collected.
    models = next(g for g in result.garbage if g.repository == MODELS_REPOSITORY)
    assert models.deleted_blocks == 1 and models.expired_commits >= 1
    assert "blocks collected" in result.markdown()


def test_bad_policies_are_refused():
    with pytest.raises(ValidationError, match="inference_log_days"):
        RetentionPolicy(inference_log_days=0)
    with pytest.raises(ValidationError, match="extra"):
        RetentionParameters(logs_days=3)


def _cli(server: EmbeddedLakeFS, *args: str):
    key, secret = server.credentials
    env = {
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "LOCKGATE_LAKEFS_ENDPOINT": server.endpoint,
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": key,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret,
    }
    return CliRunner(env=env).invoke(app, list(args))


def test_cli_retention_and_gc(server):
    client = server.client()
    _layout(client, datetime.now(UTC).date())
    dry = _cli(server, "retention", "--dry-run", "--json", "--repository", DATA, "--no-gc")
    assert dry.exit_code == 0, dry.output
    document = json.loads(dry.output)
    assert document["dry_run"] is True
    assert {r["repository"] for r in document["repositories"]} >= {MODELS_REPOSITORY, DATA}

    bad = _cli(server, "retention", "--logs-days", "0")
    assert bad.exit_code == 2 and "--logs-days" in bad.output

    no_rules = _cli(server, "lakefs", "gc", DATA)
    assert no_rules.exit_code == 1 and "no GC rules set" in no_rules.output
    versioning.set_gc_rules(DATA, {"*": 7}, client=client)
    preview = _cli(server, "lakefs", "gc", DATA, "--dry-run", "--min-age-hours", "0", "--json")
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)["dry_run"] is True
    done = _cli(server, "lakefs", "gc", DATA, "--min-age-hours", "0")
    assert done.exit_code == 0 and "blocks deleted" in done.output
