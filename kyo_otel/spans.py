"""Lean SDK spans for kyo_otel's own instrumentation (the server span, the Redis client spans).

The SDK's ``Tracer.start_span`` builds, for every span, a ``BoundedAttributes`` (an ordered dict
and a lock) that validates each attribute again, two ``BoundedList`` (a deque and a lock each)
for events and links that a request span almost never has, and, at ``end()``, a second
``ReadableSpan`` copying the first: about 38 µs of CPU per span on a small container, a third of
what three spans cost a request with their export. The attributes kyo_otel's wrappers hand over
are built by kyo_otel from strings and integers, so nothing in them needs cleaning.

``LeanTracer.start_span`` takes the same decisions as the SDK tracer (parent, sampler, ids,
trace flags, span processors' ``on_start`` / ``on_end``) and makes a ``LeanSpan``: an
``opentelemetry.sdk.trace.Span`` whose attributes are a plain dict it owns and whose event and
link lists are created only when one is added. Everything else is the SDK's: ``set_attribute``
from application code still validates, ``add_event``, ``record_exception``, ``set_status``,
``update_name`` and the context manager are inherited, and exporters and processors see an SDK
``ReadableSpan``. About 12 µs a span (``benchmarks/overhead.py --micro``).

The lean path is taken only where it gives exactly what the SDK would: an SDK tracer, no span
limits below what the span carries, the SDK's internal tracer metrics off, and a sampler that
hands the attributes through unchanged; otherwise the SDK tracer makes the span. A ``LeanSpan``
that cannot be built on this SDK version (a self-check at construction) also falls back.
``tests/test_spans.py`` compares lean and SDK spans field by field. The lean spans use the SDK's
private fields: they live in ``kyo_otel._sdk.lean_spans`` (fast path ``lean-spans``), with a probe
at ``configure()``; when it fails every span comes from the SDK tracer.
"""

from __future__ import annotations

import logging

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

_logger = logging.getLogger(__name__)


def record_error(span: trace_api.Span, error: BaseException) -> None:
    """An exception event and ERROR status, as the SDK's ``start_as_current_span`` records an
    exception that escapes it (and the contrib instrumentations' spans carry).

    Called while the application's exception is on its way out: an exception whose ``str()``
    raises costs the span its event, never the application its exception (the status still
    says ERROR, with the message ``traceback`` prints for such an exception)."""
    try:
        span.record_exception(error)
        message = f"{type(error).__name__}: {error}"
    except Exception:
        _logger.debug("kyo_otel: could not record an exception on a span", exc_info=True)
        message = f"{type(error).__name__}: <exception str() failed>"
    span.set_status(Status(StatusCode.ERROR, message))


def end_quietly(span: trace_api.Span) -> None:
    """``span.end()`` for a span around application code: a span processor that raises in
    ``on_end`` (the SDK calls them in turn, unguarded) costs the span, never the request."""
    try:
        span.end()
    except Exception:
        _processor_failed("ending a span")



from kyo_otel._sdk.lean_spans import LeanSpan, LeanTracer  # noqa: E402 - re-exported: kyo's instrumentation uses them
from kyo_otel._sdk.span_processors import GuardedSpanProcessors, _processor_failed  # noqa: E402

__all__ = ["GuardedSpanProcessors", "LeanSpan", "LeanTracer", "end_quietly", "record_error"]
