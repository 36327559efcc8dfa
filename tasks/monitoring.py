"""Monitoring: what the live model saw since the last check, compared with what it was trained for.

Plain functions, wired by ``flows.monitor``:

- ``read_window`` reads the inference-log (and label) objects added between two commits of the
  inference repository — a lakeFS diff, so each row is looked at once.
- ``current_features`` / ``slo_figures`` / ``label_quality`` turn the rows into what is judged:
  feature and prediction samples, latency / error rate / throughput per version, and quality on
  rows whose outcomes arrived.
- ``render_report`` draws a self-contained HTML report (per-feature reference vs current plots,
  tables); ``publish_report`` stores it with its JSON summary and the monitor's cursor in one
  commit of the monitoring repository, so the cursor only moves when the report exists.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import lakefs
import matplotlib
import numpy as np
import pandas as pd
from lakefs.exceptions import NotFoundException

from contracts.slo import SLOThresholds
from tasks.drift import DriftReport, FeatureDrift
from tasks.evaluation import evaluate_predictions
from tasks.feedback import INFERENCE_REPOSITORY, LABELS_PREFIX, LOG_PREFIX, read_parquet_objects
from tasks.versioning import (
    commit_changes,
    default_storage_namespace,
    diff_refs,
    ensure_repository,
    upload_file,
)

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the file-only backend)

MONITORING_REPOSITORY = "lockgate-monitoring"
REPORTS_PREFIX = "reports/"
STATE_PREFIX = "state/"
PREDICTION_COLUMN = "probability"
_PLOT_SAMPLE = 20_000
_PNG_METADATA = {"Software": None}


@dataclass
class LogWindow:
    """Inference-log rows and labels added between two commits of the inference repository."""

    since_commit: str | None
    until_commit: str
    rows: pd.DataFrame
    labels: pd.DataFrame
    log_files: list[str] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------------------


def inference_head(client: lakefs.Client, *, repository: str = INFERENCE_REPOSITORY) -> str | None:
    """The commit ``main`` of the inference repository points at; None before anything was logged."""
    try:
        return lakefs.Reference(repository, "main", client=client).get_commit().id
    except NotFoundException:
        return None


def read_window(
    client: lakefs.Client,
    *,
    since_commit: str | None,
    until_commit: str,
    repository: str = INFERENCE_REPOSITORY,
) -> LogWindow:
    """Rows logged (and labels stored) after ``since_commit`` up to ``until_commit``.

    ``since_commit`` None reads everything at ``until_commit``. Objects are only ever added under
    ``logs/`` and ``labels/``; a changed object is read again, a removed one ignored.
    """
    if since_commit is None:
        reference = lakefs.Reference(repository, until_commit, client=client)
        logs = sorted(o.path for o in reference.objects(prefix=LOG_PREFIX) if o.path.endswith(".parquet"))
        labels = sorted(
            o.path for o in reference.objects(prefix=LABELS_PREFIX) if o.path.endswith(".parquet")
        )
    else:
        changes = diff_refs(repository, left_ref=since_commit, right_ref=until_commit, client=client)
        fresh = [c.path for c in changes if c.type in ("added", "changed") and c.path.endswith(".parquet")]
        logs = [p for p in fresh if p.startswith(LOG_PREFIX)]
        labels = [p for p in fresh if p.startswith(LABELS_PREFIX)]
    rows = read_parquet_objects(repository, until_commit, logs, client=client)
    label_rows = read_parquet_objects(repository, until_commit, labels, client=client)
    return LogWindow(
        since_commit=since_commit,
        until_commit=until_commit,
        rows=rows if rows is not None else pd.DataFrame(),
        labels=label_rows if label_rows is not None else pd.DataFrame(),
        log_files=logs,
        label_files=labels,
    )


def read_recent_logs(
    client: lakefs.Client,
    *,
    ref: str,
    days: int,
    columns: Sequence[str],
    now: datetime | None = None,
    repository: str = INFERENCE_REPOSITORY,
) -> pd.DataFrame:
    """``columns`` of every row logged in the last ``days`` days (by date partition), for label joins."""
    today = (now or datetime.now(UTC)).date()
    reference = lakefs.Reference(repository, ref, client=client)
    frames = []
    for offset in range(days + 1):
        prefix = f"{LOG_PREFIX}date={today - timedelta(days=offset):%Y-%m-%d}/"
        for item in reference.objects(prefix=prefix):
            if item.path.endswith(".parquet"):
                with reference.object(item.path).reader(mode="rb") as reader:
                    frame = pd.read_parquet(io.BytesIO(reader.read()))
                frames.append(frame[[c for c in columns if c in frame.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def answered_rows(rows: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """Rows of ``model_name`` a client got an answer from (not shadow copies, not failures)."""
    if rows.empty:
        return rows
    mine = rows[rows["model_name"] == model_name]
    return mine[(~mine["shadow"].astype(bool)) & (mine["status"] == "ok")]


def current_features(
    rows: pd.DataFrame, *, model_name: str, champion_version: str, features: Sequence[str]
) -> pd.DataFrame:
    """The feature columns of every answered record, and the champion's probability where it answered.

    Records answered by another version (a challenger mid-rollout) keep their features but get no
    probability, so prediction drift compares the champion with its own reference only.
    """
    answered = answered_rows(rows, model_name)
    if answered.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in [*features, PREDICTION_COLUMN]})
    columns = {
        name: answered[name] if name in answered else answered.get(f"feature_{name}") for name in features
    }
    missing = [name for name, values in columns.items() if values is None]
    if missing:
        raise ValueError(f"the inference log has no column(s) {missing} for model {model_name!r}")
    current = pd.DataFrame(columns, index=answered.index)
    probability = answered[PREDICTION_COLUMN].astype("float64")
    current[PREDICTION_COLUMN] = probability.where(answered["model_version"] == champion_version)
    return current.reset_index(drop=True)


# -- SLOs and quality -----------------------------------------------------------------------------


def slo_figures(rows: pd.DataFrame, *, model_name: str, slo: SLOThresholds) -> list[dict[str, Any]]:
    """Latency, error rate and throughput per live version over the window, judged against ``slo``.

    A request is one ``request_id`` (its records share latency and outcome); shadow copies are left
    out, they answer no client.
    """
    if rows.empty:
        return []
    mine = rows[(rows["model_name"] == model_name) & (~rows["shadow"].astype(bool))]
    figures = []
    for version, group in mine.groupby("model_version", sort=True):
        requests = group.drop_duplicates("request_id")
        count = len(requests)
        times = pd.to_datetime(requests["time"], utc=True)
        span_s = max((times.max() - times.min()).total_seconds(), 1.0)
        errors = int((requests["status"] != "ok").sum())
        p99 = float(np.percentile(requests["latency_ms"].to_numpy(dtype=float), 99))
        row = {
            "version": str(version),
            "requests": count,
            "p99_latency_ms": round(p99, 2),
            "error_rate": round(errors / count, 6),
            "throughput_rps": round(count / span_s, 3),
            "window_s": round(span_s, 1),
            "breaches": [],
            "source": "inference log",
        }
        figures.append(_judged(row, slo, p99_ms=p99, errors=errors, throughput_rps=count / span_s))
    return figures


def _judged(
    row: dict[str, Any],
    slo: SLOThresholds,
    *,
    p99_ms: float | None,
    errors: int,
    throughput_rps: float | None,
) -> dict[str, Any]:
    """``row`` with its ``status`` and ``breaches``: too few requests is "insufficient data"."""
    if row["requests"] < slo.min_requests:
        row["status"] = "insufficient data"
        return row
    row["breaches"] = slo.breaches(
        p99_ms=p99_ms, errors=errors, requests=row["requests"], throughput_rps=throughput_rps
    )
    row["status"] = "breached" if row["breaches"] else "ok"
    return row


REQUESTS_METRIC = "ray_lockgate_requests_total"
LATENCY_METRIC = "ray_lockgate_request_latency_ms"


def scrape_serving_metrics(urls: Sequence[str], *, model_name: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """A snapshot of ``model_name``'s serving metrics from Prometheus ``/metrics`` endpoints (Ray's
    metrics export, one per node; their counts are summed): per model version, requests by outcome
    and the latency histogram. Shadow copies are left out. Raises ``OSError`` naming an unreachable
    URL."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    versions: dict[str, dict[str, Any]] = {}

    def entry(version: str) -> dict[str, Any]:
        return versions.setdefault(version, {"ok": 0.0, "error": 0.0, "buckets": {}, "count": 0.0})

    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                text = response.read().decode()
        except OSError as error:
            raise OSError(f"serving metrics at {url} unreachable: {error}") from error
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if labels.get("model_name") != model_name or labels.get("role") == "shadow":
                    continue
                if sample.name == REQUESTS_METRIC:
                    outcome = "ok" if labels.get("outcome") == "ok" else "error"
                    entry(labels["model_version"])[outcome] += sample.value
                elif sample.name == f"{LATENCY_METRIC}_bucket":
                    buckets = entry(labels["model_version"])["buckets"]
                    buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + sample.value
    return {"at": datetime.now(UTC).isoformat(), "versions": versions}


def histogram_quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """The ``q`` quantile of a cumulative Prometheus histogram (``le`` -> count), interpolated linearly
    inside its bucket as PromQL's ``histogram_quantile`` does; None when it holds nothing."""
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the largest finite bucket: its upper edge, as PromQL does
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def slo_from_metrics(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any], *, slo: SLOThresholds
) -> list[dict[str, Any]]:
    """SLO figures per version from the change of the serving metrics between two snapshots.

    Without a previous snapshot (the first run) the counts are everything since the serving
    processes started and throughput is not judged. A counter that went down (the cluster restarted)
    counts from zero, as Prometheus's ``rate`` does.
    """
    before = (previous or {}).get("versions", {})
    seconds = None
    if previous:
        seconds = (
            datetime.fromisoformat(current["at"]) - datetime.fromisoformat(previous["at"])
        ).total_seconds()
    rows = []
    for version, now in sorted(current["versions"].items()):
        old = before.get(version, {})
        reset = any(now[k] < old.get(k, 0.0) for k in ("ok", "error"))
        base = {} if reset else old
        ok, errors = now["ok"] - base.get("ok", 0.0), now["error"] - base.get("error", 0.0)
        buckets = {le: count - base.get("buckets", {}).get(le, 0.0) for le, count in now["buckets"].items()}
        requests = int(round(ok + errors))
        if requests == 0:
            continue
        p99 = histogram_quantile(0.99, buckets)
        throughput = requests / seconds if seconds and seconds > 0 else None
        row = {
            "version": version,
            "requests": requests,
            "p99_latency_ms": None if p99 is None else round(p99, 2),
            "error_rate": round(errors / requests, 6),
            "throughput_rps": None if throughput is None else round(throughput, 3),
            "window_s": None if seconds is None else round(seconds, 1),
            "breaches": [],
            "source": "serving metrics",
        }
        rows.append(_judged(row, slo, p99_ms=p99, errors=int(round(errors)), throughput_rps=throughput))
    return rows


def label_quality(
    labels: pd.DataFrame,
    logged: pd.DataFrame,
    *,
    model_name: str,
    reference_metrics: Mapping[str, Any] | None,
    max_drop: float,
    min_labels: int,
) -> dict[str, Any]:
    """Holdout-style metrics on answered records whose outcomes arrived, per version.

    ``reference_metrics`` are the champion's holdout metrics (model card): quality counts as degraded
    when the live ROC AUC of a version is more than ``max_drop`` below them.
    """
    result: dict[str, Any] = {"labels": int(len(labels)), "matched": 0, "versions": [], "degraded": False}
    if labels.empty:
        result["status"] = "no labels"
        return result
    answered = answered_rows(logged, model_name)
    keyed = answered[["request_id", "record_index", "model_version", PREDICTION_COLUMN]]
    joined = labels.merge(keyed, on=["request_id", "record_index"], how="inner")
    result["matched"] = int(len(joined))
    result["unmatched"] = int(len(labels) - len(joined))
    baseline = (reference_metrics or {}).get("roc_auc")
    for version, group in joined.groupby("model_version", sort=True):
        entry: dict[str, Any] = {"version": str(version), "labels": int(len(group))}
        if len(group) < min_labels:
            entry["status"] = "insufficient data"
        else:
            metrics = evaluate_predictions(
                group["outcome"].to_numpy(), group[PREDICTION_COLUMN].to_numpy(dtype="float64")
            )
            entry.update(
                {k: v for k, v in metrics.to_dict().items() if k in ("roc_auc", "accuracy", "brier_score")}
            )
            entry["reference_roc_auc"] = baseline
            drop = None if (baseline is None or metrics.roc_auc is None) else baseline - metrics.roc_auc
            entry["roc_auc_drop"] = drop
            entry["status"] = "degraded" if drop is not None and drop > max_drop else "ok"
            result["degraded"] = result["degraded"] or entry["status"] == "degraded"
        result["versions"].append(entry)
    result["status"] = "degraded" if result["degraded"] else ("ok" if result["versions"] else "no matches")
    return result


# -- the report ------------------------------------------------------------------------------------


def plot_feature(
    reference: pd.Series, current: pd.Series, *, name: str, categorical: bool, seed: int = 0
) -> bytes:
    """PNG of one feature: reference vs current, as share histograms (numeric) or bars (codes)."""
    ref = reference.dropna()
    cur = current.dropna()
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
    import tempfile
    from pathlib import Path

    namespace = default_storage_namespace(repository, client=client)
    ensure_repository(repository, storage_namespace=namespace, client=client)
    folder = f"{REPORTS_PREFIX}{model_name}/{run_name}/"
    paths = {"report": f"{folder}report.html", "summary": f"{folder}summary.json"}
    with tempfile.TemporaryDirectory(prefix="lockgate-monitor-") as tmp:
        files = {
            paths["report"]: (report_html, "text/html"),
            paths["summary"]: (json.dumps(summary, indent=2, default=str), "application/json"),
        }
        if cursor is not None:
            files[cursor_path(model_name)] = (json.dumps(cursor, indent=2), "application/json")
        for index, (path, (text, content_type)) in enumerate(files.items()):
            local = Path(tmp) / f"{index}"
            local.write_text(text, encoding="utf-8")
            upload_file(
                local,
                repository=repository,
                branch="main",
                path=path,
                client=client,
                content_type=content_type,
            )
    commit_id = commit_changes(
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
        reference = lakefs.Reference(repository, "main", client=client)
        with reference.object(cursor_path(model_name)).reader(mode="rb") as reader:
            return json.loads(reader.read())
    except NotFoundException:
        return None


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
