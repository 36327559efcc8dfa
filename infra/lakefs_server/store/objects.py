"""Objects and the staging area of branches.

``ObjectsMixin`` reads entries as seen from a ref (staged changes included on branches), stages new
entries and deletions, iterates the objects at a ref in path order (merging committed and staged
entries), lists uncommitted changes, checks whether a branch is dirty and resets staged changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from infra.lakefs_server import tree
from infra.lakefs_server.errors import BadRequest, Gone, NotFound, PreconditionFailed
from infra.lakefs_server.store.base import Change, Entry, Resolved, StoreBase, ref_name


class ObjectsMixin(StoreBase):
    """Entries, staging, object iteration, uncommitted changes and reset of staged changes."""

    if TYPE_CHECKING:  # provided by another mixin of ``Store``

        def resolve(self, repository: str, ref: str, conn: sqlite3.Connection | None = None) -> Resolved: ...

        def branch_commit(
            self, repository: str, branch: str, conn: sqlite3.Connection | None = None
        ) -> str: ...

        def record_block(
            self, address: str, *, size: int, checksum: str, conn: sqlite3.Connection | None = None
        ) -> None: ...

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
        received: bool = False,
    ) -> None:
        """Stage a new entry (or a deletion, ``entry=None``) for ``path`` on ``branch``; ``received``
        also records the entry's block as one this server wrote (its size and MD5)."""
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            if received and entry is not None:
                self.record_block(entry[0], size=entry[2], checksum=entry[1], conn=conn)
            if if_absent or must_exist or entry is None:
                exists = self._exists(conn, repository, branch, path)
                if if_absent and exists:
                    raise PreconditionFailed(f"path already exists: {path!r} (If-None-Match: *)")
                if (must_exist or entry is None) and not exists:
                    raise NotFound(f"object {path!r} not found on branch {branch!r}")
            head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
            committed = tree.get_entry(self._nodes(conn), head["meta_range_id"], path)
            # Staging what is already committed (a deletion of an absent path, or the same object
            # again under a new address) is no change: the path goes back to its committed state.
            if tree.same(entry, committed):
                conn.execute(
                    "DELETE FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                    (repository, branch, path),
                )
                return
            # Checked under the write lock, which garbage collection also holds while it deletes: a
            # block that exists now cannot be collected before this entry is staged.
            if entry is not None and self.block_exists is not None and not self.block_exists(entry[0]):
                raise Gone(f"resource expired: no data at {entry[0]!r} (removed by garbage collection)")
            conn.execute(
                "INSERT OR REPLACE INTO staged (repository, branch, path, entry) VALUES (?, ?, ?, ?)",
                (repository, branch, path, None if entry is None else json.dumps(entry)),
            )

    def stage_entries(self, repository: str, branch: str, items: list[tuple[str, Entry]]) -> None:
        """Stage many new entries in one transaction (bulk import of already-stored blocks)."""
        with self.transaction() as conn:
            head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
            nodes = self._nodes(conn)
            root = head["meta_range_id"]
            same = [path for path, entry in items if tree.same(entry, tree.get_entry(nodes, root, path))]
            conn.executemany(
                "INSERT OR REPLACE INTO staged (repository, branch, path, entry) VALUES (?, ?, ?, ?)",
                ((repository, branch, path, json.dumps(entry)) for path, entry in items),
            )
            conn.executemany(
                "DELETE FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                ((repository, branch, path) for path in same),
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

    def _require_clean(self, conn: sqlite3.Connection, repository: str, branch: str, *, what: str) -> None:
        if self._is_dirty(conn, repository, branch):
            raise BadRequest(
                f"{what}: uncommitted changes (dirty branch) on {branch!r}; commit or reset them first"
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
