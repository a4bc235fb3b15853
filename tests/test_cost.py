"""``kyo_otel.cost``: the custom-metric count of real recorded traffic, the tiered price, and what
instances and tenants do to the bill."""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from kyo_otel import catalog, cost
from kyo_otel.instruments import Recorder

ROUTES = ("/otp/send", "/otp/verify")
STATUSES = (200, 400, 429, 500, 503)
RESOURCES = ("otp.send", "otp.verify")


def custom_metrics_of(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[str, ...]], int]:
    """What CloudWatch would bill for the collected points: per (metric, dimension set), the distinct
    dimension-value combinations, projecting each point onto every catalog set it carries."""
    combos: dict[tuple[str, tuple[str, ...]], set[tuple]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        resource = rm.resource.attributes
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                spec = catalog.BY_NAME[metric.name]
                for point in metric.data.data_points:
                    labels = {**resource, **point.attributes}
                    for dims in spec.cloudwatch_dimension_sets():
                        if all(key in labels for key in dims):
                            combos.setdefault((spec.name, dims), set()).add(tuple(labels[k] for k in dims))
    return {key: len(values) for key, values in combos.items()}


def record_every_combination(recorder: Recorder, tenants: int) -> None:
    for route, status in itertools.product((*ROUTES, None), STATUSES):
        recorder.request(route, "POST" if route else "GET", status, 0.01)
    for tenant in [f"tenant-{i}" for i in range(tenants)] + [None]:
        recorder.otp_sent(tenant)
        recorder.otp_verified(tenant, True)
        recorder.otp_verified(tenant, False, "wrong_code")
        recorder.otp_verified(tenant, False, "expired")
        for resource in RESOURCES:
            recorder.rate_limited(tenant, resource)
    for signal in cost.DROPPED_SIGNALS:
        recorder.dropped(signal, 1)


@pytest.mark.parametrize("tenants,cap", [(3, 5), (8, 5)])
def test_estimate_matches_the_custom_metrics_recorded_traffic_creates(tenants, cap):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource({catalog.SERVICE: "kyo-otp-service", catalog.ENVIRONMENT: "production", "service.instance.id": "a"}),
    )
    try:
        record_every_combination(Recorder(provider.get_meter(catalog.SCOPE), tenant_cap=cap), tenants)
        observed = custom_metrics_of(reader)
    finally:
        provider.shutdown()

    estimate = cost.estimate(
        tenants, routes=len(ROUTES), statuses_per_route=len(STATUSES), rate_limit_resources=len(RESOURCES), tenant_cap=cap
    )
    expected = {(row.metric, row.dimensions): row.metrics for row in estimate.rows if (row.metric, row.dimensions) in observed}
    assert observed == expected
    recorder_metrics = {name for name, _ in observed}
    # every Recorder metric is observed (the overflow counter only once a cap is passed); the
    # gauges (health.py) have one series each
    unobserved = {spec.name for spec in catalog.METRICS if spec.kind != "observable_gauge"} - recorder_metrics
    assert unobserved == (set() if tenants > cap else {catalog.CARDINALITY_OVERFLOW.name})
    for row in estimate.rows:
        if row.metric not in recorder_metrics and row.metric != catalog.CARDINALITY_OVERFLOW.name:
            assert row.metrics == 1 and row.dimensions == catalog.BASE_DIMENSIONS
    if tenants > cap:  # every guarded metric overflowed once: one overflow series per guarded metric
        assert observed[(catalog.CARDINALITY_OVERFLOW.name, (*catalog.BASE_DIMENSIONS, catalog.GUARDED_METRIC))] == 3


def test_tenants_past_the_cap_do_not_grow_the_bill():
    at_cap = cost.estimate(tenants=cost.DEFAULT_TENANT_CAP + 1)
    flood = cost.estimate(tenants=1_000_000)
    assert flood.total_metrics == at_cap.total_metrics
    assert cost.estimate(tenants=10).total_metrics < at_cap.total_metrics


def test_instances_add_emf_bytes_not_custom_metrics():
    one = cost.estimate(tenants=100, instances=1)
    four = cost.estimate(tenants=100, instances=4)
    assert four.total_metrics == one.total_metrics and four.monthly_usd == one.monthly_usd
    assert four.emf_gb_per_month == pytest.approx(4 * one.emf_gb_per_month)
    assert four.emf_monthly_usd == pytest.approx(four.emf_gb_per_month * cost.LOG_INGESTION_USD_PER_GB)


@pytest.mark.parametrize(
    "metrics,usd",
    [
        (0, 0.0),
        (1, 0.30),
        (10_000, 3_000.0),
        (10_001, 3_000.10),
        (250_000, 27_000.0),
        (1_000_000, 64_500.0),
        (1_000_010, 64_500.20),
    ],
)
def test_custom_metric_price_follows_the_tiers(metrics, usd):
    assert cost.monthly_metric_price(metrics) == pytest.approx(usd)


def test_rows_add_up_and_the_table_shows_each_one():
    estimate = cost.estimate(tenants=40, instances=2)
    assert estimate.total_metrics == sum(row.metrics for row in estimate.rows)
    assert sum(row.monthly_usd for row in estimate.rows) == pytest.approx(estimate.monthly_usd)
    assert len(estimate.rows) == sum(len(spec.dimension_sets) for spec in catalog.METRICS)
    table = estimate.format_table()
    for spec in catalog.METRICS:
        assert spec.name in table
    assert f"custom metrics: {estimate.total_metrics}" in table
    assert "service.instance.id is not a dimension" in table


def test_a_dimension_without_a_known_cardinality_is_refused():
    spec = catalog.MetricSpec(
        name="kyo.example", kind="counter", unit="1", cloudwatch_unit="Count", description="",
        attributes=("user.id",), dimension_sets=(("user.id",),),
    )
    with pytest.raises(KeyError, match="user.id"):
        cost.estimate(tenants=1, specs=(spec,))
    with pytest.raises(ValueError, match="tenants must be >= 0"):
        cost.estimate(tenants=-1)
