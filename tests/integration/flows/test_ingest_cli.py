"""``lockgate generate`` then ``lockgate ingest``, as a person runs them: the CLI starts its own embedded
lakeFS server on ``--data-dir`` (no endpoint configured), merges a good batch and rejects a bad one.

``ingest`` runs in a subprocess (the real console script entry point) against the harness's Prefect
server: under typer's ``CliRunner`` the flow's log handler writes to the runner's swapped stdio, which
it closes after each invocation, and Prefect's logging then recurses on the closed stream.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import lakefs
import pytest
from typer.testing import CliRunner

from flows.cli import app
from infra.lakefs_server.launcher import EmbeddedLakeFS

pytestmark = pytest.mark.integration

REPORT_PATH = re.compile(
    r"lakefs://lockgate-loans/ingest-loans-[\w-]+/_lockgate/reports/[\w-]+/contract_report\.json"
)


def squeeze(text: str) -> str:
    """The output without whitespace, so paths the console wrapped over lines can be matched."""
    return re.sub(r"\s+", "", text)


def lockgate_ingest(source, *, data_dir) -> subprocess.CompletedProcess[str]:
    """``lockgate ingest SOURCE --dataset loans --data-dir DATA_DIR`` in a fresh process."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "240"}
    command = [sys.executable, "-m", "flows.cli", "ingest", str(source), "--dataset", "loans"]
    return subprocess.run(
        [*command, "--data-dir", str(data_dir)], env=env, capture_output=True, text=True, timeout=180
    )


def test_generate_then_ingest_merges_a_good_batch_and_rejects_a_bad_one(tmp_path, monkeypatch):
    for variable in (
        "LOCKGATE_LAKEFS_ENDPOINT",
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID",
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "240")
    runner = CliRunner()
    data_dir = tmp_path / "lakefs-data"
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"

    generated = runner.invoke(
        app, ["generate", str(good), "--dataset", "loans", "--rows", "2000", "--seed", "3"]
    )
    assert generated.exit_code == 0, generated.output
    generated = runner.invoke(
        app,
        [
            "generate",
            str(bad),
            "--dataset",
            "loans",
            "--rows",
            "2000",
            "--seed",
            "4",
            "--defect-rate",
            "0.01",
        ],
    )
    assert generated.exit_code == 0, generated.output

    merged = lockgate_ingest(good, data_dir=data_dir)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged" in merged.stdout and "2,000 rows" in merged.stdout
    assert REPORT_PATH.search(squeeze(merged.stdout)), merged.stdout

    rejected = lockgate_ingest(bad, data_dir=data_dir)
    assert rejected.returncode != 0, rejected.stdout + rejected.stderr
    output = squeeze(rejected.stderr)
    assert "rejected" in output and REPORT_PATH.search(output), rejected.stderr
    # Planted defects are named by column and rule (null salary, negative age, unknown level, dup ID).
    assert "'salary'" in rejected.stderr and "not_nullable" in rejected.stderr

    # The server's state, read after the CLI stopped it: main holds exactly the good batch's merge.
    server = EmbeddedLakeFS(data_dir)
    server.start()
    try:
        repository = lakefs.Repository("lockgate-loans", client=server.client())
        log = list(repository.branch("main").log(max_amount=10))
        merges = [commit for commit in log if commit.metadata.get("lockgate.contract_report")]
        assert len(merges) == 1, [commit.message for commit in log]
        branches = [branch.id for branch in repository.branches()]
        assert sum(name.startswith("ingest-loans-") for name in branches) == 2  # both kept
    finally:
        server.stop()
