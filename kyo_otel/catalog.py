"""The metric catalog: the single source of truth for every metric kyo_otel emits.

Plain data. The instruments (``kyo_otel.instruments``), the collector's filter and
``metric_declarations`` (``collector/otel-collector.yaml``), the alarms and the dashboard
(``infra/``) and the cost estimate are generated from it or tested against it, so an alarm can
only watch a (metric, dimension set) that the collector really emits.

Naming: OpenTelemetry names and attribute keys (semantic conventions where one exists), because
the same app also feeds other OTLP backends. In CloudWatch every metric carries the resource
attributes ``service.name`` and ``deployment.environment.name`` as dimensions (the old design's
Service and Environment), turned into dimensions by the collector's
``resource_to_telemetry_conversion``; ``legacy_name`` records the CloudWatch name each metric
replaces.

Request latency: kyo's Flask integration records ``http.server.request.duration`` itself and the
Flask instrumentation's own metrics are switched off. One measurement per request then feeds the
latency histogram and the error counter, keyed by the route template (unknown routes share one
value), with only the attributes declared here; the instrumentation would record a second
histogram (old and new semantic conventions) with server address, scheme and protocol
attributes that are never queried and only cost CPU and series.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "Kyo/OTP"
"""CloudWatch namespace the collector's awsemf exporter writes to."""

# Resource attributes that become dimensions of every metric in CloudWatch.
SERVICE = "service.name"
ENVIRONMENT = "deployment.environment.name"
BASE_DIMENSIONS: tuple[str, ...] = (SERVICE, ENVIRONMENT)

# Data-point attribute keys.
ROUTE = "http.route"
METHOD = "http.request.method"
STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"
TENANT = "kyo.tenant.id"
OTP_RESULT = "kyo.otp.result"
OTP_FAILURE_REASON = "kyo.otp.failure_reason"
RATE_LIMIT_RESOURCE = "kyo.rate_limit.resource"
GUARDED_METRIC = "kyo.metric.name"
DROPPED_SIGNAL = "kyo.signal"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""The methods semantic conventions know; any other is recorded as ``_OTHER``."""
UNMATCHED_ROUTE = "(unmatched)"
"""The one route value shared by every request that matched no route (404s, scanners)."""
TENANT_OVERFLOW = "(overflow)"
"""The one tenant value that replaces tenant ids past the cardinality cap."""
TENANT_MISSING = "(none)"

ERROR_CLIENT = "ClientError"
ERROR_SERVER = "ServerError"
OTP_SUCCESS = "success"
OTP_FAILURE = "failure"
OTP_FAILURE_REASONS = ("expired", "wrong_code", "too_many_attempts")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it is, and how it may be sliced."""

    name: str
    kind: str  # counter | histogram | gauge | observable_gauge
    unit: str  # UCUM, as OpenTelemetry wants it
    cloudwatch_unit: str  # what the collector declares to CloudWatch
    description: str
    attributes: tuple[str, ...]
    dimension_sets: tuple[tuple[str, ...], ...]  # data-point attributes; BASE_DIMENSIONS are added
    legacy_name: str = ""
    tenant_guarded: bool = False  # tenant id passes the cardinality guard first
    exponential_histogram: bool = False  # exported as base-2 exponential: percentiles work

    def cloudwatch_dimension_sets(self) -> tuple[tuple[str, ...], ...]:
        """Every dimension set as CloudWatch sees it: service and environment first."""
        return tuple(BASE_DIMENSIONS + dims for dims in self.dimension_sets)

    @property
    def statistics(self) -> tuple[str, ...]:
        base = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
        return base + (("p50", "p90", "p95", "p99") if self.exponential_histogram else ())


HTTP_SERVER_DURATION = MetricSpec(
    name="http.server.request.duration",
    kind="histogram",
    unit="s",
    cloudwatch_unit="Seconds",
    description="Duration of HTTP server requests, by route template and status code.",
    attributes=(ROUTE, METHOD, STATUS_CODE),
    dimension_sets=((), (ROUTE,), (ROUTE, STATUS_CODE)),
    legacy_name="APILatency",
    exponential_histogram=True,
)
HTTP_SERVER_ERRORS = MetricSpec(
    name="kyo.http.server.errors",
    kind="counter",
    unit="{error}",
    cloudwatch_unit="Count",
    description="HTTP responses with status >= 400, ClientError (4xx) or ServerError (5xx).",
    attributes=(ERROR_TYPE, ROUTE),
    dimension_sets=((), (ERROR_TYPE,), (ERROR_TYPE, ROUTE)),
    legacy_name="ErrorCount",
)
OTP_SENT = MetricSpec(
    name="kyo.otp.sent",
    kind="counter",
    unit="{otp}",
    cloudwatch_unit="Count",
    description="One-time passwords handed to the SMS sender.",
    attributes=(TENANT,),
    dimension_sets=((), (TENANT,)),
    legacy_name="OTPSent",
    tenant_guarded=True,
)
OTP_VERIFICATIONS = MetricSpec(
    name="kyo.otp.verifications",
    kind="counter",
    unit="{verification}",
    cloudwatch_unit="Count",
    description="OTP verification attempts by result (success, failure) and failure reason.",
    attributes=(TENANT, OTP_RESULT, OTP_FAILURE_REASON),
    dimension_sets=((OTP_RESULT,), (TENANT, OTP_RESULT)),
    legacy_name="OTPVerifySuccess/OTPVerifyFailure",
    tenant_guarded=True,
)
RATE_LIMIT_HITS = MetricSpec(
    name="kyo.rate_limit.hits",
    kind="counter",
    unit="{request}",
    cloudwatch_unit="Count",
    description="Requests rejected by the rate limiter.",
    attributes=(TENANT, RATE_LIMIT_RESOURCE),
    dimension_sets=((), (RATE_LIMIT_RESOURCE,), (TENANT, RATE_LIMIT_RESOURCE)),
    legacy_name="RateLimitHit",
    tenant_guarded=True,
)
ACTIVE_TENANTS = MetricSpec(
    name="kyo.tenants.active",
    kind="observable_gauge",
    unit="{tenant}",
    cloudwatch_unit="Count",
    description="Distinct tenants seen in the last 5 minutes, across all worker processes.",
    attributes=(),
    dimension_sets=((),),
    legacy_name="ActiveTenants",
)
REDIS_HEALTH = MetricSpec(
    name="kyo.redis.health",
    kind="observable_gauge",
    unit="1",
    cloudwatch_unit="None",
    description="1 when Redis answered a PING within the timeout, else 0.",
    attributes=(),
    dimension_sets=((),),
    legacy_name="RedisHealth",
)
REDIS_LATENCY = MetricSpec(
    name="kyo.redis.latency",
    kind="observable_gauge",
    unit="ms",
    cloudwatch_unit="Milliseconds",
    description="Round trip of the Redis health PING.",
    attributes=(),
    dimension_sets=((),),
    legacy_name="RedisLatency",
)
CARDINALITY_OVERFLOW = MetricSpec(
    name="kyo.telemetry.cardinality_overflow",
    kind="counter",
    unit="{measurement}",
    cloudwatch_unit="Count",
    description="Measurements whose tenant id was folded into the overflow value by the cap.",
    attributes=(GUARDED_METRIC,),
    dimension_sets=((), (GUARDED_METRIC,)),
)
TELEMETRY_DROPPED = MetricSpec(
    name="kyo.telemetry.dropped",
    kind="counter",
    unit="{item}",
    cloudwatch_unit="Count",
    description="Spans and log records dropped because an export queue was full, and (rarely) spans, log records or metric points that could not be scrubbed.",
    attributes=(DROPPED_SIGNAL,),
    dimension_sets=((), (DROPPED_SIGNAL,)),
)

METRICS: tuple[MetricSpec, ...] = (
    HTTP_SERVER_DURATION,
    HTTP_SERVER_ERRORS,
    OTP_SENT,
    OTP_VERIFICATIONS,
    RATE_LIMIT_HITS,
    ACTIVE_TENANTS,
    REDIS_HEALTH,
    REDIS_LATENCY,
    CARDINALITY_OVERFLOW,
    TELEMETRY_DROPPED,
)
BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}

SCOPE = "kyo_otel"
"""Instrumentation scope of every catalog instrument."""


def get(name: str) -> MetricSpec:
    """The spec of a catalog metric; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the metric catalog: {', '.join(BY_NAME)}") from None
