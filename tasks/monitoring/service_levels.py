"""Service levels per live version over a window: from the logged requests, or from the serving
metrics (Ray's Prometheus export) as the change between two snapshots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from contracts.slo import SLOThresholds

REQUESTS_METRIC = "ray_lockgate_requests_total"
LATENCY_METRIC = "ray_lockgate_request_latency_ms"


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
