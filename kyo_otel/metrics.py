"""The meter provider: one reader, DELTA temporality and exponential histograms everywhere.

The memory profile uses the same temporality and aggregation as production, so tests check the
points the collector will really receive (``kyo_otel.testing`` sums deltas across collections).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Protocol

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    Metric,
    MetricExporter,
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
    """A reader whose every collection also carries the metrics of its sources (``add_source``).

    SDK 1.45 has no ``MetricProducer``. The MeterProvider hands each reader its collect
    callback; wrapping that callback adds the sources' metrics to what the SDK collected, under
    the same resource and scope, before the reader exports or keeps it. Every export path (the
    OTLP and console exporters behind the periodic reader, the memory profile's reader) gets
    them, even from a collection where the SDK itself had nothing.
    """

    def __init__(self, *args: Any, scrubber: Scrubber | None = None, **kwargs: Any) -> None:
        self._sources: list[MetricSource] = []
        self._provider: MeterProvider | None = None
        self._scrubber = scrubber
        """Scrubs every point's attributes at collection (``kyo_otel.scrub.scrubbed_points``)."""
        self._scrub_failures = _FailClosed("metrics")
        super().__init__(*args, **kwargs)

    def add_source(self, source: MetricSource) -> None:
        self._sources.append(source)

    def _set_meter_provider(self, meter_provider: MeterProvider) -> None:
        super()._set_meter_provider(meter_provider)
        self._provider = meter_provider

    def _set_collect_callback(self, func: Any) -> None:  # type: ignore[misc]
        super()._set_collect_callback(None if func is None else functools.partial(self._collect_with_sources, func))

    def _collect_with_sources(self, collect: Any, reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        data = collect(reader, timeout_millis=timeout_millis)
        extra: list[tuple[InstrumentationScope, Metric]] = []
        for source in self._sources:
            try:
                metric = source.collect()
            except Exception:  # the SDK's own metrics still go out
                _logger.warning("kyo_otel could not collect %r", source, exc_info=True)
                continue
            if metric is not None:
                extra.append((source.scope, metric))
        data = with_metrics(data, extra, self._resource()) if extra else data
        if self._scrubber is None or data is None:
            return data
        return scrubbed_points(data, self._scrubber, self._scrub_failures)

    def _resource(self) -> Resource:
        # Read at each collection: after a fork the provider's resource gets a new instance id.
        config = getattr(self._provider, "_sdk_config", None)
        return getattr(config, "resource", None) or Resource.get_empty()


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


class PeriodicReader(WithProcessMetrics, PeriodicExportingMetricReader):
    """The OTLP and console profiles' reader, with the process's metrics."""


def memory_reader(scrubber: Scrubber | None = None) -> MemoryReader:
    return MemoryReader(
        preferred_temporality=DELTA_TEMPORALITY,
        preferred_aggregation=EXPONENTIAL_HISTOGRAMS,
        scrubber=scrubber,
    )


def periodic_reader(settings: Settings, exporter: MetricExporter, scrubber: Scrubber | None = None) -> PeriodicReader:
    return PeriodicReader(
        exporter,
        export_interval_millis=settings.metric_export_interval,
        export_timeout_millis=settings.otlp_timeout * 1000,
        scrubber=scrubber,
    )


def build_meter_provider(resource: Resource, reader: MetricReader) -> MeterProvider:
    # Exemplars are off: awsemf drops them, and the reservoir costs time on every measurement.
    return MeterProvider(
        resource=resource,
        metric_readers=[reader],
        exemplar_filter=AlwaysOffExemplarFilter(),
        shutdown_on_exit=False,
    )
