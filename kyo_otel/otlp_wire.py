"""Spans and log records to OTLP protobuf bytes for the gRPC exporters: the fast path
``otlp-wire-encoder``, which lives in ``kyo_otel._sdk.otlp_wire`` (it uses the SDK's private
encoding helpers and exporter fields)."""

from kyo_otel._sdk.otlp_wire import LogEncoder, SpanEncoder, grpc_log_exporter_class, grpc_span_exporter_class

__all__ = ["LogEncoder", "SpanEncoder", "grpc_log_exporter_class", "grpc_span_exporter_class"]
