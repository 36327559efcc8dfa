"""How the CLI shows results: one function per kind of result, rich tables and panels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from flows.cli.app import console

if TYPE_CHECKING:
    from contracts.rollout import RolloutResult
    from flows.demo.versioning import DemoResult, IngestOutcome
    from serving.traffic import TrafficReport
    from tasks.lineage import LineageChain
    from tasks.monitoring import MonitorSummary
    from tasks.registry import ModelCard


def lineage(card: ModelCard) -> None:
    """A model version's lineage record."""
    table = Table(title=f"{card.model_name} {card.version}: lineage")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    holdout = card.metrics.get("holdout", {})
    rows = [
        ("data", f"lakefs://{card.data_repository}/{card.data_commit_id}"),
        ("contract report", card.contract_report),
        ("training config", ", ".join(f"{k}={v}" for k, v in card.training_config.items())),
        ("seed", str(card.seed)),
        ("holdout ROC AUC", f"{holdout.get('roc_auc')}"),
        (
            "holdout accuracy / log loss / ECE",
            " / ".join(str(holdout.get(k)) for k in ("accuracy", "log_loss", "expected_calibration_error")),
        ),
        ("weights SHA-256", card.weights_sha256),
        ("code version", card.code_version),
        ("Prefect flow run", card.flow_run_id or ""),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(card.library_versions.items()))),
        ("created at", str(card.created_at)),
    ]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)


def rollout(result: RolloutResult) -> None:
    """The steps of a rollout with their figures."""
    table = Table(title=f"Rollout of {result.model} {result.version}: {result.outcome}")
    for column in ("step", "passed", "requests", "errors", "p50 ms", "p99 ms", "PSI vs champion", "reason"):
        table.add_column(column)
    for step in result.steps:
        table.add_row(
            step.step,
            "[green]yes[/]" if step.passed else "[red]no[/]",
            str(step.challenger_requests),
            str(step.challenger_errors),
            str(step.challenger_p50_ms),
            str(step.challenger_p99_ms),
            "" if step.prediction_psi is None else f"{step.prediction_psi:.4f}",
            step.reason,
        )
    console.print(table)


def monitor_table(summary: MonitorSummary) -> None:
    """Every item of a monitor run's summary."""
    table = Table(title=f"monitor {summary.model}: {summary.status}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    for key, value in summary.to_dict().items():
        if value in (None, "", []) and key not in ("status",):
            continue
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    console.print(table)


def monitor_line(summary: MonitorSummary) -> None:
    """One line: the verdict, the drifted features, where the report is."""
    colour = {"drift": "red", "ok": "green"}.get(summary.status, "yellow")
    console.print(
        f"monitor: [{colour}]{summary.status}[/] over {summary.records:,} answered record(s); "
        f"drifted: {', '.join(summary.drifted_features) or 'none'}; "
        f"prediction drift: {summary.prediction_drift}; report {summary.report or ''}",
        highlight=False,
    )


def items(title: str, rows: Sequence[tuple[str, Any]]) -> None:
    """A two-column table of facts."""
    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


def traffic(report: TrafficReport, *, title: str = "Live traffic sent to the serving app") -> None:
    """What a traffic generator sent and who answered."""
    table = Table(title=title)
    for column in ("requests", "failed", "answered by", "p50 ms", "p99 ms", "req/s"):
        table.add_column(column)
    table.add_row(
        f"{report.requests:,}",
        str(report.failed),
        ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items())),
        f"{report.quantile(0.5):.1f}",
        f"{report.quantile(0.99):.1f}",
        f"{report.throughput:.0f}",
    )
    console.print(table)


def gate(outcomes: Sequence[IngestOutcome]) -> None:
    """Batches through the contract gate, and why the rejected ones were."""
    table = Table(title="Batches through the contract gate")
    for column in ("batch", "verdict", "rows", "commit", "contract report"):
        table.add_column(column)
    colours = {"merged": "green", "unchanged": "yellow", "rejected": "red"}
    for outcome in outcomes:
        table.add_row(
            outcome.label,
            f"[{colours[outcome.status]}]{outcome.status}[/]",
            "" if outcome.rows is None else f"{outcome.rows:,}",
            (outcome.commit or "")[:12],
            outcome.report or "",
        )
    console.print(table)
    for outcome in outcomes:
        if outcome.status == "rejected":
            console.print(Panel(outcome.message, title=f"Why the {outcome.label} was rejected", style="red"))


def versioning_round_trip(result: DemoResult) -> None:
    """The versioning demo: diff, log, branches, and whether the data read back equals what was written."""
    changes = Table(title=f"Diff: main .. {result.branch}")
    changes.add_column("path")
    changes.add_column("change")
    changes.add_column("size (bytes)", justify="right")
    for change in result.changes:
        changes.add_row(change.path, change.type, "" if change.size is None else str(change.size))
    console.print(changes)

    commits = Table(title=f"Log of main in {result.repository} (newest first)")
    commits.add_column("commit", no_wrap=True)
    commits.add_column("message")
    commits.add_column("metadata")
    for commit in result.commits:
        metadata = "\n".join(f"{key}={value}" for key, value in sorted((commit.metadata or {}).items()))
        commits.add_row(commit.id[:12], commit.message, metadata)
    console.print(commits)

    branches = Table(title="Branches")
    branches.add_column("branch")
    branches.add_column("head commit", no_wrap=True)
    for branch in result.branches:
        branches.add_row(branch.name, branch.commit_id[:12])
    console.print(branches)

    check = "[green]equal[/]" if result.verified else "[red]DIFFERENT[/]"
    console.print(
        Panel(
            f"Wrote {result.rows} rows to lakefs://{result.repository}/{result.branch}/{result.data_path}\n"
            f"Committed {result.commit_id}\n"
            f"Merged into main as {result.merge_commit_id}\n"
            f"Read back at the merge commit: {check} to what was written",
            title="Summary",
        ),
    )


def lineage_tree(chain: LineageChain, decision: dict[str, Any]) -> None:
    """The new champion traced back: the retrain that promoted it and why, the run that trained it, the
    data commit it was trained on and the contract reports that let that data through."""
    model = f"model {chain.model_name} {chain.version}"
    tree = Tree(f"[bold]{model}[/] (champion): {chain.weights}; holdout {chain.metrics}")
    trigger, event = decision.get("trigger"), decision.get("trigger_event") or "-"
    why = tree.add(
        f"promoted by retrain_flow (trigger {trigger}, event {event}): {decision.get('reason', '')}"
    )
    trained = why.add(f"trained by Prefect flow run {chain.flow_run_id or '(outside Prefect)'}")
    commit = trained.add(f"on data commit {chain.data}")
    for report in chain.reports:
        commit.add(f"let through by contract report {report}")
    console.print(Panel(tree, title="Lineage of the new champion"))
