"""The OTLP receiver the fault tests break: what it keeps, and its stop, restart, delay and error.

kyo_otel's own OTLP exporters and the SDK's providers (local to each test, not the process-wide
configuration) send to it over gRPC on 127.0.0.1.
"""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kyo_otel import exporters, resolve_settings
from kyo_otel.logs import KyoLoggingHandler
from kyo_otel.receiver import OtlpReceiver


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request):
    with OtlpReceiver(protocol=request.param) as running:
        yield running


def settings_for(receiver: OtlpReceiver, timeout: float = 2.0):
    return resolve_settings({"profile": "otlp", "otlp_endpoint": receiver.endpoint, "otlp_timeout": timeout,
                             "otlp_protocol": receiver.protocol}, env={})


def span_exporter(receiver, timeout=2.0):
    return exporters.otlp_span_exporter(settings_for(receiver, timeout))


def export_one_span(exporter, name="work", **attributes):
    """Make one span and hand it to ``exporter`` directly, for the export's result."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    with provider.get_tracer("receiver-test").start_as_current_span(name, attributes=attributes):
        pass
    return exporter.export(recorded.get_finished_spans())


def test_it_keeps_every_span_metric_point_and_log_record_it_receives(receiver):
    settings = settings_for(receiver)

    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporters.otlp_span_exporter(settings)))
    tracer = tracer_provider.get_tracer("receiver-test")
    for tenant in ("acme", "acme", "globex"):
        with tracer.start_as_current_span("POST /otp/send", attributes={"kyo.tenant.id": tenant}):
            pass

    reader = PeriodicExportingMetricReader(exporters.otlp_metric_exporter(settings), export_interval_millis=3_600_000)
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    meter = meter_provider.get_meter("receiver-test")
    sent = meter.create_counter("kyo.otp.sent")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    sent.add(2, {"kyo.tenant.id": "acme"})
    sent.add(1, {"kyo.tenant.id": "globex"})
    for seconds in (0.01, 0.02, 0.03):
        duration.record(seconds, {"http.route": "/otp/send"})
    meter_provider.force_flush()

    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporters.otlp_log_exporter(settings)))
    log = logging.getLogger("receiver-test")
    log.propagate = False
    handler = KyoLoggingHandler(logger_provider=logger_provider)
    log.addHandler(handler)
    try:
        log.warning("otp sent to %s", "+44*******99", extra={"kyo.tenant.id": "acme"})
    finally:
        log.removeHandler(handler)

    assert len(receiver.spans("POST /otp/send")) == 3
    assert len(receiver.spans(**{"kyo.tenant.id": "acme"})) == 2
    assert receiver.metric_total("kyo.otp.sent") == 3
    assert receiver.metric_total("kyo.otp.sent", **{"kyo.tenant.id": "acme"}) == 2
    assert receiver.metric_total("http.server.request.duration", **{"http.route": "/otp/send"}) == 3
    assert {p.temporality for p in receiver.metric_points("kyo.otp.sent")} == {"delta"}
    [record] = receiver.logs("otp sent to")
    assert (record.body, record.severity_text, record.attributes["kyo.tenant.id"]) == ("otp sent to +44*******99", "WARN", "acme")
    assert receiver.contains("+44*******99") and not receiver.contains("+447700900099")
    assert receiver.calls == {"traces": 3, "metrics": 1, "logs": 1}
    # The export requests themselves, one per call, as the protobuf messages the exporters sent.
    assert [type(r).__name__ for r in receiver.requests("metrics")] == ["ExportMetricsServiceRequest"]
    assert len(receiver.requests("traces")) == 3 and len(receiver.requests()) == 5
    [metric_request] = receiver.requests("metrics")
    assert {m.name for rm in metric_request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics} == {
        "kyo.otp.sent", "http.server.request.duration"}
    with pytest.raises(ValueError, match="traces, metrics, logs"):
        receiver.requests("spans")
    assert receiver.counts() == {"spans": 3, "points": 3, "logs": 1}
    receiver.clear()
    assert receiver.counts() == {"spans": 0, "points": 0, "logs": 0}


def test_a_stopped_receiver_refuses_exports_and_restarts_on_the_same_port(receiver):
    exporter = span_exporter(receiver, timeout=0.5)
    port = receiver.port
    receiver.stop()
    assert not receiver.running
    assert export_one_span(exporter, "while down") is SpanExportResult.FAILURE
    receiver.start()
    assert receiver.port == port
    assert export_one_span(exporter, "after return") is SpanExportResult.SUCCESS
    assert [s.name for s in receiver.spans()] == ["after return"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_receiver_can_be_pointed_at_before_it_starts(protocol):
    receiver = OtlpReceiver(protocol=protocol)
    exporter = span_exporter(receiver, timeout=0.5)
    assert export_one_span(exporter) is SpanExportResult.FAILURE
    with receiver:
        assert export_one_span(exporter) is SpanExportResult.SUCCESS
    assert receiver.counts()["spans"] == 1


def test_delay_holds_each_export_call_before_answering(receiver):
    receiver.delay = 0.6
    start = time.monotonic()
    assert export_one_span(span_exporter(receiver)) is SpanExportResult.SUCCESS
    assert time.monotonic() - start >= 0.6
    assert receiver.counts()["spans"] == 1


def test_error_mode_refuses_every_call_with_its_status_and_keeps_nothing(receiver):
    receiver.error = grpc.StatusCode.INVALID_ARGUMENT  # not retryable: the exporter gives up at once
    assert export_one_span(span_exporter(receiver)) is SpanExportResult.FAILURE
    assert receiver.refused["traces"] == 1

    receiver.error = grpc.StatusCode.UNAVAILABLE  # retryable: retried until the exporter's timeout
    assert export_one_span(span_exporter(receiver, timeout=1.5)) is SpanExportResult.FAILURE
    assert receiver.refused["traces"] >= 2
    assert receiver.counts()["spans"] == 0 and receiver.calls["traces"] == 0

    receiver.error = None
    assert export_one_span(span_exporter(receiver)) is SpanExportResult.SUCCESS


def test_wait_for_returns_what_the_predicate_found_or_its_falsy_value_at_the_deadline(receiver):
    assert receiver.wait_for(lambda: receiver.spans("never"), timeout=0.3) == []
    exporter = span_exporter(receiver)
    assert export_one_span(exporter, "arrives") is SpanExportResult.SUCCESS
    [span] = receiver.wait_for(lambda: receiver.spans("arrives"), timeout=5)
    assert len(span.trace_id) == 32 and span.parent_span_id == ""
