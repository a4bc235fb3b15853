"""Asserting on telemetry in tests: what was emitted, queried by name, attributes, level, message.

    def test_send(kyo_telemetry, client):          # the pytest fixture (kyo_otel.pytest_plugin)
        client.post("/otp/send", json={...})
        assert kyo_telemetry.span("POST /otp/send").attributes["http.route"] == "/otp/send"
        assert kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="acme").value == 1
        assert kyo_telemetry.logs(level="INFO", contains="sent")

Outside pytest, ``capture()`` returns the same object.

The providers are process-wide (the OpenTelemetry API sets them once, and instrumentations hold
tracers from the first configuration), so the fixture cannot install a fresh provider with a
sequential id generator and a fake clock for each test the way a per-test configuration could.
Instead every test starts from an empty store, and ``snapshot()`` renumbers what was captured:
trace and span ids become ``trace-1``, ``span-1``... in order of appearance, timestamps become
``t0``, ``t1``... in time order, and values that vary from run to run (ports, code locations,
stack traces) become placeholders. Snapshots are then equal across runs and test orders, while the
real ids stay available on the spans and logs for checks such as "this log carries that span's
trace id".

Metrics are DELTA (as in production): each collection returns what changed since the previous
one, so the store adds every collection's points up and a query never loses an earlier delta.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import AggregationTemporality, Gauge, Histogram, Sum
from opentelemetry.sdk.metrics.export import ExponentialHistogram as ExpHistogram
from opentelemetry.sdk.trace import ReadableSpan

from kyo_otel import catalog, instruments
from kyo_otel import telemetry as telemetry_module
from kyo_otel.logs import SEVERITY_TEXT
from kyo_otel.telemetry import Telemetry

__all__ = ["CapturedLog", "CapturedTelemetry", "MetricPoint", "VOLATILE_ATTRIBUTES", "capture"]

VOLATILE_ATTRIBUTES: tuple[str, ...] = (
    "server.port",
    "net.peer.port",
    "net.host.port",
    "client.port",
    "client.address",
    "network.peer.port",
    "net.peer.ip",
    "code.filepath",
    "code.file.path",
    "code.function",
    "code.function.name",
    "code.lineno",
    "code.line.number",
    "exception.stacktrace",
    "thread.id",
    "thread.name",
    "process.pid",
    "http.user_agent",
    "user_agent.original",
    "aws.xray.trace_id",
    "kyo.request.id",
)
"""Attributes whose values differ between runs; ``snapshot()`` shows them as ``<name>``."""

@dataclass(frozen=True)
class MetricPoint:
    """One series (a metric and one set of attributes), added up over every collection.

    ``value`` is the total of a counter, the latest value of a gauge, or the sum of the values
    recorded into a histogram; histograms also have ``count``, ``min`` and ``max``.
    """

    name: str
    attributes: Mapping[str, Any]
    kind: str  # sum | gauge | histogram
    value: float = 0
    count: int = 0
    min: float | None = None
    max: float | None = None

    @property
    def mean(self) -> float | None:
        return self.value / self.count if self.count else None

    def _merged(self, other: MetricPoint) -> MetricPoint:
        """This point and ``other`` added up (a delta on top of the total so far)."""
        lows = [v for v in (self.min, other.min) if v is not None]
        highs = [v for v in (self.max, other.max) if v is not None]
        return replace(
            self,
            value=self.value + other.value,
            count=self.count + other.count,
            min=min(lows) if lows else None,
            max=max(highs) if highs else None,
        )


@dataclass(frozen=True)
class CapturedLog:
    """One log record as emitted through the log bridge."""

    level: str  # OpenTelemetry severity text: DEBUG, INFO, WARN, ERROR, FATAL
    message: str
    logger: str
    attributes: Mapping[str, Any]
    trace_id: int
    span_id: int
    timestamp: int
    record: ReadableLogRecord = field(repr=False, compare=False)


def _attribute_matches(attributes: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """``expected`` keys are attribute names, or the names with dots written as underscores."""
    for key, value in expected.items():
        if key in attributes:
            if attributes[key] != value:
                return False
            continue
        found = [name for name in attributes if name.replace(".", "_") == key]
        if not found or attributes[found[0]] != value:
            return False
    return True


def _level_name(level: str) -> str:
    upper = level.strip().upper()
    return SEVERITY_TEXT.get(upper, upper)  # as the logging bridge writes it


class CapturedTelemetry:
    """The memory profile's spans, metric points and log records, with queries over them."""

    def __init__(self, handle: Telemetry) -> None:
        self.handle = handle
        self._points: dict[tuple[str, tuple[tuple[str, Any], ...]], MetricPoint] = {}

    # -- spans -------------------------------------------------------------------------------

    def spans(self, name: str | None = None, **attributes: Any) -> list[ReadableSpan]:
        """Finished spans, oldest first, with this name (if given) and these attribute values.

        Attribute keys are given with underscores for dots (``http_route="/otp/send"``) or as
        they are (``**{"http.route": "/otp/send"}``).
        """
        exporter = self.handle.memory.spans
        finished = list(exporter.get_finished_spans()) if exporter is not None else []
        return [
            span
            for span in finished
            if (name is None or span.name == name) and _attribute_matches(span.attributes or {}, attributes)
        ]

    def span(self, name: str | None = None, **attributes: Any) -> ReadableSpan:
        """The one span that matches; an AssertionError listing the spans seen otherwise."""
        found = self.spans(name, **attributes)
        if len(found) != 1:
            seen = ", ".join(repr(s.name) for s in self.spans()) or "none"
            raise AssertionError(
                f"expected exactly one span matching name={name!r} {attributes}, found {len(found)}; spans seen: {seen}"
            )
        return found[0]

    # -- metrics -----------------------------------------------------------------------------

    def collect(self) -> None:
        """Pull the metric points recorded since the last collection into the store."""
        reader = self.handle.memory.metrics
        if reader is None:
            return
        data = reader.get_metrics_data()
        if data is None:
            return
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._add(metric)

    def _add(self, metric: Any) -> None:
        data = metric.data
        cumulative = getattr(data, "aggregation_temporality", None) == AggregationTemporality.CUMULATIVE
        for point in data.data_points:
            attributes = dict(point.attributes or {})
            if isinstance(data, (Histogram, ExpHistogram)):
                new = MetricPoint(metric.name, attributes, "histogram", point.sum, point.count, point.min, point.max)
            elif isinstance(data, Gauge):
                new = MetricPoint(metric.name, attributes, "gauge", point.value)
                cumulative = True
            elif isinstance(data, Sum):
                new = MetricPoint(metric.name, attributes, "sum", point.value)
            else:
                continue
            key = (metric.name, tuple(sorted(attributes.items())))
            old = self._points.get(key)
            self._points[key] = new if old is None or cumulative else old._merged(new)

    def metric_points(self, name: str, **attributes: Any) -> list[MetricPoint]:
        """Every series of ``name`` whose attributes include these values, after a collection.

        ``name`` is a catalog name (``kyo.otp.sent``) or any other metric that was recorded;
        an unknown name raises KeyError listing the catalog, so a typo cannot pass as "zero".
        """
        self.collect()
        points = [p for (n, _), p in self._points.items() if n == name]
        if not points and name not in catalog.BY_NAME:
            catalog.get(name)  # raises KeyError naming the catalog's metrics
        return [p for p in points if _attribute_matches(p.attributes, attributes)]

    def metric(self, name: str, **attributes: Any) -> MetricPoint:
        """All matching series of ``name`` added up into one point (zero when none matched)."""
        points = self.metric_points(name, **attributes)
        total = MetricPoint(name, dict(attributes), points[0].kind if points else "sum")
        for point in points:
            total = total._merged(point)
        return total

    # -- logs --------------------------------------------------------------------------------

    def logs(
        self,
        level: str | None = None,
        message: str | None = None,
        *,
        contains: str | None = None,
        logger: str | None = None,
        **attributes: Any,
    ) -> list[CapturedLog]:
        """Log records, oldest first: by level (``WARNING`` or ``WARN``), exact message, substring."""
        exporter = self.handle.memory.logs
        items: Sequence[ReadableLogRecord] = exporter.get_finished_logs() if exporter is not None else ()
        wanted = _level_name(level) if level else None
        found = []
        for item in items:
            log = _captured_log(item)
            if wanted is not None and log.level != wanted:
                continue
            if message is not None and log.message != message:
                continue
            if contains is not None and contains not in log.message:
                continue
            if logger is not None and log.logger != logger:
                continue
            if not _attribute_matches(log.attributes, attributes):
                continue
            found.append(log)
        return found

    # -- lifecycle ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget everything captured so far, including metric deltas not yet collected, the
        tenant ids and resources the cardinality guards have admitted (a flood in one test must not
        push the next test's values into the overflow value) and the tenants counted active."""
        if self.handle.memory.spans is not None:
            self.handle.memory.spans.clear()
        if self.handle.memory.logs is not None:
            self.handle.memory.logs.clear()
        if self.handle.memory.metrics is not None:
            self.handle.memory.metrics.get_metrics_data()
        self._points.clear()
        self.handle.reset_active_tenants()
        reset_guards = getattr(instruments.recorder(), "reset_guards", None)  # none without metrics
        if reset_guards is not None:
            reset_guards()

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self, *, logs: bool = True, volatile: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Spans and log records as plain dicts with stable ids and timestamps (see module doc).

        Ordered by time. ``volatile`` names more attributes to show as placeholders.
        """
        hidden = set(VOLATILE_ATTRIBUTES) | set(volatile)
        spans = self.spans()
        records = self.logs() if logs else []
        times = sorted(
            {t for s in spans for t in (s.start_time, s.end_time) if t is not None} | {r.timestamp for r in records}
        )
        time_label = {t: f"t{i}" for i, t in enumerate(times)}
        trace_label: dict[int, str] = {}
        span_label: dict[int, str] = {}

        def label(table: dict[int, str], prefix: str, value: int) -> str | None:
            if not value:
                return None
            if value not in table:
                table[value] = f"{prefix}-{len(table) + 1}"
            return table[value]

        def clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
            return {k: (f"<{k}>" if k in hidden else _plain(v)) for k, v in sorted(attributes.items())}

        entries: list[tuple[int, int, dict[str, Any]]] = []
        for order, span in enumerate(sorted(spans, key=lambda s: (s.start_time or 0))):
            context = span.context
            entry: dict[str, Any] = {
                "span": span.name,
                "kind": span.kind.name,
                "trace_id": label(trace_label, "trace", context.trace_id if context else 0),
                "span_id": label(span_label, "span", context.span_id if context else 0),
                "parent_id": label(span_label, "span", span.parent.span_id) if span.parent else None,
                "start": time_label.get(span.start_time or -1),
                "end": time_label.get(span.end_time or -1),
                "status": span.status.status_code.name,
                "attributes": clean(span.attributes or {}),
            }
            if span.events:
                entry["events"] = [{"name": e.name, "attributes": clean(e.attributes or {})} for e in span.events]
            entries.append((span.start_time or 0, order, entry))
        for order, record in enumerate(records):
            entry = {
                "log": record.message,
                "level": record.level,
                "logger": record.logger,
                "trace_id": label(trace_label, "trace", record.trace_id),
                "span_id": label(span_label, "span", record.span_id),
                "time": time_label.get(record.timestamp),
                "attributes": clean(record.attributes),
            }
            entries.append((record.timestamp, len(spans) + order, entry))
        return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _captured_log(item: ReadableLogRecord) -> CapturedLog:
    record = item.log_record
    body = record.body
    return CapturedLog(
        level=record.severity_text or "",
        message=body if isinstance(body, str) else str(body),
        logger=item.instrumentation_scope.name if item.instrumentation_scope else "",
        attributes=dict(record.attributes or {}),
        trace_id=record.trace_id or 0,
        span_id=record.span_id or 0,
        timestamp=record.timestamp or record.observed_timestamp or 0,
        record=item,
    )


def _is_memory(handle: Telemetry) -> bool:
    memory = handle.memory
    return memory.spans is not None and memory.metrics is not None and memory.logs is not None


def capture(**settings: Any) -> CapturedTelemetry:
    """Configure the memory profile for this process (once) and return an empty capture.

    A configuration of this process that does not keep all three signals in memory (say a test
    that configured the OTLP profile and did not shut it down) is shut down and replaced.
    ``settings`` go to ``kyo_otel.configure()`` when a configuration is created.
    """
    handle = telemetry_module.current()
    if handle is not None and not _is_memory(handle):
        warnings.warn(
            f"kyo_otel: replacing this process's configuration (traces={handle.settings.exporter('traces')}, "
            f"metrics={handle.settings.exporter('metrics')}, logs={handle.settings.exporter('logs')}) with the "
            "memory profile; apps instrumented before keep the old providers. In tests, configure with "
            "environment='test' (or KYO_OTEL_ENVIRONMENT=test), or shut the other configuration down.",
            stacklevel=2,
        )
        handle.shutdown()
        handle = None
    if handle is None:
        handle = telemetry_module.configure(**{"environment": "test", "profile": "memory", **settings})
    captured = CapturedTelemetry(handle)
    captured.clear()
    return captured
