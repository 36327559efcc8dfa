"""``run_monitor``: what the live model saw since the last run, judged against what it was trained for.

Each run reads the inference-log objects added to the inference repository since the commit its last
report stopped at, and compares the answered records with the reference sample kept with the champion
(its holdout, with the champion's own probabilities): drift per feature, one multivariate test,
prediction drift and the outlier rate (``tasks.drift``); service levels per version (from the serving
metrics when endpoints are given, else from the log); quality when outcome labels arrived.

``assess_window`` turns those findings into the verdict and the cursor policy (pure). The HTML report
and a JSON summary go to the monitoring repository in one commit together with the cursor, so a failed
run re-reads the same window next time. Drift or degraded quality publishes
``lockgate.drift.detected``, a breached SLO ``lockgate.slo.breached``, with the evidence in the
payload. No new data is a no-op report; too few rows is "insufficient data", and those rows are kept
for the next window.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, Field, field_validator

from contracts.inference_log import (
    LABEL_JOIN_COLUMNS,
    PREDICTION_COLUMN,
    answered_rows,
    current_features,
    feature_column,
)
from contracts.slo import SLOThresholds, monitor_slo
from infra.errors import ModelNotFoundError
from infra.naming import MODEL_NAME_PATTERN
from infra.settings import model_name_from_settings
from tasks import events, publishing, registry, versioning
from tasks.clock import Clock
from tasks.datasets import dataset_of_card
from tasks.drift import DriftConfig, DriftReport, detect_drift
from tasks.monitoring import report as reporting
from tasks.monitoring.quality import label_quality
from tasks.monitoring.service_levels import scrape_serving_metrics, slo_figures, slo_from_metrics
from tasks.monitoring.window import LogWindow, inference_head, read_recent_logs, read_window
from tasks.problems import Problem
from tasks.publishing import Publisher

if TYPE_CHECKING:
    import lakefs

logger = logging.getLogger(__name__)

Scrape = Callable[..., dict[str, Any]]


class MonitorParameters(BaseModel):
    """What to watch and what counts as a problem."""

    model_name: str = Field(
        default_factory=model_name_from_settings,
        pattern=MODEL_NAME_PATTERN,
        description="Model whose champion is watched; unset: LOCKGATE_MODEL_NAME (or '<dataset>-mlp' of "
        "LOCKGATE_DATASET).",
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

    @field_validator("slo", mode="before")
    @classmethod
    def _monitor_defaults(cls, value: object) -> SLOThresholds:
        # Partial thresholds fill from the monitor's defaults (500 ms p99, 50 requests), not the rollout's.
        return monitor_slo(value)


@dataclass(frozen=True)
class MonitorVerdict:
    """What a window amounts to, and whether the cursor may move past it."""

    status: str  # drift | breached | ok | insufficient data | drift not tested
    drifted: bool
    breached: tuple[dict[str, Any], ...]
    keep_window: bool  # too few rows: judge them again with the next ones


def assess_window(
    drift: DriftReport | None, slo: Sequence[dict[str, Any]], quality: dict[str, Any]
) -> MonitorVerdict:
    """The verdict on one window from its drift report (``None``: not tested), SLO rows and quality.

    Drift (of inputs, predictions, or degraded quality from labels) outranks an SLO breach; a window
    with too few rows and nothing else wrong is "insufficient data" and keeps the cursor where it is.
    """
    breached = tuple(row for row in slo if row["status"] == "breached")
    drift_status = drift.status if drift is not None else "drift not tested"
    drifted = bool(drift is not None and drift.any_drift) or bool(quality.get("degraded"))
    status = "drift" if drifted else ("breached" if breached else drift_status)
    insufficient = drift_status == "insufficient data" and not drifted and not breached
    if insufficient:
        status = "insufficient data"
    return MonitorVerdict(status=status, drifted=drifted, breached=breached, keep_window=insufficient)


@dataclass(frozen=True)
class MonitorSummary:
    """One monitor run, as the flow returns it, the CLI prints it and ``summary.json`` stores it."""

    model: str
    status: str
    reason: str = ""
    champion: str | None = None
    requests: int = 0
    records: int = 0
    reference_records: int = 0
    from_commit: str = "(start)"
    to_commit: str = ""
    log_files: int = 0
    label_files: int = 0
    drifted_features: tuple[str, ...] = ()
    prediction_drift: bool = False
    multivariate_drift: bool = False
    outlier_rate: float | None = None
    quality: str = "no labels"
    slo_breaches: tuple[str, ...] = ()
    alpha: float | None = None
    correction: str | None = None
    slo: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    slo_source: str = "inference log"
    notes: tuple[str, ...] = ()
    report: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


def report_run_name(now: datetime, run_id: str | None) -> str:
    """``20261201T120000Z-1a2b3c4d``: when, and which run (``local`` outside Prefect)."""
    return f"{now:%Y%m%dT%H%M%SZ}-{run_id[:8] if run_id else 'local'}"


def run_monitor(
    parameters: MonitorParameters,
    *,
    client: lakefs.Client,
    inference_repository: str,
    publish: Publisher,
    clock: Clock,
    run_name: str,
    scrape: Scrape = scrape_serving_metrics,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> MonitorSummary:
    """Check ``parameters.model_name``'s live traffic since the last run.

    Args:
        parameters: The model, tests, thresholds and sources.
        client: lakeFS client (registry, inference and monitoring repositories).
        inference_repository: Where the serving app logs (``ServingSettings.inference_repository``).
        publish: Receives the summary, test, SLO, quality and link artifacts and the events.
        clock: Stamps the cursor and times the run.
        run_name: Names the report folder (``reports/<model>/<run_name>/``).
        scrape: Reads the serving metrics (``scrape_serving_metrics``).
        log: Where progress is logged.
    """
    started = clock.monotonic()
    name = parameters.model_name
    try:
        card = registry.show_model(name, "champion", client=client)
    except ModelNotFoundError as error:
        return _no_op(name, f"no champion of {name!r} to monitor yet ({error})", publish, log)
    cursor = None if parameters.from_start else reporting.read_cursor(client, name)
    since = (cursor or {}).get("inference_commit")
    head = inference_head(client, repository=inference_repository)
    if head is None:
        return _no_op(
            name, f"nothing has been logged yet (no commit in {inference_repository!r})", publish, log
        )
    if head == since:
        return _no_op(name, f"no new inference-log commits since {since[:12]}", publish, log)
    window = read_window(client, since_commit=since, until_commit=head, repository=inference_repository)
    answered = answered_rows(window.rows, name)
    if answered.empty and window.labels.empty:
        return _no_op(
            name,
            f"no new answered requests of {name!r} since {since[:12] if since else 'the start'}",
            publish,
            log,
        )

    spec = dataset_of_card(card)
    numeric, categorical = list(spec.numeric_columns), list(spec.categorical_columns)
    reference, reference_note = _reference(name, card.version, client, log)
    current = current_features(
        window.rows, model_name=name, champion_version=card.version, features=[*numeric, *categorical]
    )
    # A champion registered without a reference sample (by hand, or by an older lockgate) still gets its
    # SLOs and quality judged; drift is reported as not tested, never as "ok".
    drift = (
        detect_drift(
            reference,
            current,
            numeric=numeric,
            categorical=categorical,
            prediction=PREDICTION_COLUMN,
            config=parameters.drift,
            prediction_categorical=_task_of(card) == "multiclass",
        )
        if reference is not None
        else None
    )
    slo, metrics, slo_note = _service_levels(parameters, window, cursor, scrape, log)
    quality = _quality(parameters, window, card, client, inference_repository)
    verdict = assess_window(drift, slo, quality)

    summary = MonitorSummary(
        model=name,
        champion=card.version,
        status=verdict.status,
        requests=int(answered["request_id"].nunique()) if not answered.empty else 0,
        records=len(current),
        reference_records=len(reference) if reference is not None else 0,
        from_commit=since or "(start)",
        to_commit=head,
        log_files=len(window.log_files),
        label_files=len(window.label_files),
        drifted_features=tuple(drift.drifted_features) if drift else (),
        prediction_drift=bool(drift and drift.prediction and drift.prediction.drifted),
        multivariate_drift=bool(drift and drift.multivariate and drift.multivariate.drifted),
        outlier_rate=drift.outliers.rate if drift and drift.outliers else None,
        quality=quality["status"],
        slo_breaches=tuple(f"{row['version']}: {b}" for row in verdict.breached for b in row["breaches"]),
        alpha=parameters.drift.alpha,
        correction=parameters.drift.correction,
        slo=tuple(slo),
        slo_source=slo[0]["source"] if slo else ("serving metrics" if metrics else "inference log"),
        notes=(*(drift.notes if drift else [reference_note]), *([slo_note] if slo_note else [])),
    )
    tests = reporting.drift_table(drift) if drift is not None else []
    plots = (
        reporting.feature_plots(reference, current, numeric=numeric, categorical=categorical)
        if reference is not None
        else {}
    )
    page = reporting.render_report(
        title=f"lockgate monitor: {name} {card.version}",
        summary=_stored(summary),
        tests=tests,
        slo=slo,
        quality=quality,
        plots=plots,
    )
    cursor_out = None if verdict.keep_window else {"inference_commit": head, "at": clock.now().isoformat()}
    if cursor_out is not None and metrics is not None:
        cursor_out["metrics"] = metrics
    stored = reporting.publish_report(
        client,
        model_name=name,
        run_name=run_name,
        report_html=page,
        summary=_stored(summary),
        cursor=cursor_out,
    )
    location = f"lakefs://{stored['repository']}/{stored['commit']}/{stored['report']}"
    from dataclasses import replace

    summary = replace(summary, report=location, seconds=round(clock.monotonic() - started, 3))
    link = versioning.object_url(client, stored["repository"], stored["commit"], stored["report"])
    for artifact in monitor_artifacts(summary, tests, slo, quality, plots, link=link, stored=stored):
        publish.artifact(artifact)
    if parameters.emit_events:
        for event in monitor_events(summary, verdict, tests, quality, window=window):
            publish.event(event)
    log.info(
        "%s %s: %s (%d record(s), drifted: %s) -> %s",
        name,
        card.version,
        summary.status,
        summary.records,
        ", ".join(summary.drifted_features) or "none",
        location,
    )
    return summary


def monitor_events(
    summary: MonitorSummary,
    verdict: MonitorVerdict,
    tests: list[dict[str, Any]],
    quality: dict[str, Any],
    *,
    window: LogWindow,
) -> list[events.Event]:
    """``lockgate.drift.detected`` and ``lockgate.slo.breached`` with their evidence, as the verdict asks."""
    assert summary.champion is not None
    resource = events.model_resource(summary.model, summary.champion)
    evidence = {
        "model": summary.model,
        "champion": summary.champion,
        "window": {
            "from_commit": window.since_commit,
            "to_commit": window.until_commit,
            "records": summary.records,
        },
        "report": summary.report,
    }
    found = []
    if verdict.drifted:
        drifted = {
            row["check"]: {"p_value": row["adjusted_p"], "psi": row["psi"]}
            for row in tests
            if row["result"] == "DRIFT"
        }
        found.append(
            events.Event(
                events.DRIFT_DETECTED, resource, {**evidence, "drifted_features": drifted, "quality": quality}
            )
        )
    if verdict.breached:
        found.append(events.Event(events.SLO_BREACHED, resource, {**evidence, "slo": list(verdict.breached)}))
    return found


def monitor_artifacts(
    summary: MonitorSummary,
    tests: list[dict[str, Any]],
    slo: list[dict[str, Any]],
    quality: dict[str, Any],
    plots: dict[str, bytes],
    *,
    link: str,
    stored: dict[str, str],
) -> list[publishing.Artifact]:
    """What a person on call looks at: the summary with the drifted features' plots, the tables, a link."""
    name = summary.model
    alarms = [row["check"] for row in tests if row["result"] == "DRIFT"]
    lines = [
        f"### Monitor {name} {summary.champion}: **{summary.status}**",
        "",
        f"{summary.records} answered record(s) from {summary.log_files} log file(s), "
        f"inference commits `{summary.from_commit[:12]}`..`{summary.to_commit[:12]}`.",
        "",
        f"- drift: {', '.join(alarms) or ('none' if tests else 'not tested (no reference sample)')}",
        f"- quality from labels: {summary.quality}",
        f"- SLO breaches: {'; '.join(summary.slo_breaches) or 'none'}",
        f"- full report (HTML with every plot): `{summary.report}`",
    ]
    for plot in [n for n in [*alarms, PREDICTION_COLUMN] if n in plots][:4]:
        lines += ["", publishing.inline_png(plot, plots[plot])]
    published = [
        publishing.markdown(
            f"monitor-{name}-summary", "\n".join(lines), description=f"Latest monitor run of {name}"
        )
    ]
    if tests:
        published.append(
            publishing.table(f"monitor-{name}-tests", tests, description="Every drift test of the run")
        )
    if slo:
        published.append(
            publishing.table(
                f"monitor-{name}-slo",
                [{**row, "breaches": "; ".join(row["breaches"])} for row in slo],
                description="Service levels per version",
            )
        )
    published.append(
        publishing.link(
            f"monitor-{name}-report",
            link,
            text=f"HTML report in lakeFS ({stored['repository']}/{stored['report']})",
            description="Per-feature plots, reference vs current (lakeFS credentials needed)",
        )
    )
    if quality.get("versions"):
        published.append(
            publishing.table(
                f"monitor-{name}-quality", quality["versions"], description="Quality from outcome labels"
            )
        )
    return published


def _stored(summary: MonitorSummary) -> dict[str, Any]:
    """The summary as ``summary.json`` and the report's fact table hold it (without where it is stored)."""
    stored = summary.to_dict()
    for key in ("report", "seconds", "reason"):
        stored.pop(key)
    return stored


def _service_levels(
    parameters: MonitorParameters,
    window: LogWindow,
    cursor: dict[str, Any] | None,
    scrape: Scrape,
    log: logging.Logger | logging.LoggerAdapter,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
    """SLO figures from the serving metrics when endpoints are given (and answer), else from the log."""
    note = ""
    if parameters.metrics_urls:
        try:
            metrics = scrape(parameters.metrics_urls, model_name=parameters.model_name)
        except OSError as error:
            note = f"{error}; SLOs from the inference log instead"
            log.warning(note)
        else:
            previous = (cursor or {}).get("metrics")
            return slo_from_metrics(previous, metrics, slo=parameters.slo), metrics, ""
    return slo_figures(window.rows, model_name=parameters.model_name, slo=parameters.slo), None, note


def _reference(
    name: str, version: str, client: lakefs.Client, log: logging.Logger | logging.LoggerAdapter
) -> tuple[pd.DataFrame | None, str]:
    """The champion's reference sample, or None and why not."""
    try:
        payload = registry.read_artifact(name, version, registry.REFERENCE_ARTIFACT, client=client)
    except ModelNotFoundError as error:
        log.warning("drift not tested: %s", error)
        return None, f"drift not tested: {error} (retrain to store one)"
    reference = pd.read_parquet(io.BytesIO(payload))
    if PREDICTION_COLUMN not in reference and "probability" in reference:  # stored before scores
        reference[PREDICTION_COLUMN] = reference["probability"]
    return reference, ""


def _task_of(card: registry.ModelCard) -> str:
    return (card.feature_spec.get("problem") or {}).get("task", "binary")


def _quality(
    parameters: MonitorParameters,
    window: LogWindow,
    card: registry.ModelCard,
    client: lakefs.Client,
    repository: str,
) -> dict[str, Any]:
    if window.labels.empty:
        return {"status": "no labels", "labels": 0, "matched": 0, "versions": [], "degraded": False}
    spec = dataset_of_card(card)
    slices = spec.slices
    logged = read_recent_logs(
        client,
        ref=window.until_commit,
        days=parameters.label_lookback_days,
        columns=[*LABEL_JOIN_COLUMNS, *(feature_column(s.column) for s in slices)],
        repository=repository,
    )
    return label_quality(
        window.labels,
        logged,
        model_name=parameters.model_name,
        reference_metrics=(card.metrics or {}).get("holdout"),
        max_drop=parameters.max_quality_drop,
        min_labels=parameters.min_labels,
        problem=Problem.from_dict(card.feature_spec.get("problem"), target=card.feature_spec.get("target")),
        slices=slices,
    )


def _no_op(
    name: str, reason: str, publish: Publisher, log: logging.Logger | logging.LoggerAdapter
) -> MonitorSummary:
    log.info("monitor %s: %s", name, reason)
    publish.artifact(
        publishing.markdown(
            f"monitor-{name}-summary",
            f"### Monitor {name}: nothing to check\n\n{reason}.",
            description=f"Latest monitor run of {name}",
        )
    )
    return MonitorSummary(model=name, status="no data", reason=reason)
