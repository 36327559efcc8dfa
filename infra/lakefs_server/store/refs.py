"""Ref resolution and the refs themselves: commit lookup, branches, tags and hard reset.

``RefsMixin`` resolves ref expressions (commit ID or unique prefix, branch, tag, then the ``~N ^N @ $``
modifiers), looks up commits by ref, and creates, lists, moves, hard-resets and deletes branches and
tags.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from infra.lakefs_server.errors import BadRequest, Conflict, Forbidden, NotFound
from infra.lakefs_server.names import validate_branch_name, validate_tag_name
from infra.lakefs_server.store.base import Resolved, StoreBase

_REF_MODIFIER = re.compile(r"([~^])(\d{0,9})(?!\d)|(@)|(\$)", re.ASCII)


class RefsMixin(StoreBase):
    """Ref resolution, commit lookup by ref, branches and tags."""

    if TYPE_CHECKING:  # provided by another mixin of ``Store``

        def get_repository(self, name: str) -> dict[str, Any]: ...

        def _require_clean(
            self, conn: sqlite3.Connection, repository: str, branch: str, *, what: str
        ) -> None: ...

        def require_live(
            self, conn: sqlite3.Connection, repository: str, commit_id: str, *, what: str
        ) -> None: ...

    # -- commits -------------------------------------------------------------------------------

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
            raise NotFound(f"branch not found: {branch!r} in repository {repository!r}")
        return row[0]

    def create_branch(
        self, repository: str, name: str, *, source: str, force: bool = False, hidden: bool = False
    ) -> str:
        validate_branch_name(name)
        with self.transaction() as conn:
            resolved = self.resolve(repository, source, conn)
            if resolved.modifier == "$":
                raise BadRequest(f"source reference {source!r}: a branch can only be created from a commit")
            self.require_live(conn, repository, resolved.commit_id, what=f"create branch {name!r}")
            exists = conn.execute(
                "SELECT 1 FROM branches WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone()
            if exists and not force:
                raise Conflict(f"branch already exists: not unique ({name!r} in repository {repository!r})")
            if exists:  # force moves the branch: its staged changes would then sit on another commit
                self._require_clean(conn, repository, name, what=f"create branch {name!r} with force")
            if conn.execute(
                "SELECT 1 FROM tags WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone():
                raise Conflict(f"a tag named {name!r} already exists in repository {repository!r}")
            conn.execute(
                "INSERT OR REPLACE INTO branches (repository, name, commit_id, hidden) VALUES (?, ?, ?, ?)",
                (repository, name, resolved.commit_id, int(hidden)),
            )
        return resolved.commit_id

    def list_refs(
        self, repository: str, table: str, *, prefix: str, after: str, amount: int, show_hidden: bool = True
    ) -> list[dict[str, str]]:
        """Branches or tags in name order; hidden branches only with ``show_hidden``."""
        self.get_repository(repository)
        visible = "" if show_hidden or table != "branches" else " AND hidden = 0"
        rows = (
            self.conn()
            .execute(
                f"SELECT name, commit_id FROM {table} WHERE repository = ? AND name > ? AND name >= ?"  # noqa: S608
                f"{visible} ORDER BY name LIMIT ?",
                (repository, after, prefix, amount + 1),
            )
            .fetchall()
        )
        return [{"id": name, "commit_id": commit} for name, commit in rows if name.startswith(prefix)]

    def delete_branch(self, repository: str, name: str) -> None:
        with self.transaction() as conn:
            if self.get_repository(repository)["default_branch"] == name:
                raise Forbidden(
                    f"cannot delete repository default branch: {name!r} is the default of {repository!r}"
                )
            self.branch_commit(repository, name, conn)
            conn.execute("DELETE FROM branches WHERE repository = ? AND name = ?", (repository, name))
            conn.execute("DELETE FROM staged WHERE repository = ? AND branch = ?", (repository, name))

    def hard_reset_branch(self, repository: str, branch: str, *, ref: str) -> None:
        """Point ``branch`` at ``ref``; refused while the branch has uncommitted changes (as lakeFS
        does), so a hard reset never discards data nobody committed."""
        with self.transaction() as conn:
            self.branch_commit(repository, branch, conn)
            target = self.resolve(repository, ref, conn).commit_id
            self._require_clean(conn, repository, branch, what="hard reset")
            self.require_live(conn, repository, target, what=f"hard reset of {branch!r}")
            self._move_branch(conn, repository, branch, target)

    def get_tag(self, repository: str, name: str) -> str:
        self.get_repository(repository)
        row = (
            self.conn()
            .execute("SELECT commit_id FROM tags WHERE repository = ? AND name = ?", (repository, name))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"tag not found: {name!r} in repository {repository!r}")
        return row[0]

    def create_tag(self, repository: str, name: str, *, ref: str, force: bool = False) -> str:
        validate_tag_name(name)
        with self.transaction() as conn:
            resolved = self.resolve(repository, ref, conn)
            exists = conn.execute(
                "SELECT 1 FROM tags WHERE repository = ? AND name = ?", (repository, name)
            ).fetchone()
            if exists and not force:
                raise Conflict(f"tag already exists: not unique ({name!r} in repository {repository!r})")
            conn.execute(
                "INSERT OR REPLACE INTO tags (repository, name, commit_id) VALUES (?, ?, ?)",
                (repository, name, resolved.commit_id),
            )
        return resolved.commit_id

    def delete_tag(self, repository: str, name: str) -> None:
        with self.transaction() as conn:
            self.get_tag(repository, name)
            conn.execute("DELETE FROM tags WHERE repository = ? AND name = ?", (repository, name))

    @staticmethod
    def _move_branch(conn: sqlite3.Connection, repository: str, branch: str, commit_id: str) -> None:
        conn.execute(
            "UPDATE branches SET commit_id = ? WHERE repository = ? AND name = ?",
            (commit_id, repository, branch),
        )
