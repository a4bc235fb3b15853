"""The console profile: telemetry a person can read in a terminal.

One line per finished span (indented under its parent when both are in the same batch), one
line per log record, and metrics as a compact table per export instead of raw JSON dumps.
Colours only on a TTY and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO, Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
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
)
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARN": "33", "ERROR": "31", "FATAL": "1;31"}
_WRITE_LOCK = threading.Lock()


def use_colour(stream: IO[str], env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    env = os.environ if env is None else env
    return "NO_COLOR" not in env and hasattr(stream, "isatty") and stream.isatty()


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


class ConsoleSpanExporter(SpanExporter):
    """``12:00:01.234   3.1ms  OK  POST /otp/send  http.route=/otp/send ...`` per span."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._out = _Writer(stream)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        by_id = {s.context.span_id: s for s in spans if s.context}

        def depth(span: ReadableSpan) -> int:
            level, parent = 0, span.parent
            while parent is not None and parent.span_id in by_id and level < 10:
                level += 1
                parent = by_id[parent.span_id].parent
            return level

        ordered = sorted(spans, key=lambda s: (s.context.trace_id if s.context else 0, s.start_time or 0))
        lines = [self._line(span, depth(span)) for span in ordered]
        self._out.write_lines(lines)
        return SpanExportResult.SUCCESS

    def _line(self, span: ReadableSpan, depth: int) -> str:
        duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        status = span.status.status_code
        mark = {StatusCode.ERROR: self._out.paint("31", "ERR"), StatusCode.OK: "OK "}.get(status, "   ")
        attrs = span.attributes or {}
        keys = " ".join(f"{k}={attrs[k]}" for k in _SPAN_KEYS if k in attrs)
        trace_id = f"{span.context.trace_id:032x}"[:8] if span.context else ""
        return (
            f"{_clock(span.end_time)} {self._out.paint('2', 'span')} {trace_id} {duration_ms:8.1f}ms {mark} "
            f"{'  ' * depth}{self._out.paint('1', span.name)}  {keys}".rstrip()
        )

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
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
    """One line per log record: readable text with level colours, or one JSON object."""

    def __init__(self, stream: IO[str] | None = None, fmt: str = "text") -> None:
        self._out = _Writer(stream)
        self._format = fmt

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self._out.write_lines([self._line(item) for item in batch])
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
        if "trace_id" in fields:
            fields["trace_id"] = str(fields["trace_id"])[:8]
        extras = " ".join(f"{k}={v}" for k, v in fields.items() if not k.startswith("code."))
        coloured = self._out.paint(_LEVEL_COLOURS.get(level, "0"), f"{level:<5}")
        line = f"{timestamp} {self._out.paint('2', 'log ')} {coloured} {logger}: {message}  {self._out.paint('2', extras)}"
        return line.rstrip() + (("\n" + str(stack).rstrip()) if stack else "")

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConsoleMetricExporter(MetricExporter):
    """A compact table of the points of each export: name, attributes, value."""

    def __init__(self, stream: IO[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._out = _Writer(stream)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        rows: list[tuple[str, str, str]] = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        attrs = ",".join(f"{k}={v}" for k, v in sorted((point.attributes or {}).items()))
                        rows.append((metric.name, attrs, _point_value(metric.data, point, metric.unit)))
        if rows:
            width = max(len(r[0]) for r in rows)
            attr_width = min(max(len(r[1]) for r in rows), 70)
            header = self._out.paint("1", f"metrics @ {datetime.now().strftime('%H:%M:%S')}")
            lines = [header] + [f"  {n:<{width}}  {a:<{attr_width}}  {v}" for n, a, v in rows]
            self._out.write_lines(lines)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _point_value(data: Any, point: Any, unit: str) -> str:
    if isinstance(data, (Histogram, ExpHistogram)):
        mean = point.sum / point.count if point.count else 0.0
        return f"count={point.count} mean={mean:.4g}{unit} min={point.min:.4g} max={point.max:.4g}"
    if isinstance(data, (Sum, Gauge)):
        return f"{point.value:g} {unit}".rstrip()
    return str(point)
