"""The OpenTelemetry context calls a request makes, each in one step.

``opentelemetry.trace.get_current_span()`` goes through ``get_value``, ``get_current`` and the
runtime context's ``get_current`` before it reads the context variable, and checks the span
against an abstract base class; ``attach``, ``detach`` and ``set_span_in_context`` are two or
three calls each too. A request with three spans and two log records makes about thirty such
calls. With the API's default runtime context (``contextvars``), the functions here read and
set its variable directly (fast path ``runtime-context``, ``kyo_otel._sdk.runtime_context``): same values, same tokens, the same log line on a failed detach.
With another runtime context (``OTEL_PYTHON_CONTEXT``) they are the API's own functions.
"""

from __future__ import annotations

from operator import attrgetter, itemgetter
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled as _api_is_instrumentation_enabled
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext, TraceFlags

from kyo_otel._sdk.runtime_context import FAST

_variable = None
if FAST is not None:
    _variable, _SPAN_KEY, _SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY_PLAIN = FAST

_span_types: set[type] = set()
"""Types found to be ``Span`` (the API's ``isinstance`` check against its abstract class is a
Python-level call; a class once a ``Span`` stays one)."""


def _is_span(value: Any) -> bool:
    kind = type(value)
    if kind in _span_types:
        return True
    if isinstance(value, Span):
        if len(_span_types) < 64:
            _span_types.add(kind)
        return True
    return False


if _variable is not None:
    _get = _variable.get
    _set = _variable.set
    _reset = _variable.reset

    def current_span(context: Context | None = None) -> Span:
        """``trace.get_current_span(context)``."""
        span = (_get() if context is None else context).get(_SPAN_KEY)
        if span is None or (type(span) not in _span_types and not _is_span(span)):
            return INVALID_SPAN
        return span  # type: ignore[no-any-return]

    def with_span(span: Span, context: Context | None = None) -> Context:
        """``trace.set_span_in_context(span, context)``."""
        values = (_get() if context is None else context).copy()
        values[_SPAN_KEY] = span
        return Context(values)

    def current_context() -> Context:
        """``context.get_current()``."""
        return _get()

    def attach(context: Context) -> Any:
        """``context.attach(context)``."""
        return _set(context)

    def detach(token: Any) -> None:
        """``context.detach(token)``."""
        try:
            _reset(token)
        except Exception:
            context_api.logger.exception("Failed to detach context")

    def instrumentation_enabled() -> bool:
        """``opentelemetry.instrumentation.utils.is_instrumentation_enabled()``."""
        current = _get()
        return not (current.get(_SUPPRESS_INSTRUMENTATION_KEY) or current.get(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN))

else:
    current_span = trace_api.get_current_span  # type: ignore[assignment]
    with_span = trace_api.set_span_in_context  # type: ignore[assignment]
    current_context = context_api.get_current  # type: ignore[assignment]
    attach = context_api.attach  # type: ignore[assignment]
    detach = context_api.detach  # type: ignore[assignment]
    instrumentation_enabled = _api_is_instrumentation_enabled  # type: ignore[assignment]

def _span_context_getter() -> Any:
    """``span_context_fields``: an ``itemgetter`` where ``SpanContext`` is the tuple it has long
    been (each property read is a Python-level call, and a span's start, its log records and its
    encoding read five of them), else the properties themselves."""
    names = ("trace_id", "span_id", "is_remote", "trace_flags", "trace_state", "is_valid")
    try:
        probe = SpanContext(0x0B, 0x16, True, TraceFlags(3), trace_api.TraceState([("k", "v")]))
        if isinstance(probe, tuple) and len(probe) == len(names) and all(
            probe[index] is getattr(probe, name) for index, name in enumerate(names)
        ):
            return itemgetter(*range(len(names)))
    except Exception:  # another layout
        pass
    return attrgetter(*names)


span_context_fields = _span_context_getter()
"""``span_context_fields(span_context)`` -> (trace_id, span_id, is_remote, trace_flags, trace_state,
is_valid), in one C call."""
