"""The CDK app: ``cdk synth`` / ``cdk deploy`` at the repository root run this module.

    cdk synth -c alertEmail=ops@example.com -c environment=staging
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk

from infra.alarms import AlarmsStack
from infra.dashboard import DashboardStack
from infra.log_groups import LogGroupsStack
from infra.settings import InfraSettings
from kyo_otel import aws_names

CONTEXT_KEYS = ("service", "environment", "alertEmail", "ecsCluster", "ecsService", "rdsInstance", "expectedTenants")


@dataclass
class KyoStacks:
    app: cdk.App
    settings: InfraSettings
    log_groups: LogGroupsStack
    alarms: AlarmsStack
    dashboard: DashboardStack


def build(app: cdk.App | None = None, env: Mapping[str, str] | None = None) -> KyoStacks:
    """The three stacks in ``app`` (a new one reading cdk.json / -c context when omitted)."""
    app = app if app is not None else cdk.App()
    context = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    settings = InfraSettings.from_context({k: v for k, v in context.items() if v is not None}, env)
    prefix = aws_names.resource_prefix(settings.environment)
    log_groups = LogGroupsStack(app, f"{prefix}-LogGroups", description="kyo_otel log groups with retention")
    alarms = AlarmsStack(app, f"{prefix}-Alarms", settings, description="kyo_otel alarms and alert topic")
    dashboard = DashboardStack(app, f"{prefix}-Dashboard", settings, description="kyo_otel overview dashboard")
    dashboard.add_stack_dependency(log_groups, "the Logs Insights widget queries the application log group")
    return KyoStacks(app, settings, log_groups, alarms, dashboard)


def main() -> None:
    build().app.synth()


if __name__ == "__main__":
    main()
