"""``lockgate up`` / ``down`` / ``status``: the whole one-machine stack as background processes.

The process handling lives in ``infra.stack``; this module parses options, decides whether a champion
exists (the registry lives in ``tasks``, which ``infra`` must not import) and prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.app import app, console, error_console, fail
from flows.cli.options import ModelName
from infra import stack

StackDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        file_okay=False,
        help="Stack directory: state, logs, Prefect/lakeFS data, secrets and stack.env. "
        "(env LOCKGATE_STACK_DIR; default ~/.lockgate/stack)",
    ),
]
_PORT = {"min": 1, "max": 65535}

_EVENT_STYLE = {
    "starting": "cyan",
    "ready": "green",
    "skipped": "yellow",
    "failed": "red",
    "stopping": "cyan",
    "stopped": "green",
}
_EVENT_LABEL = {"skipped": "waiting"}
# Ray's GCS drains for 30 s on SIGTERM and holds nothing to flush: a SIGKILL after its grace is normal.
_KILL_EXPECTED = {"ray"}


def _print_event(event: stack.StackEvent, service: str, detail: str) -> None:
    label = f"{_EVENT_LABEL.get(event, event):<9}"
    console.print(f"  [{_EVENT_STYLE[event]}]{label}[/] {service:<15} {detail}", highlight=False)


@app.command("up", rich_help_panel="Start here")
def up(
    data_dir: StackDir = None,
    prefect_port: Annotated[
        int | None, typer.Option(**_PORT, help="Prefect server and UI. [default: 4200]")
    ] = None,
    lakefs_port: Annotated[
        int | None, typer.Option(**_PORT, help="Embedded lakeFS API. [default: 8000]")
    ] = None,
    dask_port: Annotated[int | None, typer.Option(**_PORT, help="Dask scheduler. [default: 8786]")] = None,
    dask_dashboard_port: Annotated[
        int | None, typer.Option(**_PORT, help="Dask scheduler HTTP (health, metrics). [default: 8787]")
    ] = None,
    ray_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray GCS (the Ray address). [default: 6379]")
    ] = None,
    ray_client_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray client server (ray://). [default: 10001]")
    ] = None,
    ray_dashboard_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray dashboard. [default: 8265]")
    ] = None,
    ray_dashboard_agent_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray dashboard agent. [default: 52365]")
    ] = None,
    ray_metrics_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray's Prometheus metrics export. [default: 8080]")
    ] = None,
    relay_port: Annotated[int | None, typer.Option(**_PORT, help="Webhook relay. [default: 8200]")] = None,
    serving_port: Annotated[
        int | None, typer.Option(**_PORT, help="Ray Serve HTTP proxy (POST /predict). [default: 8100]")
    ] = None,
    free_ports: Annotated[
        bool,
        typer.Option("--free-ports", help="Pick free ports for every service whose port is not given."),
    ] = False,
    dask_workers: Annotated[
        int, typer.Option(min=1, max=64, help="Dask worker processes (1 thread each; DDP ranks).")
    ] = 2,
    ray_dashboard: Annotated[bool, typer.Option(help="Start Ray's dashboard.")] = True,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each service may take to become healthy.")
    ] = 120.0,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset the deployments and the serving app work on (see `lockgate datasets`). "
            "[default: LOCKGATE_DATASET, else the demo's loans]"
        ),
    ] = None,
    model_name: ModelName = None,
) -> None:
    """Start the whole stack in the background and wait until every service is healthy.

    Starts the Prefect server with its UI, the embedded lakeFS, a Dask scheduler with workers, a Ray head,
    the webhook relay, the serving app (only once a champion model exists; until then deploy_flow starts
    it) and every lockgate flow deployment (schedules and triggers). Logs go to DATA_DIR/logs.

    Afterwards `source DATA_DIR/stack.env` points the lockgate CLI at the stack (its dataset and model
    too: LOCKGATE_DATASET, LOCKGATE_MODEL_NAME). Running `up` again while
    the stack runs only shows its status. A service that fails stops what was started and exits 1
    with the end of its log.
    """
    given = {
        "prefect": prefect_port,
        "lakefs": lakefs_port,
        "dask_scheduler": dask_port,
        "dask_dashboard": dask_dashboard_port,
        "ray": ray_port,
        "ray_client": ray_client_port,
        "ray_dashboard": ray_dashboard_port,
        "ray_dashboard_agent": ray_dashboard_agent_port,
        "ray_metrics": ray_metrics_port,
        "webhook_relay": relay_port,
        "serving": serving_port,
    }
    if free_ports:
        ports = stack.StackPorts.free(**given)
    else:
        ports = stack.StackPorts(**{name: port for name, port in given.items() if port is not None})
    settings = _stack_settings(data_dir)
    data_dir = settings.dir
    configured = settings.webhook_secret
    dataset, model_name = _workload(dataset, model_name)
    config = stack.StackConfig(
        stack_dir=data_dir,
        webhook_secret=configured.get_secret_value() if configured else None,
        ports=ports,
        dask_workers=dask_workers,
        ray_dashboard=ray_dashboard,
        ray_env=_ray_environment(),
        ready_timeout_s=timeout,
        dataset=dataset,
        model_name=model_name,
    ).resolved()
    console.print(f"Starting the lockgate stack in [bold]{config.stack_dir}[/] ...", highlight=False)
    try:
        state = stack.start_stack(
            config, start_serving=partial(_champion_exists, model_name=model_name), on_event=_print_event
        )
    except stack.StackRunningError as error:
        if error.state is None:
            fail(str(error))
        console.print(f"[green]The lockgate stack is already up[/] ({config.stack_dir}).", highlight=False)
        _print_status(stack.stack_status(config.stack_dir))
        return
    except stack.PortInUseError as error:
        fail(str(error), code=2)
    except stack.ServiceStartError as error:
        error_console.rule(f"last lines of {error.log_path}")
        error_console.print(error.log_tail, markup=False, highlight=False)
        error_console.rule()
        fail(f"{error} (everything started was stopped again)")
    except stack.StackError as error:
        fail(str(error))
    status = stack.stack_status(config.stack_dir)
    _print_status(status)
    console.print(f"Dataset {dataset}, model {model_name}.", highlight=False)
    console.print(f"Point the lockgate CLI at it: [bold]source {state.env_file}[/]", highlight=False)
    console.print(
        "Webhook secret (sign /hooks requests with it): "
        + stack.webhook_secret_source(config.stack_dir, configured=configured is not None),
        highlight=False,
    )
    console.print("Stop it with: [bold]lockgate down[/]" + _data_dir_hint(data_dir), highlight=False)
    if not status.healthy:
        fail("the stack started but a health check fails now; see the table above")


@app.command("down", rich_help_panel="Start here")
def down(data_dir: StackDir = None) -> None:
    """Stop every service of the stack (SIGTERM, then SIGKILL after a grace period) and remove its state.

    Data (Prefect database, lakeFS repositories, secrets, logs) stays in DATA_DIR for the next `up`.
    Nothing running is not an error.
    """
    data_dir = _stack_settings(data_dir).dir
    try:
        report = stack.stop_stack(data_dir, on_event=_print_event)
    except stack.StackError as error:
        fail(str(error))
    if not report.had_state:
        console.print(
            f"No lockgate stack is running from {report.stack_dir}; nothing to stop.", highlight=False
        )
        return
    if not report.was_running:
        console.print(
            f"The lockgate stack in {report.stack_dir} had already stopped (its processes were gone); "
            "removed its stale state.",
            highlight=False,
        )
        return
    stopped = [name for name, how in report.stopped.items() if how != "gone"]
    killed = [name for name, how in report.stopped.items() if how == "killed" and name not in _KILL_EXPECTED]
    gone = [name for name, how in report.stopped.items() if how == "gone"]
    console.print(f"[green]Stopped[/] {', '.join(stopped)}.", highlight=False)
    if gone:
        console.print(f"[yellow]Already stopped before `down`:[/] {', '.join(gone)}.", highlight=False)
    if killed:
        console.print(f"[yellow]Killed after the grace period:[/] {', '.join(killed)}.", highlight=False)


@app.command("status", rich_help_panel="Start here")
def status(
    data_dir: StackDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show each service of the stack: state (process alive and health URL answering), URL, PID, log.

    Exits 0 when every service is healthy, 1 when the stack is down or something is unhealthy.
    """
    data_dir = _stack_settings(data_dir).dir
    try:
        result = stack.stack_status(data_dir)
    except stack.StackError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(_status_json(result)))
    elif result.state is None:
        console.print(f"No lockgate stack is running from {result.stack_dir}: start it with `lockgate up`.")
    else:
        _print_status(result)
        if result.stale:
            console.print("Its processes are gone (stale state): run `lockgate down`, then `lockgate up`.")
    if not result.healthy:
        raise typer.Exit(1)


def _print_status(result: stack.StackStatus) -> None:
    table = Table(title=f"lockgate stack ({result.stack_dir})")
    for column in ("service", "state", "URL / address", "PID", "log"):
        table.add_column(column, overflow="fold")
    for service in result.services:
        colour = "green" if service.healthy and service.pid else "yellow" if service.healthy else "red"
        table.add_row(
            service.name,
            f"[{colour}]{service.state}[/]",
            service.url or "",
            "" if service.pid is None else str(service.pid),
            _short_log(result.stack_dir, service.log),
        )
    console.print(table)


def _short_log(stack_dir: Path, log: str | None) -> str:
    if log is None:
        return ""
    path = Path(log)
    return str(path.relative_to(stack_dir)) if path.is_relative_to(stack_dir) else log


def _status_json(result: stack.StackStatus) -> dict:
    return {
        "stack_dir": str(result.stack_dir),
        "running": result.running,
        "healthy": result.healthy,
        "stale": result.stale,
        "env_file": result.state.env_file if result.state else None,
        "ports": result.state.ports if result.state else None,
        "services": [
            {
                "name": s.name,
                "title": s.title,
                "state": s.state,
                "healthy": s.healthy,
                "url": s.url,
                "pid": s.pid,
                "log": s.log,
            }
            for s in result.services
        ],
    }


def _stack_settings(data_dir: Path | None):
    from flows.cli.options import settings_with
    from infra.settings import StackSettings

    return settings_with(StackSettings, dir=data_dir)


def _data_dir_hint(data_dir: Path) -> str:
    return "" if data_dir == stack.DEFAULT_STACK_DIR else f" --data-dir {data_dir}"


def _ray_environment() -> dict[str, str]:
    """Ray Serve's throughput settings for the Ray head, as a locally started Ray gets them."""
    from infra.settings import THROUGHPUT_ENVIRONMENT, ServingSettings

    return dict(THROUGHPUT_ENVIRONMENT) if ServingSettings().throughput_tuning else {}


def _workload(dataset: str | None, model_name: str | None) -> tuple[str, str]:
    """The stack's dataset and model: the options, else the settings, else the demo's (loans); an unknown
    dataset is refused before anything starts."""
    from flows.demo import DEMO_DATASET
    from infra.settings import WorkloadSettings
    from tasks.datasets import get_dataset

    workload = WorkloadSettings()
    dataset = get_dataset(dataset or workload.dataset or DEMO_DATASET).name
    return dataset, model_name or workload.model_for(dataset)


def _champion_exists(env: Mapping[str, str], *, model_name: str) -> bool:
    """Whether the served model has a champion in the stack's registry (then `up` starts serving)."""
    from pydantic import SecretStr

    from infra.clients import make_lakefs_client
    from infra.errors import LockgateError, ModelNotFoundError
    from infra.settings import LakeFSSettings
    from tasks.registry import get_alias

    settings = LakeFSSettings(
        endpoint=env["LOCKGATE_LAKEFS_ENDPOINT"],
        access_key_id=env["LOCKGATE_LAKEFS_ACCESS_KEY_ID"],
        secret_access_key=SecretStr(env["LOCKGATE_LAKEFS_SECRET_ACCESS_KEY"]),
    )
    try:
        get_alias(model_name, "champion", client=make_lakefs_client(settings))
    except ModelNotFoundError:
        return False
    except LockgateError as error:
        error_console.print(f"[yellow]warning:[/] cannot read the champion of {model_name}: {error}")
        return False
    return True
