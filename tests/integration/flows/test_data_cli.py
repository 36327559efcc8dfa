"""``lockgate data log | show | diff`` against the session's embedded lakeFS server: a batch is ingested
for real (``run_ingest``) and the commands must report exactly what lakeFS holds for it.

The commands read the configured endpoint (``lakefs_environment``), so no server is started per test.
Every ref asked for is a commit ID (or a branch of this module's own), so batches other tests ingest
into ``lockgate-loans`` meanwhile change nothing here.
"""

from __future__ import annotations

import json
import uuid

import lakefs
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.datasets import get_dataset
from tasks.generate import GeneratorConfig, write_batch
from tasks.ingestion import IngestParameters, IngestResult, run_ingest
from tasks.ingestion.key_index import KEYS_PREFIX
from tasks.publishing import RecordingPublisher

pytestmark = pytest.mark.integration

ROWS = 1_200
REPOSITORY = get_dataset("loans").repository


@pytest.fixture(scope="module")
def ingested(lakefs_client, tmp_path_factory) -> IngestResult:
    """A good loans batch of ``ROWS`` rows (IDs no other test uses), merged into main."""
    source = tmp_path_factory.mktemp("data-cli") / "batch.parquet"
    first_id = 900_000_000 + uuid.uuid4().int % 1_000_000 * 10_000
    # Function 1, as every suite that trains on lockgate-loans main: one concept in the shared repository.
    write_batch(
        GeneratorConfig(rows=ROWS, seed=11, function=1, first_id=first_id), str(source), file_format="parquet"
    )
    result = run_ingest(
        IngestParameters(source=str(source), dataset="loans"),
        client=lakefs_client,
        s3_client=None,
        publish=RecordingPublisher(),
    )
    assert result.status == "merged"
    return result


@pytest.fixture
def cli(lakefs_environment, monkeypatch):
    """Invoke ``lockgate ...`` as a person would, against the session server, on a wide console."""
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def data_prefix(ingested: IngestResult, client) -> str:
    """The batch folder the contract report names (read straight from lakeFS, not through the CLI)."""
    _, _, rest = ingested.report.removeprefix("lakefs://").partition("/")
    ref, _, path = rest.partition("/")
    report = json.loads(lakefs.Reference(REPOSITORY, ref, client=client).object(path).reader().read())
    return report["data_prefix"]


def test_log_shows_the_merge_the_contract_report_and_the_data_commit_newest_first(cli, ingested):
    log = as_json(cli("data", "log", "loans", "--ref", ingested.commit, "--amount", "3", "--json"))

    assert log["repository"] == REPOSITORY and log["ref"] == ingested.commit
    merge, report, data = log["commits"]
    assert merge["id"] == ingested.commit
    assert merge["metadata"]["lockgate.contract_report"] == ingested.report
    assert report["id"] in merge["parents"] and report["message"].endswith("passed")
    assert data["id"] == merge["metadata"]["lockgate.data_commit"] == report["parents"][0]
    assert data["metadata"]["lockgate.rows"] == str(ROWS)
    assert {commit["metadata"]["lockgate.run_id"] for commit in log["commits"]} == {ingested.run_id}
    assert merge["date"] >= report["date"] >= data["date"]

    table = cli("data", "log", "loans", "--ref", ingested.commit, "--amount", "1")
    assert table.exit_code == 0, table.output
    assert ingested.commit[:12] in table.stdout and report["id"][:12] not in table.stdout
    assert f"run_id={ingested.run_id}" in table.stdout and merge["message"] in table.stdout


def test_show_lists_each_object_with_its_size_checksum_and_parquet_rows(cli, ingested, lakefs_client):
    prefix = data_prefix(ingested, lakefs_client)
    shown = as_json(cli("data", "show", "loans", "--ref", ingested.commit, "--path", prefix, "--json"))

    stored = {
        item.path: item
        for item in lakefs.Reference(REPOSITORY, ingested.commit, client=lakefs_client).objects(prefix=prefix)
    }
    assert shown["commit"] == ingested.commit and shown["prefix"] == prefix
    assert [item["path"] for item in shown["objects"]] == sorted(stored) and stored
    for item in shown["objects"]:
        assert item["size_bytes"] == stored[item["path"]].size_bytes
        assert item["checksum"] == stored[item["path"]].checksum
    assert shown["summary"] == {
        "objects": len(stored),
        "bytes": sum(item.size_bytes for item in stored.values()),
        "parquet_objects": len(stored),
        "rows": ROWS,
    }

    table = cli("data", "show", "loans", "--ref", ingested.commit, "--path", prefix)
    assert table.exit_code == 0, table.output
    assert f"{ROWS:,}" in table.stdout and next(iter(stored)) in table.stdout

    uncounted = as_json(cli("data", "show", "loans", "--ref", ingested.commit, "--no-rows", "--json"))
    assert uncounted["summary"]["rows"] is None
    assert {item["path"] for item in uncounted["objects"]} >= set(stored)  # the reports too
    assert any(item["path"].endswith("contract_report.json") for item in uncounted["objects"])


def test_diff_names_what_was_added_removed_and_changed(cli, ingested, lakefs_client):
    prefix = data_prefix(ingested, lakefs_client)
    merged = as_json(cli("data", "diff", "loans", f"{ingested.commit}~1", ingested.commit, "--json"))
    added = {change["path"] for change in merged["changes"] if change["type"] == "added"}
    # The merge adds the batch and its report; what it changes is only the dataset's key index.
    changed = {change["path"] for change in merged["changes"] if change["type"] == "changed"}
    assert merged["counts"] == {"added": len(added), **({"changed": len(changed)} if changed else {})}
    assert all(path.startswith(KEYS_PREFIX) for path in changed), changed
    assert any(path.startswith(prefix) for path in added)
    assert any(path.endswith("contract_report.json") for path in added)

    undone = as_json(cli("data", "diff", "loans", ingested.commit, f"{ingested.commit}~1", "--json"))
    assert {change["path"] for change in undone["changes"] if change["type"] == "removed"} == added

    # A branch of its own that changes, removes and adds one object each.
    part = next(path for path in added if path.startswith(prefix))
    report = next(path for path in added if path.endswith("contract_report.json"))
    branch = lakefs.Branch(REPOSITORY, f"cli-diff-{uuid.uuid4().hex[:8]}", client=lakefs_client)
    branch.create(ingested.commit)
    branch.object(report).upload(b'{"passed": false}')
    branch.object(part).delete()
    branch.object(f"{prefix}notes.txt").upload(b"new")
    branch.commit("change, remove and add one object")

    edited = as_json(cli("data", "diff", "loans", ingested.commit, branch.id, "--path", prefix[:5], "--json"))
    assert {(change["path"], change["type"]) for change in edited["changes"]} == {
        (part, "removed"),
        (f"{prefix}notes.txt", "added"),
    }
    everything = as_json(cli("data", "diff", "loans", ingested.commit, branch.id, "--json"))
    assert {(change["path"], change["type"]) for change in everything["changes"]} == {
        (report, "changed"),
        (part, "removed"),
        (f"{prefix}notes.txt", "added"),
    }
    table = cli("data", "diff", "loans", ingested.commit, branch.id)
    assert table.exit_code == 0, table.output
    assert "1 added, 1 removed, 1 changed" in table.stdout and part in table.stdout


def test_unknown_datasets_and_refs_are_one_line_errors(cli, ingested):
    unknown = cli("data", "log", "no-such-dataset")
    assert unknown.exit_code == 1
    assert "unknown dataset 'no-such-dataset'" in unknown.stderr and "loans" in unknown.stderr

    missing = cli("data", "show", "loans", "--ref", "no-such-branch")
    assert missing.exit_code == 1
    assert "ref 'no-such-branch' not found" in missing.stderr
    assert "Traceback" not in missing.output


def test_a_dataset_nothing_was_ingested_into_says_so(cli, lakefs_client):
    from tasks.datasets import available_datasets

    existing = {repository.id for repository in lakefs.repositories(client=lakefs_client)}
    empty = [spec.name for spec in available_datasets().values() if spec.repository not in existing]
    if not empty:
        pytest.skip("every declared dataset has a repository on the session server already")
    result = cli("data", "log", empty[0])
    assert result.exit_code == 1
    assert f"dataset {empty[0]!r} has no lakeFS repository" in result.stderr
    assert "lockgate ingest" in result.stderr


def test_the_top_level_data_commands_keep_working(cli, tmp_path):
    listed = cli("datasets")
    assert listed.exit_code == 0, listed.output
    assert REPOSITORY in listed.stdout
    generated = cli(
        "generate", str(tmp_path / "batch.csv"), "--dataset", "loans", "--rows", "50", "--format", "csv"
    )
    assert generated.exit_code == 0, generated.output
    assert len((tmp_path / "batch.csv").read_text().splitlines()) == 51
    for command in ("ingest", "labels", "data"):
        assert cli(command, "--help").exit_code == 0
