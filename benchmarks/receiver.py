"""kyo_otel's OTLP receiver, counting instead of keeping: accepts, counts, discards.

A benchmark sends far more than a test; ``OtlpReceiver`` would keep every request. This one
counts spans, log records and metric data points per ``service.name``, so the benchmark can show
that each variant really exported what it produced. It counts by length, per scope, and decodes
only ``service.name``: the receiver shares the CPU being measured.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kyo_otel.receiver import OtlpReceiver

# signal -> (resource groups, scope groups, items), and the name the count is shown under
_LAYOUT = {
    "traces": ("resource_spans", "scope_spans", "spans", "spans"),
    "logs": ("resource_logs", "scope_logs", "log_records", "logs"),
    "metrics": ("resource_metrics", "scope_metrics", "metrics", "metric points"),
}


def _service(resource: Any) -> str:
    return next((kv.value.string_value for kv in resource.attributes if kv.key == "service.name"), "?")


def _points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def _count(signal: str, items: Any) -> int:
    """Spans or log records in one scope group, or the data points of its metrics."""
    return sum(_points(metric) for metric in items) if signal == "metrics" else len(items)


class CountingReceiver(OtlpReceiver):
    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.counts: Counter[tuple[str, str]] = Counter()

    def _receive(self, signal: str, request: Any, context: Any) -> None:
        """Count one export request (instead of keeping it)."""
        groups, scopes, items, shown = _LAYOUT[signal]
        counted = [
            (_service(group.resource), sum(_count(signal, getattr(scoped, items)) for scoped in getattr(group, scopes)))
            for group in getattr(request, groups)
        ]
        with self._lock:
            for service, n in counted:
                self.counts[(service, shown)] += n
