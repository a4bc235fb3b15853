"""kyo_otel under export pressure: every item a full queue drops is counted and reported (never
silently, never recursively), and a batch retried against an unreachable collector is encoded once."""

from __future__ import annotations

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kyo_otel import exporters, resolve_settings
from tests.support.subprocess_python import last_json_line, run_python

FLOOD = """
import json, logging, sys, kyo_otel
from kyo_otel import drops
logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # an app that silenced the SDK
handle = kyo_otel.configure(environment="production", otlp_endpoint="{endpoint}", span_queue_size=50,
                            log_queue_size=50, batch_delay=100, metric_export_interval=500)
tracer = handle.tracer_provider.get_tracer("flood")
log = logging.getLogger("flood")
for n in range(1000):
    with tracer.start_as_current_span("work"):
        log.warning("item %d", n)
counted = dict(drops.installed().total)
print(json.dumps({{"counted": counted, "flushed": handle.shutdown(10)}}))
"""


def test_every_dropped_item_is_counted_and_reported_once_per_interval(receiver, figures):
    receiver.delay = 1.0  # a slow collector: 50-item queues overflow at once
    result = run_python(FLOOD.format(endpoint=receiver.endpoint), timeout=60)
    report = last_json_line(result)
    dropped = receiver.metric_total("kyo.telemetry.dropped", **{"kyo.signal": "traces"})
    received = len(receiver.spans("work"))
    figures.record("drops under a slow collector", produced=1000, received=received, dropped_metric=dropped,
                   counted_in_process=report["counted"], stderr_warnings=result.stderr.count("WARNING kyo_otel"))
    assert report["flushed"] is True
    # Every span exported or counted as dropped. The SDK's BatchProcessor.emit counts a drop when it
    # sees the queue full, then appends, and the export thread may take an item in between: then
    # nothing was dropped, yet one was counted (seen once in a loaded full run: 100 + 901).
    assert dropped > 0 and 1000 <= received + dropped <= 1003
    assert report["counted"]["traces"] == dropped
    assert receiver.metric_total("kyo.telemetry.dropped", **{"kyo.signal": "logs"}) > 0
    # One warning as drops start, one summary at shutdown (interval: 60 s); none about recursion.
    assert result.stderr.count("kyo_otel is dropping telemetry") == 1
    assert result.stderr.count("kyo_otel dropped") == 1
    assert "recursive" not in result.stderr and "Queue full" not in result.stderr


def test_a_batch_retried_against_an_unavailable_collector_is_encoded_once(receiver):
    receiver.error = grpc.StatusCode.UNAVAILABLE
    settings = resolve_settings({"profile": "otlp", "otlp_endpoint": receiver.endpoint, "otlp_timeout": 2.5}, env={})
    exporter = exporters.otlp_span_exporter(settings)
    finished = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("retry").start_as_current_span("work"):
        pass
    spans = finished.get_finished_spans()  # one batch, passed as the same object each time

    first = exporter._translate_data(spans)  # what the first attempt sends
    assert exporter._translate_data(spans) is first  # and every retry of the same batch
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert receiver.refused["traces"] >= 2  # it was retried
    assert exporter._translate_data(spans) is not first  # nothing kept between exports



COUNTED_FLOOD = """
import json, logging, pytest
mp = pytest.MonkeyPatch()
{setup}
import kyo_otel
from kyo_otel import drops
handle = kyo_otel.configure(environment="production", otlp_endpoint="{endpoint}", span_queue_size=50,
                            log_queue_size=50, batch_delay=100, metric_export_interval=500)
tracer = handle.tracer_provider.get_tracer("flood")
for n in range(1000):
    with tracer.start_as_current_span("work"):
        pass
counted = dict(drops.installed().total)
print(json.dumps({{"counted": counted, "by": drops.counting_from(), "flushed": handle.shutdown(10)}}))
"""

SDK_PROCESSOR_LOGGER_SILENT = """
# Nothing reaches the SDK processors' logger: drops can only be counted from their metrics.
logging.getLogger("opentelemetry.sdk._shared_internal").disabled = True
"""

SDK_WITHOUT_PROCESSOR_METRICS = """
# Stand-ins for an SDK whose batch processors have no self-metrics (no meter_provider).
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk.trace import export as span_export

def without_metrics(cls):
    class Processor(cls):
        def __init__(self, exporter, max_queue_size=None, schedule_delay_millis=None,
                     max_export_batch_size=None, export_timeout_millis=None):
            super().__init__(exporter, max_queue_size=max_queue_size, schedule_delay_millis=schedule_delay_millis,
                             max_export_batch_size=max_export_batch_size, export_timeout_millis=export_timeout_millis)
    return Processor

mp.setattr(span_export, "BatchSpanProcessor", without_metrics(span_export.BatchSpanProcessor))
mp.setattr(log_export, "BatchLogRecordProcessor", without_metrics(log_export.BatchLogRecordProcessor))
"""


def _flood(receiver, setup: str, figures, scenario: str) -> tuple[dict, float, int]:
    receiver.delay = 1.0  # a slow collector: 50-item queues overflow at once
    result = run_python(COUNTED_FLOOD.format(setup=setup, endpoint=receiver.endpoint), timeout=60)
    report = last_json_line(result)
    dropped = receiver.metric_total("kyo.telemetry.dropped", **{"kyo.signal": "traces"})
    received = len(receiver.spans("work"))
    figures.record(scenario, produced=1000, received=received, dropped_metric=dropped, counted=report["counted"], by=report["by"])
    assert report["flushed"] is True
    assert dropped > 0 and 1000 <= received + dropped <= 1003  # see the test above for the 1003
    assert report["counted"]["traces"] == dropped
    return report, dropped, received


def test_drops_are_counted_from_the_sdk_processors_own_metrics_not_their_log_messages(receiver, figures):
    report, _, _ = _flood(receiver, SDK_PROCESSOR_LOGGER_SILENT, figures, "drops counted by processor metrics")
    assert report["by"] == "processor metrics"


def test_on_an_sdk_without_processor_metrics_drops_are_counted_from_its_log_messages(receiver, figures):
    report, _, _ = _flood(receiver, SDK_WITHOUT_PROCESSOR_METRICS, figures, "drops counted by log messages (fallback)")
    assert report["by"] == "log messages"


def test_an_application_that_turned_the_sdk_metrics_on_still_gets_them(receiver, figures):
    setup = "import os; os.environ['OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED'] = 'true'"
    report, dropped, _ = _flood(receiver, setup, figures, "drops with the SDK's own metrics on")
    assert report["by"] == "processor metrics"
    sdk_dropped = receiver.metric_total("otel.sdk.processor.span.processed", **{"error.type": "queue_full"})
    assert sdk_dropped == dropped
