"""The one process supervisor: children in groups of their own, health waits, graceful then forced stops."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from infra.errors import ServerStartError
from infra.processes import (
    ManagedProcess,
    child_environment,
    free_port,
    free_ports,
    live_process,
    port_is_free,
    stop_together,
)

SLEEPER = [sys.executable, "-c", "import time; print('re' + 'ady', flush=True); time.sleep(60)"]
# The log starts with the command line itself, so readiness markers are assembled at run time.
# Ignores SIGTERM, as a stuck service would: only SIGKILL ends it.
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('re' + 'ady', flush=True); time.sleep(60)",
]


def test_a_child_leads_its_own_group_and_stops_with_its_descendants(tmp_path: Path) -> None:
    # The child starts a grandchild; stopping the child must stop both.
    command = [
        sys.executable,
        "-c",
        "import subprocess, sys, time;"
        " subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        " print('re' + 'ady', flush=True); time.sleep(60)",
    ]
    child = ManagedProcess("parent", command, log_path=tmp_path / "parent.log").start()
    child.wait_ready(
        lambda: "ready" in (tmp_path / "parent.log").read_text(),
        timeout_s=30,
        on_exit=ServerStartError,
        on_timeout=ServerStartError,
    )
    process = psutil.Process(child.pid)
    assert process.pid == __import__("os").getpgid(process.pid)  # a group of its own
    descendants = process.children(recursive=True)
    assert descendants
    assert child.stop(grace_s=10) == "terminated"
    assert not child.running() and not any(p.is_running() and p.status() != "zombie" for p in descendants)
    assert child.stop() == "gone"


def test_what_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    child = ManagedProcess("stubborn", STUBBORN, log_path=tmp_path / "stubborn.log").start()
    child.wait_ready(
        lambda: "ready" in (tmp_path / "stubborn.log").read_text(),
        timeout_s=30,
        on_exit=ServerStartError,
        on_timeout=ServerStartError,
    )
    started = time.monotonic()
    assert child.stop(grace_s=0.5) == "killed"
    assert time.monotonic() - started < 10


def test_an_exit_during_start_up_names_the_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('bad config: port taken', flush=True); sys.exit(3)"]
    child = ManagedProcess("server", command, log_path=tmp_path / "server.log").start()
    with pytest.raises(ServerStartError, match="exited with code 3(.|\n)*bad config: port taken"):
        child.wait_ready(lambda: False, timeout_s=30, on_exit=ServerStartError, on_timeout=ServerStartError)


def test_a_child_that_never_gets_healthy_is_killed(tmp_path: Path) -> None:
    child = ManagedProcess("slow", SLEEPER, log_path=tmp_path / "slow.log").start()
    with pytest.raises(ServerStartError, match="not healthy after 0.5 s"):
        child.wait_ready(lambda: False, timeout_s=0.5, on_exit=ServerStartError, on_timeout=ServerStartError)
    assert not child.running()


def test_stop_together_reports_each_and_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    first = ManagedProcess("a", SLEEPER, log_path=tmp_path / "a.log").start()
    second = ManagedProcess("b", SLEEPER, log_path=tmp_path / "b.log").start()
    stopped: list[str] = []
    outcome = stop_together(
        {"a": psutil.Process(first.pid), "b": psutil.Process(second.pid), "c": None},
        grace_s={"a": 5, "b": 5},
        on_stopped=lambda name, how: stopped.append(name),
    )
    assert outcome == {"a": "terminated", "b": "terminated", "c": "gone"} and sorted(stopped) == ["a", "b"]
    assert first.process.wait(5) is not None and second.process.wait(5) is not None
    assert live_process(first.pid, create_time=0.0) is None


def test_ports_and_environment() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(port_is_free("127.0.0.1", port) for port in ports)
    assert isinstance(free_port(), int)
    env = child_environment({"LOCKGATE_X": "1"}, drop=["PATH"])
    assert env["LOCKGATE_X"] == "1" and "PATH" not in env
