"""A real OTLP receiver on 127.0.0.1, for tests and benchmarks: a collector you can break.

It serves the three OTLP services from the generated stubs in ``opentelemetry-proto`` over gRPC
(or, with ``protocol="http/protobuf"``, the OTLP/HTTP paths ``/v1/traces``...) and keeps
every span, metric data point and log record it accepts, decoded into plain objects::

    from kyo_otel.receiver import OtlpReceiver

    with OtlpReceiver() as receiver:            # started on a free port
        kyo_otel.configure(profile="otlp", otlp_endpoint=receiver.endpoint)
        ...
        receiver.wait_for(lambda: receiver.spans("GET /otp"), timeout=5)
        receiver.metric_total("kyo.otp.sent", **{"kyo.tenant.id": "acme"})

What it received: ``spans(name, **attributes)``, ``metric_points(name, **attributes)``,
``metric_total(name, **attributes)`` (the sum of a DELTA counter, or a histogram's count),
``logs(body_contains, **attributes)``, ``contains(text or bytes pattern)`` (a leak check over
every payload), ``requests(signal)`` (the export requests themselves, as the exporters built
them), ``counts()``, ``calls`` / ``refused`` per signal, ``clear()``, and
``wait_for(predicate, timeout)``. Requests are decoded on the first query after them, so serving
an export costs the receiver (and the process it shares) almost nothing.

Faults, to prove the application survives its collector:

- ``stop()`` / ``start()``: the collector goes down and comes back on the same port;
- ``delay = 2.0``: every export call waits two seconds before it is answered (a slow collector);
- ``error = grpc.StatusCode.UNAVAILABLE``: every export call is refused with that status (over
  HTTP, its OTLP equivalent: 503, 429 for RESOURCE_EXHAUSTED...), and nothing of it is kept.

Thread-safe: the gRPC server answers on its own threads while the test reads.
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from kyo_otel.config import SIGNALS

T = TypeVar("T")


# --- what is kept ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str  # 32 hex characters
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]
    scope: str
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    trace_state: str = ""  # W3C tracestate text, "" when none


@dataclass(frozen=True)
class MetricPoint:
    """One data point. ``value`` is a sum's or gauge's value (a histogram's sum); ``count`` is a
    histogram's count (``None`` otherwise)."""

    name: str
    kind: str  # sum | gauge | histogram | exponential_histogram | summary
    attributes: dict[str, Any]
    value: float
    count: int | None
    temporality: str | None  # delta | cumulative | None (gauges)
    unit: str
    resource: dict[str, Any]
    scope: str
    time_unix_nano: int = 0


@dataclass(frozen=True)
class ReceivedLog:
    body: Any
    severity_text: str
    severity_number: int
    attributes: dict[str, Any]
    trace_id: str  # "" when the record was not emitted inside a span
    span_id: str
    resource: dict[str, Any]
    scope: str
    event_name: str = ""


@dataclass
class _Store:
    """Requests as received, decoded on the first query after them: answering an export call
    costs the receiver almost nothing, so it takes little CPU from the process it serves."""

    requests: list[tuple[str, Any]] = field(default_factory=list)
    decoded: int = 0  # requests[:decoded] are in the lists below
    spans: list[ReceivedSpan] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)

    def decode(self) -> None:
        for signal, request in self.requests[self.decoded :]:
            if signal == "traces":
                self.spans.extend(_decode_spans(request))
            elif signal == "metrics":
                self.points.extend(_decode_points(request))
            else:
                self.logs.extend(_decode_logs(request))
        self.decoded = len(self.requests)


# --- decoding ----------------------------------------------------------------------------


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _each(groups: Any, scopes: str, items: str) -> Iterator[tuple[dict[str, Any], str, Any]]:
    """(resource attributes, scope name, item) for every span, metric or log record of a request:
    ``groups`` is its ``resource_spans`` (``resource_metrics``...), grouped by ``scopes`` and
    holding ``items``."""
    for group in groups:
        resource = _attributes(group.resource.attributes)
        for scoped in getattr(group, scopes):
            for item in getattr(scoped, items):
                yield resource, scoped.scope.name, item


def _decode_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(
            name=span.name,
            kind=span.kind,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            attributes=_attributes(span.attributes),
            status_code=span.status.code,
            resource=resource,
            scope=scope,
            start_time_unix_nano=span.start_time_unix_nano,
            end_time_unix_nano=span.end_time_unix_nano,
            trace_state=span.trace_state,
        )
        for resource, scope, span in _each(request.resource_spans, "scope_spans", "spans")
    ]


_TEMPORALITY = {0: None, 1: "delta", 2: "cumulative"}


def _decode_points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[MetricPoint]:
    out = []
    for resource, scope, metric in _each(request.resource_metrics, "scope_metrics", "metrics"):
        kind = metric.WhichOneof("data")
        if kind is None:
            continue
        data = getattr(metric, kind)
        temporality = _TEMPORALITY.get(getattr(data, "aggregation_temporality", 0))
        for point in data.data_points:
            if kind in ("sum", "gauge"):
                value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                count = None
            else:
                value, count = point.sum, point.count
            out.append(
                MetricPoint(
                    name=metric.name,
                    kind=kind,
                    attributes=_attributes(point.attributes),
                    value=value,
                    count=count,
                    temporality=temporality,
                    unit=metric.unit,
                    resource=resource,
                    scope=scope,
                    time_unix_nano=point.time_unix_nano,
                )
            )
    return out


def _decode_logs(request: logs_service_pb2.ExportLogsServiceRequest) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            body=_value(record.body),
            severity_text=record.severity_text,
            severity_number=record.severity_number,
            attributes=_attributes(record.attributes),
            trace_id=record.trace_id.hex() if any(record.trace_id) else "",
            span_id=record.span_id.hex() if any(record.span_id) else "",
            resource=resource,
            scope=scope,
            event_name=getattr(record, "event_name", ""),
        )
        for resource, scope, record in _each(request.resource_logs, "scope_logs", "log_records")
    ]


def _matches(attributes: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(attributes.get(key) == value for key, value in wanted.items())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a receiver that starts later, or never)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- the receiver ------------------------------------------------------------------------


class OtlpReceiver:
    """An OTLP server on ``host:port`` (gRPC, or ``protocol="http/protobuf"``) that keeps what it
    receives (see the module doc).

    ``port=0`` picks a free port when the receiver is created, so ``endpoint`` is known before
    ``start()`` (an application can be pointed at a collector that is not up yet).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", max_workers: int = 16, protocol: str = "grpc") -> None:
        if protocol not in ("grpc", "http/protobuf"):
            raise ValueError(f"protocol must be grpc or http/protobuf, not {protocol!r}")
        self.protocol = protocol
        self.host = host
        self.port = port or free_port(host)
        self.max_workers = max_workers
        self.delay = 0.0
        """Seconds each export call waits before it is answered (0: answer at once)."""
        self.error: grpc.StatusCode | None = None
        """When set, every export call is refused with this status and nothing is kept."""
        self.calls = {signal: 0 for signal in SIGNALS}
        """Export calls answered successfully, per signal."""
        self.refused = {signal: 0 for signal in SIGNALS}
        """Export calls refused because ``error`` was set, per signal."""
        self._store = _Store()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: Any = None  # a grpc.Server, or an _HttpServer
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The URL to give the exporters (``OTEL_EXPORTER_OTLP_ENDPOINT``; over HTTP they add
        ``/v1/traces``, ``/v1/metrics``, ``/v1/logs``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OtlpReceiver:
        """Start serving (again, after ``stop()``) on the same port. Idempotent."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        if self.protocol == "http/protobuf":
            self._server = _bind(lambda: _HttpServer(self), self.host, self.port)
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="otlp-receiver"),
            # The port must be ours alone, and free again at once after stop() (restart).
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), server)
        _bind(lambda: _add_grpc_port(server, self.host, self.port), self.host, self.port)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving at once: calls in progress are cancelled, the port closes. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            self._stopping.set()  # wakes handlers sleeping in ``delay``
            if isinstance(server, _HttpServer):
                server.close()
            else:
                server.stop(grace=None).wait(5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was received -----------------------------------------------------------------

    def spans(self, name: str | None = None, **attributes: Any) -> list[ReceivedSpan]:
        """Spans received, optionally only those with this name and these attribute values.

        Attribute keys contain dots, so pass them as a mapping: ``spans(**{"http.route": "/x"})``.
        """
        with self._lock:
            self._store.decode()
            found = list(self._store.spans)
        return [s for s in found if (name is None or s.name == name) and _matches(s.attributes, attributes)]

    def metric_points(self, name: str | None = None, **attributes: Any) -> list[MetricPoint]:
        """Data points received, optionally of one metric and with these attribute values."""
        with self._lock:
            self._store.decode()
            found = list(self._store.points)
        return [p for p in found if (name is None or p.name == name) and _matches(p.attributes, attributes)]

    def metric_total(self, name: str, **attributes: Any) -> float:
        """The total of a DELTA metric over everything received: the sum of a counter's values,
        or the number of measurements in a histogram (the sum of its points' counts)."""
        total: float = 0
        for point in self.metric_points(name, **attributes):
            total += point.count if point.count is not None else point.value
        return total

    def logs(self, body_contains: str | None = None, **attributes: Any) -> list[ReceivedLog]:
        """Log records received, optionally whose body contains a text and with these attributes."""
        with self._lock:
            self._store.decode()
            found = list(self._store.logs)
        return [
            r
            for r in found
            if (body_contains is None or body_contains in str(r.body)) and _matches(r.attributes, attributes)
        ]

    def contains(self, text: str | bytes | re.Pattern[bytes]) -> bool:
        """Whether any payload received, in any signal, contains this text (UTF-8 encoded), or
        matches this bytes pattern: a leak check over everything the collector was sent."""
        with self._lock:
            requests = [request for _, request in self._store.requests]
        if isinstance(text, re.Pattern):
            return any(text.search(request.SerializeToString()) for request in requests)
        needle = text.encode() if isinstance(text, str) else text
        return any(needle in request.SerializeToString() for request in requests)

    def requests(self, signal: str | None = None) -> list[Any]:
        """The export requests received, in order: the ``Export{Trace,Metrics,Logs}ServiceRequest``
        protobuf messages exactly as the exporters sent them, of one signal ("traces", "metrics",
        "logs") or of all. For checks on what the decoded views flatten away (resource grouping,
        a metric's data kind, its aggregation temporality enum). Treat them as read-only."""
        if signal is not None and signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
        with self._lock:
            return [request for kind, request in self._store.requests if signal is None or kind == signal]

    def counts(self) -> dict[str, int]:
        """How many spans, metric points and log records were kept so far."""
        with self._lock:
            self._store.decode()
            return {"spans": len(self._store.spans), "points": len(self._store.points), "logs": len(self._store.logs)}

    def clear(self) -> None:
        """Forget everything received (the call counters too)."""
        with self._lock:
            self._store = _Store()
            self.calls = {signal: 0 for signal in SIGNALS}
            self.refused = {signal: 0 for signal in SIGNALS}

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait until ``predicate()`` returns something truthy and return it; after ``timeout``
        seconds return its last (falsy) value. Re-checked whenever something arrives."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            remaining = deadline - time.monotonic()
            if result or remaining <= 0:
                return result
            with self._changed:
                self._changed.wait(min(remaining, 0.25))

    # -- serving ---------------------------------------------------------------------------

    def _receive(self, signal: str, request: Any, context: grpc.ServicerContext | None) -> grpc.StatusCode | None:
        """Keep one export request, or refuse it: returns the status refused with (HTTP)."""
        if self.delay > 0:
            self._stopping.wait(self.delay)
        error = self.error
        if error is not None:
            with self._lock:
                self.refused[signal] += 1
            if context is None:
                return error
            context.abort(error, f"OtlpReceiver refuses {signal}: {error.name}")
        with self._changed:
            self.calls[signal] += 1
            self._store.requests.append((signal, request))
            self._changed.notify_all()
        return None


class _Service:
    """The one Export of every OTLP signal: hand the request to the receiver, answer empty."""

    signal: str
    response: type

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        self.receiver._receive(self.signal, request, context)
        return self.response()


class _TraceService(_Service, trace_service_pb2_grpc.TraceServiceServicer):
    signal, response = "traces", trace_service_pb2.ExportTraceServiceResponse


class _MetricsService(_Service, metrics_service_pb2_grpc.MetricsServiceServicer):
    signal, response = "metrics", metrics_service_pb2.ExportMetricsServiceResponse


class _LogsService(_Service, logs_service_pb2_grpc.LogsServiceServicer):
    signal, response = "logs", logs_service_pb2.ExportLogsServiceResponse


# --- OTLP/HTTP (protobuf) --------------------------------------------------------------

_HTTP_PATHS = {
    "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}
# How a collector answers over HTTP what it would refuse over gRPC (the OTLP spec's mapping).
_HTTP_STATUS = {
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart on the same port at once

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        super().__init__((receiver.host, receiver.port), _HttpHandler)
        self._thread = threading.Thread(target=self.serve_forever, name="otlp-http-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        route = _HTTP_PATHS.get(self.path.split("?", 1)[0])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if route is None:
            return self._answer(404, b"")
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        signal, request_type, response_type = route
        try:
            request = request_type.FromString(body)
        except Exception:
            return self._answer(400, b"")
        refused = self.server.receiver._receive(signal, request, None)
        if refused is not None:
            return self._answer(_HTTP_STATUS.get(refused, 500), b"")
        self._answer(200, response_type().SerializeToString())

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None  # quiet: the tests read what was received, not an access log


def _add_grpc_port(server: grpc.Server, host: str, port: int) -> None:
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if bound != port:
        raise OSError(f"gRPC could not bind {host}:{port}")


def _bind(make: Callable[[], T], host: str, port: int) -> T:
    """Bind, retrying while the port of a just-stopped server is still closing."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return make()
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"OTLP receiver could not bind {host}:{port}") from None
            time.sleep(0.1)


__all__ = ["MetricPoint", "OtlpReceiver", "ReceivedLog", "ReceivedSpan", "free_port"]
