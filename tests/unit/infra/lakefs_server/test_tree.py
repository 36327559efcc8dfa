"""The copy-on-write tree behaves like a sorted dict, and shares unchanged subtrees."""

from __future__ import annotations

import random

import pytest

from infra.lakefs_server import tree


def _store() -> tuple[tree.NodeStore, dict[str, bytes]]:
    saved: dict[str, bytes] = {}

    def load(node_id: str) -> bytes:
        return saved[node_id]

    return tree.NodeStore(load), saved


def _flush(store: tree.NodeStore, saved: dict[str, bytes]) -> None:
    saved.update(store.pending)
    store.pending.clear()


def _entry(value: int) -> list:
    return [f"local://ns/{value}", f"etag{value}", value, 0, "application/octet-stream", {}]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_batches_match_a_dict_model(seed: int) -> None:
    rng = random.Random(seed)
    store, saved = _store()
    root = tree.EMPTY_TREE_ID
    model: dict[str, list] = {}
    for _ in range(25):
        changes: dict[str, list | None] = {}
        for _ in range(rng.choice([1, 10, 400])):
            path = f"p/{rng.randrange(3000):05d}"
            if rng.random() < 0.3:
                changes[path] = None
            else:
                changes[path] = _entry(rng.randrange(10**6))
        old_root = root
        root = tree.apply_changes(store, root, changes)
        _flush(store, saved)
        expected_diff = {}
        for path, entry in changes.items():
            before = model.get(path)
            if entry is None:
                model.pop(path, None)
            else:
                model[path] = entry
            if before != model.get(path):
                expected_diff[path] = (before, model.get(path))
        assert list(tree.iter_entries(store, root)) == sorted(model.items())
        diff = {path: (a, b) for path, a, b in tree.diff_trees(store, old_root, root)}
        assert diff == expected_diff
        probe = f"p/{rng.randrange(3000):05d}"
        assert tree.get_entry(store, root, probe) == model.get(probe)
        start = f"p/{rng.randrange(3000):05d}"
        assert [p for p, _ in tree.iter_entries(store, root, start=start)] == sorted(
            p for p in model if p >= start
        )


def test_same_content_same_root_and_empty_tree() -> None:
    store, _ = _store()
    changes = {f"k{i:04d}": _entry(i) for i in range(500)}
    first = tree.apply_changes(store, tree.EMPTY_TREE_ID, changes)
    assert tree.apply_changes(store, tree.EMPTY_TREE_ID, changes) == first
    emptied = tree.apply_changes(store, first, {path: None for path in changes})
    assert emptied == tree.EMPTY_TREE_ID
    assert list(tree.iter_entries(store, emptied)) == []


def test_small_change_rewrites_few_nodes() -> None:
    store, saved = _store()
    root = tree.apply_changes(store, tree.EMPTY_TREE_ID, {f"k{i:06d}": _entry(i) for i in range(20000)})
    _flush(store, saved)
    tree.apply_changes(store, root, {"k000500": _entry(-1), "k015000": None})
    # Two leaves, their parents and the root: a handful, not thousands.
    assert len(store.pending) <= 6
