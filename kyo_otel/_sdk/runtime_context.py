"""Fast path ``runtime-context``: read and set the API's context variable directly.

Uses the API's ``_RUNTIME_CONTEXT`` and its ``_current_context`` variable, and the context keys
``_SPAN_KEY`` and the two ``_SUPPRESS_INSTRUMENTATION_KEY``s. Decided when ``kyo_otel`` is imported
(the functions are bound by name across kyo_otel): without them, or with another runtime context
(``OTEL_PYTHON_CONTEXT``), ``FAST`` is ``None`` and ``kyo_otel.runtime_context`` uses the API's
own functions. The probe at ``configure()`` checks that the variable read is still the API's.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from kyo_otel._sdk import fast_path


def _variables() -> tuple[Any, Any, Any, Any]:
    """(the context variable, the span key, the two suppression keys); raises when missing."""
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY_PLAIN
    from opentelemetry.trace.propagation import _SPAN_KEY

    runtime = context_api._RUNTIME_CONTEXT  # noqa: SLF001
    if type(runtime) is not ContextVarsRuntimeContext:
        raise TypeError(f"the runtime context is {type(runtime).__name__}, not the contextvars one")
    return runtime._current_context, _SPAN_KEY, _SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY_PLAIN  # noqa: SLF001


try:
    FAST: tuple[Any, Any, Any, Any] | None = _variables()
    """What the fast functions read, or None (the API's functions)."""
    WHY_NOT = ""
except Exception as error:  # another API layout
    FAST = None
    WHY_NOT = f"{type(error).__name__}: {error}"


@fast_path(
    "runtime-context",
    replaces="the API's get_current_span / attach / detach / set_span_in_context call chains",
    fallback="the API's context functions",
)
def probe() -> None:
    if FAST is None:
        raise RuntimeError(f"not available when kyo_otel was imported ({WHY_NOT})")
    variable, span_key = _variables()[:2]
    if variable is not FAST[0] or span_key is not FAST[1]:
        raise RuntimeError("the API's context variable changed after kyo_otel was imported")
    span = trace_api.NonRecordingSpan(trace_api.INVALID_SPAN_CONTEXT)
    token = context_api.attach(trace_api.set_span_in_context(span))
    try:
        if variable.get().get(span_key) is not span:
            raise RuntimeError("the span set through the API is not where the fast path reads it")
    finally:
        context_api.detach(token)
