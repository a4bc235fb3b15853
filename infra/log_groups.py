"""The log groups the collector writes to, created here so that they carry their retention.

The exporters' own ``log_retention`` only applies to groups they create, so the groups exist
before the collector starts: application a month, audit a year (kept when the stack is deleted),
access a week, EMF metric records a week (CloudWatch has already extracted the metrics).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from kyo_otel import aws_names


def retention(days: int) -> logs.RetentionDays:
    """The CDK enum member for a number of days CloudWatch Logs accepts."""
    by_days = {
        1: logs.RetentionDays.ONE_DAY,
        3: logs.RetentionDays.THREE_DAYS,
        5: logs.RetentionDays.FIVE_DAYS,
        7: logs.RetentionDays.ONE_WEEK,
        14: logs.RetentionDays.TWO_WEEKS,
        30: logs.RetentionDays.ONE_MONTH,
        60: logs.RetentionDays.TWO_MONTHS,
        90: logs.RetentionDays.THREE_MONTHS,
        180: logs.RetentionDays.SIX_MONTHS,
        365: logs.RetentionDays.ONE_YEAR,
        731: logs.RetentionDays.TWO_YEARS,
    }
    try:
        return by_days[days]
    except KeyError:
        raise ValueError(f"{days} days is not a retention this stack maps: one of {sorted(by_days)}") from None


class LogGroupsStack(Stack):
    """One log group per ``kyo_otel.aws_names.LOG_GROUPS`` entry; ``self.groups`` by name."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.groups: dict[str, logs.LogGroup] = {}
        for spec in aws_names.LOG_GROUPS:
            # "EMF metric records" -> EmfMetricRecords
            construct = "".join(part.title() for part in spec.purpose.split())
            self.groups[spec.name] = logs.LogGroup(
                self,
                construct,
                log_group_name=spec.name,
                retention=retention(spec.retention_days),
                # Audit must outlive the stack. The others go with it: a retained group with a
                # fixed name would make the next deployment of the stack fail on "already exists".
                removal_policy=RemovalPolicy.RETAIN if spec.retain_on_delete else RemovalPolicy.DESTROY,
            )
