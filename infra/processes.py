"""Local processes, supervised one way: start in a group of its own, wait until healthy, stop gracefully.

Used by everything lockgate starts on this machine: the embedded lakeFS server
(``infra.lakefs_server.launcher``), the services of ``lockgate up`` (``infra.stack``) and the deployment
worker of the demo and the loop benchmark (``flows.demo``). It is also the one place that copies this
process's environment for a child (``child_environment``) and sets library defaults in it
(``set_environment_defaults``): lockgate's own settings are read only by ``infra.settings``.

A child leads a process group of its own (``start_new_session``), so a terminal's Ctrl+C reaches the
parent only, and stopping it reaches everything it started: SIGTERM to the group and every descendant,
a grace period, then SIGKILL for what is left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import psutil

StopOutcome = Literal["terminated", "killed", "gone"]


# -- ports -------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (``""``: on every interface)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now (each held until all are picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_get(url: str, *, timeout: float = 2.0) -> bytes | None:
    """The body of a 2xx answer to GET ``url``, or ``None`` (no answer, an error status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read() if 200 <= response.status < 300 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


# -- the environment of children -------------------------------------------------------------------


def child_environment(extra: Mapping[str, str] | None = None, *, drop: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment for a child: ``extra`` wins, names in ``drop`` are left out."""
    dropped = set(drop)
    inherited = {name: value for name, value in os.environ.items() if name not in dropped}
    return {**inherited, **(extra or {})}


def set_environment_defaults(values: Mapping[str, str]) -> None:
    """Set variables a library (or the processes it starts) reads, unless the user set them already.

    For third-party switches only (Prefect and Great Expectations analytics, Ray Serve's throughput
    knobs for the Ray this process starts); lockgate's own settings never travel this way.
    """
    for name, value in values.items():
        os.environ.setdefault(name, value)


# -- logs ----------------------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, or a note that there is none."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# -- starting ------------------------------------------------------------------------------------------


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own, output appended to ``log_path``.

    Args:
        command: The command line.
        log_path: Where stdout and stderr go (appended, after a line naming the command).
        env: The child's whole environment (build it with ``child_environment``); this process's when
            omitted.
        cwd: Working directory.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        log.write(f"\n--- {stamp} {shlex.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped as one, immune to the terminal's ^C
        )


def live_process(pid: int, create_time: float) -> psutil.Process | None:
    """The process ``pid`` if it still runs and is the one started at ``create_time`` (not a reused PID)."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > 0.01:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def is_alive(process: psutil.Process) -> bool:
    """Whether ``process`` runs (a zombie child of this process is reaped and counts as gone)."""
    try:
        if not process.is_running():
            return False
        if process.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(process.pid, os.WNOHANG)
            return False
        return True
    except psutil.NoSuchProcess:
        return False


def exit_code(pid: int) -> int | None:
    """The exit code of a child of this process that exited (reaping it), else ``None``."""
    with contextlib.suppress(ChildProcessError, OSError):
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return os.waitstatus_to_exitcode(status)
    return None


# -- stopping ------------------------------------------------------------------------------------------


def signal_tree(process: psutil.Process, signum: int) -> list[psutil.Process]:
    """Signal ``process``'s group (it leads one) and every descendant; return them all."""
    tree = [process]
    with contextlib.suppress(psutil.Error):
        tree += process.children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
    for member in tree:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signum)  # descendants that left the group
    return tree


def stop_together(
    processes: Mapping[str, psutil.Process | None],
    *,
    grace_s: Mapping[str, float],
    on_stopping: Callable[[str], None] = lambda name: None,
    on_stopped: Callable[[str, StopOutcome], None] = lambda name, outcome: None,
) -> dict[str, StopOutcome]:
    """SIGTERM every process tree at once, wait each one's grace period, SIGKILL what is left.

    Args:
        processes: Name to process (``None``: already gone).
        grace_s: Name to seconds between SIGTERM and SIGKILL.
        on_stopping: Called with a name as its SIGTERM is sent.
        on_stopped: Called with a name and how it ended, as it ends.

    Returns:
        Name to ``terminated`` (ended within its grace), ``killed`` or ``gone`` (was not running).
    """
    outcome: dict[str, StopOutcome] = {}
    targets: dict[str, list[psutil.Process]] = {}
    for name, process in processes.items():
        if process is None or not is_alive(process):
            outcome[name] = "gone"
            continue
        on_stopping(name)
        targets[name] = signal_tree(process, signal.SIGTERM)
    deadline = {name: time.monotonic() + grace_s.get(name, 10.0) for name in targets}
    while targets:
        for name, members in list(targets.items()):
            alive = [member for member in members if is_alive(member)]
            if not alive:
                outcome[name] = outcome.get(name, "terminated")
                del targets[name]
                on_stopped(name, outcome[name])
            elif time.monotonic() > deadline[name]:
                for member in alive:
                    with contextlib.suppress(psutil.Error):
                        member.kill()
                outcome[name] = "killed"
                deadline[name] = time.monotonic() + 5  # SIGKILL is not refused; just wait for it
                targets[name] = alive
        if targets:
            time.sleep(0.05)
    return outcome


class ManagedProcess:
    """A child this process started and stops: ``start`` it, ``wait_ready``, then ``stop`` or ``kill``.

    Args:
        name: What it is, for messages (``embedded lakeFS server``, ``deployment worker``).
        command: The command line.
        log_path: Where its output goes.
        env: Its whole environment (``child_environment``); this process's when omitted.
        cwd: Its working directory.
        grace_s: Seconds ``stop`` waits after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.name = name
        self.command = tuple(command)
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.grace_s = grace_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start the process (not waiting for anything)."""
        self.process = spawn(self.command, log_path=self.log_path, env=self.env, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout_s: float,
        poll_s: float = 0.05,
        on_exit: Callable[[str], Exception],
        on_timeout: Callable[[str], Exception],
    ) -> None:
        """Poll ``ready`` until it is true; raise ``on_exit(log tail)`` if the process exits first, or
        ``on_timeout(log tail)`` (after killing it) when ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running():
                code = None if self.process is None else self.process.returncode
                raise on_exit(f"{self.name} exited with code {code}; last log lines:\n{self.log_tail()}")
            if ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise on_timeout(
                    f"{self.name} not healthy after {timeout_s:g} s; last log lines:\n{self.log_tail()}"
                )
            time.sleep(poll_s)

    def stop(self, grace_s: float | None = None) -> StopOutcome:
        """SIGTERM its group, SIGKILL after the grace period; ``gone`` when it was not running."""
        if not self.running():
            return "gone"
        assert self.process is not None
        outcome = stop_together(
            {self.name: psutil.Process(self.process.pid)},
            grace_s={self.name: self.grace_s if grace_s is None else grace_s},
        )[self.name]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        return outcome

    def kill(self) -> None:
        """SIGKILL its group at once, as a crash would."""
        if self.running():
            assert self.process is not None
            signal_tree(psutil.Process(self.process.pid), signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)
