"""A dataset lockgate has never seen, from ``lockgate init`` to answers: scaffold a CSV (strings, a yes/no
target, missing values), ``pip install -e`` the package, ingest and train it with the CLI (2 DDP ranks),
and serve it on Ray Serve, with no hand edits anywhere.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from serving.operations import start_serving, stop_serving
from tasks import registry
from tests.integration.flows.test_init import churn_csv, pip

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "init-serve-churn"
DISTRIBUTION = "lockgate-init-serve-churn"
MODEL = "init-serve-churn-mlp"


def lockgate(*arguments: str, lakefs_server) -> subprocess.CompletedProcess[str]:
    """The CLI in a new process (which sees the newly installed entry point), on the session's lakeFS."""
    key, secret = lakefs_server.credentials
    environment = {
        **os.environ,
        "LOCKGATE_LAKEFS_ENDPOINT": lakefs_server.endpoint,
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": key,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("scaffold-serve")
    source = churn_csv(root / "churn.csv", seed=5)
    result = CliRunner().invoke(
        app, ["init", str(source), "--name", NAME, "--target", "churned", "--out", str(root / "pkg")]
    )
    assert result.exit_code == 0, result.output
    pip("uninstall", "--yes", DISTRIBUTION)
    done = pip("install", "--no-deps", "--no-build-isolation", "--quiet", "-e", str(root / "pkg"))
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        yield source
    finally:
        pip("uninstall", "--yes", DISTRIBUTION)


def test_a_scaffolded_dataset_trains_and_serves_with_no_hand_edits(installed, lakefs_server, serving) -> None:
    ingested = lockgate("ingest", str(installed), "--dataset", NAME, lakefs_server=lakefs_server)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    trained = lockgate(
        "train",
        "--dataset",
        NAME,
        "--model-name",
        MODEL,
        "--workers",
        "2",
        "--epochs",
        "5",  # any model will do: this is about the scaffold, not the fit (and keeps CI short)
        "--alias",
        "champion",
        lakefs_server=lakefs_server,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    card = registry.show_model(MODEL, "champion", client=serving.client)
    assert card.feature_spec["problem"]["task"] == "binary"
    assert card.feature_spec["problem"]["classes"] == ["no", "yes"]  # the inferred positive class last

    settings = serving.settings.model_copy(
        update={"model_name": MODEL, "app_name": "scaffolded", "route_prefix": "/scaffolded"}
    )
    url = start_serving(settings, lakefs=serving.lakefs).url
    try:
        frame = pd.read_csv(installed)
        features = [c for c in frame.columns if c not in ("customer_id", "churned")]
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame[features].head(20).to_dict("records")
        ]
        with httpx.Client(timeout=30) as http:
            response = http.post(f"{url}/predict", json=records)
            assert response.status_code == 200, response.text
            answers = response.json()["predictions"]
            assert {a["prediction"] for a in answers} <= {"yes", "no"} and len(answers) == 20
            assert all(0.0 <= a["probability"] <= 1.0 for a in answers)
            # The contract derived from the scaffolded validated model still guards the door.
            refused = http.post(f"{url}/predict", json={**records[0], "contract": "ten-year"})
            assert refused.status_code == 422, refused.text
    finally:
        stop_serving(settings)
