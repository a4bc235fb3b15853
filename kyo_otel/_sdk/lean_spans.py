"""Fast path ``lean-spans``: ``LeanTracer`` and ``LeanSpan`` (see ``kyo_otel.spans``).

Reads and writes the SDK span's and tracer's private fields (``_attributes``, ``_span_limits``,
``_tracer_config``, ``_span_processors``, the batch processor's queue...). The probe builds a lean
tracer on a fresh SDK provider and checks a span it makes against the SDK's; when that fails (or
the path is off), ``LeanTracer`` hands every span to the SDK tracer.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from random import getrandbits
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import SpanLimits, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from kyo_otel._sdk import fast_path, is_on
from kyo_otel._sdk.span_processors import GuardedSpanProcessors
from kyo_otel.runtime_context import current_span, span_context_fields

_logger = logging.getLogger(__name__)

_UNSET = Status(StatusCode.UNSET)
_DEFAULT_TRACE_STATE = trace_api.DEFAULT_TRACE_STATE
_NONE: tuple[()] = ()
_SAMPLED = int(TraceFlags.SAMPLED)
_RANDOM = int(TraceFlags.RANDOM_TRACE_ID)
_TRACE_FLAGS = {bits: TraceFlags(bits) for bits in range(4)}
"""TraceFlags by their sampled (1) and random trace id (2) bits."""


class LeanSpan(sdk_trace.Span):
    """An SDK span built without the SDK's per-span validation and bookkeeping (see module)."""

    # Fields every lean span starts with, read from the class until set on the span.
    _start_time: int | None = None
    _end_time: int | None = None
    _events = _NONE  # type: ignore[assignment]
    _links = _NONE  # type: ignore[assignment]
    _status = _UNSET
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True
    _record_end_metrics = None
    _dropped_attributes = 0

    def __init__(  # noqa: PLR0913 - one assignment per field, no work
        self,
        tracer: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        queue: tuple[Any, Any] | None,
    ) -> None:
        # ReadableSpan's fields
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer.instrumentation_scope
        self._parent = parent
        self._attributes = attributes  # type: ignore[assignment]
        self._resource = tracer.tracer.resource  # read per span: after_fork() gives it a new identity
        # Span's fields
        self._sampler = tracer.sampler
        self._span_processor = tracer.span_processor
        self._limits = tracer.limits
        self._lock = threading.Lock()
        self._tracer_queue = queue
        """The tracer's ``queue`` when this span is sampled: ``end()`` may queue it directly."""

    # -- attributes: a plain dict; what application code sets is validated as the SDK does ----

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        cleaned = BoundedAttributes(None, attributes, immutable=True, max_value_len=self._limits.max_span_attribute_length)
        self._update(cleaned, cleaned.dropped)  # dropped: invalid keys

    def set_trusted_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Attributes kyo_otel built itself (strings, integers): set without validation (a lean
        span exists only without a value-length limit, see ``LeanTracer``)."""
        self._update(attributes)

    def _update(self, attributes: Mapping[str, Any], invalid: int = 0) -> None:
        """As ``BoundedAttributes``: a key set again moves to the end; when full, the oldest goes.
        ``invalid``: keys dropped before, counted here (under the lock, and not once ended)."""
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            self._dropped_attributes += invalid
            mine: dict[str, Any] = self._attributes  # type: ignore[assignment]
            limit = self._limits.max_span_attributes
            for key, value in attributes.items():
                if key in mine:
                    del mine[key]
                if limit is not None and len(mine) >= limit:
                    if limit == 0:
                        self._dropped_attributes += 1
                        continue
                    del mine[next(iter(mine))]
                    self._dropped_attributes += 1
                mine[key] = value

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    # -- events and links: lists made on first use -------------------------------------------

    def _add_event(self, event: Any) -> None:
        self._append("_events", self._limits.max_events, event, "_add_event")

    def _add_link(self, link: Any) -> None:
        self._append("_links", self._limits.max_links, link, "_add_link")

    def _append(self, field: str, limit: int | None, item: Any, caller: str) -> None:
        with self._lock:
            if self._end_time is None:
                items = getattr(self, field)
                if items is _NONE:
                    items = BoundedList(limit)
                    setattr(self, field, items)
                items.append(item)
                return
        _logger.warning("Tried calling %s on an ended span.", caller)

    # -- end: the processors get the span itself (it no longer changes), not a copy ----------

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                _logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
        processor = self._span_processor
        queue = self._tracer_queue
        if queue is not None and queue[0] is processor._span_processors:  # noqa: SLF001
            # The provider's only processor is the SDK's BatchSpanProcessor, whose _on_ending
            # does nothing and whose on_end queues sampled spans (this one is): queued directly.
            queue[1](self)
            return
        processor._on_ending(self)  # noqa: SLF001 - the SDK's own hook, called as Span.end does
        processor.on_end(self)


def _parent_based_always_on(sampler: Any) -> tuple[bool, bool, bool]:
    """For the SDK's ``ParentBased`` (every ``parentbased_*`` sampler): whether it answers
    RECORD_AND_SAMPLE, with the attributes unchanged and the parent's trace state, for every root
    span, every child of a sampled local parent and every child of a sampled remote parent: the
    branches whose delegate is ALWAYS_ON (by default the two kinds of children, and the root of
    ``parentbased_always_on`` or of a ratio of 1). A subclass that overrides ``should_sample`` is
    always asked."""
    if not isinstance(sampler, ParentBased) or type(sampler).should_sample is not ParentBased.should_sample:
        return False, False, False

    def always_on(delegate: Any) -> bool:
        return type(delegate) is StaticSampler and delegate._decision is Decision.RECORD_AND_SAMPLE  # noqa: SLF001

    return (
        always_on(getattr(sampler, "_root", None)),
        always_on(getattr(sampler, "_local_parent_sampled", None)),
        always_on(getattr(sampler, "_remote_parent_sampled", None)),
    )


def _valid_span_context(trace_id: int, span_id: int, is_remote: bool, flags: TraceFlags, trace_state: Any) -> SpanContext:
    """``SpanContext(...)`` for ids known to be valid (a valid parent's trace id, ids from the
    SDK's random generator, which never returns an invalid one): the tuple without the checks."""
    return tuple.__new__(  # type: ignore[return-value]
        SpanContext, (trace_id, span_id, is_remote, flags, _DEFAULT_TRACE_STATE if trace_state is None else trace_state, True)
    )


class LeanTracer:
    """Starts ``LeanSpan`` where that gives what the SDK tracer would, else asks the SDK tracer."""

    def __init__(self, tracer: trace_api.Tracer, try_lean: bool | None = None) -> None:
        """``try_lean``: whether to try the lean path (default: while the fast path is on)."""
        self.tracer = tracer
        self.lean = False
        self.why_not = "the fast path is off"
        """Why this tracer is not lean (``""`` when it is)."""
        self._room = -1
        if not (is_on("lean-spans") if try_lean is None else try_lean):
            return
        try:
            self._adopt(tracer)
        except Exception as error:  # another SDK layout: every span comes from the SDK tracer
            self.why_not = f"{type(error).__name__}: {error}"
            _logger.debug("kyo_otel: lean spans unavailable, using the SDK tracer", exc_info=True)

    def _adopt(self, tracer: Any) -> None:
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics

        if (
            type(tracer) is not sdk_trace.Tracer
            or not isinstance(tracer._tracer_metrics, NoOpTracerMetrics)  # noqa: SLF001
            or not hasattr(tracer, "_tracer_config")  # what Tracer._is_enabled reads, read by start_span
        ):
            self.why_not = "not the SDK tracer, or its internal metrics are on, or it has no _tracer_config"
            return
        self.sampler = tracer.sampler
        self.span_processor = tracer.span_processor
        self.instrumentation_info = tracer.instrumentation_info
        self.instrumentation_scope = tracer._instrumentation_scope  # noqa: SLF001
        self.limits: SpanLimits = tracer._span_limits  # noqa: SLF001
        # How many attributes a span can start with on the lean path: none when values have a
        # length limit (the SDK truncates them), else up to the count limit (beyond, it evicts).
        limits = self.limits
        self._room = -1 if limits.max_span_attribute_length is not None else limits.max_span_attributes
        if self._room is None:
            self._room = sys.maxsize
        ids = tracer.id_generator
        random_ids = type(ids) is RandomIdGenerator
        # The SDK's random generator never returns an invalid id: no need to check each.
        self._span_context = _valid_span_context if random_ids else SpanContext
        self._generate_trace_id = ids.generate_trace_id
        self._generate_span_id = ids.generate_span_id
        # That generator draws getrandbits(64) (128 for a trace id) until the id is not 0, the
        # invalid one: here one draw is a C call, and only a 0 asks the generator again. Its
        # is_trace_id_random() is always True: answered here by a C call too.
        self._draw_span_id = functools.partial(getrandbits, 64) if random_ids else ids.generate_span_id
        self._draw_trace_id = functools.partial(getrandbits, 128) if random_ids else ids.generate_trace_id
        self._is_trace_id_random = functools.partial(bool, True) if random_ids else ids.is_trace_id_random
        self._should_sample = self.sampler.should_sample
        self._on_start = self.span_processor.on_start
        self._samples_roots, self._samples_local_children, self._samples_remote_children = _parent_based_always_on(self.sampler)
        self.queue: tuple[Any, Any] | None = None
        """(the provider's processor tuple, its batch queue's ``emit``) while that tuple is one
        ``BatchSpanProcessor``: ``LeanSpan.end`` then queues the span itself."""
        processor = self.span_processor
        if type(processor) in (SynchronousMultiSpanProcessor, GuardedSpanProcessors):
            processors = processor._span_processors  # noqa: SLF001
            if len(processors) == 1 and type(processors[0]) is BatchSpanProcessor:
                self.queue = (processors, processors[0]._batch_processor.emit)  # noqa: SLF001
        # The self-check: a span built here reads back as an SDK span would.
        probe = LeanSpan(self, "probe", trace_api.INVALID_SPAN_CONTEXT, None, SpanKind.INTERNAL, {"k": 1}, None)
        readable = (probe.name, dict(probe.attributes), probe.events, probe.links, probe.status.status_code, probe.resource)
        expected = ("probe", {"k": 1}, (), (), StatusCode.UNSET, tracer.resource)
        if readable != expected or not probe.is_recording():
            self.why_not = f"a lean span reads back as {readable!r}, not {expected!r}"
            return
        self.lean, self.why_not = True, ""

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> trace_api.Span:
        """As ``Tracer.start_span``. ``attributes``: a fresh dict of strings, booleans, numbers
        and tuples of them, built by kyo_otel; the span keeps it (the caller must not reuse it)."""
        if attributes is None:
            attributes = {}
        if (
            not self.lean
            or len(attributes) > self._room
            # Tracer._is_enabled, without the call: its config's flag, which a configurator may
            # change at any time (a lean tracer's is the SDK's own Tracer).
            or not self.tracer._tracer_config.is_enabled  # type: ignore[attr-defined]  # noqa: SLF001
        ):
            return self.tracer.start_span(name, context, kind, attributes)
        parent = current_span(context).get_span_context()
        trace_id, _, remote, flags, trace_state, valid = span_context_fields(parent)
        if valid:
            random = flags & _RANDOM
            if flags & _SAMPLED and (self._samples_remote_children if remote else self._samples_local_children):
                # What the sampler answers for a sampled parent (see _parent_based_always_on),
                # without asking it.
                span_context = self._span_context(trace_id, self._draw_span_id() or self._generate_span_id(), False, _TRACE_FLAGS[_SAMPLED | random], trace_state)
                return self._started(name, span_context, parent, kind, attributes, context, True)
        else:
            parent = None  # type: ignore[assignment]
            trace_id = self._draw_trace_id() or self._generate_trace_id()
            random = _RANDOM if self._is_trace_id_random() else 0
            if self._samples_roots:  # the same, for a root span: no trace state
                span_context = self._span_context(trace_id, self._draw_span_id() or self._generate_span_id(), False, _TRACE_FLAGS[_SAMPLED | random], None)
                return self._started(name, span_context, None, kind, attributes, context, True)
        result = self._should_sample(context, trace_id, name, kind, attributes, ())
        if result.attributes != attributes:  # a sampler that adds or changes attributes: the SDK's path
            return self.tracer.start_span(name, context, kind, attributes)
        decision = result.decision
        sampled = decision.is_sampled()
        span_context = self._span_context(
            trace_id, self._draw_span_id() or self._generate_span_id(), False, _TRACE_FLAGS[(_SAMPLED if sampled else 0) | random], result.trace_state
        )
        if not decision.is_recording():
            return NonRecordingSpan(span_context)
        return self._started(name, span_context, parent, kind, attributes, context, sampled)

    def _started(
        self, name: str, span_context: SpanContext, parent: SpanContext | None, kind: SpanKind,
        attributes: dict[str, Any], context: Any, sampled: bool,
    ) -> trace_api.Span:
        queue = self.queue
        span = LeanSpan(self, name, span_context, parent, kind, attributes, queue if sampled else None)
        span._start_time = time_ns()  # noqa: SLF001
        if queue is None or queue[0] is not self.span_processor._span_processors:  # noqa: SLF001
            self._on_start(span, parent_context=context)  # (the lone BatchSpanProcessor's does nothing)
        return span


@fast_path(
    "lean-spans",
    replaces="the SDK tracer's start_span and Span (BoundedAttributes, BoundedList, the ReadableSpan copy) for kyo's server and Redis spans",
    fallback="the SDK tracer's spans",
)
def probe() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(active_span_processor=GuardedSpanProcessors(), shutdown_on_exit=False)
    if not callable(getattr(SynchronousMultiSpanProcessor, "_on_ending", None)):
        raise AttributeError("SynchronousMultiSpanProcessor has no _on_ending (what LeanSpan.end calls)")
    tracer = LeanTracer(provider.get_tracer("kyo_otel.probe"), try_lean=True)
    if not tracer.lean:
        raise RuntimeError(tracer.why_not)
    span = tracer.start_span("probe", None, SpanKind.SERVER, {"k": "v"})
    span.set_attribute("n", 1)
    span.end()
    context = span.get_span_context()
    if type(span) is not LeanSpan or dict(span.attributes) != {"k": "v", "n": 1} or not context.is_valid or span.end_time is None:
        raise RuntimeError("a lean span does not read back as the SDK span would")
