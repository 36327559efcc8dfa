"""Benchmark of lockgate's serving path against a bare Ray Serve deployment of the same model.

One local Ray and one Serve instance on loopback; one model (an untrained, seeded loans MLP) registered
in a temporary embedded lakeFS server. Five variants, deployed side by side and loaded one at a time,
in alternating order over ``--rounds`` rounds (so warm-up and drift do not favour one):

a2. bare, two deployments: Ray Serve's own FastAPI-ingress -> model-handle pattern (the topology lockgate
   uses) with nothing else in it, to separate the cost of the second hop from lockgate's own work.
a. bare: one ``@serve.deployment`` whose ``__call__`` parses the JSON record and runs the same network
   from the same verified weights (``Predictor.from_registry``): no contract check, no routing, no
   statistics, no inference log, no batching, one hop (proxy -> replica).
b. lockgate: ``serving.operations.start_serving`` as deployed: ingress (contract validation, routing,
   statistics, metrics, inference log to lakeFS) -> model app (``@serve.batch``).
c. lockgate with ``max_batch_size=1`` (batching off), for the gain from batching.
d. lockgate with the log buffered but not written until shutdown: the request-path share of that cost.
e. lockgate with ``inference_logging=False``, for the cost of the inference log.

Each variant gets the same closed-loop load: ``--concurrency`` clients (``httpx.AsyncClient``), one
record per request, a ``--warmup`` period that is not counted, then ``--duration`` seconds measured.
Printed: successful req/s, p50 and p99 latency and errors of each, the ratios against the aims
(lockgate/bare throughput >= 0.8x, p99 <= 1.25x), and the inference-log rows that reached lakeFS vs
the requests answered by each logging variant (they must match once ``stop_serving`` has flushed).

Run: ``.venv/bin/python bench/bench_serving.py [--duration 20] [--concurrency 16] [--warmup 5]``.
"""

import argparse
import asyncio
import math
import os
import uuid

import httpx
import numpy as np
from _serving_setup import closed_loop, local_ray, registry_with_model, request_bodies, wait_healthy
from fastapi import FastAPI, Request
from ray import serve

BARE_APP = "bare"
BARE_TWO_HOP_APP = "bare2"
BARE_TWO_HOP = "bare Serve, ingress+model"


@serve.deployment(name="bare", max_ongoing_requests=512)
class BareModel:
    """The baseline: parse the JSON, score it, return the probabilities; nothing else."""

    def __init__(self, model_name: str, ref: str, lakefs) -> None:
        from infra.clients import make_lakefs_client
        from tasks.predictor import Predictor

        self.predictor = Predictor.from_registry(model_name, ref, client=make_lakefs_client(lakefs))

    async def __call__(self, request: Request) -> dict:
        payload = await request.json()
        records = [payload] if isinstance(payload, dict) else payload
        return {"probabilities": self.predictor.predict(records).tolist()}


bare_api = FastAPI()


@serve.deployment(name="bare-model", max_ongoing_requests=512)
class BareModelServer:
    """Second baseline, model half: score a list of records through a deployment handle."""

    def __init__(self, model_name: str, ref: str, lakefs) -> None:
        from infra.clients import make_lakefs_client
        from tasks.predictor import Predictor

        self.predictor = Predictor.from_registry(model_name, ref, client=make_lakefs_client(lakefs))

    def predict(self, records: list) -> list:
        return self.predictor.predict(records).tolist()


@serve.deployment(name="bare-ingress", max_ongoing_requests=512)
@serve.ingress(bare_api)
class BareIngress:
    """Second baseline, ingress half: Ray Serve's FastAPI-ingress + model-deployment pattern, nothing else."""

    def __init__(self, model) -> None:
        self.model = model

    @bare_api.post("/predict")
    async def predict(self, request: Request) -> dict:
        payload = await request.json()
        records = [payload] if isinstance(payload, dict) else payload
        return {"probabilities": await self.model.predict.remote(records)}


def measure(url: str, bodies: list[bytes], *, concurrency: int, warmup_s: float, duration_s: float):
    """Warm up, then measure one closed-loop run; returns (measured run, statuses of every request)."""
    warm = asyncio.run(closed_loop(url, bodies, concurrency=concurrency, duration_s=warmup_s))
    run = asyncio.run(closed_loop(url, bodies, concurrency=concurrency, duration_s=duration_s))
    statuses = [sample.status for sample in warm.samples + run.samples]
    return run, statuses


def combine(runs: list) -> dict[str, float]:
    """One summary over several measured runs of a variant (throughput over their summed spans)."""
    ok = np.array([s.latency_s for run in runs for s in run.samples if s.status == 200]) * 1000
    requests = sum(len(run.samples) for run in runs)
    span = sum(run.stopped - run.started for run in runs)
    return {
        "requests": requests,
        "ok": len(ok),
        "errors": requests - len(ok),
        "throughput": len(ok) / span if span > 0 else 0.0,
        "p50_ms": float(np.percentile(ok, 50)) if len(ok) else float("nan"),
        "p99_ms": float(np.percentile(ok, 99)) if len(ok) else float("nan"),
    }


def first_probability(url: str, body: bytes, *, lockgate: bool) -> float:
    """The probability each variant gives the first record: all must agree (same network)."""
    response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    response.raise_for_status()
    answer = response.json()
    return answer["predictions"][0]["probability"] if lockgate else answer["probabilities"][0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per variant and round")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (default 16)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds over all variants, alternating order (default 2)"
    )
    args = parser.parse_args()

    from infra.processes import free_port
    from infra.settings import ServingSettings
    from serving.inference_log import read_inference_log
    from serving.operations import start_serving, stop_serving

    run_id = uuid.uuid4().hex[:6]
    bodies = request_bodies()
    with registry_with_model() as registry:
        base = ServingSettings(port=free_port(), model_name=registry.model_name, initial_ref="champion")
        variants = {
            "lockgate": {"app_name": "lg-full", "route_prefix": "/full"},
            "lockgate, batching off": {
                "app_name": "lg-nobatch",
                "route_prefix": "/nobatch",
                "max_batch_size": 1,
            },
            "lockgate, log not flushed": {
                "app_name": "lg-buffered",
                "route_prefix": "/buffered",
                "log_flush_rows": 1_000_000,
                "log_flush_interval_s": 3_600.0,
                "log_capacity_rows": 1_000_000,
            },
            "lockgate, no inference log": {
                "app_name": "lg-nolog",
                "route_prefix": "/nolog",
                "inference_logging": False,
            },
        }
        print(
            f"model {registry.model_name} {registry.version}; {args.concurrency} clients, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s measured per variant, {args.rounds} round(s)",
            flush=True,
        )
        with local_ray(base):
            serve.run(
                BareModel.options(ray_actor_options={"num_cpus": base.replica_num_cpus}).bind(
                    registry.model_name, "champion", registry.lakefs
                ),
                name=BARE_APP,
                route_prefix=f"/{BARE_APP}",
                blocking=False,
            )
            serve.run(
                BareIngress.options(ray_actor_options={"num_cpus": base.replica_num_cpus}).bind(
                    BareModelServer.options(ray_actor_options={"num_cpus": base.replica_num_cpus}).bind(
                        registry.model_name, "champion", registry.lakefs
                    )
                ),
                name=BARE_TWO_HOP_APP,
                route_prefix=f"/{BARE_TWO_HOP_APP}",
                blocking=False,
            )
            urls = {
                "bare Ray Serve": f"http://127.0.0.1:{base.port}/{BARE_APP}",
                BARE_TWO_HOP: f"http://127.0.0.1:{base.port}/{BARE_TWO_HOP_APP}/predict",
            }
            settings_of = {}
            for label, changes in variants.items():
                settings = base.model_copy(
                    update={**changes, "inference_repository": f"bench-{changes['app_name']}-{run_id}"}
                )
                settings_of[label] = settings
                handle = start_serving(settings, lakefs=registry.lakefs)
                wait_healthy(handle.url)
                urls[label] = f"{handle.url}/predict"
            wait_healthy_bare(urls["bare Ray Serve"], bodies[0])
            wait_healthy_bare(urls[BARE_TWO_HOP], bodies[0])
            probabilities = {
                label: first_probability(url, bodies[0], lockgate=label.startswith("lockgate"))
                for label, url in urls.items()
            }
            runs: dict[str, list] = {label: [] for label in urls}
            statuses: dict[str, list[int]] = {label: [200] for label in urls}  # the first_probability call
            labels = list(urls)
            for round_index in range(args.rounds):
                order = labels if round_index % 2 == 0 else labels[::-1]
                for label in order:
                    print(f"round {round_index + 1}: measuring {label} ...", flush=True)
                    run, seen = measure(
                        urls[label],
                        bodies,
                        concurrency=args.concurrency,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                    )
                    runs[label].append(run)
                    statuses[label] += seen
            for settings in settings_of.values():
                stop_serving(settings)  # flushes the inference logs
            serve.delete(BARE_APP)
            serve.delete(BARE_TWO_HOP_APP)
        results = []
        for label in urls:
            result = {"label": label, "runs": runs[label], "probability": probabilities[label]}
            settings = settings_of.get(label)
            if settings is not None:
                result["route"] = settings.route_prefix
                if settings.inference_logging:
                    rows = read_inference_log(registry.client, repository=settings.inference_repository)
                    codes = statuses[label]
                    result["log"] = {
                        "answered_ok": codes.count(200),
                        "answered_5xx": sum(1 for status in codes if status >= 500),
                        "no_answer": codes.count(0),
                        "rows_ok": int((rows["status"] == "ok").sum()) if len(rows) else 0,
                        "rows": len(rows),
                    }
            else:
                result["route"] = "/" + (BARE_APP if label == "bare Ray Serve" else BARE_TWO_HOP_APP)
            results.append(result)
    print_results(results, args)


def wait_healthy_bare(url: str, body: bytes, timeout_s: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.post(url, content=body, timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bare deployment at {url} never answered")
        time.sleep(0.5)


def print_results(results: list[dict], args) -> None:
    header = (
        f"{'variant':<28} {'route':<9} {'requests':>9} {'errors':>7} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'p(record 0)':>12}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    figures = {}
    for result in results:
        figures[result["label"]] = summary = combine(result["runs"])
        print(
            f"{result['label']:<28} {result['route']:<9} {summary['requests']:>9,} {summary['errors']:>7,} "
            f"{summary['throughput']:>8,.1f} {summary['p50_ms']:>8.2f} {summary['p99_ms']:>8.2f} "
            f"{result['probability']:>12.6f}"
        )
    probabilities = {round(result["probability"], 6) for result in results}
    if len(probabilities) != 1:
        print(f"WARNING: the variants disagree on record 0: {sorted(probabilities)}")

    bare, full = figures["bare Ray Serve"], figures["lockgate"]
    unbatched, unlogged = figures["lockgate, batching off"], figures["lockgate, no inference log"]

    def ratio(a: float, b: float) -> float:
        return a / b if b and not math.isnan(b) else float("nan")

    two_hop = figures[BARE_TWO_HOP]
    throughput = ratio(full["throughput"], bare["throughput"])
    p99 = ratio(full["p99_ms"], bare["p99_ms"])
    print(
        f"\nlockgate / bare throughput: {throughput:.2f}x "
        f"({'ok' if throughput >= 0.8 else 'UNDER'} the >= 0.8x aim)"
    )
    print(f"lockgate / bare p99:        {p99:.2f}x ({'ok' if p99 <= 1.25 else 'OVER'} the <= 1.25x aim)")
    print(f"lockgate / bare p50:        {ratio(full['p50_ms'], bare['p50_ms']):.2f}x")
    print(
        f"lockgate / bare Serve with the same two deployments (FastAPI ingress -> model handle): "
        f"throughput {ratio(full['throughput'], two_hop['throughput']):.2f}x, "
        f"p50 {ratio(full['p50_ms'], two_hop['p50_ms']):.2f}x, "
        f"p99 {ratio(full['p99_ms'], two_hop['p99_ms']):.2f}x"
    )
    print(
        f"batching gain (batched / max_batch_size=1): throughput "
        f"{ratio(full['throughput'], unbatched['throughput']):.2f}x, "
        f"p99 {ratio(full['p99_ms'], unbatched['p99_ms']):.2f}x"
    )
    print(
        f"inference-log cost (with / without): throughput "
        f"{ratio(full['throughput'], unlogged['throughput']):.2f}x, "
        f"p99 {ratio(full['p99_ms'], unlogged['p99_ms']):.2f}x"
    )
    buffered = figures["lockgate, log not flushed"]
    print(
        f"  of which on the request path (rows buffered, written only at shutdown): throughput "
        f"{ratio(buffered['throughput'], unlogged['throughput']):.2f}x, "
        f"p99 {ratio(buffered['p99_ms'], unlogged['p99_ms']):.2f}x"
    )

    print("\ninference log rows in lakeFS after stop_serving (flushed) vs requests answered:")
    for result in results:
        log = result.get("log")
        if log is None:
            continue
        matches = log["rows_ok"] == log["answered_ok"] and log["rows"] - log["rows_ok"] == log["answered_5xx"]
        print(
            f"  {result['label']:<28} rows {log['rows']:,} (ok {log['rows_ok']:,}) vs answered 200: "
            f"{log['answered_ok']:,}, 5xx: {log['answered_5xx']:,}, no answer: {log['no_answer']:,} "
            f"-> {'match' if matches else 'MISMATCH'}"
        )
    failures = [(r["label"], s) for r in results for run in r["runs"] for s in run.failures]
    for label, sample in failures[:10]:
        print(f"  failure in {label}: status {sample.status}: {sample.detail}")

    print(
        f"\nNotes: the load generator (one asyncio process), Ray (GCS, raylet, Serve controller, HTTP\n"
        f"proxy), the replicas and the lakeFS server all share this machine's {os.cpu_count()} cores, so\n"
        "the figures measure the whole stack's CPU per request as much as latency. All variants are\n"
        "deployed side by side on one Serve instance and loaded one at a time, in alternating order over\n"
        f"{args.rounds} round(s); 'batching off' is the same code with max_batch_size=1. Closed loop,\n"
        f"{args.concurrency} clients, single-record requests, {args.duration:g} s per variant and round."
    )


if __name__ == "__main__":
    main()
