"""Automation commands: ``relay`` (signed webhooks -> Prefect events) and ``worker`` (every deployment)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import app
from flows.cli.options import Dataset, ModelName, settings_with
from infra.settings.relay import MIN_SECRET_LENGTH


@app.command("relay", rich_help_panel="The loop")
def relay(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8200,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Accept unauthenticated lakeFS webhooks (LOCKGATE_WEBHOOK_INSECURE_LAKEFS). Anyone who "
            "can reach the relay can then start a retrain: only for a relay lakeFS alone can reach.",
        ),
    ] = False,
) -> None:
    """Run the webhook relay: signed external webhooks (`POST /hooks/events/{name}`) and lakeFS action
    webhooks (`POST /hooks/lakefs`: post-merge events, pre-merge contract checks) become Prefect events.
    Needs LOCKGATE_WEBHOOK_SECRET (at least {min} characters) and, for lakeFS, LOCKGATE_WEBHOOK_LAKEFS_TOKEN
    (sent by the action's headers) or LOCKGATE_WEBHOOK_LAKEFS_SECRET."""
    from infra.settings import RelaySettings
    from serving.webhook_relay import run_relay

    settings = RelaySettings(insecure_lakefs=True) if insecure else RelaySettings()
    run_relay(settings, host=host, port=port)


relay.__doc__ = relay.__doc__.replace("{min}", str(MIN_SECRET_LENGTH))


@app.command("worker", rich_help_panel="The loop")
def worker(dataset: Dataset = None, model_name: ModelName = None) -> None:
    """Serve every lockgate flow as a Prefect deployment (schedules, event triggers, UI runs) from this
    process until Ctrl+C, for one dataset and its model (LOCKGATE_AUTOMATION_* for the rest). Point
    PREFECT_API_URL at the Prefect server; `lockgate up` runs this for you."""
    from flows.deployments import serve_deployments
    from infra.settings import AutomationSettings, WorkloadSettings

    if dataset and not model_name:  # the model of the dataset given, not the one configured for another
        model_name = WorkloadSettings().model_for(dataset)
    serve_deployments(settings_with(AutomationSettings, dataset=dataset, model_name=model_name))
