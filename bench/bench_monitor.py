"""Benchmark of one monitor pass over 100,000 logged rows.

Logs ``--rows`` single-record requests into the inference repository of a temporary embedded lakeFS
(through the serving app's own sink, ``--files`` Parquet objects, as serving replicas write them),
registers a champion with a 3,000-row reference sample, and times:

- ``monitor_flow`` end to end (Prefect flow run, lakeFS diff and reads, every drift test, SLO
  figures, the plots, the HTML report and its lakeFS commit), best of ``--runs`` (``from_start`` so
  every run reads the whole window);
- its stages, called directly: reading the window, ``detect_drift``, plotting, publishing;
- the baseline: ``detect_drift`` alone on the same frames (already in memory).

Run: ``.venv/bin/python bench/bench_monitor.py [--rows 100000] [--files 20] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serving_setup import embedded_lakefs, register_loans_model  # noqa: E402

MODEL = "bench-monitor"


def best(runs: int, function) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="logged rows (one record per request)")
    parser.add_argument("--files", type=int, default=20, help="Parquet objects they are written as")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (best is kept)")
    arguments = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    import torch

    from contracts.loans import FEATURE_COLUMNS
    from flows.monitor import MonitorParameters, monitor_flow
    from infra.naming import INFERENCE_REPOSITORY
    from serving.inference_log import LakeFSInferenceSink, log_rows
    from tasks import monitoring
    from tasks.drift import detect_drift
    from tasks.generate import GeneratorConfig, generate_frame
    from tasks.predictor import Predictor
    from tasks.registry import set_alias

    torch.set_num_threads(1)
    with (
        tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp,
        embedded_lakefs() as (client, _settings),
    ):
        # The champion and its reference sample (its own probabilities on 3,000 generated rows).
        version = register_loans_model(client, model_name=MODEL, seed=1).version
        predictor = Predictor.from_registry(MODEL, version, client=client)
        reference = generate_frame(GeneratorConfig(rows=3_000, seed=11))
        reference["probability"] = predictor.predict(reference[list(FEATURE_COLUMNS)].to_dict("records"))
        reference_path = Path(tmp) / "reference.parquet"
        reference.to_parquet(reference_path, index=False)
        version = register_loans_model(
            client, model_name=MODEL, seed=1, artifacts={"reference.parquet": reference_path}
        ).version
        set_alias(MODEL, "champion", version, client=client)

        print(f"logging {arguments.rows:,} rows as {arguments.files} objects ...", flush=True)
        current = generate_frame(GeneratorConfig(rows=arguments.rows, seed=12, covariate_shift=0.2))
        probabilities = predictor.predict(current[list(FEATURE_COLUMNS)].to_dict("records"))
        sink = LakeFSInferenceSink(lambda: client, repository=INFERENCE_REPOSITORY, writer="bench")
        records = current[list(FEATURE_COLUMNS)].to_dict("records")
        for chunk in np.array_split(np.arange(arguments.rows), arguments.files):
            rows = []
            for index in chunk:
                rows += log_rows(
                    request_id=f"r{index}",
                    records=[records[index]],
                    model_name=MODEL,
                    model_version=version,
                    role="champion",
                    shadow=False,
                    latency_ms=10.0,
                    probabilities=[float(probabilities[index])],
                )
            sink(pd.DataFrame(rows))

        parameters = MonitorParameters(model_name=MODEL, from_start=True, emit_events=False)
        monitor_flow(parameters)  # warm-up: imports, the temporary Prefect server
        flow_s, summary = best(arguments.runs, lambda: monitor_flow(parameters))

        head = monitoring.inference_head(client, repository=INFERENCE_REPOSITORY)
        read_s, window = best(
            arguments.runs, lambda: monitoring.read_window(client, since_commit=None, until_commit=head)
        )
        numeric = ["salary", "commission", "age", "house_value", "years_house_owned", "loan_amount"]
        categorical = ["education_level", "car_maker", "zipcode"]
        frame = monitoring.current_features(
            window.rows, model_name=MODEL, champion_version=version, features=[*numeric, *categorical]
        )
        drift_s, _ = best(
            arguments.runs,
            lambda: detect_drift(
                reference, frame, numeric=numeric, categorical=categorical, prediction="probability"
            ),
        )
        plots_s, _ = best(
            arguments.runs,
            lambda: monitoring.feature_plots(reference, frame, numeric=numeric, categorical=categorical),
        )
        slo_s, _ = best(
            arguments.runs, lambda: monitoring.slo_figures(window.rows, model_name=MODEL, slo=parameters.slo)
        )

    print(
        f"\nmonitor pass over {summary.records:,} logged rows ({arguments.files} objects), "
        f"status {summary.status}"
    )
    print(f"  monitor_flow end to end (best of {arguments.runs}):      {flow_s:7.3f} s")
    print(f"    read the window from lakeFS:                  {read_s:7.3f} s")
    print(f"    detect_drift (KS, chi2, PSI, MMD, outliers):  {drift_s:7.3f} s")
    print(f"    SLO figures:                                  {slo_s:7.3f} s")
    print(f"    plots (one per feature + prediction):         {plots_s:7.3f} s")
    print(f"  baseline: detect_drift alone on in-memory frames: {drift_s:7.3f} s")
    print(f"  ratio monitor_flow / detect_drift: {flow_s / drift_s:.1f}x")
    print(f"  rows per second through the whole pass: {summary.records / flow_s:,.0f}")


if __name__ == "__main__":
    main()
