"""``lockgate report show | download`` against the session's embedded lakeFS server, for the two kinds of
report lockgate stores: monitor reports (published by the monitor's own ``publish_report``) and
contract reports with their Great Expectations Data Docs (written by a real ``run_ingest``, one batch
merged and one rejected).

The commands read the configured endpoint (``lakefs_environment``); no server is started per test.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import lakefs
import pytest
from typer.testing import CliRunner

from flows.cli import app
from infra.errors import ContractViolationError
from infra.naming import MONITORING_REPOSITORY
from tasks.generate import GeneratorConfig, write_batch
from tasks.ingestion import IngestParameters, IngestResult, run_ingest
from tasks.monitoring import MonitorSummary, publish_report, render_report, report_run_name
from tasks.publishing import RecordingPublisher

pytestmark = pytest.mark.integration


def stored_summary(summary: MonitorSummary) -> dict:
    """The summary as ``run_monitor`` stores it in ``summary.json`` (without where it is stored)."""
    return {k: v for k, v in summary.to_dict().items() if k not in ("report", "seconds", "reason")}


@pytest.fixture(scope="module")
def monitored(lakefs_client) -> dict:
    """Two monitor reports of a fresh model on main of the monitoring repository: an older 'ok' one and
    a newer one that found drift; returns the model name and, per run name, its HTML and summary."""
    model = f"cli-report-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    runs = {}
    for offset, summary in (
        (timedelta(minutes=-5), MonitorSummary(model=model, status="ok", champion="v1", records=300)),
        (
            timedelta(0),
            MonitorSummary(
                model=model,
                status="drift",
                champion="v1",
                records=500,
                drifted_features=("salary", "age"),
                prediction_drift=True,
                slo_breaches=("v1: p99 latency 900 ms > 500 ms",),
            ),
        ),
    ):
        run = report_run_name(now + offset, uuid.uuid4().hex)
        page = render_report(
            title=f"lockgate monitor: {model} v1",
            summary=stored_summary(summary),
            tests=[],
            slo=[],
            quality={},
            plots={},
        )
        publish_report(
            lakefs_client,
            model_name=model,
            run_name=run,
            report_html=page,
            summary=stored_summary(summary),
            cursor=None,
        )
        runs[run] = (page, summary)
    return {"model": model, "runs": runs}


@pytest.fixture(scope="module")
def ingested(lakefs_client, tmp_path_factory) -> tuple[IngestResult, str]:
    """A loans batch merged into main and a rejected one: the merge, and the rejected report's location."""
    folder = tmp_path_factory.mktemp("report-cli")
    first_id = 800_000_000 + uuid.uuid4().int % 1_000_000 * 10_000
    batches = {"good": 0.0, "bad": 0.01}
    for name, defect_rate in batches.items():
        config = GeneratorConfig(rows=1_200, seed=5, function=1, first_id=first_id, defect_rate=defect_rate)
        write_batch(config, str(folder / f"{name}.parquet"), file_format="parquet")

    def ingest(name: str):
        parameters = IngestParameters(source=str(folder / f"{name}.parquet"), dataset="loans")
        return run_ingest(parameters, client=lakefs_client, s3_client=None, publish=RecordingPublisher())

    with pytest.raises(ContractViolationError) as rejected:
        ingest("bad")
    merged = ingest("good")  # last, so it is main's newest contract report
    assert merged.status == "merged"
    return merged, rejected.value.report.report_path


@pytest.fixture
def cli(lakefs_environment, monkeypatch):
    """Invoke ``lockgate ...`` against the session server, on a console wide enough for one-line paths."""
    monkeypatch.setenv("COLUMNS", "1000")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def read(client, uri: str) -> bytes:
    repository, ref, path = uri.removeprefix("lakefs://").split("/", 2)
    return lakefs.Reference(repository, ref, client=client).object(path).reader().read()


def test_show_summarises_the_latest_monitor_report_and_says_where_its_html_is(cli, monitored):
    model = monitored["model"]
    newest = max(monitored["runs"])
    shown = as_json(cli("report", "show", "--model", model, "--json"))

    assert shown["kind"] == "monitor"
    assert shown["status"] == "drift" and shown["drifted_features"] == ["salary", "age"]
    assert shown["prediction_drift"] is True and shown["slo_breaches"] == ["v1: p99 latency 900 ms > 500 ms"]
    assert shown["report"].startswith(f"lakefs://{MONITORING_REPOSITORY}/")
    assert shown["report"].endswith(f"/reports/{model}/{newest}/report.html")
    assert shown["summary"].endswith(f"/reports/{model}/{newest}/summary.json")

    table = cli("report", "show", "--latest", "--model", model)
    assert table.exit_code == 0, table.output
    assert "drift" in table.stdout and "salary, age" in table.stdout
    assert f"HTML report: {shown['report']}" in table.stdout
    assert f"lockgate report download latest --model {model} --to DIR" in table.stdout


def test_show_reads_the_report_a_location_names(cli, monitored, lakefs_client):
    model = monitored["model"]
    oldest = min(monitored["runs"])
    location = f"lakefs://{MONITORING_REPOSITORY}/main/reports/{model}/{oldest}/report.html"
    shown = as_json(cli("report", "show", location, "--json"))
    assert shown["status"] == "ok" and shown["records"] == 300 and shown["drifted_features"] == []
    # Pinned to the commit main pointed at: the location printed stays valid as main moves on.
    assert read(lakefs_client, shown["report"]).decode() == monitored["runs"][oldest][0]


def test_download_writes_the_html_and_its_json_and_prints_what_to_open(cli, monitored, tmp_path):
    model = monitored["model"]
    newest = max(monitored["runs"])
    page, summary = monitored["runs"][newest]
    downloaded = cli("report", "download", "latest", "--model", model, "--to", str(tmp_path))
    assert downloaded.exit_code == 0, downloaded.output

    folder = tmp_path / f"{model}-{newest}"
    assert sorted(path.name for path in folder.iterdir()) == ["report.html", "summary.json"]
    assert (folder / "report.html").read_text() == page
    assert json.loads((folder / "summary.json").read_text()) == json.loads(
        json.dumps(stored_summary(summary))
    )
    assert f"open {folder / 'report.html'}" in downloaded.stdout
    assert [path.name for path in tmp_path.iterdir()] == [folder.name]  # no staging folder left

    again = cli("report", "download", "latest", "--model", model, "--to", str(tmp_path))
    assert again.exit_code == 0, again.output  # replaces the earlier copy
    assert (folder / "report.html").read_text() == page


def test_show_the_latest_contract_report_of_a_dataset_with_its_data_docs(cli, ingested, lakefs_client):
    merged, _ = ingested
    shown = as_json(cli("report", "show", "--dataset", "loans", "--json"))

    assert shown["kind"] == "contract"
    assert shown["content"]["run_id"] == merged.run_id and shown["content"]["passed"] is True
    assert shown["report"].endswith(f"/_lockgate/reports/{merged.run_id}/contract_report.json")
    assert shown["data_docs"].endswith(f"/_lockgate/reports/{merged.run_id}/data_docs/index.html")
    assert read(lakefs_client, shown["data_docs"]).lstrip().lower().startswith(b"<!doctype html")

    table = cli("report", "show", "--dataset", "loans")
    assert table.exit_code == 0, table.output
    assert "passed" in table.stdout and "1,200" in table.stdout
    assert f"Data Docs: {shown['data_docs']}" in table.stdout


def test_show_a_rejected_contract_report_names_its_failures(cli, ingested):
    _, rejected = ingested
    table = cli("report", "show", rejected)
    assert table.exit_code == 0, table.output
    assert "FAILED" in table.stdout
    assert "salary not_nullable" in table.stdout and "application_id field_uniqueness" in table.stdout

    shown = as_json(cli("report", "show", rejected, "--json"))
    assert shown["content"]["passed"] is False and shown["content"]["row_checks"]


def test_download_a_contract_report_brings_its_data_docs_site(cli, ingested, lakefs_client, tmp_path):
    merged, _ = ingested
    downloaded = cli("report", "download", merged.report, "--to", str(tmp_path))
    assert downloaded.exit_code == 0, downloaded.output

    folder = tmp_path / f"lockgate-loans-{merged.run_id}"
    index = folder / "data_docs" / "index.html"
    assert f"open {index}" in downloaded.stdout
    assert json.loads((folder / "contract_report.json").read_text())["run_id"] == merged.run_id
    docs = merged.report.rsplit("/", 1)[0] + "/data_docs/index.html"
    assert index.read_bytes() == read(lakefs_client, docs)
    assert len(list(folder.rglob("*"))) > 3  # the site's pages and static files came too


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--model", "nobody-monitored"], 1, "no monitor report of model 'nobody-monitored'"),
        (["lakefs://lockgate-loans/main/data/"], 2, "is no report"),
        (["reports/loans-mlp/"], 2, "is not a lakeFS location"),
        ([f"lakefs://{MONITORING_REPOSITORY}/main/reports/x/y/", "--latest"], 2, "not both"),
        ([f"lakefs://{MONITORING_REPOSITORY}/main/reports/x/", "--model", "x"], 2, "drop --model"),
        (["--model", "a", "--dataset", "loans"], 2, "give one"),
        ([f"lakefs://{MONITORING_REPOSITORY}/main/reports/nobody/run/"], 1, "no monitor report at"),
    ],
)
def test_reports_that_cannot_be_found_are_one_line_errors(cli, monitored, arguments, code, message):
    result = cli("report", "show", *arguments)
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
