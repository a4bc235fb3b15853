"""The core, end to end in the memory profile: a Flask app with a real Redis, read back through
the ``kyo_telemetry`` fixture."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask, jsonify, request

import kyo_otel

ROOT = Path(__file__).resolve().parents[1]


def make_app(redis_client) -> Flask:
    app = Flask("shop")
    log = logging.getLogger("shop.otp")

    @app.post("/otp/send")
    def send():
        tenant = request.headers.get("X-Tenant-Id")
        redis_client.set(f"otp:{tenant}", "123456", ex=60)
        kyo_otel.otp.sent(tenant)
        log.info("otp sent")
        return jsonify(status="sent")

    @app.get("/users/<user_id>")
    def user(user_id):
        return jsonify(found=bool(redis_client.exists(f"user:{user_id}"))), 404

    kyo_otel.instrument_app(app, redis=redis_client)
    return app


@pytest.fixture
def app(kyo_telemetry, redis_client):
    return make_app(redis_client)


def test_a_request_gives_a_server_span_a_redis_span_a_latency_point_and_a_correlated_log(app, kyo_telemetry):
    response = app.test_client().post("/otp/send", headers={"X-Tenant-Id": "acme"})
    assert response.status_code == 200

    server = kyo_telemetry.span("POST /otp/send")
    assert server.kind.name == "SERVER"
    assert server.attributes["http.route"] == "/otp/send"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == "/otp/send"
    assert server.attributes["http.response.status_code"] == 200

    redis_span = kyo_telemetry.span("SET")
    assert redis_span.kind.name == "CLIENT"
    assert redis_span.parent.span_id == server.context.span_id
    assert "123456" not in str(dict(redis_span.attributes)), "the statement is sanitized: no OTP code"

    latency = kyo_telemetry.metric("http.server.request.duration", http_route="/otp/send", http_request_method="POST")
    assert latency.count == 1 and latency.min > 0
    assert kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="acme").value == 1

    (log,) = kyo_telemetry.logs(level="INFO", message="otp sent")
    assert (log.trace_id, log.span_id) == (server.context.trace_id, server.context.span_id)


def test_metrics_and_span_names_use_route_templates_not_raw_paths(app, kyo_telemetry):
    client = app.test_client()
    for phone in ("+15551230001", "+15551230002"):
        client.get(f"/users/{phone}")
    for probe in ("/wp-admin", "/.env", "/users"):
        assert client.get(probe).status_code == 404

    assert len(kyo_telemetry.spans("GET /users/<user_id>")) == 2
    assert len(kyo_telemetry.spans("GET")) == 3  # unmatched requests are named by method only
    routes = {p.attributes["http.route"] for p in kyo_telemetry.metric_points("http.server.request.duration")}
    assert routes == {"/users/<user_id>", "(unmatched)"}
    assert kyo_telemetry.metric("kyo.http.server.errors", http_route="(unmatched)", error_type="ClientError").value == 3
    metric_text = str(kyo_telemetry.metric_points("http.server.request.duration"))
    assert "+1555123" not in metric_text and "wp-admin" not in metric_text
    assert not any("+1555123" in span.name for span in kyo_telemetry.spans())


def test_a_flood_of_tenant_ids_is_bounded_by_the_cardinality_cap(app, kyo_telemetry):
    assert kyo_telemetry.handle.settings.tenant_cardinality_cap == 100
    tenants = [f"t-{random.getrandbits(64):016x}" for _ in range(1000)]
    for tenant in tenants:
        kyo_otel.otp.sent(tenant)

    series = kyo_telemetry.metric_points("kyo.otp.sent")
    assert len(series) <= 101
    assert kyo_telemetry.metric("kyo.otp.sent").value == 1000, "no measurement is lost, only folded"
    overflow = kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="(overflow)").value
    assert overflow == 1000 - (len(series) - 1)
    assert kyo_telemetry.metric("kyo.telemetry.cardinality_overflow", kyo_metric_name="kyo.otp.sent").value == overflow
    assert kyo_telemetry.logs(level="WARNING", contains="reached its cap of 100 distinct tenant ids")


BROKEN_EXPORTERS = textwrap.dedent(
    """
    import logging, sys
    import redis
    from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from kyo_otel.testing import capture
    from tests.test_core_memory import make_app

    class Broken:
        def export(self, batch):
            raise ConnectionError("collector is on fire")
        def shutdown(self):
            pass
        def force_flush(self, timeout_millis=30000):
            return True

    captured = capture(service_name="shop")
    captured.handle.tracer_provider.add_span_processor(SimpleSpanProcessor(Broken()))
    captured.handle.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(Broken()))
    app = make_app(redis.Redis.from_url(sys.argv[1]))
    statuses = [app.test_client().post("/otp/send", headers={"X-Tenant-Id": "acme"}).status_code for _ in range(3)]
    print("statuses", statuses)
    print("spans", len(captured.spans("POST /otp/send")))
    print("logs", len(captured.logs(message="otp sent")))
    print("sent", captured.metric("kyo.otp.sent").value)
    print("errors", sorted({(log.logger, log.message) for log in captured.logs(level="ERROR")}))
    """
)


def test_recording_survives_an_exporter_that_raises(redis_client, redis_server):
    """An exporter that raises on every call (next to the memory ones) breaks no request and no
    other signal. In a subprocess: a processor cannot be removed from a provider again."""
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_EXPORTERS, redis_server.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["statuses [200, 200, 200]", "spans 3", "logs 3", "sent 3"]
    # The failure is reported, as an ERROR record of the SDK's exporting logger, not swallowed.
    assert "errors [('opentelemetry.sdk.trace.export'," in result.stdout
