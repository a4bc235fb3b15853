"""Everything the memory profile's exporters received, serialized, to search for raw values."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricsData

from kyo_otel.telemetry import Telemetry


def exported_json(handle: Telemetry, metrics: MetricsData | None) -> str:
    """Spans, log records and ``metrics`` (a collection the caller took from
    ``handle.memory.metrics``: DELTA, so a second one would miss these points) as JSON lines."""
    spans = [span.to_json(indent=None) for span in handle.memory.spans.get_finished_spans()]
    logs = [record.to_json(indent=None) for record in handle.memory.logs.get_finished_logs()]
    return "\n".join([*spans, *logs, metrics.to_json(indent=None) if metrics is not None else ""])
