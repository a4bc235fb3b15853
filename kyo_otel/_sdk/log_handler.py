"""Fast path ``log-handler``: kyo's logging bridge, a subclass of the contrib ``LoggingHandler``
that builds each record once and, with ``log-direct-queue``, queues it directly.

Uses the contrib handler's ``_is_emitting`` (its guard against records logged while one is
emitted), ``_get_attributes``, ``_translate``, ``_logger_provider``, ``_log_code_attributes`` and
``_RESERVED_ATTRS``. The probe builds one and sends a record through it. Off:
``kyo_otel.logs.CorrelatingHandler``, the contrib handler with public overrides only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry._logs import SeverityNumber, get_logger
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler

try:  # the record's own attributes, which the OpenTelemetry handler leaves out
    from opentelemetry.instrumentation.logging.handler import _RESERVED_ATTRS
except ImportError:  # another layout: its _get_attributes picks them
    _RESERVED_ATTRS = None

from kyo_otel._sdk import fast_path
from kyo_otel._sdk.log_queue import RECORD_CONTEXT as _RECORD_CONTEXT
from kyo_otel._sdk.log_queue import _api_record, _clean, _readable, _room
from kyo_otel.audit import AUDIT_ATTRIBUTE
from kyo_otel.context import add_correlation
from kyo_otel.logs import SEVERITY_TEXT, ScrubbedErrors, plain_text
from kyo_otel.runtime_context import current_span, span_context_fields

_EVENT_NAME_KEYS = frozenset({"otel.event.name", "event.name"})  # the OpenTelemetry handler's, popped by it
_SEVERITIES: dict[int, SeverityNumber] = {}


def _severity(levelno: int) -> SeverityNumber:
    """stdlib level -> OpenTelemetry severity, as the OpenTelemetry handler maps it (memoized)."""
    severity = _SEVERITIES.get(levelno)
    if severity is None:
        severity = _SEVERITIES[levelno] = std_to_otel(levelno)
    return severity


class KyoLoggingHandler(ScrubbedErrors, LoggingHandler):
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



@fast_path(
    "log-handler",
    replaces="the contrib LoggingHandler's emit (a record built three times, a logger looked up per record)",
    fallback="the contrib LoggingHandler with kyo's correlation fields added through public methods",
)
def probe() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    for name in ("_get_attributes", "_translate"):
        if not callable(getattr(LoggingHandler, name, None)):
            raise AttributeError(f"the contrib LoggingHandler has no {name}")
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = KyoLoggingHandler(logger_provider=provider)
    for name in ("_is_emitting", "_logger_provider", "_log_code_attributes"):
        if not hasattr(handler, name):
            raise AttributeError(f"the contrib LoggingHandler has no {name}")
    emitting = handler._is_emitting  # noqa: SLF001
    if not all(callable(getattr(emitting, method, None)) for method in ("get", "set", "reset")):
        raise TypeError("the contrib LoggingHandler's _is_emitting is not a context variable")
    record = logging.LogRecord("kyo_otel.probe", logging.INFO, __file__, 1, "probe %s", ("one",), None)
    record.__dict__["probe.key"] = "v"
    attributes, _ = super(KyoLoggingHandler, handler)._get_attributes(record)  # noqa: SLF001 - the contrib handler's own
    if attributes.get("probe.key") != "v":
        raise RuntimeError("the contrib LoggingHandler's _get_attributes does not return the extra= fields")
    if handler._translate(record).body != "probe one":  # noqa: SLF001
        raise RuntimeError("the contrib LoggingHandler's _translate does not build the record's body")
    failures: list[Any] = []
    handler.handleError = lambda record: failures.append(record)  # type: ignore[method-assign]
    handler.handle(record)
    provider.shutdown()
    finished = exporter.get_finished_logs()
    if failures or [r.log_record.body for r in finished] != ["probe one"] or finished[0].log_record.attributes.get("probe.key") != "v":
        raise RuntimeError("a record logged through kyo's handler was not exported as logged")
