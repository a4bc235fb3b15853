"""The CDK stacks, synthesized in-process: alarms, dashboard and log groups watch exactly what the
collector emits for the catalog's metrics, pass cfn-lint, and cost what ``kyo_otel.cost`` says.

Synthesis runs the jsii kernel on Node.js (a few seconds), so the stacks are built once per module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk", reason="the infra extra (aws-cdk-lib) is not installed")

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Annotations, Match, Template  # noqa: E402

from infra import alarms as alarm_defs  # noqa: E402
from infra import app as infra_app  # noqa: E402
from infra.dashboard import OTP_SUCCESS_RATE_EXPRESSION  # noqa: E402
from infra.metrics import catalog_metric  # noqa: E402
from infra.settings import InfraSettings  # noqa: E402
from kyo_otel import aws_names, catalog, cost  # noqa: E402
from kyo_otel.collector import emitted_dimension_sets, load_config  # noqa: E402
from kyo_otel.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR_CONFIG = ROOT / "collector" / "otel-collector.yaml"
EMAIL = "oncall@example.com"
CONTEXT = {
    "service": "kyo-otp-service",
    "environment": "production",
    "alertEmail": EMAIL,
    "ecsCluster": "kyo-production-cluster",
    "ecsService": "kyo-api-service",
    "rdsInstance": "kyo-master-db",
    "expectedTenants": "250",  # as `-c expectedTenants=250` passes it: a string
}
PERCENTILE = re.compile(r"^p\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def stacks():
    return infra_app.build(cdk.App(context=CONTEXT), env={})


@pytest.fixture(scope="module")
def templates(stacks):
    return {
        "log_groups": Template.from_stack(stacks.log_groups),
        "alarms": Template.from_stack(stacks.alarms),
        "dashboard": Template.from_stack(stacks.dashboard),
    }


def logical_id(construct) -> str:
    stack = cdk.Stack.of(construct)
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def resources(template: Template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def alarm_named(template: Template, suffix: str) -> dict:
    found = [
        r["Properties"]
        for r in resources(template, "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["AlarmName"].endswith(suffix)
    ]
    assert len(found) == 1, f"expected one alarm named *{suffix}, found {len(found)}"
    return found[0]


def dashboard_body(template: Template) -> dict:
    """The dashboard JSON, with the region token CDK leaves in it resolved."""
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        body = "".join(part if isinstance(part, str) else "us-east-1" for part in body["Fn::Join"][1])
    return json.loads(body)


# --- what alarms and widgets read: (namespace, metric, {dimension: value}, statistic) ----------


def dimensions(metric: dict) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def alarm_metrics(template: Template) -> list[tuple[dict, str, str | None]]:
    """Every metric an alarm reads, alone or in a math expression: (metric, statistic, pinned unit)."""
    found = []
    for props in (r["Properties"] for r in resources(template, "AWS::CloudWatch::Alarm").values()):
        if "MetricName" in props:
            found.append((props, props.get("Statistic") or props["ExtendedStatistic"], props.get("Unit")))
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                stat = query["MetricStat"]
                found.append((stat["Metric"], stat["Stat"], stat.get("Unit")))
    return found


def alarm_usages(template: Template) -> list[tuple[str, str, dict[str, str], str]]:
    return [(m["Namespace"], m["MetricName"], dimensions(m), stat) for m, stat, _ in alarm_metrics(template)]


def widget_usages(body: dict) -> list[tuple[str, str, dict[str, str], str]]:
    found = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):  # a math expression row
                continue
            options = row[-1] if isinstance(row[-1], dict) else {}
            fields = row[:-1] if options else row
            namespace, name, flat = fields[0], fields[1], fields[2:]
            dims = dict(zip(flat[0::2], flat[1::2]))
            found.append((namespace, name, dims, options.get("stat", "Average")))
    return found


def problems(usages, settings: InfraSettings, emitted: dict[str, set[tuple[str, ...]]]) -> list[str]:
    """Why each catalog-metric usage would show nothing (empty list: all are really emitted)."""
    out = []
    for namespace, name, dims, stat in usages:
        if namespace != catalog.NAMESPACE:
            if namespace not in ("AWS/ECS", "AWS/RDS"):
                out.append(f"{name}: unexpected namespace {namespace}")
            continue
        spec = catalog.BY_NAME.get(name)
        if spec is None:
            out.append(f"{name}: not a catalog metric")
            continue
        if frozenset(dims) not in {frozenset(s) for s in spec.cloudwatch_dimension_sets()}:
            out.append(f"{name}: dimension set {sorted(dims)} is not declared in the catalog")
        if tuple(sorted(dims)) not in emitted.get(name, set()):
            out.append(f"{name}: dimension set {sorted(dims)} is not emitted by the collector config")
        if stat not in spec.statistics:
            out.append(f"{name}: statistic {stat} is not available")
        if PERCENTILE.match(stat) and not spec.exponential_histogram:
            out.append(f"{name}: percentile {stat} on a metric that is not an exponential histogram")
        if dims.get(catalog.SERVICE) != settings.service or dims.get(catalog.ENVIRONMENT) != settings.environment:
            out.append(f"{name}: service/environment dimensions {dims} do not match the deployment")
    return out


@pytest.fixture(scope="module")
def emitted():
    return emitted_dimension_sets(load_config(COLLECTOR_CONFIG))


@pytest.fixture(scope="module")
def usages(templates):
    return alarm_usages(templates["alarms"]) + widget_usages(dashboard_body(templates["dashboard"]))


# --- alarms ---------------------------------------------------------------------------------


def test_every_alarm_and_the_composite_notify_the_alert_topic(stacks, templates):
    alarms = templates["alarms"]
    alarms.has_resource_properties("AWS::SNS::Topic", {"TopicName": "kyo-production-alerts"})
    alarms.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": EMAIL})
    topic = {"Ref": logical_id(stacks.alarms.topic)}
    metric_alarms = resources(alarms, "AWS::CloudWatch::Alarm")
    composite = resources(alarms, "AWS::CloudWatch::CompositeAlarm")
    assert len(metric_alarms) == 7 and len(composite) == 1
    for resource in [*metric_alarms.values(), *composite.values()]:
        assert resource["Properties"]["AlarmActions"] == [topic], resource["Properties"]["AlarmName"]


def test_api_error_alarm_counts_errors_over_two_five_minute_periods(templates):
    props = alarm_named(templates["alarms"], "High-API-Errors")
    assert props["MetricName"] == catalog.HTTP_SERVER_ERRORS.name
    assert props["Namespace"] == catalog.NAMESPACE
    assert {d["Name"] for d in props["Dimensions"]} == set(catalog.BASE_DIMENSIONS)
    assert (props["Statistic"], props["Period"], props["Threshold"]) == ("Sum", 300, 50)
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (2, 2)
    assert props["TreatMissingData"] == "notBreaching"
    assert props["Unit"] == catalog.HTTP_SERVER_ERRORS.cloudwatch_unit


def test_latency_alarms_are_in_seconds_and_the_p99_one_is_an_extended_statistic(templates):
    spec = catalog.HTTP_SERVER_DURATION
    assert spec.unit == "s" and spec.cloudwatch_unit == "Seconds"
    average = alarm_named(templates["alarms"], "High-API-Latency")
    assert (average["MetricName"], average["Statistic"], average["Threshold"]) == (spec.name, "Average", 2)
    assert average["Unit"] == "Seconds" and average["ComparisonOperator"] == "GreaterThanThreshold"
    p99 = alarm_named(templates["alarms"], "High-API-Latency-P99")
    assert p99["ExtendedStatistic"] == "p99" and "Statistic" not in p99
    assert p99["Threshold"] == alarm_defs.LATENCY_P99_SECONDS and p99["Unit"] == "Seconds"


def test_redis_alarm_breaches_on_unhealthy_or_silent_for_two_minutes(templates):
    props = alarm_named(templates["alarms"], "Redis-Unhealthy")
    assert (props["MetricName"], props["Statistic"], props["Period"]) == (catalog.REDIS_HEALTH.name, "Minimum", 60)
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (2, 2)
    assert props["TreatMissingData"] == "breaching"


def test_aws_service_alarms_watch_the_identifiers_from_context(templates):
    cpu = alarm_named(templates["alarms"], "High-ECS-CPU")
    assert (cpu["Namespace"], cpu["MetricName"], cpu["Threshold"]) == ("AWS/ECS", "CPUUtilization", 80)
    assert dimensions(cpu) == {
        "ClusterName": CONTEXT["ecsCluster"],
        "ServiceName": CONTEXT["ecsService"],
    }
    rds = alarm_named(templates["alarms"], "High-RDS-Connections")
    assert (rds["Namespace"], rds["MetricName"], rds["Statistic"], rds["Threshold"]) == (
        "AWS/RDS", "DatabaseConnections", "Maximum", 80)
    assert rds["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": CONTEXT["rdsInstance"]}]


def test_otp_failure_rate_is_math_over_the_success_and_failure_series(templates):
    props = alarm_named(templates["alarms"], "High-OTP-Failure-Rate")
    assert (props["Threshold"], props["ComparisonOperator"]) == (20, "GreaterThanThreshold")
    queries = {q["Id"]: q for q in props["Metrics"]}
    (expression,) = [q for q in queries.values() if "Expression" in q]
    assert expression["ReturnData"] is True
    results = {}
    for query_id, query in queries.items():
        if "MetricStat" in query:
            stat = query["MetricStat"]
            assert stat["Metric"]["MetricName"] == catalog.OTP_VERIFICATIONS.name and stat["Stat"] == "Sum"
            results[query_id] = dimensions(stat["Metric"])[catalog.OTP_RESULT]
    assert sorted(results.values()) == sorted([catalog.OTP_SUCCESS, catalog.OTP_FAILURE])
    by_result = {result: query_id for query_id, result in results.items()}

    def rate(succeeded, failed):
        return evaluate(expression["Expression"], {by_result[catalog.OTP_SUCCESS]: succeeded, by_result[catalog.OTP_FAILURE]: failed})

    assert rate(None, None) in (None, 0)  # no traffic: nothing to alarm on
    assert rate(0, 0) == 0  # zero counts: no division by zero (NaN)
    assert rate(None, 3) == 100  # only failures: the series without data must not hide them
    assert rate(7, None) == 0
    assert rate(8, 2) == 20  # at the threshold: not above it
    assert rate(7, 3) == 30


class _Missing:
    """A missing datapoint: arithmetic and comparisons with it are missing too."""

    def _missing(self, *_):
        return MISSING

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _missing
    __truediv__ = __rtruediv__ = __gt__ = __lt__ = __ge__ = __le__ = _missing


MISSING = _Missing()


class _Value(float):
    """A datapoint: arithmetic stays a datapoint unless the other side is missing; x / 0 is NaN."""

    def _op(fn):
        def op(self, other):
            if other is MISSING:
                return MISSING
            return _Value(fn(float(self), float(other)))

        return op

    __add__ = __radd__ = _op(lambda a, b: a + b)
    __mul__ = __rmul__ = _op(lambda a, b: a * b)
    __sub__ = _op(lambda a, b: a - b)
    __truediv__ = _op(lambda a, b: a / b if b else float("nan"))
    __rtruediv__ = _op(lambda a, b: b / a if a else float("nan"))


def evaluate(expression: str, values: dict[str, float | None]) -> float | None:
    """One datapoint of a CloudWatch metric-math expression using IF, FILL and arithmetic.

    None is a missing datapoint (the result is then None, as CloudWatch drops the datapoint);
    both IF branches are computed, as for time series, so a division by zero must be guarded."""

    def fill(x, default):
        return _Value(default) if x is MISSING else x

    def if_(condition, then, otherwise):
        if condition is MISSING:
            return MISSING
        return then if condition else otherwise

    names = {k: MISSING if v is None else _Value(v) for k, v in values.items()}
    python = expression.replace("IF(", "if_(").replace("FILL(", "fill(")
    result = eval(python, {"__builtins__": {}, "if_": if_, "fill": fill}, names)  # noqa: S307
    return None if result is MISSING else float(result)


def test_composite_alarm_is_any_of_errors_redis_and_cpu(stacks, templates):
    (composite,) = resources(templates["alarms"], "AWS::CloudWatch::CompositeAlarm").values()
    parts = composite["Properties"]["AlarmRule"]["Fn::Join"][1]
    referenced = [p["Fn::GetAtt"][0] for p in parts if isinstance(p, dict)]
    wanted = [logical_id(stacks.alarms.alarms[key]) for key in ("errors", "redis", "ecs_cpu")]
    assert sorted(referenced) == sorted(wanted)
    text = "".join(p if isinstance(p, str) else "<arn>" for p in parts)
    assert text == '(ALARM("<arn>") OR ALARM("<arn>") OR ALARM("<arn>"))'


def test_without_an_alert_email_the_topic_has_no_subscription_and_synth_warns():
    context = {k: v for k, v in CONTEXT.items() if k != "alertEmail"}
    stacks = infra_app.build(cdk.App(context=context), env={})
    template = Template.from_stack(stacks.alarms)
    template.resource_count_is("AWS::SNS::Subscription", 0)
    Annotations.from_stack(stacks.alarms).has_warning("*", Match.string_like_regexp("No alert email.*KYO_ALERT_EMAIL"))


def test_alert_email_comes_from_context_then_environment_and_must_be_an_address():
    assert InfraSettings.from_context({}, {"KYO_ALERT_EMAIL": "ops@example.org"}).alert_email == "ops@example.org"
    assert InfraSettings.from_context({"alertEmail": EMAIL}, {"KYO_ALERT_EMAIL": "ops@example.org"}).alert_email == EMAIL
    assert InfraSettings.from_context({}, {}).alert_email is None
    with pytest.raises(ConfigError, match="alertEmail.*'not-an-address'.*expected an email address"):
        InfraSettings.from_context({"alertEmail": "not-an-address"}, {})
    with pytest.raises(ConfigError, match="environment"):
        InfraSettings.from_context({"environment": "prod uction"}, {})


# --- dashboard ------------------------------------------------------------------------------


def test_dashboard_has_the_overview_widgets(templates):
    templates["dashboard"].has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "Kyo-Production-Overview"}
    )
    body = dashboard_body(templates["dashboard"])
    by_title = {w["properties"]["title"]: w for w in body["widgets"]}

    def stats(title_start: str) -> list[tuple[str, str]]:
        (widget,) = [w for t, w in by_title.items() if t.startswith(title_start)]
        return [(name, stat) for _, name, _, stat in widget_usages({"widgets": [widget]})]

    duration = catalog.HTTP_SERVER_DURATION.name
    assert stats("Requests per minute") == [(duration, "SampleCount")]
    assert stats("Request duration") == [(duration, "p50"), (duration, "p95"), (duration, "p99")]
    assert stats("OTP sent vs verified vs failed") == [
        (catalog.OTP_SENT.name, "Sum"),
        (catalog.OTP_VERIFICATIONS.name, "Sum"),
        (catalog.OTP_VERIFICATIONS.name, "Sum"),
    ]
    assert stats("Active tenants") == [(catalog.ACTIVE_TENANTS.name, "Maximum")]
    assert stats("ECS CPU and memory") == [("CPUUtilization", "Average"), ("MemoryUtilization", "Average")]
    assert (catalog.REDIS_LATENCY.name, "Average") in stats("Redis PING latency")

    (rate,) = [w for t, w in by_title.items() if t.startswith("OTP success rate")]
    assert rate["properties"]["view"] == "singleValue"
    (expression,) = [row[0] for row in rate["properties"]["metrics"] if isinstance(row[0], dict)]
    assert expression["expression"] == OTP_SUCCESS_RATE_EXPRESSION
    ids = {row[-1]["id"]: dict(zip(row[2:-1:2], row[3:-1:2]))[catalog.OTP_RESULT]
           for row in rate["properties"]["metrics"] if not isinstance(row[0], dict)}
    succeeded = next(i for i, r in ids.items() if r == catalog.OTP_SUCCESS)
    failed = next(i for i, r in ids.items() if r == catalog.OTP_FAILURE)
    assert evaluate(expression["expression"], {succeeded: 9, failed: 1}) == 90
    assert evaluate(expression["expression"], {succeeded: None, failed: 4}) == 0
    assert evaluate(expression["expression"], {succeeded: None, failed: None}) == 100


def test_recent_errors_query_matches_what_the_cloudwatch_logs_exporter_writes(templates):
    body = dashboard_body(templates["dashboard"])
    (widget,) = [w for w in body["widgets"] if w["type"] == "log"]
    query = widget["properties"]["query"]
    source, _, pipeline = query.partition("|")
    assert source.strip() == f"SOURCE '{aws_names.APPLICATION_LOG_GROUP}'"
    # awscloudwatchlogs writes body, severity_text, severity_number, trace_id, attributes...:
    # no `level`, so the old `filter level = "ERROR"` matched nothing
    assert "filter severity_number >= 17" in pipeline
    assert not re.search(r"\blevel\b", pipeline)
    fields = re.search(r"fields ([^\n|]+)", pipeline).group(1)
    for field in ("body", "trace_id", "severity_text"):
        assert field in [f.strip() for f in fields.split(",")]
    assert "sort @timestamp desc" in pipeline


# --- log groups -----------------------------------------------------------------------------


def test_log_groups_carry_their_retention_and_audit_outlives_the_stack(templates):
    groups = {r["Properties"]["LogGroupName"]: r for r in resources(templates["log_groups"], "AWS::Logs::LogGroup").values()}
    expected = {
        aws_names.APPLICATION_LOG_GROUP: (30, "Delete"),
        aws_names.AUDIT_LOG_GROUP: (365, "Retain"),
        aws_names.ACCESS_LOG_GROUP: (7, "Delete"),
        aws_names.METRICS_LOG_GROUP: (7, "Delete"),
    }
    assert {name: (r["Properties"]["RetentionInDays"], r["DeletionPolicy"]) for name, r in groups.items()} == expected
    assert groups[aws_names.AUDIT_LOG_GROUP]["UpdateReplacePolicy"] == "Retain"


def test_every_log_group_the_collector_writes_to_is_created_with_retention():
    config = load_config(COLLECTOR_CONFIG)
    written = {
        body["log_group_name"]
        for exporter_id, body in (config.get("exporters") or {}).items()
        if exporter_id.split("/")[0] in ("awsemf", "awscloudwatchlogs")
    }
    assert written, "the collector config writes to no log group"
    assert written <= {g.name for g in aws_names.LOG_GROUPS}
    assert aws_names.METRICS_LOG_GROUP in written and aws_names.APPLICATION_LOG_GROUP in written


# --- consistency with the catalog, the collector and the cost estimate ---------------------


def test_every_metric_an_alarm_or_widget_reads_is_emitted_by_the_collector(stacks, usages, emitted):
    catalog_usages = [u for u in usages if u[0] == catalog.NAMESPACE]
    assert {u[1] for u in catalog_usages} >= {
        catalog.HTTP_SERVER_DURATION.name, catalog.HTTP_SERVER_ERRORS.name, catalog.OTP_SENT.name,
        catalog.OTP_VERIFICATIONS.name, catalog.ACTIVE_TENANTS.name, catalog.REDIS_HEALTH.name,
        catalog.REDIS_LATENCY.name,
    }
    assert problems(usages, stacks.settings, emitted) == []


def test_units_pinned_by_alarms_are_the_units_the_collector_declares(templates):
    config = load_config(COLLECTOR_CONFIG)
    declared = {
        d["metric_name"]: d["unit"]
        for exporter_id, body in config["exporters"].items()
        if exporter_id.split("/")[0] == "awsemf"
        for d in body.get("metric_descriptors") or []
    }
    pinned = [
        (metric["MetricName"], unit)
        for metric, _, unit in alarm_metrics(templates["alarms"])
        if metric["Namespace"] == catalog.NAMESPACE
    ]
    assert len(pinned) == 6
    for name, unit in pinned:
        # an alarm pinned to a unit the datapoints do not carry stays in INSUFFICIENT_DATA
        assert unit == declared[name] == catalog.BY_NAME[name].cloudwatch_unit, name


def test_the_consistency_check_rejects_what_would_show_nothing(stacks, emitted):
    base = {catalog.SERVICE: "kyo-otp-service", catalog.ENVIRONMENT: "production"}
    bad = [
        (catalog.NAMESPACE, "ErrorCount", base, "Sum"),  # the old design's name
        (catalog.NAMESPACE, catalog.HTTP_SERVER_ERRORS.name, {**base, catalog.TENANT: "t1"}, "Sum"),
        (catalog.NAMESPACE, catalog.REDIS_LATENCY.name, base, "p99"),  # a gauge: no percentiles
        (catalog.NAMESPACE, catalog.OTP_VERIFICATIONS.name, base, "Sum"),  # only emitted with a result
    ]
    found = problems(bad, stacks.settings, emitted)
    assert any("ErrorCount: not a catalog metric" in p for p in found)
    assert any("kyo.http.server.errors: dimension set" in p and "not emitted" in p for p in found)
    assert any("kyo.redis.latency: percentile p99" in p for p in found)
    assert any("kyo.otp.verifications: dimension set" in p for p in found)


def test_catalog_metric_refuses_a_dimension_set_or_statistic_that_is_not_emitted():
    settings = InfraSettings()
    with pytest.raises(ValueError, match="not emitted with dimensions"):
        catalog_metric(catalog.OTP_VERIFICATIONS, settings, "Sum", cdk.Duration.minutes(5))
    with pytest.raises(ValueError, match="p99 is not available for kyo.redis.latency"):
        catalog_metric(catalog.REDIS_LATENCY, settings, "p99", cdk.Duration.minutes(1))


def test_cost_counts_exactly_the_dimension_sets_the_collector_emits_and_the_stack_reads(stacks, usages, emitted):
    estimate = cost.estimate(tenants=stacks.settings.expected_tenants)
    counted = {(row.metric, tuple(sorted(row.dimensions))) for row in estimate.rows}
    assert counted == {(name, dims) for name, sets in emitted.items() for dims in sets}
    read = {(name, tuple(sorted(dims))) for namespace, name, dims, _ in usages if namespace == catalog.NAMESPACE}
    assert read <= counted
    # each concrete metric the stack reads is one of the values the estimate counts
    values = cost.dimension_value_counts(stacks.settings.expected_tenants)
    result_values = {dims[catalog.OTP_RESULT] for _, _, dims, _ in usages if catalog.OTP_RESULT in dims}
    assert result_values == {catalog.OTP_SUCCESS, catalog.OTP_FAILURE} and values[catalog.OTP_RESULT] == 2


def test_dashboard_stack_reports_the_custom_metric_count_of_kyo_otel_cost(templates):
    estimate = cost.estimate(tenants=int(CONTEXT["expectedTenants"]))
    outputs = templates["dashboard"].find_outputs("CustomMetrics")
    assert outputs["CustomMetrics"]["Value"] == str(estimate.total_metrics)
    assert f"${estimate.monthly_usd:,.2f}" in outputs["CustomMetrics"]["Description"]


# --- cfn-lint -------------------------------------------------------------------------------


def test_synthesized_templates_pass_cfn_lint(templates, tmp_path):
    paths = []
    for name, template in templates.items():
        path = tmp_path / f"{name}.template.json"
        path.write_text(json.dumps(template.to_json(), indent=1))
        paths.append(str(path))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", *paths], capture_output=True, text=True, timeout=180
    )
    # exit status is a bit mask: 2 errors, 4 warnings, 8 informational
    assert result.returncode == 0, result.stdout + result.stderr
