"""lakeFS's GC retention algorithm and rules, as plain functions."""

from __future__ import annotations

import pytest

from infra.lakefs_server.errors import BadRequest
from infra.lakefs_server.gc import DAY, Commit, GcRules, retained_commits

NOW = 1_000 * DAY


def chain(*specs: tuple[str, float]) -> dict[str, Commit]:
    """Commits newest first, each the first parent of the one before: (id, age in days)."""
    commits = {}
    for index, (commit_id, age) in enumerate(specs):
        parent = [specs[index + 1][0]] if index + 1 < len(specs) else []
        commits[commit_id] = Commit(commit_id, parent, int(NOW - age * DAY), f"root-{commit_id}")
    return commits


def test_history_within_the_retention_and_the_first_older_commit_stay():
    commits = chain(("h", 0), ("a", 3), ("b", 8), ("c", 9), ("d", 20))
    assert retained_commits(commits, {"main": "h"}, GcRules(7), NOW) == {"h", "a", "b"}


def test_the_head_always_stays():
    commits = chain(("h", 50), ("a", 60))
    assert retained_commits(commits, {"main": "h"}, GcRules(7), NOW) == {"h"}


def test_out_of_order_dates_keep_what_lakefs_keeps():
    """H(now) -> R(dated 30 days ago) -> C(1 day) -> P(2 days): C is younger than the threshold, so its
    parent P stays although R, between them, is old (lakeFS walks the whole chain)."""
    commits = chain(("h", 0), ("r", 30), ("c", 1), ("p", 2), ("q", 40))
    assert retained_commits(commits, {"main": "h"}, GcRules(7), NOW) == {"h", "r", "p", "q"}


def test_branch_rules_and_the_longest_wins():
    commits = chain(("h", 0), ("a", 10), ("b", 20), ("c", 40))
    commits["x"] = Commit("x", ["a"], int(NOW - 1 * DAY), "root-x")
    heads = {"main": "h", "long": "x"}
    assert retained_commits(commits, heads, GcRules(7, {"long": 30}), NOW) == {"h", "a", "x", "b", "c"}
    assert retained_commits(commits, heads, GcRules(7), NOW) == {"h", "a", "x"}


def test_dangling_commits_follow_the_default():
    commits = chain(("h", 0), ("a", 1))
    commits["young"] = Commit("young", ["a"], int(NOW - 2 * DAY), "r1")
    commits["old"] = Commit("old", ["a"], int(NOW - 9 * DAY), "r2")
    assert retained_commits(commits, {"main": "h"}, GcRules(7), NOW) == {"h", "a", "young"}


@pytest.mark.parametrize(
    "body",
    [
        {"default_retention_days": 0},
        {"default_retention_days": 7, "branches": [{"branch_id": "main", "retention_days": -1}]},
        {"default_retention_days": True},
        {"default_retention_days": 7, "extra": 1},
        [],
    ],
)
def test_bad_rules(body):
    with pytest.raises(BadRequest):
        GcRules.parse(body)


def test_rules_round_trip():
    rules = GcRules.parse(
        {"default_retention_days": 7, "branches": [{"branch_id": "main", "retention_days": 30}]}
    )
    assert GcRules.parse(rules.to_json()) == rules and rules.retention_days("main") == 30
    assert rules.retention_days("other") == 7
