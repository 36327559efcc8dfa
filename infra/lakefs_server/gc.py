"""Garbage collection of the embedded server's blocks, with lakeFS's retention rules.

**Rules** are lakeFS's (``PUT /repositories/{repository}/settings/gc_rules``): a default retention in
days and optional per-branch retentions. **Which commits stay** follows lakeFS's GC
(``graveler/retention``): every branch head stays; from each head the first-parent chain stays while
the child was created within the branch's retention (so everything newer than the threshold plus the
first commit older than it); commits that are nobody's first parent ("dangling", e.g. the head of a
deleted branch) stay while younger than the default retention; where rules overlap the longest wins.
Tags protect nothing, as in lakeFS.

**Which blocks go**: those under ``<namespace>/data/`` (the only place this server writes) that no
retained commit's tree and no staged entry of any branch references, and that were written more than
``min_age_seconds`` ago (an upload may still be on its way to being linked).

**Safe against concurrent writes.** The mark phase reads one consistent snapshot of the metadata
(one SQLite read transaction). The sweep deletes in batches, each inside a write transaction
(``BEGIN IMMEDIATE``), which stops every writer of every process for its duration; before deleting,
it re-checks the batch against what changed since the snapshot: staged entries, commits made since
(their changes against their first parent) and branch heads that moved to commits outside the
retained set (their whole tree). So no block that a branch or a staged entry can reach is ever
deleted. A crash (kill -9) mid-sweep loses nothing still referenced: the batch in flight was
re-checked under the lock, and the next run starts over from a fresh snapshot. A dry run is the
same computation without the deletion.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from infra.lakefs_server import tree
from infra.lakefs_server.blockstore import BlockStore, StoredBlock
from infra.lakefs_server.errors import BadRequest, NotFound

logger = logging.getLogger("lockgate.lakefs.gc")
DAY = 86_400
MAX_RETENTION_DAYS = 36_500
DEFAULT_MIN_AGE_HOURS = 6.0  # blocks written more recently than this are never collected


@dataclass(frozen=True)
class GcRules:
    """lakeFS's GC rules: a default retention and per-branch retentions, in days."""

    default_retention_days: int
    branches: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any) -> GcRules:
        """Validate lakeFS's JSON; a rule of zero (or fewer) days is refused: it would expire every
        commit but the branch heads, the whole history reachable from them."""
        if not isinstance(body, dict):
            raise BadRequest("GC rules must be a JSON object")
        unknown = set(body) - {"default_retention_days", "branches"}
        if unknown:
            raise BadRequest(f"GC rules: unknown field(s) {', '.join(sorted(unknown))}")
        default = _days(body.get("default_retention_days"), "default_retention_days")
        branches: dict[str, int] = {}
        for index, rule in enumerate(body.get("branches") or []):
            if (
                not isinstance(rule, dict)
                or not isinstance(rule.get("branch_id"), str)
                or not rule["branch_id"]
            ):
                raise BadRequest(f"GC rules: branches[{index}] needs a branch_id and retention_days")
            name = rule["branch_id"]
            if name in branches:
                raise BadRequest(f"GC rules: branch {name!r} has more than one rule")
            branches[name] = _days(rule.get("retention_days"), f"branches[{index}].retention_days")
        return cls(default, branches)

    def to_json(self) -> dict[str, Any]:
        """lakeFS's shape (``branches`` an empty list when there are none: the SDK refuses null)."""
        return {
            "default_retention_days": self.default_retention_days,
            "branches": [{"branch_id": b, "retention_days": d} for b, d in sorted(self.branches.items())],
        }

    def retention_days(self, branch: str) -> int:
        return self.branches.get(branch, self.default_retention_days)


def _days(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"GC rules: {name} must be a whole number of days")
    if value < 1:
        raise BadRequest(
            f"GC rules: {name} is {value}; it must be at least 1 day. A rule of 0 days would expire all "
            "history reachable from a branch head (only the head itself would stay)"
        )
    if value > MAX_RETENTION_DAYS:
        raise BadRequest(f"GC rules: {name} is {value}; at most {MAX_RETENTION_DAYS} days")
    return value


@dataclass
class Commit:
    id: str
    parents: list[str]
    created: int
    root: str


def retained_commits(
    commits: dict[str, Commit], heads: dict[str, str], rules: GcRules, now: float
) -> set[str]:
    """The commits lakeFS's GC keeps (``graveler/retention/active_commits.go``): walking each first-parent
    chain to its end, a parent stays when its child is younger than the threshold (so commit dates
    out of order, e.g. a commit API ``date``, keep what lakeFS keeps)."""
    threshold_of: dict[str, float] = {}  # lowest threshold a commit was walked with (longest rule)
    kept: set[str] = set()

    def walk(start: str, threshold: float) -> None:
        kept.add(start)
        current = start
        while True:
            seen = threshold_of.get(current)
            if seen is not None and seen <= threshold:
                return  # walked before with a retention at least as long
            threshold_of[current] = threshold
            commit = commits.get(current)
            if commit is None or not commit.parents:
                return
            if commit.created > threshold:
                kept.add(commit.parents[0])
            current = commit.parents[0]

    for branch, head in heads.items():
        walk(head, now - rules.retention_days(branch) * DAY)
    first_parents = {c.parents[0] for c in commits.values() if c.parents}
    head_ids = set(heads.values())
    default = now - rules.default_retention_days * DAY
    for commit in commits.values():
        # A dangling commit stays as if a head child of the same age pointed at it.
        if commit.id not in first_parents and commit.id not in head_ids and commit.created > default:
            walk(commit.id, default)
    return kept


@dataclass
class GcResult:
    """What one run found and did (``deleted`` is what a dry run would delete)."""

    repository: str
    dry_run: bool
    retained_commits: int
    expired_commits: int
    scanned_blocks: int
    live_blocks: int
    too_young: int
    deleted: list[StoredBlock] = field(default_factory=list)
    revived: int = 0
    seconds: float = 0.0

    @property
    def deleted_bytes(self) -> int:
        return sum(block.size for block in self.deleted)

    def to_json(self, *, addresses: bool = True) -> dict[str, Any]:
        body = {
            "repository": self.repository,
            "dry_run": self.dry_run,
            "retained_commits": self.retained_commits,
            "expired_commits": self.expired_commits,
            "scanned_blocks": self.scanned_blocks,
            "live_blocks": self.live_blocks,
            "too_young": self.too_young,
            "revived": self.revived,
            "deleted_blocks": len(self.deleted),
            "deleted_bytes": self.deleted_bytes,
            "seconds": round(self.seconds, 3),
        }
        if addresses:
            body["deleted"] = [{"address": b.address, "size_bytes": b.size} for b in self.deleted]
        return body


class GarbageCollector:
    """Mark and sweep for one repository over a ``Store`` and its block store.

    Args:
        store: The metadata store.
        blocks: The block store holding the repository's namespace.
        batch_size: Blocks deleted per write transaction.
        pause_seconds: Pause between batches, so writers waiting on the lock get through.
        clock: Seconds since the epoch (a test may pin it).
    """

    def __init__(
        self,
        store,
        blocks: BlockStore,
        *,
        batch_size: int = 1000,
        pause_seconds: float = 0.01,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.blocks = blocks
        self.batch_size = batch_size
        self.pause_seconds = pause_seconds
        self.clock = clock

    def run(self, repository: str, *, dry_run: bool, min_age_seconds: float) -> GcResult:
        started = time.monotonic()
        now = self.clock()
        rules_json = self.store.gc_rules(repository)
        if rules_json is None:
            raise NotFound(
                f"no GC rules set for repository {repository!r}: set them first "
                f"(PUT /api/v1/repositories/{repository}/settings/gc_rules)"
            )
        rules = GcRules.parse(rules_json)
        snapshot = self._mark(repository, rules, now)
        namespace = self.store.get_repository(repository)["storage_namespace"]
        scanned, too_young, candidates = 0, 0, []
        for block in self.blocks.list_blocks(namespace):
            scanned += 1
            if block.address in snapshot.live:
                continue
            if block.written > now - min_age_seconds:
                too_young += 1
                continue
            candidates.append(block)
        candidates.sort(key=lambda block: block.address)
        result = GcResult(
            repository=repository,
            dry_run=dry_run,
            retained_commits=len(snapshot.retained),
            expired_commits=snapshot.commit_count - len(snapshot.retained),
            scanned_blocks=scanned,
            live_blocks=len(snapshot.live),
            too_young=too_young,
        )
        if not dry_run:
            result.expired_commits = self._expire(repository, snapshot)
        for start in range(0, len(candidates), self.batch_size):
            batch = candidates[start : start + self.batch_size]
            doomed = self._sweep(repository, snapshot, batch, dry_run=dry_run)
            result.revived += len(batch) - len(doomed)
            result.deleted.extend(doomed)
            if not dry_run and self.pause_seconds:
                time.sleep(self.pause_seconds)
        result.seconds = time.monotonic() - started
        logger.info(
            "gc %s%s: %d of %d blocks %s (%d bytes), %d commits expired, %d too young, %d revived",
            repository,
            " (dry run)" if dry_run else "",
            len(result.deleted),
            scanned,
            "would go" if dry_run else "deleted",
            result.deleted_bytes,
            result.expired_commits,
            too_young,
            result.revived,
        )
        return result

    # -- mark ----------------------------------------------------------------------------------

    def _mark(self, repository: str, rules: GcRules, now: float) -> _Snapshot:
        conn = self.store.conn()
        conn.execute("BEGIN")  # one read snapshot for everything below (WAL)
        try:
            commits = {
                row[0]: Commit(row[0], json.loads(row[1]), row[2], row[3])
                for row in conn.execute(
                    "SELECT id, parents, creation_date, meta_range_id FROM commits WHERE repository = ?",
                    (repository,),
                )
            }
            heads = dict(
                conn.execute("SELECT name, commit_id FROM branches WHERE repository = ?", (repository,))
            )
            last_rowid = conn.execute(
                "SELECT coalesce(max(rowid), 0) FROM commits WHERE repository = ?", (repository,)
            ).fetchone()[0]
            retained = retained_commits(commits, heads, rules, now)
            nodes = self.store._nodes(conn)
            live: set[str] = set()
            seen: set[str] = set()
            for commit_id in retained:
                tree.collect_addresses(nodes, commits[commit_id].root, seen, live)
            live.update(self._staged_addresses(conn, repository))
        finally:
            conn.execute("COMMIT")
        return _Snapshot(
            retained=retained,
            commit_ids=set(commits),
            commit_count=len(commits),
            live=live,
            last_rowid=last_rowid,
            covered=set(retained),
        )

    @staticmethod
    def _staged_addresses(conn, repository: str, among: set[str] | None = None) -> Iterator[str]:
        rows = conn.execute(
            "SELECT json_extract(entry, '$[0]') FROM staged WHERE repository = ? AND entry IS NOT NULL",
            (repository,),
        )
        for (address,) in rows:
            if among is None or address in among:
                yield address

    # -- sweep ---------------------------------------------------------------------------------

    def _expire(self, repository: str, snapshot: _Snapshot) -> int:
        """Record the expired commits before any block goes: from now on no branch, hard reset, merge,
        revert or cherry-pick may build on them (their data is about to be removed). Tags may still
        name them (tags protect nothing, as in lakeFS); reads of what is gone answer 410."""
        with self.store.transaction() as conn:
            self._catch_up(conn, repository, snapshot)
            expired = snapshot.commit_ids - snapshot.covered
            self.store.expire_commits(conn, repository, expired)
        return len(expired)

    def _sweep(
        self, repository: str, snapshot: _Snapshot, batch: list[StoredBlock], *, dry_run: bool
    ) -> list[StoredBlock]:
        addresses = {block.address for block in batch}
        with self.store.transaction() as conn:  # every writer waits while this batch is decided
            self._catch_up(conn, repository, snapshot)
            reachable = snapshot.live | set(self._staged_addresses(conn, repository, addresses))
            doomed = [block for block in batch if block.address not in reachable]
            if doomed and not dry_run:
                gone = [block.address for block in doomed]
                self.blocks.delete(gone)
                conn.executemany("DELETE FROM blocks WHERE address = ?", ((a,) for a in gone))
        return doomed

    def _catch_up(self, conn, repository: str, snapshot: _Snapshot) -> None:
        """Add to ``snapshot.live`` what became reachable since the mark: the changes of new commits
        and the trees of heads that moved to commits outside the retained set."""
        nodes = self.store._nodes(conn)
        new = conn.execute(
            "SELECT rowid, id, parents, meta_range_id FROM commits WHERE repository = ? AND rowid > ?"
            " ORDER BY rowid",
            (repository, snapshot.last_rowid),
        ).fetchall()
        for rowid, commit_id, parents_raw, root in new:
            parents = json.loads(parents_raw)
            if parents:
                parent_root = self.store._commit(conn, repository, parents[0])["meta_range_id"]
                for _, _, after in tree.diff_trees(nodes, parent_root, root, equal=operator.eq):
                    if after is not None:
                        snapshot.live.add(after[0])
            else:
                tree.collect_addresses(nodes, root, set(), snapshot.live)
            snapshot.new_commits[commit_id] = parents[0] if parents else None
            snapshot.last_rowid = rowid
        for head in {
            row[0]
            for row in conn.execute("SELECT commit_id FROM branches WHERE repository = ?", (repository,))
        }:
            current = head
            while current in snapshot.new_commits:  # new commits' changes are already counted
                parent = snapshot.new_commits[current]
                if parent is None:
                    break
                current = parent
            if current not in snapshot.covered and current not in snapshot.new_commits:
                root = self.store._commit(conn, repository, current)["meta_range_id"]
                tree.collect_addresses(nodes, root, set(), snapshot.live)
                snapshot.covered.add(current)


def request_gc(
    endpoint: str,
    access_key_id: str,
    secret_access_key: str,
    repository: str,
    *,
    dry_run: bool = False,
    min_age_hours: float = DEFAULT_MIN_AGE_HOURS,
    addresses: bool = True,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Ask an embedded server (its API ``endpoint``, ``.../api/v1``) to collect one repository.

    Raises:
        GarbageCollectionError: the server refused (no rules, bad options) or failed; its message.
        LakeFSUnavailableError: the server did not answer.
    """
    import httpx

    from infra.errors import GarbageCollectionError, LakeFSUnavailableError

    root = endpoint.rstrip("/").removesuffix("/api/v1")
    params = {
        "dry_run": str(dry_run).lower(),
        "min_age_hours": str(min_age_hours),
        "addresses": str(addresses).lower(),
    }
    try:
        response = httpx.post(
            f"{root}/_lockgate/gc/{repository}",
            params=params,
            auth=(access_key_id, secret_access_key),
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise LakeFSUnavailableError(
            f"the embedded lakeFS server at {root} did not answer the garbage collection of {repository!r}: "
            f"{error}; is it running (lockgate lakefs serve)?"
        ) from error
    if response.status_code != 200:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        hint = (
            " (a real lakeFS collects garbage with its Spark GC job instead)"
            if response.status_code == 404 and "GC rules" not in message
            else ""
        )
        raise GarbageCollectionError(
            f"garbage collection of {repository!r} failed ({response.status_code}): {message}{hint}"
        )
    return response.json()


@dataclass
class _Snapshot:
    retained: set[str]
    commit_ids: set[str]
    commit_count: int
    live: set[str]
    last_rowid: int
    covered: set[str]  # commits whose whole tree is in ``live``
    new_commits: dict[str, str | None] = field(default_factory=dict)  # id -> first parent
