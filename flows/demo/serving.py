"""The demo's serving part: the champion on a local Ray Serve under live traffic, the trained challenger
rolled out step by step, every prediction logged in lakeFS."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from infra.errors import ModelNotFoundError, RolloutError

if TYPE_CHECKING:
    import lakefs

    from flows.demo import DemoReporter
    from infra.settings import LakeFSSettings
    from tasks.publishing import Publisher

DEMO_MODEL = "loans-mlp"
DEMO_DATASET = "loans"


def loan_records(rows: int, *, seed: int, covariate_shift: float = 0.0) -> list[dict]:
    """Generated loan applications as request records (the features only)."""
    from contracts.loans import FEATURE_COLUMNS
    from tasks.generate import GeneratorConfig, generate_frame

    frame = generate_frame(GeneratorConfig(rows=rows, seed=seed, covariate_shift=covariate_shift))
    return json.loads(frame[list(FEATURE_COLUMNS)].to_json(orient="records"))


def run_serving_demo(
    *,
    client: lakefs.Client,
    lakefs_settings: LakeFSSettings,
    trained: str,
    close_loop: bool,
    publish: Publisher,
    reporter: DemoReporter,
) -> None:
    """Serve the champion, send traffic, roll ``trained`` out when it is not the champion, then (with
    ``close_loop``) close the loop; stop serving and count what the inference log holds."""
    import ray
    from ray import serve

    from contracts.rollout import DeployParameters, RolloutStep
    from contracts.slo import SLOThresholds
    from infra.processes import free_port
    from infra.settings import ServingSettings
    from serving.inference_log import read_inference_log
    from serving.operations import RayServing, start_serving, stop_serving
    from serving.rollout import run_rollout
    from serving.traffic import TrafficGenerator
    from tasks.clock import SYSTEM_CLOCK
    from tasks.registry import get_alias, set_alias

    reporter.section("Serving: Ray Serve, SLO-gated rollout, inference logs in lakeFS")
    try:
        champion = get_alias(DEMO_MODEL, "champion", client=client).version
    except ModelNotFoundError:
        champion = set_alias(DEMO_MODEL, "champion", trained, client=client).version
        reporter.info(f"No champion yet: {trained} becomes the first champion (nothing to compare it with).")
    settings = ServingSettings(port=free_port(), model_name=DEMO_MODEL, log_flush_interval_s=1.0)
    records = loan_records(500, seed=7)
    try:
        with reporter.busy("Starting Ray and the serving app ..."):
            handle = start_serving(settings, lakefs=lakefs_settings)
        reporter.info(f"Serving {DEMO_MODEL} {champion} at [bold]{handle.url}[/] (POST /predict)")
        with TrafficGenerator(handle.url, records, concurrency=4, rate_per_s=80) as traffic:
            SYSTEM_CLOCK.sleep(3)
            if trained != champion:
                plan = [RolloutStep(traffic=0, shadow=True, hold_s=4)] + [
                    RolloutStep(traffic=share, hold_s=4) for share in (0.25, 1.0)
                ]
                parameters = DeployParameters(
                    model_name=DEMO_MODEL,
                    version=trained,
                    plan=plan,
                    slo=SLOThresholds(p99_latency_ms=1_000, min_requests=20),
                    max_wait_s=30,
                )
                with reporter.busy(f"Rolling {trained} out: shadow -> 25% -> 100% under live traffic ..."):
                    try:
                        result = run_rollout(
                            parameters,
                            client=client,
                            serving=RayServing(settings, lakefs=lakefs_settings),
                            clock=SYSTEM_CLOCK,
                            publish=publish,
                        )
                    except RolloutError as error:
                        result = None
                        reporter.panel(str(error), title="Rolled back", style="yellow")
                if result is not None:
                    reporter.rollout(result)
            SYSTEM_CLOCK.sleep(2)
        reporter.traffic(traffic.report)
        if close_loop:
            from flows.demo.loop import run_loop_demo

            run_loop_demo(
                client=client,
                lakefs_settings=lakefs_settings,
                serving=settings,
                url=handle.url,
                reporter=reporter,
            )
    finally:
        with reporter.busy("Stopping the serving app (flushing inference logs) ..."):
            if ray.is_initialized():
                stop_serving(settings)
                serve.shutdown()
                ray.shutdown()
    logged = read_inference_log(client, repository=settings.inference_repository)
    reporter.info(
        f"[green]logged[/] {len(logged):,} prediction(s) in "
        f"lakefs://{settings.inference_repository}/main/logs/ (features, prediction, version, latency, time, "
        "request ID)"
    )
