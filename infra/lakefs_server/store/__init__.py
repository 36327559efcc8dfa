"""The versioning engine: repositories, branches, tags, commits, staging, diff and merge over SQLite.

Everything that changes state runs in one SQLite transaction (``BEGIN IMMEDIATE``, WAL journal), so a
process killed at any point leaves either the whole operation or none of it. Writers are serialised
by SQLite; readers never block. Committed trees are content-addressed nodes (see ``tree``), staged
changes are rows keyed by (repository, branch, path): a commit moves them into a new tree in the
same transaction that moves the branch.

The engine is split by responsibility into mixins that ``Store`` combines: ``base`` (records, helpers,
connections and transactions, repositories), ``refs`` (ref resolution, commit lookup, branches, tags,
hard reset), ``objects`` (entries, staging, object iteration, uncommitted changes) and ``history``
(commit, log, merge base, diff, merge, revert, cherry-pick).
"""

from __future__ import annotations

from infra.lakefs_server.store.base import _SCHEMA as _SCHEMA
from infra.lakefs_server.store.base import (
    COMMIT_VERSION,
    MAX_PAGE,
    BlocksMixin,
    Change,
    Entry,
    ExpiryMixin,
    RepositoriesMixin,
    Resolved,
    StoreBase,
    commit_id_for,
    ref_name,
)
from infra.lakefs_server.store.base import _now as _now
from infra.lakefs_server.store.history import HistoryMixin
from infra.lakefs_server.store.objects import ObjectsMixin
from infra.lakefs_server.store.refs import _REF_MODIFIER as _REF_MODIFIER
from infra.lakefs_server.store.refs import RefsMixin

__all__ = [
    "COMMIT_VERSION",
    "BlocksMixin",
    "MAX_PAGE",
    "Change",
    "Entry",
    "ExpiryMixin",
    "HistoryMixin",
    "ObjectsMixin",
    "RefsMixin",
    "RepositoriesMixin",
    "Resolved",
    "Store",
    "StoreBase",
    "commit_id_for",
    "ref_name",
]


class Store(RepositoriesMixin, RefsMixin, ObjectsMixin, HistoryMixin, BlocksMixin, ExpiryMixin):
    """Metadata of every repository, in one SQLite database.

    Args:
        db_path: The SQLite file (created with its schema when missing).
    """
