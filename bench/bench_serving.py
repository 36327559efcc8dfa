"""Benchmark of lockgate's serving path against a bare Ray Serve deployment of the same model.

One local Ray and one Serve instance on loopback; one model (an untrained, seeded loans MLP) registered
in a temporary embedded lakeFS server. Four variants, each deployed, measured and removed in turn, so
only one is under load at a time:

a. bare: one ``@serve.deployment`` whose ``__call__`` parses the JSON record and runs the same network
   from the same verified weights (``Predictor.from_registry``): no contract check, no routing, no
   statistics, no inference log, no batching, one hop (proxy -> replica).
b. lockgate: ``serving.operations.start_serving`` as deployed: ingress (contract validation, routing,
   statistics, metrics, inference log to lakeFS) -> model app (``@serve.batch``).
c. lockgate with ``max_batch_size=1`` (batching off), for the gain from batching.
d. lockgate with ``inference_logging=False``, for the cost of the inference log.

Each variant gets the same closed-loop load: ``--concurrency`` clients (``httpx.AsyncClient``), one
record per request, a ``--warmup`` period that is not counted, then ``--duration`` seconds measured.
Printed: successful req/s, p50 and p99 latency and errors of each, the ratios against the aims
(lockgate/bare throughput >= 0.8x, p99 <= 1.25x), and the inference-log rows that reached lakeFS vs
the requests answered by each logging variant (they must match once ``stop_serving`` has flushed).

Run: ``.venv/bin/python bench/bench_serving.py [--duration 20] [--concurrency 16] [--warmup 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import uuid

import httpx
from _serving_setup import closed_loop, local_ray, registry_with_model, request_bodies, wait_healthy
from ray import serve
from starlette.requests import Request

BARE_APP = "bare"


@serve.deployment(name="bare", max_ongoing_requests=512)
class BareModel:
    """The baseline: parse the JSON, score it, return the probabilities; nothing else."""

    def __init__(self, model_name: str, ref: str, lakefs) -> None:
        from infra.clients import make_lakefs_client
        from serving.predictor import Predictor

        self.predictor = Predictor.from_registry(model_name, ref, client=make_lakefs_client(lakefs))

    async def __call__(self, request: Request) -> dict:
        payload = await request.json()
        records = [payload] if isinstance(payload, dict) else payload
        return {"probabilities": self.predictor.predict(records).tolist()}


def measure(url: str, bodies: list[bytes], *, concurrency: int, warmup_s: float, duration_s: float):
    """Warm up, then measure one closed-loop run; returns (measured run, requests answered in all)."""
    warm = asyncio.run(closed_loop(url, bodies, concurrency=concurrency, duration_s=warmup_s))
    run = asyncio.run(closed_loop(url, bodies, concurrency=concurrency, duration_s=duration_s))
    statuses = [sample.status for sample in warm.samples + run.samples]
    return run, statuses


def first_probability(url: str, body: bytes, *, lockgate: bool) -> float:
    """The probability each variant gives the first record: all four must agree (same network)."""
    response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    response.raise_for_status()
    answer = response.json()
    return answer["predictions"][0]["probability"] if lockgate else answer["probabilities"][0]


def run_bare(base, registry, bodies, args) -> dict:
    serve.run(
        BareModel.options(ray_actor_options={"num_cpus": base.replica_num_cpus}).bind(
            registry.model_name, "champion", registry.lakefs
        ),
        name=BARE_APP,
        route_prefix=f"/{BARE_APP}",
        blocking=False,
    )
    url = f"http://127.0.0.1:{base.port}/{BARE_APP}"
    try:
        probability = first_probability(url, bodies[0], lockgate=False)
        run, _ = measure(
            url, bodies, concurrency=args.concurrency, warmup_s=args.warmup, duration_s=args.duration
        )
    finally:
        serve.delete(BARE_APP)
    return {"label": "bare Ray Serve", "route": f"/{BARE_APP}", "run": run, "probability": probability}


def run_lockgate(label: str, settings, registry, bodies, args) -> dict:
    """Start one lockgate app, load it, stop it (flushing its log) and count the rows in lakeFS."""
    from serving.inference_log import read_inference_log
    from serving.operations import start_serving, stop_serving

    handle = start_serving(settings, lakefs=registry.lakefs)
    try:
        wait_healthy(handle.url)
        url = f"{handle.url}/predict"
        probability = first_probability(url, bodies[0], lockgate=True)
        run, statuses = measure(
            url, bodies, concurrency=args.concurrency, warmup_s=args.warmup, duration_s=args.duration
        )
    finally:
        stop_serving(settings)
    result = {"label": label, "route": settings.route_prefix, "run": run, "probability": probability}
    if settings.inference_logging:
        rows = read_inference_log(registry.client, repository=settings.inference_repository)
        result["log"] = {
            "answered_ok": statuses.count(200) + 1,  # + the first_probability request
            "answered_5xx": sum(1 for status in statuses if status >= 500),
            "no_answer": statuses.count(0),
            "rows_ok": int((rows["status"] == "ok").sum()) if len(rows) else 0,
            "rows": len(rows),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per variant")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (default 16)")
    args = parser.parse_args()

    from infra.lakefs_server.launcher import free_port
    from serving.config import ServingSettings

    run_id = uuid.uuid4().hex[:6]
    bodies = request_bodies()
    with registry_with_model() as registry:
        base = ServingSettings(port=free_port(), model_name=registry.model_name, initial_ref="champion")
        variants = (
            ("lockgate", {"app_name": "lg-full", "route_prefix": "/full"}),
            (
                "lockgate, batching off",
                {"app_name": "lg-nobatch", "route_prefix": "/nobatch", "max_batch_size": 1},
            ),
            (
                "lockgate, no inference log",
                {"app_name": "lg-nolog", "route_prefix": "/nolog", "inference_logging": False},
            ),
        )
        print(
            f"model {registry.model_name} {registry.version}; {args.concurrency} clients, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s measured per variant",
            flush=True,
        )
        with local_ray(base):
            results = [run_bare(base, registry, bodies, args)]
            for label, changes in variants:
                settings = base.model_copy(
                    update={**changes, "inference_repository": f"bench-{changes['app_name']}-{run_id}"}
                )
                print(f"measuring {label} ...", flush=True)
                results.append(run_lockgate(label, settings, registry, bodies, args))
    print_results(results, args)


def print_results(results: list[dict], args) -> None:
    header = (
        f"{'variant':<28} {'route':<9} {'requests':>9} {'errors':>7} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'p(record 0)':>12}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    figures = {}
    for result in results:
        figures[result["label"]] = summary = result["run"].summary()
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

    throughput = ratio(full["throughput"], bare["throughput"])
    p99 = ratio(full["p99_ms"], bare["p99_ms"])
    print(
        f"\nlockgate / bare throughput: {throughput:.2f}x "
        f"({'ok' if throughput >= 0.8 else 'UNDER'} the >= 0.8x aim)"
    )
    print(f"lockgate / bare p99:        {p99:.2f}x ({'ok' if p99 <= 1.25 else 'OVER'} the <= 1.25x aim)")
    print(f"lockgate / bare p50:        {ratio(full['p50_ms'], bare['p50_ms']):.2f}x")
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
    failures = [(r["label"], s) for r in results for s in r["run"].failures]
    for label, sample in failures[:10]:
        print(f"  failure in {label}: status {sample.status}: {sample.detail}")

    print(
        f"\nNotes: the load generator (one asyncio process), Ray (GCS, raylet, Serve controller, HTTP\n"
        f"proxy), the replicas and the lakeFS server all share this machine's {os.cpu_count()} cores, so\n"
        "the figures measure the whole stack's CPU per request as much as latency. The variants ran one\n"
        "after another on the same Serve instance; 'batching off' is the same code with max_batch_size=1.\n"
        f"Closed loop, {args.concurrency} clients, single-record requests, {args.duration:g} s per variant."
    )


if __name__ == "__main__":
    main()
