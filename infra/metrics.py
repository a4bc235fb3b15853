"""CloudWatch metric objects for the stacks: catalog metrics (the only way the stacks refer to
one of ours) and the AWS service metrics they watch.

``catalog_metric`` refuses a dimension set the collector does not emit for that metric, and a
statistic CloudWatch cannot compute from what it receives (percentiles exist only for
exponential histograms), so a stack that would watch nothing fails at synth time instead of
showing an empty graph or an alarm stuck in INSUFFICIENT_DATA.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from infra.settings import InfraSettings
from kyo_otel import catalog
from kyo_otel.catalog import MetricSpec

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)


def dimensions_for(spec: MetricSpec, settings: InfraSettings, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """Service and environment, plus ``values``; must be one of the spec's CloudWatch dimension sets."""
    dims = {catalog.SERVICE: settings.service, catalog.ENVIRONMENT: settings.environment, **(values or {})}
    if frozenset(dims) not in {frozenset(s) for s in spec.cloudwatch_dimension_sets()}:
        emitted = "; ".join("(" + ", ".join(s) + ")" for s in spec.cloudwatch_dimension_sets())
        raise ValueError(f"{spec.name} is not emitted with dimensions ({', '.join(dims)}); emitted sets: {emitted}")
    return dims


def catalog_metric(
    spec: MetricSpec,
    settings: InfraSettings,
    statistic: str,
    period: Duration,
    values: Mapping[str, str] | None = None,
    *,
    label: str | None = None,
    color: str | None = None,
    with_unit: bool = False,
) -> cw.Metric:
    """A catalog metric in the namespace the collector writes to.

    ``with_unit`` pins the catalog's CloudWatch unit (for alarms: datapoints in any other unit
    are then not evaluated, so a unit mismatch shows up as INSUFFICIENT_DATA, not a wrong value).
    """
    if statistic not in spec.statistics:
        raise ValueError(f"{statistic} is not available for {spec.name}: one of {', '.join(spec.statistics)}")
    return cw.Metric(
        namespace=catalog.NAMESPACE,
        metric_name=spec.name,
        dimensions_map=dimensions_for(spec, settings, values),
        statistic=statistic,
        period=period,
        label=label,
        color=color,
        unit=_unit(spec) if with_unit else None,
    )


def otp_verifications(settings: InfraSettings, result: str, **options) -> cw.Metric:
    """Five-minute sum of the OTP verifications with one ``kyo.otp.result`` (success or failure)."""
    values = {catalog.OTP_RESULT: result}
    return catalog_metric(catalog.OTP_VERIFICATIONS, settings, "Sum", FIVE_MINUTES, values, **options)


def ecs_metric(name: str, settings: InfraSettings, label: str | None = None) -> cw.Metric:
    """An AWS/ECS service metric (CPUUtilization, MemoryUtilization) of the watched service."""
    return cw.Metric(
        namespace="AWS/ECS",
        metric_name=name,
        dimensions_map={"ClusterName": settings.ecs_cluster, "ServiceName": settings.ecs_service},
        statistic="Average",
        period=FIVE_MINUTES,
        label=label,
    )


def _unit(spec: MetricSpec) -> cw.Unit:
    """The catalog's CloudWatch unit ("Seconds", "Count", "None"...) as CDK's enum."""
    by_value = {u.name.replace("_", "").lower(): u for u in cw.Unit}
    return by_value[spec.cloudwatch_unit.replace("/", "").lower()]
