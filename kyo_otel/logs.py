"""The logger provider and the one bridge from stdlib ``logging`` to it.

Applications keep logging with ``logging.getLogger(__name__)``. ``configure()`` attaches exactly
one handler to the root logger (a second ``configure()`` finds it and adds none), never calls
``logging.basicConfig`` and leaves the application's own handlers alone.
"""

from __future__ import annotations

import logging

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from kyo_otel.config import Settings


class KyoLoggingHandler(LoggingHandler):
    """The OpenTelemetry logging bridge, marked so that kyo_otel can find its own handler."""

    kyo_otel_handler = True


def log_processor(settings: Settings, exporter: LogRecordExporter) -> LogRecordProcessor:
    if isinstance(exporter, InMemoryLogRecordExporter) or getattr(exporter, "synchronous", False):
        return SimpleLogRecordProcessor(exporter)
    return BatchLogRecordProcessor(
        exporter,
        max_queue_size=settings.log_queue_size,
        schedule_delay_millis=settings.batch_delay,
        max_export_batch_size=min(512, settings.log_queue_size),
        export_timeout_millis=settings.otlp_timeout * 1000,
    )


def build_logger_provider(settings: Settings, resource: Resource, exporter: LogRecordExporter) -> LoggerProvider:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(log_processor(settings, exporter))
    return provider


def kyo_handlers(logger: logging.Logger | None = None) -> list[logging.Handler]:
    logger = logger or logging.getLogger()
    return [h for h in logger.handlers if getattr(h, "kyo_otel_handler", False)]


def attach_handler(provider: LoggerProvider, level: str) -> KyoLoggingHandler:
    """Attach the bridge to the root logger, replacing a handler of ours left by an earlier call.

    The root logger's level is lowered to ``level`` when it is higher: otherwise stdlib drops
    INFO records before any handler sees them.
    """
    root = logging.getLogger()
    detach_handlers()
    handler = KyoLoggingHandler(level=logging.getLevelName(level), logger_provider=provider)
    root.addHandler(handler)
    if root.level != logging.NOTSET and root.level > handler.level:
        root.setLevel(handler.level)
    return handler


def detach_handlers() -> None:
    root = logging.getLogger()
    for handler in kyo_handlers(root):
        root.removeHandler(handler)
