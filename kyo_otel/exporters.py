"""Exporters per profile: console (people), otlp (a collector), memory (tests), none.

OTLP metric exporters prefer DELTA temporality and base-2 exponential histograms: the
collector's awsemf exporter converts neither, and CloudWatch computes percentiles only from
exponential histograms (see ``shared/reference/aws-pipeline-facts.md``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from kyo_otel._sdk import is_on, turn_off
from kyo_otel._sdk.encode_once import encoding_once
from kyo_otel._sdk.instrument_types import SYNC_GAUGE
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
}
if SYNC_GAUGE is not None:  # fast path sync-gauge-type; else the SDK's default, the same
    DELTA_TEMPORALITY[SYNC_GAUGE] = AggregationTemporality.CUMULATIVE
EXPONENTIAL_HISTOGRAMS: dict[type, Any] = {Histogram: ExponentialBucketHistogramAggregation()}


def _otlp_kwargs(settings: Settings, signal_path: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": dict(settings.otlp_headers), "timeout": settings.otlp_timeout}
    if settings.otlp_protocol == "grpc":
        kwargs["endpoint"] = settings.otlp_endpoint
        kwargs["insecure"] = settings.otlp_endpoint.startswith("http://")
    else:
        kwargs["endpoint"] = f"{settings.otlp_endpoint}/v1/{signal_path}"
    return kwargs


def _kyo_encoded(make_class: Any, signal: str, settings: Settings) -> Any:
    """kyo's OTLP/gRPC exporter (``kyo_otel.otlp_wire``), or None when the fast path is off or
    cannot be built on this SDK (it is then off)."""
    if not is_on("otlp-wire-encoder"):
        return None
    try:
        return encoding_once(make_class())(**_otlp_kwargs(settings, signal))
    except Exception as error:
        turn_off("otlp-wire-encoder", f"building the {signal} exporter: {type(error).__name__}: {error}")
        return None


def otlp_span_exporter(settings: Settings) -> Any:
    if settings.otlp_protocol == "grpc":
        # The SDK's gRPC exporter with kyo_otel's span encoder (same message, a quarter of the CPU).
        from kyo_otel.otlp_wire import grpc_span_exporter_class

        exporter = _kyo_encoded(grpc_span_exporter_class, "traces", settings)
        if exporter is not None:
            return exporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return encoding_once(OTLPSpanExporter)(**_otlp_kwargs(settings, "traces"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(**_otlp_kwargs(settings, "traces"))


def otlp_metric_exporter(settings: Settings) -> Any:
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        OTLPMetricExporter = encoding_once(OTLPMetricExporter)  # noqa: N806
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

        exporter = _kyo_encoded(grpc_log_exporter_class, "logs", settings)
        if exporter is not None:
            return exporter
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        return encoding_once(GrpcLogExporter)(**_otlp_kwargs(settings, "logs"))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(**_otlp_kwargs(settings, "logs"))
