"""Helpers for the sample-app tests: reading the memory profile's telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kyo_otel


class Recorded:
    """The telemetry recorded since ``start()``: spans, log records, metric points (DELTA, summed)."""

    def __init__(self, handle: kyo_otel.Telemetry) -> None:
        assert handle.memory.spans is not None and handle.memory.logs is not None and handle.memory.metrics is not None
        self.handle = handle

    def start(self) -> Recorded:
        self.handle.memory.spans.clear()
        self.handle.memory.logs.clear()
        self.handle.memory.metrics.get_metrics_data()  # drop the points of earlier tests
        self._points: list[tuple[str, dict[str, Any], Any]] = []
        return self

    @property
    def spans(self) -> list[Any]:
        return list(self.handle.memory.spans.get_finished_spans())

    @property
    def logs(self) -> list[Any]:
        return [item.log_record for item in self.handle.memory.logs.get_finished_logs()]

    def logs_of(self, logger: str) -> list[Any]:
        return [
            item.log_record
            for item in self.handle.memory.logs.get_finished_logs()
            if item.instrumentation_scope and item.instrumentation_scope.name == logger
        ]

    def points(self) -> list[tuple[str, dict[str, Any], Any]]:
        """Every point collected so far in this test (each collection returns only the new deltas)."""
        data = self.handle.memory.metrics.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else []:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        self._points.append((metric.name, dict(point.attributes or {}), point))
        return self._points

    def total(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's points (or count of a histogram's) whose attributes include ``attributes``."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        total = 0.0
        for metric, attrs, point in self.points():
            if metric == name and all(attrs.get(k) == v for k, v in wanted.items()):
                total += point.count if hasattr(point, "count") else point.value
        return total

    def strings(self) -> Iterator[str]:
        """Every string a span or log record carries: names, bodies, attribute values, events."""
        for span in self.spans:
            yield span.name
            yield from (str(v) for v in (span.attributes or {}).values())
            for event in span.events:
                yield event.name
                yield from (str(v) for v in (event.attributes or {}).values())
            yield span.status.description or ""
        for record in self.logs:
            yield str(record.body)
            yield from (str(v) for v in (record.attributes or {}).values())

    def assert_never_contains(self, *secrets: str) -> None:
        leaks = [(secret, text) for text in self.strings() for secret in secrets if secret and secret in text]
        assert not leaks, f"telemetry carries a secret: {leaks[:3]}"
