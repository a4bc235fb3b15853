"""The tracer provider: sampler, propagators and span processors for one profile."""

from __future__ import annotations

from typing import Any

from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from kyo_otel.config import Settings
from kyo_otel import drops
from kyo_otel._sdk.span_processors import multi_span_processor


def build_sampler(settings: Settings) -> Sampler:
    """The OTEL_TRACES_SAMPLER names, with the ratio from OTEL_TRACES_SAMPLER_ARG."""
    root = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        # A ratio of 1 keeps everything: always_on decides the same without the arithmetic.
        "traceidratio": ALWAYS_ON if settings.sample_ratio >= 1.0 else TraceIdRatioBased(settings.sample_ratio),
    }
    name = settings.sampler
    if name.startswith("parentbased_"):
        return ParentBased(root[name.removeprefix("parentbased_")])
    return root[name]


def install_propagators() -> None:
    """W3C tracecontext and baggage, plus X-Ray's header for calls through AWS load balancers."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator(), AwsXRayPropagator()])
    )


def span_processor(settings: Settings, exporter: SpanExporter) -> SpanProcessor:
    """Batch export off the request thread; tests (memory) see spans as soon as they end."""
    if isinstance(exporter, InMemorySpanExporter) or getattr(exporter, "synchronous", False):
        return SimpleSpanProcessor(exporter)
    return drops.counted_processor(
        BatchSpanProcessor,
        exporter,
        "traces",
        max_queue_size=settings.span_queue_size,
        schedule_delay_millis=settings.batch_delay,
        max_export_batch_size=min(settings.span_export_batch_size, settings.span_queue_size),
        export_timeout_millis=settings.otlp_timeout * 1000,
    )


def build_tracer_provider(settings: Settings, resource: Resource, exporter: SpanExporter, **kwargs: Any) -> TracerProvider:
    kwargs.setdefault("active_span_processor", multi_span_processor())
    provider = TracerProvider(resource=resource, sampler=build_sampler(settings), shutdown_on_exit=False, **kwargs)
    provider.add_span_processor(span_processor(settings, exporter))
    return provider
