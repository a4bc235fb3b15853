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
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber, get_logger
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.context import Context
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler

try:  # the record's own attributes, which the OpenTelemetry handler leaves out
    from opentelemetry.instrumentation.logging.handler import _RESERVED_ATTRS
except ImportError:  # another layout: its _get_attributes picks them
    _RESERVED_ATTRS = None
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceFlags

from kyo_otel.audit import AUDIT_ATTRIBUTE
from kyo_otel.config import Settings
from kyo_otel.context import add_correlation
from kyo_otel.runtime_context import current_span, span_context_fields

_PRIMITIVE = (str, bool, int, float)
_PRIMITIVE_TYPES = frozenset(_PRIMITIVE)
_EVENT_NAME_KEYS = frozenset({"otel.event.name", "event.name"})  # the OpenTelemetry handler's, popped by it
SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # OpenTelemetry's names for two levels
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
"""Terminal escape sequences: CSI (colours, ``\x1b[33m``), OSC (titles, links), the two-byte ones."""
_NO_CONTEXT = Context()
_RECORD_CONTEXT = Context({"kyo_otel.log_record": True})
"""The context of records built by the handler: their ids are set from the span already."""


_SEVERITIES: dict[int, SeverityNumber] = {}


def plain_text(text: str) -> str:
    """``text`` without terminal escape sequences: werkzeug colours its request lines (``\x1b[33m``
    for a 404), which are no part of the message in CloudWatch Logs or a JSON line. The check for
    ESC comes first, so a record without any costs one ``in``."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def _severity(levelno: int) -> SeverityNumber:
    """stdlib level -> OpenTelemetry severity, as the OpenTelemetry handler maps it (memoized)."""
    severity = _SEVERITIES.get(levelno)
    if severity is None:
        severity = _SEVERITIES[levelno] = std_to_otel(levelno)
    return severity


def _clean(attributes: dict[str, Any]) -> None:
    """Make attribute values exportable in place, as the SDK's bounded attributes would."""
    if _PRIMITIVE_TYPES.issuperset(map(type, attributes.values())):
        return  # the usual case, told without a Python loop
    for key, value in attributes.items():
        if type(value) not in _PRIMITIVE:
            attributes[key] = _clean_attribute_value(value, None)


def _sdk_readable(record: LogRecord, resource: Any, scope: Any) -> ReadableLogRecord:
    return ReadableLogRecord(log_record=record, resource=resource, instrumentation_scope=scope)


def _sdk_api_record(fields: dict[str, Any]) -> LogRecord:
    return LogRecord(**fields)


# The lean builders make an instance holding the fields as its attributes, without running
# ``__init__`` (whose work, for the records the handler builds, is only these assignments).


def _lean_readable(record: LogRecord, resource: Any, scope: Any) -> ReadableLogRecord:
    readable = ReadableLogRecord.__new__(ReadableLogRecord)
    object.__setattr__(readable, "__dict__", {"log_record": record, "resource": resource, "instrumentation_scope": scope, "limits": None})
    return readable


def _lean_api_record(fields: dict[str, Any]) -> LogRecord:
    fields["exception"] = None
    record = LogRecord.__new__(LogRecord)
    object.__setattr__(record, "__dict__", fields)
    return record


def _lean_records_match() -> bool:
    """Whether records built without their constructors are, on this SDK, the same objects the
    constructors build (same class, same attributes)."""
    fields = {"timestamp": 1, "observed_timestamp": 2, "context": _RECORD_CONTEXT, "trace_id": 3, "span_id": 4,
              "trace_flags": TraceFlags(1), "severity_text": "INFO", "severity_number": SeverityNumber.INFO,
              "body": "probe", "attributes": {"k": "v"}, "event_name": None}
    try:
        built, lean = LogRecord(**fields), _lean_api_record(dict(fields))
        readable = ReadableLogRecord(log_record=built, resource=Resource({}), instrumentation_scope=None)
        lean_readable = _lean_readable(built, readable.resource, None)
        same = vars(built) == vars(lean) and vars(readable) == vars(lean_readable) and readable == lean_readable
    except Exception:
        return False
    return same


# How the handler builds its records: without the constructors where that gives the same objects.
_readable, _api_record = (_lean_readable, _lean_api_record) if _lean_records_match() else (_sdk_readable, _sdk_api_record)


def _room(logger: Any) -> int:
    """How many attributes a record of ``logger`` may carry past the SDK logger: its
    ``LogRecordLimits`` (``OTEL_LOGRECORD_ATTRIBUTE_*``) are applied on the SDK path, so with a
    value-length limit no record may (-1), with a count limit up to it."""
    limits = getattr(logger, "_log_record_limits", None)
    if limits is None or limits.max_log_record_attribute_length is not None:
        return -1
    return sys.maxsize if limits.max_log_record_attributes is None else limits.max_log_record_attributes  # type: ignore[no-any-return]


class BatchQueue:
    """kyo_otel's batch log processor's queue, which records may go to straight (see
    ``KyoLoggingHandler``) while that processor is the provider's only one: ``alone`` compares the
    provider's processor tuple by identity (a processor added later replaces the tuple, and from
    then on every record goes through the SDK logger, which gives it to every processor)."""

    __slots__ = ("_processors", "_alone", "batch", "emit")

    def __init__(self, provider: LoggerProvider, processor: Any) -> None:
        self._processors = provider._multi_log_record_processor  # noqa: SLF001
        self._alone = self._processors._log_record_processors  # noqa: SLF001 - the tuple holding it alone
        self.batch = processor._batch_processor  # noqa: SLF001 - the SDK's BatchProcessor behind it
        self.emit = self.batch.emit

    @property
    def alone(self) -> bool:
        return self._processors._log_record_processors is self._alone  # type: ignore[no-any-return]  # noqa: SLF001


def batch_queue(provider: LoggerProvider) -> BatchQueue | None:
    """The ``BatchQueue`` ``build_logger_provider`` set up, or None (the SDK path only)."""
    return getattr(provider, "_kyo_batch_queue", None)


def emit(provider: LoggerProvider, logger_name: str, record: LogRecord) -> None:
    """Emit an OpenTelemetry log record, past stdlib logging (audit records): straight into kyo's
    batch queue while it is the only processor, else through the SDK logger."""
    logger = provider.get_logger(logger_name)
    queue = batch_queue(provider)
    if queue is None or not queue.alone or len(record.attributes or ()) > _room(logger):
        logger.emit(record)
        return
    if record.attributes:
        attributes = dict(record.attributes)
        _clean(attributes)
        record.attributes = attributes
    record.context = _NO_CONTEXT  # the queue keeps the record's ids, not the caller's context
    queue.emit(_readable(record, logger.resource, logger.instrumentation_scope))


class KyoLoggingHandler(LoggingHandler):
    """The OpenTelemetry logging bridge with the request context added to every record.

    Marked so that kyo_otel can find its own handler. An application record never carries the
    audit marker, even when ``extra=`` tries to set it: only ``kyo_otel.audit()`` writes audit
    records.

    The request thread does as little as it can: while kyo_otel's batch processor is the
    provider's only one, the record goes straight into its export queue, built once (the SDK's
    path builds it three times: the API record, the read-write record with its bounded
    attributes, a copy for the queue), with the SDK logger of each stdlib logger name looked up
    once. Other processors (the memory profile's, or any added to the provider) get the SDK's
    own path. Same record either way: body, severity, timestamps, trace and span
    ids, scope, resource, attributes cleaned as the SDK cleans them.
    """

    kyo_otel_handler = True

    def __init__(self, *args: Any, direct: Any = None, scrub: Callable[[str], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct = direct
        """kyo_otel's ``BatchQueue`` (records go straight into it while its processor is the
        provider's only one), or None (the SDK path)."""
        self._loggers: dict[str, tuple[Any, Any, int]] = {}
        self._scrub = scrub
        """The scrubber's text rules, for what ``handleError`` writes to stderr (None: as stdlib)."""

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

    def _logger(self, name: str) -> tuple[Any, Any, int]:
        """The SDK logger of a stdlib logger name, its ``_is_enabled`` (None where it has none),
        and its ``_room`` (records with more attributes take the SDK path). The logger's resource
        is read at each record, not kept: after a fork the provider gives its loggers a new one
        (``service.instance.id``)."""
        entry = self._loggers.get(name)
        if entry is None:
            logger = get_logger(name, logger_provider=self._logger_provider)
            entry = (logger, getattr(logger, "_is_enabled", None), _room(logger))
            if len(self._loggers) < 10_000:  # logger names are code, but stay bounded
                self._loggers[name] = entry
        return entry

    def handle(self, record: logging.LogRecord) -> Any:
        """As ``Handler.handle`` without its lock on kyo's direct path: ``emit`` only appends to
        the batch queue, which is thread-safe, so records need not wait for one another."""
        if self._direct is None:
            return super().handle(record)
        passed: Any = True
        if self.filters:
            passed = self.filter(record)
            if isinstance(passed, logging.LogRecord):  # Python 3.12+: a filter may return a replacement
                record = passed
            if not passed:
                return passed
        try:
            self._emit(record)  # what emit() does, one call less
        except Exception:
            self.handleError(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        """Translate and queue the record. What fails here (a message whose arguments do not fit
        its format, a value no one can encode) goes to ``handleError``, as in stdlib handlers: the
        record is dropped with a traceback on stderr, and the caller's ``log.info()`` returns."""
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        direct = self._direct
        if direct is None or direct._processors._log_record_processors is not direct._alone:  # noqa: SLF001 - BatchQueue.alone, inline
            super().emit(record)  # the SDK logger: every processor (one was added) gets the record
            return
        if self._is_emitting.get():
            return  # a record logged while emitting one (the SDK's own warnings): dropped, no recursion
        token = self._is_emitting.set(True)
        try:
            logger, enabled, room = self._loggers.get(record.name) or self._logger(record.name)
            if enabled is not None and not enabled():  # the logger configurator's switch, as Logger.emit reads it
                return
            span_context = current_span().get_span_context()
            trace_id, span_id, _, trace_flags, _, _ = span_context_fields(span_context)
            attributes, event_name = self._get_attributes(record, span_context)
            if len(attributes) > room:  # limits to apply: the SDK's own path
                logger.emit(self._translate(record))
                return
            _clean(attributes)
            api_record = _api_record({
                "timestamp": int(record.created * 1e9),
                "observed_timestamp": time.time_ns(),
                # The ids read once; the record keeps them, not the request's context (the
                # non-empty context stops LogRecord from looking the current one up again).
                "context": _RECORD_CONTEXT,
                "trace_id": trace_id,
                "span_id": span_id,
                "trace_flags": trace_flags,
                "severity_text": SEVERITY_TEXT.get(record.levelname, record.levelname),
                "severity_number": _severity(record.levelno),
                "body": plain_text(self.format(record) if self.formatter else record.getMessage()),
                "attributes": attributes,
                "event_name": event_name,
            })
            direct.emit(_readable(api_record, logger.resource, logger.instrumentation_scope))
        finally:
            self._is_emitting.reset(token)

    def _translate(self, record: logging.LogRecord) -> Any:
        """The SDK path's record, with the same plain-text body as kyo's direct path."""
        translated = super()._translate(record)
        if isinstance(translated.body, str) and "\x1b" in translated.body:
            translated.body = plain_text(translated.body)
        return translated

    def _get_attributes(self, record: logging.LogRecord, span_context: Any = None) -> tuple[dict[str, Any], str | None]:
        """The OpenTelemetry handler's attributes (the fields given with ``extra=``, the
        exception's) and the request's correlation fields."""
        fields = record.__dict__
        extra = None
        if _RESERVED_ATTRS is not None and not record.exc_info and not self._log_code_attributes:
            extra = fields.keys() - _RESERVED_ATTRS
        if extra is None or not extra.isdisjoint(_EVENT_NAME_KEYS):
            attributes, event_name = super()._get_attributes(record)
        else:
            # The same dict in the same order. The fields logging adds for extra= come after the
            # record's two dozen own ones, followed at most by the two a formatter adds (message,
            # asctime): taken from the end, not found by walking them all.
            names = [name for name in list(fields)[-len(extra) - 2:] if name in extra] if extra else []
            if len(names) != len(extra):
                names = [name for name in fields if name in extra]
            attributes, event_name = {name: fields[name] for name in names}, None
        attributes.pop(AUDIT_ATTRIBUTE, None)
        add_correlation(attributes, span_context)
        return attributes, event_name


def log_processor(settings: Settings, exporter: LogRecordExporter) -> LogRecordProcessor:
    if isinstance(exporter, InMemoryLogRecordExporter) or getattr(exporter, "synchronous", False):
        return SimpleLogRecordProcessor(exporter)
    return BatchLogRecordProcessor(
        exporter,
        max_queue_size=settings.log_queue_size,
        schedule_delay_millis=settings.batch_delay,
        max_export_batch_size=min(settings.log_export_batch_size, settings.log_queue_size),
        export_timeout_millis=settings.otlp_timeout * 1000,
    )


def build_logger_provider(settings: Settings, resource: Resource, exporter: LogRecordExporter, **kwargs: Any) -> LoggerProvider:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False, **kwargs)
    processor = log_processor(settings, exporter)
    provider.add_log_record_processor(processor)
    queue = None
    if isinstance(processor, BatchLogRecordProcessor):
        try:
            queue = BatchQueue(provider, processor)
        except AttributeError:  # another SDK layout: the SDK logger for every record
            pass
    provider._kyo_batch_queue = queue  # type: ignore[attr-defined]
    return provider


def kyo_handlers(logger: logging.Logger | None = None) -> list[logging.Handler]:
    logger = logger or logging.getLogger()
    return [h for h in logger.handlers if getattr(h, "kyo_otel_handler", False)]


def attach_handler(provider: LoggerProvider, level: str, scrub: Callable[[str], str] | None = None) -> KyoLoggingHandler:
    """Attach the bridge to the root logger, replacing a handler of ours left by an earlier call.

    The root logger's level is lowered to ``level`` when it is higher: otherwise stdlib drops
    INFO records before any handler sees them.
    """
    root = logging.getLogger()
    detach_handlers()
    handler = KyoLoggingHandler(
        level=logging.getLevelName(level), logger_provider=provider, direct=batch_queue(provider), scrub=scrub
    )
    root.addHandler(handler)
    if root.level != logging.NOTSET and root.level > handler.level:
        root.setLevel(handler.level)
    return handler


def detach_handlers() -> None:
    root = logging.getLogger()
    for handler in kyo_handlers(root):
        root.removeHandler(handler)
