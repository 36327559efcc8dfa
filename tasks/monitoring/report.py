"""The monitor's report: per-feature plots, the test table, a self-contained HTML page, and its
publication with the monitor's cursor in one commit of the monitoring repository."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from contracts.inference_log import PREDICTION_COLUMN
from infra.errors import (
    DataFormatError,
    InvalidInputError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryNotFoundError,
)
from infra.naming import MONITORING_REPOSITORY
from tasks import versioning
from tasks.drift import DriftReport, FeatureDrift

if TYPE_CHECKING:
    import lakefs

    from tasks.monitoring.run import MonitorSummary

REPORTS_PREFIX = "reports/"
STATE_PREFIX = "state/"
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
_PLOT_SAMPLE = 20_000
_PNG_METADATA = {"Software": None}


def _pyplot():
    """Matplotlib's pyplot with the file-only backend, chosen when a plot is first drawn (not at import)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def plot_feature(
    reference: pd.Series, current: pd.Series, *, name: str, categorical: bool, seed: int = 0
) -> bytes:
    """PNG of one feature: reference vs current, as share histograms (numeric) or bars (codes)."""
    ref = reference.dropna()
    cur = current.dropna()
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    if categorical:
        shares = pd.DataFrame(
            {
                "reference": ref.value_counts(normalize=True),
                "current": cur.value_counts(normalize=True),
            }
        ).fillna(0.0)
        shares = shares.sort_index()
        positions = np.arange(len(shares))
        axis.bar(positions - 0.2, shares["reference"], width=0.4, label="reference", color="#4c72b0")
        axis.bar(positions + 0.2, shares["current"], width=0.4, label="current", color="#dd8452")
        axis.set_xticks(positions, [str(v) for v in shares.index], fontsize=7)
        axis.set_ylabel("share")
    else:
        rng = np.random.default_rng(seed)
        ref_values = ref.to_numpy(dtype=float)
        cur_values = cur.to_numpy(dtype=float)
        if ref_values.size > _PLOT_SAMPLE:
            ref_values = rng.choice(ref_values, _PLOT_SAMPLE, replace=False)
        if cur_values.size > _PLOT_SAMPLE:
            cur_values = rng.choice(cur_values, _PLOT_SAMPLE, replace=False)
        both = np.concatenate([ref_values, cur_values]) if cur_values.size else ref_values
        edges = np.histogram_bin_edges(both, bins=30) if both.size else 10
        axis.hist(ref_values, bins=edges, density=True, alpha=0.55, label="reference", color="#4c72b0")
        if cur_values.size:
            axis.hist(cur_values, bins=edges, density=True, alpha=0.55, label="current", color="#dd8452")
        axis.set_ylabel("density")
    axis.set_title(name, fontsize=9)
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=_PNG_METADATA)
    plt.close(figure)
    return buffer.getvalue()


def feature_plots(
    reference: pd.DataFrame, current: pd.DataFrame, *, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, bytes]:
    """One PNG per feature and one for the prediction, by column name."""
    plots = {}
    for name in [*numeric, *categorical]:
        plots[name] = plot_feature(reference[name], current[name], name=name, categorical=name in categorical)
    if PREDICTION_COLUMN in reference and PREDICTION_COLUMN in current:
        plots[PREDICTION_COLUMN] = plot_feature(
            reference[PREDICTION_COLUMN],
            current[PREDICTION_COLUMN],
            name="predicted probability (champion)",
            categorical=False,
        )
    return plots


def drift_table(report: DriftReport) -> list[dict[str, Any]]:
    """One table row per test of ``report`` (features, prediction, MMD, outliers)."""

    def feature_row(item: FeatureDrift, label: str) -> dict[str, Any]:
        return {
            "check": label,
            "test": item.test,
            "statistic": _round(item.statistic),
            "p_value": _round(item.p_value),
            "adjusted_p": _round(item.adjusted_p_value),
            "psi": _round(item.psi),
            "reference_n": item.reference_n,
            "current_n": item.current_n,
            "result": "DRIFT" if item.drifted else item.status,
        }

    rows = [feature_row(item, item.name) for item in report.features]
    if report.prediction is not None:
        rows.append(feature_row(report.prediction, "prediction"))
    if report.multivariate is not None:
        mv = report.multivariate
        rows.append(
            {
                "check": "all numeric features (MMD)",
                "test": "mmd",
                "statistic": _round(mv.statistic),
                "p_value": _round(mv.p_value),
                "adjusted_p": _round(mv.adjusted_p_value),
                "psi": None,
                "reference_n": mv.reference_n,
                "current_n": mv.current_n,
                "result": "DRIFT" if mv.drifted else mv.status,
            }
        )
    if report.outliers is not None:
        out = report.outliers
        rows.append(
            {
                "check": "outlier rate",
                "test": "quantile fences",
                "statistic": _round(out.rate),
                "p_value": None,
                "adjusted_p": None,
                "psi": None,
                "reference_n": report.reference_rows,
                "current_n": report.current_rows,
                "result": "DRIFT" if out.drifted else out.status,
            }
        )
    return rows


def render_report(
    *,
    title: str,
    summary: Mapping[str, Any],
    tests: Sequence[Mapping[str, Any]],
    slo: Sequence[Mapping[str, Any]],
    quality: Mapping[str, Any],
    plots: Mapping[str, bytes],
) -> str:
    """A self-contained HTML page (plots inlined) a person can open from lakeFS or a Prefect artifact."""
    status = summary.get("status", "")
    colour = {"drift": "#c0392b", "breached": "#c0392b", "ok": "#27ae60"}.get(status, "#7f8c8d")
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in plots.items()
    )
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
        if not isinstance(v, list | dict)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:1.4em}}
.status{{display:inline-block;padding:.2em .6em;border-radius:4px;color:#fff;background:{colour}}}
table{{border-collapse:collapse;margin:1em 0;font-size:.9em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}
tr.alarm td{{background:#fdecea}} figure{{display:inline-block;margin:.3em}} img{{max-width:380px}}
</style></head><body>
<h1>{html.escape(title)} <span class="status">{html.escape(str(status))}</span></h1>
<table>{facts}</table>
<h2>Drift tests</h2>{_html_table(tests, alarm_key="result", alarm_value="DRIFT")}
<h2>Reference vs current</h2><div>{images or "<p>No current rows to plot.</p>"}</div>
<h2>Service levels (per version)</h2>{_html_table(slo, alarm_key="status", alarm_value="breached")}
<h2>Quality from labels</h2><p>{html.escape(str(quality.get("status", "")))}: {quality.get("labels", 0)}
label(s), {quality.get("matched", 0)} matched to logged answers.</p>
{_html_table(quality.get("versions", []), alarm_key="status", alarm_value="degraded")}
</body></html>
"""


def publish_report(
    client: lakefs.Client,
    *,
    model_name: str,
    run_name: str,
    report_html: str,
    summary: Mapping[str, Any],
    cursor: Mapping[str, Any] | None,
    repository: str = MONITORING_REPOSITORY,
) -> dict[str, str]:
    """Store ``report.html`` and ``summary.json`` under ``reports/<model>/<run>/`` and, when given,
    move the model's cursor, in one commit on ``main``; return the paths and the commit ID."""
    versioning.ensure_default_repository(repository, client=client)
    folder = f"{REPORTS_PREFIX}{model_name}/{run_name}/"
    paths = {"report": f"{folder}{REPORT_FILE}", "summary": f"{folder}{SUMMARY_FILE}"}
    files = {
        paths["report"]: (report_html, "text/html"),
        paths["summary"]: (json.dumps(summary, indent=2, default=str), "application/json"),
    }
    if cursor is not None:
        files[cursor_path(model_name)] = (json.dumps(cursor, indent=2), "application/json")
    for path, (text, content_type) in files.items():
        versioning.write_bytes(
            text.encode("utf-8"),
            repository=repository,
            branch="main",
            path=path,
            client=client,
            content_type=content_type,
        )
    commit_id = versioning.commit_changes(
        repository,
        "main",
        message=f"monitor {model_name}: {summary.get('status', '')}",
        metadata={
            "lockgate.kind": "monitor-report",
            "lockgate.model": model_name,
            "lockgate.status": str(summary.get("status", "")),
            "lockgate.inference_commit": str((cursor or {}).get("inference_commit", "")),
        },
        client=client,
    )
    return {**paths, "commit": commit_id, "repository": repository}


def cursor_path(model_name: str) -> str:
    return f"{STATE_PREFIX}{model_name}.json"


def read_cursor(
    client: lakefs.Client, model_name: str, *, repository: str = MONITORING_REPOSITORY
) -> dict[str, Any] | None:
    """Where the last published monitor run of ``model_name`` stopped reading; None before the first."""
    try:
        return json.loads(
            versioning.read_object(repository, ref="main", path=cursor_path(model_name), client=client)
        )
    except (RepositoryNotFoundError, RefNotFoundError, ObjectNotFoundError):
        return None


@dataclass(frozen=True)
class StoredReport:
    """One published monitor report: ``reports/<model>/<run>/`` at a commit of the monitoring repository.

    Attributes:
        repository: The monitoring repository.
        commit: The commit the report is read at (pinned, so the paths below never change).
        model: The monitored model.
        run: The run's name (``report_run_name``: its UTC time first, so names sort by time).
    """

    repository: str
    commit: str
    model: str
    run: str

    @property
    def folder(self) -> str:
        return f"{REPORTS_PREFIX}{self.model}/{self.run}/"

    @property
    def report_path(self) -> str:
        return f"{self.folder}{REPORT_FILE}"

    @property
    def summary_path(self) -> str:
        return f"{self.folder}{SUMMARY_FILE}"

    @property
    def uri(self) -> str:
        """Where the HTML report is, as ``lockgate monitor`` prints it."""
        return versioning.object_uri(self.repository, self.commit, self.report_path)


def list_reports(
    client: lakefs.Client, model_name: str, *, ref: str = "main", repository: str = MONITORING_REPOSITORY
) -> list[StoredReport]:
    """Every published report of ``model_name`` at ``ref``, oldest first; none before the first run.

    Args:
        client: The lakeFS client to use.
        model_name: The monitored model.
        ref: Where to look (pinned to its commit first).
        repository: The monitoring repository.
    """
    try:
        commit = versioning.resolve_ref(repository, ref, client=client)
    except (RepositoryNotFoundError, RefNotFoundError):
        return []
    folder = f"{REPORTS_PREFIX}{model_name}/"
    paths = versioning.list_objects(
        repository, ref=commit, prefix=folder, suffix=f"/{SUMMARY_FILE}", client=client
    )
    runs = {path.removeprefix(folder).split("/")[0] for path in paths}
    return [StoredReport(repository, commit, model_name, run) for run in sorted(runs)]


def latest_report(
    client: lakefs.Client, model_name: str, *, repository: str = MONITORING_REPOSITORY
) -> StoredReport:
    """The newest published report of ``model_name`` on ``main``.

    Raises:
        ObjectNotFoundError: no monitor run of ``model_name`` published a report yet.
    """
    reports = list_reports(client, model_name, repository=repository)
    if not reports:
        raise ObjectNotFoundError(
            f"no monitor report of model {model_name!r} in "
            f"{versioning.object_uri(repository, 'main', f'{REPORTS_PREFIX}{model_name}/')}: run "
            f"`lockgate monitor --model-name {model_name}` first (a pass with no new traffic publishes none)"
        )
    return reports[-1]


def report_at(client: lakefs.Client, *, repository: str, ref: str, path: str) -> StoredReport:
    """The report whose folder ``path`` is in (``report.html``, ``summary.json`` or the folder itself),
    pinned to the commit ``ref`` points at.

    Raises:
        InvalidInputError: ``path`` is not inside a report folder ``reports/<model>/<run>/``.
        ObjectNotFoundError: no report is stored there.
        RefNotFoundError / RepositoryNotFoundError: as ``resolve_ref``.
    """
    model, _, rest = path.removeprefix(REPORTS_PREFIX).partition("/")
    run = rest.split("/")[0]
    if not path.startswith(REPORTS_PREFIX) or not model or not run:
        raise InvalidInputError(
            f"{path!r} is not in a monitor report's folder: that looks like "
            f"{REPORTS_PREFIX}<model>/<run>/{REPORT_FILE}"
        )
    report = StoredReport(repository, versioning.resolve_ref(repository, ref, client=client), model, run)
    if not versioning.object_exists(repository, ref=report.commit, path=report.summary_path, client=client):
        raise ObjectNotFoundError(
            f"no monitor report at {versioning.object_uri(repository, ref, report.folder)}: "
            f"`lockgate report show --model {model}` finds the latest"
        )
    return report


def read_report_summary(client: lakefs.Client, report: StoredReport) -> MonitorSummary:
    """The run's summary as ``summary.json`` stores it, with ``report`` set to where the HTML is.

    Raises:
        DataFormatError: ``summary.json`` is not a monitor summary.
    """
    from tasks.monitoring.run import MonitorSummary  # run imports this module

    payload = versioning.read_object(
        report.repository, ref=report.commit, path=report.summary_path, client=client
    )
    try:
        stored = json.loads(payload)
    except ValueError as error:
        raise DataFormatError(f"{report.summary_path} is not JSON ({error})") from error
    if not isinstance(stored, dict) or not {"model", "status"} <= stored.keys():
        raise DataFormatError(f"{report.summary_path} is not a monitor summary (no model and status)")
    known = {field.name for field in fields(MonitorSummary)}
    values = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in stored.items()
        if key in known
    }
    return MonitorSummary(**{**values, "report": report.uri})


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _html_table(rows: Sequence[Mapping[str, Any]], *, alarm_key: str, alarm_value: str) -> str:
    if not rows:
        return "<p>Nothing to show.</p>"
    keys = list(rows[0].keys())
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = []
    for row in rows:
        cls = ' class="alarm"' if row.get(alarm_key) == alarm_value else ""
        cells = "".join(f"<td>{html.escape(_cell(row.get(k)))}</td>" for k in keys)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)
