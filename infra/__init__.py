"""CloudWatch alarms, dashboard and log groups for kyo_otel services, as AWS CDK (Python) stacks.

Every metric name, unit, dimension set and namespace comes from ``kyo_otel.catalog``, and every
log group name from ``kyo_otel.aws_names``, so the stacks can only watch what the collector
really emits. ``cdk synth`` / ``cdk deploy`` at the repository root run ``infra/app.py``.
"""
