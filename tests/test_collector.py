"""The ADOT collector config: it is the render of the catalog; the collector ``make collector``
builds (ADOT v0.49's components and release) accepts it, and refuses what ADOT would refuse; the
checks no collector can make hold: the metric allow-list, declarations and catalog agree both
ways, no debug exporter, receivers on localhost; what the app's OTLP exporters send is what the
config expects. ``validate()`` also has to fail: see the negative tests. The whole pipeline runs
for real in tests/e2e/."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import kyo_otel
from kyo_otel import catalog, collector
from kyo_otel.collector import (
    APPLICATION_LOG_GROUP,
    AUDIT_LOG_GROUP,
    emitted_dimension_sets,
    load_config,
    render_production_config,
    validate,
)
from kyo_otel.receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "collector" / "otel-collector.yaml"
LOCAL = ROOT / "collector" / "otel-collector.local.yaml"


def expected_sets(spec: catalog.MetricSpec) -> set[tuple[str, ...]]:
    """The catalog's dimension sets as awsemf emits them (names sorted within a set)."""
    return {tuple(sorted(dims)) for dims in spec.cloudwatch_dimension_sets()}


def problems_about(config, *words: str) -> list[str]:
    return [str(p) for p in validate(config) if all(w in str(p) for w in words)]


@pytest.fixture
def config():
    return copy.deepcopy(render_production_config())


# --- the committed files ---------------------------------------------------------------


def test_committed_production_config_is_the_render_of_the_catalog():
    # Regenerate with: python -m kyo_otel.collector render > collector/otel-collector.yaml
    assert PRODUCTION.read_text() == collector.render_production_yaml()
    assert load_config(PRODUCTION) == render_production_config()


def test_committed_production_config_passes_the_catalog_checks():
    assert [str(p) for p in validate(PRODUCTION)] == []


def test_local_config_passes_as_a_local_config_but_not_as_a_production_one():
    assert [str(p) for p in validate(LOCAL, target="otelcol")] == []
    production_problems = [str(p) for p in validate(LOCAL)]
    assert any("debug exporter in production" in p for p in production_problems)
    assert any("no metrics pipeline exports to awsemf" in p for p in production_problems)
    local = load_config(LOCAL)
    # Same receiver endpoints as production: the app's configuration does not change.
    assert local["receivers"] == load_config(PRODUCTION)["receivers"]


def readme_json_blocks(heading: str) -> list[dict]:
    """The JSON code blocks under one README heading (up to the next heading of any level)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    return [json.loads(block.split("```", 1)[0]) for block in section.split("```json\n")[1:]]


def test_readme_iam_policy_grants_exactly_the_config_log_groups_and_xray():
    config = load_config(PRODUCTION)
    groups = {body["log_group_name"] for ctype, body in config["exporters"].items() if ctype.startswith("aws")
              and "log_group_name" in body}
    assert groups == {APPLICATION_LOG_GROUP, AUDIT_LOG_GROUP, collector.METRICS_LOG_GROUP}
    (policy,) = readme_json_blocks("### Minimal IAM policy")
    granted = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            granted.setdefault(action, set()).update(resources)
    assert set(granted) == {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments"}
    arns = {f"arn:aws:logs:<region>:<account>:log-group:{group}:*" for group in groups}
    assert granted["logs:CreateLogStream"] == granted["logs:PutLogEvents"] == arns
    assert granted["xray:PutTraceSegments"] == {"*"}  # X-Ray has no resource-level permissions


def test_readme_task_definition_matches_the_config():
    (task,) = readme_json_blocks("### ECS task definition")
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    sidecar, app = containers["aws-otel-collector"], containers["otp-service"]
    config = load_config(PRODUCTION)
    assert config["processors"]["memory_limiter"]["limit_mib"] < sidecar["memory"]
    assert sidecar["healthCheck"]["command"] == ["/healthcheck"]
    assert "portMappings" not in sidecar  # reachable on the task's localhost only
    assert app["dependsOn"] == [{"containerName": "aws-otel-collector", "condition": "HEALTHY"}]
    environment = {e["name"]: e["value"] for e in app["environment"]}
    settings = kyo_otel.resolve_settings({}, environment)
    assert (settings.traces_exporter, settings.metrics_exporter, settings.logs_exporter) == ("otlp",) * 3
    assert settings.otlp_endpoint.removeprefix("http://") == config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]


def test_production_config_routes_audit_records_without_connectors_and_keeps_the_apps_resource():
    config = load_config(PRODUCTION)
    assert "connectors" not in config  # ADOT v0.49 ships none
    assert collector.log_pipelines_by_group(config) == {
        APPLICATION_LOG_GROUP: ["logs/application"],
        AUDIT_LOG_GROUP: ["logs/audit"],
    }
    resource_detection = config["processors"]["resource_detection"]
    assert resource_detection["override"] is False
    assert set(resource_detection["detectors"]) == {"env", "ecs", "ec2"}
    assert not any(resource_detection["ecs"]["resource_attributes"][name]["enabled"]
                   for name in ("aws.log.group.names", "aws.log.group.arns"))


# --- the catalog, the filter and the declarations -------------------------------------


def test_awsemf_emits_exactly_the_catalog_dimension_sets():
    emitted = emitted_dimension_sets(load_config(PRODUCTION))
    assert set(emitted) == {m.name for m in catalog.METRICS}
    for spec in catalog.METRICS:
        assert emitted[spec.name] == expected_sets(spec), spec.name
        assert all(set(catalog.BASE_DIMENSIONS) <= set(dims) for dims in emitted[spec.name])


def test_default_rollup_would_add_sets_the_catalog_does_not_declare(config):
    del config["exporters"]["awsemf"]["dimension_rollup_option"]
    sent = emitted_dimension_sets(config)[catalog.OTP_SENT.name]
    assert ("OTelLib",) in sent and ("OTelLib", "kyo.tenant.id") in sent
    assert problems_about(config, "dimension_rollup_option", "NoDimensionRollup")
    assert problems_about(config, "kyo.otp.sent", "['OTelLib', 'kyo.tenant.id']", "not in the catalog")


def test_without_resource_conversion_service_and_environment_are_never_dimensions(config):
    config["exporters"]["awsemf"]["resource_to_telemetry_conversion"]["enabled"] = False
    emitted = emitted_dimension_sets(config)
    assert all(sets == set() for sets in emitted.values())
    assert problems_about(config, "resource_to_telemetry_conversion", "is off")
    assert problems_about(config, "kyo.otp.sent", "is not emitted")


def test_a_catalog_metric_missing_from_the_declarations_is_reported(config):
    declarations = config["exporters"]["awsemf"]["metric_declarations"]
    config["exporters"]["awsemf"]["metric_declarations"] = [
        d for d in declarations if d["metric_name_selectors"] != [collector.metric_selector("kyo.otp.sent")]
    ]
    assert emitted_dimension_sets(config)["kyo.otp.sent"] == set()
    found = problems_about(config, "kyo.otp.sent", "is not emitted")
    assert len(found) == len(catalog.OTP_SENT.dimension_sets)
    assert "Fix: declare it" in found[0]


def test_a_missing_dimension_set_and_an_extra_one_are_both_reported(config):
    declaration = config["exporters"]["awsemf"]["metric_declarations"][0]  # http.server.request.duration
    declaration["dimensions"].pop()  # (route, status) no longer declared
    declaration["dimensions"].append(["service.name", "deployment.environment.name", "http.request.method"])
    assert problems_about(config, "http.server.request.duration", "http.response.status_code", "is not emitted")
    assert problems_about(config, "http.server.request.duration", "http.request.method", "not in the catalog")


def test_a_declaration_for_a_metric_the_catalog_lacks_is_reported(config):
    config["exporters"]["awsemf"]["metric_declarations"].append(
        {"dimensions": [["service.name"]], "metric_name_selectors": ["^kyo\\.otp\\.resent$"]}
    )
    assert problems_about(config, "^kyo\\.otp\\.resent$", "names no catalog metric")


def test_an_unanchored_selector_is_reported(config):
    config["exporters"]["awsemf"]["metric_declarations"][2]["metric_name_selectors"] = ["kyo.otp.sent"]
    assert problems_about(config, "'kyo.otp.sent'", "not anchored", "^kyo\\.otp\\.sent$")


def test_the_filter_and_the_catalog_must_agree_both_ways(config):
    names = config["processors"]["filter/catalog_metrics"]["metrics"]["include"]["metric_names"]
    names.remove("kyo.redis.latency")
    names.append("otel.sdk.span.live")
    assert problems_about(config, "'kyo.redis.latency'", "dropped before awsemf")
    assert problems_about(config, "'otel.sdk.span.live'", "not in the catalog")
    assert "kyo.redis.latency" not in emitted_dimension_sets(config)


def test_a_metrics_pipeline_without_the_allow_list_is_reported(config):
    config["service"]["pipelines"]["metrics"]["processors"].remove("filter/catalog_metrics")
    del config["processors"]["filter/catalog_metrics"]
    assert problems_about(config, "no filter processor drops metrics outside the catalog")


def test_units_are_cloudwatch_units_from_the_catalog(config):
    descriptors = {d["metric_name"]: d for d in config["exporters"]["awsemf"]["metric_descriptors"]}
    assert {name: d["unit"] for name, d in descriptors.items()} == {m.name: m.cloudwatch_unit for m in catalog.METRICS}
    assert all(d["overwrite"] is True for d in descriptors.values())
    descriptors["kyo.redis.latency"]["unit"] = "ms"
    assert problems_about(config, "kyo.redis.latency", "'ms' is not a CloudWatch unit")
    assert problems_about(config, "kyo.redis.latency", "set unit: Milliseconds")


# --- personal data ----------------------------------------------------------------------


def test_a_debug_exporter_and_a_public_receiver_are_refused(config):
    config["exporters"]["debug"] = {"verbosity": "detailed"}
    config["service"]["pipelines"]["logs/audit"]["exporters"].append("debug")
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = "0.0.0.0:4318"
    assert problems_about(config, "exporters.debug", "debug exporter in production")
    assert problems_about(config, "'0.0.0.0:4318' listens beyond this task")


def test_command_line_render_and_check(capsys, otelcol, monkeypatch):
    monkeypatch.chdir(ROOT)  # where `make collector` put the binary
    assert collector.main(["render"]) == 0
    assert capsys.readouterr().out == PRODUCTION.read_text()
    assert collector.main(["check", str(PRODUCTION)]) == 0
    assert f"0 problem(s) in {PRODUCTION} (validated by {collector.BUILT_COLLECTOR})" in capsys.readouterr().out
    assert collector.main(["check", str(LOCAL)]) == 1
    assert "debug exporter in production" in capsys.readouterr().out
    assert collector.main(["check", str(LOCAL), "--local"]) == 0


def test_problems_say_what_to_fix():
    problems = validate({"receivers": {"otlp": {}}, "exporters": {}, "service": {}})
    assert problems
    assert all(p.where and p.what and p.fix and str(p).count("Fix: ") == 1 for p in problems)


def test_an_unreadable_path_is_one_problem_not_an_exception(tmp_path):
    problems = validate(tmp_path / "missing.yaml")
    assert len(problems) == 1 and "cannot read" in problems[0].what




# --- the app's OTLP settings against the config ----------------------------------------


def test_the_apps_default_otlp_endpoints_are_the_receivers_endpoints():
    protocols = load_config(PRODUCTION)["receivers"]["otlp"]["protocols"]
    for protocol, receiver in (("grpc", "grpc"), ("http/protobuf", "http")):
        settings = kyo_otel.resolve_settings({"environment": "production", "otlp_protocol": protocol}, {})
        assert settings.exporter("metrics") == settings.exporter("logs") == settings.exporter("traces") == "otlp"
        url = urlsplit(settings.otlp_endpoint)
        assert f"{url.hostname}:{url.port}" == protocols[receiver]["endpoint"]


def test_no_processor_in_the_config_converts_temporality_so_the_app_must_send_delta():
    config = load_config(PRODUCTION)
    assert not any(collector.component_type(p) == "cumulativetodelta" for p in config["processors"])


@pytest.mark.redis
def test_what_the_app_exports_over_otlp_is_what_the_config_expects(redis_client):
    """The app's real OTLP exporter sends to a real receiver on 127.0.0.1: sums and histograms
    arrive DELTA, histograms exponential (percentiles), units as the catalog says, and the points
    carry the labels every declared dimension set needs."""
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    from kyo_otel.config import resolve_settings
    from kyo_otel.exporters import otlp_metric_exporter
    from kyo_otel.health import ActiveTenants, RedisHealth
    from kyo_otel.instruments import Recorder
    from kyo_otel.metrics import build_meter_provider, periodic_reader
    from kyo_otel.resource import build_resource

    config = load_config(PRODUCTION)
    allowed = set(config["processors"]["filter/catalog_metrics"]["metrics"]["include"]["metric_names"])
    declared = {
        d["metric_name_selectors"][0]: [tuple(sorted(s)) for s in d["dimensions"]]
        for d in config["exporters"]["awsemf"]["metric_declarations"]
    }
    with OtlpReceiver() as receiver:
        settings = resolve_settings(
            {
                "environment": "production",
                "service_name": "otp-service",
                "otlp_endpoint": receiver.endpoint,
                "metric_export_interval": 3_600_000,
            },
            {},
        )
        reader = periodic_reader(settings, otlp_metric_exporter(settings))
        provider = build_meter_provider(build_resource(settings), reader)
        meter = provider.get_meter(catalog.SCOPE)
        recorder = Recorder(meter, tenant_cap=2, reader=reader)
        RedisHealth(redis_client).observe(meter)
        active = ActiveTenants(None, window=60)
        active.observe(meter)
        for tenant in ("t1", "t2", "t3"):  # the third overflows the cap of 2
            active.mark(tenant)
            recorder.otp_sent(tenant)
        recorder.otp_verified("t1", True)
        recorder.otp_verified("t1", False, "expired")
        recorder.rate_limited("t2", "otp_send")
        recorder.request("/otp/send", "POST", 200, 0.012)
        recorder.request("/otp/verify", "POST", 400, 0.004)
        recorder.request(None, "GET", 500, 0.2)
        recorder.dropped("logs", 2)
        assert provider.force_flush(10_000)
        provider.shutdown()

    seen: dict[str, set[tuple[str, ...]]] = {}
    for request in receiver.requests("metrics"):
        for resource_metrics in request.resource_metrics:
            resource = {kv.key for kv in resource_metrics.resource.attributes}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    assert metric.name in allowed, f"{metric.name} would be dropped by the filter"
                    spec = catalog.get(metric.name)
                    assert metric.unit == spec.unit
                    kind = metric.WhichOneof("data")
                    if spec.kind == "histogram":
                        assert kind == "exponential_histogram"  # CloudWatch gets Values/Counts: percentiles
                    if kind in ("sum", "histogram", "exponential_histogram"):
                        temporality = getattr(metric, kind).aggregation_temporality
                        assert temporality == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA, metric.name
                    for point in getattr(metric, kind).data_points:
                        labels = {kv.key for kv in point.attributes} | resource | {"OTelLib"}
                        sets = seen.setdefault(metric.name, set())
                        sets.update(s for s in declared[collector.metric_selector(metric.name)] if set(s) <= labels)
    assert set(seen) == {m.name for m in catalog.METRICS}
    emitted = emitted_dimension_sets(config)
    for spec in catalog.METRICS:
        assert seen[spec.name] == expected_sets(spec) == emitted[spec.name], spec.name


# --- the built collector (make collector) ---------------------------------------------------


def written(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "otel-collector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_the_built_collector_accepts_both_configs_without_a_warning(otelcol, path):
    assert collector.collector_validate(otelcol, path) == []


def test_the_built_collector_is_the_release_adot_v0_49_vendors(otelcol):
    result = subprocess.run([str(otelcol), "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout.split()[-1] == "0.156.0", result.stdout
    components = yaml.safe_load(subprocess.run([str(otelcol), "components"], capture_output=True, text=True,
                                               timeout=60).stdout)
    built = {kind: {c["name"]: c["module"].split()[-1] for c in components[kind]}
             for kind in ("receivers", "processors", "exporters", "extensions")}
    assert built == {  # exactly what the two configs use, every one at v0.156.0
        "receivers": {"otlp": "v0.156.0"},
        "processors": {"memory_limiter": "v0.156.0", "batch": "v0.156.0", "resource_detection": "v0.156.0",
                       "filter": "v0.156.0"},
        "exporters": {"awsxray": "v0.156.0", "awsemf": "v0.156.0", "awscloudwatchlogs": "v0.156.0",
                      "debug": "v0.156.0", "otlp_grpc": "v0.156.0"},
        "extensions": {"health_check": "v0.156.0"},
    }
    used = {kind: {c.split("/")[0] for path in (PRODUCTION, LOCAL) for c in load_config(path).get(kind, {})}
            for kind in built}
    assert used == {kind: set(names) for kind, names in built.items()}


def test_the_local_config_starts_without_a_deprecation_warning(otelcol):
    """Deprecated component names are only reported as the collector starts (the production
    config's start is checked by tests/e2e); started in a loopback-only network namespace."""
    command = ["unshare", "--net", "--", "sh", "-c",
               f"ip link set lo up && exec timeout -s INT 3 {otelcol} --config={LOCAL}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "Everything is ready" in result.stderr, result.stderr[-3000:]
    assert "deprecated" not in result.stderr


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # awsemf and awsxray build their exporters without queue, retry or timeout helpers
        (lambda c: c["exporters"]["awsemf"].update(sending_queue={"enabled": True}), "sending_queue"),
        (lambda c: c["exporters"]["awsemf"].update(namespaces="Kyo/OTP"), "namespaces"),
        (lambda c: c["receivers"]["otlp"]["protocols"]["grpc"].update(endpiont="localhost:4317"), "endpiont"),
        (lambda c: c["exporters"]["awscloudwatchlogs/audit"]["retry_on_failure"].update(max_elapsed="5m"), "max_elapsed"),
        (lambda c: c["processors"]["memory_limiter"].pop("check_interval"), "check_interval"),
        # ADOT v0.49 ships no transform processor, and neither does the built collector
        (lambda c: (c["processors"].update(transform={"log_statements": []}),
                    c["service"]["pipelines"]["traces"]["processors"].insert(1, "transform")), "transform"),
        (lambda c: c["service"]["pipelines"]["traces"]["processors"].append("batch/undefined"), "batch/undefined"),
    ],
    ids=["awsemf-queue", "unknown-key", "nested-key", "retry-key", "memory-limiter", "transform", "undefined"],
)
def test_the_built_collector_refuses_what_adot_would_refuse(otelcol, tmp_path, config, change, said):
    change(config)
    problems = collector.collector_validate(otelcol, written(tmp_path, config))
    assert len(problems) == 1 and said in problems[0].what, problems

