"""The request-latency histogram aggregated at collection exports what the SDK's own exponential
histogram exports for the same values: compared point by point with a real SDK MeterProvider."""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ExponentialHistogram, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from kyo_otel import catalog
from kyo_otel.config import resolve_settings
from kyo_otel.exporters import DELTA_TEMPORALITY, EXPONENTIAL_HISTOGRAMS
from kyo_otel.histogram import ProcessHistogram
from kyo_otel.instruments import Recorder
from kyo_otel.metrics import build_meter_provider, memory_reader
from kyo_otel.resource import build_resource

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds

FOLD_AT = 4096
"""A small fold threshold: the values a request folds on the way are compared too."""
SERIES = [{catalog.ROUTE: f"/r{i}", catalog.METHOD: "GET", catalog.STATUS_CODE: 200} for i in range(4)]


def _point_list(data: MetricsData | None, name: str) -> list:
    return [
        point
        for resource_metrics in (data.resource_metrics if data else [])
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _points(data: MetricsData | None, name: str) -> dict:
    return {point.attributes[catalog.ROUTE]: point for point in _point_list(data, name)}


def _shape(point) -> tuple:
    """Everything of a point but its times (the two aggregations start at different instants)."""
    return (
        point.count, point.sum, point.min, point.max, point.scale, point.zero_count,
        point.positive.offset, list(point.positive.bucket_counts),
        point.negative.offset, list(point.negative.bucket_counts),
    )  # fmt: skip


class SideBySide:
    """The same values into the SDK's histogram and a ProcessHistogram; collected together."""

    def __init__(self) -> None:
        self.sdk_reader = InMemoryMetricReader(preferred_temporality=DELTA_TEMPORALITY, preferred_aggregation=EXPONENTIAL_HISTOGRAMS)
        self.provider = MeterProvider(metric_readers=[self.sdk_reader], shutdown_on_exit=False)
        self.sdk = self.provider.get_meter(catalog.SCOPE).create_histogram(catalog.HTTP_SERVER_DURATION.name)
        self.ours = ProcessHistogram(InstrumentationScope(catalog.SCOPE), catalog.HTTP_SERVER_DURATION, fold_at=FOLD_AT)

    def record(self, series: int, value: float) -> None:
        self.sdk.record(value, SERIES[series])
        self.ours.record(value, SERIES[series])

    def assert_same_points(self) -> None:
        expected = {route: _shape(p) for route, p in _points(self.sdk_reader.get_metrics_data(), catalog.HTTP_SERVER_DURATION.name).items()}
        metric = self.ours.collect()
        got = {p.attributes[catalog.ROUTE]: _shape(p) for p in (metric.data.data_points if metric else [])}
        assert got == expected


latencies = st.floats(min_value=1e-6, max_value=30.0)
anything_finite = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)  # incl. subnormals and 1.7e308
powers_of_two_and_neighbours = st.builds(
    lambda k, nudge: math.ldexp(1.0, k) * nudge, st.integers(-1074, 1023), st.sampled_from([1.0, 1 - 2**-53, 1 + 2**-52])
).filter(math.isfinite)
values = st.one_of(latencies, anything_finite, powers_of_two_and_neighbours, st.just(0.0), st.sampled_from([-1.0, math.inf, math.nan]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, len(SERIES) - 1), values), max_size=60), min_size=1, max_size=4))
def test_same_points_as_the_sdk_for_any_values_over_several_collections(collections):
    # Several collections in a row: the scale a series was lowered to carries over, as in the SDK.
    both = SideBySide()
    for measurements in collections:
        for series, value in measurements:
            both.record(series, value)
        both.assert_same_points()


def test_same_points_as_the_sdk_for_many_latencies_spanning_more_than_160_buckets():
    rng = random.Random(9)
    both = SideBySide()
    for collection in range(3):
        # More than a fold's worth per series (about 5,100 each): folded on the way, then at collection.
        for _ in range(5 * FOLD_AT):
            both.record(rng.randrange(len(SERIES)), rng.lognormvariate(-4 + collection, 1.5))
        both.record(0, 0.0)
        both.record(1, 1e-9 * 10 ** (collection * 3))
        both.assert_same_points()
    both.assert_same_points()  # nothing new: no points at all


def _recorder_with_memory_reader():
    settings = resolve_settings({"environment": "test", "service_name": "hist"}, {})
    reader = memory_reader()
    provider = build_meter_provider(build_resource(settings), reader)
    return reader, provider, Recorder(provider.get_meter(catalog.SCOPE), tenant_cap=2, reader=reader)


def test_the_reader_exports_a_delta_series_in_the_catalog_scope_and_quiet_series_get_no_point():
    reader, provider, recorder = _recorder_with_memory_reader()
    try:
        recorder.request("/otp/send", "POST", 200, 0.010)  # nothing else recorded: the SDK alone would collect nothing
        recorder.request("/otp/send", "POST", 200, 0.030)
        first = reader.get_metrics_data()
        recorder.request("/otp/send", "POST", 200, 0.020)
        second = reader.get_metrics_data()
        third = reader.get_metrics_data()
    finally:
        provider.shutdown()

    (resource_metrics,) = first.resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "hist"
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == catalog.SCOPE
    (metric,) = scope_metrics.metrics
    spec = catalog.HTTP_SERVER_DURATION
    assert (metric.name, metric.unit, metric.description) == (spec.name, spec.unit, spec.description)
    assert isinstance(metric.data, ExponentialHistogram)
    assert metric.data.aggregation_temporality.name == "DELTA"
    (a,) = metric.data.data_points
    assert dict(a.attributes) == {catalog.ROUTE: "/otp/send", catalog.METHOD: "POST", catalog.STATUS_CODE: 200}
    assert (a.count, a.sum, a.min, a.max) == (2, 0.010 + 0.030, 0.010, 0.030)
    (b,) = _points(second, spec.name).values()
    assert (b.count, b.start_time_unix_nano) == (1, a.time_unix_nano)  # starts where the previous one ended
    assert a.start_time_unix_nano < a.time_unix_nano < b.time_unix_nano
    assert _points(third, spec.name) == {}


def test_values_recorded_while_collections_run_are_each_exported_once():
    reader, provider, recorder = _recorder_with_memory_reader()
    done = threading.Event()
    totals = {"count": 0, "sum": 0.0}

    def collect():
        for point in _points(reader.get_metrics_data(), catalog.HTTP_SERVER_DURATION.name).values():
            totals["count"] += point.count
            totals["sum"] += point.sum

    def collect_until_done():
        while not done.is_set():
            collect()

    def requests():
        for _ in range(5000):
            recorder.request("/otp/verify", "POST", 200, 0.5)

    collector = threading.Thread(target=collect_until_done)
    collector.start()
    workers = [threading.Thread(target=requests) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    collector.join()
    collect()
    provider.shutdown()
    assert totals == {"count": 20_000, "sum": 10_000.0}  # 0.5 is exact in binary: no rounding


def test_requests_with_methods_outside_the_catalog_share_one_other_series():
    """Any method a client invents is ``_OTHER``: one point for the route, as the SDK's histogram
    (which merges equal attribute sets) gives, and no new series per invented method."""
    reader, provider, recorder = _recorder_with_memory_reader()
    try:
        recorder.request("/otp/send", "PURGE", 405, 0.010)
        recorder.request("/otp/send", "XYZZY", 405, 0.030)
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    points = _point_list(data, catalog.HTTP_SERVER_DURATION.name)  # a list: a second point would show
    assert [(dict(p.attributes), p.count) for p in points] == [
        ({catalog.ROUTE: "/otp/send", catalog.METHOD: "_OTHER", catalog.STATUS_CODE: 405}, 2)
    ]


def _exit_code_of_child_forked_holding(instrument, record) -> int:
    """Fork while ``instrument``'s lock is held (as a request thread or the reader would hold it
    at that moment); the child calls ``record()`` once. -9: the child hung on the inherited lock."""
    instrument._lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                record()
            finally:
                os._exit(0)  # leave without running the parent's cleanup
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return -9
    finally:
        instrument._lock.release()


def test_a_child_forked_while_a_lock_was_held_can_still_record():
    from kyo_otel.instruments import ProcessCounter

    histogram = ProcessHistogram(InstrumentationScope("t"), catalog.HTTP_SERVER_DURATION)
    counter = ProcessCounter(MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("t"), catalog.OTP_SENT)
    assert _exit_code_of_child_forked_holding(histogram, lambda: histogram.record(0.25, {"k": "v"})) == 0
    assert _exit_code_of_child_forked_holding(counter, lambda: counter.add(1, {"k": "v"})) == 0


def test_a_child_forked_while_the_tenant_guard_drop_counter_or_active_tenants_was_locked_goes_on():
    import logging

    from kyo_otel.cardinality import TenantGuard
    from kyo_otel.drops import _QUEUE_FULL, DropCounter
    from kyo_otel.health import ActiveTenants

    guard = TenantGuard("otp.sent", cap=10)
    drops = DropCounter()
    queue_full = logging.LogRecord("opentelemetry", logging.WARNING, __file__, 1, _QUEUE_FULL + ", dropping %s.", ("span",), None)
    assert _exit_code_of_child_forked_holding(guard, lambda: guard("a-new-tenant")) == 0
    assert _exit_code_of_child_forked_holding(drops, lambda: drops.filter(queue_full)) == 0
    active = ActiveTenants(None, window=60)
    assert _exit_code_of_child_forked_holding(active, active.count) == 0
