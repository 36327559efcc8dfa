"""Retention of lockgate's own data: what may go once it is old, so the disk does not grow forever.

Serving writes inference logs all day, monitoring writes reports, training leaves checkpoint
branches and rejected ingests leave their branches for inspection. ``run_retention`` removes, through
the lakeFS API (so it works the same on a real lakeFS):

* inference logs and labels (``logs/date=…/``, ``labels/date=…/``) of days older than
  ``inference_log_days``, from the inference repository's main branch (one commit);
* monitoring reports (``reports/<model>/<run>/``) whose newest object is older than ``report_days``;
* checkpoint branches (``train-<run>`` of the models repository) of runs that stopped writing
  checkpoints more than ``checkpoint_days`` ago (a running job commits one every few seconds);
* ingest branches (``ingest-<dataset>-<run>``) never merged into main, older than
  ``rejected_ingest_days``.

Removed objects stay readable at the commits that had them until those commits expire under the
repository's garbage-collection rules; ``run_retention`` sets lakeFS GC rules on each repository it
manages that has none (``gc_retention_days``), and the server's GC (``lockgate lakefs gc``, or the
Spark GC job of a real lakeFS) then frees the blocks. Model versions, aliases and data on main are
never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from contracts.inference_log import LOG_PREFIX
from infra.naming import INFERENCE_REPOSITORY, MODELS_REPOSITORY, MONITORING_REPOSITORY
from tasks import versioning
from tasks.clock import SYSTEM_CLOCK, Clock
from tasks.monitoring.report import REPORTS_PREFIX

if TYPE_CHECKING:
    import lakefs

LABEL_PREFIX = "labels/"
CHECKPOINT_BRANCH_PREFIX = "train-"
INGEST_BRANCH_PREFIX = "ingest-"
RUN_ID_KEY = "lockgate.run_id"  # commit metadata of checkpoint and ingest commits
_PARTITION = re.compile(r"^(logs|labels)/date=(\d{4}-\d{2}-\d{2})/")
_MESSAGE = "lockgate retention"


class RetentionPolicy(BaseModel):
    """How long each kind of lockgate data is kept (days); the Prefect form of ``retention``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inference_log_days: int = Field(
        30, ge=1, le=36_500, description="Keep inference logs and labels this many days."
    )
    report_days: int = Field(90, ge=1, le=36_500, description="Keep monitoring reports this many days.")
    checkpoint_days: int = Field(
        7, ge=1, le=36_500, description="Delete checkpoint branches of runs idle for this many days."
    )
    rejected_ingest_days: int = Field(
        14, ge=1, le=36_500, description="Delete unmerged ingest branches older than this many days."
    )
    gc_retention_days: int = Field(
        7,
        ge=1,
        le=36_500,
        description="GC rule set on repositories without one: commits older than this expire, so what "
        "retention removed is freed this many days later.",
    )


class RetentionParameters(RetentionPolicy):
    """What ``retention_flow`` and ``lockgate retention`` take: the policy, and how to run it."""

    dry_run: bool = Field(False, description="Report what would go; change nothing.")
    collect_garbage: bool = Field(
        True,
        description="Afterwards, collect the garbage of each repository (embedded lakeFS-API server only; "
        "a real lakeFS runs its own GC job).",
    )
    gc_min_age_hours: float = Field(
        6.0, ge=0, le=8760, description="GC keeps blocks written more recently than this (uploads in flight)."
    )
    dataset_repositories: list[str] = Field(
        default_factory=list,
        description="Data repositories whose unmerged ingest branches are checked (default: every "
        "installed dataset's).",
    )

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(**{name: getattr(self, name) for name in RetentionPolicy.model_fields})


@dataclass(frozen=True)
class CollectedGarbage:
    """One repository's garbage collection (or what a dry run would delete)."""

    repository: str
    deleted_blocks: int
    deleted_bytes: int
    expired_commits: int


@dataclass(frozen=True)
class RepositoryRetention:
    """What retention did (or, in a dry run, would do) in one repository."""

    repository: str
    removed_objects: list[str] = field(default_factory=list)
    removed_branches: list[str] = field(default_factory=list)
    commit_id: str | None = None
    gc_rules_set: dict[str, int] | None = None


@dataclass(frozen=True)
class RetentionResult:
    dry_run: bool
    cutoff_day: date
    repositories: list[RepositoryRetention]
    garbage: list[CollectedGarbage] = field(default_factory=list)
    garbage_skipped: str | None = None  # why no GC ran (a real lakeFS, or not asked)

    @property
    def freed_bytes(self) -> int:
        return sum(g.deleted_bytes for g in self.garbage)

    @property
    def removed_objects(self) -> int:
        return sum(len(r.removed_objects) for r in self.repositories)

    @property
    def removed_branches(self) -> int:
        return sum(len(r.removed_branches) for r in self.repositories)

    def markdown(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"# Retention{' (dry run)' if self.dry_run else ''}",
            "",
            f"{verb} {self.removed_objects} object(s) and {self.removed_branches} branch(es).",
            "",
            "| repository | objects | branches | commit | GC rules set |",
            "|---|---:|---:|---|---|",
        ]
        for repo in self.repositories:
            rules = ", ".join(f"{k}={v}d" for k, v in (repo.gc_rules_set or {}).items()) or "-"
            commit = repo.commit_id[:12] if repo.commit_id else "-"
            counts = f"{len(repo.removed_objects)} | {len(repo.removed_branches)}"
            lines.append(f"| {repo.repository} | {counts} | {commit} | {rules} |")
        if self.garbage:
            lines += [
                "",
                "| repository | blocks collected | bytes | commits expired |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {g.repository} | {g.deleted_blocks} | {g.deleted_bytes} | {g.expired_commits} |"
                for g in self.garbage
            ]
        if self.garbage_skipped:
            lines += ["", f"Garbage collection: {self.garbage_skipped}."]
        return "\n".join(lines) + "\n"


def _partition_day(path: str) -> date | None:
    match = _PARTITION.match(path)
    return date.fromisoformat(match.group(2)) if match else None


def expired_log_paths(paths: Iterable[str], *, today: date, keep_days: int) -> list[str]:
    """Inference-log and label objects in day partitions older than ``keep_days`` before ``today``."""
    cutoff = today - timedelta(days=keep_days)
    return [path for path in paths if (day := _partition_day(path)) is not None and day < cutoff]


def expired_report_paths(
    stats: Iterable[versioning.ObjectStat], *, now: datetime, keep_days: int
) -> list[str]:
    """Objects of report folders (``reports/<model>/<run>/``) whose newest object is older than the cutoff."""
    folders: dict[str, list[versioning.ObjectStat]] = {}
    for stat in stats:
        parts = stat.path.split("/")
        if len(parts) >= 4 and parts[0] + "/" == REPORTS_PREFIX:
            folders.setdefault("/".join(parts[:3]), []).append(stat)
    cutoff = (now - timedelta(days=keep_days)).timestamp()
    return sorted(
        stat.path for items in folders.values() if max(s.mtime or 0 for s in items) < cutoff for stat in items
    )


def _repository_exists(repository: str, client: lakefs.Client) -> bool:
    return versioning.head_commit(repository, "main", client=client) is not None


def _remove_objects(
    repository: str, paths: list[str], *, what: str, dry_run: bool, now: datetime, client: lakefs.Client
) -> str | None:
    if dry_run or not paths:
        return None
    versioning.delete_objects(repository, branch="main", paths=paths, client=client)
    return versioning.commit_changes(
        repository,
        "main",
        message=f"{_MESSAGE}: remove {len(paths)} {what}",
        metadata={"lockgate.retention": what},
        client=client,
        date=now,  # dated by the clock that judged the cutoffs
    )


def _remove_stale_branches(
    repository: str,
    prefix: str,
    *,
    now: datetime,
    keep_days: int,
    dry_run: bool,
    client: lakefs.Client,
) -> list[str]:
    """Delete (unless ``dry_run``) lockgate's branches named ``prefix…`` that are done with: the head is
    a commit lockgate made for a run (``lockgate.run_id``), main does not contain it, it is older than
    ``keep_days``, and nothing is staged. A branch just created for a running job (its head still
    main's) or one being written to is never touched. Return their names."""
    cutoff = (now - timedelta(days=keep_days)).timestamp()
    main_head = versioning.resolve_ref(repository, "main", client=client)
    stale = []
    for head in versioning.list_branches(repository, client=client):
        if not head.name.startswith(prefix):
            continue
        commit = versioning.get_commit(repository, head.commit_id, client=client)
        if commit.creation_date >= cutoff or RUN_ID_KEY not in (commit.metadata or {}):
            continue
        merged = versioning.merge_base(repository, head.commit_id, main_head, client=client) == head.commit_id
        if merged or versioning.has_uncommitted(repository, head.name, client=client):
            continue
        stale.append(head.name)
    if not dry_run:
        for branch in stale:
            versioning.delete_branch(repository, branch, client=client)
    return stale


def _ensure_gc_rules(
    repository: str, days: int, *, dry_run: bool, client: lakefs.Client
) -> dict[str, int] | None:
    if versioning.gc_rules(repository, client=client) is not None:
        return None  # the user's rules stand
    rules = {"*": days}
    if not dry_run:
        versioning.set_gc_rules(repository, rules, client=client)
    return rules


def run_retention(
    policy: RetentionPolicy,
    *,
    client: lakefs.Client,
    dataset_repositories: Iterable[str] = (),
    inference_repository: str = INFERENCE_REPOSITORY,
    dry_run: bool = False,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[str], None] = lambda message: None,
) -> RetentionResult:
    """Apply ``policy`` to lockgate's repositories (those that exist); see the module docstring.

    Args:
        policy: How long each kind of data is kept.
        client: The lakeFS client.
        dataset_repositories: Data repositories whose unmerged ingest branches are checked.
        inference_repository: Where serving writes its logs.
        dry_run: Report what would go; change nothing.
        clock: "Now" for the cutoffs.
        progress: Receives one line per repository as it is done.
    """
    now = clock.now().astimezone(UTC)
    results: list[RepositoryRetention] = []

    if _repository_exists(inference_repository, client):
        paths = [
            *versioning.list_objects(inference_repository, ref="main", prefix=LOG_PREFIX, client=client),
            *versioning.list_objects(inference_repository, ref="main", prefix=LABEL_PREFIX, client=client),
        ]
        doomed = expired_log_paths(paths, today=now.date(), keep_days=policy.inference_log_days)
        commit = _remove_objects(
            inference_repository,
            doomed,
            what="inference log objects",
            dry_run=dry_run,
            now=now,
            client=client,
        )
        rules = _ensure_gc_rules(
            inference_repository, policy.gc_retention_days, dry_run=dry_run, client=client
        )
        results.append(RepositoryRetention(inference_repository, doomed, [], commit, rules))
        progress(f"{inference_repository}: {len(doomed)} log object(s)")

    if _repository_exists(MONITORING_REPOSITORY, client):
        stats = versioning.stat_objects(
            MONITORING_REPOSITORY, ref="main", prefix=REPORTS_PREFIX, client=client
        )
        doomed = expired_report_paths(stats, now=now, keep_days=policy.report_days)
        commit = _remove_objects(
            MONITORING_REPOSITORY, doomed, what="report objects", dry_run=dry_run, now=now, client=client
        )
        rules = _ensure_gc_rules(
            MONITORING_REPOSITORY, policy.gc_retention_days, dry_run=dry_run, client=client
        )
        results.append(RepositoryRetention(MONITORING_REPOSITORY, doomed, [], commit, rules))
        progress(f"{MONITORING_REPOSITORY}: {len(doomed)} report object(s)")

    if _repository_exists(MODELS_REPOSITORY, client):
        branches = _remove_stale_branches(
            MODELS_REPOSITORY,
            CHECKPOINT_BRANCH_PREFIX,
            now=now,
            keep_days=policy.checkpoint_days,
            dry_run=dry_run,
            client=client,
        )
        rules = _ensure_gc_rules(MODELS_REPOSITORY, policy.gc_retention_days, dry_run=dry_run, client=client)
        results.append(RepositoryRetention(MODELS_REPOSITORY, [], branches, None, rules))
        progress(f"{MODELS_REPOSITORY}: {len(branches)} checkpoint branch(es)")

    for repository in sorted(set(dataset_repositories)):
        if not _repository_exists(repository, client):
            continue
        branches = _remove_stale_branches(
            repository,
            INGEST_BRANCH_PREFIX,
            now=now,
            keep_days=policy.rejected_ingest_days,
            dry_run=dry_run,
            client=client,
        )
        results.append(RepositoryRetention(repository, [], branches, None, None))
        progress(f"{repository}: {len(branches)} rejected ingest branch(es)")

    return RetentionResult(dry_run=dry_run, cutoff_day=now.date(), repositories=results)


def embedded_server(client: lakefs.Client) -> bool:
    """Whether ``client`` talks to lockgate's embedded lakeFS-API server (which collects its own
    garbage on request), not to a real lakeFS."""
    from infra.lakefs_server.app import VERSION_CONTEXT

    return versioning.server_version_context(client) == VERSION_CONTEXT


def collect_garbage(
    repositories: Iterable[str], *, client: lakefs.Client, dry_run: bool, min_age_hours: float
) -> list[CollectedGarbage]:
    """Run the embedded server's GC on each repository that has GC rules."""
    from infra.lakefs_server.gc import request_gc

    config = client.config
    collected = []
    for repository in repositories:
        if versioning.gc_rules(repository, client=client) is None:
            continue
        answer = request_gc(
            config.host,
            config.username,
            config.password,
            repository,
            dry_run=dry_run,
            min_age_hours=min_age_hours,
            addresses=False,
        )
        collected.append(
            CollectedGarbage(
                repository, answer["deleted_blocks"], answer["deleted_bytes"], answer["expired_commits"]
            )
        )
    return collected


def run_retention_job(
    parameters: RetentionParameters,
    *,
    client: lakefs.Client,
    inference_repository: str = INFERENCE_REPOSITORY,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[str], None] = lambda message: None,
) -> RetentionResult:
    """``run_retention`` with ``parameters``, then (when asked and possible) garbage collection."""
    from dataclasses import replace

    datasets = parameters.dataset_repositories or _installed_dataset_repositories()
    result = run_retention(
        parameters.policy(),
        client=client,
        dataset_repositories=datasets,
        inference_repository=inference_repository,
        dry_run=parameters.dry_run,
        clock=clock,
        progress=progress,
    )
    if not parameters.collect_garbage:
        return replace(result, garbage_skipped="not asked (collect_garbage is off)")
    if not embedded_server(client):
        return replace(
            result, garbage_skipped="this is a real lakeFS server: run its GC job (the rules are set)"
        )
    # Only lockgate's own repositories: a data repository's GC, if its owner set rules, is theirs to run.
    managed = {inference_repository, MONITORING_REPOSITORY, MODELS_REPOSITORY}
    repositories = [repo.repository for repo in result.repositories if repo.repository in managed]
    garbage = collect_garbage(
        repositories, client=client, dry_run=parameters.dry_run, min_age_hours=parameters.gc_min_age_hours
    )
    for item in garbage:
        progress(f"{item.repository}: {item.deleted_blocks} block(s) collected ({item.deleted_bytes} bytes)")
    return replace(result, garbage=garbage)


def _installed_dataset_repositories() -> list[str]:
    from tasks.datasets import available_datasets

    return sorted({spec.repository for spec in available_datasets().values()})
