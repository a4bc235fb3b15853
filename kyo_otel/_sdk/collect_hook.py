"""Fast path ``metric-collect-hook``: a metric reader that wraps the collect callback the
MeterProvider hands it (the reader's private ``_set_collect_callback``), so that every
collection carries kyo's process metrics (``kyo_otel.histogram``) and is scrubbed before any
exporter, or the memory profile's reader, sees it.

Off: ``kyo_otel.metrics`` does the same at the public edges (the memory reader's
``get_metrics_data``, ``ProcessMetricsExporter`` behind the periodic reader). Without either, an
application counter's ``{"user.phone": ...}`` would be exported raw and ``http.server.request.duration``
would be missing: the probe checks that the SDK still calls the hook at collection.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader

from kyo_otel._sdk import fast_path, is_on


class _CollectHook:
    """Mixed into a ``kyo_otel.metrics.WithProcessMetrics`` reader."""

    hooked = True

    def _set_collect_callback(self, func: Any) -> None:
        super()._set_collect_callback(None if func is None else functools.partial(self._collect_with_sources, func))  # type: ignore[misc]

    def _collect_with_sources(self, collect: Any, reader: Any, timeout_millis: float = 10_000) -> Any:
        return self.with_sources(collect(reader, timeout_millis=timeout_millis))  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=None)
def _hooked(cls: type) -> type:
    return type(cls.__name__, (_CollectHook, cls), {"__module__": cls.__module__, "__doc__": cls.__doc__})


def hooked(cls: type) -> type:
    """``cls`` (a ``WithProcessMetrics`` reader class) with the collect hook, while the path is on."""
    return _hooked(cls) if is_on("metric-collect-hook") else cls


@fast_path(
    "metric-collect-hook",
    replaces="(no SDK 1.45 equivalent: MetricProducer) the reader's collect callback, to add kyo's histograms and scrub every collection",
    fallback="the memory reader's get_metrics_data and a wrapping exporter behind the periodic reader",
)
def probe() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    method = getattr(MetricReader, "_set_collect_callback", None)
    if not callable(method):
        raise AttributeError("MetricReader has no _set_collect_callback")
    if len(inspect.signature(method).parameters) != 2:
        raise TypeError(f"MetricReader._set_collect_callback{inspect.signature(method)} takes other arguments")
    calls: list[Any] = []

    class Probe(InMemoryMetricReader):
        def _set_collect_callback(self, func: Any) -> None:
            def counted(reader: Any, timeout_millis: float = 10_000) -> Any:
                calls.append(reader)
                return func(reader, timeout_millis=timeout_millis)

            super()._set_collect_callback(None if func is None else counted)

    reader = Probe()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        probe_name = "kyo_otel.probe"  # a probe meter, not a catalog metric: nothing exports it
        provider.get_meter(probe_name).create_counter(probe_name).add(1)
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    if calls != [reader] or data is None or not data.resource_metrics:
        raise RuntimeError("the SDK does not collect through the callback it hands the reader")
