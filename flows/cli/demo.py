"""``lockgate demo``: the whole loop on the embedded default, shown as it happens (``flows.demo``)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from flows.cli import output
from flows.cli.app import app, console, fail
from flows.cli.context import lakefs_connection
from flows.cli.options import DataDir

if TYPE_CHECKING:
    from infra.lakefs_server.launcher import EmbeddedLakeFS


class RichReporter:
    """The demo on the terminal: rules between parts, spinners and progress bars, rich tables."""

    section = staticmethod(console.rule)
    versioning_round_trip = staticmethod(output.versioning_round_trip)
    gate = staticmethod(output.gate)
    lineage = staticmethod(output.lineage)
    rollout = staticmethod(output.rollout)
    traffic = staticmethod(output.traffic)
    monitor_line = staticmethod(output.monitor_line)
    items = staticmethod(output.items)
    lineage_tree = staticmethod(output.lineage_tree)

    def info(self, text: str) -> None:
        console.print(text, highlight=False)

    def panel(self, text: str, *, title: str, style: str) -> None:
        console.print(Panel(text, title=title, style=style))

    @contextlib.contextmanager
    def busy(self, text: str) -> Iterator[Callable[[str], None]]:
        with console.status(text) as status:
            yield status.update

    @contextlib.contextmanager
    def steps(self, title: str, steps: Sequence[str]) -> Iterator[Callable[[str], None]]:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=console,
            transient=True,
        ) as progress:
            task_id = progress.add_task(title, total=len(steps))

            def advance(step: str) -> None:
                progress.update(task_id, advance=1, description=step)
                console.print(f"[green]done[/] {step}")

            yield advance


@app.command("demo", rich_help_panel="Start here")
def run_demo(
    data_dir: DataDir = None,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave the embedded server running after the demo, until Ctrl+C."
        ),
    ] = False,
    storage_namespace: Annotated[
        str | None,
        typer.Option(
            help="Storage namespace for the demo repository when it is created, e.g. "
            "s3://bucket/lockgate-demo. Default: the server's suggestion (local://lockgate-demo on the "
            "embedded server)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated readings.")] = 42,
    rows: Annotated[int, typer.Option(min=1, max=1_000_000, help="Number of generated readings.")] = 300,
    gate: Annotated[
        bool,
        typer.Option(help="Also send a good and a defective loans batch through the contract gate."),
    ] = True,
    train_model: Annotated[
        bool,
        typer.Option(
            "--train/--no-train",
            help="After the gate, train a model on main with DDP on a local Dask cluster and register it.",
        ),
    ] = True,
    serve_model: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="After training, serve the model on a local Ray Serve, send it live traffic, and roll a new "
            "challenger out step by step when a champion already exists.",
        ),
    ] = True,
    close_loop: Annotated[
        bool,
        typer.Option(
            "--loop/--no-loop",
            help="After serving, inject drift into the live traffic and let monitoring, a Prefect automation,"
            " retraining and the SLO-gated rollout replace the model, then print its lineage (starts a "
            "temporary Prefect server unless PREFECT_API_URL is set).",
        ),
    ] = True,
) -> None:
    """Show the loop end to end: versioned data (branch, write, commit, diff, merge, read back), the
    contract gate, training, serving with a rollout, and drift answered by an automatic retrain.

    Starts the embedded lakeFS-API server (unless LOCKGATE_LAKEFS_ENDPOINT names a real lakeFS), works on
    repository 'lockgate-demo' and a new branch demo-YYYYMMDD-HHMMSS-xxxx, and verifies that the data
    read at the merge commit equals what was written. Safe to run again on the same data directory.
    """
    from flows.cli.context import publisher
    from flows.demo import DemoOptions
    from flows.demo import run_demo as run

    options = DemoOptions(
        storage_namespace=storage_namespace,
        seed=seed,
        rows=rows,
        gate=gate,
        train=train_model,
        serve=serve_model,
        close_loop=close_loop,
    )
    with lakefs_connection(data_dir) as connection:
        result = run(
            options,
            client=connection.client,
            lakefs_settings=connection.settings,
            publish=publisher(),
            reporter=RichReporter(),
        )
        if connection.server is not None and keep_running:
            _wait_for_interrupt(connection.server)
    if not result.verified:
        fail("the DataFrame read at the merge commit differs from the one written")


def _wait_for_interrupt(server: EmbeddedLakeFS) -> None:
    """Block until Ctrl+C (or the server exits), telling the user how to connect."""
    console.print(
        f"Server still running at [bold]{server.endpoint}[/]; credentials in "
        f"{server.data_dir / 'credentials.json'} (owner-only). Press Ctrl+C to stop.",
    )
    # SIGTERM (a service manager, `kill`) must stop the server too, not orphan it; and SIGINT is
    # re-armed because a shell may start background jobs with it ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        console.print("Stopping the server.")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
