"""Everything the memory profile's exporters received, serialized, to search for raw values."""

from __future__ import annotations

from kyo_otel.telemetry import Telemetry


def exported_json(handle: Telemetry) -> str:
    """Spans, log records and metric points (a collection: DELTA, so since the last one) as JSON lines."""
    spans = [span.to_json(indent=None) for span in handle.memory.spans.get_finished_spans()]
    logs = [record.to_json(indent=None) for record in handle.memory.logs.get_finished_logs()]
    metrics = handle.memory.metrics.get_metrics_data()
    return "\n".join([*spans, *logs, metrics.to_json(indent=None) if metrics is not None else ""])
