"""`lockgate demo` end to end: starts its own embedded server, runs twice on one data dir, stops it."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from flows.demo import DEMO_DATA_PATH, DEMO_REPOSITORY, make_demo_readings
from infra.lakefs_server.launcher import EmbeddedLakeFS
from tasks.versioning import list_branches, log_commits, read_dataframe

# Two demo runs, the first through the whole loop (~3 min here, far more on a loaded machine).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

BRANCH_NAME = re.compile(r"demo-\d{8}-\d{6}-[0-9a-f]{4}")


def server_children() -> set[int]:
    """PIDs of embedded-server processes started by this test process."""
    return {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if "infra.lakefs_server" in " ".join(child.cmdline())
    }


def run_demo(data_dir: Path, *, gate: bool, loop: bool = True) -> tuple[str, str]:
    """Run ``lockgate demo`` in its own process (it starts its own Ray); return output and branch."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LOCKGATE_", "PREFECT_", "RAY_"))
    }
    environment.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    command = [sys.executable, "-m", "flows.cli", "demo", "--data-dir", str(data_dir)]
    command.append("--gate" if gate else "--no-gate")
    command.append("--loop" if loop else "--no-loop")
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    written = re.search(rf"lakefs://{DEMO_REPOSITORY}/({BRANCH_NAME.pattern})/", output)
    assert written is not None, output
    return output, written.group(1)


def test_demo_runs_twice_on_the_same_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo must start its own embedded server, whatever other tests exported.
    for name in (
        "LOCKGATE_LAKEFS_ENDPOINT",
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID",
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "lakefs"
    children_before = server_children()

    first_output, first_branch = run_demo(data_dir, gate=True)
    assert "equal to what was written" in first_output
    # The contract gate: the good batch reaches main, the defective one is rejected with its reasons.
    assert re.search(r"good batch\s*│\s*merged\s*│\s*20,000", first_output), first_output
    assert re.search(r"batch with defects\s*│\s*rejected", first_output), first_output
    assert "not_nullable" in first_output and "contract_report.json" in first_output
    # Then a model is trained on main with 2 DDP ranks, registered and traced back to its data commit.
    assert re.search(r"registered loans-mlp v\d+ \(alias challenger\), holdout ROC AUC 0\.\d+", first_output)
    assert "lineage" in first_output and "lakefs://lockgate-loans/" in first_output
    assert re.search(rf"{re.escape(DEMO_DATA_PATH)}\s*\S*\s*added", first_output)
    # ... served on Ray Serve as the first champion, sent live traffic, every prediction logged in lakeFS.
    assert re.search(r"Serving loans-mlp v\d+ at http://127\.0\.0\.1:\d+", first_output), first_output
    traffic = re.search(r"│\s*([\d,]+)\s*│\s*(\d+)\s*│\s*(v\d+): ([\d,]+)", first_output)
    assert traffic is not None, first_output
    requests, failed = int(traffic.group(1).replace(",", "")), int(traffic.group(2))
    assert requests > 50 and failed == 0
    logged = re.search(
        r"logged ([\d,]+) prediction\(s\) in lakefs://lockgate-inference/main/logs/", first_output
    )
    # ... then drift is injected into the live traffic: the monitor raises it, a Prefect automation starts
    # retrain_flow, the challenger beats the champion on the same fresh holdout and is rolled out.
    assert re.search(r"monitor: drift over [\d,]+ answered record\(s\); drifted: \w+", first_output), (
        first_output
    )
    assert re.search(r"automation fired: \S+ \(trigger drift\)", first_output), first_output
    assert re.search(r"decision\s*│\s*promoted", first_output), first_output
    loop_traffic = re.search(r"traffic during the loop: ([\d,]+) requests, (\d+) failed", first_output)
    assert loop_traffic is not None and int(loop_traffic.group(2)) == 0, first_output
    assert re.search(r"drift injected -> alarm [\d.]+ s -> .* serving 100% [\d.]+ s", first_output)
    assert re.search(r"model loans-mlp v2\s*\(champion\)", first_output), first_output
    assert "promoted by retrain_flow (trigger drift" in first_output
    assert re.search(r"on data commit\s+lakefs://lockgate-loans/[0-9a-f]{64}", first_output)
    # Every answered request was logged (shadow copies of the rollout come on top).
    loop_requests = int(loop_traffic.group(1).replace(",", ""))
    assert logged is not None and int(logged.group(1).replace(",", "")) >= requests + loop_requests
    assert server_children() == children_before, "the demo left its server running"

    # The re-run is about the same data dir (a new branch, the same server state); the closed loop,
    # shown in full above, is left out to keep CI short.
    second_output, second_branch = run_demo(data_dir, gate=False, loop=False)
    assert second_branch != first_branch
    assert "equal to what was written" in second_output
    assert re.search(rf"{re.escape(DEMO_DATA_PATH)}\s*\S*\s*changed", second_output)
    assert server_children() == children_before

    # Generated credentials are kept for the next start, readable by the owner only.
    mode = stat.S_IMODE((data_dir / "credentials.json").stat().st_mode)
    assert mode == 0o600

    # The repository state the demo reported is what a fresh server on the same data dir serves.
    with EmbeddedLakeFS(data_dir) as server:
        client = server.client()
        main_log = log_commits(DEMO_REPOSITORY, ref="main", client=client, limit=10)
        assert [commit.message for commit in main_log] == [
            f"Merge {second_branch} into main",
            "Add 300 generated sensor readings",
            f"Merge {first_branch} into main",
            "Add 300 generated sensor readings",
            "Repository created",
        ]
        assert main_log[1].metadata is not None and main_log[1].metadata["run_id"] == second_branch
        assert {"main", first_branch, second_branch} == {
            head.name for head in list_branches(DEMO_REPOSITORY, client=client)
        }
        pd.testing.assert_frame_equal(
            read_dataframe(DEMO_REPOSITORY, ref="main", path=DEMO_DATA_PATH, client=client),
            make_demo_readings(run_id=second_branch),
        )
        pd.testing.assert_frame_equal(
            read_dataframe(DEMO_REPOSITORY, ref="main~1", path=DEMO_DATA_PATH, client=client),
            make_demo_readings(run_id=first_branch),
        )
