"""The ``Kyo-Production-Overview`` dashboard: traffic, latency, OTP flow, tenants, resources, errors."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from infra.metrics import FIVE_MINUTES, ONE_MINUTE, catalog_metric, ecs_metric, otp_verifications
from infra.settings import InfraSettings
from kyo_otel import aws_names, catalog, cost

OTP_SUCCESS_RATE_EXPRESSION = (
    "IF((FILL(succeeded, 0) + FILL(failed, 0)) > 0, "
    "100 * FILL(succeeded, 0) / (FILL(succeeded, 0) + FILL(failed, 0)), 100)"
)
"""Percent of verifications that succeeded; 100 when there were none (nothing failed)."""

RECENT_ERRORS_QUERY = (
    # The collector's awscloudwatchlogs exporter writes each record as JSON with body,
    # severity_text, severity_number, trace_id, span_id, attributes, resource: there is no
    # `level` field. severity_number >= 17 is ERROR and above (FATAL is 21).
    "fields @timestamp, severity_text, body, trace_id, attributes.exception.type, attributes.code.function",
    "filter severity_number >= 17",
    "sort @timestamp desc",
    "limit 50",
)


class DashboardStack(Stack):
    """One dashboard; ``custom_metrics`` is what ``kyo_otel.cost`` counts for this deployment."""

    def __init__(self, scope: Construct, construct_id: str, settings: InfraSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.dashboard = cw.Dashboard(
            self,
            "Overview",
            dashboard_name=aws_names.dashboard_name(settings.environment),
            default_interval=Duration.hours(3),
        )

        latency = catalog.HTTP_SERVER_DURATION
        verified = otp_verifications(settings, catalog.OTP_SUCCESS, label="verified", color="#1f77b4")
        failed = otp_verifications(settings, catalog.OTP_FAILURE, label="failed", color="#d62728")

        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Requests per minute",
                left=[catalog_metric(latency, settings, "SampleCount", ONE_MINUTE, label="requests")],
                width=12,
                height=6,
            ),
            cw.GraphWidget(
                title=f"Request duration p50 / p95 / p99 ({latency.cloudwatch_unit})",
                left=[
                    catalog_metric(latency, settings, stat, ONE_MINUTE, label=stat, color=color)
                    for stat, color in (("p50", "#1f77b4"), ("p95", "#ff7f0e"), ("p99", "#d62728"))
                ],
                left_y_axis=cw.YAxisProps(label=latency.cloudwatch_unit, min=0, show_units=False),
                width=12,
                height=6,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="OTP sent vs verified vs failed",
                left=[
                    catalog_metric(catalog.OTP_SENT, settings, "Sum", FIVE_MINUTES, label="sent", color="#2ca02c"),
                    verified,
                    failed,
                ],
                width=12,
                height=6,
            ),
            cw.SingleValueWidget(
                title="Active tenants",
                # every worker reports the shared total, so the maximum is the count, not the sum
                metrics=[catalog_metric(catalog.ACTIVE_TENANTS, settings, "Maximum", FIVE_MINUTES, label="tenants")],
                width=6,
                height=6,
            ),
            cw.SingleValueWidget(
                title="OTP success rate (%)",
                metrics=[
                    cw.MathExpression(
                        expression=OTP_SUCCESS_RATE_EXPRESSION,
                        using_metrics={
                            "succeeded": verified,
                            "failed": failed,
                        },
                        label="success rate (%)",
                        period=Duration.hours(1),
                    )
                ],
                width=6,
                height=6,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="ECS CPU and memory (%)",
                left=[ecs_metric("CPUUtilization", settings, label="CPU %")],
                right=[ecs_metric("MemoryUtilization", settings, label="memory %")],
                width=12,
                height=6,
            ),
            cw.GraphWidget(
                title=f"Redis PING latency ({catalog.REDIS_LATENCY.cloudwatch_unit})",
                left=[
                    catalog_metric(catalog.REDIS_LATENCY, settings, "Average", ONE_MINUTE, label="average"),
                    catalog_metric(catalog.REDIS_LATENCY, settings, "Maximum", ONE_MINUTE, label="maximum"),
                ],
                right=[catalog_metric(catalog.REDIS_HEALTH, settings, "Minimum", ONE_MINUTE, label="healthy (min)")],
                width=12,
                height=6,
            ),
        )
        self.dashboard.add_widgets(
            cw.LogQueryWidget(
                title="Recent errors (severity ERROR and above)",
                log_group_names=[aws_names.APPLICATION_LOG_GROUP],
                query_lines=list(RECENT_ERRORS_QUERY),
                view=cw.LogQueryVisualizationType.TABLE,
                width=24,
                height=8,
            )
        )

        self.custom_metrics = cost.estimate(tenants=settings.expected_tenants)
        CfnOutput(
            self,
            "CustomMetrics",
            value=str(self.custom_metrics.total_metrics),
            description=(
                f"CloudWatch custom metrics the catalog creates at {settings.expected_tenants} tenants "
                f"(kyo-otel cost): about ${self.custom_metrics.monthly_usd:,.2f} a month at list price"
            ),
        )
