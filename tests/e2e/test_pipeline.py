"""The last hop, run for real: the sample app under gunicorn (2 workers, production profile) sends
to the collector ``make collector`` builds, running ``collector/otel-collector.yaml`` unchanged but
for where AWS is, and moto in server mode stores what CloudWatch Logs and X-Ray would; all of it
inside a loopback-only network namespace (``tests/e2e/pipeline.py``). The tests read what moto
stored: metrics as CloudWatch extracts them from the EMF events, log records, X-Ray segments."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from kyo_otel import catalog
from kyo_otel.audit import AUDIT_ATTRIBUTE, AUDIT_VALUE
from kyo_otel.aws_names import APPLICATION_LOG_GROUP, METRICS_LOG_GROUP
from kyo_otel.collector import INDEXED_SPAN_ATTRIBUTES
from sample_app.app import RATE_LIMITED_RESOURCE
from tests.e2e.gateway import GATEWAY_DOWN

pytestmark = pytest.mark.slow  # one pipeline run (about 25 s) for the module

SERVICE = {catalog.SERVICE: "kyo-otp-service", catalog.ENVIRONMENT: "production"}


def instrumented(stored) -> list[dict]:
    """The requests that telemetry records: all but the health checks (KYO_OTEL_EXCLUDED_URLS
    defaults to /health), with the route a request matched no route under as the catalog names it."""
    return [{**r, "route": r["route"] or catalog.UNMATCHED_ROUTE} for r in stored.requests if r["route"] != "/health"]


def sums(data, name: str, *dimensions: str, value=lambda d: d.total) -> Counter:
    """Per values of ``dimensions``: the metric's values summed over every EMF event that defines
    it under exactly the base dimensions plus ``dimensions``."""
    wanted = {*SERVICE, *dimensions}
    found: Counter = Counter()
    for datum in data:
        if datum.name == name and set(datum.dims) == wanted:
            assert {k: datum.dims[k] for k in SERVICE} == SERVICE
            found[tuple(datum.dims[d] for d in dimensions)] += value(datum)
    return found


def test_the_collector_ran_the_committed_config_without_errors_or_warnings(stored):
    collector = stored.dump["collector"]
    assert collector["exit"] == 0, collector["output"][-3000:]
    # the committed file, with nothing changed but where AWS is
    config, *overrides = collector["command"][1:]
    assert config.endswith("/collector/otel-collector.yaml")
    assert {re.fullmatch(r"--set=exporters::aws[a-z]+(/\w+)?::(endpoint|region)=.+", o).group(2) for o in overrides} == {
        "endpoint", "region"}
    output = collector["output"]
    problems = [line for line in output.splitlines() if re.search(r"\t(warn|error)\t", line)]
    # awsemf v0.156.0 warns of its default rollup whatever the config says (it sets NoDimensionRollup).
    assert [p for p in problems if "default value for DimensionRollupOption" not in p] == []
    assert "deprecated" not in output


def test_emf_metrics_equal_the_traffic_per_tenant_result_and_route(stored):
    data = [d for d in stored.metrics() if d.namespace == catalog.NAMESPACE]
    requests = stored.requests
    sent = Counter((r["tenant"],) for r in requests if r["route"] == "/otp/send" and r["status"] == 200)
    assert sums(data, catalog.OTP_SENT.name, catalog.TENANT) == sent
    assert sums(data, catalog.OTP_SENT.name) == {(): sent.total()}
    results = Counter((r["tenant"], "success" if r["status"] == 200 else "failure")
                      for r in requests if r["route"] == "/otp/verify" and r["status"] in (200, 401))
    assert sums(data, catalog.OTP_VERIFICATIONS.name, catalog.TENANT, "kyo.otp.result") == results
    limited = Counter((r["tenant"], RATE_LIMITED_RESOURCE) for r in requests if r["status"] == 429)
    assert sums(data, catalog.RATE_LIMIT_HITS.name, catalog.TENANT, "kyo.rate_limit.resource") == limited
    duration = catalog.HTTP_SERVER_DURATION.name
    count = lambda d: d.count  # noqa: E731
    measured = instrumented(stored)
    per_route = Counter((r["route"], str(r["status"])) for r in measured)
    assert sums(data, duration, catalog.ROUTE, catalog.STATUS_CODE, value=count) == per_route
    assert sums(data, duration, catalog.ROUTE, value=count) == Counter((r["route"],) for r in measured)
    assert sums(data, duration, value=count) == {(): len(measured)}
    errors = [r for r in measured if r["status"] >= 400]
    kind = lambda r: "ServerError" if r["status"] >= 500 else "ClientError"  # noqa: E731
    assert sums(data, catalog.HTTP_SERVER_ERRORS.name, catalog.ERROR_TYPE, catalog.ROUTE) == Counter(
        (kind(r), r["route"]) for r in errors)
    assert sums(data, catalog.HTTP_SERVER_ERRORS.name, catalog.ERROR_TYPE) == Counter((kind(r),) for r in errors)
    assert sums(data, catalog.HTTP_SERVER_ERRORS.name) == {(): len(errors)}


def test_every_metric_an_alarm_or_dashboard_widget_reads_receives_data(stored, infra_usages):
    data = [d for d in stored.metrics() if d.namespace == catalog.NAMESPACE]
    received = {(d.name, d.dimensions) for d in data}
    ours = [(name, dims) for namespace, name, dims, _ in infra_usages if namespace == catalog.NAMESPACE]
    assert ours, "the synthesized alarms and dashboard read no Kyo/OTP metric"
    missing = [(name, dims) for name, dims in ours if (name, tuple(sorted(dims.items()))) not in received]
    assert missing == []


def test_latency_arrives_as_values_and_counts(stored):
    latencies = [d for d in stored.metrics() if d.name == catalog.HTTP_SERVER_DURATION.name]
    assert latencies
    for datum in latencies:
        assert set(datum.value) >= {"Values", "Counts", "Max", "Min", "Count", "Sum"}, datum.value
        assert len(datum.value["Values"]) == len(datum.value["Counts"]) and sum(datum.value["Counts"]) == datum.value["Count"]
        assert datum.unit == "Seconds"
        assert all(0 < v < 10 for v in datum.value["Values"])


def test_audit_records_are_only_in_the_audit_group_one_per_verification(stored):
    verifications = [r for r in stored.requests if r["route"] == "/otp/verify" and r["status"] in (200, 401)]
    audit = stored.audit
    assert len(audit) == len(verifications)
    assert all(record["attributes"][AUDIT_ATTRIBUTE] == AUDIT_VALUE for record in audit)
    assert Counter((r["attributes"]["kyo.tenant.id"], r["attributes"]["kyo.audit.result"]) for r in audit) == Counter(
        (r["tenant"], "success" if r["status"] == 200 else "failure") for r in verifications)
    assert all(r["attributes"]["user.id"].startswith("phone:") for r in audit)  # a keyed pseudonym
    assert not [r for r in stored.application if (r.get("attributes") or {}).get(AUDIT_ATTRIBUTE) == AUDIT_VALUE]
    assert not any(AUDIT_VALUE in m and AUDIT_ATTRIBUTE in m for m in stored.messages(METRICS_LOG_GROUP))


def test_error_records_carry_their_exception(stored):
    failed_sends = [r for r in stored.requests if r["tenant"] == GATEWAY_DOWN]
    errors = [r for r in stored.application if r["severity_number"] >= 17]
    assert len(errors) == len(failed_sends) > 0
    for record in errors:
        attributes = record["attributes"]
        assert record["severity_text"] == "ERROR"
        assert attributes["exception.type"].endswith("ConnectionError")
        # the phone number in the message arrives masked, in the message and in the stack trace
        assert re.fullmatch(r"SMS gateway refused the message to \+155\*+\d\d: account suspended",
                            attributes["exception.message"])
        assert attributes["exception.stacktrace"].startswith("Traceback (most recent call last):")
        assert attributes["exception.stacktrace"].rstrip().endswith(attributes["exception.message"])
        assert attributes["kyo.tenant.id"] == GATEWAY_DOWN and record["trace_id"]


def test_log_records_link_to_their_xray_trace(stored):
    traces = stored.trace_ids()
    records = stored.application + stored.audit
    linked = [r for r in records if r.get("trace_id")]
    assert len(linked) >= len(instrumented(stored))  # a request logs at least once, in its span
    for record in linked:
        trace_id = record["trace_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert f"1-{trace_id[:8]}-{trace_id[8:]}" in traces
    # and the X-Ray segments point back at the application log group
    assert all(s["aws"]["cloudwatch_logs"] == [{"log_group": APPLICATION_LOG_GROUP}] for s in stored.segments())


def test_server_segments_carry_the_indexed_annotations_and_redis_calls_are_subsegments(stored):
    segments = stored.segments()
    servers = [s for s in segments if s.get("type") != "subsegment"]
    traced = [r for r in stored.requests if r["route"] != "/health"]  # excluded from traces
    assert len(servers) == len(traced) and all("parent_id" not in s for s in servers)
    annotations = [s["annotations"] for s in servers]
    # Every indexed attribute a request has is an annotation, under its own (dotted) name; an
    # unmatched request has no route.
    assert Counter((a.get(catalog.ROUTE), a[catalog.METHOD], a[catalog.STATUS_CODE], a.get(catalog.TENANT))
                   for a in annotations) == Counter((r["route"], r["method"], r["status"], r["tenant"]) for r in traced)
    assert {key for a in annotations for key in a} == set(INDEXED_SPAN_ATTRIBUTES)
    by_id = {s["id"]: s for s in servers}
    redis = [s for s in segments if (s.get("metadata", {}).get("default", {})).get("db.system") == "redis"]
    assert redis and all(s["type"] == "subsegment" and s["namespace"] == "remote" for s in redis)
    # each under its request's server segment, in the same trace
    assert all(by_id[s["parent_id"]]["trace_id"] == s["trace_id"] for s in redis)
    verifies = {s["id"] for s in servers if s["annotations"].get(catalog.ROUTE) == "/otp/verify"
                and s["annotations"][catalog.STATUS_CODE] in (200, 401)}
    assert verifies <= {s["parent_id"] for s in redis}  # every verification reads Redis
    assert all("?" in s["metadata"]["default"]["db.statement"] for s in redis if "db.statement" in s["metadata"]["default"])


def leaks(text: str, ledger: dict, kinds=("phone", "code", "email", "secret")) -> list[str]:
    found = []
    if "phone" in kinds:
        for phone in ledger["phones"]:
            digits = phone.lstrip("+")
            if re.search(rf"(?<![\d.]){re.escape(digits[1:])}(?!\d)", text):  # with or without +1
                found.append(f"phone {phone}")
    if "code" in kinds:
        found += [f"code {c}" for c in ledger["codes"] if re.search(rf"(?<![\d.]){c}(?!\d|\.\d)", text)]  # "482913." at a sentence end counts; 0.482913 or 482913.5 is a number
    if "email" in kinds and ledger["email"] in text:
        found.append("email")
    if "secret" in kinds:
        found += [f"secret {s[:6]}..." for s in ledger["secrets"] if s in text]
    return found


def test_no_phone_number_email_or_secret_reached_aws(stored):
    assert leaks(stored.everything(), stored.ledger, ("phone", "email", "secret")) == []


def test_no_code_reached_aws(stored):
    """No code anywhere, URL paths included: before the path rules, X-Ray's http.request.url of the 404s kept the code
    in /users/<phone>/codes/<code> (the phone was masked) and in /verify/<code>."""
    assert leaks(stored.everything(), stored.ledger, ("code",)) == []
