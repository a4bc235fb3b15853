"""kyo_otel's span encoder writes exactly the message the SDK's OTLP encoder builds."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace import set_span_in_context

from kyo_otel.otlp_wire import LogEncoder, SpanEncoder

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds


def _sent(encoder, items):
    """What the collector receives: the encoder's bytes, as the protobuf message."""
    message = ExportLogsServiceRequest if isinstance(encoder, LogEncoder) else ExportTraceServiceRequest
    return message.FromString(encoder.encode(items))


def _spans(record):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "wire-test", "process.pid": 42}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record(provider)
    provider.shutdown()
    return exporter.get_finished_spans()


def _assert_same(spans):
    expected = encode_spans(spans)
    actual = _sent(SpanEncoder(), spans)
    assert actual == expected
    # and a second batch through the same encoder (its caches warm) is still right
    encoder = SpanEncoder()
    _sent(encoder, spans)
    assert _sent(encoder, spans) == expected


def test_one_attribute_on_a_span_its_event_and_its_link_is_three_different_fields():
    """Span, event and link attributes are different fields on the wire: an attribute cached
    as one is not reused as another."""
    def record(provider):
        with provider.get_tracer("t").start_as_current_span("span", attributes={"db.system": "redis"}) as span:
            span.add_event("retry", {"db.system": "redis"})
            span.add_link(SpanContext(0x1234, 0x5678, is_remote=True), {"db.system": "redis"})

    _assert_same(_spans(record))


def test_a_request_trace_with_redis_children_events_links_and_errors():
    def record(provider):
        server = provider.get_tracer("opentelemetry.instrumentation.flask", "0.66b1", schema_url="https://opentelemetry.io/schemas/1.11.0")
        redis = provider.get_tracer("opentelemetry.instrumentation.redis")
        remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x")]))
        attributes = {"http.request.method": "POST", "url.path": "/otp/send", "http.route": "/otp/send", "server.port": 8000,
                      "http.response.status_code": 202, "user_agent.synthetic": False, "ratio": 0.25, "negative": -3}
        with server.start_as_current_span("POST /otp/send", context=set_span_in_context(NonRecordingSpan(remote)),
                                          kind=SpanKind.SERVER, attributes=attributes):
            for statement in ("INCR ?", "SET ? ? ? ?", "DEL ?"):
                with redis.start_as_current_span(statement.split()[0], kind=SpanKind.CLIENT,
                                                 attributes={"db.system": "redis", "db.statement": statement}):
                    pass
            with redis.start_as_current_span("failing", links=[Link(remote, {"link.kind": "retry"})]) as span:
                span.add_event("retry", {"attempt": 2, "codes": ("a", "b")})
                span.set_attribute("tags", ["x", "y"])
                span.set_attribute("flags", [True, False])
                span.set_status(Status(StatusCode.ERROR, "redis unreachable"))
                span.record_exception(ConnectionError("refused"))
        with server.start_as_current_span("root, no parent, unicode ☎", attributes={"note": "é" * 300}):
            pass

    _assert_same(_spans(record))


def test_an_empty_batch():
    assert _sent(SpanEncoder(), []) == encode_spans([])


scalars = st.one_of(
    st.text(max_size=40), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False), st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(attributes=st.dictionaries(st.text(min_size=1, max_size=20), scalars, max_size=8), name=st.text(max_size=30))
def test_any_attributes_encode_as_the_sdk_encodes_them(attributes, name):
    def record(provider):
        with provider.get_tracer("t").start_as_current_span(name, attributes=attributes):
            pass

    _assert_same(_spans(record))


def _log_records(emit):
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource({"service.name": "wire-test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    emit(provider)
    provider.shutdown()
    return exporter.get_finished_logs()


def test_log_records_through_the_logging_bridge_encode_as_the_sdk_encodes_them():
    def emit(provider):
        log = logging.getLogger("wire-test")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        handler = LoggingHandler(logger_provider=provider)
        log.addHandler(handler)
        try:
            log.warning("plain %s", "text")
            log.info("with attributes", extra={"tenant": "acme", "attempt": 2, "ok": True, "ratio": 0.5, "tags": ["a"]})
            tracer = TracerProvider().get_tracer("t")
            with tracer.start_as_current_span("request"):
                log.error("inside a span")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        finally:
            log.removeHandler(handler)
        provider.get_logger("events").emit(body={"structured": 1, "list": [1, 2]}, event_name="otp.sent")
        provider.get_logger("events").emit(body=None)

    records = _log_records(emit)
    assert len(records) == 6
    encoder = LogEncoder()
    assert _sent(encoder, records) == encode_logs(records)
    assert _sent(encoder, records) == encode_logs(records)  # its caches warm


# -- scrubbing while encoding: the bytes of the scrubbing exporters' copies ---------------------

SENSITIVE = {
    "enduser.phone": "+886912345678",
    "otp.code": "123456",
    "message": "code 654321 sent to +15551234567 and ops@example.com",
    "url.full": "https://api.example.com/otp?phone=%2B886912345678&lang=en",
    "db.statement": "SET ? ?",
    "http.route": "/otp/send",
    "attempt": 2,
    "codes": ("111111", "x"),
    # keys built from data, two of them masked alike (the second gets "#2")
    "sent.+886912345678": True,
    "sent.+886913345678": False,
}


def _scrubbed_twice(items, encoder_class, exporter_class, encode):
    """What the fused encoder sends, and the SDK encoding of the scrubbing exporter's copies;
    each twice through one encoder, so the cached path is compared too."""
    from kyo_otel.scrub import Scrubber

    scrubber = Scrubber()
    copies = [exporter_class(None, scrubber).scrub(item) for item in items]
    encoder = encoder_class(scrubber)
    first = _sent(encoder, items)
    return first, _sent(encoder, items), encode(copies)


def test_spans_scrubbed_while_encoded_are_the_scrubbed_copies_bytes():
    from kyo_otel.scrub import ScrubbingSpanExporter

    def record(provider):
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("POST /otp/send +886912345678", attributes=SENSITIVE) as span:
            span.add_event("sms sent to +15551234567", {"to": "+15551234567", "otp": "987654"})
            span.set_status(Status(StatusCode.ERROR, "rejected ops@example.com"))

    first, again, expected = _scrubbed_twice(_spans(record), SpanEncoder, ScrubbingSpanExporter, encode_spans)
    assert first == again == expected
    wire = first.SerializeToString()
    for raw in (b"912345678", b"913345678", b"123456", b"654321", b"5551234567", b"ops@example.com", b"987654"):
        assert raw not in wire


@settings(max_examples=60, deadline=None)
@given(attributes=st.dictionaries(st.sampled_from([*SENSITIVE, "note", "user.email", "phone", "cc.alice@example.com"]), scalars | st.sampled_from(list(SENSITIVE.values())), max_size=8))
def test_any_attributes_scrubbed_while_encoded_match_the_scrubbing_exporter(attributes):
    from kyo_otel.scrub import ScrubbingSpanExporter

    def record(provider):
        with provider.get_tracer("t").start_as_current_span("span", attributes=attributes):
            pass

    first, again, expected = _scrubbed_twice(_spans(record), SpanEncoder, ScrubbingSpanExporter, encode_spans)
    assert first == again == expected


def test_log_records_scrubbed_while_encoded_are_the_scrubbed_copies_bytes():
    from kyo_otel.scrub import ScrubbingLogExporter

    def emit(provider):
        logger = provider.get_logger("sms")
        logger.emit(body="sms to +886912345678: code 123456", attributes={"phone": "+886912345678", "tenant.id": "acme"})
        logger.emit(body={"to": "+15551234567", "n": 1}, attributes={"attempt": 1})
        logger.emit(body="lookup", attributes={"ops@example.com": 1}, event_name="otp.sent.+886912345678")

    first, again, expected = _scrubbed_twice(_log_records(emit), LogEncoder, ScrubbingLogExporter, encode_logs)
    assert first == again == expected
    assert b"912345678" not in first.SerializeToString() and b"123456" not in first.SerializeToString()
    assert b"ops@example.com" not in first.SerializeToString()


def test_a_record_that_cannot_be_scrubbed_is_dropped_not_sent(caplog):
    """Fail closed, as the scrubbing exporters do: the other records still go."""
    from kyo_otel.scrub import Scrubber

    def broken(key, value):
        if value == "boom":
            raise RuntimeError("callback failed")
        return value

    def record(provider):
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("kept", attributes={"note": "fine"}):
            pass
        with tracer.start_as_current_span("dropped", attributes={"note": "boom"}):
            pass

    with caplog.at_level(logging.WARNING, logger="kyo_otel.scrub"):
        request = _sent(SpanEncoder(Scrubber(callback=broken)), _spans(record))
    names = [span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert names == ["kept"]
    assert "could not scrub or encode a traces record" in caplog.text


def test_a_record_that_cannot_be_encoded_costs_only_itself(caplog):
    """Without scrubbing too: a body with a lone surrogate (text no UTF-8 can carry) is dropped
    and counted; the batch's other records go."""
    def emit(provider):
        logger = provider.get_logger("wire-test")
        for body in ("before", "bad \udc80 body", "after"):
            logger.emit(body=body)

    with caplog.at_level(logging.WARNING, logger="kyo_otel.scrub"):
        request = _sent(LogEncoder(), _log_records(emit))
    bodies = [r.body.string_value for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert bodies == ["before", "after"]
    assert "could not scrub or encode a logs record" in caplog.text


def test_kyo_lean_spans_encode_as_the_sdk_encodes_them():
    """kyo_otel's own spans are read field by field (no properties): same bytes."""
    from kyo_otel.spans import LeanTracer

    def record(provider):
        tracer = LeanTracer(provider.get_tracer("kyo_otel.flask", "1.0", schema_url="https://opentelemetry.io/schemas/1.21.0"))
        server = tracer.start_span("POST /otp/send", None, SpanKind.SERVER, {"http.request.method": "POST", "server.port": 80})
        child = tracer.start_span("SET", set_span_in_context(server), SpanKind.CLIENT, {"db.statement": "SET ? ?"})
        child.record_exception(ValueError("refused"))
        child.add_link(SpanContext(0x1234, 0x5678, is_remote=True), {"link.kind": "retry"})
        child.set_status(Status(StatusCode.ERROR, "redis unreachable"))
        child.end()
        server.set_trusted_attributes({"http.response.status_code": 200, "http.route": "/otp/send"})
        server.set_status(Status(StatusCode.OK))
        server.end()
        tracer.start_span("plain", None, SpanKind.INTERNAL, None).end()

    spans = _spans(record)
    assert [type(span).__name__ for span in spans] == ["LeanSpan"] * 3
    _assert_same(spans)


def test_equal_sequences_of_other_types_are_not_taken_for_one_another():
    """``(True,) == (1,) == (1.0,)`` in Python, but they are three different arrays on the wire:
    a phone number held as an int is masked, the same number as a float is not."""
    from kyo_otel.scrub import ScrubbingSpanExporter

    def record(provider):
        tracer = provider.get_tracer("t")
        for values in ((True, False), (1, 0), (1.0, 0.0), (912345678.0,), (912345678,)):
            with tracer.start_as_current_span("span", attributes={"flags": values, "user.phone": values}):
                pass

    spans = _spans(record)
    _assert_same(spans)
    first, again, expected = _scrubbed_twice(spans, SpanEncoder, ScrubbingSpanExporter, encode_spans)
    assert first == again == expected
