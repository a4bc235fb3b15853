"""Bounded HTTP load against the sample app: OTP journeys from a few client threads, with the
latency of every request and every unexpected answer kept."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tests.support.gunicorn_app import request


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expected: frozenset[int] = frozenset({200})


def send(tenant: str, phone: str) -> Call:
    return Call("POST", "/otp/send", json.dumps({"phone": phone}).encode(),
                {"X-Tenant-Id": tenant, "Content-Type": "application/json"}, frozenset({200}))


def verify(tenant: str, phone: str, code: str, expected: Iterable[int] = (200, 401)) -> Call:
    return Call("POST", "/otp/verify", json.dumps({"phone": phone, "code": code}).encode(),
                {"X-Tenant-Id": tenant, "Content-Type": "application/json"}, frozenset(expected))


def phone(n: int) -> str:
    return f"+1555{n:07d}"


def otp_journeys(count: int, tenants: int = 5, first: int = 0) -> list[list[Call]]:
    """``count`` requests as journeys of two: send a code, then verify a wrong one (401)."""
    journeys = []
    for n in range(first, first + (count + 1) // 2):
        tenant = f"tenant-{n % tenants}"
        journeys.append([send(tenant, phone(n)), verify(tenant, phone(n), "000000", (401,))])
    if count % 2:
        journeys[-1] = journeys[-1][:1]
    return journeys


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + len([f for f in self.failures if f.startswith("error")])

    def add(self, other: LoadResult) -> None:
        """Fold another run's figures into this one (runs taken in turns)."""
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.failures += other.failures
        self.seconds += other.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failed": len(self.failures),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else None,
        }


def run(port: int, journeys: Sequence[Sequence[Call]], concurrency: int = 2, timeout: float = 10) -> LoadResult:
    """Play the journeys from ``concurrency`` threads; each journey's calls in order on one thread."""
    result = LoadResult()
    lock = threading.Lock()
    position = iter(range(len(journeys)))

    def worker() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            for call in journeys[index]:
                start = time.perf_counter()
                try:
                    status, body = request(port, call.method, call.path, call.body, call.headers, timeout)
                except OSError as exc:
                    with lock:
                        result.failures.append(f"error {call.method} {call.path}: {exc!r}")
                    continue
                elapsed = time.perf_counter() - start
                with lock:
                    result.latencies.append(elapsed)
                    result.statuses[status] += 1
                    if status not in call.expected:
                        result.failures.append(f"{status} {call.method} {call.path}: {body[:200]!r}")

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - start
    return result
