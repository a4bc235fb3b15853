"""Audit records: routed by one attribute, never dropped by level settings, scrubbed like the rest."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import flask
import pytest
from opentelemetry import trace

import kyo_otel
from kyo_otel.audit import AUDIT_ATTRIBUTE, AUDIT_LOGGER, AUDIT_VALUE

app_log = logging.getLogger("kyo_test.app")


@pytest.fixture
def telemetry(kyo_telemetry):
    """The memory profile's handle (``kyo_telemetry``: the kyo_otel pytest plugin), emptied."""
    return kyo_telemetry.handle


def audit_records(telemetry):
    return [r for r in telemetry.memory.logs.get_finished_logs() if r.log_record.attributes.get(AUDIT_ATTRIBUTE)]


def test_the_collector_routes_on_this_exact_attribute():
    # collector/otel-collector.yaml filters the audit pipeline on this key and value.
    assert (AUDIT_ATTRIBUTE, AUDIT_VALUE) == ("kyo.log.type", "audit")
    assert (kyo_otel.AUDIT_ATTRIBUTE, kyo_otel.AUDIT_VALUE) == (AUDIT_ATTRIBUTE, AUDIT_VALUE)


def test_an_audit_record_says_who_did_what_to_which_resource(telemetry):
    tracer = trace.get_tracer("kyo_test")
    with tracer.start_as_current_span("admin request") as span:
        kyo_otel.audit("tenant.rate_limit.update", "tenant:acme", user_id="admin-42", tenant_id="acme",
                       result="success", old_limit=5, new_limit=10)
        app_log.warning("limit changed")

    [item] = audit_records(telemetry)
    record = item.log_record
    assert item.instrumentation_scope.name == AUDIT_LOGGER
    assert record.body == "audit: tenant.rate_limit.update tenant:acme -> success"
    assert record.severity_text == "INFO" and record.timestamp
    assert dict(record.attributes) == {
        "kyo.log.type": "audit",
        "kyo.audit.action": "tenant.rate_limit.update",
        "kyo.audit.resource": "tenant:acme",
        "kyo.audit.result": "success",
        "user.id": "admin-42",
        "kyo.tenant.id": "acme",
        "old_limit": 5,
        "new_limit": 10,
        "aws.xray.trace_id": kyo_otel.context.xray_trace_id(span.get_span_context().trace_id),
    }
    assert record.trace_id == span.get_span_context().trace_id
    application = [r for r in telemetry.memory.logs.get_finished_logs() if r.log_record.body == "limit changed"]
    assert len(application) == 1 and AUDIT_ATTRIBUTE not in application[0].log_record.attributes


def test_level_settings_never_drop_audit_records(telemetry):
    handler = telemetry.log_handler
    audit_logger = logging.getLogger(AUDIT_LOGGER)
    saved = handler.level, audit_logger.level
    handler.setLevel(logging.CRITICAL)
    audit_logger.setLevel(logging.CRITICAL)
    logging.disable(logging.CRITICAL)
    try:
        app_log.error("dropped by the levels")
        kyo_otel.audit("user.login", "session", user_id="u-1", tenant_id="acme", result="failure", reason="locked")
    finally:
        logging.disable(logging.NOTSET)
        handler.setLevel(saved[0])
        audit_logger.setLevel(saved[1])

    bodies = [r.log_record.body for r in telemetry.memory.logs.get_finished_logs()]
    assert bodies == ["audit: user.login session -> failure"]


def test_the_tenant_defaults_to_the_requests_and_sensitive_values_are_scrubbed(telemetry):
    app = flask.Flask("audit_app")

    @app.post("/otp/verify")
    def verify():
        phone = flask.request.json["phone"]
        kyo_otel.audit("otp.verify", "otp", user_id=phone, tenant_id=None, result="success",
                       email="alice@example.com", otp_code="482913")
        return {"verified": True}

    kyo_otel.instrument_app(app, telemetry)
    app.test_client().post("/otp/verify", json={"phone": "0912345678"},
                           headers={"X-Tenant-Id": "globex", "X-Request-Id": "req-audit-1"})

    [item] = audit_records(telemetry)
    attributes = item.log_record.attributes
    assert attributes["kyo.tenant.id"] == "globex"
    assert attributes["kyo.request.id"] == "req-audit-1"
    assert attributes["user.id"] == "0912****78"
    assert attributes["email"] == "a***@example.com"
    assert attributes["otp_code"] == "[scrubbed:otp_code]"


def test_context_cannot_overwrite_the_audit_fields_and_bad_values_never_raise(telemetry):
    kyo_otel.audit("export", "report", user_id="u-2", tenant_id="acme", result="success",
                   **{"kyo.log.type": "application", "kyo.audit.result": "forged"}, payload=object())

    [item] = audit_records(telemetry)
    assert item.log_record.attributes[AUDIT_ATTRIBUTE] == AUDIT_VALUE
    assert item.log_record.attributes["kyo.audit.result"] == "success"


def test_without_kyo_otel_logs_audit_records_go_to_the_applications_own_handlers(tmp_path):
    script = textwrap.dedent(
        """
        import logging, sys
        import kyo_otel
        logging.basicConfig(stream=sys.stdout, level=logging.ERROR, format="%(name)s %(message)s %(kyo.log.type)s")
        kyo_otel.audit("user.delete", "user:7", user_id="admin", tenant_id="acme", result="success")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kyo_otel.audit audit: user.delete user:7 -> success audit"


def test_over_otlp_audit_records_arrive_marked_with_their_scope_and_correlation():
    """The production path (batch queue, OTLP/gRPC to a real receiver): the audit record and an
    application record of the same request, each with the fields the collector routes on."""
    from tests.support.subprocess_python import exported_over_otlp

    code = """
        import logging, os
        import kyo_otel
        kyo_otel.configure(environment="production", service_name="audit-otlp", otlp_endpoint=os.environ["ENDPOINT"])
        with kyo_otel.request_context("req-42", "tenant-9"):
            kyo_otel.audit("otp.verify", "otp", user_id="+886912345678", tenant_id=None, result="failure",
                           **{"kyo.attempts": 3, "kyo.reasons": ["expired"]})
            logging.getLogger("kyo_test.app").warning("verification failed")
        assert kyo_otel.shutdown()
    """
    receiver = exported_over_otlp(code)
    (audit,) = receiver.logs("audit: otp.verify")
    (application,) = receiver.logs("verification failed")
    assert audit.scope == AUDIT_LOGGER and audit.attributes[AUDIT_ATTRIBUTE] == AUDIT_VALUE
    assert audit.attributes["user.id"] == "+886*******78"  # scrubbed on the way out
    assert audit.attributes["kyo.attempts"] == 3 and list(audit.attributes["kyo.reasons"]) == ["expired"]
    assert application.scope == "kyo_test.app" and AUDIT_ATTRIBUTE not in application.attributes
    for record in (audit, application):
        assert record.attributes["kyo.request.id"] == "req-42" and record.attributes["kyo.tenant.id"] == "tenant-9"
