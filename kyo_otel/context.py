"""The request context every log record carries: request id, tenant id, and the trace ids.

Held in ``contextvars``, so it follows the request through threads started with
``contextvars.copy_context()`` and asyncio tasks, and costs two lookups per log record. The
Flask integration sets it for every request (``X-Request-Id`` or a fresh id, and the tenant
header); other entry points (a queue worker, a CLI) use ``request_context()``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace

from kyo_otel.catalog import TENANT
from kyo_otel.runtime_context import current_span, span_context_fields

REQUEST_ID = "kyo.request.id"
"""Log-record (and server span) attribute holding the request id."""
TENANT_ID = TENANT
"""Log-record (and server span) attribute holding the tenant id: the metrics' key."""
XRAY_TRACE_ID = "aws.xray.trace_id"
"""The trace id in X-Ray's form, ``1-<8 hex>-<24 hex>``, to paste into the X-Ray console."""
REQUEST_ID_HEADER = "X-Request-Id"

_MAX_ID_LENGTH = 128
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("kyo_otel.request_id", default=None)
_tenant_id: ContextVar[str | None] = ContextVar("kyo_otel.tenant_id", default=None)


def request_id() -> str | None:
    """The id of the request being served, if any."""
    return _request_id.get()


def tenant_id() -> str | None:
    """The tenant of the request being served, if any."""
    return _tenant_id.get()


def new_request_id() -> str:
    """32 random hex digits, as the trace ids are made (``random.getrandbits``, reseeded in a forked
    child): a correlation key, not a secret, so the OS's entropy (``uuid4``, 3 µs) is not needed."""
    return f"{random.getrandbits(128):032x}"


def accepted_request_id(raw: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a plain token of at most 128 characters, else a new id.

    Anything else (spaces, quotes, a JSON blob, a kilobyte of text) is replaced rather than
    copied into every log line and the response header.
    """
    if raw and _VALID_REQUEST_ID.fullmatch(raw):
        return raw
    return new_request_id()


_last_xray: tuple[int, str] = (0, "")


def xray_trace_id(trace_id: int) -> str:
    """``4bf92f3577b34da6a3ce929d0e0e4736`` -> ``1-4bf92f35-77b34da6a3ce929d0e0e4736``.

    The last one is remembered: a request's log records share their trace id."""
    global _last_xray
    last = _last_xray
    if last[0] == trace_id:
        return last[1]
    hex_id = f"{trace_id:032x}"
    xray = f"1-{hex_id[:8]}-{hex_id[8:]}"
    _last_xray = (trace_id, xray)
    return xray


class _Tokens:
    __slots__ = ("request", "tenant")

    def __init__(self, request: Token[str | None], tenant: Token[str | None]) -> None:
        self.request = request
        self.tenant = tenant


def begin(request: str | None, tenant: str | None) -> _Tokens:
    """Enter a request's context; pass the result to ``end()``."""
    if tenant is not None:
        tenant = tenant[:_MAX_ID_LENGTH] or None
    return _Tokens(_request_id.set(request), _tenant_id.set(tenant))


def end(tokens: _Tokens) -> None:
    """Leave the context ``begin()`` entered (in the same thread or task)."""
    try:
        _tenant_id.reset(tokens.tenant)
        _request_id.reset(tokens.request)
    except ValueError:  # entered in another context (e.g. a streamed response's generator)
        _tenant_id.set(None)
        _request_id.set(None)


@contextmanager
def request_context(request_id: str | None = None, tenant_id: str | None = None) -> Iterator[str]:
    """Tag the log records inside the block with a request id (a new one by default) and a tenant.

        with kyo_otel.request_context(tenant_id=job.tenant) as rid:
            process(job)
    """
    rid = request_id or new_request_id()
    tokens = begin(rid, tenant_id)
    try:
        yield rid
    finally:
        end(tokens)


def add_correlation(attributes: MutableMapping[str, Any], span_context: trace.SpanContext | None = None) -> None:
    """Add the X-Ray trace id, request id and tenant id to a log record's attributes.

    The 32-hex trace id and the span id are the record's own fields; values already present
    (given with ``extra=``) are kept.
    """
    if span_context is None:
        span_context = current_span().get_span_context()
    trace_id, _, _, _, _, valid = span_context_fields(span_context)
    if valid and XRAY_TRACE_ID not in attributes:
        attributes[XRAY_TRACE_ID] = xray_trace_id(trace_id)
    rid = _request_id.get()
    if rid is not None and REQUEST_ID not in attributes:
        attributes[REQUEST_ID] = rid
    tenant = _tenant_id.get()
    if tenant is not None and TENANT_ID not in attributes:
        attributes[TENANT_ID] = tenant
