"""What the catalog costs in CloudWatch: custom metrics counted from the declared dimension sets.

CloudWatch bills every distinct (namespace, metric name, dimension set, dimension values) as one
custom metric. The collector emits exactly the catalog's dimension sets
(``MetricSpec.cloudwatch_dimension_sets()``, with ``NoDimensionRollup``), so the number of custom
metrics is, per metric and per dimension set, the product of how many values each dimension in
the set takes: one service and one environment, the route templates (plus the one value for
unmatched requests), the status codes per route, two error types, the tenants the cardinality cap
lets through (plus the overflow value and the value for no tenant), two OTP results... The count
is a ceiling: it assumes every combination occurs in every hour (CloudWatch bills a metric only
for the hours it receives data).

Instances do not multiply custom metrics: ``service.instance.id`` is a resource attribute that
is not a dimension, so ten tasks write into the same metrics. They multiply the EMF records the
collector writes to its log group (every process exports its own data points every export
interval), which CloudWatch Logs bills per GB ingested: ``emf_gb_per_month`` estimates that
ceiling too.

    from kyo_otel.cost import estimate
    print(estimate(tenants=250, instances=4).format_table())
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kyo_otel import catalog
from kyo_otel.catalog import MetricSpec
from kyo_otel.config import PARAMS_BY_NAME

METRIC_PRICE_TIERS: tuple[tuple[float, float], ...] = (
    (10_000, 0.30),
    (240_000, 0.10),
    (750_000, 0.05),
    (math.inf, 0.02),
)
"""(metrics in the tier, USD per metric-month): CloudWatch custom-metric list price, us-east-1."""

LOG_INGESTION_USD_PER_GB = 0.50
"""CloudWatch Logs standard-class ingestion, us-east-1 list price."""

DEFAULT_ROUTES = 2
"""The sample OTP service's route templates that record request metrics (/otp/send,
/otp/verify; /health is excluded from request metrics)."""
DEFAULT_STATUSES_PER_ROUTE = 5
"""Distinct status codes one route answers with (e.g. 200, 400, 429, 500, 503)."""
DEFAULT_RATE_LIMIT_RESOURCES = 2
"""Rate-limited resources (otp.send, otp.verify)."""
DEFAULT_TENANT_CAP: int = PARAMS_BY_NAME["tenant_cardinality_cap"].default
"""The tenant guard's default cap (100): distinct tenant ids per metric before the overflow value."""
DROPPED_SIGNALS = ("traces", "logs")
"""Signals whose export queues can drop items (spans and log records)."""
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class CostRow:
    """One (metric, dimension set): how many custom metrics it creates and why."""

    metric: str
    dimensions: tuple[str, ...]  # as CloudWatch sees them, service and environment first
    metrics: int
    reason: str  # e.g. "3 routes x 5 status codes"
    monthly_usd: float  # the row's share of the total at the blended tier price


@dataclass(frozen=True)
class CostEstimate:
    """The custom metrics a deployment creates, their monthly list price, and the EMF ceiling."""

    tenants: int
    instances: int
    rows: list[CostRow]
    total_metrics: int
    monthly_usd: float
    emf_gb_per_month: float
    emf_monthly_usd: float
    assumptions: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        """A plain-text table, one line per (metric, dimension set), then totals and assumptions."""
        base = len(catalog.BASE_DIMENSIONS)
        header = ("metric", "dimensions (+ service, environment)", "metrics", "USD/month", "values")
        lines = [
            (
                row.metric,
                ", ".join(row.dimensions[base:]) or "-",
                str(row.metrics),
                f"{row.monthly_usd:.2f}",
                row.reason,
            )
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
        out = [
            "  ".join(cell.ljust(widths[i]) if i not in (2, 3) else cell.rjust(widths[i]) for i, cell in enumerate(cells)).rstrip()
            for cells in [header, *lines]
        ]
        out.insert(1, "  ".join("-" * w for w in widths))
        out.append("")
        out.append(f"custom metrics: {self.total_metrics}  ->  ${self.monthly_usd:,.2f} a month (tiered list price)")
        out.append(
            f"EMF records, ceiling for {self.instances} instance(s): {self.emf_gb_per_month:,.1f} GB a month"
            f"  ->  ${self.emf_monthly_usd:,.2f} ingestion"
        )
        out.extend(f"assumes: {a}" for a in self.assumptions)
        return "\n".join(out)


def tenant_values(tenants: int, cap: int = DEFAULT_TENANT_CAP) -> int:
    """Distinct tenant dimension values: the first ``cap`` tenants, the overflow value once the
    cap is passed, and the value recorded when a request carries no tenant id."""
    return min(tenants, cap) + (1 if tenants > cap else 0) + 1


def dimension_value_counts(
    tenants: int,
    routes: int = DEFAULT_ROUTES,
    statuses_per_route: int = DEFAULT_STATUSES_PER_ROUTE,
    rate_limit_resources: int = DEFAULT_RATE_LIMIT_RESOURCES,
    tenant_cap: int = DEFAULT_TENANT_CAP,
) -> dict[str, int]:
    """How many values each dimension key takes. A catalog dimension missing here is a KeyError:
    a new dimension must say what its cardinality is before it can be costed."""
    return {
        catalog.SERVICE: 1,
        catalog.ENVIRONMENT: 1,
        catalog.ROUTE: routes + 1,  # + the one value of unmatched requests
        catalog.STATUS_CODE: statuses_per_route,  # per route: it is only declared with the route
        catalog.ERROR_TYPE: len((catalog.ERROR_CLIENT, catalog.ERROR_SERVER)),
        catalog.TENANT: tenant_values(tenants, tenant_cap),
        catalog.OTP_RESULT: len((catalog.OTP_SUCCESS, catalog.OTP_FAILURE)),
        catalog.RATE_LIMIT_RESOURCE: rate_limit_resources,
        catalog.GUARDED_METRIC: sum(1 for spec in catalog.METRICS if spec.tenant_guarded),
        catalog.DROPPED_SIGNAL: len(DROPPED_SIGNALS),
    }


def monthly_metric_price(metrics: int) -> float:
    """Tiered monthly list price of ``metrics`` custom metrics."""
    total, left = 0.0, metrics
    for size, price in METRIC_PRICE_TIERS:
        used = min(left, size)
        total += used * price
        left -= used
        if left <= 0:
            break
    return total


def _row_count(dims: tuple[str, ...], values: dict[str, int]) -> tuple[int, str]:
    count, parts = 1, []
    for key in dims:
        try:
            n = values[key]
        except KeyError:
            raise KeyError(f"kyo_otel.cost does not know how many values dimension {key!r} takes") from None
        count *= n
        if key not in catalog.BASE_DIMENSIONS:
            parts.append(f"{n} {key}")
    return count, " x ".join(parts) or "1"


def _point_series(spec: MetricSpec, values: dict[str, int]) -> int:
    """Data-point series one process exports for ``spec`` (attribute combinations, not dimension
    sets): the EMF records scale with these, not with the custom metrics."""
    if spec is catalog.OTP_VERIFICATIONS:
        # success carries no reason; a failure carries one of the reasons or "other"
        return values[catalog.TENANT] * (1 + len(catalog.OTP_FAILURE_REASONS) + 1)
    count = 1
    for key in spec.attributes:
        if key == catalog.METHOD:
            continue  # a route template answers one method in practice
        count *= values[key]
    return count


def estimate(
    tenants: int,
    instances: int = 1,
    routes: int = DEFAULT_ROUTES,
    *,
    statuses_per_route: int = DEFAULT_STATUSES_PER_ROUTE,
    rate_limit_resources: int = DEFAULT_RATE_LIMIT_RESOURCES,
    tenant_cap: int = DEFAULT_TENANT_CAP,
    processes_per_instance: int = 1,
    export_interval_s: float = 60.0,
    emf_record_bytes: int = 800,
    specs: tuple[MetricSpec, ...] = catalog.METRICS,
) -> CostEstimate:
    """Count the custom metrics of ``specs`` for ``tenants`` tenants and price them.

    ``instances`` (tasks) and ``processes_per_instance`` (gunicorn workers) do not change the
    metric count; they scale the EMF ingestion ceiling.
    """
    if tenants < 0:
        raise ValueError(f"tenants must be >= 0, got {tenants}")
    for name, value in (("instances", instances), ("tenant_cap", tenant_cap)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    values = dimension_value_counts(tenants, routes, statuses_per_route, rate_limit_resources, tenant_cap)

    counted = [
        (spec, dims, *_row_count(dims, values))
        for spec in specs
        for dims in spec.cloudwatch_dimension_sets()
    ]
    total = sum(count for _, _, count, _ in counted)
    monthly = monthly_metric_price(total)
    blended = monthly / total if total else 0.0
    rows = [CostRow(spec.name, dims, count, reason, count * blended) for spec, dims, count, reason in counted]

    series = sum(_point_series(spec, values) for spec in specs)
    exports_per_month = HOURS_PER_MONTH * 3600 / export_interval_s
    emf_gb = series * instances * processes_per_instance * exports_per_month * emf_record_bytes / 1e9

    assumptions = [
        f"{routes} route templates (+1 unmatched), {statuses_per_route} status codes per route, "
        f"{rate_limit_resources} rate-limited resources",
        f"tenant cap {tenant_cap}: {values[catalog.TENANT]} tenant values "
        f"(incl. {catalog.TENANT_OVERFLOW!r} past the cap and {catalog.TENANT_MISSING!r})",
        "every combination reports in every hour (a metric without data in an hour is not billed for it)",
        "service.instance.id is not a dimension: instances add EMF bytes, not custom metrics",
        f"EMF ceiling: {series} data-point series per process, every one exported every "
        f"{export_interval_s:g}s by {processes_per_instance} process(es) per instance, ~{emf_record_bytes} bytes each",
        "us-east-1 list prices: metrics $0.30/$0.10/$0.05/$0.02 per month by tier, logs $0.50 per GB ingested",
    ]
    return CostEstimate(
        tenants=tenants,
        instances=instances,
        rows=rows,
        total_metrics=total,
        monthly_usd=monthly,
        emf_gb_per_month=emf_gb,
        emf_monthly_usd=emf_gb * LOG_INGESTION_USD_PER_GB,
        assumptions=assumptions,
    )
