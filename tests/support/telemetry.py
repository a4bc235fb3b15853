"""The process's memory-profile telemetry, shared by the tests that inspect exported signals."""

from __future__ import annotations

import kyo_otel
from kyo_otel.telemetry import Telemetry


def memory_telemetry() -> Telemetry:
    """``configure(environment="test")``: the one configuration of this process, emptied.

    One configuration per process: when an earlier test configured something else (another
    profile, scrubbing off), that one is shut down and the memory profile configured instead.
    """
    handle = kyo_otel.configure(environment="test")
    memory = handle.memory
    if None in (memory.spans, memory.logs, memory.metrics) or handle.scrubber is None:
        handle.shutdown()
        handle = kyo_otel.configure(environment="test", profile="memory", scrubbing=True)
    handle.memory.spans.clear()
    handle.memory.logs.clear()
    handle.memory.metrics.get_metrics_data()  # DELTA: collecting drops what earlier tests recorded
    return handle


def exported_json(handle: Telemetry) -> str:
    """Everything the memory exporters received, serialized: spans, log records, metric points."""
    spans = [span.to_json(indent=None) for span in handle.memory.spans.get_finished_spans()]
    logs = [record.to_json(indent=None) for record in handle.memory.logs.get_finished_logs()]
    metrics = handle.memory.metrics.get_metrics_data()
    return "\n".join([*spans, *logs, metrics.to_json(indent=None) if metrics is not None else ""])
