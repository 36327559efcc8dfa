"""One real ``lockgate up`` stack for the integration tests that need it (test_stack, test_prefect_ui).

The stack runs from a temporary stack directory on free ports, as a user would start it: the CLI in a
subprocess. Test modules load this file as a plugin (``pytest_plugins = ["tests.support.stack"]``), so its
session fixture is one for all of them: the stack starts once, on first use, and ``lockgate down`` stops
it at the end of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The stack commands on a Typer app of their own, until flows/cli.py registers them; the same functions.
_STANDALONE_CLI = (
    "import typer; from flows import stack_cli; app = typer.Typer(); "
    "app.command('up')(stack_cli.up); app.command('down')(stack_cli.down); "
    "app.command('status')(stack_cli.status); app()"
)


def _registered_on_main_cli() -> bool:
    from flows.cli import app

    return {"up", "down", "status"} <= {command.name for command in app.registered_commands}


def cli_command() -> list[str]:
    """How to run ``lockgate`` (``up``, ``down``, ``status`` available) from a test."""
    if _registered_on_main_cli():
        return [sys.executable, "-m", "flows.cli"]
    return [sys.executable, "-c", _STANDALONE_CLI]


def run_cli(*args: str, stack_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a stack command against ``stack_dir``, with a wide terminal so tables do not wrap."""
    env = {**os.environ, "COLUMNS": "250", "LOCKGATE_STACK_DIR": str(stack_dir)}
    for name in list(env):  # the stack must choose these itself, not inherit a developer's shell
        if name.startswith(("LOCKGATE_LAKEFS_", "LOCKGATE_DASK_", "LOCKGATE_SERVING_", "PREFECT_API_URL")):
            del env[name]
    return subprocess.run(
        [*cli_command(), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass(frozen=True)
class RunningStack:
    """The stack started for the tests: its directory, ``up``'s output and ``status --json`` after it."""

    stack_dir: Path
    up_output: str
    status: dict

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.status['ports']['prefect']}"

    def service(self, name: str) -> dict:
        return next(service for service in self.status["services"] if service["name"] == name)

    def pids(self) -> list[int]:
        return [service["pid"] for service in self.status["services"] if service["pid"] is not None]


def read_status(stack_dir: Path) -> tuple[int, dict]:
    """``lockgate status --json``: exit code and parsed status."""
    result = run_cli("status", "--json", stack_dir=stack_dir, timeout=60)
    return result.returncode, json.loads(result.stdout)


class StackHandle:
    """The session's stack: started on first use, started again if a test stopped it."""

    def __init__(self, stack_dir: Path) -> None:
        self.stack_dir = stack_dir
        self.current: RunningStack | None = None

    def ensure_up(self) -> RunningStack:
        if self.current is None:
            up = run_cli("up", "--free-ports", "--timeout", "180", stack_dir=self.stack_dir, timeout=600)
            assert up.returncode == 0, f"lockgate up failed:\n{up.stdout}\n{up.stderr}"
            code, status = read_status(self.stack_dir)
            assert code == 0, f"lockgate status after up: {json.dumps(status, indent=2)}"
            self.current = RunningStack(stack_dir=self.stack_dir, up_output=up.stdout, status=status)
        return self.current

    def down(self) -> subprocess.CompletedProcess[str]:
        self.current = None
        return run_cli("down", stack_dir=self.stack_dir, timeout=180)


@pytest.fixture(scope="session")
def stack_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """One stack directory for the session; ``lockgate down`` at the end (a no-op when already down)."""
    handle = StackHandle(tmp_path_factory.mktemp("stack"))
    yield handle
    handle.down()


class StackCli:
    """``run_cli`` and ``read_status`` for tests (they load this file as a plugin rather than import it)."""

    run = staticmethod(run_cli)
    status = staticmethod(read_status)


@pytest.fixture(scope="session")
def stack_cli() -> StackCli:
    """Runs ``lockgate up/down/status`` against any stack directory."""
    return StackCli()


@pytest.fixture
def running_stack(stack_handle: StackHandle) -> RunningStack:
    """The session's stack, up (``lockgate up --free-ports``): started once, shared by the tests."""
    return stack_handle.ensure_up()
