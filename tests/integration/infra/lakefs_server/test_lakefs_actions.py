"""lakeFS actions: webhooks from ``_lakefs_actions/*.yaml`` around commits and merges."""

from __future__ import annotations

import pytest
from lakefs.exceptions import ServerException

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EVENT_FIELDS = {
    "event_type",
    "event_time",
    "action_name",
    "hook_id",
    "repository_id",
    "branch_id",
    "source_ref",
    "commit_id",
    "commit_message",
    "committer",
    "commit_metadata",
}


def _action(name: str, events: dict[str, list[str] | None], hooks: list[tuple[str, str, str]]) -> str:
    """An action file: ``events`` maps event -> branches (None: all); hooks are (id, url, timeout)."""
    lines = [f"name: {name}", "on:"]
    for event, branches in events.items():
        if branches is None:
            lines.append(f"  {event}:")
        else:
            lines.append(f"  {event}:")
            lines.append(f"    branches: [{', '.join(branches)}]")
    lines.append("hooks:")
    for hook_id, url, timeout in hooks:
        lines += [
            f"  - id: {hook_id}",
            "    type: webhook",
            "    properties:",
            f"      url: {url}",
            f"      timeout: {timeout}",
        ]
    return "\n".join(lines) + "\n"


def _install(branch, lk, receiver, yaml_text: str, path: str = "_lakefs_actions/hooks.yaml") -> str:
    """Commit an action file on ``branch`` while the receiver says yes; return the commit ID."""
    receiver.status = 200
    commit_id = lk.commit_files(branch, {path: yaml_text}, message="install actions")
    return commit_id


def test_failing_pre_commit_hook_aborts_commit_with_412(repo, main, lk, hook_receiver):
    _install(
        main,
        lk,
        hook_receiver,
        _action(
            "guard commits", {"pre-commit": ["main"]}, [("check", f"{hook_receiver.url}/pre-commit", "5s")]
        ),
    )
    head = main.get_commit().id
    hook_receiver.clear()
    hook_receiver.status = 500
    lk.put(main, "data.txt", b"blocked")

    status, message, _ = lk.call_error(main.commit, message="should be blocked")

    assert status == 412
    assert "pre-commit" in message and "check" in message, message
    assert main.get_commit().id == head
    assert [c.path for c in main.uncommitted()] == ["data.txt"]  # staged change kept
    assert lk.read(main, "data.txt") == b"blocked"
    calls = hook_receiver.bodies("pre-commit")
    assert len(calls) == 1
    assert calls[0]["branch_id"] == "main" and calls[0]["repository_id"] == repo.id
    assert calls[0]["commit_message"] == "should be blocked"

    # A branch the action does not cover commits without calling the hook.
    other = repo.branch("other").create(main)
    hook_receiver.clear()
    lk.commit_files(other, {"o.txt": b"o"})
    assert hook_receiver.bodies("pre-commit") == []

    hook_receiver.status = 200
    committed = main.commit(message="now allowed").get_commit()
    assert committed.parents == [head]
    assert lk.read(repo.commit(committed.id), "data.txt") == b"blocked"


def test_failing_pre_merge_hook_aborts_merge_with_412(repo, main, lk, hook_receiver):
    _install(
        main,
        lk,
        hook_receiver,
        _action("guard merges", {"pre-merge": ["main"]}, [("gate", f"{hook_receiver.url}/pre-merge", "5s")]),
    )
    feature = repo.branch("feature").create(main)
    feature_head = lk.commit_files(feature, {"f.txt": b"f"})
    head = main.get_commit().id
    hook_receiver.status = 500

    status, message, _ = lk.call_error(feature.merge_into, main)

    assert status == 412
    assert "pre-merge" in message and "gate" in message, message
    assert main.get_commit().id == head
    assert not main.object("f.txt").exists()
    assert feature.get_commit().id == feature_head
    body = hook_receiver.bodies("pre-merge")[-1]
    assert body["branch_id"] == "main"
    assert body["source_ref"] == feature_head  # the commit ID, as lakeFS sends it

    hook_receiver.status = 200
    merge_id = feature.merge_into(main)
    assert main.get_commit().id == merge_id
    assert lk.read(main, "f.txt") == b"f"


def test_merge_hooks_are_read_from_the_source_ref(repo, main, lk, hook_receiver):
    lk.commit_files(main, {"base.txt": b"b"})
    feature = repo.branch("feature").create(main)
    # Only the source carries the action; main has none.
    lk.commit_files(
        feature,
        {
            "_lakefs_actions/gate.yaml": _action(
                "source gate", {"pre-merge": ["main"]}, [("from-source", f"{hook_receiver.url}/gate", "5s")]
            )
        },
    )
    head = main.get_commit().id
    hook_receiver.status = 500
    status, message, _ = lk.call_error(feature.merge_into, main)
    assert status == 412, message
    assert "from-source" in message
    assert main.get_commit().id == head
    assert not main.object("_lakefs_actions/gate.yaml").exists()


def test_hanging_pre_hook_times_out_with_412(repo, main, lk, hook_receiver):
    _install(
        main,
        lk,
        hook_receiver,
        _action("slow hook", {"pre-commit": ["main"]}, [("sleepy", f"{hook_receiver.url}/slow", "1s")]),
    )
    head = main.get_commit().id
    hook_receiver.delay = 4
    lk.put(main, "data.txt", b"d")

    status, message, _ = lk.call_error(main.commit, message="hangs")

    assert status == 412
    assert "sleepy" in message and ("time" in message.lower()), message
    assert main.get_commit().id == head
    assert [c.path for c in main.uncommitted()] == ["data.txt"]


def test_post_hooks_receive_lakefs_event_body(repo, main, lk, hook_receiver):
    _install(
        main,
        lk,
        hook_receiver,
        _action(
            "notify",
            {"post-commit": ["main"], "post-merge": ["main"]},
            [("notify-hook", f"{hook_receiver.url}/post", "5s")],
        ),
    )
    feature = repo.branch("feature").create(main)
    lk.put(main, "data.txt", b"d")
    commit = main.commit(message="under test", metadata={"run": "7"}).get_commit()

    bodies = [b for b in hook_receiver.wait_for("post-commit", 2) if b.get("commit_message") == "under test"]
    if not bodies:
        bodies = [
            b
            for b in (hook_receiver.wait_for("post-commit", 3, timeout=5))
            if b.get("commit_message") == "under test"
        ]
    assert len(bodies) == 1, hook_receiver.bodies()
    body = bodies[0]
    assert set(body) >= EVENT_FIELDS, sorted(EVENT_FIELDS - set(body))
    assert body["event_type"] == "post-commit"
    assert body["action_name"] == "notify"
    assert body["hook_id"] == "notify-hook"
    assert body["repository_id"] == repo.id
    assert body["branch_id"] == "main"
    assert body["commit_id"] == commit.id
    assert body["commit_metadata"] == {"run": "7"}
    assert body["event_time"]

    feature_head = lk.commit_files(feature, {"f.txt": b"f"}, message="feature work")
    merge_id = feature.merge_into(main, message="merge under test")
    merges = [b for b in hook_receiver.wait_for("post-merge", 1) if b.get("commit_id") == merge_id]
    assert len(merges) == 1, hook_receiver.bodies("post-merge")
    merge_body = merges[0]
    assert set(merge_body) >= EVENT_FIELDS
    assert merge_body["branch_id"] == "main"
    assert merge_body["source_ref"] == feature_head  # the merged commit, as lakeFS sends it
    assert merge_body["commit_message"] == "merge under test"


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        ("name: broken\non: [unclosed\nhooks:\n  - id: x\n", "yaml"),
        ("name: no-hooks\non:\n  pre-commit:\n", "hooks"),
        (
            "name: no-on\nhooks:\n  - id: h\n    type: webhook\n    properties:\n      url: http://127.0.0.1:9/x\n",
            "on",
        ),
        (
            "on:\n  pre-commit:\nhooks:\n  - id: h\n    type: webhook\n    properties:\n      url: http://127.0.0.1:9/x\n",
            "name",
        ),
    ],
    ids=["bad-yaml", "missing-hooks", "missing-on", "missing-name"],
)
def test_malformed_actions_file_fails_commit_with_clear_4xx(repo, main, lk, content, hint):
    lk.commit_files(main, {"keep.txt": b"keep"})
    head = main.get_commit().id
    lk.put(main, "_lakefs_actions/broken.yaml", content)
    try:
        committed = main.commit(message="adds a broken action").get_commit().id
    except ServerException as error:
        status, message = error.status_code, error.body.get("message", "")
    else:
        # Even if the file's own commit went through, the next commit must not ignore it.
        head = committed
        lk.put(main, "next.txt", b"n")
        status, message, _ = lk.call_error(main.commit, message="after the broken action")
    assert 400 <= status < 500, (status, message)
    assert "broken.yaml" in message, message
    assert hint in message.lower(), message
    assert main.get_commit().id == head
    assert lk.read(main, "keep.txt") == b"keep"
    assert list(main.uncommitted()), "staged changes were lost"
