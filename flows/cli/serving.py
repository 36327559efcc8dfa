"""Serving commands: ``serve`` (Ray Serve until Ctrl+C), ``deploy`` (an SLO-gated rollout) and
``predict`` (send records, print answers)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import output
from flows.cli.app import app, console, fail
from flows.cli.context import lakefs_connection, publisher
from flows.cli.options import DataDir, Hold, ModelName, RayAddress, given, settings_with


@app.command("serve", rich_help_panel="Serving")
def serve_models(
    model_name: ModelName = None,
    ref: Annotated[
        str | None,
        typer.Option(help="Version or alias served at start (env ..._INITIAL_REF; default champion)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface of the HTTP proxy (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port of the HTTP proxy (default 8100).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=1, max=256, help="Replicas per model version.")] = None,
    ray_address: RayAddress = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the registered model on Ray Serve until Ctrl+C: POST /predict, GET /health, GET /models.

    Starts the embedded lakeFS-API server unless LOCKGATE_LAKEFS_ENDPOINT names one, and a local Ray unless
    LOCKGATE_SERVING_RAY_ADDRESS (or --ray-address) names a cluster. Every option also reads
    LOCKGATE_SERVING_<OPTION>; an option given wins. Requests must meet the contract of the dataset the
    model was trained on (from its card). Roll out a new version from another shell with `lockgate deploy`.
    """
    from infra.settings import ServingSettings
    from serving.operations import start_serving, stop_serving

    settings = settings_with(
        ServingSettings,
        model_name=model_name,
        initial_ref=ref,
        host=host,
        port=port,
        model_replicas=replicas,
        ray_address=ray_address,
    )
    with lakefs_connection(data_dir) as connection:
        with console.status("Starting Ray Serve (ingress + model) ..."):
            handle = start_serving(settings, lakefs=connection.settings)
        console.print(f"Serving {settings.model_name}@{settings.initial_ref} at [bold]{handle.url}[/]")
        console.print("Other shells reach this stack with:", highlight=False)
        console.print(f"  export LOCKGATE_LAKEFS_ENDPOINT={connection.settings.endpoint}", highlight=False)
        console.print(
            f"  export LOCKGATE_LAKEFS_ACCESS_KEY_ID={connection.settings.access_key_id}", highlight=False
        )
        console.print("  export LOCKGATE_LAKEFS_SECRET_ACCESS_KEY=... (see the data dir's credentials.json)")
        console.print("  export LOCKGATE_SERVING_RAY_ADDRESS=auto", highlight=False)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("Stopping: flushing inference logs ...")
        finally:
            stop_serving(settings)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command("deploy", rich_help_panel="Serving")
def deploy(
    version: Annotated[
        str, typer.Argument(help="Version to roll out: v3, challenger or latest.")
    ] = "challenger",
    model_name: ModelName = None,
    plan: Annotated[
        str, typer.Option(help="Comma-separated steps: 'shadow' or a percentage of traffic; must end at 100.")
    ] = "shadow,5,25,50,100",
    hold: Hold = 30.0,
    p99_ms: Annotated[float, typer.Option(min=0.1, help="Highest acceptable p99 latency (ms).")] = 250.0,
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Highest acceptable error rate.")
    ] = 0.01,
    max_psi: Annotated[
        float, typer.Option(min=0.001, help="Highest acceptable PSI of predictions against the champion.")
    ] = 0.25,
    min_requests: Annotated[int, typer.Option(min=1, help="Requests a step needs before it is judged.")] = 30,
    approval: Annotated[
        bool, typer.Option("--approval", help="Ask for approval here before any traffic moves.")
    ] = False,
    ray_address: RayAddress = None,
) -> None:
    """Roll a version out to the running serving app, step by step, gated by SLOs on live traffic.

    Needs the stack from `lockgate serve` or `lockgate up` (LOCKGATE_LAKEFS_* as they print; the Ray
    address defaults to 'auto'). A breach rolls back to the champion and exits 1 with the reason; success
    moves the 'champion' alias. A high-risk model, or --approval, asks you before traffic moves.
    """
    from contracts.rollout import ApprovalAnswer, DeployParameters, parse_plan
    from contracts.slo import SLOThresholds
    from infra.settings import LakeFSSettings, ServingSettings
    from serving.operations import RayServing
    from serving.rollout import run_rollout
    from tasks.clock import SYSTEM_CLOCK

    try:
        steps = parse_plan(plan, hold_s=hold)
    except ValueError as error:
        fail(str(error), code=2)
    parameters = DeployParameters(
        **given(model_name=model_name),  # unset: LOCKGATE_MODEL_NAME
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
    if LakeFSSettings().endpoint is None:
        fail(
            "set LOCKGATE_LAKEFS_* to the registry the serving app uses (`lockgate serve` prints them)",
            code=2,
        )
    serving = ServingSettings(model_name=parameters.model_name)
    serving = serving.model_copy(update={"ray_address": ray_address or serving.ray_address or "auto"})

    def ask(card, _parameters) -> ApprovalAnswer:
        metric = _problem_of(card).default_metric
        approved = typer.confirm(
            f"Roll {card.model_name} {card.version} out (risk level {card.risk_level}, holdout "
            f"{metric} {card.metrics.get('holdout', {}).get(metric)})?"
        )
        return ApprovalAnswer(
            approve=approved, reviewer="cli", reason="" if approved else "declined at the prompt"
        )

    with lakefs_connection(None, quiet=True) as connection:
        # No spinner: an approval prompt may come first.
        console.print(
            f"Rolling out {parameters.model_name} {version}: {plan}, {hold:g} s per step ...", highlight=False
        )
        result = run_rollout(
            parameters,
            client=connection.client,
            serving=RayServing(serving, lakefs=connection.settings),
            clock=SYSTEM_CLOCK,
            publish=publisher(),
            approve=ask,
        )
    output.rollout(result)


@app.command("predict", rich_help_panel="Serving")
def predict(
    records: Annotated[
        str | None,
        typer.Argument(
            help="JSON: one record or a list of records; '-' reads standard input; '@file.json' a file."
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Serving URL. (env LOCKGATE_SERVING_URL; default http://127.0.0.1:8100)"),
    ] = None,
    sample: Annotated[
        int,
        typer.Option(
            min=0,
            max=1000,
            help="Send this many rows of the served model's own dataset instead (its holdout rows, read "
            "from the registry: LOCKGATE_LAKEFS_* as `lockgate serve` prints them).",
        ),
    ] = 0,
    version: Annotated[str | None, typer.Option(help="Pin a live version (e.g. v3).")] = None,
    key: Annotated[str | None, typer.Option(help="Sticky routing key (same key, same version).")] = None,
) -> None:
    """Send records to the serving app and print its predictions (or its per-field contract errors)."""
    import httpx
    from rich.table import Table

    from infra.settings import ServingSettings
    from serving.operations import serving_url

    settings = ServingSettings()
    target = url or settings.url or serving_url(settings)
    payload = _sample_records(sample, target=target, version=version) if sample else _records(records)
    headers = {"x-lockgate-key": key} if key else {}
    try:
        response = httpx.post(
            f"{target.rstrip('/')}/predict",
            json=payload,
            params={"version": version} if version else None,
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach the serving app at {target}: {error} (is `lockgate serve` running?)")
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        detail = body.get("detail", response.text)
        if isinstance(detail, list):
            detail = "\n".join(f"record {d['record']}, field {d['field']}: {d['message']}" for d in detail)
        fail(f"{response.status_code}: {detail}")
    table = Table(title=f"{body['model_name']} {body['model_version']} (request {body['request_id']})")
    for column in ("#", "prediction", "probability", "version"):
        table.add_column(column)
    for index, item in enumerate(body["predictions"]):
        probability = item.get("probability")  # a regressor answers with its value alone
        table.add_row(
            str(index),
            str(item["prediction"]),
            "-" if probability is None else f"{probability:.4f}",
            item["model_version"],
        )
    console.print(table)


def _records(records: str | None) -> Any:
    """The request body: JSON from the argument, standard input or a file."""
    import sys

    if records is None:
        fail("give records as JSON, '-' for standard input, '@file.json', or --sample N", code=2)
    text = records
    if records == "-":
        text = sys.stdin.read()
    elif records.startswith("@"):
        path = Path(records[1:])
        if not path.is_file():
            fail(f"no such file: {path}", code=2)
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"records are not valid JSON: {error}", code=2)


def _problem_of(card: Any) -> Any:
    """The task of a model card (``tasks.problems.Problem``)."""
    from tasks.problems import Problem

    return Problem.from_dict(card.feature_spec.get("problem"), target=card.feature_spec.get("target"))


def _sample_records(count: int, *, target: str, version: str | None) -> list[dict[str, Any]]:
    """``count`` records of the dataset the served model was trained on, drawn at random from the rows
    of that version's holdout reference in the registry (the dataset's feature columns only)."""
    import secrets

    from flows.cli.context import dataset_of_card
    from tasks import registry

    model_name, served = _served_version(target, version)
    with lakefs_connection(None, quiet=True) as connection:
        card = registry.show_model(model_name, served, client=connection.client)
        spec = dataset_of_card(card)
        rows = _dataset_rows(card, spec.name, client=connection.client)
    drawn = rows.sample(n=count, replace=count > len(rows), random_state=secrets.randbelow(2**32))
    return json.loads(drawn[list(spec.feature_columns)].to_json(orient="records", double_precision=15))


def _served_version(target: str, version: str | None) -> tuple[str, str]:
    """The model and version the app at ``target`` answers with: ``version`` when pinned, else its
    champion (``GET /models``)."""
    import httpx

    try:
        response = httpx.get(f"{target.rstrip('/')}/models", timeout=30)
        response.raise_for_status()
        live = response.json()["live"]
    except (httpx.HTTPError, ValueError, KeyError) as error:
        fail(f"cannot ask the serving app at {target} what it serves: {error} (is `lockgate serve` running?)")
    candidates = [r for r in live if version is None or r.get("version") == version]
    candidates.sort(key=lambda route: route.get("role") != "champion")
    if not candidates:
        versions = ", ".join(str(r.get("version")) for r in live) or "none"
        fail(f"model version {version!r} is not live; live versions: {versions}", code=2)
    return candidates[0]["model_name"], candidates[0]["version"]


def _dataset_rows(card: Any, dataset: str, *, client: Any) -> Any:
    """Rows of ``dataset``: the version's holdout reference; for a version stored without one, the
    dataset's built-in rows (the generated demo data, or a bundled sample data set)."""
    import io
    import secrets
    import tempfile

    import pandas as pd

    from flows.demo import DEMO_DATASET
    from infra.errors import InvalidInputError, ModelNotFoundError
    from tasks import registry
    from tasks.sample_data import SAMPLE_DATASETS, write_sample_data

    try:
        reference = registry.read_artifact(
            card.model_name, card.version, registry.REFERENCE_ARTIFACT, client=client
        )
        return pd.read_parquet(io.BytesIO(reference))
    except ModelNotFoundError:  # registered without its holdout rows
        pass
    if dataset in SAMPLE_DATASETS:
        with tempfile.TemporaryDirectory() as folder:
            path = write_sample_data(dataset, f"{folder}/rows.parquet", file_format="parquet")
            return pd.read_parquet(path)
    if dataset == DEMO_DATASET:
        from tasks.generate import GeneratorConfig, generate_frame

        return generate_frame(GeneratorConfig(rows=1_000, seed=secrets.randbelow(65_536)))
    raise InvalidInputError(
        f"{card.model_name} {card.version} has no {registry.REFERENCE_ARTIFACT} to draw rows from and "
        f"dataset {dataset!r} has no built-in rows: give the records as JSON instead of --sample"
    )
