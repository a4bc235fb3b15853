"""Structured logs: every record carries what an on-call engineer needs to find its request."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import flask
import pytest

from opentelemetry.sdk._logs import LogRecordLimits
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import kyo_otel
from kyo_otel.config import resolve_settings
from kyo_otel.context import accepted_request_id, xray_trace_id
from kyo_otel.logs import KyoLoggingHandler, build_logger_provider

log = logging.getLogger("kyo_test.orders")


@pytest.fixture
def telemetry(kyo_telemetry):
    """The memory profile's handle (``kyo_telemetry``: the kyo_otel pytest plugin), emptied."""
    return kyo_telemetry.handle


@pytest.fixture
def client(telemetry):
    app = flask.Flask("logs_app")

    @app.get("/orders/<int:order>")
    def order(order):
        log.info("order looked up", extra={"order.id": order, "order.items": 3})
        return {"order": order}

    @app.get("/boom")
    def boom():
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed")
        return {"ok": False}, 500

    kyo_otel.instrument_app(app, telemetry)
    return app.test_client()


def records(telemetry, logger_name="kyo_test.orders"):
    return [r for r in telemetry.memory.logs.get_finished_logs() if r.instrumentation_scope.name == logger_name]


def test_a_request_log_record_carries_the_correlation_fields(telemetry, client):
    response = client.get("/orders/7", headers={"X-Request-Id": "req-7f3a", "X-Tenant-Id": "acme"})

    assert response.headers["X-Request-Id"] == "req-7f3a"
    [item] = records(telemetry)
    record = item.log_record
    assert record.timestamp and record.severity_text == "INFO"
    assert item.instrumentation_scope.name == "kyo_test.orders"  # the logger
    assert record.body == "order looked up"
    assert item.resource.attributes["service.name"] and item.resource.attributes["deployment.environment.name"] == "test"
    [server_span] = [s for s in telemetry.memory.spans.get_finished_spans() if s.name == "GET /orders/<int:order>"]
    assert record.trace_id == server_span.context.trace_id
    assert record.span_id == server_span.context.span_id
    attributes = record.attributes
    assert attributes["aws.xray.trace_id"] == xray_trace_id(server_span.context.trace_id)
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", attributes["aws.xray.trace_id"])
    assert attributes["kyo.request.id"] == "req-7f3a"
    assert attributes["kyo.tenant.id"] == "acme"
    assert attributes["order.id"] == 7 and attributes["order.items"] == 3  # extra=
    assert server_span.attributes["kyo.request.id"] == "req-7f3a"


def test_a_request_without_a_usable_request_id_gets_a_new_one(telemetry, client):
    first = client.get("/orders/1")
    second = client.get("/orders/2", headers={"X-Request-Id": 'not "a" token'})

    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    assert [r.log_record.attributes["kyo.request.id"] for r in records(telemetry)] == ids
    assert accepted_request_id("x" * 129) != "x" * 129


def test_an_error_record_carries_the_exception(telemetry, client):
    client.get("/boom", headers={"X-Request-Id": "req-boom"})

    [item] = records(telemetry)
    attributes = item.log_record.attributes
    assert item.log_record.severity_text == "ERROR"
    assert attributes["exception.type"] == "KeyError"
    assert attributes["exception.message"] == "missing"
    assert 'in boom\n    {}["missing"]' in attributes["exception.stacktrace"]
    assert attributes["kyo.request.id"] == "req-boom"


def test_records_outside_a_request_carry_no_request_fields_unless_given_a_context(telemetry):
    log.warning("background sweep")
    with kyo_otel.request_context(tenant_id="globex") as request_id:
        log.warning("job for a tenant")
    log.warning("after the job")

    outside, inside, after = records(telemetry)
    assert "kyo.request.id" not in outside.log_record.attributes and "aws.xray.trace_id" not in outside.log_record.attributes
    assert inside.log_record.attributes["kyo.request.id"] == request_id
    assert inside.log_record.attributes["kyo.tenant.id"] == "globex"
    assert "kyo.tenant.id" not in after.log_record.attributes


def test_application_records_cannot_pose_as_audit_records(telemetry):
    log.warning("pretending", extra={"kyo.log.type": "audit"})

    [item] = records(telemetry)
    assert "kyo.log.type" not in item.log_record.attributes


CONSOLE_JSON_APP = textwrap.dedent(
    """
    import logging
    import flask
    import kyo_otel

    app = flask.Flask("console_json")

    @app.post("/otp/send")
    def send():
        logging.getLogger("console_json.otp").info(
            "sending to %s", flask.request.json["phone"], extra={"channel": "sms", "otp_code": "482913"})
        return {"sent": True}

    @app.get("/fail")
    def fail():
        try:
            raise RuntimeError("provider down")
        except RuntimeError:
            logging.getLogger("console_json.otp").exception("send failed")
        return {"sent": False}, 502

    # Spans stay in memory so that stdout holds only the log lines.
    kyo_otel.configure(environment="development", console_format="json", service_name="otp-service",
                       traces_exporter="memory", metrics_exporter="none", app=app)
    client = app.test_client()
    client.post("/otp/send", json={"phone": "+886912345678"}, headers={"X-Request-Id": "req-1", "X-Tenant-Id": "acme"})
    client.get("/fail", headers={"X-Request-Id": "req-2"})
    kyo_otel.audit("tenant.update", "tenant:acme", user_id="u-1", tenant_id="acme", result="success")
    kyo_otel.shutdown()
    """
)


def test_console_json_format_writes_one_json_object_per_line(tmp_path):
    script = tmp_path / "console_json_app.py"
    script.write_text(CONSOLE_JSON_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_"))}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env, check=False)

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [r["message"] for r in records] == [
        "sending to +886*******78",
        "send failed",
        "audit: tenant.update tenant:acme -> success",
    ]
    sent, failed, audit = records
    for field in ("timestamp", "level", "logger", "message", "service", "environment", "trace_id", "span_id"):
        assert field in sent, field
    assert sent["level"] == "INFO" and sent["logger"] == "console_json.otp"
    assert sent["service"] == "otp-service" and sent["environment"] == "development"
    assert re.fullmatch(r"[0-9a-f]{32}", sent["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", sent["span_id"])
    assert sent["aws.xray.trace_id"] == f"1-{sent['trace_id'][:8]}-{sent['trace_id'][8:]}"
    assert sent["kyo.request.id"] == "req-1" and sent["kyo.tenant.id"] == "acme"
    assert sent["channel"] == "sms" and sent["otp_code"] == "[scrubbed:otp_code]"
    assert failed["level"] == "ERROR" and failed["exception.type"] == "RuntimeError"
    assert failed["exception.message"] == "provider down" and "Traceback" in failed["exception.stacktrace"]
    assert failed["kyo.request.id"] == "req-2"
    assert audit["kyo.log.type"] == "audit" and audit["logger"] == "kyo_otel.audit"
    assert "+886912345678" not in done.stdout and "482913" not in done.stdout


class _Collecting(LogRecordExporter):
    """An exporter that keeps what it is given (behind kyo_otel's real batch processor)."""

    def __init__(self) -> None:
        self.records = []

    def export(self, batch):
        self.records.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _bridge(service: str, *, direct: bool = True, scrub: Any = None, **provider_options: Any):
    """kyo_otel's logger provider as the otlp profile builds it, exporting to a ``_Collecting``
    exporter, and the bridge on it: straight into the batch queue (``direct``) or through the
    SDK logger. Returns (provider, exporter, handler)."""
    exporter = _Collecting()
    provider = build_logger_provider(resolve_settings(env={"KYO_OTEL_PROFILE": "otlp"}),
                                     Resource.create({"service.name": service}), exporter, **provider_options)
    handler = KyoLoggingHandler(logger_provider=provider, direct=provider._kyo_batch_queue if direct else None, scrub=scrub)
    return provider, exporter, handler


def test_the_batch_path_builds_the_record_the_sdk_path_builds():
    """With kyo_otel's batch processor (the otlp and console profiles) the handler puts each
    record straight into the export queue instead of going through the SDK logger; what is
    exported is the same record, field for field."""
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    stdlib = logging.getLogger("kyo_test.parity")
    try:
        raise KeyError("missing")
    except KeyError:
        exc_info = sys.exc_info()
    records = [
        stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 1, "order %s shipped", (7,), None,
                          extra={"order.id": 7, "order.tags": ["a", "b"], "order.meta": {"k": 1}, "obj": Opaque()}),
        stdlib.makeRecord(stdlib.name, 25, __file__, 2, "custom level", (), None),
        stdlib.makeRecord(stdlib.name, logging.ERROR, __file__, 3, "failed", (), exc_info),
        stdlib.makeRecord(stdlib.name, logging.WARNING, __file__, 4, "event", (), None, extra={"otel.event.name": "x.y"}),
        stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 5, "formatted first", (), None, extra={"a": 1, "b": "2"}),
        stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 6, "fields set later", (), None, extra={"c": 3}),
    ]
    logging.Formatter("%(asctime)s %(message)s").format(records[4])  # another handler's formatter ran first
    for late in ("message", "asctime", "taskName", "d"):
        setattr(records[5], late, "late")
    tracer = TracerProvider().get_tracer("parity")
    exported = []
    with tracer.start_as_current_span("request"), kyo_otel.request_context("req-1", "tenant-1"):
        for direct in (True, False):
            provider, exporter, handler = _bridge("parity", direct=direct)
            assert provider._kyo_batch_queue is not None  # the direct path is there to take (fails if the SDK renames it)
            for record in records:
                handler.handle(record)
            provider.force_flush()
            exported.append(exporter.records)
            provider.shutdown()

    def fields(readable):
        r = readable.log_record
        return (r.timestamp, r.severity_number, r.severity_text, r.body, list((r.attributes or {}).items()), r.trace_id,
                r.span_id, r.trace_flags, r.event_name, readable.instrumentation_scope, readable.resource.attributes)

    fast, sdk = exported
    assert len(fast) == len(sdk) == len(records)
    assert [vars(r.log_record).keys() for r in fast] == [vars(r.log_record).keys() for r in sdk]
    assert [fields(r) for r in fast] == [fields(r) for r in sdk]
    first = dict(fast[0].log_record.attributes)
    assert first["order.tags"] == ("a", "b") and first["obj"] == "opaque" and first["kyo.request.id"] == "req-1"
    assert fast[2].log_record.attributes["exception.type"] == "KeyError"
    assert list(fast[4].log_record.attributes)[:2] == ["a", "b"] and "message" not in fast[4].log_record.attributes
    assert list(fast[5].log_record.attributes)[:2] == ["c", "d"]
    assert all(r.log_record.trace_id for r in fast)


def test_filters_on_the_handler_apply_on_the_batch_path():
    """The batch path skips the handler's lock, not its filters."""
    provider, exporter, handler = _bridge("filters")
    handler.addFilter(lambda record: record.name != "kyo_test.noisy")
    for name in ("kyo_test.noisy", "kyo_test.kept"):
        handler.handle(logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, "hello", (), None))
    provider.force_flush()
    assert [r.log_record.body for r in exporter.records] == ["hello"]
    provider.shutdown()


def test_records_of_a_forked_child_carry_the_childs_instance_id():
    """A gunicorn-style fork after the parent has logged (batch queue, OTLP/gRPC to a real
    receiver): the child's records go out with the child's ``service.instance.id``, even from a
    logger the parent had used."""
    from tests.support.subprocess_python import exported_over_otlp

    code = """
        import logging, multiprocessing, os
        import kyo_otel
        kyo_otel.configure(environment="production", service_name="fork-logs", otlp_endpoint=os.environ["ENDPOINT"])
        log = logging.getLogger("kyo_test.fork")
        log.warning("from the parent")

        def child():
            log.warning("from the child")

        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        process.join(20)
        assert process.exitcode == 0
        assert kyo_otel.shutdown()
    """
    receiver = exported_over_otlp(code)
    (parent,) = receiver.logs("from the parent")
    (child,) = receiver.logs("from the child")
    assert child.resource["process.pid"] != parent.resource["process.pid"]
    assert child.resource["service.instance.id"] != parent.resource["service.instance.id"]


@pytest.mark.parametrize("direct", [True, False], ids=["batch path", "sdk path"])
def test_a_record_that_cannot_be_translated_never_reaches_the_caller(direct, capsys):
    """A message whose arguments do not fit its format raises in ``getMessage()``: as with stdlib
    handlers, the record goes to ``handleError`` (a traceback on stderr) and the caller's logging
    call returns; the next record is exported."""
    provider, exporter, handler = _bridge("bad-format", direct=direct)
    stdlib = logging.getLogger("kyo_test.bad_format")
    handler.handle(stdlib.makeRecord(stdlib.name, logging.WARNING, __file__, 1, "%d apples", ("many",), None))
    handler.handle(stdlib.makeRecord(stdlib.name, logging.WARNING, __file__, 2, "%d apples", (3,), None))
    provider.force_flush()
    assert [r.log_record.body for r in exporter.records] == ["3 apples"]
    assert "--- Logging error ---" in capsys.readouterr().err
    provider.shutdown()


def test_a_malformed_call_reports_its_arguments_on_stderr_scrubbed(capsys):
    """``handleError`` prints the record's message and arguments, and stderr goes to the
    container's log group: a phone number among the arguments of a malformed call went there raw."""
    from kyo_otel.scrub import Scrubber

    provider, _, handler = _bridge("bad-format", scrub=Scrubber().scrub_text)
    stdlib = logging.getLogger("kyo_test.bad_format")
    handler.handle(stdlib.makeRecord(stdlib.name, logging.WARNING, __file__, 7, "%d codes sent to %s", ("one", "+886912345678"), None))
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "TypeError" in err
    assert f"Logged from file {__file__}, line 7" in err
    assert "'%d codes sent to %s'" in err and "+886*******78" in err and "886912345678" not in err
    provider.shutdown()


def test_a_logger_its_configurator_disables_sends_nothing_on_the_batch_path():
    """The SDK's logger configurator may switch a logger off: the batch path asks the logger, as
    ``Logger.emit`` does."""
    from opentelemetry.sdk._logs._internal import _LoggerConfig

    provider, exporter, handler = _bridge("configured")
    provider._set_logger_configurator(
        logger_configurator=lambda scope: _LoggerConfig(is_enabled=scope.name != "kyo_test.muted")
    )
    for name in ("kyo_test.muted", "kyo_test.heard"):
        handler.handle(logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, name, (), None))
    provider.force_flush()
    assert [r.log_record.body for r in exporter.records] == ["kyo_test.heard"]
    provider.shutdown()


@pytest.mark.parametrize(
    "limits",
    [LogRecordLimits(max_log_record_attribute_length=5), LogRecordLimits(max_log_record_attributes=4)],
    ids=["value length", "count"],
)
def test_log_record_limits_apply_on_the_batch_path_as_on_the_sdk_path(limits):
    """``OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`` / ``_COUNT_LIMIT`` (here given to the
    provider) truncate and drop attributes on the SDK path: the batch path hands such records to
    it, so both export the same."""
    stdlib = logging.getLogger("kyo_test.limits")
    records = [
        stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 1, "short", (), None, extra={"a": "a long value"}),
        stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 2, "many", (), None, extra=dict.fromkeys("bcdefg", 1)),
    ]
    exported = []
    with TracerProvider().get_tracer("limits").start_as_current_span("request"), kyo_otel.request_context("req-1"):
        for direct in (True, False):
            provider, exporter, handler = _bridge("limits", direct=direct, log_record_limits=limits)
            for record in records:
                handler.handle(record)
            provider.force_flush()
            exported.append([(dict(r.log_record.attributes), r.dropped_attributes) for r in exporter.records])
            provider.shutdown()
    fast, sdk = exported
    assert fast == sdk
    if limits.max_log_record_attribute_length == 5:
        assert fast[0][0]["a"] == "a lon"
    else:
        assert [len(attributes) for attributes, _ in fast] == [3, 4] and fast[1][1] == 4


def test_a_processor_added_to_the_logger_provider_gets_bridge_and_audit_records():
    """The batch path feeds kyo_otel's queue directly only while its processor is the provider's
    only one: a processor the application adds later gets every later record, from the bridge and
    from kyo_otel.audit(), and kyo_otel's own export still gets them too."""
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    provider, exported, handler = _bridge("added")
    stdlib = logging.getLogger("kyo_test.added")
    handler.handle(stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 1, "before", (), None))
    seen = _Collecting()
    provider.add_log_record_processor(SimpleLogRecordProcessor(seen))
    handler.handle(stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 2, "after", (), None))
    from kyo_otel import logs
    from opentelemetry._logs import LogRecord

    logs.emit(provider, "kyo_otel.audit", LogRecord(body="audited", attributes={"kyo.log.type": "audit"}))
    provider.force_flush()
    assert [r.log_record.body for r in seen.records] == ["after", "audited"]
    assert [r.log_record.body for r in exported.records] == ["before", "after", "audited"]
    provider.shutdown()


def test_configure_gives_the_bridge_the_scrubber_for_stderr_too(kyo_telemetry, capsys):
    # The bridge configure() attached, called directly: pytest's own capturing handler re-raises
    # logging errors before ours would be reached through the logger.
    stdlib = logging.getLogger("kyo_test.bad_call")
    record = stdlib.makeRecord(stdlib.name, logging.WARNING, __file__, 1, "%d codes sent to %s", ("one", "+886912345678"), None)
    kyo_telemetry.handle.log_handler.handle(record)
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "+886*******78" in err and "886912345678" not in err


@pytest.mark.parametrize("direct", [True, False], ids=["batch path", "sdk path"])
def test_terminal_escape_sequences_are_stripped_from_log_bodies(direct):
    """werkzeug colours its request lines for a terminal; the escape codes are no part of the
    message an exporter sends (CloudWatch Logs showed ``[33mGET /x HTTP/1.1[0m``)."""
    provider, exporter, handler = _bridge("colours", direct=direct)
    stdlib = logging.getLogger("kyo_test.colours")
    for message, args in [
        ('"%s" %s -', ("\x1b[33mGET /missing HTTP/1.1\x1b[0m", 404)),
        ("\x1b[1m\x1b[31mfailed\x1b[0m \x1b]8;;http://127.0.0.1/\x07link\x1b]8;;\x07 done", ()),
        ("plain text, [33m without ESC, stays", ()),
    ]:
        handler.handle(stdlib.makeRecord(stdlib.name, logging.INFO, __file__, 1, message, args, None))
    provider.force_flush()
    assert [r.log_record.body for r in exporter.records] == [
        '"GET /missing HTTP/1.1" 404 -',
        "failed link done",
        "plain text, [33m without ESC, stays",
    ]
    provider.shutdown()


def test_werkzeugs_request_log_reaches_the_collector_without_colour_codes_under_zero_code():
    """The real werkzeug development server under ``opentelemetry-instrument``, exporting OTLP
    to a real receiver: its coloured request line arrives as plain text."""
    import shutil

    from kyo_otel.receiver import OtlpReceiver
    from tests.support.subprocess_python import run_python

    code = """
        import threading, urllib.error, urllib.request
        from flask import Flask
        from werkzeug.serving import make_server
        import kyo_otel

        app = Flask("colours")
        server = make_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            opener.open(f"http://127.0.0.1:{server.server_port}/no/such/page", timeout=10)
        except urllib.error.HTTPError:
            pass
        server.shutdown()
        kyo_otel.shutdown()
    """
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    with OtlpReceiver() as receiver:
        result = run_python(code, argv0=[instrument], env={
            "OTEL_PYTHON_DISTRO": "kyo", "OTEL_PYTHON_CONFIGURATOR": "kyo", "KYO_OTEL_ENVIRONMENT": "production",
            "OTEL_SERVICE_NAME": "colours", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        })
        assert result.returncode == 0, result.stderr
        (request_line,) = receiver.logs("/no/such/page")
    assert '"GET /no/such/page HTTP/1.1" 404' in request_line.body
    assert "\x1b" not in request_line.body
