"""kyo_otel.runtime_context: the OpenTelemetry context calls of the request path, each in one
step, give what the API's functions give."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags, TraceState

from kyo_otel import runtime_context

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds


def test_the_current_span_and_context_are_the_apis():
    tracer = TracerProvider().get_tracer("t")
    assert runtime_context.current_span() is trace.get_current_span() is INVALID_SPAN
    with tracer.start_as_current_span("outer") as outer:
        assert runtime_context.current_span() is trace.get_current_span() is outer
        assert runtime_context.current_context() is context_api.get_current()
        inner = tracer.start_span("inner")
        context = runtime_context.with_span(inner)
        assert context == trace.set_span_in_context(inner) and type(context) is context_api.Context
        assert runtime_context.current_span(context) is trace.get_current_span(context) is inner
        token = runtime_context.attach(context)
        assert trace.get_current_span() is inner
        runtime_context.detach(token)
        assert trace.get_current_span() is outer
    # A value under the span key that is not a span is no span, as for the API.
    odd = context_api.set_value("current-span", "not a span")
    assert runtime_context.current_span(odd) is trace.get_current_span(odd)


def test_suppression_is_seen_as_the_instrumentations_see_it():
    assert runtime_context.instrumentation_enabled() is is_instrumentation_enabled() is True
    with suppress_instrumentation():
        assert runtime_context.instrumentation_enabled() is is_instrumentation_enabled() is False
    token = context_api.attach(context_api.set_value("suppress_instrumentation", True))  # the older key
    try:
        assert runtime_context.instrumentation_enabled() is is_instrumentation_enabled() is False
    finally:
        context_api.detach(token)


def test_a_failed_detach_is_logged_as_the_api_logs_it(caplog):
    token = runtime_context.attach(context_api.Context())
    runtime_context.detach(token)
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        runtime_context.detach(token)  # used twice
    assert [r.getMessage() for r in caplog.records] == ["Failed to detach context"]


def test_span_context_fields_are_its_properties():
    for context in (
        SpanContext(0x1234, 0x56, is_remote=True, trace_flags=TraceFlags(3), trace_state=TraceState([("k", "v")])),
        SpanContext(0, 0, is_remote=False),
        NonRecordingSpan(SpanContext(7, 8, False, TraceFlags(1))).get_span_context(),
    ):
        assert runtime_context.span_context_fields(context) == (
            context.trace_id, context.span_id, context.is_remote, context.trace_flags, context.trace_state, context.is_valid
        )
