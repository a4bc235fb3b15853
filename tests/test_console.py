"""The console profile (environment=development), read from the stdout of a real process."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import textwrap

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from kyo_otel.console import ConsoleSpanExporter

APP = textwrap.dedent(
    """
    import logging, sys
    import redis
    from flask import Flask
    import kyo_otel

    telemetry = kyo_otel.configure(service_name="shop", environment="development")
    app = Flask("shop")
    log = logging.getLogger("shop.otp")
    client = redis.Redis.from_url(sys.argv[1])
    tracer = telemetry.tracer_provider.get_tracer("shop")

    @app.post("/otp/send")
    def send():
        with tracer.start_as_current_span("render sms"):
            client.set("otp:acme", "x", ex=60)
        kyo_otel.otp.sent("acme")
        log.warning("slow sms gateway")
        return {"status": "sent"}

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    kyo_otel.instrument_app(app, redis=client)
    web = app.test_client()
    web.post("/otp/send", headers={"X-Tenant-Id": "acme"})
    web.post("/otp/send", headers={"X-Tenant-Id": "acme"})
    web.get("/boom")
    web.get("/users/+886912345678/orders")
    telemetry.shutdown()
    """
)


def console_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "NO_COLOR"))}
    return {**env, **extra}


def run_app(redis_server, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", APP, redis_server.url], env=console_env(**env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_app_on_a_terminal(redis_server, **env: str) -> str:
    """The same app with its stdout on a pseudo-terminal, as in a developer's shell."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", APP, redis_server.url], env=console_env(**env), stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its side
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(30) == 0, process.stderr.read()
    return output.decode()


def name_column(line: str, name: str) -> int:
    return line.index(name)


def test_spans_are_one_line_each_indented_under_their_parent(redis_server):
    lines = run_app(redis_server).splitlines()
    span_lines = [line for line in lines if " span " in line]
    assert "url.path" not in span_lines[0], "a request that matched a route shows its http.route only"
    assert len(span_lines) == 8  # 2 x (request, render sms, SET) + the failing request + the unmatched one

    root, child, grandchild = span_lines[:3]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} span [0-9a-f]{8} +\d+\.\dms +POST /otp/send  http.route=/otp/send", root)
    assert "http.response.status_code=200" in root
    assert name_column(child, "render sms") == name_column(root, "POST /otp/send") + 2
    assert name_column(grandchild, "SET") == name_column(root, "POST /otp/send") + 4
    assert "db.statement=SET ?" in grandchild
    assert len({line.split()[2] for line in span_lines[:3]}) == 1, "one trace id per request"

    (boom,) = [line for line in span_lines if "GET /boom" in line]
    assert " ERR GET /boom" in boom and "exception.type=RuntimeError" in boom


def test_log_lines_carry_level_logger_message_and_trace(redis_server):
    lines = run_app(redis_server).splitlines()
    trace = next(line for line in lines if "POST /otp/send" in line).split()[2]
    warnings = [line for line in lines if "slow sms gateway" in line]
    assert len(warnings) == 2
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} log  [0-9a-f]{8} WARN  shop\.otp: slow sms gateway  ", warnings[0])
    assert any(line.split()[2] == trace for line in warnings)


def test_a_requests_log_lines_are_printed_with_its_spans_in_time_order(redis_server):
    """Spans and log records are exported in separate batches: a request's log lines came after
    the spans of the requests that followed it. Now each request's lines (spans and logs, one trace
    id in the third column) are together, and a log line comes after the span it was logged in."""
    lines = [line for line in run_app(redis_server).splitlines() if line.split()[1:2] in (["span"], ["log"])]
    traces = [line.split()[2] for line in lines]
    groups = [trace for index, trace in enumerate(traces) if index == 0 or traces[index - 1] != trace]
    assert len(groups) == len(set(groups)) == 4, "\n".join(lines)  # 2 sends, /boom, the unmatched path

    for trace in groups[:2]:
        request = [line for line in lines if line.split()[2] == trace]
        assert [line.split()[1] for line in request] == ["span", "span", "span", "log"], request
        assert "POST /otp/send" in request[0] and "slow sms gateway" in request[3]
    boom = [line for line in lines if line.split()[2] == groups[2]]
    assert "GET /boom" in boom[0] and any("ERROR" in line and "Exception on /boom" in line for line in boom[1:])


def test_a_request_that_matched_no_route_shows_its_scrubbed_path(redis_server):
    (unmatched,) = [line for line in run_app(redis_server).splitlines() if " span " in line and "404" in line]
    assert "url.path=/users/+886*******78/orders" in unmatched
    assert "912345678" not in unmatched


def test_metrics_are_a_compact_table(redis_server):
    output = run_app(redis_server)
    table = output[output.index("metrics @ ") :].splitlines()
    assert re.match(r"metrics @ \d\d:\d\d:\d\d$", table[0])
    rows = {line.split()[0]: line for line in table[1:] if line.startswith("  ") and not line.startswith("   ")}
    assert rows["kyo.otp.sent"].split()[1:] == ["kyo.tenant.id=acme", "+2", "otp"]
    assert re.search(r"count=2 mean=[\d.]+ms min=[\d.]+ms max=[\d.]+ms", output)
    assert rows["kyo.redis.health"].split()[1:] == ["1"]
    assert "{" not in "\n".join(table), "no JSON dumps, no UCUM braces"


def test_no_colours_when_not_a_terminal(redis_server):
    assert "\x1b[" not in run_app(redis_server)


def test_colours_on_a_terminal_unless_no_color_is_set(redis_server):
    coloured = run_app_on_a_terminal(redis_server)
    assert "\x1b[33mWARN \x1b[0m" in coloured  # warnings in yellow
    assert "\x1b[31mERR\x1b[0m" in coloured
    assert "\x1b[" not in run_app_on_a_terminal(redis_server, NO_COLOR="1")


def test_spans_whose_root_never_ends_are_printed_at_flush():
    """A child span is held for its root; at shutdown (or after ``hold`` seconds) it is printed anyway."""
    out = io.StringIO()
    exporter = ConsoleSpanExporter(out)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    root = tracer.start_span("long poll")
    with trace.use_span(root):
        with tracer.start_as_current_span("read"):
            pass
    assert out.getvalue() == ""  # waiting for its root
    exporter.force_flush()
    assert "read" in out.getvalue() and "long poll" not in out.getvalue()
    root.end()
    assert "long poll" in out.getvalue().splitlines()[-1]


def test_an_idle_level_at_zero_is_not_printed_at_every_interval():
    """An idle process printed ``kyo.tenants.active 0`` in a table of its own at every interval.
    A level (gauge, up-down counter) at 0 is shown when it falls to 0, and otherwise not."""
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from kyo_otel.console import ConsoleMetricExporter

    out = io.StringIO()
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    active = [0]
    provider.get_meter("t").create_observable_gauge("kyo.tenants.active", [lambda _: [Observation(active[0])]], unit="{tenant}")
    queued = provider.get_meter("t").create_up_down_counter("jobs.queued")

    def table() -> list[str]:
        out.seek(0)
        out.truncate()
        reader.force_flush()
        return [" ".join(line.split()) for line in out.getvalue().splitlines()[1:]]

    assert table() == []  # idle: no table at all
    assert table() == []
    active[0] = 2
    queued.add(1)
    assert table() == ["jobs.queued 1", "kyo.tenants.active 2 tenant"]
    assert table() == ["jobs.queued 1", "kyo.tenants.active 2 tenant"]  # a level that is not 0 stays in view
    active[0] = 0
    queued.add(-1)
    assert table() == ["jobs.queued 0", "kyo.tenants.active 0 tenant"]  # the fall to 0 is news
    assert table() == []  # idle again
    provider.shutdown()
