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

import copy
import logging
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from kyo_otel._sdk import is_on
from kyo_otel.audit import AUDIT_ATTRIBUTE
from kyo_otel.config import Settings
from kyo_otel.context import add_correlation

SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # OpenTelemetry's names for two levels
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
"""Terminal escape sequences: CSI (colours, ``\x1b[33m``), OSC (titles, links), the two-byte ones."""


def plain_text(text: str) -> str:
    """``text`` without terminal escape sequences: werkzeug colours its request lines (``\x1b[33m``
    for a 404), which are no part of the message in CloudWatch Logs or a JSON line. The check for
    ESC comes first, so a record without any costs one ``in``."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def __getattr__(name: str) -> Any:
    """``KyoLoggingHandler`` and ``BatchQueue`` live in ``kyo_otel._sdk`` (fast paths
    ``log-handler``, ``log-direct-queue``); importable from here as before."""
    if name == "KyoLoggingHandler":
        from kyo_otel._sdk.log_handler import KyoLoggingHandler

        return KyoLoggingHandler
    if name in ("BatchQueue", "batch_queue"):
        from kyo_otel._sdk import log_queue

        return getattr(log_queue, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def emit(provider: LoggerProvider, logger_name: str, record: LogRecord) -> None:
    """Emit an OpenTelemetry log record, past stdlib logging (audit records): straight into kyo's
    batch queue while it is the only processor (fast path ``log-direct-queue``), else through
    the SDK logger."""
    from kyo_otel._sdk.log_queue import emit as emit_direct

    emit_direct(provider, logger_name, record)


class ScrubbedErrors(logging.Handler):
    """``handleError`` with the scrubber's text rules (``_scrub``, set by the handler)."""

    _scrub: Callable[[str], str] | None = None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """As ``Handler.handleError`` (``--- Logging error ---``, the traceback, the message and
        its arguments on stderr, when ``logging.raiseExceptions``), scrubbed: the arguments of a
        malformed call (``log.info("%d sent to %s", "one", phone)``) are the record's data, and
        stderr goes to the container's log group too."""
        if self._scrub is None:
            super().handleError(record)
            return
        if not logging.raiseExceptions or sys.stderr is None:
            return
        try:
            failure = "".join(traceback.format_exception(*sys.exc_info()))
            where = f"Logged from file {record.pathname}, line {record.lineno}\n"
            text = f"--- Logging error ---\n{failure}{where}Message: {record.msg!r}\nArguments: {record.args!r}\n"
            sys.stderr.write(self._scrub(text))
        except Exception:  # as stdlib: nothing more to do if stderr itself fails
            pass


class CorrelatingHandler(ScrubbedErrors, LoggingHandler):
    """The bridge while fast path ``log-handler`` is off: the contrib handler as it is, each
    record given the request's correlation fields (X-Ray trace id, request id, tenant id) and
    stripped of the audit marker, on a copy (the application's other handlers see the record
    as logged)."""

    kyo_otel_handler = True

    def __init__(self, *args: Any, direct: Any = None, scrub: Callable[[str], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scrub = scrub

    def emit(self, record: logging.LogRecord) -> None:
        try:
            copied = copy.copy(record)
            fields = copied.__dict__
            fields.pop(AUDIT_ATTRIBUTE, None)
            correlation: dict[str, Any] = {}
            add_correlation(correlation)
            for key, value in correlation.items():
                fields.setdefault(key, value)
            message = copied.getMessage()
            if "\x1b" in message:  # werkzeug's colours: no part of the message once exported
                copied.msg, copied.args = plain_text(message), None
        except Exception:
            self.handleError(record)
            return
        super().emit(copied)


def log_processor(settings: Settings, exporter: LogRecordExporter) -> LogRecordProcessor:
    if isinstance(exporter, InMemoryLogRecordExporter) or getattr(exporter, "synchronous", False):
        return SimpleLogRecordProcessor(exporter)
    from kyo_otel import drops

    return drops.counted_processor(
        BatchLogRecordProcessor,
        exporter,
        "logs",
        max_queue_size=settings.log_queue_size,
        schedule_delay_millis=settings.batch_delay,
        max_export_batch_size=min(settings.log_export_batch_size, settings.log_queue_size),
        export_timeout_millis=settings.otlp_timeout * 1000,
    )


def build_logger_provider(settings: Settings, resource: Resource, exporter: LogRecordExporter, **kwargs: Any) -> LoggerProvider:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False, **kwargs)
    processor = log_processor(settings, exporter)
    provider.add_log_record_processor(processor)
    from kyo_otel._sdk.log_queue import direct_queue, set_direct_queue

    set_direct_queue(provider, direct_queue(provider, processor) if isinstance(processor, BatchLogRecordProcessor) else None)
    return provider


def kyo_handlers(logger: logging.Logger | None = None) -> list[logging.Handler]:
    logger = logger or logging.getLogger()
    return [h for h in logger.handlers if getattr(h, "kyo_otel_handler", False)]


def attach_handler(provider: LoggerProvider, level: str, scrub: Callable[[str], str] | None = None) -> logging.Handler:
    """Attach the bridge to the root logger, replacing a handler of ours left by an earlier call.

    The root logger's level is lowered to ``level`` when it is higher: otherwise stdlib drops
    INFO records before any handler sees them.
    """
    root = logging.getLogger()
    detach_handlers()
    from kyo_otel._sdk.log_queue import batch_queue

    if is_on("log-handler"):
        from kyo_otel._sdk.log_handler import KyoLoggingHandler

        handler: logging.Handler = KyoLoggingHandler(
            level=logging.getLevelName(level), logger_provider=provider, direct=batch_queue(provider), scrub=scrub
        )
    else:
        handler = CorrelatingHandler(level=logging.getLevelName(level), logger_provider=provider, scrub=scrub)
    root.addHandler(handler)
    if root.level != logging.NOTSET and root.level > handler.level:
        root.setLevel(handler.level)
    return handler


def detach_handlers() -> None:
    root = logging.getLogger()
    for handler in kyo_handlers(root):
        root.removeHandler(handler)
