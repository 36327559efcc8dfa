"""Each task type through the whole loop on real data: ingest -> train on 2 DDP ranks -> serve on Ray
Serve -> traffic -> monitor with labels -> retrain -> rollout -> promoted.

penguins is multiclass (string categorical columns, missing values), diabetes a regression; the binary
loop is the loans demo's (tests/integration/flows/test_demo.py). Both apps share the session's Ray
Serve with the other serving tests, each under its own route prefix.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import uuid

import httpx
import numpy as np
import pandas as pd
import pytest

from contracts.rollout import RolloutStep
from contracts.slo import SLOThresholds
from infra.naming import INFERENCE_REPOSITORY
from serving.operations import RayServing, start_serving, stop_serving
from serving.rollout import run_rollout
from serving.traffic import TrafficGenerator
from tasks import monitoring, registry, versioning
from tasks.clock import SYSTEM_CLOCK
from tasks.datasets import get_dataset
from tasks.drift import DriftConfig
from tasks.feedback import ingest_labels
from tasks.ingestion import IngestParameters, run_ingest
from tasks.monitoring import MonitorParameters, run_monitor
from tasks.problems import Problem
from tasks.publishing import RecordingPublisher
from tasks.retraining import MemoryCooldowns, RetrainParameters, run_retrain
from tasks.sample_data import write_sample_data
from tasks.training import TrainingConfig
from tasks.training.run import TrainParameters, run_train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOOSE_SLO = SLOThresholds(
    p99_latency_ms=5_000, max_error_rate=0.05, max_prediction_psi=50.0, min_requests=10, min_psi_records=20
)
# The first champion is trained briefly, so the retrain's adaptive default beats it.
WEAK = TrainingConfig(epochs=2, batch_size=256, checkpoint_every_s=60)
# The retrained challenger: a few hundred adaptive steps beat WEAK's two (fewer than the default's
# 2,000, which only cost CI minutes here).
BETTER = TrainingConfig(target_steps=300, checkpoint_every_s=60)


def native(value):
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def reference_rows(model: str, version: str, client) -> pd.DataFrame:
    payload = registry.read_artifact(model, version, registry.REFERENCE_ARTIFACT, client=client)
    return pd.read_parquet(io.BytesIO(payload))


def wait_until_logged(client, since: str | None, model: str, rows: int, timeout_s: float = 60) -> None:
    """Until the inference log holds ``rows`` answered rows of ``model`` after ``since``."""
    deadline = time.monotonic() + timeout_s
    while True:
        head = monitoring.inference_head(client, repository=INFERENCE_REPOSITORY)
        if head != since:
            window = monitoring.read_window(
                client, since_commit=since, until_commit=head, repository=INFERENCE_REPOSITORY
            )
            if len(monitoring.answered_rows(window.rows, model)) >= rows:
                return
        assert time.monotonic() < deadline, "the inference log did not receive every answered row"
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("dataset", "check_answer", "quality_metric"),
    [
        (
            "penguins",
            lambda a: a["prediction"] in {"Adelie", "Chinstrap", "Gentoo"} and "probabilities" in a,
            "accuracy",
        ),
        ("diabetes", lambda a: set(a) >= {"prediction"} and isinstance(a["prediction"], float), "r2"),
    ],
)
def test_the_whole_loop(
    serving, lakefs_client, dask_client, tmp_path, dataset, check_answer, quality_metric
) -> None:
    spec = get_dataset(dataset)
    client = lakefs_client
    source = tmp_path / f"{dataset}.csv"
    write_sample_data(dataset, str(source), file_format="csv")
    namespace = versioning.default_storage_namespace(spec.repository, client=client) or ""
    versioning.ensure_repository(spec.repository, storage_namespace=namespace, client=client)
    run_ingest(
        IngestParameters(source=str(source), dataset=dataset),
        client=client,
        s3_client=None,
        publish=RecordingPublisher(),
    )
    name = f"{dataset}-loop-{uuid.uuid4().hex[:6]}"

    def cluster():
        return contextlib.nullcontext(dask_client)  # the session's two workers: no start per training

    def train(parameters: TrainParameters):
        return run_train(
            parameters,
            client=client,
            dask_cluster=cluster,
            publish=RecordingPublisher(),
            run_id=uuid.uuid4().hex,
        )

    first = train(TrainParameters(dataset=dataset, model_name=name, config=WEAK, alias="champion"))

    settings = serving.settings.model_copy(
        update={"model_name": name, "app_name": f"loop-{dataset}", "route_prefix": f"/loop-{dataset}"}
    )
    url = start_serving(settings, lakefs=serving.lakefs).url
    try:
        rows = reference_rows(name, first.version, client)
        records = [
            {c: native(v) for c, v in row.items()}
            for row in rows[list(spec.feature_columns)].to_dict("records")
        ]
        since = monitoring.inference_head(client, repository=INFERENCE_REPOSITORY)
        answered = []
        with httpx.Client(timeout=30) as http:
            for record, truth in zip(records, rows[spec.target], strict=True):
                response = http.post(f"{url}/predict", json=record)
                assert response.status_code == 200, response.text
                (answer,) = response.json()["predictions"]
                assert check_answer(answer), answer
                answered.append({"request_id": answer["request_id"], "outcome": native(truth)})
        wait_until_logged(client, since, name, len(records))
        card = registry.show_model(name, first.version, client=client)
        problem = Problem.from_dict(card.feature_spec["problem"])
        ingest_labels(pd.DataFrame(answered), client=client, repository=INFERENCE_REPOSITORY, problem=problem)

        summary = run_monitor(
            MonitorParameters(
                model_name=name, drift=DriftConfig(min_samples=10), min_labels=10, from_start=True
            ),
            client=client,
            inference_repository=INFERENCE_REPOSITORY,
            publish=RecordingPublisher(),
            clock=SYSTEM_CLOCK,
            run_name=f"loop-{uuid.uuid4().hex[:6]}",
        )
        # The live quality of the task, from the labels (the records were the holdout: no drift).
        assert summary.quality in ("ok", "degraded"), summary
        assert summary.records == len(records)

        serving_backend = RayServing(settings, lakefs=serving.lakefs)
        with TrafficGenerator(url, records, concurrency=2, rate_per_s=40):
            outcome = run_retrain(
                RetrainParameters(
                    model_name=name,
                    dataset=dataset,
                    config=BETTER,
                    cooldown_s=0,
                    plan=[
                        RolloutStep(traffic=0, shadow=True, hold_s=2.0),
                        RolloutStep(traffic=1.0, hold_s=2.0),
                    ],
                    slo=LOOSE_SLO,
                ),
                client=client,
                cooldowns=MemoryCooldowns(),
                train=train,
                deploy=lambda parameters: run_rollout(
                    parameters,
                    client=client,
                    serving=serving_backend,
                    clock=SYSTEM_CLOCK,
                    publish=RecordingPublisher(),
                ),
                on_cluster=True,
                clock=SYSTEM_CLOCK,
                publish=RecordingPublisher(),
            )
        assert outcome.metric == problem.default_metric
        assert outcome.decision.startswith("promoted"), outcome
        assert registry.get_alias(name, "champion", client=client).version == outcome.challenger
    finally:
        stop_serving(settings)
