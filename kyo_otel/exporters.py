"""Exporters per profile: console (people), otlp (a collector), memory (tests), none.

OTLP metric exporters prefer DELTA temporality and base-2 exponential histograms: the
collector's awsemf exporter converts neither, and CloudWatch computes percentiles only from
exponential histograms (see ``shared/reference/aws-pipeline-facts.md``).
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics._internal.instrument import Gauge as SyncGauge
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from kyo_otel.config import Settings

# Sums are DELTA (awsemf would convert cumulative ones itself, but one rule is simpler to check);
# UpDownCounters stay CUMULATIVE as the OTLP spec recommends for non-monotonic sums.
DELTA_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
    SyncGauge: AggregationTemporality.CUMULATIVE,
}
EXPONENTIAL_HISTOGRAMS: dict[type, Any] = {Histogram: ExponentialBucketHistogramAggregation()}


def _otlp_kwargs(settings: Settings, signal_path: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": dict(settings.otlp_headers), "timeout": settings.otlp_timeout}
    if settings.otlp_protocol == "grpc":
        kwargs["endpoint"] = settings.otlp_endpoint
        kwargs["insecure"] = settings.otlp_endpoint.startswith("http://")
    else:
        kwargs["endpoint"] = f"{settings.otlp_endpoint}/v1/{signal_path}"
    return kwargs


class _EncodeOnce:
    """For the OTLP/gRPC exporters: encode a batch once, however often it is retried.

    The SDK's gRPC exporter retries a failed batch (about 1 s, then 2 s later, within its
    timeout) and turns it into protobuf again for each attempt: 40 ms of CPU, holding the GIL,
    for 512 spans. While the collector is down every batch fails, so that repeated encoding is
    most of what telemetry costs the request threads; encoding once removes two thirds of it.
    """

    _kyo_last: tuple[Any, Any] | None = None

    def _translate_data(self, data: Any) -> Any:
        last = self._kyo_last
        if last is not None and last[0] is data:
            return last[1]
        request = super()._translate_data(data)  # type: ignore[misc]
        self._kyo_last = (data, request)
        return request

    def _export(self, data: Any) -> Any:
        try:
            return super()._export(data)  # type: ignore[misc]
        finally:
            self._kyo_last = None  # keep no batch alive between exports


@functools.lru_cache(maxsize=None)
def _encode_once(cls: type) -> type:
    if not hasattr(cls, "_translate_data") or not hasattr(cls, "_export"):
        return cls  # another SDK layout: keep the SDK's own behaviour
    return type(cls.__name__, (_EncodeOnce, cls), {"__module__": __name__, "__doc__": cls.__doc__})


def otlp_span_exporter(settings: Settings) -> Any:
    if settings.otlp_protocol == "grpc":
        # The SDK's gRPC exporter with kyo_otel's span encoder (same message, a quarter of the CPU).
        from kyo_otel.otlp_wire import grpc_span_exporter_class

        return _encode_once(grpc_span_exporter_class())(**_otlp_kwargs(settings, "traces"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(**_otlp_kwargs(settings, "traces"))


def otlp_metric_exporter(settings: Settings) -> Any:
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        OTLPMetricExporter = _encode_once(OTLPMetricExporter)  # noqa: N806
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(
        preferred_temporality=DELTA_TEMPORALITY,
        preferred_aggregation=EXPONENTIAL_HISTOGRAMS,
        **_otlp_kwargs(settings, "metrics"),
    )


def otlp_log_exporter(settings: Settings) -> Any:
    if settings.otlp_protocol == "grpc":
        from kyo_otel.otlp_wire import grpc_log_exporter_class

        return _encode_once(grpc_log_exporter_class())(**_otlp_kwargs(settings, "logs"))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(**_otlp_kwargs(settings, "logs"))
