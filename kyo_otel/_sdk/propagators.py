"""Fast path ``composite-propagator-parts``: the propagators inside the API's
``CompositePropagator`` (its private ``_propagators``), so that kyo's server span reads only the
headers they extract. Off: every request's headers go through the global propagator as they are
(the same context, a little more CPU)."""

from __future__ import annotations

from typing import Any

from kyo_otel._sdk import fast_path, is_on


def composite_parts(textmap: Any) -> list[Any] | None:
    """The propagators of a ``CompositePropagator``, or None (unknown: ask it for every request)."""
    if not is_on("composite-propagator-parts"):
        return None
    parts = getattr(textmap, "_propagators", None)
    return parts if isinstance(parts, list) else None


@fast_path(
    "composite-propagator-parts",
    replaces="the composite propagator's extract over the whole WSGI environ",
    fallback="the global propagator, asked for every request",
)
def probe() -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parts = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    if getattr(CompositePropagator(parts), "_propagators", None) != parts:
        raise AttributeError("CompositePropagator keeps its propagators elsewhere than _propagators")
