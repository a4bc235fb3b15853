"""The three set-ups the overhead benchmark compares, each built in its own process.

- ``bare``: the app without telemetry (``kyo_otel.otp.sent`` etc. are then no-ops, as in any
  process that never called ``configure()``).
- ``upstream``: what ``opentelemetry-instrument`` gives with the packages this project installs,
  written out as code: SDK providers with BatchSpanProcessor, BatchLogRecordProcessor and
  PeriodicExportingMetricReader, OTLP/gRPC exporters, SDK defaults otherwise (parent-based
  always-on sampling, trace-based exemplars, legacy HTTP semconv), Flask instrumentation with its
  metrics, Redis instrumentation, and the logging instrumentation, which in 0.66 attaches the
  SDK logging handler to the root logger.
- ``kyo``: ``kyo_otel.configure()`` in its production profile (OTLP), everything on, 100 %
  sampling.

Every variant logs at INFO (the root level the app runs with), so all three create the same log
records; only the telemetry differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

VARIANTS = ("bare", "upstream", "kyo")


class CapturingSender:
    """The app's SMS sender for benchmarks: does what the default sender does (log the masked
    number) and keeps the code, so that ``/otp/verify`` can be driven with correct codes."""

    def __init__(self) -> None:
        from sample_app.sms import LoggingSender

        self.codes: dict[str, str] = {}
        self._default = LoggingSender()

    def send(self, tenant: str, phone: str, code: str) -> None:
        self.codes[phone] = code
        self._default.send(tenant, phone, code)


def _upstream(app: Any, endpoint: str) -> tuple[Any, Any]:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "bench-upstream"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
    _logs.set_logger_provider(logger_provider)
    LoggingInstrumentor().instrument()
    FlaskInstrumentor().instrument_app(app)
    RedisInstrumentor().instrument()
    return tracer_provider, logger_provider


def _kyo(app: Any, client: Any, endpoint: str, **overrides: Any) -> tuple[Any, Any]:
    import kyo_otel

    settings = {"service_name": "bench-kyo", "environment": "production", "otlp_endpoint": endpoint,
                "sample_ratio": 1.0, "scrubbing": True}
    telemetry = kyo_otel.configure(app=app, redis=client, **{**settings, **overrides})
    return telemetry.tracer_provider, telemetry.logger_provider


def make_app(variant: str, redis_url: str, otlp_endpoint: str) -> tuple[Any, CapturingSender, Callable[[], None]]:
    """The app for one variant, its sender, and a function that waits until the spans and logs
    produced so far are exported (metrics keep their own export interval)."""
    import redis as redis_lib

    from sample_app import create_app

    # For finding where the time goes: "kyo,logs_exporter=none" (or "kyo,instrumentation=contrib")
    # passes settings to configure();
    # "kyo,-flask" / "kyo,-redis" then remove that instrumentation again, whoever makes the spans.
    variant, *options = variant.split(",")
    overrides = dict(option.split("=", 1) for option in options if "=" in option)
    removed = {option[1:] for option in options if option.startswith("-")}
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    logging.getLogger().setLevel(logging.INFO)
    client = redis_lib.Redis.from_url(redis_url)
    sender = CapturingSender()
    app = create_app(client, sender=sender)
    providers: tuple[Any, ...] = ()
    if variant == "upstream":
        providers = _upstream(app, otlp_endpoint)
    elif variant == "kyo":
        providers = _kyo(app, client, otlp_endpoint, **overrides)
    if "flask" in removed:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        from kyo_otel import flask_spans

        if not flask_spans.uninstrument(app):  # kyo_otel's server span, else the contrib one
            FlaskInstrumentor.uninstrument_app(app)
    if "redis" in removed:  # whoever makes the Redis spans: contrib, or kyo_otel's lean ones
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        from kyo_otel import redis_spans

        if RedisInstrumentor().is_instrumented_by_opentelemetry:
            RedisInstrumentor().uninstrument()
        redis_spans.uninstall()

    def flush() -> None:
        for provider in providers:
            if provider is not None:
                provider.force_flush()

    return app, sender, flush


def shutdown(variant: str) -> None:
    """Export what is left (metrics included) before the process ends."""
    variant = variant.split(",")[0]
    if variant == "kyo":
        import kyo_otel

        kyo_otel.shutdown()
    elif variant == "upstream":
        from opentelemetry import _logs, metrics, trace

        for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
            getattr(provider, "shutdown", lambda: None)()
