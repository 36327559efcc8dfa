"""Shared foundations of the store: records, helpers, connections and repositories.

Holds the schema and constants, the ``Resolved`` and ``Change`` records, the helpers ``_now``,
``commit_id_for`` and ``ref_name``, ``StoreBase`` (per-thread SQLite connections, ``BEGIN IMMEDIATE``
transactions, the node-store helpers and the commit records every other part reads and writes) and
``RepositoriesMixin`` (create, get, list and delete repositories, repository metadata).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.lakefs_server import tree
from infra.lakefs_server.errors import BadRequest, Conflict, Gone, NotFound
from infra.lakefs_server.names import validate_branch_name, validate_repository_name

Entry = list[Any]  # [physical_address, checksum, size, mtime, content_type, metadata]
COMMIT_VERSION = 1
MAX_PAGE = 1000

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
CREATE TABLE IF NOT EXISTS gc_rules (repository TEXT PRIMARY KEY, rules TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS expired (
    repository TEXT NOT NULL, commit_id TEXT NOT NULL, PRIMARY KEY (repository, commit_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    address TEXT PRIMARY KEY, size INTEGER NOT NULL, checksum TEXT NOT NULL, created INTEGER NOT NULL
) WITHOUT ROWID;
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


def ref_name(resolved: Resolved) -> str:
    return resolved.branch or resolved.commit_id[:12]


class StoreBase:
    """Connections, transactions, node storage and commit records shared by every part of ``Store``.

    Args:
        db_path: The SQLite file (created with its schema when missing).
    """

    # Whether a physical address holds data; the server sets it from its block store, so staging an
    # entry whose block garbage collection removed is refused (checked inside the write transaction).
    block_exists: Callable[[str], bool] | None = None

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._local = threading.local()
        # Owner-only whatever the umask: SQLite gives its -wal and -shm files the database's mode.
        os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.db_path, 0o600)
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
            raise NotFound(f"commit not found: {commit_id!r} in repository {repository!r}")
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


class ExpiryMixin(StoreBase):
    """Commits garbage collection expired: their data may be gone, so nothing new may point at them."""

    def expire_commits(self, conn: sqlite3.Connection, repository: str, commit_ids: set[str]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO expired (repository, commit_id) VALUES (?, ?)",
            ((repository, commit_id) for commit_id in commit_ids),
        )

    def require_live(self, conn: sqlite3.Connection, repository: str, commit_id: str, *, what: str) -> None:
        """Refuse (410) to build on a commit garbage collection expired."""
        row = conn.execute(
            "SELECT 1 FROM expired WHERE repository = ? AND commit_id = ?", (repository, commit_id)
        ).fetchone()
        if row is not None:
            raise Gone(
                f"{what}: commit {commit_id[:12]} expired: garbage collection removed the data only it "
                "referenced; pick a commit inside the repository's retention"
            )


class BlocksMixin(StoreBase):
    """The blocks this server wrote itself: size and MD5 as received, and when."""

    def record_block(
        self, address: str, *, size: int, checksum: str, conn: sqlite3.Connection | None = None
    ) -> None:
        if conn is None:
            with self.transaction() as conn:
                self.record_block(address, size=size, checksum=checksum, conn=conn)
            return
        conn.execute(
            # Blocks are published no-clobber, so an address holds one block: its first record stands.
            "INSERT OR IGNORE INTO blocks (address, size, checksum, created) VALUES (?, ?, ?, ?)",
            (address, size, checksum, _now()),
        )

    def block(self, address: str) -> tuple[int, str] | None:
        """(size, MD5) of a block this server received, None for one it did not write."""
        row = (
            self.conn().execute("SELECT size, checksum FROM blocks WHERE address = ?", (address,)).fetchone()
        )
        return None if row is None else (row[0], row[1])


class RepositoriesMixin(StoreBase):
    """Repositories: create, get, list, delete, and their metadata."""

    # -- repositories --------------------------------------------------------------------------

    def create_repository(
        self, name: str, *, storage_namespace: str, default_branch: str, read_only: bool = False
    ) -> dict[str, Any]:
        validate_repository_name(name)
        validate_branch_name(default_branch)
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM repositories WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"error creating repository: not unique (repository {name!r} already exists)")
            wanted = storage_namespace.rstrip("/") + "/"
            # Nested namespaces are shared ones too: a repository could link, and its GC never see,
            # blocks of the repository inside it.
            for other, namespace in conn.execute("SELECT name, storage_namespace FROM repositories"):
                existing = namespace.rstrip("/") + "/"
                if wanted.startswith(existing) or existing.startswith(wanted):
                    raise BadRequest(
                        f"storage namespace {storage_namespace!r} overlaps {namespace!r} of repository "
                        f"{other!r}: lakeFS repositories can't share storage namespace"
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
            raise NotFound(f"repository not found: {name!r}")
        return {
            "id": row[0],
            "storage_id": "",  # one block store: lakeFS's single-store ID
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
                raise NotFound(f"repository not found: {name!r}")
            for table in ("commits", "branches", "tags", "staged", "gc_rules", "expired"):
                conn.execute(f"DELETE FROM {table} WHERE repository = ?", (name,))  # noqa: S608
            conn.execute("DELETE FROM repositories WHERE name = ?", (name,))

    def gc_rules(self, name: str) -> dict[str, Any] | None:
        """The repository's garbage-collection rules as stored (lakeFS's JSON), None when unset."""
        self.get_repository(name)
        row = self.conn().execute("SELECT rules FROM gc_rules WHERE repository = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_gc_rules(self, name: str, rules: dict[str, Any] | None) -> None:
        """Store (or, with None, remove) the repository's garbage-collection rules."""
        with self.transaction() as conn:
            self.get_repository(name)
            if rules is None:
                conn.execute("DELETE FROM gc_rules WHERE repository = ?", (name,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO gc_rules (repository, rules) VALUES (?, ?)",
                    (name, json.dumps(rules)),
                )

    def repository_metadata(self, name: str) -> dict[str, str]:
        self.get_repository(name)
        row = self.conn().execute("SELECT metadata FROM repositories WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0])
