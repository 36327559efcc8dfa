"""Report commands: ``report show`` and ``report download``, for the monitor's reports (HTML and
``summary.json`` in ``lockgate-monitoring``) and ingestion's contract reports (JSON and the Great
Expectations Data Docs, under ``_lockgate/reports/<run>/`` of the dataset's repository)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flows.cli import output
from flows.cli.app import app, console
from flows.cli.context import lakefs_connection
from flows.cli.options import DataDir

if TYPE_CHECKING:
    import lakefs

    from tasks.monitoring.report import StoredReport

report_app = typer.Typer(
    help="Monitor reports and contract reports (with their Great Expectations Data Docs) in lakeFS.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report", rich_help_panel="The loop")

LATEST = "latest"
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "--model-name",
        help="Model whose latest monitor report is meant. [default: LOCKGATE_MODEL_NAME, else "
        "<LOCKGATE_DATASET>-mlp]",
    ),
]
Dataset = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="Dataset whose latest contract report (on main) is meant, not a monitor report."
    ),
]
_LOCATION_HELP = (
    "lakefs:// location of a report as `lockgate monitor` or `lockgate ingest` print it (report.html, "
    "summary.json, contract_report.json, data_docs/index.html, or their folder)"
)


@dataclass(frozen=True)
class ContractReportLocation:
    """One ingest run's contract report (``_lockgate/reports/<run>/contract_report.json``) at a commit."""

    repository: str
    commit: str
    run: str
    path: str

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] + "/"

    @property
    def data_docs_path(self) -> str:
        """Where ingestion puts the run's Data Docs site (``tasks.ingestion.staging.publish_report``)."""
        return f"{self.folder}data_docs/index.html"


@report_app.command("show")
def show_report(
    report: Annotated[
        str | None, typer.Argument(help=f"{_LOCATION_HELP}; omitted or 'latest': the latest.")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The latest report (the default).")] = False,
    model: Model = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    as_json: output.AsJson = False,
) -> None:
    """Summarise a report: a monitor run's verdict, drift, quality and SLOs, or a contract report's
    verdict and failures; and say where its HTML (report or Data Docs) is."""
    from tasks import versioning
    from tasks.monitoring.report import StoredReport, read_report_summary

    if latest and report not in (None, LATEST):
        _refuse("give a report location or --latest, not both")
    with lakefs_connection(data_dir, quiet=as_json) as connection:
        client = connection.client
        located = _locate(report or LATEST, model=model, dataset=dataset, client=client)
        if isinstance(located, StoredReport):
            summary = read_report_summary(client, located)
            url = versioning.object_url(client, located.repository, located.commit, located.report_path)
            summary_uri = versioning.object_uri(located.repository, located.commit, located.summary_path)
            output.monitor_report(summary, summary_uri=summary_uri, url=url, as_json=as_json)
        else:
            content = _read_contract_report(located, client=client)
            output.contract_report(
                content,
                location=versioning.object_uri(located.repository, located.commit, located.path),
                data_docs=_data_docs(located, client=client),
                as_json=as_json,
            )
    if not as_json:
        console.print(
            f"Download it: lockgate report download {report or LATEST}"
            + (f" --model {model}" if model else "")
            + (f" --dataset {dataset}" if dataset else "")
            + " --to DIR",
            highlight=False,
            soft_wrap=True,
        )


@report_app.command("download")
def download_report(
    report: Annotated[str, typer.Argument(help=f"{_LOCATION_HELP}, or 'latest'.")],
    to: Annotated[
        Path, typer.Option("--to", file_okay=False, help="Local folder to put the report's folder in.")
    ],
    model: Model = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
) -> None:
    """Download a report's folder into DIR (monitor: report.html and summary.json; contract: the JSON
    and the Data Docs site) and print the file to open."""
    from tasks import versioning
    from tasks.monitoring.report import StoredReport

    with lakefs_connection(data_dir, quiet=True) as connection:
        client = connection.client
        located = _locate(report, model=model, dataset=dataset, client=client)
        if isinstance(located, StoredReport):
            destination = to / f"{located.model}-{located.run}"
            folder, opened = located.folder, located.report_path.removeprefix(located.folder)
        else:
            destination = to / f"{located.repository}-{located.run}"
            has_docs = _data_docs(located, client=client) is not None
            folder = located.folder
            opened = (located.data_docs_path if has_docs else located.path).removeprefix(folder)
        files = versioning.download_folder(
            located.repository, ref=located.commit, prefix=folder, destination=destination, client=client
        )
    console.print(
        f"downloaded {len(files)} file(s) of "
        f"{versioning.object_uri(located.repository, located.commit, folder)} into {destination}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"open {destination / opened}", highlight=False, soft_wrap=True)


def _locate(
    report: str, *, model: str | None, dataset: str | None, client: lakefs.Client
) -> StoredReport | ContractReportLocation:
    """The report a location or 'latest' (of --model, or of --dataset) names, pinned to its commit."""
    from tasks import versioning
    from tasks.contract_reports import REPORTS_PREFIX as CONTRACT_PREFIX
    from tasks.contract_reports import report_path
    from tasks.monitoring.report import REPORTS_PREFIX as MONITOR_PREFIX
    from tasks.monitoring.report import latest_report, report_at

    if report == LATEST:
        if model and dataset:
            _refuse("--model picks a monitor report and --dataset a contract report: give one")
        if dataset:
            return _latest_contract_report(dataset, client=client)
        if model is None:
            from infra.settings import WorkloadSettings

            model = WorkloadSettings().required_model_name()
        return latest_report(client, model)
    if model or dataset:
        _refuse(f"{report!r} names its report already: drop --model / --dataset (they pick the latest)")
    repository, ref, path = versioning.parse_uri(report)
    if path.startswith(CONTRACT_PREFIX):
        run = path.removeprefix(CONTRACT_PREFIX).split("/")[0]
        if run:
            commit = versioning.resolve_ref(repository, ref, client=client)
            located = ContractReportLocation(repository, commit, run, report_path(run))
            _read_contract_report(located, client=client)  # it exists and is a report
            return located
    if path.startswith(MONITOR_PREFIX):
        return report_at(client, repository=repository, ref=ref, path=path)
    _refuse(
        f"{report!r} is no report: monitor reports are under {MONITOR_PREFIX}<model>/<run>/ and contract "
        f"reports under {CONTRACT_PREFIX}<run>/; or pass 'latest'"
    )


def _latest_contract_report(dataset: str, *, client: lakefs.Client) -> ContractReportLocation:
    """The newest contract report merged into ``main`` of ``dataset`` (run IDs start with their time)."""
    from infra.errors import ObjectNotFoundError
    from tasks import versioning
    from tasks.contract_reports import REPORT_FILE, REPORTS_PREFIX, report_path
    from tasks.datasets import get_dataset

    repository = get_dataset(dataset).repository
    commit = versioning.resolve_ref(repository, "main", client=client)
    paths = versioning.list_objects(
        repository, ref=commit, prefix=REPORTS_PREFIX, suffix=f"/{REPORT_FILE}", client=client
    )
    if not paths:
        raise ObjectNotFoundError(
            f"no contract report on main of {repository!r}: ingest a batch first (`lockgate ingest`); a "
            "rejected batch's report stays on its ingest branch (the location `lockgate ingest` printed)"
        )
    run = max(paths).removeprefix(REPORTS_PREFIX).split("/")[0]
    return ContractReportLocation(repository, commit, run, report_path(run))


def _read_contract_report(located: ContractReportLocation, *, client: lakefs.Client) -> dict[str, Any]:
    import json

    from infra.errors import DataFormatError
    from tasks import versioning

    payload = versioning.read_object(located.repository, ref=located.commit, path=located.path, client=client)
    try:
        content = json.loads(payload)
    except ValueError as error:
        raise DataFormatError(f"{located.path} is not JSON ({error})") from error
    if not isinstance(content, dict) or "passed" not in content:
        raise DataFormatError(f"{located.path} is not a contract report (no 'passed')")
    return content


def _data_docs(located: ContractReportLocation, *, client: lakefs.Client) -> str | None:
    """Where the run's Data Docs index is, or None when they were not rendered (unreadable batch)."""
    from tasks import versioning

    if not versioning.object_exists(
        located.repository, ref=located.commit, path=located.data_docs_path, client=client
    ):
        return None
    return versioning.object_uri(located.repository, located.commit, located.data_docs_path)


def _refuse(message: str) -> NoReturn:
    from infra.errors import InvalidInputError

    raise InvalidInputError(message)
