"""History: commit, log, merge base, diff, three-way merge, merge, revert and cherry-pick.

``HistoryMixin`` turns a branch's staged changes into a commit, walks the commit graph (log, merge
base), diffs two commits, and builds new commits from a three-way merge of trees: merge, revert and
cherry-pick.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from infra.lakefs_server import tree
from infra.lakefs_server.errors import BadRequest, Conflict, NotFound
from infra.lakefs_server.store.base import Change, Entry, Resolved, StoreBase

# Commit metadata lakeFS itself writes (graveler), so tools reading history see the same keys.
MERGE_STRATEGY_KEY = ".lakefs.merge.strategy"
CHERRY_PICK_ORIGIN_KEY = "cherry-pick-origin"
CHERRY_PICK_COMMITTER_KEY = "cherry-pick-committer"


class HistoryMixin(StoreBase):
    """Commits, history walks, diff, merge, revert and cherry-pick."""

    if TYPE_CHECKING:  # provided by other mixins of ``Store``

        def resolve(self, repository: str, ref: str, conn: sqlite3.Connection | None = None) -> Resolved: ...

        def branch_commit(
            self, repository: str, branch: str, conn: sqlite3.Connection | None = None
        ) -> str: ...

        @staticmethod
        def _move_branch(conn: sqlite3.Connection, repository: str, branch: str, commit_id: str) -> None: ...

        def _require_clean(
            self, conn: sqlite3.Connection, repository: str, branch: str, *, what: str
        ) -> None: ...

        def require_live(
            self, conn: sqlite3.Connection, repository: str, commit_id: str, *, what: str
        ) -> None: ...

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
            # Staged rows identical to what is committed are no change; drop them (and keep that even
            # when the commit is refused below), so they cannot leave the branch looking dirty.
            identical = self._identical_rows(conn, repository, branch)
            if identical:
                conn.executemany(
                    "DELETE FROM staged WHERE repository = ? AND branch = ? AND path = ?",
                    ((repository, branch, path) for path in identical),
                )
        with self.transaction() as conn:
            head_id = self.branch_commit(repository, branch, conn)
            head = self._commit(conn, repository, head_id)
            rows = conn.execute(
                "SELECT path, entry FROM staged WHERE repository = ? AND branch = ?", (repository, branch)
            ).fetchall()
            nodes = self._nodes(conn)
            # Identical rows went above and stage() never adds any: every row left is a change.
            changes = {path: None if raw is None else json.loads(raw) for path, raw in rows}
            if not changes and not allow_empty:
                raise BadRequest(
                    f"commit: no changes on branch {branch!r} (pass allow_empty to commit anyway)"
                )
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

    def _identical_rows(self, conn: sqlite3.Connection, repository: str, branch: str) -> list[str]:
        head = self._commit(conn, repository, self.branch_commit(repository, branch, conn))
        nodes = self._nodes(conn)
        rows = conn.execute(
            "SELECT path, entry FROM staged WHERE repository = ? AND branch = ?", (repository, branch)
        )
        return [
            path
            for path, raw in rows
            if tree.same(
                None if raw is None else json.loads(raw), tree.get_entry(nodes, head["meta_range_id"], path)
            )
        ]

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
            raise BadRequest(f"invalid merge strategy {strategy!r}: use 'dest-wins' or 'source-wins'")
        self.require_live(conn, repository, source, what=what)  # its entries are about to be applied
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
            if path in destination_changes and tree.same(destination_changes[path], after):
                continue  # both sides made the same change: nothing to apply, no conflict
            if path in destination_changes:
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
            root, brought = self._three_way(
                conn, repository, base=base, source=source, destination=head, strategy=strategy, what="merge"
            )
            # As lakeFS: "no changes" only when the source changed nothing since the merge base. A
            # source whose changes the destination already has (a cherry-pick) still gets its merge.
            if not brought and not allow_empty:
                raise BadRequest(
                    f"update branch {destination}: no changes "
                    f"(nothing new in {source_ref!r} since the merge base)"
                )
            record = self._insert_commit(
                conn,
                repository,
                parents=[head] if squash else [head, source],
                message=message or f"Merge '{source_ref}' into '{destination}'",
                committer=committer,
                meta_range_id=root,
                metadata={**metadata, MERGE_STRATEGY_KEY: strategy or "default"},
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
                metadata={
                    **target["metadata"],
                    CHERRY_PICK_ORIGIN_KEY: target["id"],
                    CHERRY_PICK_COMMITTER_KEY: target["committer"],  # as lakeFS: the origin's committer
                },
            )
            self._move_branch(conn, repository, branch, record["id"])
            return self._commit(conn, repository, record["id"])
