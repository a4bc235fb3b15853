"""Fast path ``otlp-wire-encoder``: spans and log records to OTLP protobuf bytes, written
directly, for the gRPC exporters.

The SDK's encoder builds a protobuf object for every span, attribute and value (about 65 µs for
a request span, 18 µs for a log record, on a small container); in a Flask service that was a
fifth of what telemetry cost. The bytes here are the same messages, written field by field,
with each encoded attribute (key and value) cached: route, method, status, ``db.statement`` and
the like repeat from record to record. Values other than strings, booleans, integers and
floats go through the SDK's own encoder, so the output is always what it would produce
(``tests/test_otlp_wire.py`` compares the two message by message).

With a ``Scrubber`` (``scrub_with``), the encoder scrubs as it encodes: a value is scrubbed when
it is first encoded and the cache keeps the scrubbed bytes, so the attributes that repeat are
neither scrubbed nor encoded again (the separate ``ScrubbingSpanExporter`` pass cost about 6 µs
a span). The bytes are those of the SDK encoding of ``ScrubbingSpanExporter.scrub(span)`` (also
compared in the tests); an item that cannot be scrubbed is dropped and counted, never sent raw.

Private names: the proto-common ``_encode_*`` helpers (values other than scalars, resources,
scopes), ``LeanSpan``'s fields, and the SDK gRPC exporter's ``_channel``, ``_stub``, ``_client``
and ``_translate_data``. The probe checks the helpers and encodes a span both ways; an exporter
that cannot be built on this SDK turns the path off too (``kyo_otel.exporters``). Off: the SDK's
own gRPC exporters, behind ``ScrubbingSpanExporter`` / ``ScrubbingLogExporter``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any

try:
    from opentelemetry.exporter.otlp.proto.common import _internal as _proto_common
except ImportError:  # another layout: the probe says so, and the SDK's exporters are used
    _proto_common = None
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from kyo_otel._sdk import fast_path
from kyo_otel._sdk.lean_spans import LeanSpan
from kyo_otel.runtime_context import span_context_fields
from kyo_otel.scrub import Scrubber, _FailClosed

_HELPERS = ("_encode_instrumentation_scope", "_encode_key_value", "_encode_resource", "_encode_value")


def _missing_helper(*_: Any) -> Any:
    raise RuntimeError("the SDK's proto-common encoding helpers are not there (fast path otlp-wire-encoder is off)")


# Bound at import; the probe looks them up again at configure().
_encode_instrumentation_scope, _encode_key_value, _encode_resource, _encode_value = (
    getattr(_proto_common, name, _missing_helper) for name in _HELPERS
)

_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack

# OTLP SpanKind enum values (trace.proto) and span flags (SpanFlags).
_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_KIND_FIELD = {kind.value: b"\x30" + bytes((value,)) for kind, value in _KIND.items()}
"""The kind field, by the API enum's value (``kind._value_``: a plain attribute, where the enum
member's hash and ``.value`` are Python-level calls)."""
_STATUS_FIELD = {code: b"\x7a\x02\x18" + bytes((code,)) if code else b"\x7a\x00" for code in (0, 1, 2)}
_LOCAL_PARENT_FLAGS = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE)
_REMOTE_PARENT_FLAGS = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)

_CACHE_LIMIT = 4096
_CACHEABLE_LENGTH = 256
_CACHEABLE_TYPES = frozenset({str, bool, int, float})


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes | None:
    """AnyValue for the scalar types; ``None`` for what the SDK encoder should handle."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode("utf-8"))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return b"\x18" + _varint(value)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    return None


class _ScrubFailed(Exception):
    """A value the scrubber failed on: its record is dropped, not sent without that value."""


class _WireEncoder:
    """What spans and logs share: cached attributes, resources and scopes, and the grouping of a
    batch by resource, then scope. One instance per exporter, used from its export thread."""

    signal = ""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        self._fields: dict[bytes, dict[tuple[str, type, Any], bytes]] = {}
        self.scrubber = scrubber
        # A scrubber with a callback is asked about every value, as the scrubbing exporters do.
        self._memoize = scrubber is None or scrubber.memoizable
        self._failures = _FailClosed(self.signal, "scrub or encode")
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, tuple[bytes, bytes]]] = {}
        self._generation = scrubber.generation if scrubber is not None else 0

    def _forget(self) -> None:
        """Drop the cached scrubbed fields: the scrubber learned a route since they were cached."""
        self._fields.clear()

    # -- pieces ------------------------------------------------------------------------

    def _key_value(self, key: str, value: Any, scrub: bool = True) -> bytes:
        """One framed KeyValue (scrubbed unless ``scrub`` is false), ready to follow an attributes tag."""
        if scrub and self.scrubber is not None:
            try:
                value = self.scrubber.scrub_value(key, value)
            except Exception as error:
                raise _ScrubFailed from error
        any_value = _any_value(value)
        if any_value is not None and type(key) is str:
            encoded = _field(b"\x0a", key.encode("utf-8")) + _field(b"\x12", any_value)
        else:
            encoded = _encode_key_value(key, value).SerializeToString()
        return _varint(len(encoded)) + encoded

    def _attribute_fields(self, tag: bytes, attributes: Any) -> list[bytes]:
        """The attributes as ``tag``-ed KeyValue fields. A scalar value's field is cached (per tag):
        a repeated attribute costs one lookup. Scalars only: a sequence equals one of other
        element types ((1,) == (True,) == (1.0,)), whose encoding differs, and lists and mappings
        are not hashable."""
        # A span's attributes are a read-only view of the SDK's BoundedAttributes, which iterates
        # through the Mapping protocol in Python; copy() of either is one dict copy in C.
        plain = attributes if type(attributes) is dict else attributes.copy() if hasattr(attributes, "copy") else attributes
        cache = self._fields.get(tag)
        if cache is None:
            cache = self._fields[tag] = {}
        memoize = self._memoize
        # Keys the scrubber found plain (None: no scrubber; cleared when full). A field is cached
        # only once its key was found plain, so a key is looked for only when its field is not.
        plain_keys = self.scrubber.plain_keys if self.scrubber is not None else None
        out = []
        for key, value in plain.items():
            kind = type(value)
            cache_key = (key, kind, value) if memoize and kind in _CACHEABLE_TYPES else None
            if cache_key is not None:
                field = cache.get(cache_key)
                if field is not None:
                    out.append(field)
                    continue
            if plain_keys is not None and key not in plain_keys and self._keys_change(plain):
                return self._renamed_fields(tag, plain)
            try:
                field = tag + self._key_value(key, value)
            except _ScrubFailed:
                raise  # the whole record is dropped (see _batch)
            except Exception:  # the SDK encoder logs and skips such a value too
                continue
            if cache_key is not None and (kind is not str or len(value) <= _CACHEABLE_LENGTH):
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[cache_key] = field
            out.append(field)
        return out

    def _keys_change(self, attributes: Any) -> bool:
        try:
            return self.scrubber.keys_change(attributes)  # type: ignore[union-attr]
        except Exception as error:
            raise _ScrubFailed from error

    def _renamed_fields(self, tag: bytes, attributes: Any) -> list[bytes]:
        """Attributes with a key to mask: scrubbed as the scrubbing exporters do (keys masked, a
        key masked like another suffixed ``#2``), encoded without the cache."""
        try:
            scrubbed = self.scrubber.scrub_mapping(attributes)  # type: ignore[union-attr]
        except Exception as error:
            raise _ScrubFailed from error
        out = []
        for key, value in scrubbed.items():
            try:
                out.append(tag + self._key_value(key, value, scrub=False))
            except Exception:  # as in _attribute_fields: the SDK encoder skips such a value too
                continue
        return out

    def _resource(self, resource: Any) -> bytes:
        entry = self._resources.get(id(resource))
        if entry is None or entry[0] is not resource:
            entry = (resource, _field(b"\x0a", _encode_resource(resource).SerializeToString()))
            if len(self._resources) >= 64:
                self._resources.clear()
            self._resources[id(resource)] = entry
        return entry[1]

    def _scope(self, scope: Any) -> tuple[bytes, bytes]:
        """The ScopeSpans.scope field and, when there is one, the ScopeSpans.schema_url field."""
        entry = self._scopes.get(id(scope))
        if entry is None or entry[0] is not scope:
            encoded = _field(b"\x0a", _encode_instrumentation_scope(scope).SerializeToString())
            schema = _field(b"\x1a", scope.schema_url.encode("utf-8")) if scope is not None and scope.schema_url else b""
            entry = (scope, (encoded, schema))
            if len(self._scopes) >= 256:
                self._scopes.clear()
            self._scopes[id(scope)] = entry
        return entry[1]

    def _text(self, text: str) -> str:
        """A name or description: scrubbed when there is a scrubber (the built-in rules only)."""
        return text if self.scrubber is None else self.scrubber.scrub_text(text)

    def _batch(self, items: Sequence[Any], encode_item: Any) -> bytes:
        """Resource{Spans,Logs} fields for the items (field numbers are the same in both)."""
        if self.scrubber is not None and self.scrubber.generation != self._generation:
            self._generation = self.scrubber.generation
            self._forget()
        by_identity: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
        for item in items:
            try:
                encoded = encode_item(item)
            except Exception:
                # Fail closed: a record that cannot be scrubbed is not sent; one that cannot be
                # encoded (a lone surrogate in a body) costs itself, not its 511 neighbours.
                self._failures.dropped()
                continue
            resource, scope = item.resource, item.instrumentation_scope or None
            group = by_identity.get((id(resource), id(scope)))
            if group is None:
                group = by_identity[(id(resource), id(scope))] = (resource, scope, [])
            group[2].append(encoded)
        # Equal resources (or scopes) held by distinct objects share one group, as in the SDK;
        # compared once per batch rather than hashed once per item.
        grouped: dict[Any, dict[Any, list[bytes]]] = {}
        for resource, scope, encoded in by_identity.values():
            grouped.setdefault(resource, {}).setdefault(scope, []).extend(encoded)
        out = []
        for resource, scopes in grouped.items():
            body = [self._resource(resource)]
            for scope, encoded_items in scopes.items():
                scope_field, schema = self._scope(scope)
                body.append(_field(b"\x12", b"".join([scope_field, *encoded_items, schema])))
            if resource.schema_url:
                body.append(_field(b"\x1a", resource.schema_url.encode("utf-8")))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)


class SpanEncoder(_WireEncoder):
    """Batches of finished spans to the bytes of an ``ExportTraceServiceRequest``."""

    signal = "traces"

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__(scrubber)
        self._names: dict[str, bytes] = {}

    def _forget(self) -> None:
        super()._forget()
        self._names.clear()

    def _name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            encoded = _field(b"\x2a", self._text(name).encode("utf-8"))
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            if len(name) <= _CACHEABLE_LENGTH:
                self._names[name] = encoded
        return encoded

    def _span(self, span: ReadableSpan) -> bytes:
        if type(span) is LeanSpan:
            # kyo_otel's own spans, read field by field: the properties would copy the context,
            # wrap the attributes and lists, and look up an enum's value, for every span.
            context, parent, name, kind = span._context, span._parent, span._name, span._kind  # noqa: SLF001
            start, end, status = span._start_time, span._end_time, span._status  # noqa: SLF001
            attributes: Any = span._attributes  # noqa: SLF001
            events: Any = span._events  # noqa: SLF001
            links: Any = span._links  # noqa: SLF001
        else:
            context, parent, name, kind = span.get_span_context(), span.parent, span.name, span.kind
            start, end, status = span.start_time, span.end_time, span.status
            attributes, events, links = span.attributes, span.events, span.links
        trace_id, span_id, _, _, trace_state, _ = span_context_fields(context)
        parts = [b"\x0a\x10" + trace_id.to_bytes(16, "big") + b"\x12\x08" + span_id.to_bytes(8, "big")]
        if trace_state:
            if self.scrubber is not None:  # the client's tracestate header: its text, exported
                trace_state = self.scrubber.scrub_trace_state(trace_state)
            state = ",".join(f"{k}={v}" for k, v in trace_state.items())
            parts.append(_field(b"\x1a", state.encode("utf-8")))
        parent_is_remote = False
        if parent is not None:
            _, parent_span_id, parent_is_remote, _, _, _ = span_context_fields(parent)
            parts.append(b"\x22\x08" + parent_span_id.to_bytes(8, "big"))
        parts.append(self._name(name))
        parts.append(_KIND_FIELD[kind._value_])
        if start:
            parts.append(b"\x39" + _FIXED64(start))
        if end:
            parts.append(b"\x41" + _FIXED64(end))
        if attributes:
            parts.extend(self._attribute_fields(b"\x4a", attributes))
        dropped = span.dropped_attributes
        if dropped:
            parts.append(b"\x50" + _varint(dropped))
        for event in events:
            body = [b"\x09" + _FIXED64(event.timestamp)] if event.timestamp else []
            if event.name:
                body.append(_field(b"\x12", self._text(event.name).encode("utf-8")))
            if event.attributes:
                body.extend(self._attribute_fields(b"\x1a", event.attributes))
            if event.dropped_attributes:
                body.append(b"\x20" + _varint(event.dropped_attributes))
            parts.append(_field(b"\x5a", b"".join(body)))
        if events and span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in links:
            body = [
                b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
                b"\x12\x08" + link.context.span_id.to_bytes(8, "big"),
            ]
            if link.attributes:
                body.extend(self._attribute_fields(b"\x22", link.attributes))
            if link.dropped_attributes:
                body.append(b"\x28" + _varint(link.dropped_attributes))
            body.append(b"\x35" + _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if link.context.is_remote else 0)))
            parts.append(_field(b"\x6a", b"".join(body)))
        if links and span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        if status is not None:
            code = status.status_code._value_
            if status.description:
                body_parts = [_field(b"\x12", self._text(status.description).encode("utf-8"))]
                if code:
                    body_parts.append(b"\x18" + _varint(code))
                parts.append(_field(b"\x7a", b"".join(body_parts)))
            else:
                parts.append(_STATUS_FIELD[code])
        parts.append(_REMOTE_PARENT_FLAGS if parent_is_remote else _LOCAL_PARENT_FLAGS)
        return _field(b"\x12", b"".join(parts))  # ScopeSpans.spans

    # -- the request -------------------------------------------------------------------

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        return self._batch(spans, self._span)



class LogEncoder(_WireEncoder):
    """Batches of log records to the bytes of an ``ExportLogsServiceRequest``."""

    signal = "logs"

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__(scrubber)
        self._bodies: dict[str, bytes] = {}
        self._severities: dict[tuple[Any, str | None], bytes] = {}

    def _forget(self) -> None:
        super()._forget()
        self._bodies.clear()

    def _body(self, body: Any) -> bytes:
        """The body field, scrubbed. A short text body is cached: most are a fixed message."""
        cacheable = type(body) is str and len(body) <= _CACHEABLE_LENGTH and self._memoize
        if cacheable:
            cached = self._bodies.get(body)
            if cached is not None:
                return cached
        value = body if self.scrubber is None else self.scrubber.scrub_value(None, body)
        encoded = _any_value(value)
        if encoded is None:
            encoded = _encode_value(value).SerializeToString()
        field = _field(b"\x2a", encoded)
        if cacheable:
            if len(self._bodies) >= _CACHE_LIMIT:
                self._bodies.clear()
            self._bodies[body] = field
        return field

    def _severity(self, number: Any, text: str | None) -> bytes:
        """The severity number and text fields, encoded once per pair (there are a handful)."""
        key = (number, text)
        fields = self._severities.get(key)
        if fields is None:
            value = getattr(number, "value", None)
            fields = (b"\x10" + _varint(value) if value else b"") + (
                _field(b"\x1a", text.encode("utf-8")) if text else b"")
            if len(self._severities) < 256:
                self._severities[key] = fields
        return fields

    def _log(self, readable: Any) -> bytes:
        record = readable.log_record
        parts = []
        if record.timestamp:
            parts.append(b"\x09" + _FIXED64(record.timestamp))
        parts.append(self._severity(record.severity_number, record.severity_text))
        parts.append(self._body(record.body))
        attributes = record.attributes
        if attributes:
            parts.extend(self._attribute_fields(b"\x32", attributes))
        if readable.dropped_attributes:
            parts.append(b"\x38" + _varint(readable.dropped_attributes))
        flags = int(record.trace_flags) if record.trace_flags is not None else 0
        if flags:
            parts.append(b"\x45" + _FIXED32(flags))
        if record.trace_id:
            parts.append(b"\x4a\x10" + record.trace_id.to_bytes(16, "big"))
        if record.span_id:
            parts.append(b"\x52\x08" + record.span_id.to_bytes(8, "big"))
        if record.observed_timestamp:
            parts.append(b"\x59" + _FIXED64(record.observed_timestamp))
        if record.event_name:
            parts.append(_field(b"\x62", self._text(record.event_name).encode("utf-8")))
        return _field(b"\x12", b"".join(parts))  # ScopeLogs.log_records

    def encode(self, records: Sequence[Any]) -> bytes:
        return self._batch(records, self._log)



class _BytesStub:
    """A gRPC stub whose ``Export`` sends the encoded bytes as they are: the generated stub wants a
    protobuf message, which would mean parsing the bytes only to serialize them again."""

    def __init__(self, channel: Any, method: str, response: Any) -> None:
        self.Export = channel.unary_unary(
            method, request_serializer=None, response_deserializer=response.FromString, _registered_method=True
        )


class _SendsEncodedBytes:
    """For the SDK's OTLP/gRPC exporters (retries, timeouts, TLS, headers, reconnection): batches
    encoded by this module's encoder, sent as bytes."""

    encoder_class: type[_WireEncoder]
    method: str
    response: Any

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[call-arg]
        self._encoder = self.encoder_class()
        # also what a reconnection calls to build the stub again
        self._stub = functools.partial(_BytesStub, method=self.method, response=self.response)
        self._client = self._stub(self._channel)  # type: ignore[attr-defined]

    def scrub_with(self, scrubber: Scrubber) -> None:
        """Scrub while encoding (see the module): no separate scrubbing pass needed."""
        self._encoder = self.encoder_class(scrubber)

    def _translate_data(self, data: Sequence[Any]) -> bytes:
        return self._encoder.encode(data)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=None)
def grpc_span_exporter_class() -> type:
    """The SDK's OTLP/gRPC span exporter, sending the bytes of ``SpanEncoder``."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    return type("KyoOTLPSpanExporter", (_SendsEncodedBytes, OTLPSpanExporter), {
        "encoder_class": SpanEncoder, "response": ExportTraceServiceResponse,
        "method": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    })


@functools.lru_cache(maxsize=None)
def grpc_log_exporter_class() -> type:
    """The SDK's OTLP/gRPC log exporter, sending the bytes of ``LogEncoder``."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    return type("KyoOTLPLogExporter", (_SendsEncodedBytes, OTLPLogExporter), {
        "encoder_class": LogEncoder, "response": ExportLogsServiceResponse,
        "method": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    })


@fast_path(
    "otlp-wire-encoder",
    replaces="the SDK's protobuf encoding in the OTLP/gRPC span and log exporters (and the separate scrubbing pass)",
    fallback="the SDK's OTLP/gRPC exporters behind kyo's scrubbing exporters",
)
def probe() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    for name in _HELPERS:
        helper = getattr(_proto_common, name, None)
        if not callable(helper):
            raise AttributeError(f"opentelemetry.exporter.otlp.proto.common._internal has no {name}")
        if helper is not globals()[name]:
            raise RuntimeError(f"{name} changed after kyo_otel was imported")
    for name in ("_translate_data", "_export"):
        if not callable(getattr(OTLPExporterMixin, name, None)):
            raise AttributeError(f"the SDK's gRPC exporter has no {name}")
    finished = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("kyo_otel.probe", "1").start_as_current_span("probe", attributes={"k": "v", "n": [1, 2]}) as span:
        span.add_event("e", {"x": 1.5})
    spans = finished.get_finished_spans()
    expected = encode_spans(spans).SerializeToString()
    if SpanEncoder().encode(spans) != expected:
        raise RuntimeError("kyo's encoding of a span differs from the SDK's")
