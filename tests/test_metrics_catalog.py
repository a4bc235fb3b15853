"""The catalog's metrics, emitted by real behaviour: levels as gauges, Redis health off the request
path, the tenant guard, DELTA exponential histograms (percentiles in CloudWatch)."""

from __future__ import annotations

import logging
import time

import pytest
import redis as redis_lib
from flask import Flask

import kyo_otel
from kyo_otel import catalog
from kyo_otel.cardinality import TenantGuard
from kyo_otel.health import ActiveTenants, RedisHealth
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


def collect(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    points: dict[str, list] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_every_catalog_entry_is_well_formed():
    names = [m.name for m in catalog.METRICS]
    assert len(names) == len(set(names))
    for spec in catalog.METRICS:
        assert spec.kind in {"counter", "histogram", "gauge", "observable_gauge"}
        assert spec.cloudwatch_unit in {"Count", "Seconds", "Milliseconds", "None", "Bytes", "Percent"}
        for dims in spec.dimension_sets:
            assert set(dims) <= set(spec.attributes), (spec.name, dims)
        assert len(spec.cloudwatch_dimension_sets()[0]) <= 30
        assert spec.exponential_histogram == (spec.kind == "histogram")
        assert ("p99" in spec.statistics) == spec.exponential_histogram
    # Levels are gauges: CloudWatch would turn an UpDownCounter into deltas.
    for spec in (catalog.ACTIVE_TENANTS, catalog.REDIS_HEALTH, catalog.REDIS_LATENCY):
        assert "gauge" in spec.kind
    legacy = {m.legacy_name for m in catalog.METRICS if m.legacy_name}
    assert legacy == {"APILatency", "ErrorCount", "OTPSent", "OTPVerifySuccess/OTPVerifyFailure", "RateLimitHit",
                      "ActiveTenants", "RedisHealth", "RedisLatency"}


def test_no_instrument_is_created_by_a_string_literal_outside_the_catalog():
    import pathlib
    import re

    root = pathlib.Path(kyo_otel.__file__).parent
    offenders = []
    for path in list(root.rglob("*.py")) + list((root.parent / "sample_app").rglob("*.py")):
        text = path.read_text()
        if re.search(r"create_(counter|histogram|gauge|observable_gauge|up_down_counter)\(\s*['\"]", text):
            offenders.append(str(path))
    assert offenders == []


def test_tenant_guard_caps_distinct_values_and_counts_overflow():
    overflowed: list[str] = []
    guard = TenantGuard("kyo.otp.sent", cap=3, allowlist=["vip"], on_overflow=overflowed.append)
    assert [guard(t) for t in ("a", "b", "c")] == ["a", "b", "c"]
    assert guard("d") == catalog.TENANT_OVERFLOW
    assert guard("a") == "a"
    assert guard("vip") == "vip"  # allow-listed tenants always pass
    assert guard(None) == catalog.TENANT_MISSING
    assert overflowed == ["kyo.otp.sent"]
    for i in range(1000):
        guard(f"flood-{i}")
    assert guard.distinct == 4
    assert len(overflowed) == 1001


def test_otlp_histograms_are_exponential_and_delta():
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    from kyo_otel.exporters import otlp_metric_exporter

    exporter = otlp_metric_exporter(kyo_otel.resolve_settings({"environment": "production"}, {}))
    from opentelemetry.sdk.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

    assert exporter._preferred_temporality[Histogram] == AggregationTemporality.DELTA
    assert exporter._preferred_temporality[Counter] == AggregationTemporality.DELTA
    assert isinstance(exporter._preferred_aggregation[Histogram], ExponentialBucketHistogramAggregation)


@pytest.mark.redis
def test_redis_health_reads_zero_within_one_collection_when_redis_stops_and_one_when_it_returns(redis_server):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    client = redis_lib.Redis.from_url(redis_server.url)
    health = RedisHealth(client, timeout=0.3)
    health.observe(provider.get_meter("test"))

    def levels():
        points = collect(reader)
        return points["kyo.redis.health"][0].value, [p.value for p in points.get("kyo.redis.latency", [])]

    up, latency = levels()
    assert up == 1 and latency and latency[0] >= 0
    redis_server.stop()
    try:
        start = time.monotonic()
        down, latency = levels()
        assert (down, latency) == (0, [])
        assert time.monotonic() - start < 1.5  # the PING timeout bounds the collection
    finally:
        redis_server.start()
    assert levels()[0] == 1


@pytest.mark.redis
def test_health_endpoint_turns_503_and_back_without_restarting_the_app(redis_server):
    app = Flask("health")
    telemetry = kyo_otel.configure(environment="test")
    kyo_otel.instrument_app(app, telemetry, redis=redis_lib.Redis.from_url(redis_server.url))
    client = app.test_client()
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.get_json()["status"] == "ok"
    assert ok.get_json()["checks"]["redis"]["healthy"] is True
    redis_server.stop()
    try:
        start = time.monotonic()
        down = client.get("/health")
        assert time.monotonic() - start < 1.0
        assert down.status_code == 503
        assert down.get_json()["status"] == "degraded"
        assert down.get_json()["checks"]["redis"]["healthy"] is False
    finally:
        redis_server.start()
    assert client.get("/health").status_code == 200


@pytest.mark.redis
def test_active_tenants_are_shared_across_processes_through_redis(redis_client):
    worker_a, worker_b = ActiveTenants(redis_client, window=60), ActiveTenants(redis_client, window=60)
    for tenant in ("t1", "t2", "t3"):
        worker_a.mark(tenant)
    for tenant in ("t3", "t4"):
        worker_b.mark(tenant)
    assert worker_a.count() == 3
    assert worker_b.count() == 4  # t1..t4, whichever worker saw them
    assert worker_a.count() == 4


def test_active_tenants_without_redis_count_this_process():
    active = ActiveTenants(None, window=60)
    for tenant in ("t1", "t2", "t1", None):
        active.mark(tenant)
    assert active.count() == 2


def test_active_tenants_count_while_requests_mark_new_ones():
    """Request threads mark tenants without a lock while the metric reader counts: the count
    never meets "dictionary changed size during iteration" (thread switches forced often)."""
    import sys
    import threading

    active = ActiveTenants(None, window=300, max_pending=1_000_000)

    def requests(worker: int) -> None:
        for n in range(30_000):
            active.mark(f"tenant-{worker}-{n}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=requests, args=(k,)) for k in range(3)]
    try:
        for thread in threads:
            thread.start()
        counts = [active.count() for _ in range(200)]
    finally:
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert counts == sorted(counts)  # tenants only come in within the window
    assert active.count() == 90_000


def test_rate_limited_resources_are_capped_like_tenant_ids(kyo_telemetry, caplog):
    """A resource is meant to be a fixed name (``otp.send``): each value is a CloudWatch metric,
    so caller text passed as one folds into the overflow value after RATE_LIMIT_RESOURCE_CAP
    distinct values, with one warning."""
    from kyo_otel.instruments import RATE_LIMIT_RESOURCE_CAP

    with caplog.at_level(logging.WARNING, logger="kyo_otel.cardinality"):
        for n in range(RATE_LIMIT_RESOURCE_CAP + 10):
            kyo_otel.rate_limited("acme", f"otp.send:caller-{n}")
        kyo_otel.rate_limited("acme", "otp.send:caller-0")
    points = kyo_telemetry.metric_points(catalog.RATE_LIMIT_HITS.name)
    by_resource = {p.attributes[catalog.RATE_LIMIT_RESOURCE]: p.value for p in points}
    assert len(by_resource) == RATE_LIMIT_RESOURCE_CAP + 1
    assert by_resource[catalog.TENANT_OVERFLOW] == 10 and by_resource["otp.send:caller-0"] == 2
    assert [r.getMessage() for r in caplog.records if "rate-limited resources" in r.getMessage()] == [
        f"metric {catalog.RATE_LIMIT_HITS.name} reached its cap of {RATE_LIMIT_RESOURCE_CAP} distinct rate-limited "
        f"resources; further ones are recorded as '(overflow)' (pass a fixed name such as 'otp.send'; caller text "
        f"belongs in logs)"
    ]
