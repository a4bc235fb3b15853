"""Alarms on what the service emits, one SNS topic for all of them.

The thresholds are the previous design's, on the catalog's metrics: API errors, latency (average
and, because latency is an exponential histogram, p99), Redis health, the OTP verification
failure rate, ECS CPU, RDS connections, and a composite "system unhealthy" over errors, Redis
and CPU.
"""

from __future__ import annotations

from aws_cdk import Annotations, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.metrics import FIVE_MINUTES, ONE_MINUTE, catalog_metric, ecs_metric, otp_verifications
from infra.settings import ALERT_EMAIL_ENV, InfraSettings
from kyo_otel import aws_names, catalog

ERRORS_PER_5_MIN = 50
LATENCY_AVERAGE_SECONDS = 2.0
LATENCY_P99_SECONDS = 3.0
OTP_FAILURE_PERCENT = 20
ECS_CPU_PERCENT = 80
RDS_CONNECTIONS = 80

OTP_FAILURE_RATE_EXPRESSION = (
    "IF((FILL(succeeded, 0) + FILL(failed, 0)) > 0, "
    "100 * FILL(failed, 0) / (FILL(succeeded, 0) + FILL(failed, 0)), 0)"
)
"""Percent of verifications that failed. FILL: a period with failures and no success at all
(the worst case) must give 100, not vanish because one series has no datapoint; IF: no
verifications at all gives 0, not a division by zero."""


def _seconds(spec: catalog.MetricSpec, seconds: float) -> float:
    """A threshold in the unit the metric is recorded in (the catalog records latency in s)."""
    scale = {"s": 1.0, "ms": 1000.0}[spec.unit]
    return seconds * scale


class AlarmsStack(Stack):
    """The alert topic and every alarm; ``self.alarms`` maps a short name to each alarm."""

    def __init__(self, scope: Construct, construct_id: str, settings: InfraSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.topic = sns.Topic(
            self,
            "AlertTopic",
            topic_name=aws_names.alert_topic_name(settings.environment),
            display_name=f"Kyo {settings.title} Alerts",
        )
        if settings.alert_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alert_email))
        else:
            Annotations.of(self.topic).add_warning_v2(
                "kyo:no-alert-email",
                "No alert email: the topic has no subscription, so alarms notify nobody. "
                f"Pass -c alertEmail=ops@example.com or set {ALERT_EMAIL_ENV}.",
            )
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}
        prefix = aws_names.resource_prefix(settings.environment)

        def alarm(key: str, name: str, description: str, metric: cw.IMetric, **props) -> cw.Alarm:
            created = cw.Alarm(self, name, alarm_name=f"{prefix}-{name}", alarm_description=description, metric=metric, **props)
            created.add_alarm_action(action)
            self.alarms[key] = created
            return created

        errors = alarm(
            "errors",
            "High-API-Errors",
            f"More than {ERRORS_PER_5_MIN} HTTP error responses (4xx and 5xx) in 5 minutes, twice in a row.",
            catalog_metric(catalog.HTTP_SERVER_ERRORS, settings, "Sum", FIVE_MINUTES, with_unit=True),
            threshold=ERRORS_PER_5_MIN,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            # no errors recorded in a period means no errors, not an unknown state
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        latency = catalog.HTTP_SERVER_DURATION
        alarm(
            "latency_average",
            "High-API-Latency",
            f"Average request duration above {LATENCY_AVERAGE_SECONDS:g} s in 2 of 3 five-minute periods.",
            catalog_metric(latency, settings, "Average", FIVE_MINUTES, with_unit=True),
            threshold=_seconds(latency, LATENCY_AVERAGE_SECONDS),
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,  # no traffic is not slow traffic
        )
        alarm(
            "latency_p99",
            "High-API-Latency-P99",
            f"99th percentile request duration above {LATENCY_P99_SECONDS:g} s in 2 of 3 five-minute periods "
            "(percentiles exist because latency is exported as an exponential histogram).",
            catalog_metric(latency, settings, "p99", FIVE_MINUTES, with_unit=True),
            threshold=_seconds(latency, LATENCY_P99_SECONDS),
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        redis = alarm(
            "redis",
            "Redis-Unhealthy",
            "Redis health minimum below 1 for 2 one-minute periods, or no health data at all.",
            catalog_metric(catalog.REDIS_HEALTH, settings, "Minimum", ONE_MINUTE, with_unit=True),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            # Every running process observes the gauge at each export: no datapoint for two minutes
            # means the app or the collector stopped reporting, which must not read as healthy.
            treat_missing_data=cw.TreatMissingData.BREACHING,
        )
        alarm(
            "otp_failure_rate",
            "High-OTP-Failure-Rate",
            f"More than {OTP_FAILURE_PERCENT}% of OTP verifications failed in 2 consecutive five-minute periods.",
            cw.MathExpression(
                expression=OTP_FAILURE_RATE_EXPRESSION,
                using_metrics={
                    "succeeded": otp_verifications(settings, catalog.OTP_SUCCESS, with_unit=True),
                    "failed": otp_verifications(settings, catalog.OTP_FAILURE, with_unit=True),
                },
                label="OTP verification failure rate (%)",
                period=FIVE_MINUTES,
            ),
            threshold=OTP_FAILURE_PERCENT,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        cpu = alarm(
            "ecs_cpu",
            "High-ECS-CPU",
            f"ECS service CPU above {ECS_CPU_PERCENT}% in 2 of 3 five-minute periods.",
            ecs_metric("CPUUtilization", settings),
            threshold=ECS_CPU_PERCENT,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.MISSING,
        )
        alarm(
            "rds_connections",
            "High-RDS-Connections",
            f"More than {RDS_CONNECTIONS} database connections for 2 five-minute periods.",
            cw.Metric(
                namespace="AWS/RDS",
                metric_name="DatabaseConnections",
                dimensions_map={"DBInstanceIdentifier": settings.rds_instance},
                statistic="Maximum",
                period=FIVE_MINUTES,
            ),
            threshold=RDS_CONNECTIONS,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.MISSING,
        )
        self.system_unhealthy = cw.CompositeAlarm(
            self,
            "System-Unhealthy",
            composite_alarm_name=f"{prefix}-System-Unhealthy",
            alarm_description="API errors, Redis or ECS CPU in alarm.",
            alarm_rule=cw.AlarmRule.any_of(
                cw.AlarmRule.from_alarm(errors, cw.AlarmState.ALARM),
                cw.AlarmRule.from_alarm(redis, cw.AlarmState.ALARM),
                cw.AlarmRule.from_alarm(cpu, cw.AlarmState.ALARM),
            ),
        )
        self.system_unhealthy.add_alarm_action(action)
