"""Monitoring: what the live model saw since the last check, compared with what it was trained for.

==================================  ===============================================================
``tasks.monitoring.window``         the inference-log and label objects added between two commits
``tasks.monitoring.service_levels`` latency, error rate and throughput per version (log or metrics)
``tasks.monitoring.quality``        live quality from outcome labels
``tasks.monitoring.report``         plots, the test table, the HTML report, its commit with the cursor
``tasks.monitoring.run``            ``assess_window`` (the verdict) and ``run_monitor`` (the stage)
==================================  ===============================================================

The inference-log format itself (paths, columns, what "answered" means) is ``contracts.inference_log``.
"""

from __future__ import annotations

from contracts.inference_log import PREDICTION_COLUMN, answered_rows, current_features
from tasks.monitoring.quality import label_quality
from tasks.monitoring.report import (
    REPORTS_PREFIX,
    STATE_PREFIX,
    cursor_path,
    drift_table,
    feature_plots,
    plot_feature,
    publish_report,
    read_cursor,
    render_report,
)
from tasks.monitoring.run import (
    MonitorParameters,
    MonitorSummary,
    MonitorVerdict,
    assess_window,
    monitor_artifacts,
    monitor_events,
    report_run_name,
    run_monitor,
)
from tasks.monitoring.service_levels import (
    LATENCY_METRIC,
    REQUESTS_METRIC,
    histogram_quantile,
    scrape_serving_metrics,
    slo_figures,
    slo_from_metrics,
)
from tasks.monitoring.window import LogWindow, inference_head, read_recent_logs, read_window

__all__ = [
    "LATENCY_METRIC",
    "PREDICTION_COLUMN",
    "REPORTS_PREFIX",
    "REQUESTS_METRIC",
    "STATE_PREFIX",
    "LogWindow",
    "MonitorParameters",
    "MonitorSummary",
    "MonitorVerdict",
    "answered_rows",
    "assess_window",
    "current_features",
    "cursor_path",
    "drift_table",
    "feature_plots",
    "histogram_quantile",
    "inference_head",
    "label_quality",
    "monitor_artifacts",
    "monitor_events",
    "plot_feature",
    "publish_report",
    "read_cursor",
    "read_recent_logs",
    "read_window",
    "render_report",
    "report_run_name",
    "run_monitor",
    "scrape_serving_metrics",
    "slo_figures",
    "slo_from_metrics",
]
