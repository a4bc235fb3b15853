"""The meter provider: one reader, DELTA temporality and exponential histograms everywhere.

The memory profile uses the same temporality and aggregation as production, so tests check the
points the collector will really receive (``kyo_otel.testing`` sums deltas across collections).
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from kyo_otel.config import Settings
from kyo_otel.exporters import DELTA_TEMPORALITY, EXPONENTIAL_HISTOGRAMS


def memory_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader(
        preferred_temporality=DELTA_TEMPORALITY,
        preferred_aggregation=EXPONENTIAL_HISTOGRAMS,
    )


def periodic_reader(settings: Settings, exporter: MetricExporter) -> PeriodicExportingMetricReader:
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.metric_export_interval,
        export_timeout_millis=settings.otlp_timeout * 1000,
    )


def build_meter_provider(resource: Resource, reader: MetricReader) -> MeterProvider:
    # Exemplars are off: awsemf drops them, and the reservoir costs time on every measurement.
    return MeterProvider(
        resource=resource,
        metric_readers=[reader],
        exemplar_filter=AlwaysOffExemplarFilter(),
        shutdown_on_exit=False,
    )
