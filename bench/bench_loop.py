"""End-to-end time from injected drift to the new model serving 100% of traffic.

Runs ``lockgate demo`` (its own embedded lakeFS, temporary Prefect server, local Dask and Ray) in a
fresh data directory and reads the loop's timings from its output: drift injected -> monitor alarm
-> the automation starts ``retrain_flow`` -> trained, compared, rolled out and promoted. The baseline
in the same run is the work itself: the monitor pass plus the retrain flow run's own duration
(training, the champion comparison and the rollout's held steps); the ratio shows what the event
path (event -> automation -> worker picks the run up) adds on top.

Run: ``.venv/bin/python bench/bench_loop.py [--runs 1]`` (each run takes a few minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LINE = re.compile(
    r"drift injected -> alarm ([\d.]+) s -> retrain started ([\d.]+) s -> "
    r"decided and serving 100% ([\d.]+) s \(retrain_flow run itself: ([\d.]+) s\)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="demo runs (each in a fresh data directory)")
    arguments = parser.parse_args()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "PREFECT_", "RAY_"))}
    environment.update({"COLUMNS": "220", "NO_COLOR": "1", "TERM": "dumb"})
    for run in range(1, arguments.runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
            command = [sys.executable, "-m", "flows.cli", "demo", "--data-dir", str(Path(tmp) / "lakefs")]
            result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=1800)
        output = result.stdout + result.stderr
        found = LINE.search(output)
        if result.returncode != 0 or found is None:
            print(output[-4000:])
            raise SystemExit(f"run {run}: the demo did not promote a retrained model")
        alarm, started, done, retrain = (float(v) for v in found.groups())
        work = alarm + retrain
        print(f"run {run}: drift injected -> new model serving 100%: {done:.1f} s")
        print(
            f"  drift injected -> monitor alarm:                 {alarm:6.1f} s (incl. ingest of new labels)"
        )
        print(f"  alarm -> automation started retrain_flow:        {started - alarm:6.1f} s")
        print(f"  run created -> running (worker poll, process start): {done - started - retrain:6.1f} s")
        print(f"  retrain_flow run (train, compare, 5-step rollout): {retrain:6.1f} s")
        print(f"  baseline (monitor + retrain work): {work:.1f} s; end to end / baseline: {done / work:.2f}x")


if __name__ == "__main__":
    main()
