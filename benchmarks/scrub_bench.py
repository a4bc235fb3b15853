"""What scrubbing costs: per log record and per span, scrubbing off vs on, side by side.

    .venv/bin/python benchmarks/scrub_bench.py [--n 5000] [--rounds 7]

Each case runs the real pipeline pieces in this process, synchronously so that all the work is
on the measured thread: for logs, ``logger.info(...)`` through kyo's logging handler into a
LoggerProvider whose processor exports to an exporter that discards; for spans, a span started,
given the attributes the Flask or Redis instrumentation sets, and ended into the same kind of
exporter. "on" wraps that exporter in ``ScrubbingLogExporter`` / ``ScrubbingSpanExporter``, as
``configure()`` does. In production the scrubbing runs in the batch processor's export thread,
not the request thread; the "scrub() alone" rows time ``scrub()`` on already-built items, each
scrubbed once. Phone numbers, codes and request ids change from one item to the next, as in real
traffic (the scrubber memoises short texts: repeated values cost less).
Thread CPU time, best of ``--rounds`` rounds of ``--n`` items, in microseconds per item.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import (  # noqa: E402
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from kyo_otel.context import request_context  # noqa: E402
from kyo_otel.logs import KyoLoggingHandler  # noqa: E402
from kyo_otel.scrub import Scrubber, ScrubbingLogExporter, ScrubbingSpanExporter  # noqa: E402

RESOURCE = Resource({"service.name": "scrub-bench", "deployment.environment.name": "bench"})


class DiscardLogs(LogRecordExporter):
    def export(self, batch: Sequence) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class DiscardSpans(SpanExporter):
    def export(self, spans: Sequence) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _logger(name: str, exporter: LogRecordExporter) -> logging.Logger:
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(name)
    logger.handlers[:] = [KyoLoggingHandler(logger_provider=provider)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _raise() -> None:
    raise LookupError(f"no user with phone {_phone()}")


# Every item differs from the previous one (phone numbers, codes, request ids), as in real
# traffic: the scrubber's memo of short texts must not flatter the figures.
_SEQUENCE = itertools.count()


def _phone() -> str:
    return f"+8869{next(_SEQUENCE) % 100_000_000:08d}"


LOG_CASES: dict[str, Callable[[logging.Logger], None]] = {
    "log: plain message, extra=": lambda log: log.info("order looked up", extra={"order.id": 7, "items": 3}),
    "log: phone, code, email": lambda log: log.info(
        "sent code %06d to %s", next(_SEQUENCE) % 1_000_000, _phone(),
        extra={"email": f"user{next(_SEQUENCE)}@example.com", "channel": "sms"},
    ),
    "log: error with stack": lambda log: _log_error(log),
}


def _log_error(log: logging.Logger) -> None:
    try:
        _raise()
    except LookupError:
        log.exception("lookup failed")


HTTP_ATTRIBUTES = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "server.address": "localhost",
    "server.port": 8000,
    "url.path": "/otp/verify",
    "url.query": "phone=%2B886912345678&code=482913",
    "client.address": "127.0.0.1",
    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "network.protocol.version": "1.1",
    "http.route": "/otp/verify",
    "kyo.request.id": "4f1c2b7e9a0d4c3e8b6a5d4c3b2a1f0e",
    "kyo.tenant.id": "acme",
    "http.response.status_code": 200,
}
REDIS_ATTRIBUTES = {
    "db.statement": "SET ? ? ? ?",
    "db.redis.args_length": 5,
    "db.system": "redis",
    "db.redis.database_index": 0,
    "server.address": "127.0.0.1",
    "server.port": 6379,
    "network.transport": "tcp",
}
def _http_attributes() -> dict:
    n = next(_SEQUENCE)
    return {
        **HTTP_ATTRIBUTES,
        "url.query": f"phone=%2B8869{n % 100_000_000:08d}&code={n % 1_000_000:06d}",
        "kyo.request.id": f"{n:032x}",
        "client.address": f"10.0.{n % 250}.{n % 199}",
    }


SPAN_CASES = {
    "span: HTTP server": ("GET /otp/verify", SpanKind.SERVER, _http_attributes),
    "span: Redis client": ("SET", SpanKind.CLIENT, lambda: REDIS_ATTRIBUTES),
}


def _round(run: Callable[[], None], n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        run()
    return (time.thread_time() - start) / n * 1e6


def best_pair(off: Callable[[], None], on: Callable[[], None], n: int, rounds: int) -> tuple[float, float]:
    """Off and on in alternating rounds (machine noise hits both alike); best of each."""
    offs, ons = [], []
    for _ in range(rounds):
        offs.append(_round(off, n))
        ons.append(_round(on, n))
    return min(offs), min(ons)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="items per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    scrubber = Scrubber()
    rows: list[tuple[str, float, float]] = []

    with request_context(request_id="bench-request", tenant_id="acme"):
        off_log = _logger("bench.off", DiscardLogs())
        on_log = _logger("bench.on", ScrubbingLogExporter(DiscardLogs(), scrubber))
        for name, case in LOG_CASES.items():
            rows.append((name, *best_pair(lambda: case(off_log), lambda: case(on_log), args.n, args.rounds)))

    off_tracer = _tracer(DiscardSpans())
    on_tracer = _tracer(ScrubbingSpanExporter(DiscardSpans(), scrubber))
    for name, (span_name, kind, attributes) in SPAN_CASES.items():
        def run(tracer=off_tracer, span_name=span_name, kind=kind, attributes=attributes):
            tracer.start_span(span_name, kind=kind, attributes=attributes()).end()

        rows.append((name, *best_pair(run, lambda: run(on_tracer), args.n, args.rounds)))

    scrub_only = _scrub_only(scrubber, args.n, args.rounds)

    width = max(len(r[0]) for r in rows + scrub_only)
    print(f"{'per item, thread CPU':<{width}}  {'off (us)':>9}  {'on (us)':>9}  {'on/off':>7}  {'+us':>7}")
    for name, off, on in rows:
        print(f"{name:<{width}}  {off:9.2f}  {on:9.2f}  {on / off:7.2f}  {on - off:7.2f}")
    print()
    print(f"{'scrub() alone (export thread)':<{width}}  {'us':>9}")
    for name, cost, _ in scrub_only:
        print(f"{name:<{width}}  {cost:9.2f}")


def _tracer(exporter: SpanExporter):
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("bench")


def _scrub_only(scrubber: Scrubber, n: int, rounds: int) -> list[tuple[str, float, float]]:
    """``scrub()`` alone on distinct items (fresh phones, codes, ids), each scrubbed once."""
    log_exporter = ScrubbingLogExporter(DiscardLogs(), scrubber)
    span_exporter = ScrubbingSpanExporter(DiscardSpans(), scrubber)
    rows = []
    for name, case in LOG_CASES.items():
        logs = InMemoryLogRecordExporter()
        log = _logger("bench.collect", logs)
        with request_context(request_id="bench-request", tenant_id="acme"):
            for _ in range(n * rounds):
                case(log)
        items = logs.get_finished_logs()
        rows.append((name, _each_once(log_exporter.scrub, items, n), 0.0))
    for name, (span_name, kind, attributes) in SPAN_CASES.items():
        spans = InMemorySpanExporter()
        tracer = _tracer(spans)
        for _ in range(n * rounds):
            tracer.start_span(span_name, kind=kind, attributes=attributes()).end()
        rows.append((name, _each_once(span_exporter.scrub, spans.get_finished_spans(), n), 0.0))
    return rows


def _each_once(scrub: Callable[[object], object], items: Sequence[object], n: int) -> float:
    """Best per-item thread CPU time over chunks of ``n`` items, every item scrubbed once."""
    best_chunk = float("inf")
    for start in range(0, len(items), n):
        chunk = items[start : start + n]
        begin = time.thread_time()
        for item in chunk:
            scrub(item)
        best_chunk = min(best_chunk, (time.thread_time() - begin) / len(chunk) * 1e6)
    return best_chunk


if __name__ == "__main__":
    main()
