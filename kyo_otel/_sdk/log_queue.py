"""Fast path ``log-direct-queue``: log records built once and put straight into kyo's batch
log processor's queue while it is the provider's only processor.

Reads the provider's ``_multi_log_record_processor`` and its ``_log_record_processors`` tuple,
the batch processor's ``_batch_processor`` queue, the SDK logger's ``_log_record_limits`` and
``_is_enabled``, and cleans values with the API's ``_clean_attribute_value``. Records are built
without their constructors where that gives the same objects (checked at import). Off: every
record goes through the SDK logger (``Logger.emit``), which hands it to every processor.
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceFlags

from kyo_otel._sdk import fast_path, is_on

try:
    from opentelemetry.attributes import _clean_attribute_value
except ImportError:  # the probe says so; records then take the SDK logger's path
    _clean_attribute_value = None

_PRIMITIVE = (str, bool, int, float)
_PRIMITIVE_TYPES = frozenset(_PRIMITIVE)
_NO_CONTEXT = Context()
RECORD_CONTEXT = Context({"kyo_otel.log_record": True})
"""The context of records built by the handler: their ids are set from the span already."""
_RECORD_CONTEXT = RECORD_CONTEXT


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



def direct_queue(provider: LoggerProvider, processor: Any) -> BatchQueue | None:
    """The ``BatchQueue`` of ``processor`` (a ``BatchLogRecordProcessor``, the provider's only
    one), or None when the path is off or this SDK has another layout (the SDK logger's path)."""
    if not is_on("log-direct-queue"):
        return None
    try:
        return BatchQueue(provider, processor)
    except AttributeError:
        return None


def set_direct_queue(provider: LoggerProvider, queue: BatchQueue | None) -> None:
    provider._kyo_batch_queue = queue  # type: ignore[attr-defined]


@fast_path(
    "log-direct-queue",
    replaces="the SDK logger's emit (the API record, the read-write record, the copy queued)",
    fallback="the SDK logger's emit",
)
def probe() -> None:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter, SimpleLogRecordProcessor

    if _clean_attribute_value is None:
        raise ImportError("opentelemetry.attributes has no _clean_attribute_value")
    if _clean_attribute_value(("a", "b"), None) != ("a", "b"):
        raise RuntimeError("_clean_attribute_value no longer cleans a sequence into a tuple")
    if not _lean_records_match():
        raise RuntimeError("records built without their constructors differ from the SDK's")
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    processor = BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000)
    try:
        provider.add_log_record_processor(processor)
        queue = BatchQueue(provider, processor)
        if not queue.alone:
            raise RuntimeError("the provider's processor tuple does not hold the batch processor alone")
        logger = provider.get_logger("kyo_otel.probe")
        if _room(logger) < 0 and getattr(logger, "_log_record_limits", None) is None:
            raise AttributeError("the SDK logger has no _log_record_limits")
        queue.emit(_readable(_api_record({"timestamp": 1, "observed_timestamp": 2, "context": _RECORD_CONTEXT,
                                          "trace_id": 0, "span_id": 0, "trace_flags": TraceFlags(0),
                                          "severity_text": "INFO", "severity_number": SeverityNumber.INFO,
                                          "body": "probe", "attributes": {}, "event_name": None}),
                             logger.resource, logger.instrumentation_scope))
        provider.force_flush()
        if [r.log_record.body for r in exporter.get_finished_logs()] != ["probe"]:
            raise RuntimeError("a record put in the batch processor's queue was not exported")
        provider.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
        if queue.alone:
            raise RuntimeError("a processor added later does not replace the provider's processor tuple")
    finally:
        provider.shutdown()
