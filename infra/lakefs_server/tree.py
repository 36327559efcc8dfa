"""Content-addressed, copy-on-write B+tree of object entries: the committed state of a commit.

A commit's ``meta_range_id`` is the ID of its tree's root node. Nodes are immutable and stored by
the SHA-256 of their bytes, so two commits share every subtree they have in common. Applying a
batch of changes rewrites only the paths from the changed leaves to the root, and diffing two trees
skips every node the two share: commit, merge and diff cost grows with the size of the change, not
with the size of the repository.

An entry is the list ``[physical_address, checksum, size, mtime, content_type, metadata]``; two entries
are the same object when their ``identity`` (checksum, size, content type, metadata) is equal.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Entry = list[Any]
LEAF_MAX = 128
INTERNAL_MAX = 128
MIN_FILL = 32

_EMPTY_LEAF = b'{"l":[]}'
EMPTY_TREE_ID = hashlib.sha256(_EMPTY_LEAF).hexdigest()


def identity(entry: Entry | None) -> tuple[Any, ...] | None:
    """What makes two entries the same object, as lakeFS sees it: checksum, size, content type and
    user metadata. The physical address and mtime are not part of it: identical bytes uploaded again
    under a new address are no change."""
    if entry is None:
        return None
    return entry[1], entry[2], entry[4], entry[5] or {}


def same(left: Entry | None, right: Entry | None) -> bool:
    """Whether two entries (None: absent) are the same object."""
    return identity(left) == identity(right)


def _encode(node: dict[str, Any]) -> bytes:
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False).encode()


class NodeStore:
    """Loads nodes by ID through ``load`` and buffers new ones until ``flush``.

    Args:
        load: Returns the stored bytes of a node ID (KeyError when absent).
    """

    def __init__(self, load: Callable[[str], bytes]) -> None:
        self._load = load
        self._cache: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, bytes] = {}

    def get(self, node_id: str) -> dict[str, Any]:
        node = self._cache.get(node_id)
        if node is None:
            if node_id == EMPTY_TREE_ID:
                node = {"l": []}
            else:
                raw = self.pending.get(node_id)
                node = json.loads(raw if raw is not None else self._load(node_id))
            self._cache[node_id] = node
        return node

    def put(self, node: dict[str, Any]) -> str:
        raw = _encode(node)
        node_id = hashlib.sha256(raw).hexdigest()
        if node_id not in self._cache:
            self._cache[node_id] = node
            if node_id != EMPTY_TREE_ID:
                self.pending[node_id] = raw
        return node_id


def _chunks(items: list[Any], maximum: int) -> list[list[Any]]:
    """Split ``items`` into the fewest even pieces of at most ``maximum`` items."""
    if not items:
        return []
    count = -(-len(items) // maximum)
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def get_entry(store: NodeStore, root_id: str, path: str) -> Entry | None:
    """Return the entry at ``path`` in the tree, or None."""
    node = store.get(root_id)
    while "i" in node:
        children = node["i"]
        index = max(bisect.bisect_right([child[0] for child in children], path) - 1, 0)
        node = store.get(children[index][1])
    items = node["l"]
    index = bisect.bisect_left(items, path, key=lambda item: item[0])
    if index < len(items) and items[index][0] == path:
        return items[index][1]
    return None


def iter_entries(store: NodeStore, root_id: str, *, start: str = "") -> Iterator[tuple[str, Entry]]:
    """Yield ``(path, entry)`` in path order for every path >= ``start``."""
    stack: list[tuple[list[Any], int, bool]] = []
    node = store.get(root_id)
    while True:
        if "i" in node:
            children = node["i"]
            index = max(bisect.bisect_right([child[0] for child in children], start) - 1, 0)
            stack.append((children, index + 1, False))
            node = store.get(children[index][1])
            continue
        items = node["l"]
        index = bisect.bisect_left(items, start, key=lambda item: item[0])
        yield from ((path, entry) for path, entry in items[index:])
        break
    # Everything after the first leaf is >= start, so the rest is a plain in-order walk.
    while stack:
        children, index, _ = stack.pop()
        if index >= len(children):
            continue
        stack.append((children, index + 1, False))
        node = store.get(children[index][1])
        while "i" in node:
            stack.append((node["i"], 1, False))
            node = store.get(node["i"][0][1])
        yield from ((path, entry) for path, entry in node["l"])


def apply_changes(store: NodeStore, root_id: str, changes: Mapping[str, Entry | None]) -> str:
    """Return the root ID of the tree after setting (entry) or deleting (None) each path."""
    if not changes:
        return root_id
    ordered = sorted(changes.items())
    height = store.get(root_id).get("h", 0)
    level = _apply(store, root_id, ordered)
    while len(level) > 1:
        height += 1
        level = [
            (
                chunk[0][0],
                store.put({"h": height, "i": [[key, child] for key, child, _ in chunk]}),
                len(chunk),
            )
            for chunk in _chunks(level, INTERNAL_MAX)
        ]
    if not level:
        return store.put({"l": []})
    root = level[0][1]
    node = store.get(root)
    while "i" in node and len(node["i"]) == 1:
        root = node["i"][0][1]
        node = store.get(root)
    return root


def _apply(
    store: NodeStore, node_id: str, changes: list[tuple[str, Entry | None]]
) -> list[tuple[str, str, int]]:
    """Apply sorted changes under one node; return its replacement siblings (min key, ID, size)."""
    node = store.get(node_id)
    if "l" in node:
        merged = dict(node["l"])
        for path, entry in changes:
            if entry is None:
                merged.pop(path, None)
            else:
                merged[path] = entry
        items = [[path, merged[path]] for path in sorted(merged)]
        return [(chunk[0][0], store.put({"l": chunk}), len(chunk)) for chunk in _chunks(items, LEAF_MAX)]

    children = node["i"]
    keys = [child[0] for child in children]
    grouped: dict[int, list[tuple[str, Entry | None]]] = {}
    for path, entry in changes:
        index = max(bisect.bisect_right(keys, path) - 1, 0)
        grouped.setdefault(index, []).append((path, entry))
    rebuilt: list[tuple[str, str, int, bool]] = []
    for index, (key, child_id) in enumerate(children):
        if index in grouped:
            rebuilt.extend((k, c, n, True) for k, c, n in _apply(store, child_id, grouped[index]))
        else:
            rebuilt.append((key, child_id, MIN_FILL, False))
    rebuilt = _merge_underfilled(store, rebuilt)
    flat = [(key, child_id, size) for key, child_id, size, _ in rebuilt]
    height = node["h"]
    return [
        (chunk[0][0], store.put({"h": height, "i": [[key, child] for key, child, _ in chunk]}), len(chunk))
        for chunk in _chunks(flat, INTERNAL_MAX)
    ]


def _merge_underfilled(
    store: NodeStore, children: list[tuple[str, str, int, bool]]
) -> list[tuple[str, str, int, bool]]:
    """Join each rewritten, under-filled child with a neighbour so the tree stays shallow."""
    index = 0
    while index < len(children) and len(children) > 1:
        key, child_id, size, changed = children[index]
        if not changed or size >= MIN_FILL:
            index += 1
            continue
        other = index + 1 if index + 1 < len(children) else index - 1
        first, second = sorted((index, other))
        left, right = store.get(children[first][1]), store.get(children[second][1])
        kind = "l" if "l" in left else "i"
        items = left[kind] + right[kind]
        limit = LEAF_MAX if kind == "l" else INTERNAL_MAX
        extra = {} if kind == "l" else {"h": left["h"]}
        replacement = [
            (chunk[0][0], store.put({**extra, kind: chunk}), len(chunk), False)
            for chunk in _chunks(items, limit)
        ]
        children[first : second + 1] = replacement
        index = first + len(replacement)
    return children


def _collect(store: NodeStore, root_id: str, skip: set[str], seen: set[str]) -> list[str]:
    """Return the leaf IDs under ``root_id`` in order, not descending into IDs in ``skip``."""
    leaves: list[str] = []
    stack = [root_id]
    while stack:
        node_id = stack.pop()
        seen.add(node_id)
        if node_id in skip:
            continue
        node = store.get(node_id)
        if "l" in node:
            leaves.append(node_id)
        else:
            stack.extend(child for _, child in reversed(node["i"]))
    return leaves


def _child_ids(store: NodeStore, root_id: str) -> set[str]:
    """Every node ID reachable from the root, loading internal nodes only."""
    ids = {root_id}
    stack = [root_id]
    while stack:
        node = store.get(stack.pop())
        if "i" in node:
            for _, child in node["i"]:
                ids.add(child)
                if node["h"] > 1:
                    stack.append(child)
    return ids


def diff_trees(
    store: NodeStore,
    left_id: str,
    right_id: str,
    *,
    prefix: str = "",
    equal: Callable[[Entry | None, Entry | None], bool] | None = None,
) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """Yield ``(path, left_entry, right_entry)`` in path order for every path that differs.

    Entries differ when they are not the ``same`` object (or, with ``equal``, by that test: garbage
    collection compares whole entries, addresses included). Subtrees present in both trees are
    skipped without being read.
    """
    if left_id == right_id:
        return
    right_ids = _child_ids(store, right_id)
    left_seen: set[str] = set()
    left_leaves = _collect(store, left_id, right_ids, left_seen)
    right_leaves = _collect(store, right_id, left_seen, set())

    def entries(leaves: list[str]) -> Iterator[tuple[str, Entry]]:
        for leaf in leaves:
            for path, entry in store.get(leaf)["l"]:
                if path.startswith(prefix):
                    yield path, entry

    yield from merge_diff(entries(left_leaves), entries(right_leaves), equal=equal or same)


def merge_diff(
    left: Iterator[tuple[str, Entry]],
    right: Iterator[tuple[str, Entry]],
    *,
    equal: Callable[[Entry | None, Entry | None], bool] | None = None,
) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """Walk two path-ordered entry streams together, yielding the paths whose entries differ."""
    equal = equal or same
    sentinel = (None, None)
    a = next(left, sentinel)
    b = next(right, sentinel)
    while a[0] is not None or b[0] is not None:
        if b[0] is None or (a[0] is not None and a[0] < b[0]):
            yield a[0], a[1], None
            a = next(left, sentinel)
        elif a[0] is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(right, sentinel)
        else:
            if not equal(a[1], b[1]):
                yield a[0], a[1], b[1]
            a = next(left, sentinel)
            b = next(right, sentinel)


def collect_addresses(store: NodeStore, root_id: str, seen: set[str], into: set[str]) -> None:
    """Add the physical address of every entry under ``root_id`` to ``into``.

    Node IDs already in ``seen`` (subtrees shared with trees walked before) are skipped unread, so
    walking many commits of one history costs about the size of their differences.
    """
    stack = [root_id]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = store.get(node_id)
        if "l" in node:
            into.update(entry[0] for _, entry in node["l"])
        else:
            stack.extend(child for _, child in node["i"])
