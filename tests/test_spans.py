"""kyo_otel's lean spans read back exactly as the SDK's own spans do, whatever is done to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from kyo_otel.spans import LeanSpan, LeanTracer

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds

REDIS_ATTRIBUTES = {
    "db.system": "redis",
    "db.statement": "SET ? ?",
    "db.redis.args_length": 3,
    "server.address": "127.0.0.1",
    "server.port": 6379,
    "network.transport": "tcp",
    "db.redis.database_index": 0,
}


class _Recorder(SpanProcessor):
    """What processors see: the span at start (still recording) and the ended span."""

    def __init__(self) -> None:
        self.started: list[bool] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.is_recording())
        span.set_attribute("processor.added", "yes")

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def _provider(sampler: Sampler = ALWAYS_ON, limits: SpanLimits | None = None) -> tuple[TracerProvider, InMemorySpanExporter, _Recorder]:
    provider = TracerProvider(resource=Resource({"service.name": "spans-test"}), sampler=sampler, span_limits=limits)
    exporter, recorder = InMemorySpanExporter(), _Recorder()
    provider.add_span_processor(recorder)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter, recorder


def _readable(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter reads, ids aside (they are random)."""
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent is not None,
        "flags": span.context.trace_flags,
        "attributes": dict(span.attributes),
        "events": [(e.name, dict(e.attributes)) for e in span.events],
        "links": [(link.context.span_id, dict(link.attributes)) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "resource": dict(span.resource.attributes),
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version, span.instrumentation_scope.schema_url),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "timed": span.start_time is not None and span.end_time is not None and span.end_time >= span.start_time,
    }


def _both(story: Callable[[Any], None], **provider_kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``story`` once with the SDK tracer and once with the lean one; what each exported."""
    results = []
    for lean in (False, True):
        provider, exporter, _ = _provider(**provider_kwargs)
        sdk_tracer = provider.get_tracer("kyo_otel.test", "1.0", schema_url="https://opentelemetry.io/schemas/1.21.0")
        story(LeanTracer(sdk_tracer) if lean else sdk_tracer)
        results.append([_readable(span) for span in exporter.get_finished_spans()])
    return results[0], results[1]


def _start(tracer: Any, name: str, kind: SpanKind = SpanKind.CLIENT, attributes: dict[str, Any] | None = None, context: Any = None) -> Any:
    return tracer.start_span(name, context, kind, dict(REDIS_ATTRIBUTES) if attributes is None else attributes)


def test_a_lean_span_is_an_sdk_span_that_reads_back_the_same() -> None:
    def story(tracer: Any) -> None:
        _start(tracer, "SET").end()

    sdk, lean = _both(story)
    assert lean == sdk
    assert lean[0]["attributes"]["processor.added"] == "yes"  # on_start saw a live span


def test_what_application_code_does_to_a_span_is_validated_as_the_sdk_does() -> None:
    def story(tracer: Any) -> None:
        span = _start(tracer, "GET")
        span.set_attribute("list.becomes.tuple", ["a", "b"])
        span.set_attribute("mapping.value", {"a": "mapping"})
        span.set_attribute("mixed.sequence", [1, "two"])
        span.set_attributes({"n": 1.5, "flag": True, "db.statement": "GET ?"})
        span.add_event("cache.miss", {"attempt": 2, "bad": object()})
        span.add_link(trace_api.SpanContext(7, 9, is_remote=True), {"link.kind": "follows"})
        span.update_name("GET renamed")
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
        span.set_attribute("after.end", "ignored")
        span.add_event("after.end")
        span.end()  # a second end changes nothing

    sdk, lean = _both(story)
    assert lean == sdk
    assert lean[0]["attributes"]["list.becomes.tuple"] == ("a", "b")
    assert "after.end" not in lean[0]["attributes"] and len(lean[0]["events"]) == 1


def test_exceptions_recorded_with_the_context_manager_and_by_hand() -> None:
    def story(tracer: Any) -> None:
        with pytest.raises(ValueError), _start(tracer, "EVAL"):
            raise ValueError("no script")
        span = _start(tracer, "GET")
        span.record_exception(KeyError("k"), {"extra": "x"})
        span.end()

    sdk, lean = _both(story)
    for spans in (sdk, lean):  # stack traces differ by line numbers: compare the rest
        for span in spans:
            span["events"] = [(name, {k: v for k, v in attrs.items() if k != "exception.stacktrace"}) for name, attrs in span["events"]]
    assert lean == sdk
    assert lean[0]["status"] == (StatusCode.ERROR, "ValueError: no script")


def test_parents_sampling_and_trace_flags_follow_the_sdk() -> None:
    def story(tracer: Any) -> None:
        parent = _start(tracer, "POST /otp/send", SpanKind.SERVER, {"http.request.method": "POST"})
        child = _start(tracer, "SET", context=trace_api.set_span_in_context(parent))
        child.end()
        parent.end()
        remote = trace_api.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))
        _start(tracer, "remote child", context=trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))).end()

    sdk, lean = _both(story, sampler=ParentBased(ALWAYS_ON))
    assert lean == sdk
    assert [s["parent"] for s in lean] == [True, False, True]


def test_a_span_the_sampler_drops_is_not_recording() -> None:
    provider, exporter, recorder = _provider(sampler=ALWAYS_OFF)
    span = _start(LeanTracer(provider.get_tracer("t")), "SET")
    assert not span.is_recording() and not isinstance(span, LeanSpan)
    assert span.get_span_context().is_valid and not span.get_span_context().trace_flags.sampled
    span.end()
    assert exporter.get_finished_spans() == () and recorder.started == []


class _AddsAttributes(Sampler):
    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "sampler.rule": "keep"})

    def get_description(self) -> str:
        return "adds an attribute"


def test_a_sampler_that_adds_attributes_gets_them_on_the_span() -> None:
    def story(tracer: Any) -> None:
        _start(tracer, "SET").end()

    sdk, lean = _both(story, sampler=_AddsAttributes())
    assert lean == sdk and lean[0]["attributes"]["sampler.rule"] == "keep"


def test_span_limits_apply_to_lean_spans_too() -> None:
    limits = SpanLimits(max_span_attributes=8, max_span_attribute_length=5, max_events=1)

    def story(tracer: Any) -> None:
        span = _start(tracer, "SET")
        span.set_attribute("long.value", "truncated here")
        span.set_attribute("one.too.many", 1)
        span.add_event("first")
        span.add_event("second")
        span.end()

    sdk, lean = _both(story, limits=limits)
    assert lean == sdk
    assert lean[0]["attributes"]["long.value"] == "trunc" and lean[0]["dropped"][1] == 1


def test_count_limit_on_set_attributes_counts_what_it_drops() -> None:
    def story(tracer: Any) -> None:
        span = _start(tracer, "SET", attributes={"a": 1})
        span.set_attributes({f"k{i}": i for i in range(5)})
        span.end()

    sdk, lean = _both(story, limits=SpanLimits(max_span_attributes=3))
    assert lean == sdk and lean[0]["dropped"][0] == 4  # 7 attributes (one from the processor), room for 3


def test_the_resource_is_read_per_span() -> None:
    """after_fork() gives the providers a new service.instance.id: spans started later carry it."""
    provider, exporter, _ = _provider()
    tracer = LeanTracer(provider.get_tracer("t"))
    _start(tracer, "before").end()
    provider._update_resource(Resource({"service.instance.id": "child"}))
    _start(tracer, "after").end()
    before, after = exporter.get_finished_spans()
    assert "service.instance.id" not in before.resource.attributes
    assert after.resource.attributes["service.instance.id"] == "child"


def test_tracers_it_cannot_vouch_for_make_their_own_spans() -> None:
    """A proxy or no-op tracer (no SDK provider yet) is used as it is."""
    tracer = LeanTracer(trace_api.NoOpTracer())
    assert not tracer.lean
    span = _start(tracer, "SET")
    assert not span.is_recording()
    span.end()


def test_an_ended_span_counts_no_more_dropped_attributes() -> None:
    """What processors and exporters got at end() no longer changes: not even the dropped count
    of invalid keys set afterwards."""

    def story(tracer: Any) -> None:
        span = _start(tracer, "SET")
        span.set_attributes({"": "invalid key"})
        span.end()
        span.set_attributes({"": "invalid key, after end"})
        span.set_attribute("", "invalid key, after end")

    sdk, lean = _both(story)
    assert lean == sdk and lean[0]["dropped"][0] == 1


class _ParentBasedWithRule(ParentBased):
    """A ParentBased that changes its mind about children: the lean tracer must ask it."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
        if name == "DROP ME":
            return SamplingResult(Decision.DROP)
        return super().should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)


@pytest.mark.parametrize(
    "sampler",
    [
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF),
        ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF),
        ParentBased(ALWAYS_OFF),
        _ParentBasedWithRule(ALWAYS_ON),
    ],
    ids=["parent-based", "local-children-off", "remote-children-off", "roots-off", "subclass"],
)
def test_roots_and_children_are_sampled_as_the_sdk_samples_them(sampler: Sampler) -> None:
    """The lean tracer answers for ParentBased's always-on branches (a root; a sampled parent's
    child, local or remote, with the parent's trace state) without asking it; any other branch
    or sampler is asked."""
    states = []

    def story(tracer: Any) -> None:
        for name in ("ROOT", "DROP ME"):
            root = _start(tracer, name)
            states.append((root.get_span_context().trace_state, root.get_span_context().trace_flags, root.is_recording()))
            root.end()
        remote = trace_api.SpanContext(
            0xABC, 0xDEF, is_remote=True, trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
            trace_state=trace_api.TraceState([("vendor", "v1")]),
        )
        server = _start(tracer, "POST", SpanKind.SERVER, {"http.request.method": "POST"},
                        context=trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote)))
        states.append((server.get_span_context().trace_state, server.get_span_context().trace_flags, server.is_recording()))
        inside = trace_api.set_span_in_context(server)
        for name in ("SET", "DROP ME"):
            child = _start(tracer, name, context=inside)
            states.append((child.get_span_context().trace_state, child.get_span_context().trace_flags, child.is_recording()))
            child.end()
        server.end()

    sdk, lean = _both(story, sampler=sampler)
    assert lean == sdk
    assert states[5:] == states[:5]  # the SDK's roots, server span and children, then the lean ones
    assert states[3][0] == trace_api.TraceState([("vendor", "v1")])


def test_a_batch_processor_alone_gets_the_span_and_one_added_later_too() -> None:
    """With the SDK's BatchSpanProcessor as the provider's only processor, a lean span goes
    straight into its queue; a processor added afterwards sees every later span, and a span
    recorded but not sampled is exported by neither tracer."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import StaticSampler

    provider = TracerProvider(resource=Resource({"service.name": "spans-test"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = LeanTracer(provider.get_tracer("t"))
    _start(tracer, "SET").end()
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["SET"]

    recorder = _Recorder()
    provider.add_span_processor(recorder)
    _start(tracer, "GET").end()
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["SET", "GET"]
    assert [s.name for s in recorder.ended] == ["GET"]

    record_only = TracerProvider(sampler=StaticSampler(Decision.RECORD_ONLY))
    unsampled = InMemorySpanExporter()
    record_only.add_span_processor(BatchSpanProcessor(unsampled))
    span = _start(LeanTracer(record_only.get_tracer("t")), "SET")
    assert span.is_recording() and not span.get_span_context().trace_flags.sampled
    span.end()
    record_only.force_flush()
    assert unsampled.get_finished_spans() == ()
    provider.shutdown()
    record_only.shutdown()


def test_a_tracer_disabled_later_by_its_configurator_makes_no_lean_spans():
    """The SDK's tracer configurator may disable a tracer at any time: the lean tracer reads the
    flag at every span, as the SDK tracer does."""
    from opentelemetry.sdk.trace import _TracerConfig

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = LeanTracer(provider.get_tracer("kyo_test.toggled"))
    assert tracer.lean
    tracer.start_span("on").end()
    provider._set_tracer_configurator(tracer_configurator=lambda scope: _TracerConfig(is_enabled=False))
    off = tracer.start_span("off")
    assert not off.is_recording()
    off.end()
    provider._set_tracer_configurator(tracer_configurator=lambda scope: _TracerConfig(is_enabled=True))
    tracer.start_span("on again").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["on", "on again"]


def test_a_drawn_id_of_zero_is_drawn_again_as_the_sdk_generator_does():
    """Ids are drawn with one getrandbits call; 0, the invalid id (one draw in 2**64), goes back
    to the SDK's generator, which draws until it gets another."""
    provider, exporter, _ = _provider(sampler=ParentBased(ALWAYS_ON))
    tracer = LeanTracer(provider.get_tracer("t"))
    tracer._draw_span_id = tracer._draw_trace_id = lambda: 0  # what getrandbits returns once in 2**64 draws
    root = _start(tracer, "root")
    child = _start(tracer, "child", context=trace_api.set_span_in_context(root))
    for span in (child, root):
        span.end()
    contexts = [s.get_span_context() for s in exporter.get_finished_spans()]
    assert all(c.is_valid and c.span_id and c.trace_id for c in contexts)
    assert contexts[0].trace_id == contexts[1].trace_id
