"""The logger provider and the one bridge from stdlib ``logging`` to it.

Applications keep logging with ``logging.getLogger(__name__)``. ``configure()`` attaches exactly
one handler to the root logger (a second ``configure()`` finds it and adds none), never calls
``logging.basicConfig`` and leaves the application's own handlers alone.

Every record carries timestamp, severity, logger (the scope name), message (the body), service
and environment (the resource), trace and span ids (the record's fields), and as attributes the
X-Ray form of the trace id, the request id, the tenant id (``kyo_otel.context``) and whatever was
passed with ``extra=``. Error records get ``exception.type``, ``exception.message`` and
``exception.stacktrace`` from the OpenTelemetry handler.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from kyo_otel.audit import AUDIT_ATTRIBUTE
from kyo_otel.config import Settings
from kyo_otel.context import add_correlation


class KyoLoggingHandler(LoggingHandler):
    """The OpenTelemetry logging bridge with the request context added to every record.

    Marked so that kyo_otel can find its own handler. An application record never carries the
    audit marker, even when ``extra=`` tries to set it: only ``kyo_otel.audit()`` writes audit
    records.
    """

    kyo_otel_handler = True

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, Any], str | None]:
        attributes, event_name = super()._get_attributes(record)
        attributes.pop(AUDIT_ATTRIBUTE, None)
        add_correlation(attributes)
        return attributes, event_name


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
