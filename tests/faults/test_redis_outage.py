"""Scenario 5: Redis goes away mid-run and comes back; the service degrades and recovers by itself."""

from __future__ import annotations

import json
import time

import pytest

from tests.support import load
from tests.support.gunicorn_app import GunicornApp, app_env, request

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def health_gauge_after(receiver, value: int, since_ns: int) -> bool:
    return any(p.value == value and p.time_unix_nano > since_ns for p in receiver.metric_points("kyo.redis.health"))


def test_redis_outage_answers_503_reports_it_and_recovers_without_a_restart(redis_server, receiver, figures):
    redis_server.start()
    with GunicornApp(app_env(receiver.endpoint, redis_server.url)) as app:
        workers = sorted(w.pid for w in app.workers())
        before = load.run(app.port, load.otp_journeys(100, first=50_000_000))
        assert not before.failures

        redis_server.stop()
        stopped_ns = time.time_ns()
        outage = load.run(app.port, [[load.Call(c.method, c.path, c.body, c.headers, frozenset({503}))
                                      for c in journey] for journey in load.otp_journeys(100, first=51_000_000)])
        bodies = [json.loads(request(app.port, c.method, c.path, c.body, c.headers)[1])
                  for c in load.otp_journeys(2, first=52_000_000)[0]]
        health_seconds, health_statuses = [], []
        for _ in range(5):
            start = time.perf_counter()
            status, body = request(app.port, "GET", "/health")
            health_seconds.append(time.perf_counter() - start)
            health_statuses.append((status, json.loads(body)["status"]))
        gauge_zero = receiver.wait_for(lambda: health_gauge_after(receiver, 0, stopped_ns), timeout=10)

        redis_server.start()
        back_ns, back = time.time_ns(), time.monotonic()
        recovered_at = None
        deadline = time.monotonic() + 15
        n = 53_000_000
        while time.monotonic() < deadline:
            status, _ = request(app.port, *_send_args(n))
            n += 1
            if status == 200:
                recovered_at = time.monotonic()
                break
            time.sleep(0.05)
        recovery_s = None if recovered_at is None else round(recovered_at - back, 2)
        after = load.run(app.port, load.otp_journeys(100, first=54_000_000))
        gauge_one = receiver.wait_for(lambda: health_gauge_after(receiver, 1, back_ns), timeout=10)
        same_workers = sorted(w.pid for w in app.workers()) == workers
        app.stop()

    server_errors = [r for r in receiver.logs() if r.severity_number >= 17]
    figures.record(
        "redis outage",
        outage_statuses=dict(outage.statuses),
        outage_p99_ms=outage.summary()["p99_ms"],
        health_max_ms=round(max(health_seconds) * 1000, 1),
        health=sorted(set(health_statuses)),
        recovery_s=recovery_s,
        gauge_zero_reported=bool(gauge_zero),
        gauge_one_after_return=bool(gauge_one),
        after_statuses=dict(after.statuses),
        same_workers=same_workers,
        error_log_records=len(server_errors),
    )
    assert not before.failures and not after.failures, (before.failures + after.failures)[:5]
    assert not outage.failures, outage.failures[:5]  # every OTP request: 503, never 500
    assert all(body["error"] == "unavailable" for body in bodies), bodies
    assert set(health_statuses) == {(503, "degraded")} and max(health_seconds) < 1.0
    assert recovery_s is not None and gauge_zero and gauge_one and same_workers
    assert server_errors == [], [(r.body, r.attributes) for r in server_errors[:3]]


def _send_args(n: int) -> tuple[str, str, bytes, dict[str, str]]:
    call = load.send("tenant-back", load.phone(n))
    return call.method, call.path, call.body, call.headers
