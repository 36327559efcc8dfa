"""``lockgate up`` / ``status`` / ``down`` for real: every service as a background process, then none.

One stack (free ports, temporary stack directory) is shared with test_prefect_ui.py; the test that stops
it runs last here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

if TYPE_CHECKING:
    from tests.support.stack import RunningStack, StackCli, StackHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

# The stack fixtures (running_stack, stack_handle) are shared by every module that loads this plugin.
pytest_plugins = ["tests.support.stack"]

SERVICES = {"prefect", "lakefs", "dask-scheduler", "dask-workers", "ray", "webhook-relay", "deployments"}


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_up_starts_every_service_healthy(running_stack: RunningStack) -> None:
    status = running_stack.status
    assert status["running"] and status["healthy"]
    by_name = {service["name"]: service for service in status["services"]}
    assert set(by_name) >= SERVICES
    for name in SERVICES:
        assert by_name[name]["state"] == "running", by_name[name]
        assert psutil.pid_exists(by_name[name]["pid"])
        assert Path(by_name[name]["log"]).is_file()
    # No model is registered in a fresh stack: serving waits for deploy_flow, and that is not a failure.
    assert by_name["serving"]["state"] == "waiting for a champion (deploy_flow starts it)"
    assert by_name["serving"]["pid"] is None
    for service in SERVICES:
        assert service in running_stack.up_output
    assert "source " in running_stack.up_output


def test_services_answer_on_their_urls(running_stack: RunningStack) -> None:
    ports = running_stack.status["ports"]
    assert _get(f"{running_stack.prefect_url}/api/health") == (200, b"true")
    assert _get(f"http://127.0.0.1:{ports['lakefs']}/api/v1/healthcheck")[0] == 204
    assert json.loads(_get(f"http://127.0.0.1:{ports['webhook_relay']}/health")[1]) == {"status": "ok"}
    counts = json.loads(_get(f"http://127.0.0.1:{ports['dask_dashboard']}/json/counts.json")[1])
    assert counts["workers"] == 2
    assert _get(f"http://127.0.0.1:{ports['ray_dashboard']}/api/gcs_healthz")[0] == 200
    # The deployments process registered lockgate's deployments with the stack's Prefect server.
    request = urllib.request.Request(
        f"{running_stack.prefect_url}/api/deployments/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        deployments = json.loads(response.read())
    assert any("lockgate" in deployment["tags"] for deployment in deployments)
    # The scheduled monitor reads serving SLOs from Ray's Prometheus export, which answers.
    metrics_url = f"http://127.0.0.1:{ports['ray_metrics']}/metrics"
    monitor = next(d for d in deployments if d["entrypoint"].endswith("monitor_flow"))
    assert monitor["parameters"]["parameters"]["metrics_urls"] == [metrics_url]
    assert _get(metrics_url)[0] == 200


def test_env_file_and_secrets_are_owner_only_and_point_at_the_stack(running_stack: RunningStack) -> None:
    env_file = running_stack.stack_dir / "stack.env"
    secret_file = running_stack.stack_dir / "webhook-secret"
    for path in (env_file, secret_file, running_stack.stack_dir / "state.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    exported = _exported(env_file)
    ports = running_stack.status["ports"]
    assert exported["PREFECT_API_URL"] == f"{running_stack.prefect_url}/api"
    assert exported["LOCKGATE_LAKEFS_ENDPOINT"] == f"http://127.0.0.1:{ports['lakefs']}/api/v1"
    assert exported["LOCKGATE_DASK_SCHEDULER_ADDRESS"] == f"tcp://127.0.0.1:{ports['dask_scheduler']}"
    assert exported["LOCKGATE_SERVING_RAY_ADDRESS"] == f"127.0.0.1:{ports['ray']}"
    assert exported["LOCKGATE_WEBHOOK_SECRET"] == secret_file.read_text().strip()
    assert len(exported["LOCKGATE_WEBHOOK_SECRET"]) >= 32
    assert str(secret_file) in running_stack.up_output  # `up` says where the secret is, not what it is
    assert exported["LOCKGATE_WEBHOOK_SECRET"] not in running_stack.up_output


def test_up_again_only_reports_the_running_stack(running_stack: RunningStack, stack_cli: StackCli) -> None:
    again = stack_cli.run("up", "--free-ports", stack_dir=running_stack.stack_dir, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    code, status = stack_cli.status(running_stack.stack_dir)
    assert code == 0
    assert sorted(running_stack.pids()) == sorted(s["pid"] for s in status["services"] if s["pid"])


def test_port_in_use_is_refused_before_anything_starts(tmp_path: Path, stack_cli: StackCli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = stack_cli.run(
            "up", "--free-ports", "--prefect-port", str(port), stack_dir=tmp_path, timeout=120
        )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"port {port} (Prefect server) on 127.0.0.1 is in use" in message
    assert "--prefect-port" in message
    assert not (tmp_path / "state.json").exists()
    assert not (tmp_path / "logs").exists()


def test_a_service_failing_to_start_stops_the_others_and_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack_cli: StackCli
) -> None:
    # A placeholder webhook secret: the relay refuses it at start-up, after the other services started.
    monkeypatch.setenv("LOCKGATE_WEBHOOK_SECRET", "changeme")
    result = stack_cli.run("up", "--free-ports", stack_dir=tmp_path, timeout=300)
    assert result.returncode == 1
    error = " ".join(result.stderr.split())
    assert "webhook relay (webhook-relay) exited during start-up" in error
    assert "LOCKGATE_WEBHOOK_SECRET" in error  # the tail of its log names what to fix
    assert "everything started was stopped again" in error
    assert not (tmp_path / "state.json").exists()
    code, _ = stack_cli.status(tmp_path)
    assert code == 1
    _assert_no_process_from(tmp_path)


def test_up_starts_serving_once_a_champion_exists(stack_handle: StackHandle) -> None:
    import httpx

    from infra.clients import make_lakefs_client
    from infra.settings import LakeFSSettings
    from tasks.registry import set_alias
    from tests.support.serving import MODEL_NAME, loan_records, register_loans_model

    stack = stack_handle.ensure_up()
    exported = _exported(stack.stack_dir / "stack.env")
    client = make_lakefs_client(
        LakeFSSettings(
            endpoint=exported["LOCKGATE_LAKEFS_ENDPOINT"],
            access_key_id=exported["LOCKGATE_LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=exported["LOCKGATE_LAKEFS_SECRET_ACCESS_KEY"],
        )
    )
    registered = register_loans_model(client, seed=1)
    set_alias(MODEL_NAME, "champion", registered.version, client=client)

    # The registry is kept in the stack directory, so the next `up` finds the champion and serves it.
    assert stack_handle.down().returncode == 0
    stack = stack_handle.ensure_up()
    serving = stack.service("serving")
    assert serving["state"] == "running" and serving["pid"] is not None, serving
    response = httpx.post(f"{serving['url']}/predict", json=loan_records(3), timeout=30)
    assert response.status_code == 200, response.text
    assert {item["model_version"] for item in response.json()["predictions"]} == {registered.version}


def test_down_stops_every_process_then_is_friendly(stack_handle: StackHandle, stack_cli: StackCli) -> None:
    stack = stack_handle.ensure_up()
    processes = []
    for pid in stack.pids():
        root = psutil.Process(pid)
        processes += [root, *root.children(recursive=True)]
    saved_state = (stack.stack_dir / "state.json").read_text()

    # One service dies: status names it and fails; `up` refuses to start a second stack beside the rest.
    relay = stack.service("webhook-relay")
    os.killpg(relay["pid"], signal.SIGKILL)
    psutil.wait_procs([p for p in processes if p.pid == relay["pid"]], timeout=10)
    code, status = stack_cli.status(stack.stack_dir)
    assert code == 1 and not status["running"]
    assert {s["name"]: s["state"] for s in status["services"]}["webhook-relay"] == "stopped"
    refused = stack_cli.run("up", "--free-ports", stack_dir=stack.stack_dir)
    assert refused.returncode == 1
    assert "partly running (webhook-relay stopped)" in " ".join(refused.stderr.split())

    stopped = stack_handle.down()
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped" in stopped.stdout
    for name in (service["name"] for service in stack.status["services"] if service["pid"]):
        assert name in stopped.stdout
    _, alive = psutil.wait_procs(processes, timeout=10)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"still running after down: {alive}"
    assert not (stack.stack_dir / "state.json").exists()
    assert not (stack.stack_dir / "stack.env").exists()
    _assert_no_process_from(stack.stack_dir)

    again = stack_cli.run("down", stack_dir=stack.stack_dir)
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout

    # A state file whose processes are all gone (a reboot): status says so, down clears it.
    (stack.stack_dir / "state.json").write_text(saved_state)
    code, status = stack_cli.status(stack.stack_dir)
    assert code == 1 and status["stale"] and not status["running"]
    stale = stack_cli.run("down", stack_dir=stack.stack_dir)
    assert stale.returncode == 0
    assert "stale state" in " ".join(stale.stdout.split())
    assert not (stack.stack_dir / "state.json").exists()


def _exported(env_file: Path) -> dict[str, str]:
    """The variables ``stack.env`` exports (its values need no shell unquoting: no spaces or quotes)."""
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ")
    )


def _assert_no_process_from(stack_dir: Path) -> None:
    """No process mentions the stack directory in its command line or environment any more."""
    deadline = time.monotonic() + 10
    while True:
        leftovers = []
        for process in psutil.process_iter(["pid", "cmdline", "environ", "status"]):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            environ = process.info["environ"] or {}
            if str(stack_dir) in " ".join(process.info["cmdline"] or ()) or (
                environ.get("LOCKGATE_STACK_DIR") == str(stack_dir)
            ):
                leftovers.append(process)
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not leftovers, f"processes of {stack_dir} left running: {leftovers}"
