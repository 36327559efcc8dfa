"""``lockgate init`` on a CSV it has never seen, as a person runs it: scaffold the package through the real
CLI, ``pip install -e`` it into this environment, and check in fresh processes that lockgate finds the
dataset by its entry point and that its contracts accept the file.

The installed package is a module-scoped fixture (``scaffolded``), so later steps (training on the
dataset, serving it) can be added as tests that take it. It is installed into the test interpreter's
environment and uninstalled when the module's tests end; a fixed distribution name lets the next run
remove a copy an interrupted run left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.integration

NAME = "init-test-churn"
DISTRIBUTION = "lockgate-init-test-churn"
ROWS = 300


@dataclass(frozen=True)
class Scaffolded:
    """The scaffolded, installed dataset."""

    name: str
    source: Path  # the CSV it was inferred from
    directory: Path  # the package (pip install -e)
    init_output: str


def churn_csv(path: Path, *, rows: int = ROWS, seed: int = 11) -> Path:
    """A customer-churn file: text categories, a yes/no label, missing numbers and categories."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows)
    monthly = rng.uniform(18.0, 120.0, rows).round(2)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.55, 0.25, 0.2])
    churn_odds = 0.5 - tenure / 200 + (contract == "month-to-month") * 0.2
    frame = pd.DataFrame(
        {
            "customer_id": [f"CUST-{i:05d}" for i in rng.permutation(rows)],
            "gender": rng.choice(["female", "male"], rows),
            "tenure_months": tenure,
            "contract": contract,
            "payment_method": rng.choice(["card", "bank transfer", "electronic check", "mailed check"], rows),
            "monthly_charges": monthly,
            "total_charges": (monthly * np.maximum(tenure, 1)).round(2),
            "support_tickets": rng.poisson(1.5, rows),
            "churned": np.where(rng.random(rows) < churn_odds, "yes", "no"),
        }
    )
    frame.loc[rng.choice(rows, 15, replace=False), "total_charges"] = np.nan
    frame.loc[rng.choice(rows, 8, replace=False), "monthly_charges"] = np.nan
    frame.loc[rng.choice(rows, 6, replace=False), "payment_method"] = None
    frame.to_csv(path, index=False)
    return path


def pip(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *arguments], capture_output=True, text=True, timeout=300
    )


def in_fresh_process(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by this interpreter in a new process (which sees newly installed entry points)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaffolded]:
    """``lockgate init`` on a new churn CSV, the result ``pip install -e``'d; uninstalled afterwards."""
    root = tmp_path_factory.mktemp("init")
    source = churn_csv(root / "churn.csv")
    directory = root / "churn-package"
    result = CliRunner(env={"COLUMNS": "240", "NO_COLOR": "1"}).invoke(
        app, ["init", str(source), "--name", NAME, "--target", "churned", "--out", str(directory)]
    )
    assert result.exit_code == 0, result.output
    pip("uninstall", "--yes", DISTRIBUTION)  # a copy an interrupted run left behind
    installed = pip("install", "--no-deps", "--no-build-isolation", "--quiet", "-e", str(directory))
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield Scaffolded(name=NAME, source=source, directory=directory, init_output=result.output)
    finally:
        removed = pip("uninstall", "--yes", DISTRIBUTION)
        assert removed.returncode == 0, removed.stdout + removed.stderr


def test_init_reports_what_it_inferred(scaffolded: Scaffolded) -> None:
    output = " ".join(re.sub("[\u2500-\u257f]", " ", scaffolded.init_output).split())  # no table lines
    assert "binary ('churned' has two values ('no', 'yes'))" in output
    assert "positive class 'yes'" in output
    assert "customer_id" in output and "name says it is an ID" in output
    assert re.search(r"missing -> mean .*monthly_charges, total_charges", output), output
    assert f"pip install -e {scaffolded.directory}" in output
    contracts = (scaffolded.directory / "lockgate_init_test_churn" / "contracts.py").read_text()
    assert contracts.count("# review:") >= 9  # one per column of the validated model
    assert "## What to review" in (scaffolded.directory / "README.md").read_text()


def test_lockgate_datasets_lists_the_new_dataset(scaffolded: Scaffolded) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "flows.cli", "datasets"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "240", "NO_COLOR": "1"},
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    row = next((line for line in listed.stdout.splitlines() if f" {NAME} " in line), None)
    assert row is not None, listed.stdout
    assert f"lockgate-{NAME}" in row and "customer_id" in row and "churned" in row


def test_the_installed_spec_loads_and_its_contracts_accept_the_file(scaffolded: Scaffolded) -> None:
    checked = in_fresh_process(
        f"""
        import json
        from pathlib import Path

        import pandas as pd

        from tasks.datasets import available_datasets, get_dataset
        from tasks.gx_validation import validate_expectations
        from tasks.ingestion.sources import read_chunks

        spec = get_dataset({NAME!r})  # refuses a spec with problems
        source = Path({str(scaffolded.source)!r})
        frame = pd.concat(list(read_chunks(source, "csv", chunk_rows=100_000, name=source.name)))
        typed = spec.raw_model.validate(frame, lazy=True)  # the file exactly as ingestion reads it
        spec.validated_model.validate(typed, lazy=True)
        report = validate_expectations(typed, spec.expectation_suite, row_count=len(typed))
        print(json.dumps({{
            "problems": spec.problems(),
            "listed": {NAME!r} in available_datasets(),
            "raw_model": spec.raw_model.__module__,
            "task": spec.task,
            "positive_class": spec.positive_class,
            "key": list(spec.key_columns),
            "features": list(spec.feature_columns),
            "categorical": list(spec.categorical_columns),
            "missing": dict(spec.missing),
            "rows": len(typed),
            "expectations_failed": [r["expectation"] for r in report.failures()],
        }}))
        """
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    assert found["problems"] == [] and found["listed"]
    assert found["raw_model"] == "lockgate_init_test_churn.contracts"
    assert (found["task"], found["positive_class"], found["key"]) == ("binary", "yes", ["customer_id"])
    assert found["features"] == [
        "gender",
        "tenure_months",
        "contract",
        "payment_method",
        "monthly_charges",
        "total_charges",
        "support_tickets",
    ]
    assert set(found["categorical"]) == {"gender", "contract", "payment_method"}
    assert found["missing"] == {"monthly_charges": "mean", "total_charges": "mean"}
    assert found["rows"] == ROWS and found["expectations_failed"] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--target", "churn"], "target 'churn' is not a column of churn.csv (did you mean 'churned'?)"),
        (["--target", "churned", "--task", "regression"], "--task regression needs a numeric target"),
        (["--target", "support_tickets", "--task", "binary"], "--task binary needs a target of two values"),
        (["--target", "churned", "--key", "gender"], "--key gender does not identify the rows"),
    ],
)
def test_init_refuses_bad_input_in_one_line_and_writes_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    source = churn_csv(tmp_path / "churn.csv")
    out = tmp_path / "package"
    result = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"}).invoke(
        app, ["init", str(source), "--name", "churn", "--out", str(out), *options]
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not out.exists()
