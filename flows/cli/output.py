"""How the CLI shows results: one function per kind of result, rich tables and panels; with ``--json``
(``AsJson``), one JSON document on standard output instead (``json_document``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from flows.cli.app import console

if TYPE_CHECKING:
    from lakefs.models import Commit

    from contracts.rollout import RolloutResult
    from flows.demo.versioning import DemoResult, IngestOutcome
    from serving.traffic import TrafficReport
    from tasks.lineage import LineageChain
    from tasks.monitoring import MonitorSummary
    from tasks.registry import ModelCard
    from tasks.versioning import Change, RefContents

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
# Commit metadata worth a column in `data log` (the rest is in --json).
COMMIT_KEYS = (
    "lockgate.run_id",
    "lockgate.rows",
    "lockgate.contract_passed",
    "lockgate.contract_report",
    "lockgate.data_commit",
    "lockgate.flow_run_id",
)


def lineage(card: ModelCard) -> None:
    """A model version's lineage record."""
    table = Table(title=f"{card.model_name} {card.version}: lineage")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    holdout = card.metrics.get("holdout", {})
    problem = card.feature_spec.get("problem") or {"task": "binary"}
    shown = {
        "binary": ("roc_auc", "pr_auc", "accuracy", "log_loss", "brier_score", "expected_calibration_error"),
        "multiclass": ("accuracy", "macro_f1", "log_loss", "per_class_recall"),
        "regression": ("rmse", "mae", "r2"),
    }.get(problem["task"], ())
    rows = [
        ("data", f"lakefs://{card.data_repository}/{card.data_commit_id}"),
        ("contract report", card.contract_report),
        ("task", f"{problem['task']} {problem.get('classes') or ''}".strip()),
        (
            "model factory",
            f"{card.feature_spec.get('model', 'mlp')} {card.feature_spec.get('model_options', '')} "
            f"({card.feature_spec.get('model_source', 'lockgate')})",
        ),
        ("training config", ", ".join(f"{k}={v}" for k, v in card.training_config.items())),
        ("seed", str(card.seed)),
        ("holdout rows", str(holdout.get("holdout_rows", holdout.get("count")))),
        *((f"holdout {name}", str(holdout.get(name))) for name in shown),
        *(("WARNING", warning) for warning in card.metrics.get("warnings", [])),
        (
            "preprocessing SHA-256",
            str(card.feature_spec.get("preprocessing_sha256", "(standardisation only)")),
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


def json_document(document: Any) -> None:
    """One JSON document on standard output (dates and paths as strings)."""
    console.print_json(json.dumps(document, default=str))


def commits(repository: str, ref: str, log: Sequence[Commit], *, as_json: bool = False) -> None:
    """A log of commits, newest first, with the metadata keys lockgate writes."""
    if as_json:
        json_document(
            {
                "repository": repository,
                "ref": ref,
                "commits": [
                    {
                        "id": commit.id,
                        "message": commit.message,
                        "committer": commit.committer,
                        "date": _date(commit.creation_date),
                        "parents": list(commit.parents),
                        "metadata": dict(commit.metadata or {}),
                    }
                    for commit in log
                ],
            }
        )
        return
    table = Table(title=f"Log of {repository} at {ref} (newest first)")
    for column in ("commit", "date (UTC)", "committer", "message", "metadata"):
        table.add_column(column, no_wrap=column in ("commit", "date (UTC)"), overflow="fold")
    for commit in log:
        metadata = commit.metadata or {}
        shown = "\n".join(
            f"{key.removeprefix('lockgate.')}={metadata[key]}" for key in COMMIT_KEYS if metadata.get(key)
        )
        table.add_row(
            commit.id[:12], _date(commit.creation_date)[:19], commit.committer, commit.message, shown
        )
    console.print(table)


def ref_contents(contents: RefContents, *, as_json: bool = False) -> None:
    """The objects at a ref (path, size, checksum, Parquet rows) and a summary."""
    rows = contents.rows
    if as_json:
        json_document(
            {
                "repository": contents.repository,
                "ref": contents.ref,
                "commit": contents.commit,
                "prefix": contents.prefix,
                "objects": [
                    {
                        "path": stored.path,
                        "size_bytes": stored.size_bytes,
                        "checksum": stored.checksum,
                        "content_type": stored.content_type,
                        "modified": _date(stored.mtime),
                        "rows": None if rows is None else rows.get(stored.path),
                    }
                    for stored in contents.objects
                ],
                "summary": {
                    "objects": len(contents.objects),
                    "bytes": contents.total_bytes,
                    "parquet_objects": contents.parquet_objects,
                    "rows": contents.total_rows,
                },
            }
        )
        return
    where = f"{contents.repository} at {contents.ref} ({contents.commit[:12]})"
    table = Table(title=f"Objects of {where}" + (f" under {contents.prefix}" if contents.prefix else ""))
    table.add_column("path", overflow="fold")
    table.add_column("size (bytes)", justify="right")
    table.add_column("checksum", no_wrap=True)
    table.add_column("rows", justify="right")
    for stored in contents.objects:
        counted = None if rows is None else rows.get(stored.path)
        table.add_row(
            stored.path,
            f"{stored.size_bytes:,}",
            stored.checksum[:16],
            "" if counted is None else f"{counted:,}",
        )
    console.print(table)
    total_rows = contents.total_rows
    console.print(
        f"{len(contents.objects):,} object(s), {contents.total_bytes:,} bytes; "
        f"{contents.parquet_objects:,} Parquet object(s)"
        + ("" if total_rows is None else f" holding {total_rows:,} row(s)"),
        highlight=False,
    )


def changes(
    repository: str, left: str, right: str, found: Sequence[Change], *, as_json: bool = False
) -> None:
    """What differs between two refs, object by object, and the count of each kind of change."""
    counts = Counter(change.type for change in found)
    if as_json:
        json_document(
            {
                "repository": repository,
                "left": left,
                "right": right,
                "changes": [{"path": c.path, "type": c.type, "size_bytes": c.size} for c in found],
                "counts": dict(sorted(counts.items())),
            }
        )
        return
    colours = {"added": "green", "removed": "red", "changed": "yellow"}
    table = Table(title=f"Diff of {repository}: {left} .. {right}")
    table.add_column("path", overflow="fold")
    table.add_column("change")
    table.add_column("size (bytes)", justify="right")
    for change in found:
        colour = colours.get(change.type, "magenta")
        table.add_row(
            change.path, f"[{colour}]{change.type}[/]", "" if change.size is None else f"{change.size:,}"
        )
    console.print(table)
    console.print(
        ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in ("added", "removed", "changed"))
        + "".join(f", {n} {kind}" for kind, n in sorted(counts.items()) if kind not in colours),
        highlight=False,
    )


def monitor_report(summary: MonitorSummary, *, summary_uri: str, url: str, as_json: bool = False) -> None:
    """A stored monitor report: its summary and where its HTML is."""
    if as_json:
        json_document(
            {
                "kind": "monitor",
                "report": summary.report,
                "summary": summary_uri,
                "url": url,
                **_summary(summary),
            }
        )
        return
    monitor_table(summary)
    console.print(
        f"HTML report: {summary.report}\n  over HTTP (lakeFS credentials): {url}",
        highlight=False,
        soft_wrap=True,
    )


def contract_report(
    report: Mapping[str, Any], *, location: str, data_docs: str | None, as_json: bool = False
) -> None:
    """A stored contract report: the verdict, what failed, where the Data Docs are."""
    if as_json:
        json_document(
            {"kind": "contract", "report": location, "data_docs": data_docs, "content": dict(report)}
        )
        return
    expectations = report.get("expectations") or {}
    failed = [r for r in expectations.get("results", []) if not r.get("success")]
    checks = report.get("row_checks") or []
    verdict = "[green]passed[/]" if report.get("passed") is True else "[red]FAILED[/]"
    table = Table(title=f"Contract report of {report.get('dataset')} run {report.get('run_id')}: {verdict}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    statistics = expectations.get("statistics") or {}
    rows = [
        ("rows", f"{report.get('rows', 0):,}"),
        ("data", f"{report.get('data_prefix', '')} at commit {report.get('data_commit') or '(none)'}"),
        ("sources", ", ".join(str(s.get("uri")) for s in report.get("sources", []))),
        (
            "row checks failed",
            "; ".join(f"{c.get('column')} {c.get('check')}: {c.get('count')}" for c in checks) or "none",
        ),
        (
            "expectations",
            (
                f"{statistics.get('successful_expectations', '?')} of "
                f"{statistics.get('evaluated_expectations', '?')} met"
            )
            if statistics
            else "not run",
        ),
        (
            "expectations failed",
            "; ".join(f"{r.get('type')} on {r.get('column', 'table')}" for r in failed) or "none",
        ),
    ]
    for item, value in rows:
        table.add_row(item, str(value))
    console.print(table)
    console.print(
        f"Contract report: {location}\nData Docs: {data_docs or '(not rendered)'}",
        highlight=False,
        soft_wrap=True,
    )


def _summary(summary: MonitorSummary) -> dict[str, Any]:
    return {
        key: value for key, value in summary.to_dict().items() if key not in ("report", "seconds", "reason")
    }


def _date(seconds: int | float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
