"""Each fast path (``kyo_otel._sdk``) with the private name it needs renamed or removed, as an SDK,
contrib or redis-py release may do: ``configure()`` and the application's calls do not raise, one
warning names the path that is off, and a real OTLP receiver gets the same data, scrubbed, as with
every fast path on.

Each case runs ``tests/support/fallback_traffic.py`` in a fresh interpreter (some paths are
chosen when kyo_otel is imported) after its removal, against a receiver and a Redis server on
127.0.0.1. ``tests/support/renamed.py`` renames a name everywhere the package's own code uses it,
so that the package itself keeps working through its public API.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kyo_otel.receiver import OtlpReceiver
from tests.support.fallback_traffic import CALLER_SPAN_ID, CALLER_TRACE_ID, CODE, PHONE
from tests.support.subprocess_python import last_json_line, run_python

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds

VOLATILE = frozenset({"kyo.request.id", "aws.xray.trace_id"})
"""Attributes that differ from run to run (ids)."""

RUN = """
import json, os, pytest
from tests.support.renamed import rename
mp = pytest.MonkeyPatch()
{removal}
from tests.support.fallback_traffic import traffic
print(json.dumps(traffic(os.environ["ENDPOINT"], os.environ["REDIS_URL"])))
"""


def _plain(attributes: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in attributes.items() if k not in VOLATILE}, sort_keys=True, default=str)


def exported(receiver: OtlpReceiver) -> dict[str, list[Any]]:
    """What the receiver got, without what differs from run to run (ids, durations, times)."""
    return {
        # The caller's trace id (fallback_traffic sends a traceparent) and whether the caller's
        # span is the parent: what the propagators read.
        "spans": sorted(
            (s.name, s.kind, s.scope, s.status_code, _plain(s.attributes), s.trace_id, s.parent_span_id == CALLER_SPAN_ID)
            for s in receiver.spans()
        ),
        "logs": sorted((r.body, r.severity_text, _plain(r.attributes)) for r in receiver.logs() if r.scope == "app.sms"),
        "metrics": sorted(
            (p.name, p.kind, p.temporality, _plain(p.attributes), p.count if p.count is not None else p.value)
            for p in receiver.metric_points()
        ),
    }


def run_traffic(redis_server: Any, removal: str = "") -> tuple[dict[str, Any], dict[str, list[Any]], str, OtlpReceiver]:
    with OtlpReceiver() as receiver:
        result = run_python(RUN.format(removal=removal), env={"ENDPOINT": receiver.endpoint, "REDIS_URL": redis_server.url}, timeout=120)
        report = last_json_line(result)
        return report, exported(receiver), result.stderr, receiver


@pytest.fixture(scope="module")
def all_on(redis_server):
    report, data, stderr, _ = run_traffic(redis_server)
    assert all(report["fast_paths"].values()), report
    assert "fast path" not in stderr
    assert data["spans"] and data["logs"] and data["metrics"]
    assert {span[5] for span in data["spans"]} == {CALLER_TRACE_ID}, data["spans"]
    assert any(name == "app.queue_depth" for name, *_ in data["metrics"]), data["metrics"]
    return data


def assert_falls_back(redis_server: Any, all_on: dict[str, list[Any]], path: str, removal: str) -> tuple[dict[str, Any], str]:
    """The removal turns ``path`` off, with one warning naming it; everything else is as before."""
    report, data, stderr, receiver = run_traffic(redis_server, removal)
    assert report["fast_paths"][path] is False, report
    assert report["flushed"] is True
    assert stderr.count(f"kyo_otel fast path {path!r} is off") == 1, stderr
    assert "Traceback" not in stderr and "--- Logging error ---" not in stderr, stderr
    assert data == all_on
    for raw in (PHONE, PHONE[4:], CODE):  # scrubbed on the fallback path too
        assert not receiver.contains(raw), raw
    return report, stderr


# --- the four cases of issue 17 ------------------------------------------------------------------


def test_without_the_proto_common_encode_helpers_configure_works_and_the_sdk_exporter_sends(redis_server, all_on):
    """Was: ``configure()`` in the otlp profile raised ImportError."""
    assert_falls_back(redis_server, all_on, "otlp-wire-encoder", """
import opentelemetry.exporter.otlp.proto.common._internal as helpers
import opentelemetry.exporter.otlp.proto.grpc._log_exporter, opentelemetry.exporter.otlp.proto.grpc.metric_exporter
import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # the SDK's encoders, holding their own reference
mp.delattr(helpers, "_encode_instrumentation_scope")
""")


def test_without_the_exporters_channel_configure_works_and_the_sdk_exporter_sends(redis_server, all_on):
    """Was: ``configure()`` in the otlp profile raised AttributeError."""
    assert_falls_back(redis_server, all_on, "otlp-wire-encoder", """
from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
rename(mp, [OTLPExporterMixin], "_channel", "_grpc_channel")
""")


def test_without_the_readers_collect_callback_the_counter_is_scrubbed_and_the_duration_histogram_exported(redis_server, all_on):
    """Was: no error, no warning; the counter's ``user.phone`` exported raw and
    ``http.server.request.duration`` missing (``all_on`` holds both, scrubbed)."""
    assert any(m[0] == "http.server.request.duration" for m in all_on["metrics"])
    assert any(m[0] == "app.sent" and "+886*******78" in m[3] for m in all_on["metrics"])
    assert_falls_back(redis_server, all_on, "metric-collect-hook", """
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
rename(mp, [MetricReader, MeterProvider], "_set_collect_callback", "_set_collect_function")
""")


def test_without_the_log_handlers_is_emitting_every_record_reaches_the_collector(redis_server, all_on):
    """Was: no record reached the collector, each one dumped to stderr."""
    assert len(all_on["logs"]) == 2
    assert_falls_back(redis_server, all_on, "log-handler", """
from opentelemetry.instrumentation.logging.handler import LoggingHandler
rename(mp, [LoggingHandler], "_is_emitting", "_emitting")
""")


def test_without_contribs_redis_instrumented_flag_the_applications_redis_calls_work(redis_server, all_on):
    """Was: the application's own ``r.set()`` raised AttributeError."""
    assert_falls_back(redis_server, all_on, "contrib-instrumented-flags", """
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
rename(mp, [BaseInstrumentor], "_is_instrumented_by_opentelemetry", "_instrumented", instances=(RedisInstrumentor(),))
""")


# --- every other fast path ------------------------------------------------------------------------

OTHERS = {
    "lean-spans": """
from opentelemetry.sdk import trace as sdk_trace
rename(mp, [sdk_trace.Tracer, sdk_trace.TracerProvider], "_tracer_config", "_config")
""",
    "guarded-span-processors": """
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
rename(mp, [SynchronousMultiSpanProcessor], "_span_processors", "_processors")
""",
    "encode-once": """
from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
mp.delattr(OTLPExporterMixin, "_translate_data")  # the abstract one; each exporter has its own
""",
    "log-direct-queue": """
from opentelemetry.sdk._logs import LoggerProvider
rename(mp, [LoggerProvider], "_multi_log_record_processor", "_processors")
""",
    "runtime-context": """
from opentelemetry import context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
rename(mp, [ContextVarsRuntimeContext], "_current_context", "_variable")
mp.setattr(context, "_RUNTIME_CONTEXT", ContextVarsRuntimeContext())
""",
    "contrib-semconv": """
import opentelemetry.instrumentation._semconv as semconv
import opentelemetry.instrumentation.redis  # contrib's redis instrumentation, holding its own reference
mp.delattr(semconv, "_set_db_redis_database_index")
""",
    "redis-cluster-pipeline-queue": """
import redis.cluster
rename(mp, [redis.cluster.ClusterPipeline], "_execution_strategy", "_strategy")
""",
    "global-providers": """
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
rename(mp, [TracerProvider, MeterProvider, LoggerProvider], "_update_resource", "_merge_resource")
""",
    "composite-propagator-parts": """
from opentelemetry.propagators.composite import CompositePropagator
rename(mp, [CompositePropagator], "_propagators", "_parts")
""",
    "sync-gauge-type": """
import opentelemetry.sdk.metrics as sdk_metrics
mp.delattr(sdk_metrics, "_Gauge")
""",
}


@pytest.mark.parametrize("path", sorted(OTHERS))
def test_each_other_fast_path_falls_back_to_the_same_scrubbed_export(redis_server, all_on, path):
    if path == "redis-cluster-pipeline-queue" and not hasattr(_sync_cluster_pipeline(), "_execution_strategy"):
        pytest.skip("redis-py before 6 queues a cluster pipeline's commands in its public command_stack: nothing to remove")
    assert_falls_back(redis_server, all_on, path, OTHERS[path])


def _sync_cluster_pipeline() -> object:
    import redis.cluster

    class Unconnected:
        def __getattr__(self, name: str) -> None:
            return None

    return redis.cluster.ClusterPipeline(nodes_manager=Unconnected(), commands_parser=None)


def test_every_fast_path_has_a_removal_test():
    from kyo_otel import _sdk

    covered = set(OTHERS) | {"otlp-wire-encoder", "metric-collect-hook", "log-handler", "contrib-instrumented-flags"}
    assert set(_sdk.load()) == covered


DOCTOR = """
import sys, pytest
from tests.support.renamed import rename
mp = pytest.MonkeyPatch()
{removal}
from kyo_otel.cli import main
sys.exit(main(["doctor"]))
"""


def _fast_path_lines(stdout: str) -> dict[str, str]:
    from kyo_otel import _sdk

    names = set(_sdk.load())
    lines = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in names:
            lines[words[1]] = line
    return lines


def test_doctor_lists_every_fast_path_as_on_and_a_removed_one_as_off_with_the_reason():
    every = _fast_path_lines(run_python(DOCTOR.format(removal="")).stdout)
    assert len(every) == len(OTHERS) + 4 and all(line.split()[0] == "on" for line in every.values()), every
    result = run_python(DOCTOR.format(removal="""
from opentelemetry.instrumentation.logging.handler import LoggingHandler
rename(mp, [LoggingHandler], "_is_emitting", "_emitting")
"""))
    lines = _fast_path_lines(result.stdout)
    assert lines["log-handler"].split()[0] == "OFF"
    assert "_is_emitting" in lines["log-handler"] and "using the contrib LoggingHandler" in lines["log-handler"]
    assert all(line.split()[0] == "on" for name, line in lines.items() if name != "log-handler")
    assert "fast path 'log-handler' is off" not in result.stderr  # listed, not also warned
