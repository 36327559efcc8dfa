"""One local Ray with Serve for the serving tests, against the session's embedded lakeFS server.

Ray and Serve start once (about 15 s here); the app serves a model registered under a name unique to
the session, so other suites' models in ``lockgate-models`` never interfere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from infra.processes import free_port
from infra.settings import LakeFSSettings
from tasks.registry import set_alias
from tests.support.serving import register_monitored_model


@dataclass
class Serving:
    url: str
    settings: object  # infra.settings.ServingSettings
    lakefs: LakeFSSettings
    client: object  # lakefs.Client
    model_name: str
    champion_seed: int = 1


@pytest.fixture(scope="session")
def serving(lakefs_server, lakefs_client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    import ray
    from ray import serve

    from infra.settings import ServingSettings
    from serving.operations import start_serving, stop_serving

    model_name = f"serve-{uuid.uuid4().hex[:8]}"
    # With a reference sample, as train_flow registers models: monitor_flow can watch this one too.
    first = register_monitored_model(
        lakefs_client, tmp_path_factory.mktemp("reference"), model_name=model_name, seed=1
    )
    set_alias(model_name, "champion", first.version, client=lakefs_client)
    key, secret = lakefs_server.credentials
    lakefs = LakeFSSettings(endpoint=lakefs_server.endpoint, access_key_id=key, secret_access_key=secret)
    environment = {
        "LOCKGATE_LAKEFS_ENDPOINT": lakefs_server.endpoint,
        "LOCKGATE_LAKEFS_ACCESS_KEY_ID": key,
        "LOCKGATE_LAKEFS_SECRET_ACCESS_KEY": secret,
        "LOCKGATE_SERVING_PORT": str(free_port()),
        "LOCKGATE_SERVING_MODEL_NAME": model_name,
        "LOCKGATE_SERVING_CONTROL_POLL_S": "0.2",
        "LOCKGATE_SERVING_LOG_FLUSH_INTERVAL_S": "0.5",
        "LOCKGATE_SERVING_REPLICA_NUM_CPUS": "0.1",
        "LOCKGATE_SERVING_METRICS_EXPORT_PORT": str(free_port()),
    }
    previous = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    settings = ServingSettings()
    try:
        handle = start_serving(settings, lakefs=lakefs)
        yield Serving(handle.url, settings, lakefs, lakefs_client, model_name)
    finally:
        if ray.is_initialized():
            stop_serving(settings)
            serve.shutdown()
            ray.shutdown()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
