"""Names of the AWS resources the collector writes to and ``infra/`` creates, in one place.

The collector config (``collector/otel-collector.yaml``) and the CDK stacks (``infra/``) must
agree on every log group name: a group the exporter writes to but infrastructure never created
is created by the exporter with no retention (``log_retention`` on an exporter applies only to
groups it creates itself), and an Insights widget over a misspelled group shows nothing. Both
sides import these constants, and the tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass

LOG_GROUP_PREFIX = "/aws/kyo/otp-service"

APPLICATION_LOG_GROUP = LOG_GROUP_PREFIX
"""Application log records (awscloudwatchlogs exporter, everything but audit records)."""
AUDIT_LOG_GROUP = f"{LOG_GROUP_PREFIX}/audit"
"""Audit records, routed by a filter processor on a log-record attribute; kept a year."""
ACCESS_LOG_GROUP = f"{LOG_GROUP_PREFIX}/access"
"""HTTP access log lines."""
METRICS_LOG_GROUP = f"{LOG_GROUP_PREFIX}/metrics"
"""The awsemf exporter's EMF records: CloudWatch extracts the metrics on ingestion, so the raw
JSON lines are only needed for a few days of debugging."""


@dataclass(frozen=True)
class LogGroupSpec:
    """One log group: its name, how long CloudWatch keeps it, whether it outlives its stack."""

    name: str
    retention_days: int  # one of the values CloudWatch Logs accepts
    retain_on_delete: bool
    purpose: str


LOG_GROUPS: tuple[LogGroupSpec, ...] = (
    LogGroupSpec(APPLICATION_LOG_GROUP, 30, False, "application logs"),
    LogGroupSpec(AUDIT_LOG_GROUP, 365, True, "audit trail"),
    LogGroupSpec(ACCESS_LOG_GROUP, 7, False, "access logs"),
    LogGroupSpec(METRICS_LOG_GROUP, 7, False, "EMF metric records"),
)

ALERT_TOPIC_PREFIX = "kyo"


def alert_topic_name(environment: str) -> str:
    """``kyo-production-alerts`` for production: the SNS topic every alarm notifies."""
    return f"{ALERT_TOPIC_PREFIX}-{environment}-alerts"


def environment_title(environment: str) -> str:
    """``Production`` for production (only the first letter changes: ``qaEu`` -> ``QaEu``)."""
    return environment[:1].upper() + environment[1:]


def resource_prefix(environment: str) -> str:
    """``Kyo-Production`` for production: starts every stack, alarm and dashboard name."""
    return f"Kyo-{environment_title(environment)}"


def dashboard_name(environment: str) -> str:
    """``Kyo-Production-Overview`` for production."""
    return f"{resource_prefix(environment)}-Overview"
