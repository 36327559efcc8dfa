"""The first two parts of ``lockgate demo``: a versioning round trip, then batches through the gate.

Plain wiring of ``tasks.versioning`` calls and of the ingest stage (no Prefect run, so the demo starts
in about a second); the caller passes in the client, the publisher and a progress callback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import lakefs

    from tasks.publishing import Publisher

from tasks.versioning import (
    BranchHead,
    Change,
    commit_changes,
    create_branch,
    diff_refs,
    ensure_repository,
    list_branches,
    log_commits,
    merge_branch,
    read_dataframe,
    write_dataframe,
)

DEMO_REPOSITORY = "lockgate-demo"
DEMO_DATA_PATH = "datasets/sensor_readings.parquet"
DEMO_STEPS = (
    "ensure repository",
    "create branch",
    "write DataFrame",
    "commit",
    "diff against main",
    "merge into main",
    "read back and verify",
    "collect log and branches",
)
_SENSORS = ("boiler", "chiller", "pump-a", "pump-b", "turbine")


@dataclass(frozen=True)
class DemoResult:
    """What one demo run did, for display and for tests.

    Attributes:
        repository: Repository name.
        branch: The run's branch.
        data_path: Path of the Parquet object written.
        rows: Rows written.
        commit_id: Commit on the run's branch.
        merge_commit_id: Merge commit on main.
        changes: Diff of main against the run's branch, before the merge.
        commits: Newest commits on main after the merge.
        branches: All branches after the merge.
        verified: Whether the DataFrame read at the merge commit equals the one written.
    """

    repository: str
    branch: str
    data_path: str
    rows: int
    commit_id: str
    merge_commit_id: str
    changes: list[Change]
    commits: list[lakefs.Commit]
    branches: list[BranchHead]
    verified: bool


def make_demo_branch_name(now: datetime | None = None) -> str:
    """A fresh branch name such as ``demo-20250101-120000-1a2b`` (lakeFS branch names allow no '/')."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"demo-{stamp}-{secrets.token_hex(2)}"


def make_demo_readings(*, run_id: str, seed: int = 42, rows: int = 300) -> pd.DataFrame:
    """Generate sensor readings: the same ``seed`` gives the same values; ``run_id`` tags every row.

    Args:
        run_id: Written into a ``run_id`` column, so each run's data differs and is traceable.
        seed: Seed of the random generator.
        rows: Number of rows.

    Returns:
        The readings (int, str, datetime, float and bool columns).
    """
    generator = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "reading_id": np.arange(rows, dtype="int64"),
            "sensor": generator.choice(_SENSORS, size=rows),
            "recorded_at": pd.date_range("2025-01-01", periods=rows, freq="min", unit="us"),
            "temperature_c": generator.normal(21.0, 4.0, size=rows).round(3),
            "humidity_pct": generator.uniform(20.0, 80.0, size=rows).round(2),
            "within_limits": generator.random(rows) > 0.05,
            "run_id": run_id,
        }
    )


def run_versioning_demo(
    *,
    client: lakefs.Client,
    storage_namespace: str,
    branch: str,
    seed: int = 42,
    rows: int = 300,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the round trip on repository ``lockgate-demo``; re-runnable (each run uses a new branch).

    Args:
        client: lakeFS client (embedded server or real lakeFS).
        storage_namespace: Namespace used if the repository has to be created.
        branch: New branch for this run (see ``make_demo_branch_name``).
        seed: Seed of the generated data.
        rows: Rows of generated data.
        on_step: Called with each name in ``DEMO_STEPS`` as that step finishes.

    Returns:
        What the run did.
    """

    def finished(step: str) -> None:
        if on_step is not None:
            on_step(step)

    repository = ensure_repository(DEMO_REPOSITORY, storage_namespace=storage_namespace, client=client).id
    finished("ensure repository")
    create_branch(repository, branch, source_ref="main", client=client)
    finished("create branch")
    readings = make_demo_readings(run_id=branch, seed=seed, rows=rows)
    write_dataframe(
        readings,
        repository=repository,
        branch=branch,
        path=DEMO_DATA_PATH,
        client=client,
        metadata={"rows": str(rows), "seed": str(seed)},
    )
    finished("write DataFrame")
    commit_id = commit_changes(
        repository,
        branch,
        message=f"Add {rows} generated sensor readings",
        metadata={
            "source": "lockgate demo",
            "run_id": branch,
            "rows": str(rows),
            "seed": str(seed),
            "columns": ",".join(readings.columns),
        },
        client=client,
    )
    finished("commit")
    changes = diff_refs(repository, left_ref="main", right_ref=branch, client=client)
    finished("diff against main")
    merge_commit_id = merge_branch(
        repository,
        source_ref=branch,
        destination_branch="main",
        message=f"Merge {branch} into main",
        metadata={"run_id": branch, "source_commit": commit_id},
        client=client,
    )
    finished("merge into main")
    stored = read_dataframe(repository, ref=merge_commit_id, path=DEMO_DATA_PATH, client=client)
    verified = _frames_equal(stored, readings)
    finished("read back and verify")
    commits = log_commits(repository, ref="main", client=client, limit=6)
    branches = list_branches(repository, client=client)
    finished("collect log and branches")
    return DemoResult(
        repository=repository,
        branch=branch,
        data_path=DEMO_DATA_PATH,
        rows=rows,
        commit_id=commit_id,
        merge_commit_id=merge_commit_id,
        changes=changes,
        commits=commits,
        branches=branches,
        verified=verified,
    )


def _frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Equal values, dtypes, columns and index."""
    try:
        pd.testing.assert_frame_equal(left, right)
    except AssertionError:
        return False
    return True


INGEST_DEMO_STEPS = (
    "generate a good loans batch",
    "ingest it through the contract gate",
    "generate a batch with planted defects",
    "ingest it through the contract gate",
)


@dataclass(frozen=True)
class IngestOutcome:
    """One batch the demo sent through ``ingest_flow``."""

    label: str
    source: str
    status: str  # merged | unchanged | rejected
    rows: int | None
    commit: str | None
    report: str | None
    message: str


def run_ingestion_demo(
    work_dir: Path, *, client: lakefs.Client, publish: Publisher, on_step: Callable[[str], None]
) -> list[IngestOutcome]:
    """Send a good and a defective loans batch through the ingest stage.

    The good batch has a fixed seed, so a second demo run shows idempotency ("unchanged"); the bad one
    is rejected every time, leaving ``main`` as it was.
    """
    from infra.errors import ContractViolationError
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.ingestion import IngestParameters, run_ingest

    outcomes = []
    batches = (
        ("good batch", GeneratorConfig(rows=20_000, seed=7, first_id=70_000_000), "parquet"),
        (
            "batch with defects",
            GeneratorConfig(rows=5_000, seed=8, first_id=80_000_000, defect_rate=0.004),
            "csv",
        ),
    )
    for index, (label, config, file_format) in enumerate(batches):
        source = work_dir / f"loans-{label.replace(' ', '-')}.{file_format}"
        write_batch(config, str(source), file_format=file_format)
        on_step(INGEST_DEMO_STEPS[2 * index])
        parameters = IngestParameters(source=str(source), dataset="loans")
        try:
            result = run_ingest(parameters, client=client, s3_client=None, publish=publish)
            outcomes.append(
                IngestOutcome(
                    label,
                    str(source),
                    result.status,
                    result.rows,
                    result.commit,
                    result.report,
                    "merged into main" if result.status == "merged" else "already on main: no new commit",
                )
            )
        except ContractViolationError as error:
            report = error.report
            outcomes.append(
                IngestOutcome(
                    label,
                    str(source),
                    "rejected",
                    report.rows,
                    report.data_commit,
                    report.report_path,
                    str(error),
                )
            )
        on_step(INGEST_DEMO_STEPS[2 * index + 1])
    return outcomes
