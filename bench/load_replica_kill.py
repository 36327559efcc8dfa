"""Load test: kill one of two model replicas mid-run and see what the clients notice.

lockgate's full serving path (``serving.operations.start_serving``: ingress with contract check,
routing, statistics and inference log -> model app) runs on a local Ray with ``model_replicas=2``. An
open-loop generator sends single-record requests at ``--rate`` per second for ``--duration`` seconds,
keeping the send time, latency, status and detail of every request. At the midpoint one model replica
is killed with ``ray.kill(actor, no_restart=True)``, as a crashed process or lost node would be; Serve
then has to notice and start a replacement.

Finding the replica: ``ray.util.state.list_actors`` asks the dashboard's state API, which lockgate's
``connect_ray`` does not start (``include_dashboard=False``), so this script lists named actors from the
GCS instead (``ray.util.list_named_actors``): Serve names each replica actor
``SERVE_REPLICA::<app>#<deployment>#<id>`` in the ``serve`` namespace.

Printed: requests and failures (time and detail of each), failures within +-2 s of the kill vs
elsewhere, when ``serve.status()`` first showed fewer than 2 running replicas and when it showed 2
running again with the killed one gone (recovery time), and throughput and latency before vs after
the kill (the first ``--warmup`` seconds left out). Aim: no failures beyond the requests in flight
on the killed replica.

Run: ``.venv/bin/python bench/load_replica_kill.py [--duration 240] [--rate 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

from _serving_setup import LoadRun, local_ray, open_loop, registry_with_model, request_bodies, wait_healthy

SERVE_NAMESPACE = "serve"  # ray.serve._private.constants.SERVE_NAMESPACE
REPLICAS = 2
KILL_WINDOW_S = 2.0


@dataclass
class Kill:
    """The replica killed, when (``time.perf_counter``), and what ``serve.status()`` showed after."""

    replica: str
    at: float
    survivors: list[str]
    detected_at: float | None = None
    recovered_at: float | None = None
    replacement: str | None = None


def model_replicas(model_app: str) -> list[str]:
    """Names of the live replica actors of ``model_app``'s model deployment."""
    import ray

    from serving.app import MODEL_DEPLOYMENT

    prefix = f"SERVE_REPLICA::{model_app}#{MODEL_DEPLOYMENT}#"
    return sorted(
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == SERVE_NAMESPACE and actor["name"].startswith(prefix)
    )


def kill_one_replica(model_app: str) -> Kill:
    import ray

    names = model_replicas(model_app)
    if len(names) != REPLICAS:
        raise SystemExit(f"expected {REPLICAS} replicas of {model_app}, found {names}")
    actor = ray.get_actor(names[0], namespace=SERVE_NAMESPACE)
    at = time.perf_counter()
    ray.kill(actor, no_restart=True)
    return Kill(replica=names[0], at=at, survivors=names[1:])


def watch_recovery(model_app: str, kill: Kill, *, timeout_s: float) -> Kill:
    """Poll ``serve.status()`` until the deployment shows 2 running replicas, the killed one gone."""
    from ray import serve

    from serving.app import MODEL_DEPLOYMENT

    deadline = kill.at + timeout_s
    while time.perf_counter() < deadline:
        deployment = serve.status().applications[model_app].deployments[MODEL_DEPLOYMENT]
        running = deployment.replica_states.get("RUNNING", 0)
        now = time.perf_counter()
        if running < REPLICAS and kill.detected_at is None:
            kill.detected_at = now
        names = model_replicas(model_app)
        if running == REPLICAS and kill.replica not in names and len(names) == REPLICAS:
            kill.recovered_at = now
            kill.replacement = next(name for name in names if name not in kill.survivors)
            return kill
        time.sleep(0.1)
    return kill


async def load_with_kill(url: str, model_app: str, bodies, args) -> tuple[LoadRun, Kill]:
    load = asyncio.create_task(open_loop(url, bodies, rate_per_s=args.rate, duration_s=args.duration))
    await asyncio.sleep(args.duration / 2)
    kill = await asyncio.to_thread(kill_one_replica, model_app)
    print(f"killed {kill.replica} at {args.duration / 2:.0f} s", flush=True)
    kill = await asyncio.to_thread(watch_recovery, model_app, kill, timeout_s=args.recovery_timeout)
    return await load, kill


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=240.0, help="seconds of load (default 240)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="first seconds left out of the 'before' figures (at most half the time before the kill)",
    )
    parser.add_argument(
        "--recovery-timeout", type=float, default=120.0, help="give up waiting for 2 replicas after this"
    )
    args = parser.parse_args()

    from infra.processes import free_port
    from infra.settings import ServingSettings
    from serving.app import model_app_name
    from serving.inference_log import read_inference_log
    from serving.operations import start_serving, stop_serving

    bodies = request_bodies()
    with registry_with_model() as registry:
        settings = ServingSettings(
            port=free_port(),
            app_name="lg-kill",
            model_name=registry.model_name,
            model_replicas=REPLICAS,
            inference_repository="bench-kill-log",
        )
        with local_ray(settings):
            handle = start_serving(settings, lakefs=registry.lakefs)
            try:
                wait_healthy(handle.url)
                model_app = model_app_name(settings.app_name, settings.model_name, registry.version)
                print(
                    f"{model_app}: replicas {model_replicas(model_app)}; {args.rate:g} req/s for "
                    f"{args.duration:g} s, one replica killed at the midpoint",
                    flush=True,
                )
                run, kill = asyncio.run(load_with_kill(f"{handle.url}/predict", model_app, bodies, args))
            finally:
                stop_serving(settings)
            rows = read_inference_log(registry.client, repository=settings.inference_repository)
    print_report(run, kill, rows=len(rows), args=args)


def print_report(run: LoadRun, kill: Kill, *, rows: int, args) -> None:
    def at(moment: float) -> str:
        return f"{moment - run.started:7.2f} s"

    failures = run.failures
    near = [s for s in failures if abs(s.sent - kill.at) <= KILL_WINDOW_S]
    print(f"\nrequests sent: {len(run.samples):,}; failed: {len(failures):,}")
    print(
        f"failures within +-{KILL_WINDOW_S:g} s of the kill: {len(near)}; "
        f"elsewhere: {len(failures) - len(near)}"
    )
    for sample in failures:
        print(
            f"  sent at {at(sample.sent)} ({sample.sent - kill.at:+.2f} s from the kill), "
            f"{sample.latency_s * 1000:.0f} ms, status {sample.status}: {sample.detail}"
        )
    print(f"\nkilled {kill.replica} at {at(kill.at)}")
    if kill.detected_at is not None:
        print(f"serve.status() showed < {REPLICAS} running replicas {kill.detected_at - kill.at:.2f} s later")
    else:
        print(f"serve.status() never showed < {REPLICAS} running replicas (noticed between two polls)")
    if kill.recovered_at is not None:
        print(
            f"recovery: {REPLICAS} running replicas again {kill.recovered_at - kill.at:.2f} s after the kill "
            f"(replacement {kill.replacement})"
        )
    else:
        print(f"recovery: NOT back to {REPLICAS} running replicas within {args.recovery_timeout:g} s")

    # Connections and first batches make the first seconds slower; they are not the kill's doing.
    warm = run.started + min(args.warmup, (kill.at - run.started) / 2)
    windows = [("before the kill", warm, kill.at), ("after the kill", kill.at, run.stopped)]
    if kill.recovered_at is not None and kill.recovered_at < run.stopped:
        windows += [
            ("kill -> recovered", kill.at, kill.recovered_at),
            ("after recovery", kill.recovered_at, run.stopped),
        ]
    header = (
        f"{'window':<20} {'seconds':>8} {'requests':>9} {'errors':>7} {'ok req/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for label, since, until in windows:
        figures = run.summary(since, until)
        print(
            f"{label:<20} {until - since:>8.1f} {figures['requests']:>9,} {figures['errors']:>7,} "
            f"{figures['throughput']:>9.1f} {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}"
        )
    answered = sum(1 for s in run.samples if s.status == 200 or s.status >= 500)
    print(
        f"\ninference-log rows in lakeFS after stop_serving: {rows:,} "
        f"(requests answered 200 or 5xx: {answered:,})"
    )
    in_flight = sum(1 for s in run.samples if s.sent <= kill.at < s.sent + s.latency_s)
    verdict = "ok" if len(failures) <= in_flight and len(failures) == len(near) else "MISSED"
    print(
        f"requests in flight at the kill (on either replica): {in_flight}\n"
        f"aim (no failures beyond the requests in flight on the killed replica): {verdict}\n"
        f"Notes: open loop at {args.rate:g} req/s; the generator, Ray, the replicas and lakeFS share "
        f"this machine's {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    main()
