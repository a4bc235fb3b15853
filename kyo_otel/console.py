"""The console profile: telemetry a person can read in a terminal.

One line per finished span (a request's spans printed together as a tree when its root span
ends), one line per log record, and metrics as a compact table per export instead of raw JSON.
Span and log lines show the first 8 hex digits of their trace id in the same column, and a
request's log lines are printed with its spans, in time order (``ConsoleSink``), not a batch later
after other requests' spans. Colours only on a TTY and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import ExponentialHistogram as ExpHistogram
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

_SPAN_KEYS = (
    "http.route",
    "http.response.status_code",
    "db.statement",
    "db.query.text",
    "kyo.tenant.id",
    "error.type",
    "exception.type",
)
_NO_TRACE = " " * 8  # the trace column of a log line outside any trace
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARN": "33", "ERROR": "31", "FATAL": "1;31"}
_WRITE_LOCK = threading.Lock()


def use_colour(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Colours on a terminal only, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    env = os.environ if env is None else env
    return not env.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


class _Writer:
    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self.colour = use_colour(self.stream)

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stdout

    def paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def write_lines(self, lines: list[str]) -> None:
        if lines:
            with _WRITE_LOCK:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()


def _clock(ns: int | None) -> str:
    if not ns:
        return "--:--:--.---"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _merged(spans: list[tuple[int, str]], logs: list[tuple[int, str]]) -> list[str]:
    """A trace's span lines (tree order) with its log lines, each log line before the first span
    that started after it."""
    lines: list[str] = []
    index = 0
    for start, line in spans:
        while index < len(logs) and logs[index][0] < start:
            lines.append(logs[index][1])
            index += 1
        lines.append(line)
    lines.extend(line for _, line in logs[index:])
    return lines


class ConsoleSink:
    """What the console span and log exporters of one configuration share, so that a request's log
    lines are printed with its spans, in time order.

    Spans and log records travel in separate batches (two processors, two export threads), so a
    request's log lines used to come a batch after its spans, after other requests' spans. Here
    the log exporter holds a record that belongs to a sampled trace not yet printed; when the span
    exporter prints that trace, it first flushes the log processor (``flush_logs``, the logger
    provider's ``force_flush``: the request's records were emitted before its root span ended),
    then merges the held lines into the tree by time. A trace printed already gets its late
    records at once; records whose trace never comes are printed after ``hold`` seconds, and all of
    them at shutdown.
    """

    def __init__(self, hold: float = 5.0, max_traces: int = 1000) -> None:
        self.flush_logs: Callable[[], Any] | None = None
        self._hold = hold
        self._max_traces = max_traces
        self._held: dict[int, list[tuple[int, str]]] = {}
        self._since: dict[int, float] = {}
        self._printed: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def hold(self, trace_id: int, timestamp: int, line: str) -> bool:
        """Keep a log line for its trace's spans; False when they were printed already."""
        with self._lock:
            if trace_id in self._printed:
                return False
            self._held.setdefault(trace_id, []).append((timestamp, line))
            self._since.setdefault(trace_id, time.monotonic())
            return True

    def take(self, trace_id: int) -> list[tuple[int, str]]:
        """The held log lines of a trace being printed now, in time order."""
        with self._lock:
            self._printed[trace_id] = None
            if len(self._printed) > self._max_traces:
                self._printed.popitem(last=False)
            self._since.pop(trace_id, None)
            return sorted(self._held.pop(trace_id, []), key=lambda held: held[0])

    def overdue(self, everything: bool = False) -> list[str]:
        """Log lines held longer than ``hold`` (or too many traces held), or all of them."""
        now = time.monotonic()
        with self._lock:
            late = [t for t, since in self._since.items() if everything or now - since >= self._hold]
            late += list(self._since)[: max(0, len(self._since) - self._max_traces)]
            lines: list[tuple[int, str]] = []
            for trace_id in dict.fromkeys(late):
                self._since.pop(trace_id, None)
                lines.extend(self._held.pop(trace_id, []))
        return [line for _, line in sorted(lines, key=lambda held: held[0])]

    def flush_pending_logs(self) -> None:
        if self.flush_logs is not None:
            try:
                self.flush_logs()
            except Exception:  # the spans are printed anyway
                pass


class ConsoleSpanExporter(SpanExporter):
    """One line per span, printed as a tree when the trace's local root span ends::

        12:00:01.230 span 4bf92f35    3.1ms     POST /otp/send  http.route=/otp/send ...
        12:00:01.231 span 4bf92f35    0.4ms       SET  db.statement=SET ? ?

    Children end (and are exported) before their parent, often in another batch, so spans wait
    here until their root arrives and the whole request is printed at once, in start order,
    each child indented under its parent. Spans whose root never comes (it was not sampled, or
    it is still running after ``hold`` seconds) are printed as they are. With a ``sink`` shared
    with the ``ConsoleLogExporter``, the trace's log lines are printed among its spans.
    """

    def __init__(
        self, stream: IO[str] | None = None, hold: float = 5.0, max_pending: int = 1000, sink: ConsoleSink | None = None
    ) -> None:
        self._out = _Writer(stream)
        self._sink = sink
        self._hold = hold
        self._max_pending = max_pending
        self._pending: dict[int, list[ReadableSpan]] = {}
        self._since: dict[int, float] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ready: list[list[ReadableSpan]] = []
        now = time.monotonic()
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id if span.context else 0
                self._pending.setdefault(trace_id, []).append(span)
                self._since.setdefault(trace_id, now)
                if span.parent is None or span.parent.is_remote:
                    ready.append(self._take(trace_id))
            overdue = [t for t, since in self._since.items() if now - since >= self._hold]
            overdue += list(self._since)[: max(0, len(self._since) - self._max_pending)]
            ready.extend(self._take(t) for t in dict.fromkeys(overdue))
        self._print(ready)
        return SpanExportResult.SUCCESS

    def _print(self, groups: list[list[ReadableSpan]]) -> None:
        groups = [group for group in groups if group]
        if not groups:
            return
        if self._sink is None:
            for group in groups:
                self._out.write_lines([line for _, line in self._tree(group)])
            return
        self._sink.flush_pending_logs()  # the log records of these requests reach the sink first
        for group in groups:
            trace_id = group[0].context.trace_id if group[0].context else 0
            self._out.write_lines(_merged(self._tree(group), self._sink.take(trace_id)))

    def _take(self, trace_id: int) -> list[ReadableSpan]:
        self._since.pop(trace_id, None)
        return self._pending.pop(trace_id, [])

    def _tree(self, spans: list[ReadableSpan]) -> list[tuple[int, str]]:
        """The spans' lines, each child under its parent, with their start times."""
        children: dict[int | None, list[ReadableSpan]] = {}
        ids = {s.context.span_id for s in spans if s.context}
        for span in spans:
            parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
            children.setdefault(parent, []).append(span)
        lines: list[tuple[int, str]] = []

        def walk(parent: int | None, depth: int) -> None:
            for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
                lines.append((span.start_time or 0, self._line(span, depth)))
                if span.context and depth < 20:
                    walk(span.context.span_id, depth + 1)

        walk(None, 0)
        return lines

    def _line(self, span: ReadableSpan, depth: int) -> str:
        duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        status = span.status.status_code
        mark = {StatusCode.ERROR: self._out.paint("31", "ERR"), StatusCode.OK: self._out.paint("32", "OK ")}.get(
            status, "   "
        )
        attrs = dict(span.attributes or {})
        # No route matched (a 404): the path instead, scrubbed like every attribute.
        keys_shown = _SPAN_KEYS if "http.route" in attrs else ("url.path", *_SPAN_KEYS)
        for event in span.events:
            if event.name == "exception" and event.attributes and "exception.type" in event.attributes:
                attrs.setdefault("exception.type", event.attributes["exception.type"])
        # A pipeline's statement has one line per command: keep one line per span.
        keys = " ".join(f"{k}={str(attrs[k]).replace(chr(10), '; ')}" for k in keys_shown if k in attrs)
        trace_id = f"{span.context.trace_id:032x}"[:8] if span.context else ""
        return (
            f"{_clock(span.start_time)} {self._out.paint('2', 'span')} {trace_id} {duration_ms:8.1f}ms {mark} "
            f"{'  ' * depth}{self._out.paint('1', span.name)}  {self._out.paint('2', keys)}"
        ).rstrip()

    def _flush_all(self) -> None:
        with self._lock:
            groups = [self._take(t) for t in list(self._pending)]
        self._print(groups)

    def shutdown(self) -> None:
        self._flush_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._flush_all()
        return True


def log_record_fields(item: ReadableLogRecord) -> dict[str, Any]:
    """The fields of one log record, flat, for the text and JSON console formats."""
    record = item.log_record
    attributes = dict(record.attributes or {})
    fields: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp((record.timestamp or record.observed_timestamp or 0) / 1e9, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": record.severity_text or "",
        "logger": item.instrumentation_scope.name if item.instrumentation_scope else "",
        "message": record.body if isinstance(record.body, (str, int, float, bool)) or record.body is None
        else json.dumps(record.body, default=str),
    }
    resource = item.resource.attributes if item.resource else {}
    fields["service"] = resource.get("service.name", "")
    fields["environment"] = resource.get("deployment.environment.name", "")
    if record.trace_id:
        fields["trace_id"] = f"{record.trace_id:032x}"
        fields["span_id"] = f"{record.span_id:016x}"
    fields.update(attributes)
    return fields


class ConsoleLogExporter(LogRecordExporter):
    """One line per log record: readable text with level colours, or one JSON object.

    With a ``sink`` shared with the ``ConsoleSpanExporter``, a record of a sampled trace is
    printed with that trace's spans."""

    def __init__(self, stream: IO[str] | None = None, fmt: str = "text", sink: ConsoleSink | None = None) -> None:
        self._out = _Writer(stream)
        self._format = fmt
        self._sink = sink

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        lines: list[str] = []
        for item in batch:
            line = self._line(item)
            record = item.log_record
            if (
                self._sink is not None
                and record.trace_id
                and int(record.trace_flags or 0) & 1  # sampled: its spans will be printed
                and self._sink.hold(record.trace_id, record.timestamp or record.observed_timestamp or 0, line)
            ):
                continue
            lines.append(line)
        if self._sink is not None:
            lines.extend(self._sink.overdue())
        self._out.write_lines(lines)
        return LogRecordExportResult.SUCCESS

    def _line(self, item: ReadableLogRecord) -> str:
        fields = log_record_fields(item)
        if self._format == "json":
            return json.dumps(fields, default=str, separators=(",", ":"))
        level = fields.pop("level")
        timestamp = fields.pop("timestamp")[11:23]
        logger = fields.pop("logger")
        message = fields.pop("message")
        for key in ("service", "environment", "span_id"):
            fields.pop(key, None)
        stack = fields.pop("exception.stacktrace", None)
        trace_id = str(fields.pop("trace_id", _NO_TRACE))[:8]
        extras = " ".join(f"{k}={v}" for k, v in fields.items() if not k.startswith("code."))
        coloured = self._out.paint(_LEVEL_COLOURS.get(level, "0"), f"{level:<5}")
        line = (
            f"{timestamp} {self._out.paint('2', 'log ')} {trace_id} {coloured} {logger}: {message}  "
            f"{self._out.paint('2', extras)}"
        )
        return line.rstrip() + (("\n" + str(stack).rstrip()) if stack else "")

    def shutdown(self) -> None:
        if self._sink is not None:
            self._out.write_lines(self._sink.overdue(everything=True))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConsoleMetricExporter(MetricExporter):
    """A compact table per export: one row per series (metric, attributes), its value.

    Counters show what was added since the previous table (DELTA), histograms their count,
    mean, min and max (durations in milliseconds), gauges their current value. A level (gauge,
    up-down counter) at zero is shown only when it just fell to zero: an idle process prints no
    ``kyo.tenants.active 0`` at every interval, and a table with nothing to show is not printed.
    """

    def __init__(self, stream: IO[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._out = _Writer(stream)
        self._levels: dict[tuple[str, str], float] = {}  # the last value of each level series

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        rows: list[tuple[str, str, str]] = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        attrs = " ".join(f"{k}={v}" for k, v in sorted((point.attributes or {}).items()))
                        if _is_level(metric.data) and not self._changed_or_nonzero((metric.name, attrs), point.value):
                            continue
                        rows.append((metric.name, attrs, _point_value(metric.data, point, metric.unit)))
        if rows:
            rows.sort(key=lambda r: (r[0], r[1]))
            width = max(len(r[0]) for r in rows)
            attr_width = min(max(len(r[1]) for r in rows), 70)
            header = self._out.paint("1", f"metrics @ {datetime.now().strftime('%H:%M:%S')}")
            lines = [header]
            previous = ""
            for name, attrs, value in rows:
                shown = name if name != previous else ""
                previous = name
                lines.append(f"  {shown:<{width}}  {attrs:<{attr_width}}  {value}".rstrip())
            self._out.write_lines(lines)
        return MetricExportResult.SUCCESS

    def _changed_or_nonzero(self, series: tuple[str, str], value: float) -> bool:
        previous = self._levels.get(series, 0)
        if len(self._levels) < 10_000 or series in self._levels:
            self._levels[series] = value
        return bool(value) or bool(previous)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _is_level(data: Any) -> bool:
    """A gauge or an up-down counter: a current value, not an amount added."""
    return isinstance(data, Gauge) or (isinstance(data, Sum) and not data.is_monotonic)


def _point_value(data: Any, point: Any, unit: str) -> str:
    if isinstance(data, (Histogram, ExpHistogram)):
        scale, shown_unit = (1000.0, "ms") if unit == "s" else (1.0, unit)
        if not point.count:
            return "count=0"
        mean = point.sum / point.count * scale
        return (
            f"count={point.count} mean={mean:.3g}{shown_unit} "
            f"min={point.min * scale:.3g}{shown_unit} max={point.max * scale:.3g}{shown_unit}"
        )
    if isinstance(data, Sum):
        sign = "+" if getattr(data, "aggregation_temporality", None) == AggregationTemporality.DELTA else ""
        return f"{sign}{point.value:g} {_unit(unit)}".rstrip()
    if isinstance(data, Gauge):
        return f"{point.value:g} {_unit(unit)}".rstrip()
    return str(point)


def _unit(unit: str) -> str:
    """``{otp}`` is UCUM's annotation syntax; a person reads ``otp``."""
    return unit.strip("{}") if unit not in ("1", "") else ""
