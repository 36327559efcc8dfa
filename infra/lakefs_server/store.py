"""The versioning engine: repositories, branches, tags, commits, staging, diff and merge over SQLite.

Everything that changes state runs in one SQLite transaction (``BEGIN IMMEDIATE``, WAL journal), so a
process killed at any point leaves either the whole operation or none of it. Writers are serialised
by SQLite; readers never block. Committed trees are content-addressed nodes (see ``tree``), staged
changes are rows keyed by (repository, branch, path): a commit moves them into a new tree in the
same transaction that moves the branch.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tree
from .errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from .names import validate_branch_name, validate_repository_name, validate_tag_name

Entry = list[Any]  # [physical_address, checksum, size, mtime, content_type, metadata]
COMMIT_VERSION = 1
MAX_PAGE = 1000
_REF_MODIFIER = re.compile(r"([~^])(\d*)|(@)|(\$)")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS repositories (
    name TEXT PRIMARY KEY, storage_namespace TEXT NOT NULL, default_branch TEXT NOT NULL,
    creation_date INTEGER NOT NULL, read_only INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS commits (
    repository TEXT NOT NULL, id TEXT NOT NULL, parents TEXT NOT NULL, committer TEXT NOT NULL,
    message TEXT NOT NULL, creation_date INTEGER NOT NULL, meta_range_id TEXT NOT NULL,
    metadata TEXT NOT NULL, generation INTEGER NOT NULL, PRIMARY KEY (repository, id)
);
CREATE TABLE IF NOT EXISTS branches (
    repository TEXT NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL, hidden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, name)
);
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL, PRIMARY KEY (repository, name)
);
CREATE TABLE IF NOT EXISTS staged (
    repository TEXT NOT NULL, branch TEXT NOT NULL, path TEXT NOT NULL, entry TEXT,
    PRIMARY KEY (repository, branch, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Resolved:
    """A ref expression resolved to a commit, remembering the branch when it named one."""

    commit_id: str
    branch: str | None = None
    modifier: str | None = None  # "@" committed only, "$" staging explicitly

    @property
    def includes_staging(self) -> bool:
        return self.branch is not None and self.modifier != "@"


@dataclass(frozen=True)
class Change:
    """One path that differs between two states."""

    path: str
    kind: str  # added | removed | changed
    entry: Entry | None  # the right-hand entry (None when removed)


def _now() -> int:
    return int(time.time())


def commit_id_for(record: dict[str, Any]) -> str:
    """Content address of a commit: SHA-256 over its canonical fields."""
    canonical = {
        key: record[key]
        for key in (
            "parents",
            "committer",
            "message",
            "creation_date",
            "meta_range_id",
            "metadata",
            "generation",
        )
    }
    canonical["version"] = COMMIT_VERSION
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


class Store:
    """Metadata of every repository, in one SQLite database.

    Args:
        db_path: The SQLite file (created with its schema when missing).
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._local = threading.local()
        self.conn().executescript(_SCHEMA)

    # -- connections and transactions ---------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _nodes(self, conn: sqlite3.Connection) -> tree.NodeStore:
        def load(node_id: str) -> bytes:
            row = conn.execute("SELECT data FROM nodes WHERE id = ?", (node_id,)).fetchone()
            if row is None:
                raise KeyError(node_id)
            return row[0]

        return tree.NodeStore(load)

    @staticmethod
    def _save_nodes(conn: sqlite3.Connection, nodes: tree.NodeStore) -> None:
        conn.executemany("INSERT OR IGNORE INTO nodes (id, data) VALUES (?, ?)", nodes.pending.items())
        nodes.pending.clear()

    # -- repositories --------------------------------------------------------------------------

    def create_repository(
        self, name: str, *, storage_namespace: str, default_branch: str, read_only: bool = False
    ) -> dict[str, Any]:
        validate_repository_name(name)
        validate_branch_name(default_branch)
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM repositories WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"repository {name!r} already exists")
            clash = conn.execute(
                "SELECT name FROM repositories WHERE storage_namespace = ?", (storage_namespace,)
            ).fetchone()
            if clash:
                raise BadRequest(
                    f"storage namespace {storage_namespace!r} is already used by repository {clash[0]!r}"
                )
            created = _now()
            conn.execute(
                "INSERT INTO repositories (name, storage_namespace, default_branch, creation_date, read_only)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, storage_namespace, default_branch, created, int(read_only)),
            )
            commit = self._insert_commit(
                conn,
                name,
                parents=[],
                message="Repository created",
                committer="",
                meta_range_id=tree.EMPTY_TREE_ID,
                metadata={},
                creation_date=created,
            )
            conn.execute(
                "INSERT INTO branches (repository, name, commit_id) VALUES (?, ?, ?)",
                (name, default_branch, commit["id"]),
            )
        return self.get_repository(name)

    def get_repository(self, name: str) -> dict[str, Any]:
        row = (
            self.conn()
            .execute(
                "SELECT name, storage_namespace, default_branch, creation_date, read_only FROM repositories"
                " WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        if row is None:
            raise NotFound(f"repository {name!r} not found")
        return {
            "id": row[0],
            "storage_namespace": row[1],
            "default_branch": row[2],
            "creation_date": row[3],
            "read_only": bool(row[4]),
        }

    def list_repositories(self, *, prefix: str, after: str, amount: int) -> list[dict[str, Any]]:
        rows = (
            self.conn()
            .execute(
                "SELECT name FROM repositories WHERE name > ? AND name >= ? ORDER BY name LIMIT ?",
                (after, prefix, amount + 1),
            )
            .fetchall()
        )
        return [self.get_repository(name) for (name,) in rows if name.startswith(prefix)]

    def delete_repository(self, name: str) -> None:
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM repositories WHERE name = ?", (name,)).fetchone():
                raise NotFound(f"repository {name!r} not found")
            for table in ("commits", "branches", "tags", "staged"):
                conn.execute(f"DELETE FROM {table} WHERE repository = ?", (name,))  # noqa: S608
            conn.execute("DELETE FROM repositories WHERE name = ?", (name,))

    def repository_metadata(self, name: str) -> dict[str, str]:
        self.get_repository(name)
        row = self.conn().execute("SELECT metadata FROM repositories WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0])

    # -- commits -------------------------------------------------------------------------------

    def _insert_commit(
        self,
        conn: sqlite3.Connection,
        repository: str,
        *,
        parents: list[str],
        message: str,
        committer: str,
        meta_range_id: str,
        metadata: dict[str, str],
        creation_date: int | None = None,
    ) -> dict[str, Any]:
        generation = 1 + max((self._commit(conn, repository, p)["generation"] for p in parents), default=0)
        record = {
            "parents": parents,
            "committer": committer,
            "message": message,
            "creation_date": creation_date if creation_date is not None else _now(),
            "meta_range_id": meta_range_id,
            "metadata": metadata,
            "generation": generation,
        }
        record["id"] = commit_id_for(record)
        conn.execute(
            "INSERT OR IGNORE INTO commits (repository, id, parents, committer, message, creation_date,"
            " meta_range_id, metadata, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                repository,
                record["id"],
                json.dumps(parents),
                committer,
                message,
                record["creation_date"],
                meta_range_id,
                json.dumps(metadata),
                generation,
            ),
        )
        return record

    @staticmethod
    def _commit(conn: sqlite3.Connection, repository: str, commit_id: str) -> dict[str, Any]:
        row = conn.execute(
            "SELECT id, parents, committer, message, creation_date, meta_range_id, metadata, generation"
            " FROM commits WHERE repository = ? AND id = ?",
            (repository, commit_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"commit {commit_id!r} not found in repository {repository!r}")
        return {
            "id": row[0],
            "parents": json.loads(row[1]),
            "committer": row[2],
            "message": row[3],
            "creation_date": row[4],
            "meta_range_id": row[5],
            "metadata": json.loads(row[6]),
            "generation": row[7],
            "version": COMMIT_VERSION,
        }

    def get_commit(self, repository: str, ref: str) -> dict[str, Any]:
        resolved = self.resolve(repository, ref)
        return self._commit(self.conn(), repository, resolved.commit_id)

    # -- refs ----------------------------------------------------------------------------------

    def resolve(self, repository: str, ref: str, conn: sqlite3.Connection | None = None) -> Resolved:
        """Resolve a ref expression: commit ID or unique prefix, branch, tag, then ``~N ^N @ $``."""
        conn = conn or self.conn()
        self.get_repository(repository)
        if not ref:
            raise BadRequest("empty reference")
        cut = min((i for i, ch in enumerate(ref) if ch in "~^@$"), default=len(ref))
        base, suffix = ref[:cut], ref[cut:]
        modifiers: list[tuple[str, int]] = []
        position = 0
        while position < len(suffix):
            match = _REF_MODIFIER.match(suffix, position)
            if not match:
                raise BadRequest(f"invalid reference {ref!r}: cannot parse {suffix[position:]!r}")
            if match.group(1):
                modifiers.append((match.group(1), int(match.group(2)) if match.group(2) else 1))
            else:
                modifiers.append((match.group(3) or match.group(4), 0))
            position = match.end()
        branch = None
        row = conn.execute(
            "SELECT commit_id FROM branches WHERE repository = ? AND name = ?", (repository, base)
        ).fetchone()
        if row:
            branch, commit_id = base, row[0]
        else:
            row = conn.execute(
                "SELECT commit_id FROM tags WHERE repository = ? AND name = ?", (repository, base)
            ).fetchone()
            commit_id = row[0] if row else self._commit_by_prefix(conn, repository, base, ref)
        if any(kind in "@$" for kind, _ in modifiers):
            if branch is None or len(modifiers) != 1:
                raise BadRequest(f"invalid reference {ref!r}: '@' and '$' apply to a branch name alone")
            return Resolved(commit_id, branch, modifiers[0][0])
        for kind, count in modifiers:
            if kind == "~":
                for _ in range(count):
                    parents = self._commit(conn, repository, commit_id)["parents"]
                    if not parents:
                        raise NotFound(f"reference {ref!r} not found: history is shorter than requested")
                    commit_id = parents[0]
            elif count:
                parents = self._commit(conn, repository, commit_id)["parents"]
                if len(parents) < count:
                    raise NotFound(f"reference {ref!r} not found: commit has {len(parents)} parent(s)")
                commit_id = parents[count - 1]
        return Resolved(commit_id, branch if not modifiers else None)

    def _commit_by_prefix(self, conn: sqlite3.Connection, repository: str, prefix: str, ref: str) -> str:
        if len(prefix) >= 4 and re.fullmatch(r"[0-9a-f]+", prefix):
            rows = conn.execute(
                "SELECT id FROM commits WHERE repository = ? AND id >= ? AND id < ? LIMIT 2",
                (repository, prefix, prefix + "g"),
            ).fetchall()
            if len(rows) == 1:
                return rows[0][0]
            if len(rows) > 1:
                raise BadRequest(f"reference {ref!r} is ambiguous: several commits start with {prefix!r}")
        raise NotFound(f"reference {ref!r} not found in repository {repository!r}")

    # -- branches and tags ---------------------------------------------------------------------

    def branch_commit(self, repository: str, branch: str, conn: sqlite3.Connection | None = None) -> str:
        conn = conn or self.conn()
        row = conn.execute(
            "SELECT commit_id FROM branches WHERE repository = ? AND name = ?", (repository, branch)
        ).fetchone()
        if row is None:
            self.get_repository(repository)
            raise NotFound(f"branch {branch!r} not found in repository {repository!r}")
        return row[0]

    def create_branch(self, repository: str, name: str, *, source: str, force: bool = False) -> str:
        validate_branch_name(name)
        with self.transaction() as conn:
            resolved = self.resolve(repository, source, conn)
            if resolved.modifier == "$":
                raise BadRequest(f"source reference {source!r}: a branch can only be created from a commit")
            exists = conn.execute(
                "SELECT 1 FROM branches WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone()
            if exists and not force:
                raise Conflict(f"branch {name!r} already exists in repository {repository!r}")
            if conn.execute(
                "SELECT 1 FROM tags WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone():
                raise Conflict(f"a tag named {name!r} already exists in repository {repository!r}")
            conn.execute(
                "INSERT OR REPLACE INTO branches (repository, name, commit_id) VALUES (?, ?, ?)",
                (repository, name, resolved.commit_id),
            )
        return resolved.commit_id

    def list_refs(
        self, repository: str, table: str, *, prefix: str, after: str, amount: int
    ) -> list[dict[str, str]]:
        self.get_repository(repository)
        rows = (
            self.conn()
            .execute(
                f"SELECT name, commit_id FROM {table} WHERE repository = ? AND name > ? AND name >= ?"  # noqa: S608
                " ORDER BY name LIMIT ?",
                (repository, after, prefix, amount + 1),
            )
            .fetchall()
        )
        return [{"id": name, "commit_id": commit} for name, commit in rows if name.startswith(prefix)]

    def delete_branch(self, repository: str, name: str) -> None:
        with self.transaction() as conn:
            if self.get_repository(repository)["default_branch"] == name:
                raise Forbidden(
                    f"cannot delete {name!r}: it is the default branch of repository {repository!r}"
                )
            self.branch_commit(repository, name, conn)
            conn.execute("DELETE FROM branches WHERE repository = ? AND name = ?", (repository, name))
            conn.execute("DELETE FROM staged WHERE repository = ? AND branch = ?", (repository, name))

    def hard_reset_branch(self, repository: str, branch: str, *, ref: str) -> None:
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            target = self.resolve(repository, ref, conn).commit_id
            self._move_branch(conn, repository, branch, target)
            conn.execute("DELETE FROM staged WHERE repository = ? AND branch = ?", (repository, branch))

    def get_tag(self, repository: str, name: str) -> str:
        self.get_repository(repository)
        row = (
            self.conn()
            .execute("SELECT commit_id FROM tags WHERE repository = ? AND name = ?", (repository, name))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"tag {name!r} not found in repository {repository!r}")
        return row[0]

    def create_tag(self, repository: str, name: str, *, ref: str, force: bool = False) -> str:
        validate_tag_name(name)
        with self.transaction() as conn:
            resolved = self.resolve(repository, ref, conn)
            exists = conn.execute(
                "SELECT 1 FROM tags WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone()
            if exists and not force:
                raise Conflict(f"tag {name!r} already exists in repository {repository!r}")
            conn.execute(
                "INSERT OR REPLACE INTO tags (repository, name, commit_id) VALUES (?, ?, ?)",
                (repository, name, resolved.commit_id),
            )
        return resolved.commit_id

    def delete_tag(self, repository: str, name: str) -> None:
        with self.transaction() as conn:
            self.get_tag(repository, name)
            conn.execute("DELETE FROM tags WHERE repository = ? AND name = ?", (repository, name))

    # -- objects -------------------------------------------------------------------------------

    def get_entry(self, repository: str, ref: str | Resolved, path: str) -> Entry:
        """Return the entry at ``path`` as seen from ``ref`` (staged changes included on branches)."""
        conn = self.conn()
        resolved = ref if isinstance(ref, Resolved) else self.resolve(repository, ref, conn)
        if resolved.includes_staging:
            row = conn.execute(
                "SELECT entry FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                (repository, resolved.branch, path),
            ).fetchone()
            if row is not None:
                if row[0] is None:
                    raise NotFound(
                        f"object {path!r} not found at {ref_name(resolved)!r} (deleted, uncommitted)"
                    )
                return json.loads(row[0])
        commit = self._commit(conn, repository, resolved.commit_id)
        entry = tree.get_entry(self._nodes(conn), commit["meta_range_id"], path)
        if entry is None:
            raise NotFound(
                f"object {path!r} not found at {ref_name(resolved)!r} in repository {repository!r}"
            )
        return entry

    def stage(
        self,
        repository: str,
        branch: str,
        path: str,
        entry: Entry | None,
        *,
        if_absent: bool = False,
        must_exist: bool = False,
    ) -> None:
        """Stage a new entry (or a deletion, ``entry=None``) for ``path`` on ``branch``."""
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            if if_absent or must_exist or entry is None:
                exists = self._exists(conn, repository, branch, path)
                if if_absent and exists:
                    raise PreconditionFailed(f"object {path!r} already exists (If-None-Match: *)")
                if (must_exist or entry is None) and not exists:
                    raise NotFound(f"object {path!r} not found on branch {branch!r}")
            committed = None
            if entry is None:
                head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
                committed = tree.get_entry(self._nodes(conn), head["meta_range_id"], path)
            if entry is None and committed is None:
                conn.execute(
                    "DELETE FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                    (repository, branch, path),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO staged (repository, branch, path, entry) VALUES (?, ?, ?, ?)",
                    (repository, branch, path, None if entry is None else json.dumps(entry)),
                )

    def stage_entries(self, repository: str, branch: str, items: list[tuple[str, Entry]]) -> None:
        """Stage many new entries in one transaction (bulk import of already-stored blocks)."""
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            conn.executemany(
                "INSERT OR REPLACE INTO staged (repository, branch, path, entry) VALUES (?, ?, ?, ?)",
                ((repository, branch, path, json.dumps(entry)) for path, entry in items),
            )

    def _exists(self, conn: sqlite3.Connection, repository: str, branch: str, path: str) -> bool:
        row = conn.execute(
            "SELECT entry FROM staged WHERE repository = ? AND branch = ? AND path = ?",
            (repository, branch, path),
        ).fetchone()
        if row is not None:
            return row[0] is not None
        head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
        return tree.get_entry(self._nodes(conn), head["meta_range_id"], path) is not None

    def iter_objects(self, repository: str, resolved: Resolved, *, start: str) -> Iterator[tuple[str, Entry]]:
        """Yield ``(path, entry)`` for every object at the ref with path >= ``start``, in order."""
        conn = self.conn()
        commit = self._commit(conn, repository, resolved.commit_id)
        committed = tree.iter_entries(self._nodes(conn), commit["meta_range_id"], start=start)
        if not resolved.includes_staging:
            yield from committed
            return
        staged_rows = conn.execute(
            "SELECT path, entry FROM staged WHERE repository = ? AND branch = ? AND path >= ? ORDER BY path",
            (repository, resolved.branch, start),
        )
        staged = ((path, None if raw is None else json.loads(raw)) for path, raw in staged_rows)
        sentinel: tuple[Any, Any] = (None, None)
        a, b = next(committed, sentinel), next(staged, sentinel)
        while a[0] is not None or b[0] is not None:
            if b[0] is None or (a[0] is not None and a[0] < b[0]):
                yield a
                a = next(committed, sentinel)
            else:
                if b[1] is not None:
                    yield b
                if a[0] == b[0]:
                    a = next(committed, sentinel)
                b = next(staged, sentinel)

    # -- staging area --------------------------------------------------------------------------

    def uncommitted(
        self, repository: str, branch: str, *, prefix: str = "", after: str = ""
    ) -> Iterator[Change]:
        conn = self.conn()
        head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
        nodes = self._nodes(conn)
        rows = conn.execute(
            "SELECT path, entry FROM staged WHERE repository = ? AND branch = ? AND path > ? AND path >= ?"
            " ORDER BY path",
            (repository, branch, after, prefix),
        )
        for path, raw in rows:
            if not path.startswith(prefix):
                break
            committed = tree.get_entry(nodes, head["meta_range_id"], path)
            if raw is None:
                yield Change(path, "removed", None)
            else:
                yield Change(path, "changed" if committed is not None else "added", json.loads(raw))

    @staticmethod
    def _move_branch(conn: sqlite3.Connection, repository: str, branch: str, commit_id: str) -> None:
        conn.execute(
            "UPDATE branches SET commit_id = ? WHERE repository = ? AND name = ?",
            (commit_id, repository, branch),
        )

    def _require_clean(self, conn: sqlite3.Connection, repository: str, branch: str, *, what: str) -> None:
        if self._is_dirty(conn, repository, branch):
            raise BadRequest(
                f"{what}: branch {branch!r} is dirty (has uncommitted changes); commit or reset them first"
            )

    def _is_dirty(self, conn: sqlite3.Connection, repository: str, branch: str) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM staged WHERE repository = ? AND branch = ? LIMIT 1", (repository, branch)
            ).fetchone()
            is not None
        )

    def reset(self, repository: str, branch: str, *, kind: str, path: str = "") -> None:
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            if kind == "reset":
                conn.execute("DELETE FROM staged WHERE repository = ? AND branch = ?", (repository, branch))
            elif kind == "object":
                conn.execute(
                    "DELETE FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                    (repository, branch, path),
                )
            elif kind == "common_prefix":
                conn.execute(
                    "DELETE FROM staged WHERE repository = ? AND branch = ?"
                    " AND path >= ? AND substr(path, 1, ?) = ?",
                    (repository, branch, path, len(path), path),
                )
            else:
                raise BadRequest(f"unknown reset type {kind!r}: use 'reset', 'object' or 'common_prefix'")

    # -- commit --------------------------------------------------------------------------------

    def commit(
        self,
        repository: str,
        branch: str,
        *,
        message: str,
        metadata: dict[str, str],
        committer: str,
        allow_empty: bool = False,
        date: int | None = None,
    ) -> dict[str, Any]:
        with self.transaction() as conn:
            head_id = self.branch_commit(repository, branch, conn)
            head = self._commit(conn, repository, head_id)
            rows = conn.execute(
                "SELECT path, entry FROM staged WHERE repository = ? AND branch = ?", (repository, branch)
            ).fetchall()
            if not rows and not allow_empty:
                raise BadRequest(
                    f"commit: no changes on branch {branch!r} (pass allow_empty to commit anyway)"
                )
            nodes = self._nodes(conn)
            changes = {path: None if raw is None else json.loads(raw) for path, raw in rows}
            root = tree.apply_changes(nodes, head["meta_range_id"], changes)
            self._save_nodes(conn, nodes)
            record = self._insert_commit(
                conn,
                repository,
                parents=[head_id],
                message=message,
                committer=committer,
                meta_range_id=root,
                metadata=metadata,
                creation_date=date,
            )
            self._move_branch(conn, repository, branch, record["id"])
            conn.execute("DELETE FROM staged WHERE repository = ? AND branch = ?", (repository, branch))
            return self._commit(conn, repository, record["id"])

    # -- history -------------------------------------------------------------------------------

    def log(
        self,
        repository: str,
        ref: str,
        *,
        first_parent: bool = False,
        stop_at: str | None = None,
        since: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield commits reachable from ``ref``, newest first."""
        conn = self.conn()
        start = self.resolve(repository, ref, conn).commit_id
        stop_id = self.resolve(repository, stop_at, conn).commit_id if stop_at else None
        seen = {start}
        first = self._commit(conn, repository, start)
        queue = [(-first["creation_date"], -first["generation"], start, first)]
        while queue:
            _, _, _, commit = heapq.heappop(queue)
            if since is not None and commit["creation_date"] < since:
                continue
            yield commit
            if commit["id"] == stop_id:
                return
            parents = commit["parents"][:1] if first_parent else commit["parents"]
            for parent_id in parents:
                if parent_id not in seen:
                    seen.add(parent_id)
                    parent = self._commit(conn, repository, parent_id)
                    heapq.heappush(
                        queue, (-parent["creation_date"], -parent["generation"], parent_id, parent)
                    )

    def merge_base(
        self, repository: str, left: str, right: str, conn: sqlite3.Connection | None = None
    ) -> str:
        """Best common ancestor of two commits (the one with the highest generation)."""
        conn = conn or self.conn()

        def ancestors(commit_id: str) -> dict[str, int]:
            found: dict[str, int] = {}
            stack = [commit_id]
            while stack:
                current = stack.pop()
                if current in found:
                    continue
                commit = self._commit(conn, repository, current)
                found[current] = commit["generation"]
                stack.extend(commit["parents"])
            return found

        left_ancestors = ancestors(left)
        common = {c: g for c, g in ancestors(right).items() if c in left_ancestors}
        if not common:
            raise NotFound(f"commits {left[:12]} and {right[:12]} have no common ancestor")
        return max(common, key=lambda c: (common[c], c))

    # -- diff ----------------------------------------------------------------------------------

    def diff_commits(self, repository: str, left: str, right: str, *, prefix: str = "") -> Iterator[Change]:
        conn = self.conn()
        left_root = self._commit(conn, repository, left)["meta_range_id"]
        right_root = self._commit(conn, repository, right)["meta_range_id"]
        for path, before, after in tree.diff_trees(self._nodes(conn), left_root, right_root, prefix=prefix):
            kind = "added" if before is None else "removed" if after is None else "changed"
            yield Change(path, kind, after)

    # -- merge, revert, cherry-pick ------------------------------------------------------------

    def _three_way(
        self,
        conn: sqlite3.Connection,
        repository: str,
        *,
        base: str,
        source: str,
        destination: str,
        strategy: str | None,
        what: str,
    ) -> tuple[str, int]:
        """Apply base->source changes onto destination; return (new tree, number of source changes)."""
        if strategy not in (None, "", "dest-wins", "source-wins"):
            raise BadRequest(f"unknown merge strategy {strategy!r}: use 'dest-wins' or 'source-wins'")
        nodes = self._nodes(conn)
        roots = {
            name: self._commit(conn, repository, cid)["meta_range_id"]
            for name, cid in (("base", base), ("source", source), ("destination", destination))
        }
        source_changes = {p: after for p, _, after in tree.diff_trees(nodes, roots["base"], roots["source"])}
        destination_changes = {
            p: after for p, _, after in tree.diff_trees(nodes, roots["base"], roots["destination"])
        }
        apply: dict[str, Entry | None] = {}
        conflicts = []
        for path, after in source_changes.items():
            if path in destination_changes and destination_changes[path] != after:
                if strategy == "dest-wins":
                    continue
                if strategy != "source-wins":
                    conflicts.append(path)
                    continue
            apply[path] = after
        if conflicts:
            shown = ", ".join(conflicts[:10]) + (" ..." if len(conflicts) > 10 else "")
            raise Conflict(
                f"{what}: conflict found on {len(conflicts)} path(s): {shown}; "
                "resolve them, or pass strategy 'dest-wins' or 'source-wins'",
                extra={"reference": ""},
            )
        root = tree.apply_changes(nodes, roots["destination"], apply)
        self._save_nodes(conn, nodes)
        return root, len(source_changes)

    def merge(
        self,
        repository: str,
        *,
        source_ref: str,
        destination: str,
        message: str | None,
        metadata: dict[str, str],
        committer: str,
        strategy: str | None = None,
        allow_empty: bool = False,
        squash: bool = False,
    ) -> str:
        with self.transaction() as conn:
            source = self.resolve(repository, source_ref, conn).commit_id
            head = self.branch_commit(repository, destination, conn)
            self._require_clean(conn, repository, destination, what="merge: destination")
            base = self.merge_base(repository, source, head, conn)
            root, _ = self._three_way(
                conn, repository, base=base, source=source, destination=head, strategy=strategy, what="merge"
            )
            unchanged = source == base or root == self._commit(conn, repository, head)["meta_range_id"]
            if unchanged and not allow_empty:
                raise BadRequest(f"merge: no changes to merge from {source_ref!r} into {destination!r}")
            record = self._insert_commit(
                conn,
                repository,
                parents=[head] if squash else [head, source],
                message=message or f"Merge '{source_ref}' into '{destination}'",
                committer=committer,
                meta_range_id=root,
                metadata=metadata,
            )
            self._move_branch(conn, repository, destination, record["id"])
            return record["id"]

    def _pick_parent(self, commit: dict[str, Any], parent_number: int | None, what: str) -> str:
        parents = commit["parents"]
        if not parents:
            raise BadRequest(f"{what}: commit {commit['id'][:12]} has no parent")
        if len(parents) > 1 and not parent_number:
            raise BadRequest(
                f"{what}: commit {commit['id'][:12]} is a merge commit; pass parent_number (1 or 2)"
            )
        number = parent_number or 1
        if number > len(parents) or number < 1:
            raise BadRequest(f"{what}: parent_number {number} is out of range (commit has {len(parents)})")
        return parents[number - 1]

    def revert(
        self,
        repository: str,
        branch: str,
        *,
        ref: str,
        parent_number: int | None,
        committer: str,
        allow_empty: bool = False,
    ) -> str:
        with self.transaction() as conn:
            head = self.branch_commit(repository, branch, conn)
            self._require_clean(conn, repository, branch, what="revert")
            target = self._commit(conn, repository, self.resolve(repository, ref, conn).commit_id)
            parent = self._pick_parent(target, parent_number, "revert")
            root, changed = self._three_way(
                conn,
                repository,
                base=target["id"],
                source=parent,
                destination=head,
                strategy=None,
                what="revert",
            )
            if not changed and not allow_empty:
                raise BadRequest(f"revert: commit {target['id'][:12]} changed nothing")
            record = self._insert_commit(
                conn,
                repository,
                parents=[head],
                message=f"Revert {ref}",
                committer=committer,
                meta_range_id=root,
                metadata={},
            )
            self._move_branch(conn, repository, branch, record["id"])
            return record["id"]

    def cherry_pick(
        self, repository: str, branch: str, *, ref: str, parent_number: int | None, committer: str
    ) -> dict[str, Any]:
        with self.transaction() as conn:
            head = self.branch_commit(repository, branch, conn)
            self._require_clean(conn, repository, branch, what="cherry-pick")
            target = self._commit(conn, repository, self.resolve(repository, ref, conn).commit_id)
            parent = self._pick_parent(target, parent_number, "cherry-pick")
            root, _ = self._three_way(
                conn,
                repository,
                base=parent,
                source=target["id"],
                destination=head,
                strategy=None,
                what="cherry-pick",
            )
            record = self._insert_commit(
                conn,
                repository,
                parents=[head],
                message=target["message"],
                committer=committer,
                meta_range_id=root,
                metadata=target["metadata"],
            )
            self._move_branch(conn, repository, branch, record["id"])
            return self._commit(conn, repository, record["id"])


def ref_name(resolved: Resolved) -> str:
    return resolved.branch or resolved.commit_id[:12]
