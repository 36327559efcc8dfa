"""The ``lockgate`` command line: run the embedded lakeFS-API server, show the versioning demo.

Heavy libraries (lakefs, pandas, uvicorn) are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

if TYPE_CHECKING:
    import lakefs

    from flows.demo import DemoResult
    from infra.lakefs_server.launcher import EmbeddedLakeFS

app = typer.Typer(
    name="lockgate",
    help="lockgate: a production ML loop where data moves on only when its contract gate opens.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
lakefs_app = typer.Typer(
    help="The embedded lakeFS-API-compatible server (versioned data without Docker).",
    no_args_is_help=True,
)
app.add_typer(lakefs_app, name="lakefs")

console = Console()
error_console = Console(stderr=True)


@app.callback()
def _defaults() -> None:
    # A temporary local Prefect server must not try to phone home from an offline machine.
    from infra.processes import set_environment_defaults

    set_environment_defaults({"PREFECT_SERVER_ANALYTICS_ENABLED": "false"})


class BlockStore(enum.StrEnum):
    """Where the embedded server keeps object bytes."""

    local = "local"
    s3 = "s3"


def _fail(message: str, *, code: int = 1) -> NoReturn:
    error_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _fail_on_settings(error: ValidationError, *, what: str) -> NoReturn:
    """Report invalid settings field by field, without echoing the values (they may be secrets)."""
    problems = []
    for problem in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        problems.append(f"{field}: {problem['msg'].removeprefix('Value error, ')}")
    _fail(f"invalid {what}: {'; '.join(problems)}", code=2)


@app.command("version")
def show_version() -> None:
    """Print the lockgate version and the lakeFS client versions it was built against."""
    for package in ("lockgate", "lakefs", "lakefs-sdk"):
        try:
            console.print(f"{package} {version(package)}", highlight=False)
        except PackageNotFoundError:
            console.print(f"{package} (not installed)", highlight=False)


@lakefs_app.command("serve")
def serve_lakefs(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on. (env LOCKGATE_EMBEDDED_LAKEFS_HOST; default 127.0.0.1)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="TCP port; 0 picks a free one. (env LOCKGATE_EMBEDDED_LAKEFS_PORT; default 8000)",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help=(
                "Directory for the SQLite metadata, local blocks and credentials.json. "
                "(env LOCKGATE_EMBEDDED_LAKEFS_DATA_DIR; default .lockgate/lakefs)"
            ),
        ),
    ] = None,
    access_key_id: Annotated[
        str | None,
        typer.Option(
            help=(
                "Access key ID clients must present; with --secret-access-key. When both are unset a pair "
                "is generated on first start and stored owner-only in DATA_DIR/credentials.json. "
                "(env LOCKGATE_EMBEDDED_LAKEFS_ACCESS_KEY_ID)"
            )
        ),
    ] = None,
    secret_access_key: Annotated[
        str | None,
        typer.Option(
            help=(
                "Secret access key (8+ characters). Prefer the environment variable: command lines are "
                "visible to other users. (env LOCKGATE_EMBEDDED_LAKEFS_SECRET_ACCESS_KEY)"
            )
        ),
    ] = None,
    block_store: Annotated[
        BlockStore | None,
        typer.Option(
            case_sensitive=False,
            help=(
                "Where object bytes live: 'local' (DATA_DIR/blocks) or 's3' (needs --s3-bucket). "
                "(env LOCKGATE_EMBEDDED_LAKEFS_BLOCK_STORE; default local)"
            ),
        ),
    ] = None,
    s3_bucket: Annotated[
        str | None,
        typer.Option(help="Bucket of the S3 block store. (env LOCKGATE_EMBEDDED_LAKEFS_S3_BUCKET)"),
    ] = None,
    s3_prefix: Annotated[
        str | None,
        typer.Option(
            help="Key prefix inside the S3 bucket. (env LOCKGATE_EMBEDDED_LAKEFS_S3_PREFIX; default lakefs)"
        ),
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "S3-compatible endpoint (MinIO, moto); AWS when unset. AWS credentials come from the usual "
                "boto3 sources. (env LOCKGATE_EMBEDDED_LAKEFS_S3_ENDPOINT_URL)"
            )
        ),
    ] = None,
    presign: Annotated[
        bool | None,
        typer.Option(
            "--presign/--no-presign",
            help="Offer presigned upload/download URLs to clients. (env LOCKGATE_EMBEDDED_LAKEFS_PRESIGN)",
        ),
    ] = None,
) -> None:
    """Run the embedded lakeFS-API server in the foreground until Ctrl+C.

    Options override LOCKGATE_EMBEDDED_LAKEFS_* environment variables. Point any lakeFS client
    (the lakefs SDK, lakectl) at http://HOST:PORT/api/v1.
    """
    from infra.settings import EmbeddedLakeFSSettings

    given = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "block_store": block_store.value if block_store is not None else None,
        "s3_bucket": s3_bucket,
        "s3_prefix": s3_prefix,
        "s3_endpoint_url": s3_endpoint_url,
        "presign": presign,
    }
    try:
        settings = EmbeddedLakeFSSettings(
            **{name: value for name, value in given.items() if value is not None}
        )
    except ValidationError as error:
        _fail_on_settings(error, what="embedded lakeFS settings")
    from infra.lakefs_server.server import run_server

    run_server(settings)


@app.command("demo")
def run_demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help=(
                "Data directory of the embedded server; reuse it to keep the demo repository between runs. "
                "(env LOCKGATE_LAKEFS_EMBEDDED_DATA_DIR; default .lockgate/lakefs)"
            ),
        ),
    ] = None,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave the embedded server running after the demo, until Ctrl+C."
        ),
    ] = False,
    storage_namespace: Annotated[
        str | None,
        typer.Option(
            help=(
                "Storage namespace for the demo repository when it is created, "
                "e.g. s3://bucket/lockgate-demo. Default: the server's suggestion "
                "(local://lockgate-demo on the embedded server)."
            )
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated readings.")] = 42,
    rows: Annotated[int, typer.Option(min=1, max=1_000_000, help="Number of generated readings.")] = 300,
    gate: Annotated[
        bool,
        typer.Option(
            help="Also send a good and a defective loans batch through the contract gate (ingest_flow, "
            "run by Prefect; starts a temporary Prefect server unless PREFECT_API_URL is set)."
        ),
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
            " retraining and the SLO-gated rollout replace the model, then print its lineage.",
        ),
    ] = True,
) -> None:
    """Show versioned data end to end: branch, write Parquet, commit, diff, merge, read back.

    Starts the embedded lakeFS-API server (unless LOCKGATE_LAKEFS_ENDPOINT names a real lakeFS),
    works on repository 'lockgate-demo' and a new branch demo-YYYYMMDD-HHMMSS-xxxx, and verifies that the data
    read at the merge commit equals what was written. Safe to run again on the same data directory.
    """
    with _lakefs_connection(data_dir) as (client, server):
        result = _run_demo_with_progress(client, storage_namespace=storage_namespace, seed=seed, rows=rows)
        _print_demo_result(result)
        if gate:
            _run_gate_demo()
            if train_model:
                trained = _run_training_demo(client)
                if serve_model:
                    _run_serving_demo(client, trained, close_loop=close_loop)
        if server is not None and keep_running:
            _wait_for_interrupt(server)
    if not result.verified:
        _fail("the DataFrame read at the merge commit differs from the one written")


@contextlib.contextmanager
def _lakefs_connection(data_dir: Path | None) -> Iterator[tuple[lakefs.Client, EmbeddedLakeFS | None]]:
    """The configured lakeFS (LOCKGATE_LAKEFS_ENDPOINT), or the embedded server started for the command.

    While it runs, the embedded server's endpoint and credentials are exported as LOCKGATE_LAKEFS_*
    so that flows started from this process build their clients from settings as usual.
    """
    from infra.settings import LakeFSSettings

    try:
        settings = LakeFSSettings()
    except ValidationError as error:
        _fail_on_settings(error, what="lakeFS settings (LOCKGATE_LAKEFS_*)")

    from infra.clients import make_lakefs_client
    from infra.lakefs_server.launcher import EmbeddedLakeFS, ServerStartError

    if settings.endpoint is not None:
        console.print(f"Using the lakeFS server at [bold]{settings.endpoint}[/]")
        yield make_lakefs_client(settings), None
        return
    server = EmbeddedLakeFS(data_dir or settings.embedded_data_dir)
    with console.status("Starting the embedded lakeFS-API server..."):
        try:
            server.start()
        except ServerStartError as error:
            _fail(str(error))
    console.print(f"Embedded lakeFS-API server on [bold]{server.endpoint}[/] (data in {server.data_dir})")
    access_key_id, secret = server.credentials
    exported = {
        "LOCKGATE_LAKEFS_ENDPOINT": server.endpoint,
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": access_key_id,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret,
    }
    previous = {key: os.environ.get(key) for key in exported}
    os.environ.update(exported)
    try:
        yield server.client(), server
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _run_gate_demo() -> None:
    """Ingest a good and a defective batch; show that only the good one reaches main."""
    import tempfile

    from flows.demo import INGEST_DEMO_STEPS, run_ingestion_demo

    console.rule("The contract gate: ingest_flow")
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-demo-") as work,
        Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), console=console, transient=True
        ) as progress,
    ):
        task_id = progress.add_task("contract gate", total=len(INGEST_DEMO_STEPS))

        def advance(step: str) -> None:
            progress.update(task_id, advance=1, description=step)
            console.print(f"[green]done[/] {step}")

        outcomes = run_ingestion_demo(Path(work), on_step=advance)
    table = Table(title="Batches through the contract gate")
    for column in ("batch", "verdict", "rows", "commit", "contract report"):
        table.add_column(column)
    colours = {"merged": "green", "unchanged": "yellow", "rejected": "red"}
    for outcome in outcomes:
        table.add_row(
            outcome.label,
            f"[{colours[outcome.status]}]{outcome.status}[/]",
            "" if outcome.rows is None else f"{outcome.rows:,}",
            (outcome.commit or "")[:12],
            outcome.report or "",
        )
    console.print(table)
    for outcome in outcomes:
        if outcome.status == "rejected":
            console.print(Panel(outcome.message, title=f"Why the {outcome.label} was rejected", style="red"))


def _run_training_demo(client: lakefs.Client) -> str:
    """Train on the contract-checked loans data with 2 DDP ranks, register, and show the lineage."""
    from flows.train import TrainParameters, train_flow
    from tasks.training import TrainingConfig

    console.rule("Training: train_flow (PyTorch DDP on a local Dask cluster)")
    os.environ.setdefault("LOCKGATE_DASK_N_WORKERS", "2")
    parameters = TrainParameters(model_name="loans-mlp", config=TrainingConfig(epochs=6, batch_size=256))
    with console.status("Training loans-mlp with 2 ranks ..."):
        result = train_flow(parameters)
    console.print(
        f"[green]registered[/] loans-mlp {result['version']} (alias challenger), holdout ROC AUC "
        f"{result['metrics']['roc_auc']:.3f}, {result['epochs']} epoch(s)"
    )
    _print_lineage(client, "loans-mlp", result["version"])
    return result["version"]


def _run_serving_demo(client: lakefs.Client, trained: str, *, close_loop: bool = False) -> None:
    """Serve the champion on a local Ray Serve, roll the trained challenger out under live traffic."""
    from contracts.slo import SLOThresholds
    from flows.deploy import DeployParameters, RolloutStep, deploy_flow
    from infra.errors import LockgateError, ModelNotFoundError
    from infra.processes import free_port
    from infra.settings import LakeFSSettings, ServingSettings
    from serving.inference_log import read_inference_log
    from serving.operations import start_serving, stop_serving
    from serving.traffic import TrafficGenerator
    from tasks.generate import GeneratorConfig, generate_frame
    from tasks.registry import get_alias, set_alias

    console.rule("Serving: Ray Serve, SLO-gated rollout, inference logs in lakeFS")
    try:
        champion = get_alias("loans-mlp", "champion", client=client).version
    except ModelNotFoundError:
        champion = set_alias("loans-mlp", "champion", trained, client=client).version
        console.print(f"No champion yet: {trained} becomes the first champion (nothing to compare it with).")
    settings = ServingSettings(port=free_port(), model_name="loans-mlp", log_flush_interval_s=1.0)
    os.environ["LOCKGATE_SERVING_PORT"] = str(settings.port)
    frame = generate_frame(GeneratorConfig(rows=500, seed=7))
    records = json.loads(frame[list(_loan_features())].to_json(orient="records"))
    import ray
    from ray import serve

    try:
        with console.status("Starting Ray and the serving app ..."):
            handle = start_serving(settings, lakefs=LakeFSSettings())
        console.print(f"Serving loans-mlp {champion} at [bold]{handle.url}[/] (POST /predict)")
        with TrafficGenerator(handle.url, records, concurrency=4, rate_per_s=80) as traffic:
            time.sleep(3)
            if trained != champion:
                plan = [RolloutStep(traffic=0, shadow=True, hold_s=4)] + [
                    RolloutStep(traffic=share, hold_s=4) for share in (0.25, 1.0)
                ]
                parameters = DeployParameters(
                    model_name="loans-mlp",
                    version=trained,
                    plan=plan,
                    slo=SLOThresholds(p99_latency_ms=1_000, min_requests=20),
                    max_wait_s=30,
                )
                with console.status(f"Rolling {trained} out: shadow -> 25% -> 100% under live traffic ..."):
                    try:
                        _print_rollout(deploy_flow(parameters))
                    except LockgateError as error:
                        console.print(Panel(str(error), title="Rolled back", style="yellow"))
            time.sleep(2)
        report = traffic.report
        table = Table(title="Live traffic sent to the serving app")
        for column in ("requests", "failed", "answered by", "p50 ms", "p99 ms", "req/s"):
            table.add_column(column)
        table.add_row(
            f"{report.requests:,}",
            str(report.failed),
            ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items())),
            f"{report.quantile(0.5):.1f}",
            f"{report.quantile(0.99):.1f}",
            f"{report.throughput:.0f}",
        )
        console.print(table)
        if close_loop:
            _run_loop_demo(client, settings, handle.url)
    finally:
        with console.status("Stopping the serving app (flushing inference logs) ..."):
            if ray.is_initialized():
                stop_serving(settings)
                serve.shutdown()
                ray.shutdown()
    logged = read_inference_log(client, repository=settings.inference_repository)
    console.print(
        f"[green]logged[/] {len(logged):,} prediction(s) in "
        f"lakefs://{settings.inference_repository}/main/logs/ (features, prediction, version, latency, time, "
        "request ID)"
    )


def _run_loop_demo(client: lakefs.Client, settings, url: str) -> None:
    """Inject drift into live traffic; monitoring, an automation, retraining and a rollout respond."""
    import tempfile
    from datetime import UTC, datetime

    import ray

    from flows import loop
    from flows.ingest import IngestParameters, ingest_flow
    from flows.monitor import MonitorParameters, monitor_flow
    from serving.traffic import TrafficGenerator
    from tasks.generate import GeneratorConfig, generate_frame, write_batch

    console.rule("Closing the loop: drift -> monitor -> automation -> retrain -> rollout")
    environment = {
        "PREFECT_API_URL": _prefect_api_url(),
        "LOCKGATE_SERVING_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "LOCKGATE_SERVING_PORT": str(settings.port),
        "LOCKGATE_SERVING_MODEL_NAME": settings.model_name,
        "LOCKGATE_DASK_N_WORKERS": os.environ.get("LOCKGATE_DASK_N_WORKERS", "2"),
        # The demo wants the drift alarm, not the merge of new data, to start the retrain.
        "LOCKGATE_AUTOMATION_RETRAIN_ON_MERGE": "false",
        "LOCKGATE_AUTOMATION_MONITOR_INTERVAL_S": "3600",
        "LOCKGATE_AUTOMATION_TRAIN_EPOCHS": "6",
        "LOCKGATE_AUTOMATION_RETRAIN_COOLDOWN_S": "30",
        "LOCKGATE_AUTOMATION_ROLLOUT_HOLD_S": "4",
        "LOCKGATE_AUTOMATION_ROLLOUT_MAX_WAIT_S": "30",
        # A better model for a shifted population answers differently: judge latency and errors here.
        "LOCKGATE_AUTOMATION_ROLLOUT_SLO": json.dumps(
            {"p99_latency_ms": 2_000, "min_requests": 20, "max_prediction_psi": 5.0}
        ),
    }
    shifted = generate_frame(GeneratorConfig(rows=2_000, seed=8, covariate_shift=0.8))
    records = json.loads(shifted[list(_loan_features())].to_json(orient="records"))
    work = Path(tempfile.mkdtemp(prefix="lockgate-loop-"))
    worker = loop.start_worker(environment, work / "worker.log")
    try:
        with console.status("Starting the deployment worker (every flow as a Prefect deployment) ..."):
            retrain_id = loop.wait_for_deployment(f"retrain/{settings.model_name}", worker)
        console.print(
            f"[green]serving[/] deployments with schedules and triggers (worker log {worker.log_path})"
        )
        injected_at, started = datetime.now(UTC), time.monotonic()
        with TrafficGenerator(url, records, concurrency=4, rate_per_s=80) as traffic:
            console.print(
                "[yellow]drift injected[/]: live applicants now come from a shifted population (older, higher"
                " salaries), and their outcomes follow a different rule (Agrawal function 2 instead of 0)"
            )
            source = work / "shifted.parquet"
            write_batch(
                GeneratorConfig(rows=8_000, seed=9, covariate_shift=0.8, function=2, first_id=900_000_000),
                str(source),
            )
            with console.status("Outcomes of the shifted population arrive: ingest_flow ..."):
                merged = ingest_flow(IngestParameters(source=str(source), dataset="loans"))
            console.print(
                f"[green]merged[/] {merged.get('rows', 8000):,} labelled rows into lockgate-loans main"
            )
            time.sleep(4)  # a few seconds of shifted traffic reach the inference log
            with console.status("monitor_flow (scheduled in production; run now) ..."):
                summary = monitor_flow(MonitorParameters(model_name=settings.model_name))
            alarm_s = time.monotonic() - started
            _print_monitor(summary)
            if summary["status"] != "drift":
                console.print("No drift alarm, so no automatic retrain this time.")
                return
            with console.status("Waiting for the automation to start retrain_flow ..."):
                run = loop.wait_for_started_run(retrain_id, since=injected_at, timeout=120)
            triggered_s = time.monotonic() - started
            console.print(
                f"[green]automation fired[/]: {run.name} (trigger {run.parameters['parameters']['trigger']})"
            )
            with console.status("retrain_flow: training, champion vs challenger, rollout ...") as status:

                def show(current) -> None:
                    status.update(
                        f"retrain_flow {current.name}: {current.state.name if current.state else '...'}"
                    )

                final = loop.wait_for_final(str(run.id), timeout=900, on_poll=show, worker=worker)
            done_s = time.monotonic() - started
        decision = loop.decision_of(str(run.id))
        table = Table(title=f"retrain {run.name}: {final.state.name}")
        table.add_column("item")
        table.add_column("value", overflow="fold")
        for key in (
            "trigger",
            "challenger",
            "champion",
            "metric",
            "challenger_metric",
            "champion_metric",
            "decision",
            "reason",
        ):
            table.add_row(key, str(decision.get(key, "")))
        console.print(table)
        report = traffic.report
        console.print(
            f"traffic during the loop: {report.requests:,} requests, {report.failed} failed, answered by "
            + ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items()))
        )
        console.print(
            f"drift injected -> alarm {alarm_s:.1f} s -> retrain started {triggered_s:.1f} s -> "
            f"decided{' and serving 100%' if decision.get('decision') == 'promoted' else ''} {done_s:.1f} s "
            f"(retrain_flow run itself: {final.total_run_time.total_seconds():.1f} s)"
        )
        if not final.state.is_completed():
            console.print(Panel(worker.log_tail(), title="retrain did not complete", style="red"))
            return
        _print_lineage_chain(client, settings.model_name, decision)
    finally:
        worker.stop()


def _prefect_api_url() -> str:
    """The Prefect API this process uses: PREFECT_API_URL, or the temporary server Prefect started."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return PREFECT_API_URL.value()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def _print_monitor(summary: dict) -> None:
    colour = {"drift": "red", "ok": "green"}.get(summary["status"], "yellow")
    console.print(
        f"monitor: [{colour}]{summary['status']}[/] over {summary.get('records', 0):,} answered record(s); "
        f"drifted: {', '.join(summary.get('drifted_features', [])) or 'none'}; "
        f"prediction drift: {summary.get('prediction_drift')}; report {summary.get('report', '')}",
        highlight=False,
    )


def _print_lineage_chain(client: lakefs.Client, model_name: str, decision: dict) -> None:
    """The new champion traced back: the retrain that promoted it and why, the run that trained it, the
    data commit it was trained on and the contract reports that let that data through."""
    from rich.tree import Tree

    from flows import loop

    chain = loop.lineage_chain(client, model_name)
    (model, weights), (_, train_run), (_, data), *rest = chain
    reports = [where for what, where in rest if what.startswith("let through")]
    metrics = next(where for what, where in rest if what == "holdout metrics")
    tree = Tree(f"[bold]{model}[/] (champion): {weights}; holdout {metrics}")
    trigger, event = decision.get("trigger"), decision.get("trigger_event") or "-"
    why = tree.add(
        f"promoted by retrain_flow (trigger {trigger}, event {event}): {decision.get('reason', '')}"
    )
    trained = why.add(f"trained by Prefect flow run {train_run}")
    commit = trained.add(f"on data commit {data}")
    for report in reports:
        commit.add(f"let through by contract report {report}")
    console.print(Panel(tree, title="Lineage of the new champion"))


def _loan_features() -> tuple[str, ...]:
    from contracts.loans import FEATURE_COLUMNS

    return FEATURE_COLUMNS


def _run_demo_with_progress(
    client: lakefs.Client, *, storage_namespace: str | None, seed: int, rows: int
) -> DemoResult:
    """Run ``flows.demo`` with a progress bar, turning project errors into a clean exit."""
    from flows.demo import DEMO_REPOSITORY, DEMO_STEPS, make_demo_branch_name, run_versioning_demo
    from infra.errors import LockgateError
    from tasks.versioning import default_storage_namespace

    try:
        namespace = storage_namespace or default_storage_namespace(DEMO_REPOSITORY, client=client)
        if namespace is None:
            _fail(
                "the lakeFS server suggests no storage namespace: pass --storage-namespace s3://bucket/prefix"
            )
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=console,
            transient=True,
        ) as progress:
            task_id = progress.add_task("versioning round trip", total=len(DEMO_STEPS))

            def advance(step: str) -> None:
                progress.update(task_id, advance=1, description=step)
                console.print(f"[green]done[/] {step}")

            return run_versioning_demo(
                client=client,
                storage_namespace=namespace,
                branch=make_demo_branch_name(),
                seed=seed,
                rows=rows,
                on_step=advance,
            )
    except LockgateError as error:
        _fail(str(error))


def _print_demo_result(result: DemoResult) -> None:
    changes = Table(title=f"Diff: main .. {result.branch}")
    changes.add_column("path")
    changes.add_column("change")
    changes.add_column("size (bytes)", justify="right")
    for change in result.changes:
        changes.add_row(change.path, change.type, "" if change.size is None else str(change.size))
    console.print(changes)

    commits = Table(title=f"Log of main in {result.repository} (newest first)")
    commits.add_column("commit", no_wrap=True)
    commits.add_column("message")
    commits.add_column("metadata")
    for commit in result.commits:
        metadata = "\n".join(f"{key}={value}" for key, value in sorted((commit.metadata or {}).items()))
        commits.add_row(commit.id[:12], commit.message, metadata)
    console.print(commits)

    branches = Table(title="Branches")
    branches.add_column("branch")
    branches.add_column("head commit", no_wrap=True)
    for branch in result.branches:
        branches.add_row(branch.name, branch.commit_id[:12])
    console.print(branches)

    check = "[green]equal[/]" if result.verified else "[red]DIFFERENT[/]"
    console.print(
        Panel(
            f"Wrote {result.rows} rows to lakefs://{result.repository}/{result.branch}/{result.data_path}\n"
            f"Committed {result.commit_id}\n"
            f"Merged into main as {result.merge_commit_id}\n"
            f"Read back at the merge commit: {check} to what was written",
            title="Summary",
        ),
    )


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
        server.process.wait()
    except KeyboardInterrupt:
        console.print("Stopping the server.")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class FileFormat(enum.StrEnum):
    """File format of generated batches."""

    parquet = "parquet"
    csv = "csv"


@app.command("datasets")
def list_datasets() -> None:
    """List the declared datasets (built in, or published by installed packages)."""
    from tasks.datasets import available_datasets

    table = Table(title="Datasets")
    for column in ("name", "repository", "key", "target", "features", "description"):
        table.add_column(column)
    for spec in available_datasets().values():
        table.add_row(
            spec.name,
            spec.repository,
            ",".join(spec.key_columns),
            spec.target,
            str(len(spec.feature_columns)),
            spec.description,
        )
    console.print(table)


@app.command("generate")
def generate(
    destination: Annotated[
        str,
        typer.Argument(
            help="File to write: a local path or s3://bucket/key (LOCKGATE_S3_* settings); a folder or a "
            "prefix ending in '/' gets a file named after the dataset and seed."
        ),
    ],
    dataset: Annotated[
        str, typer.Option(help="'loans' (generated, any size) or 'breast-cancer' (scikit-learn's data).")
    ] = "loans",
    rows: Annotated[int, typer.Option(min=0, help="Loan applications to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same options give the same rows.")] = 0,
    function: Annotated[
        int, typer.Option(min=0, max=9, help="Agrawal labelling function 0-9; switching it is concept drift.")
    ] = 0,
    label_noise: Annotated[float, typer.Option(min=0, max=1, help="Probability a label is flipped.")] = 0.05,
    covariate_shift: Annotated[
        float, typer.Option(min=0, max=1, help="Skew salary, age and loan amount (0 none .. 1 strong).")
    ] = 0.0,
    first_id: Annotated[
        int | None, typer.Option(help="First application_id (default: seed x 10,000,000).")
    ] = None,
    defect_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="Fraction of rows given a contract violation, to test the gate."),
    ] = 0.0,
    file_format: Annotated[FileFormat, typer.Option("--format", help="File format.")] = FileFormat.parquet,
) -> None:
    """Write a batch of a dataset to a local file or S3: loan applications (Agrawal et al. 1993
    schema) with knobs for drift and defects, or scikit-learn's breast-cancer data."""
    from infra.errors import LockgateError
    from tasks.generate import GeneratorConfig, write_batch
    from tasks.sample_data import write_breast_cancer

    s3_client = _s3_client() if destination.startswith("s3://") else None
    if destination.endswith("/") or Path(destination).is_dir():
        # A folder or bucket prefix: name the file after what is in it.
        name = (
            f"{dataset}-seed{seed}.{file_format.value}"
            if dataset == "loans"
            else f"{dataset}.{file_format.value}"
        )
        destination = destination.rstrip("/") + "/" + name
    try:
        with console.status(f"Writing {destination} ..."):
            if dataset == "breast-cancer":
                write_breast_cancer(destination, file_format=file_format.value, s3_client=s3_client)
            elif dataset == "loans":
                config = GeneratorConfig(
                    rows=rows,
                    seed=seed,
                    function=function,
                    label_noise=label_noise,
                    covariate_shift=covariate_shift,
                    first_id=seed * 10_000_000 if first_id is None else first_id,
                    defect_rate=defect_rate,
                )
                write_batch(config, destination, file_format=file_format.value, s3_client=s3_client)
            else:
                _fail(f"no generator for dataset {dataset!r}: use 'loans' or 'breast-cancer'", code=2)
    except LockgateError as error:
        _fail(str(error), code=2)
    console.print(f"[green]wrote[/] {destination}")


def _s3_client():
    from infra.clients import make_s3_client
    from infra.settings import S3Settings

    try:
        return make_s3_client(S3Settings())
    except ValidationError as error:
        _fail_on_settings(error, what="S3 settings (LOCKGATE_S3_*)")


@app.command("ingest")
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="Local file, directory or glob, or s3:// URI, of CSV, Parquet or JSON-lines files."
        ),
    ],
    dataset: Annotated[str, typer.Option(help="Dataset to ingest into (see `lockgate datasets`).")] = "loans",
    chunk_rows: Annotated[
        int, typer.Option(min=1_000, max=5_000_000, help="Rows held in memory at once while reading.")
    ] = 250_000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="Data directory of the embedded server (when no endpoint is set)."
        ),
    ] = None,
) -> None:
    """Ingest SOURCE into a dataset: land it on its own branch, check the contracts, merge only if it
    passes. A rejected batch leaves main untouched and its branch kept, with the contract report."""
    from flows.ingest import IngestParameters, ingest_flow, set_progress_reporter
    from infra.errors import LockgateError

    try:
        parameters = IngestParameters(source=source, dataset=dataset, chunk_rows=chunk_rows)
    except ValidationError as error:
        _fail_on_settings(error, what="ingest parameters")
    with (
        _lakefs_connection(data_dir) as _connection,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} rows"),
            console=console,
        ) as progress,
    ):
        task_id = progress.add_task(f"ingesting {source} into {dataset}", total=None)
        set_progress_reporter(lambda stage, rows: progress.update(task_id, completed=rows))
        try:
            result = ingest_flow(parameters)
        except LockgateError as error:
            progress.stop()
            _fail(str(error))
        finally:
            set_progress_reporter(None)
    if result["status"] == "unchanged":
        console.print(
            f"[yellow]unchanged:[/] this content is already on main of {result['repository']} "
            f"(commit {result['commit'][:12]}); no new commit"
        )
    else:
        console.print(
            f"[green]merged[/] {result['rows']:,} rows into main of {result['repository']} "
            f"at {result['commit'][:12]}; report {result['report']}"
        )


models_app = typer.Typer(help="The model registry (lakeFS repository lockgate-models).", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command("train")
def train(
    dataset: Annotated[str, typer.Option(help="Dataset to train on (see `lockgate datasets`).")] = "loans",
    ref: Annotated[
        str, typer.Option(help="Branch, tag or commit of the dataset; pinned to its commit at the start.")
    ] = "main",
    model_name: Annotated[str, typer.Option(help="Name to register the model under.")] = "loans-mlp",
    epochs: Annotated[
        int, typer.Option(min=1, max=1000, help="Maximum epochs (early stopping may end sooner).")
    ] = 8,
    batch_size: Annotated[int, typer.Option(min=8, help="Rows per step on each rank.")] = 1024,
    learning_rate: Annotated[float, typer.Option(min=0, help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Same seed and data give the same weights.")] = 0,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="LocalCluster workers = DDP ranks (LOCKGATE_DASK_N_WORKERS).")
    ] = 2,
    alias: Annotated[
        str, typer.Option(help="Alias to point at the new version: challenger, champion or none.")
    ] = ("challenger"),
    data_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="Data directory of the embedded server (when no endpoint is set)."
        ),
    ] = None,
) -> None:
    """Train with PyTorch DDP on Dask (one rank per worker; LOCKGATE_DASK_SCHEDULER_ADDRESS for an existing
    cluster), evaluate on a holdout, and register the model with its lineage."""
    from flows.train import TrainParameters, train_flow
    from infra.errors import LockgateError
    from tasks.training import TrainingConfig

    try:
        parameters = TrainParameters(
            dataset=dataset,
            ref=ref,
            model_name=model_name,
            alias=alias,
            config=TrainingConfig(
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed
            ),
        )
    except ValidationError as error:
        _fail_on_settings(error, what="training parameters")
    os.environ.setdefault("LOCKGATE_DASK_N_WORKERS", str(workers))
    with _lakefs_connection(data_dir) as (client, _server):
        with console.status(f"Training {model_name} on {dataset}@{ref} ..."):
            try:
                result = train_flow(parameters)
            except LockgateError as error:
                _fail(str(error))
        _print_lineage(client, model_name, result["version"])


def _print_lineage(client: lakefs.Client, model_name: str, ref: str) -> None:
    from tasks.registry import show_model

    card = show_model(model_name, ref, client=client)
    table = Table(title=f"{model_name} {card.version}: lineage")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    holdout = card.metrics.get("holdout", {})
    rows = [
        ("data", f"lakefs://{card.data_repository}/{card.data_commit_id}"),
        ("contract report", card.contract_report),
        ("training config", ", ".join(f"{k}={v}" for k, v in card.training_config.items())),
        ("seed", str(card.seed)),
        ("holdout ROC AUC", f"{holdout.get('roc_auc')}"),
        (
            "holdout accuracy / log loss / ECE",
            " / ".join(str(holdout.get(k)) for k in ("accuracy", "log_loss", "expected_calibration_error")),
        ),
        ("weights SHA-256", card.weights_sha256),
        ("code version", card.code_version),
        ("Prefect flow run", card.flow_run_id or ""),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(card.library_versions.items()))),
        ("created at", str(card.created_at)),
    ]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)


@models_app.command("list")
def list_registered_models(
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded server data directory.")
    ] = None,
) -> None:
    """List every registered model version with its commit, creation time and aliases."""
    from tasks.registry import list_models

    with _lakefs_connection(data_dir) as (client, _server):
        table = Table(title="Registered models")
        for column in ("model", "version", "aliases", "commit", "created at"):
            table.add_column(column)
        for row in list_models(client=client):
            table.add_row(
                row.model_name, row.version, ", ".join(row.aliases), row.commit_id[:12], str(row.created_at)
            )
        console.print(table)


@models_app.command("show")
def show_registered_model(
    model_name: Annotated[str, typer.Argument(help="Registered model name.")],
    ref: Annotated[
        str, typer.Argument(help="Version (v3), alias (champion, challenger) or 'latest'.")
    ] = "latest",
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded server data directory.")
    ] = None,
) -> None:
    """Show a model version's lineage: data commit, contract report, config, metrics, hashes, code."""
    from infra.errors import LockgateError

    with _lakefs_connection(data_dir) as (client, _server):
        try:
            _print_lineage(client, model_name, ref)
        except LockgateError as error:
            _fail(str(error))


# --------------------------------------------------------------------------------------------------
# Serving: lockgate serve / deploy / predict
# --------------------------------------------------------------------------------------------------


def _serving_settings(**given):
    from infra.settings import ServingSettings

    try:
        return ServingSettings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        _fail_on_settings(error, what="serving settings (LOCKGATE_SERVING_*)")


@app.command("serve")
def serve_models(
    model_name: Annotated[
        str | None, typer.Option(help="Registered model to serve (env ..._MODEL_NAME).")
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(help="Version or alias served at start (env ..._INITIAL_REF; default champion)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface of the HTTP proxy (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port of the HTTP proxy (default 8100).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=1, max=256, help="Replicas per model version.")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster ('auto', 'ray://head:10001'); unset starts a local Ray.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded lakeFS data directory (no endpoint set).")
    ] = None,
) -> None:
    """Serve the registered model on Ray Serve until Ctrl+C: POST /predict, GET /health, GET /models.

    Starts the embedded lakeFS-API server unless LOCKGATE_LAKEFS_ENDPOINT names one, and a local Ray unless
    LOCKGATE_SERVING_RAY_ADDRESS (or --ray-address) names a cluster. Every option also reads
    LOCKGATE_SERVING_<OPTION>. Roll out a new version from another shell with `lockgate deploy`.
    """
    settings = _serving_settings(
        model_name=model_name,
        initial_ref=ref,
        host=host,
        port=port,
        model_replicas=replicas,
        ray_address=ray_address,
    )
    from infra.errors import LockgateError
    from infra.settings import LakeFSSettings
    from serving.operations import start_serving, stop_serving

    with _lakefs_connection(data_dir) as (_client, _server):
        with console.status("Starting Ray Serve (ingress + model) ..."):
            try:
                handle = start_serving(settings, lakefs=LakeFSSettings())
            except LockgateError as error:
                _fail(str(error))
        console.print(f"Serving {settings.model_name}@{settings.initial_ref} at [bold]{handle.url}[/]")
        console.print("Other shells reach this stack with:", highlight=False)
        for name in ("LOCKGATE_LAKEFS_ENDPOINT", "LOCKGATE_LAKEFS_ACCESS_KEY_ID"):
            console.print(f"  export {name}={os.environ.get(name, '')}", highlight=False)
        console.print("  export LOCKGATE_LAKEFS_SECRET_ACCESS_KEY=... (see the data dir's credentials.json)")
        console.print("  export LOCKGATE_SERVING_RAY_ADDRESS=auto", highlight=False)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("Stopping: flushing inference logs ...")
        finally:
            stop_serving(settings)


@app.command("deploy")
def deploy(
    version: Annotated[
        str, typer.Argument(help="Version to roll out: v3, challenger or latest.")
    ] = "challenger",
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "loans-mlp",
    plan: Annotated[
        str, typer.Option(help="Comma-separated steps: 'shadow' or a percentage of traffic; must end at 100.")
    ] = "shadow,5,25,50,100",
    hold: Annotated[float, typer.Option(min=0.1, help="Seconds each step is held and measured.")] = 30.0,
    p99_ms: Annotated[float, typer.Option(min=0.1, help="Highest acceptable p99 latency (ms).")] = 250.0,
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Highest acceptable error rate.")
    ] = 0.01,
    max_psi: Annotated[
        float, typer.Option(min=0.001, help="Highest acceptable PSI of predictions against the champion.")
    ] = 0.25,
    min_requests: Annotated[int, typer.Option(min=1, help="Requests a step needs before it is judged.")] = 30,
    approval: Annotated[
        bool, typer.Option("--approval", help="Pause for approval in the Prefect UI.")
    ] = False,
) -> None:
    """Roll a version out to the running serving app, step by step, gated by SLOs on live traffic.

    Needs the stack from `lockgate serve` (LOCKGATE_SERVING_RAY_ADDRESS=auto and LOCKGATE_LAKEFS_* as it
    prints). A breach rolls back to the champion and exits 1 with the reason; success moves the
    'champion' alias.
    """
    from contracts.slo import SLOThresholds
    from flows.deploy import DeployParameters, deploy_flow
    from infra.errors import LockgateError

    os.environ.setdefault("LOCKGATE_SERVING_RAY_ADDRESS", "auto")
    try:
        steps = [_parse_step(step, hold) for step in plan.split(",") if step.strip()]
        parameters = DeployParameters(
            model_name=model_name,
            version=version,
            plan=steps,
            slo=SLOThresholds(
                p99_latency_ms=p99_ms,
                max_error_rate=max_error_rate,
                max_prediction_psi=max_psi,
                min_requests=min_requests,
            ),
            require_approval=approval,
        )
    except (ValidationError, ValueError) as error:
        if isinstance(error, ValidationError):
            _fail_on_settings(error, what="rollout parameters")
        _fail(str(error), code=2)
    if os.environ.get("LOCKGATE_LAKEFS_ENDPOINT") is None:
        _fail(
            "set LOCKGATE_LAKEFS_* to the registry the serving app uses (`lockgate serve` prints them)",
            code=2,
        )
    try:
        with console.status(f"Rolling out {model_name} {version}: {plan} ..."):
            result = deploy_flow(parameters)
    except LockgateError as error:
        _fail(str(error))
    _print_rollout(result)


def _parse_step(text: str, hold: float):
    from flows.deploy import RolloutStep

    text = text.strip().lower().removesuffix("%")
    if text == "shadow":
        return RolloutStep(traffic=0, shadow=True, hold_s=hold)
    try:
        share = float(text)
    except ValueError:
        raise ValueError(f"plan step {text!r} is neither 'shadow' nor a percentage") from None
    return RolloutStep(traffic=share / 100, hold_s=hold)


def _print_rollout(result: dict) -> None:
    table = Table(title=f"Rollout of {result['model']} {result['version']}: {result['outcome']}")
    for column in ("step", "passed", "requests", "errors", "p50 ms", "p99 ms", "PSI vs champion", "reason"):
        table.add_column(column)
    for step in result["steps"]:
        table.add_row(
            step["step"],
            "[green]yes[/]" if step["passed"] else "[red]no[/]",
            str(step["challenger_requests"]),
            str(step["challenger_errors"]),
            str(step["challenger_p50_ms"]),
            str(step["challenger_p99_ms"]),
            "" if step["prediction_psi"] is None else f"{step['prediction_psi']:.4f}",
            step["reason"],
        )
    console.print(table)


@app.command("predict")
def predict(
    records: Annotated[
        str | None,
        typer.Argument(
            help="JSON: one record or a list of records; '-' reads standard input; '@file.json' a file."
        ),
    ] = None,
    url: Annotated[
        str, typer.Option(help="Serving URL.", envvar="LOCKGATE_SERVING_URL")
    ] = "http://127.0.0.1:8100",
    sample: Annotated[
        int, typer.Option(min=0, max=1000, help="Send this many generated loan applications instead.")
    ] = 0,
    version: Annotated[str | None, typer.Option(help="Pin a live version (e.g. v3).")] = None,
    key: Annotated[str | None, typer.Option(help="Sticky routing key (same key, same version).")] = None,
) -> None:
    """Send records to the serving app and print its predictions (or its per-field contract errors)."""
    import sys

    import httpx

    if sample:
        from contracts.loans import FEATURE_COLUMNS
        from tasks.generate import GeneratorConfig, generate_frame

        frame = generate_frame(GeneratorConfig(rows=sample, seed=int.from_bytes(os.urandom(2), "big")))
        payload: object = json.loads(frame[list(FEATURE_COLUMNS)].to_json(orient="records"))
    elif records is None:
        _fail("give records as JSON, '-' for standard input, '@file.json', or --sample N", code=2)
    else:
        text = records
        if records == "-":
            text = sys.stdin.read()
        elif records.startswith("@"):
            path = Path(records[1:])
            if not path.is_file():
                _fail(f"no such file: {path}", code=2)
            text = path.read_text()
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            _fail(f"records are not valid JSON: {error}", code=2)
    headers = {"x-lockgate-key": key} if key else {}
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/predict",
            json=payload,
            params={"version": version} if version else None,
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError as error:
        _fail(f"cannot reach the serving app at {url}: {error} (is `lockgate serve` running?)")
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        detail = body.get("detail", response.text)
        if isinstance(detail, list):
            detail = "\n".join(f"record {d['record']}, field {d['field']}: {d['message']}" for d in detail)
        _fail(f"{response.status_code}: {detail}")
    table = Table(title=f"{body['model_name']} {body['model_version']} (request {body['request_id']})")
    for column in ("#", "prediction", "probability", "version"):
        table.add_column(column)
    for index, item in enumerate(body["predictions"]):
        table.add_row(
            str(index), str(item["prediction"]), f"{item['probability']:.4f}", item["model_version"]
        )
    console.print(table)


@app.command("monitor")
def monitor(
    model_name: Annotated[str, typer.Option(help="Model whose champion is watched.")] = "loans-mlp",
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Family-wise significance level.")] = 0.05,
    from_start: Annotated[bool, typer.Option(help="Ignore the cursor and read every logged row.")] = False,
    emit_events: Annotated[bool, typer.Option(help="Emit drift / SLO events for automations.")] = True,
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded lakeFS data directory (no endpoint set).")
    ] = None,
) -> None:
    """Run one monitor pass now: drift, outliers, quality and SLOs of what the champion answered since
    the last pass; store the HTML report in lakeFS (`lockgate-monitoring`) and print the summary."""
    from flows.monitor import MonitorParameters, monitor_flow
    from infra.errors import LockgateError
    from tasks.drift import DriftConfig

    try:
        parameters = MonitorParameters(
            model_name=model_name,
            drift=DriftConfig(alpha=alpha),
            from_start=from_start,
            emit_events=emit_events,
        )
    except ValidationError as error:
        _fail_on_settings(error, what="monitor parameters")
    with _lakefs_connection(data_dir), console.status(f"Checking {model_name}'s live traffic ..."):
        try:
            summary = monitor_flow(parameters)
        except LockgateError as error:
            _fail(str(error))
    table = Table(title=f"monitor {model_name}: {summary['status']}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    console.print(table)


@app.command("retrain")
def retrain(
    model_name: Annotated[str, typer.Option(help="Model to retrain.")] = "loans-mlp",
    dataset: Annotated[str, typer.Option(help="Dataset to train on.")] = "loans",
    margin: Annotated[float, typer.Option(min=0, max=1, help="Required improvement on --metric.")] = 0.0,
    metric: Annotated[str, typer.Option(help="roc_auc, accuracy, log_loss, brier_score, ...")] = "roc_auc",
    cooldown: Annotated[
        int, typer.Option(min=0, help="Seconds; skip if the model was retrained sooner.")
    ] = 0,
    deploy: Annotated[
        bool, typer.Option(help="Roll a better challenger out (needs `lockgate serve`).")
    ] = True,
    hold: Annotated[float, typer.Option(min=0.1, help="Seconds each rollout step is held.")] = 30.0,
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded lakeFS data directory (no endpoint set).")
    ] = None,
) -> None:
    """Retrain now: train a challenger on the newest validated data, score it and the champion on the same
    fresh holdout, and roll it out only if it wins by --margin."""
    from flows.deploy import default_plan
    from flows.retrain import RetrainParameters, retrain_flow
    from infra.errors import LockgateError

    try:
        parameters = RetrainParameters(
            model_name=model_name,
            dataset=dataset,
            margin=margin,
            metric=metric,
            cooldown_s=cooldown,
            deploy=deploy,
            plan=default_plan(hold),
        )
    except ValidationError as error:
        _fail_on_settings(error, what="retrain parameters")
    with _lakefs_connection(data_dir), console.status(f"Retraining {model_name} ..."):
        try:
            outcome = retrain_flow(parameters)
        except LockgateError as error:
            _fail(str(error))
    console.print(f"[bold]{outcome['decision']}[/]: {outcome.get('reason', '')}", highlight=False)


@app.command("labels")
def labels(
    path: Annotated[Path, typer.Argument(help="CSV, JSON-lines or Parquet file of outcomes.")],
    data_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Embedded lakeFS data directory (no endpoint set).")
    ] = None,
) -> None:
    """Store observed outcomes for answered requests: columns request_id (the X-Request-ID the serving app
    returned), outcome (0/1), optional record_index (default 0) and observed_at (default now). The next
    monitor pass measures live quality from them. A bad file is refused whole, nothing stored."""
    from infra.errors import LockgateError
    from tasks.feedback import ingest_labels, read_label_file

    with _lakefs_connection(data_dir) as (client, _server):
        try:
            batch = ingest_labels(read_label_file(path), client=client, source=path.name)
        except LockgateError as error:
            _fail(str(error))
    console.print(f"stored {batch.rows} label(s) at {batch.location}", highlight=False)


@app.command("relay")
def relay(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8200,
) -> None:
    """Run the webhook relay: signed external webhooks (`POST /hooks/events/{name}`) and lakeFS action
    webhooks (`POST /hooks/lakefs`: post-merge events, pre-merge contract checks) become Prefect events.
    Needs LOCKGATE_WEBHOOK_SECRET (at least 32 characters)."""
    from infra.settings import RelaySettings
    from serving.webhook_relay import run_relay

    try:
        settings = RelaySettings()
    except ValidationError as error:
        _fail_on_settings(error, what="webhook relay settings (LOCKGATE_WEBHOOK_*)")
    run_relay(settings, host=host, port=port)


@app.command("worker")
def worker() -> None:
    """Serve every lockgate flow as a Prefect deployment (schedules, event triggers, UI runs) from this
    process until Ctrl+C. Point PREFECT_API_URL at the Prefect server; `lockgate up` runs this for you."""
    from flows.deployments import main as serve_deployments

    serve_deployments()


def _register_stack_commands() -> None:
    from flows import stack_cli

    app.command("up")(stack_cli.up)
    app.command("down")(stack_cli.down)
    app.command("status")(stack_cli.status)


_register_stack_commands()


def main() -> None:
    """Entry point for ``python -m flows.cli``."""
    app(prog_name="lockgate")


if __name__ == "__main__":
    main()
