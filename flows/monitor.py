"""``monitor_flow``: what the live model saw since the last run, judged against what it was trained for.

Each run reads the inference-log objects added to ``lockgate-inference`` since the commit its last
report stopped at (a lakeFS diff), and compares the answered records with the reference sample kept
with the champion (its holdout, with the champion's own probabilities):

- drift per feature (KS / chi-squared, Benjamini-Hochberg across tests, PSI as effect size), one
  multivariate MMD permutation test, prediction drift and the outlier rate (``tasks.drift``);
- service levels per version from the logged latency and status of every request (p99 latency,
  error rate, throughput);
- quality, when outcome labels for logged request IDs arrived (``lockgate labels``).

The HTML report (per-feature plots, tables) and a JSON summary go to ``lockgate-monitoring`` in one
commit together with the monitor's cursor, so a failed run re-reads the same window next time. Drift
or degraded quality emits ``lockgate.drift.detected``, a breached SLO ``lockgate.slo.breached``, with
the evidence in the payload; Prefect automations start ``retrain_flow`` from there. No new rows is a
no-op report; too few rows is "insufficient data", and those rows are kept for the next window.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from contracts.slo import SLOThresholds, monitor_slo
from infra.clients import make_lakefs_client
from infra.errors import ModelNotFoundError
from infra.settings import LakeFSSettings
from tasks import monitoring, registry
from tasks.datasets import dataset_for_repository
from tasks.drift import DriftConfig, detect_drift

DRIFT_EVENT = "lockgate.drift.detected"
SLO_EVENT = "lockgate.slo.breached"


class MonitorParameters(BaseModel):
    """What to watch and what counts as a problem."""

    model_name: str = Field(
        "loans-mlp",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        description="Model whose champion is watched.",
    )
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift tests and their alpha.")
    slo: SLOThresholds = Field(default_factory=monitor_slo, description="Service levels per version.")
    max_quality_drop: float = Field(
        0.05, ge=0, le=1, description="Live ROC AUC this far below the champion's holdout AUC is drift."
    )
    min_labels: int = Field(100, ge=1, description="Fewest matched labels per version to judge quality.")
    label_lookback_days: int = Field(
        7, ge=0, le=366, description="How far back labels are matched to answers."
    )
    metrics_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus /metrics endpoints of the serving cluster (Ray's metrics export, one per "
        "node): SLOs then come from the serving metrics since the last run; empty: from the inference log.",
    )
    from_start: bool = Field(False, description="Ignore the cursor and read every logged row again.")
    emit_events: bool = Field(True, description="Emit drift / SLO events (automations react to them).")


@flow(name="monitor", description="Drift, outliers, quality and SLOs of the live model; report and events.")
def monitor_flow(parameters: MonitorParameters) -> dict[str, Any]:
    """Check ``parameters.model_name``'s live traffic since the last run."""
    logger = get_run_logger()
    started = time.perf_counter()
    client = make_lakefs_client(LakeFSSettings())
    name = parameters.model_name
    try:
        card = registry.show_model(name, "champion", client=client)
    except ModelNotFoundError as error:
        return _no_op(name, f"no champion of {name!r} to monitor yet ({error})")
    cursor = None if parameters.from_start else monitoring.read_cursor(client, name)
    since = (cursor or {}).get("inference_commit")
    head = monitoring.inference_head(client)
    if head is None:
        return _no_op(name, "nothing has been logged yet (no inference repository or no commit)")
    if head == since:
        return _no_op(name, f"no new inference-log commits since {since[:12]}")
    window = monitoring.read_window(client, since_commit=since, until_commit=head)
    answered = monitoring.answered_rows(window.rows, name)
    if answered.empty and window.labels.empty:
        return _no_op(
            name, f"no new answered requests of {name!r} since {since[:12] if since else 'the start'}"
        )

    spec = dataset_for_repository(card.data_repository)
    numeric, categorical = list(spec.numeric_columns), list(spec.categorical_columns)
    reference, reference_note = _reference(name, card.version, client)
    current = monitoring.current_features(
        window.rows, model_name=name, champion_version=card.version, features=[*numeric, *categorical]
    )
    # A champion registered without a reference sample (by hand, or by an older lockgate) still gets its
    # SLOs and quality judged; drift is reported as not tested, never as "ok".
    report = (
        detect_drift(
            reference,
            current,
            numeric=numeric,
            categorical=categorical,
            prediction=monitoring.PREDICTION_COLUMN,
            config=parameters.drift,
        )
        if reference is not None
        else None
    )
    slo, metrics, slo_note = _slo(parameters, window, cursor)
    quality = _quality(parameters, window, card, client)
    breached = [row for row in slo if row["status"] == "breached"]
    drift_status = report.status if report is not None else "drift not tested"
    drifted = bool(report is not None and report.any_drift) or quality["degraded"]
    status = "drift" if drifted else ("breached" if breached else drift_status)
    if drift_status == "insufficient data" and not drifted and not breached:
        status = "insufficient data"

    run_name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{str(flow_run.id)[:8] if flow_run.id else 'local'}"
    summary = {
        "model": name,
        "champion": card.version,
        "status": status,
        "requests": int(answered["request_id"].nunique()) if not answered.empty else 0,
        "records": len(current),
        "reference_records": len(reference) if reference is not None else 0,
        "from_commit": since or "(start)",
        "to_commit": head,
        "log_files": len(window.log_files),
        "label_files": len(window.label_files),
        "drifted_features": report.drifted_features if report else [],
        "prediction_drift": bool(report and report.prediction and report.prediction.drifted),
        "multivariate_drift": bool(report and report.multivariate and report.multivariate.drifted),
        "outlier_rate": report.outliers.rate if report and report.outliers else None,
        "quality": quality["status"],
        "slo_breaches": [f"{row['version']}: {b}" for row in breached for b in row["breaches"]],
        "alpha": parameters.drift.alpha,
        "correction": parameters.drift.correction,
        "slo": slo,
        "slo_source": slo[0]["source"] if slo else ("serving metrics" if metrics else "inference log"),
        "notes": [*(report.notes if report else [reference_note]), *([slo_note] if slo_note else [])],
    }
    tests = monitoring.drift_table(report) if report is not None else []
    plots = (
        monitoring.feature_plots(reference, current, numeric=numeric, categorical=categorical)
        if reference is not None
        else {}
    )
    page = monitoring.render_report(
        title=f"lockgate monitor: {name} {card.version}",
        summary=summary,
        tests=tests,
        slo=slo,
        quality=quality,
        plots=plots,
    )
    # Too few rows: keep the cursor where it is, so they are tested together with the next ones.
    keep_window = status == "insufficient data"
    cursor_out = None if keep_window else {"inference_commit": head, "at": datetime.now(UTC).isoformat()}
    if cursor_out is not None and metrics is not None:
        cursor_out["metrics"] = metrics
    stored = monitoring.publish_report(
        client, model_name=name, run_name=run_name, report_html=page, summary=summary, cursor=cursor_out
    )
    location = f"lakefs://{stored['repository']}/{stored['commit']}/{stored['report']}"
    summary["report"] = location
    summary["seconds"] = round(time.perf_counter() - started, 3)
    _artifacts(name, summary, tests, slo, quality, plots, stored, client)
    evidence = {
        "model": name,
        "champion": card.version,
        "window": {"from_commit": since, "to_commit": head, "records": len(current)},
        "report": location,
    }
    if parameters.emit_events and drifted:
        emit_event(
            event=DRIFT_EVENT,
            resource=_resource(name, card.version),
            payload={
                **evidence,
                "drifted_features": {
                    row["check"]: {"p_value": row["adjusted_p"], "psi": row["psi"]}
                    for row in tests
                    if row["result"] == "DRIFT"
                },
                "quality": quality,
            },
        )
    if parameters.emit_events and breached:
        emit_event(
            event=SLO_EVENT, resource=_resource(name, card.version), payload={**evidence, "slo": breached}
        )
    logger.info(
        "%s %s: %s (%d record(s), drifted: %s) -> %s",
        name,
        card.version,
        status,
        len(current),
        ", ".join(summary["drifted_features"]) or "none",
        location,
    )
    return summary


def _slo(parameters: MonitorParameters, window, cursor) -> tuple[list[dict], dict | None, str]:
    """SLO figures from the serving metrics when endpoints are given (and answer), else from the log."""
    if parameters.metrics_urls:
        try:
            metrics = monitoring.scrape_serving_metrics(
                parameters.metrics_urls, model_name=parameters.model_name
            )
        except OSError as error:
            note = f"{error}; SLOs from the inference log instead"
            get_run_logger().warning(note)
        else:
            previous = (cursor or {}).get("metrics")
            return monitoring.slo_from_metrics(previous, metrics, slo=parameters.slo), metrics, ""
    else:
        note = ""
    return (
        monitoring.slo_figures(window.rows, model_name=parameters.model_name, slo=parameters.slo),
        None,
        note,
    )


def _reference(name: str, version: str, client):
    """The champion's reference sample, or None and why not."""
    import io

    import pandas as pd

    try:
        payload = registry.read_artifact(name, version, registry.REFERENCE_ARTIFACT, client=client)
    except ModelNotFoundError as error:
        get_run_logger().warning("drift not tested: %s", error)
        return None, f"drift not tested: {error} (retrain to store one)"
    return pd.read_parquet(io.BytesIO(payload)), ""


def _quality(parameters: MonitorParameters, window, card, client) -> dict[str, Any]:
    if window.labels.empty:
        return {"status": "no labels", "labels": 0, "matched": 0, "versions": [], "degraded": False}
    logged = monitoring.read_recent_logs(
        client,
        ref=window.until_commit,
        days=parameters.label_lookback_days,
        columns=[
            "request_id",
            "record_index",
            "model_name",
            "model_version",
            "shadow",
            "status",
            "probability",
        ],
    )
    return monitoring.label_quality(
        window.labels,
        logged,
        model_name=parameters.model_name,
        reference_metrics=(card.metrics or {}).get("holdout"),
        max_drop=parameters.max_quality_drop,
        min_labels=parameters.min_labels,
    )


def _resource(name: str, version: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"lockgate.model.{name}",
        "lockgate.model": name,
        "lockgate.version": version,
    }


def _no_op(name: str, reason: str) -> dict[str, Any]:
    get_run_logger().info("monitor %s: %s", name, reason)
    create_markdown_artifact(
        key=f"monitor-{_key(name)}-summary",
        markdown=f"### Monitor {name}: nothing to check\n\n{reason}.",
        description=f"Latest monitor run of {name}",
    )
    return {"model": name, "status": "no data", "reason": reason}


def _artifacts(name, summary, tests, slo, quality, plots, stored, client) -> None:
    key = _key(name)
    alarms = [row["check"] for row in tests if row["result"] == "DRIFT"]
    lines = [
        f"### Monitor {name} {summary['champion']}: **{summary['status']}**",
        "",
        f"{summary['records']} answered record(s) from {summary['log_files']} log file(s), "
        f"inference commits `{summary['from_commit'][:12]}`..`{summary['to_commit'][:12]}`.",
        "",
        f"- drift: {', '.join(alarms) or ('none' if tests else 'not tested (no reference sample)')}",
        f"- quality from labels: {summary['quality']}",
        f"- SLO breaches: {'; '.join(summary['slo_breaches']) or 'none'}",
        f"- full report (HTML with every plot): `{summary['report']}`",
    ]
    shown = [n for n in [*alarms, monitoring.PREDICTION_COLUMN] if n in plots][:4]
    for plot in shown:
        lines += ["", f"![{plot}](data:image/png;base64,{base64.b64encode(plots[plot]).decode()})"]
    create_markdown_artifact(
        key=f"monitor-{key}-summary", markdown="\n".join(lines), description=f"Latest monitor run of {name}"
    )
    if tests:
        create_table_artifact(
            key=f"monitor-{key}-tests", table=tests, description="Every drift test of the run"
        )
    if slo:
        create_table_artifact(
            key=f"monitor-{key}-slo",
            table=[{**row, "breaches": "; ".join(row["breaches"])} for row in slo],
            description="Service levels per version",
        )
    link = (
        f"{client.config.host.rstrip('/')}/repositories/{stored['repository']}/refs/"
        f"{stored['commit']}/objects?path={stored['report']}"
    )
    create_link_artifact(
        key=f"monitor-{key}-report",
        link=link,
        link_text=f"HTML report in lakeFS ({stored['repository']}/{stored['report']})",
        description="Per-feature plots, reference vs current (lakeFS credentials needed)",
    )
    if quality.get("versions"):
        create_table_artifact(
            key=f"monitor-{key}-quality", table=quality["versions"], description="Quality from outcome labels"
        )


def _key(name: str) -> str:
    """Artifact keys: lower-case letters, digits and dashes."""
    return name.lower().replace("_", "-")
