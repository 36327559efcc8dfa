"""Concurrency: parallel writers on different branches, and racing commits on one branch."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import lakefs
import pytest
from lakefs.exceptions import ServerException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_parallel_uploads_and_commits_on_four_branches(lakefs_server, repo, main, lk):
    lk.commit_files(main, {"base.txt": b"base"})
    names = [f"worker-{i}" for i in range(4)]
    for name in names:
        repo.branch(name).create(main)
    start = threading.Barrier(len(names))

    def work(name: str) -> list[str]:
        # One client per thread, as separate processes would have.
        branch = lakefs.Repository(repo.id, client=lakefs_server.client()).branch(name)
        start.wait()
        commits = []
        for round_ in range(3):
            for j in range(3):
                lk.put(branch, f"{name}/r{round_}-{j}.txt", f"{name}:{round_}:{j}")
            commits.append(branch.commit(message=f"{name} round {round_}").get_commit().id)
        return commits

    with ThreadPoolExecutor(len(names)) as pool:
        results = dict(zip(names, pool.map(work, names), strict=True))

    for name, commits in results.items():
        branch = repo.branch(name)
        assert [c.id for c in branch.log(max_amount=3)] == list(reversed(commits))
        paths = [o.path for o in branch.objects(prefix=f"{name}/")]
        assert len(paths) == 9
        assert lk.read(branch, f"{name}/r2-1.txt") == f"{name}:2:1".encode()
        # No cross-talk between branches.
        assert [o.path for o in branch.objects()] == ["base.txt", *sorted(paths)]
        assert list(branch.uncommitted()) == []


def test_concurrent_commits_on_one_branch_serialise(lakefs_server, repo, main, lk):
    base = lk.commit_files(main, {"base.txt": b"base"})
    count = 8
    start = threading.Barrier(count)

    def work(i: int):
        branch = lakefs.Repository(repo.id, client=lakefs_server.client()).branch("main")
        lk.put(branch, f"obj-{i}.txt", f"payload {i}")
        start.wait()
        try:
            return ("ok", branch.commit(message=f"commit {i}").get_commit().id)
        except ServerException as error:
            return ("error", error.status_code, error.body.get("message", ""))

    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(work, range(count)))

    committed = [o[1] for o in outcomes if o[0] == "ok"]
    errors = [o for o in outcomes if o[0] == "error"]
    assert committed, outcomes
    for _, status, message in errors:
        # A clean refusal: a 4xx with a message (e.g. nothing left to commit), never a 5xx.
        assert 400 <= status < 500 and message, errors
    assert len(set(committed)) == len(committed)

    # The log is one linear chain holding every successful commit, on top of the base.
    chain = list(main.log(max_amount=len(committed) + 1))
    assert {c.id for c in chain[: len(committed)]} == set(committed)
    assert chain[len(committed)].id == base
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.parents == [older.id]

    # No object was lost: all are committed, with their own bytes.
    committed_ref = repo.ref("main@")
    assert sorted(o.path for o in committed_ref.objects(prefix="obj-")) == sorted(
        f"obj-{i}.txt" for i in range(count)
    )
    for i in range(count):
        assert lk.read(committed_ref, f"obj-{i}.txt") == f"payload {i}".encode()
    assert list(main.uncommitted()) == []
