"""``python -m sample_app demo``: start the service in-process, drive realistic traffic, summarise.

The service runs on a werkzeug server thread on a random 127.0.0.1 port and the traffic goes
over real HTTP: sends, correct and mistyped verifications, brute-force attempts, codes that
expire (the demo's TTL is 2 s), a rate-limit burst, malformed requests, a flood of new tenants
(past the tenant cardinality cap), and with a real Redis (``--redis-url`` / ``REDIS_URL``) a
4 s outage made with ``CLIENT PAUSE``. The summary is read from the telemetry itself: spans
and log records as the SDK handed them to the exporters, metric points from the memory reader
(the default profile of the demo; ``OTEL_*_EXPORTER`` variables still win).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind
from werkzeug.serving import make_server

import kyo_otel
from kyo_otel import catalog
from sample_app.app import SERVICE_NAME, connect_redis, create_app, embedded_redis
from sample_app.sms import OutboxSender

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka")
DEMO_TTL = 2
FLOOD_TENANTS = 120
_EXPORTER_VARIABLES = (
    "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
    "KYO_OTEL_PROFILE", "KYO_OTEL_TRACES_EXPORTER", "KYO_OTEL_METRICS_EXPORTER", "KYO_OTEL_LOGS_EXPORTER",
)


# --- counting what the SDK hands to the exporters ------------------------------------------


class SpanTally(SpanProcessor):
    """Counts finished, sampled spans by kind, and keeps server span durations."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()
        self.server_seconds: list[float] = []
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        with self._lock:
            self.by_kind[span.kind.name.lower()] += 1
            if span.kind is SpanKind.SERVER and span.end_time and span.start_time:
                self.server_seconds.append((span.end_time - span.start_time) / 1e9)


class LogTally(LogRecordProcessor):
    """Counts emitted log records by logger name."""

    def __init__(self) -> None:
        self.by_logger: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_emit(self, log_record: Any) -> None:
        scope = log_record.instrumentation_scope
        with self._lock:
            self.by_logger[scope.name if scope else "?"] += 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- traffic -------------------------------------------------------------------------------


@dataclass
class Traffic:
    """What the driver did and what it got back (the client's view, to compare with telemetry)."""

    statuses: Counter[int] = field(default_factory=Counter)
    verifications: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    rate_limited: int = 0
    unavailable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Driver:
    def __init__(self, base_url: str, outbox: OutboxSender, traffic: Traffic, seed: int) -> None:
        self.base_url = base_url
        self.outbox = outbox
        self.traffic = traffic
        self.random = random.Random(seed)
        self.late: list[tuple[float, str, str, str]] = []  # (due, tenant, phone, code)
        self.first = [name for name, _ in self.SCENARIOS]  # each scenario once, then a random mix

    def call(self, path: str, tenant: str | None, body: Any = None, *, method: str = "POST", raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if tenant is not None:
            req.add_header("X-Tenant-Id", tenant)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        with self.traffic.lock:
            self.traffic.statuses[status] += 1
            self.traffic.unavailable += status == 503
        try:
            return status, json.loads(payload or b"null")
        except ValueError:
            return status, None

    def phone(self) -> str:
        return "+8869" + "".join(self.random.choice("0123456789") for _ in range(8))

    def send(self, tenant: str, phone: str) -> str | None:
        status, _ = self.call("/otp/send", tenant, {"phone": phone})
        with self.traffic.lock:
            self.traffic.sent += status == 200
            self.traffic.rate_limited += status == 429
        return self.outbox.latest(tenant, phone) if status == 200 else None

    def verify(self, tenant: str, phone: str, code: str) -> None:
        status, body = self.call("/otp/verify", tenant, {"phone": phone, "code": code})
        if status == 200:
            outcome = "success"
        elif isinstance(body, dict) and body.get("error") in catalog.OTP_FAILURE_REASONS:
            outcome = body["error"]
        else:
            return
        with self.traffic.lock:
            self.traffic.verifications[outcome] += 1

    @staticmethod
    def wrong(code: str) -> str:
        return f"{(int(code) + 1) % 1_000_000:06d}"

    # scenarios ----------------------------------------------------------------------------

    def happy(self, tenant: str) -> None:
        phone = self.phone()
        code = self.send(tenant, phone)
        if code:
            self.verify(tenant, phone, code)

    def typo(self, tenant: str) -> None:
        phone = self.phone()
        code = self.send(tenant, phone)
        if code:
            self.verify(tenant, phone, self.wrong(code))
            self.verify(tenant, phone, code)

    def brute_force(self, tenant: str) -> None:
        phone = self.phone()
        code = self.send(tenant, phone)
        if code:
            for _ in range(6):  # five wrong codes, then the lock-out
                self.verify(tenant, phone, self.wrong(code))

    def expire(self, tenant: str) -> None:
        phone = self.phone()
        code = self.send(tenant, phone)
        if code:
            self.late.append((time.monotonic() + DEMO_TTL + 0.5, tenant, phone, code))

    def burst(self, tenant: str) -> None:
        phone = self.phone()
        for _ in range(8):  # the limit is 5 per window
            self.send(tenant, phone)

    def bad_requests(self, tenant: str) -> None:
        self.call("/otp/send", tenant, raw=b"{not json")
        self.call("/otp/send", tenant, {"phone": 886912345678})
        self.call("/otp/verify", tenant, {"phone": self.phone()})
        self.call("/otp/send", None, {"phone": self.phone()})
        self.call("/otp/send", "bad tenant!", {"phone": self.phone()})
        self.call("/otp/unknown", tenant, {})
        self.call("/otp/send", tenant, method="GET")

    def verify_due(self) -> None:
        now = time.monotonic()
        due = [item for item in self.late if item[0] <= now]
        self.late = [item for item in self.late if item[0] > now]
        for _, tenant, phone, code in due:
            self.verify(tenant, phone, code)

    SCENARIOS = (("happy", 55), ("typo", 15), ("expire", 8), ("brute_force", 4), ("burst", 4), ("bad_requests", 3))

    def step(self) -> None:
        self.verify_due()
        names, weights = zip(*self.SCENARIOS)
        name = self.first.pop(0) if self.first else self.random.choices(names, weights)[0]
        getattr(self, name)(self.random.choice(TENANTS))
        time.sleep(self.random.uniform(0, 0.02))  # users do not arrive back to back


# --- summary -------------------------------------------------------------------------------


def _points(telemetry: kyo_otel.Telemetry) -> dict[str, list[Any]]:
    reader = telemetry.memory.metrics
    if reader is None:
        return {}
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def histogram_quantiles(points: list[Any], quantiles: tuple[float, ...]) -> dict[float, float]:
    """Quantiles of exponential-histogram points merged, as a backend computes them: each
    bucket ``(base**i, base**(i+1)]`` is represented by its midpoint."""
    buckets: list[tuple[float, int]] = []
    for point in points:
        base = 2.0 ** (2.0 ** -point.scale)
        if point.zero_count:
            buckets.append((0.0, point.zero_count))
        for k, count in enumerate(point.positive.bucket_counts):
            if count:
                index = point.positive.offset + k
                buckets.append(((base**index + base ** (index + 1)) / 2, count))
    buckets.sort()
    total = sum(count for _, count in buckets)
    result: dict[float, float] = {}
    for q in quantiles:
        rank, seen = max(1, math.ceil(q * total)), 0
        for value, count in buckets:
            seen += count
            if seen >= rank:
                result[q] = value
                break
    return result


def _span_quantiles(seconds: list[float], quantiles: tuple[float, ...]) -> dict[float, float]:
    ordered = sorted(seconds)
    return {q: ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in quantiles} if ordered else {}


def summarise(telemetry: kyo_otel.Telemetry, spans: SpanTally, logs: LogTally, traffic: Traffic, seconds: float) -> dict[str, Any]:
    points = _points(telemetry)
    metrics: dict[str, dict[str, Any]] = {}
    for name, items in sorted(points.items()):
        kind = catalog.BY_NAME[name].kind if name in catalog.BY_NAME else "counter"
        if kind == "histogram":
            metrics[name] = {"points": len(items), "count": sum(p.count for p in items)}
        elif kind in ("gauge", "observable_gauge"):
            metrics[name] = {"points": len(items), "value": items[-1].value}
        else:
            metrics[name] = {"points": len(items), "total": sum(p.value for p in items)}
    quantiles = (0.5, 0.95, 0.99)
    if "http.server.request.duration" in points:
        latency_source = "http.server.request.duration (exponential histogram)"
        latency = histogram_quantiles(points["http.server.request.duration"], quantiles)
    else:
        latency_source = "server spans"
        latency = _span_quantiles(spans.server_seconds, quantiles)
    verified: Counter[str] = Counter()
    for point in points.get(catalog.OTP_VERIFICATIONS.name, []):
        attrs = point.attributes or {}
        verified[attrs.get(catalog.OTP_FAILURE_REASON, attrs.get(catalog.OTP_RESULT, "?"))] += point.value
    verifications_source = catalog.OTP_VERIFICATIONS.name
    if not points:  # metrics went to a collector: the client's own view is all there is here
        verified = Counter(traffic.verifications)
        verifications_source = "the HTTP responses"
    attempts = sum(verified.values())
    return {
        "seconds": round(seconds, 1),
        "requests": traffic.requests,
        "statuses": {str(k): v for k, v in sorted(traffic.statuses.items())},
        "client": {"sent": traffic.sent, "rate_limited": traffic.rate_limited, "unavailable": traffic.unavailable,
                   "verifications": dict(traffic.verifications)},
        "exporters": {s: telemetry.settings.exporter(s) for s in ("traces", "metrics", "logs")},
        "spans": dict(spans.by_kind),
        "logs": dict(logs.by_logger),
        "metrics": metrics,
        "latency_source": latency_source,
        "latency_ms": {f"p{round(q * 100)}": round(v * 1000, 2) for q, v in latency.items()},
        "verifications": dict(verified),
        "verifications_source": verifications_source,
        "otp_success_rate": round(verified.get("success", 0) / attempts, 3) if attempts else None,
    }


def print_summary(summary: dict[str, Any], out: IO[str]) -> None:
    w = out.write
    w(f"\n{SERVICE_NAME} demo: {summary['requests']} requests in {summary['seconds']} s  "
      f"(by status: {', '.join(f'{k}: {v}' for k, v in summary['statuses'].items())})\n")
    w(f"telemetry ({', '.join(f'{k}={v}' for k, v in summary['exporters'].items())}):\n")
    spans = summary["spans"]
    w(f"  spans        {sum(spans.values()):6d}  ({', '.join(f'{k} {v}' for k, v in sorted(spans.items()))})\n")
    logs = summary["logs"]
    w(f"  log records  {sum(logs.values()):6d}  ({', '.join(f'{k} {v}' for k, v in sorted(logs.items()))})\n")
    if summary["metrics"]:
        w("  metrics (data points; sum of counters, count of histograms, last gauge value):\n")
        width = max(len(name) for name in summary["metrics"])
        for name, figures in summary["metrics"].items():
            label, value = next((k, v) for k, v in figures.items() if k != "points")
            w(f"    {name:<{width}}  {figures['points']:4d} points  {label} {value:g}\n")
    else:
        w("  metrics      exported by the configured exporter (not countable here)\n")
    latency = summary["latency_ms"]
    if latency:
        w(f"  latency      p50 {latency['p50']} ms  p95 {latency['p95']} ms  p99 {latency['p99']} ms  "
          f"(from {summary['latency_source']})\n")
    verified = summary["verifications"]
    rate = summary["otp_success_rate"]
    if rate is not None:
        failures = ", ".join(f"{k} {v:g}" for k, v in sorted(verified.items()) if k != "success")
        w(f"  OTP success  {rate * 100:.1f}% of {sum(verified.values()):g} verifications (failures: {failures}; "
          f"from {summary['verifications_source']})\n")
    out.flush()


# --- the run -------------------------------------------------------------------------------


def _progress(out: IO[str], elapsed: float, duration: float, traffic: Traffic, note: str) -> None:
    width = 30
    done = min(width, int(width * elapsed / duration))
    line = (f"[{'#' * done}{'.' * (width - done)}] {elapsed:4.1f}/{duration:.0f}s  requests {traffic.requests:5d}  "
            f"sent {traffic.sent:4d}  429 {traffic.rate_limited:3d}  503 {traffic.unavailable:3d}  {note}")
    if out.isatty():
        out.write("\r" + line.ljust(110))
    else:
        out.write(line + "\n")
    out.flush()


def run_demo(duration: float = 15.0, redis_url: str | None = None, *, workers: int = 3, as_json: bool = False,
             out: IO[str] | None = None, progress: IO[str] | None = None) -> dict[str, Any]:
    out = out or sys.stdout
    progress = progress or sys.stderr
    explicit = any(os.environ.get(name) for name in _EXPORTER_VARIABLES)
    telemetry = kyo_otel.configure(service_name=SERVICE_NAME, **({} if explicit else {"profile": "memory"}))
    spans, logs = SpanTally(), LogTally()
    if telemetry.tracer_provider is not None:
        telemetry.tracer_provider.add_span_processor(spans)
    if telemetry.logger_provider is not None:
        telemetry.logger_provider.add_log_record_processor(logs)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # an access line per request adds nothing to the spans
    client = connect_redis(redis_url) if redis_url else embedded_redis()
    outbox = OutboxSender()
    # Instrumented by create_app: telemetry is configured above.
    app = create_app(client, ttl_seconds=DEMO_TTL, rate_limit=5, rate_window_seconds=60, sender=outbox)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server_thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    server_thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}"

    traffic = Traffic()
    start = time.monotonic()
    deadline = start + duration
    stop = threading.Event()

    def work(seed: int) -> None:
        driver = Driver(base_url, outbox, traffic, seed)
        while not stop.is_set() and time.monotonic() < deadline:
            driver.step()
        while driver.late and time.monotonic() < deadline + DEMO_TTL + 1:  # let scheduled expiries happen
            driver.verify_due()
            time.sleep(0.05)

    def flood() -> None:
        driver = Driver(base_url, outbox, traffic, seed - 1)
        for i in range(FLOOD_TENANTS):
            driver.send(f"flood-{i:03d}", driver.phone())

    seed = random.SystemRandom().getrandbits(32)  # fresh phone numbers on every run (a real Redis keeps state)
    threads = [threading.Thread(target=work, args=(seed + i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    events = [(0.35, "tenant flood", flood)]
    if redis_url:
        events.append((0.6, "Redis outage (CLIENT PAUSE 4 s)", lambda: connect_redis(redis_url).execute_command("CLIENT", "PAUSE", 4000, "ALL")))
    note = "traffic"
    try:
        while any(t.is_alive() for t in threads):
            elapsed = time.monotonic() - start
            while events and elapsed >= events[0][0] * duration:
                _, note, action = events.pop(0)
                threads.append(threading.Thread(target=action, daemon=True))
                threads[-1].start()
            _progress(progress, min(elapsed, duration), duration, traffic, note if elapsed < duration else "expiries")
            time.sleep(0.2 if progress.isatty() else 2.0)
    except KeyboardInterrupt:
        stop.set()
    finally:
        stop.set()
        for thread in threads:
            thread.join(DEMO_TTL + 5)
        _progress(progress, duration, duration, traffic, "done")
        if progress.isatty():
            progress.write("\n")
        server.shutdown()
        server_thread.join(5)
        server.server_close()
    # Before any flush: a flush collects the memory reader too, and DELTA points are collected once.
    summary = summarise(telemetry, spans, logs, traffic, time.monotonic() - start)
    print_summary(summary, out)
    if as_json:
        out.write(json.dumps(summary, separators=(",", ":")) + "\n")
        out.flush()
    kyo_otel.shutdown()
    return summary
