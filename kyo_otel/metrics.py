"""The meter provider: one reader, DELTA temporality and exponential histograms everywhere.

The memory profile uses the same temporality and aggregation as production, so tests check the
points the collector will really receive (``kyo_otel.testing`` sums deltas across collections).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from kyo_otel.config import Settings
from kyo_otel.exporters import DELTA_TEMPORALITY, EXPONENTIAL_HISTOGRAMS
from kyo_otel.scrub import Scrubber, _FailClosed, scrubbed_points

_logger = logging.getLogger(__name__)


class MetricSource(Protocol):
    """Metric points aggregated outside the SDK (``kyo_otel.histogram.ProcessHistogram``)."""

    scope: InstrumentationScope

    def collect(self) -> Metric | None: ...


class WithProcessMetrics(MetricReader):
    """A reader whose every collection also carries the metrics of its sources (``add_source``),
    every point's attributes scrubbed (``kyo_otel.scrub.scrubbed_points``).

    SDK 1.45 has no ``MetricProducer``. With the fast path ``metric-collect-hook``
    (``kyo_otel._sdk.collect_hook``) the reader wraps the collect callback the MeterProvider
    hands it, so every export path (the OTLP and console exporters behind the periodic reader,
    the memory profile's reader) gets them, even from a collection where the SDK itself had
    nothing. With the path off, the same is done at the public edges: ``get_metrics_data`` of
    the memory reader, the exporter behind the periodic reader (``ProcessMetricsExporter``).
    """

    hooked = False
    """Whether the collect callback is wrapped (set by the fast path's subclass)."""

    def __init__(self, *args: Any, scrubber: Scrubber | None = None, **kwargs: Any) -> None:
        self._sources: list[MetricSource] = []
        self.resource: Resource = Resource.get_empty()
        """The provider's resource, for metrics of a collection where the SDK had none (set by
        ``build_meter_provider``, and again after a fork)."""
        self._scrubber = scrubber
        self._scrub_failures = _FailClosed("metrics")
        super().__init__(*args, **kwargs)

    def add_source(self, source: MetricSource) -> None:
        self._sources.append(source)

    def with_sources(self, data: MetricsData | None) -> MetricsData | None:
        """``data`` with the sources' metrics added, scrubbed."""
        extra: list[tuple[InstrumentationScope, Metric]] = []
        for source in self._sources:
            try:
                metric = source.collect()
            except Exception:  # the SDK's own metrics still go out
                _logger.warning("kyo_otel could not collect %r", source, exc_info=True)
                continue
            if metric is not None:
                extra.append((source.scope, metric))
        data = with_metrics(data, extra, self.resource) if extra else data
        if self._scrubber is None or data is None:
            return data
        return scrubbed_points(data, self._scrubber, self._scrub_failures)


class ProcessMetricsExporter(MetricExporter):
    """The periodic reader's exporter while ``metric-collect-hook`` is off: what it is given,
    with the reader's sources added and scrubbed (``WithProcessMetrics.with_sources``)."""

    def __init__(self, exporter: MetricExporter, reader: WithProcessMetrics | None = None) -> None:
        super().__init__(preferred_temporality=DELTA_TEMPORALITY, preferred_aggregation=EXPONENTIAL_HISTOGRAMS)
        self.exporter = exporter
        self.reader = reader

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        data = self.reader.with_sources(metrics_data) if self.reader is not None else metrics_data
        if data is None:
            return MetricExportResult.SUCCESS
        return self.exporter.export(data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


def with_metrics(data: MetricsData | None, extra: list[tuple[InstrumentationScope, Metric]], resource: Resource) -> MetricsData:
    """``data`` plus ``extra`` metrics, each in the ScopeMetrics of its scope (made if missing)."""
    if data is None or not data.resource_metrics:
        data = MetricsData([ResourceMetrics(resource=resource, scope_metrics=[], schema_url=resource.schema_url)])
    first, *others = data.resource_metrics
    scopes = {sm.scope: ScopeMetrics(sm.scope, list(sm.metrics), sm.schema_url) for sm in first.scope_metrics}
    for scope, metric in extra:
        if scope not in scopes:
            scopes[scope] = ScopeMetrics(scope, [], scope.schema_url or "")
        scopes[scope].metrics.append(metric)  # type: ignore[attr-defined]
    merged = ResourceMetrics(resource=first.resource, scope_metrics=list(scopes.values()), schema_url=first.schema_url)
    return MetricsData([merged, *others])


class MemoryReader(WithProcessMetrics, InMemoryMetricReader):
    """The memory profile's reader (``get_metrics_data``), with the process's metrics."""

    def get_metrics_data(self) -> MetricsData | None:
        data = super().get_metrics_data()
        return data if self.hooked else self.with_sources(data)


class PeriodicReader(WithProcessMetrics, PeriodicExportingMetricReader):
    """The OTLP and console profiles' reader, with the process's metrics."""


def memory_reader(scrubber: Scrubber | None = None) -> MemoryReader:
    from kyo_otel._sdk.collect_hook import hooked

    return hooked(MemoryReader)(
        preferred_temporality=DELTA_TEMPORALITY,
        preferred_aggregation=EXPONENTIAL_HISTOGRAMS,
        scrubber=scrubber,
    )


def periodic_reader(settings: Settings, exporter: MetricExporter, scrubber: Scrubber | None = None) -> PeriodicReader:
    from kyo_otel._sdk.collect_hook import hooked

    cls = hooked(PeriodicReader)
    wrapper = None if cls.hooked else ProcessMetricsExporter(exporter)
    reader = cls(
        wrapper or exporter,
        export_interval_millis=settings.metric_export_interval,
        export_timeout_millis=settings.otlp_timeout * 1000,
        scrubber=scrubber,
    )
    if wrapper is not None:
        wrapper.reader = reader
    return reader


def build_meter_provider(resource: Resource, reader: MetricReader) -> MeterProvider:
    if isinstance(reader, WithProcessMetrics):
        reader.resource = resource
    # Exemplars are off: awsemf drops them, and the reservoir costs time on every measurement.
    return MeterProvider(
        resource=resource,
        metric_readers=[reader],
        exemplar_filter=AlwaysOffExemplarFilter(),
        shutdown_on_exit=False,
    )
