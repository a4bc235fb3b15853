"""Fast path ``guarded-span-processors``: the SDK's multi-processor with each hook guarded.

Subclasses ``SynchronousMultiSpanProcessor`` and reads its ``_span_processors``, calls each
processor's ``_on_ending`` (the SDK's own hook, as ``Span.end`` does). Off: the SDK's
``SynchronousMultiSpanProcessor`` itself (a processor that raises then reaches the caller,
except around kyo's own spans, which ``end_quietly`` guards).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

from kyo_otel._sdk import fast_path, is_on

_logger = logging.getLogger("kyo_otel.spans")


class GuardedSpanProcessors(SynchronousMultiSpanProcessor):
    """The SDK's multi-processor, each processor's hook guarded: one that raises loses its own
    work on that span, the processors after it still run, and the code that started or ended
    the span never sees it. The SDK's calls them in turn, unguarded, so a bug in any processor
    raised out of ``start_span()`` or ``span.end()`` into the request, for every span (the
    contrib instrumentations' and the application's own). kyo_otel's tracer provider uses it."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for processor in self._span_processors:
            try:
                processor.on_start(span, parent_context=parent_context)
            except Exception:
                _processor_failed("a span processor's on_start")

    def _on_ending(self, span: Any) -> None:
        for processor in self._span_processors:
            try:
                processor._on_ending(span)  # noqa: SLF001 - the SDK's own hook
            except Exception:
                _processor_failed("a span processor's _on_ending")

    def on_end(self, span: Any) -> None:
        for processor in self._span_processors:
            try:
                processor.on_end(span)
            except Exception:
                _processor_failed("a span processor's on_end")


_processor_failures = 0


def _processor_failed(what: str) -> None:
    """Logged once at WARNING, then at DEBUG: a broken processor fails on every span."""
    global _processor_failures
    _processor_failures += 1
    level = logging.WARNING if _processor_failures == 1 else logging.DEBUG
    _logger.log(level, "kyo_otel: %s failed; the span's caller goes on", what, exc_info=True)



@fast_path(
    "guarded-span-processors",
    replaces="the SDK's SynchronousMultiSpanProcessor, whose hooks are unguarded",
    fallback="the SDK's SynchronousMultiSpanProcessor",
)
def probe() -> None:
    from opentelemetry.sdk.trace import SpanProcessor

    processor = SynchronousMultiSpanProcessor()
    processor.add_span_processor(SpanProcessor())
    if not isinstance(processor._span_processors, tuple) or len(processor._span_processors) != 1:  # noqa: SLF001
        raise TypeError("SynchronousMultiSpanProcessor._span_processors is not the tuple of its processors")
    if not callable(getattr(SpanProcessor, "_on_ending", None)):
        raise AttributeError("SpanProcessor has no _on_ending hook")


def multi_span_processor() -> Any:
    """The tracer provider's ``active_span_processor``: guarded while the path is on."""
    return GuardedSpanProcessors() if is_on("guarded-span-processors") else SynchronousMultiSpanProcessor()
