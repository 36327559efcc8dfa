"""A traffic generator for the serving app: the demo, drills and benchmarks send requests with it.

``TrafficGenerator`` runs ``concurrency`` worker threads, each posting records to ``/predict`` in a
loop (optionally paced to ``rate_per_s`` in total), and counts outcomes and latencies until stopped.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx


@dataclass
class TrafficReport:
    """What the generator saw: status codes, versions that answered, latencies (ms), failures by time."""

    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)

    def quantile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    @property
    def throughput(self) -> float:
        elapsed = (self.stopped or time.monotonic()) - self.started
        return self.statuses.get(200, 0) / elapsed if elapsed > 0 else 0.0


class TrafficGenerator:
    """Posts ``records`` (one per request, cycling) to ``url``/predict from background threads."""

    def __init__(
        self,
        url: str,
        records: Sequence[dict],
        *,
        concurrency: int = 4,
        rate_per_s: float | None = None,
        records_per_request: int = 1,
        keyed: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        if not records:
            raise ValueError("the traffic generator needs at least one record")
        self.url = url.rstrip("/") + "/predict"
        self.records = list(records)
        self.concurrency = concurrency
        self.interval = None if not rate_per_s else concurrency / rate_per_s
        self.per_request = records_per_request
        self.keyed = keyed
        self.timeout_s = timeout_s
        self.report = TrafficReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TrafficGenerator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.report.started = time.monotonic()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"traffic-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> TrafficReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)
        self.report.stopped = time.monotonic()
        return self.report

    def _work(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                number = next(self._counter)
                start = (number * self.per_request) % len(self.records)
                batch = [self.records[(start + i) % len(self.records)] for i in range(self.per_request)]
                headers = {"x-lockgate-key": f"customer-{number % 1000}"} if self.keyed else {}
                try:
                    response = client.post(self.url, json=batch, headers=headers)
                    status, version = response.status_code, None
                    if status == 200:
                        version = response.json().get("model_version")
                    detail = "" if status == 200 else response.text[:200]
                except httpx.HTTPError as error:
                    status, version, detail = 0, None, f"{type(error).__name__}: {error}"
                latency_ms = (time.monotonic() - began) * 1000
                with self._lock:
                    self.report.statuses[status] += 1
                    if version is not None:
                        self.report.versions[version] += 1
                        self.report.latencies_ms.append(latency_ms)
                    else:
                        self.report.failures.append((time.monotonic() - self.report.started, detail))
                if self.interval is not None:
                    self._stop.wait(max(self.interval - (time.monotonic() - began), 0))
