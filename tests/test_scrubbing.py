"""Nothing sensitive leaves the process: the scrubber alone, then a Flask app end to end."""

from __future__ import annotations

import logging
import re

import flask
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import kyo_otel
from kyo_otel.scrub import Scrubber, mask_phone
from tests.support.exported import exported_json

scrubber = Scrubber()


# --- the scrubber -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "masked"),
    [
        ("+886912345678", "+886*******78"),
        ("+886 912 345 678", "+886*******78"),
        ("+886-912-345-678", "+886*******78"),
        ("+886.912.345.678", "+886*******78"),
        ("0912-345-678", "0912****78"),
        ("0912345678", "0912****78"),
        ("0912 345 678", "0912****78"),
        ("0912.345.678", "0912****78"),
        ("(02) 2345-6789", "0223****89"),
        ("02-2345-6789", "0223****89"),
        ("+1 555 0100", "+155***00"),
        # A number and its extension typed as one run after a "+": more digits than E.164 allows
        # made it "not a phone number", and it went out raw.
        ("+8869123456780123", "+886***********23"),
        # the international prefix dialled, and a country code in parentheses: both went out raw
        ("00886912345678", "0088********78"),
        ("(+886) 912 345 678", "(+886*******78"),
        # The same after a spaced country code: the first group fits, the run after it does not.
        ("+886 9123456780123", "+886***********23"),
        ("+886 912 3456780123", "+886***********23"),
    ],
)
def test_phone_numbers_in_every_typed_format_keep_first_four_and_last_two(typed, masked):
    assert scrubber.scrub_text(typed) == masked
    assert scrubber.scrub_text(f"sent to {typed}.") == f"sent to {masked}."
    assert scrubber.scrub_text(f"otp:{typed}") == f"otp:{masked}"  # a Redis key in a message


@settings(max_examples=300, deadline=None)
@given(
    number=st.one_of(
        st.tuples(st.sampled_from(["+886", "+1", "+44", "+81", "+852"]), st.text("0123456789", min_size=8, max_size=10)),
        st.tuples(st.sampled_from(["09", "02", "03", "04"]), st.text("0123456789", min_size=7, max_size=8)),
    ),
    cuts=st.lists(st.integers(1, 9), max_size=3),
    separator=st.sampled_from(["", " ", "-", "."]),
    before=st.sampled_from(["", "to ", "phone=", "otp:", '{"phone": "', "(", "<", "user_", "tel"]),
    after=st.sampled_from(["", " ok", "&x=1", '"}', ")", ".", ", then", ">"]),
)
def test_any_typed_phone_number_in_any_surrounding_is_masked(number, cuts, separator, before, after):
    prefix, rest = number
    assume(prefix.startswith("+") or before != "tel")  # a local number glued to letters looks like an id
    digits = prefix + rest
    typed = digits
    for cut in sorted(set(cuts), reverse=True):  # split into groups the way people type them
        position = len(prefix) + cut
        if position < len(typed) - 1:
            typed = typed[:position] + separator + typed[position:]
    scrubbed = scrubber.scrub_text(before + typed + after)
    assert typed not in scrubbed
    assert before + mask_phone(typed) + after == scrubbed


def test_phone_numbers_percent_encoded_in_a_query_are_masked():
    assert scrubber.scrub_text("GET /otp/verify?phone=%2B886912345678&lang=en") == (
        "GET /otp/verify?phone=+886*******78&lang=en"
    )


def test_a_mask_shows_at_most_six_digits_and_stands_for_every_hidden_one():
    for number in ("+886912345678", "0912345678", "+14155550100"):
        masked = mask_phone(number)
        digits = re.sub(r"\D", "", number)
        visible = re.sub(r"\D", "", masked)
        assert len(visible) <= 6
        assert masked.count("*") == len(digits) - len(visible)
        assert masked.endswith(digits[-2:]) and number.startswith(masked[:4])


@pytest.mark.parametrize(
    "value",
    [
        "4bf92f3577b34da6a3ce929d0e0e4736",  # a W3C trace id
        "1-4bf92f35-77b34da6a3ce929d0e0e4736",  # the X-Ray form
        "00f067aa0ba902b7",  # a span id
        "550e8400-e29b-41d4-a716-446655440000",  # a UUID
        "2026-11-28T18:00:22.123456Z",
        "2026-11-28 18:00:22,123",
        "1764352822123",  # epoch milliseconds
        "0.0012345678",  # a duration in seconds
        "duration 12.345678ms",
        "127.0.0.1:6379",
        "redis://127.0.0.1:61234/0",
        "01.02.2026",
        "v0.66.0",
        "SET ? ?",
        "status code: 404",
        "exit code=1",
        "otp: sent",
        "tokens: 5",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "/otp/verify",
        "+5 points",
        "2026-01-01T10:00:00 +0800 1767232800000000000",  # a UTC offset, then epoch nanoseconds
        "0000000000000001",  # zero-padded, not a dialled prefix
        "2026 is your year",
        "statusCode=404",
    ],
)
def test_look_alikes_are_left_alone(value):
    assert scrubber.scrub_text(value) == value


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: u.hex),
        # Span ids; but not those that read as a dialled international number (00, a country
        # code's first digit, then only digits: 0010000000000000), masked by design (see below).
        st.integers(1, 2**64 - 1).map(lambda i: f"{i:016x}").filter(lambda v: not _dialled(v)),
        st.integers(1, 2**128 - 1).map(lambda i: f"1-{i:032x}"[:11] + "-" + f"{i:032x}"[8:]),  # X-Ray ids
        st.datetimes().map(lambda d: d.isoformat()),
        st.floats(min_value=0, max_value=1e6, allow_nan=False).map(repr),  # durations as text
        st.integers(0, 10**15).map(str),  # counts, epoch times
        st.integers(1, 65535).map(lambda port: f"127.0.0.1:{port}"),
    )
)
def test_ids_timestamps_and_numbers_as_text_are_never_mangled(value):
    assert scrubber.scrub_text(value) == value


def _dialled(value: str) -> bool:
    return value[:2] == "00" and value[2:3] in "123456789" and value.isdigit()


def test_an_all_digit_id_that_reads_as_a_dialled_number_is_masked_rather_than_risk_one():
    # 00 + 14 digits is a valid dialled E.164 number (0049 30 1234567890 12): text cannot tell it
    # from a span id whose hex digits are all decimal, and over-masking an id in text loses nothing.
    assert scrubber.scrub_text("0010000000000000") == "0010**********00"
    assert scrubber.scrub_text("0049301234567890") == "0049**********90"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("alice@example.com", "a***@example.com"),
        ("mail alice.b+x@mail.example.co.uk now", "mail a***@mail.example.co.uk now"),
        ("email=alice%40example.com", "email=a***@example.com"),
        ("password=hunter2 ok", "password=[scrubbed:password] ok"),
        ('{"password": "hunter2", "n": 1}', '{"password": "[scrubbed:password]", "n": 1}'),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln", "Authorization: [scrubbed:authorization]"),
        ("api_key=sk_live_abc123", "api_key=[scrubbed:api_key]"),
        ("code=482913", "code=[scrubbed:code]"),
        ("otp_code: 482913", "otp_code: [scrubbed:otp_code]"),
        ("your code is 482913", "your code is [scrubbed:code]"),
        ("OTP 482913 sent", "OTP [scrubbed:otp] sent"),
        # A local part starting with "_" or "+", or longer than RFC 5321's 64: matched nowhere, raw.
        ("from _alice.chen@example.com", "from _***@example.com"),
        ("+alerts@example.com", "+***@example.com"),
        # camelCase keys, tokens without a key, the code before the words (SMS templates), signed URLs
        ("sessionToken=abc123def", "sessionToken=[scrubbed:sessiontoken]"),
        ("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl from the idp", "got [scrubbed:jwt] from the idp"),
        ("retrying with Bearer abcdefghijklmnop1234", "retrying with Bearer [scrubbed:bearer]"),
        ("482913 is your verification code", "[scrubbed:code] is your verification code"),
        ("1234 is your PIN.", "[scrubbed:code] is your PIN."),
        ("X-Amz-Signature=4f8a2c9e01b7", "X-Amz-Signature=[scrubbed:signature]"),
        ("code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r", "code_verifier=[scrubbed:code_verifier]"),
        ("to " + "a" * 70 + "@example.com.", "to a***@example.com."),
        # A run starting with a dot (text cut with "..."): no start left in it, raw.
        ("...alice.chen@example.com", ".***@example.com"),
        ("reply to .bob@example.com", "reply to .***@example.com"),
    ],
)
def test_emails_and_secrets_in_text_lose_the_secret_part_only(text, scrubbed):
    assert scrubber.scrub_text(text) == scrubbed


@pytest.mark.parametrize(
    ("key", "value", "scrubbed"),
    [
        ("http.request.header.authorization", ("Bearer abc",), "[scrubbed:authorization]"),
        ("http.request.header.cookie", ("session=abc",), "[scrubbed:cookie]"),
        ("http.response.header.set-cookie", ("session=abc",), "[scrubbed:cookie]"),
        ("code", 482913, "[scrubbed:code]"),
        ("otp", "482913", "[scrubbed:otp]"),
        ("otp_code", "12", "[scrubbed:otp_code]"),
        ("password", "hunter2", "[scrubbed:password]"),
        ("token", "t", "[scrubbed:token]"),
        ("client_secret", "s", "[scrubbed:secret]"),
        ("api_key", "k", "[scrubbed:api_key]"),
        ("x-api-key", "k", "[scrubbed:api_key]"),
        ("session_id", "s", "[scrubbed:session_id]"),
        ("user.session", "s", "[scrubbed:session]"),
        # camelCase keys are split into their words
        ("accessToken", "t", "[scrubbed:token]"),
        ("clientSecret", "s", "[scrubbed:secret]"),
        ("X-Amz-Signature", "s", "[scrubbed:signature]"),
        ("code_verifier", "v", "[scrubbed:code_verifier]"),
    ],
)
def test_values_of_sensitive_keys_are_replaced_whatever_their_type(key, value, scrubbed):
    assert scrubber.scrub_value(key, value) == scrubbed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.response.status_code", 200),
        ("http.status_code", 503),
        ("code.function.name", "send"),
        ("code.line.number", 42),
        ("kyo.otp.result", "success"),
        ("kyo.otp.failure_reason", "wrong_code"),
        ("gen_ai.usage.input_tokens", 12),
        ("server.port", 6379),
        ("db.redis.database_index", 0),
        ("http.server.request.duration", 0.0123456789),
        ("kyo.tenant.id", "acme"),
        ("error", True),
        ("statusCode", 404),
        ("tokenCount", 12),
    ],
)
def test_ordinary_keys_and_numbers_pass_unchanged(key, value):
    assert scrubber.scrub_value(key, value) == value


@pytest.mark.parametrize(
    ("key", "value", "scrubbed"),
    [
        ("phone", "912345678", "9123***78"),  # not typed like a phone number, but the key says so
        ("user.phone_number", 886912345678, "8869******78"),
        ("msisdn", "+886 912 345 678", "+886*******78"),
        ("email", "Alice@Example.com", "A***@Example.com"),
        ("mobile", "yes", "yes"),
        ("user.email", "unknown", "unknown"),
    ],
)
def test_phone_and_email_keys_mask_whatever_their_value_looks_like(key, value, scrubbed):
    assert scrubber.scrub_value(key, value) == scrubbed


def test_urls_keep_their_path_and_lose_sensitive_query_values():
    assert scrubber.scrub_value("url.full", "https://api.example/otp/verify?phone=%2B886912345678&code=12&lang=en#x") == (
        "https://api.example/otp/verify?phone=+886*******78&code=[scrubbed:code]&lang=en#x"
    )
    assert scrubber.scrub_value("url.query", "token=abc&next=/home&email=a%40b.io") == (
        "token=[scrubbed:token]&next=/home&email=a***@b.io"
    )
    assert scrubber.scrub_value("http.target", "/users/0912345678?session_id=s1") == (
        "/users/0912****78?session_id=[scrubbed:session_id]"
    )


def test_query_keys_and_a_phone_numbers_own_plus_are_scrubbed_too():
    # Found by tests/faults (bad input): a "+" in a query is a space only once decoded, and keys
    # are whatever the client typed.
    assert scrubber.scrub_value("url.query", "to=+886912345678&q=a+b") == "to=+886*******78&q=a+b"
    assert scrubber.scrub_value("url.query", "+886912345678=1&x=/+886912345678?email=alice@example.com") == (
        "+886*******78=1&x=/+886*******78?email=a***@example.com"
    )


def test_mapping_bodies_are_scrubbed_by_key_and_by_value():
    body = {"phone": "+886912345678", "otp": {"code": 482913}, "items": ["alice@example.com", 3]}
    assert scrubber.scrub_value(None, body) == {
        "phone": "+886*******78",
        "otp": "[scrubbed:otp]",
        "items": ["a***@example.com", 3],
    }


def test_phone_numbers_and_emails_used_as_mapping_keys_are_masked_and_nothing_is_lost():
    body = {"+886912345678": "sent", "+886 912 345 678": "retried", "ops@example.com": {"+15551234567": 1}, "ok": 2}
    assert scrubber.scrub_value(None, body) == {
        "+886*******78": "sent",
        "+886*******78#2": "retried",
        "o***@example.com": {"+155******67": 1},
        "ok": 2,
    }


def test_extra_patterns_sensitive_keys_and_a_callback_are_configurable():
    seen = []

    def callback(key, value):
        seen.append(key)
        return value.replace("ACME-", "")

    custom = Scrubber(
        extra_patterns={"national_id": r"\b[A-Z][12]\d{8}\b"},
        sensitive_keys=["x-phone-hash"],
        callback=callback,
    )
    assert custom.scrub_text("id A123456789 ok") == "id [scrubbed:national_id] ok"
    assert custom.scrub_value("x-phone-hash", "abc") == "[scrubbed:x_phone_hash]"
    assert custom.scrub_value("tenant", "ACME-north") == "north"
    assert "tenant" in seen
    # The built-in rules still apply alongside the extra ones.
    assert custom.scrub_text("A123456789 +886912345678") == "[scrubbed:national_id] +886*******78"


def test_a_bad_extra_pattern_is_reported_when_the_scrubber_is_built():
    with pytest.raises(re.error):
        Scrubber(extra_patterns={"broken": "(unclosed"})


def test_pathological_input_is_scrubbed_in_bounded_time():
    # Long digit runs and long words must not make the patterns backtrack without end; the
    # timeout of this test (pytest-timeout) is the bound, not a timed assertion.
    text = ("0" * 5000 + " ") * 4 + "a" * 20000 + "@" + "+" + "1" * 20000
    assert len(scrubber.scrub_text(text)) > 0


# --- the exporters ------------------------------------------------------------------------


def test_the_span_exporter_hands_on_scrubbed_copies_of_every_part_of_a_span():
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, Status, StatusCode

    from kyo_otel.scrub import ScrubbingSpanExporter

    received = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=3), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(received, scrubber)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("linked") as other:
        pass
    link = Link(other.get_span_context(), {"email": "alice@example.com"})
    with tracer.start_as_current_span("lookup +886912345678", links=[link]) as span:
        span.set_attributes({"x": 1, "http.response.status_code": 404, "token": "t0k3n", "user.phone": "0912345678"})
        span.add_event("retry", {"exception.message": "no user 0912-345-678"})
        span.set_status(Status(StatusCode.ERROR, "no user alice@example.com"))

    exported = received.get_finished_spans()[-1]
    assert exported.name == "lookup +886*******78"
    assert dict(exported.attributes) == {"user.phone": "0912****78", "http.response.status_code": 404, "token": "[scrubbed:token]"}
    assert exported.dropped_attributes == 1  # "x", by the SDK's limit: the count survives the copy
    assert exported.events[0].attributes["exception.message"] == "no user 0912****78"
    assert exported.links[0].attributes["email"] == "a***@example.com"
    assert exported.status.description == "no user a***@example.com"
    assert exported.context == span.get_span_context() and exported.parent is None
    provider.shutdown()


def test_an_item_that_cannot_be_scrubbed_is_dropped_and_counted_never_exported_raw(kyo_telemetry):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kyo_otel.scrub import ScrubbingSpanExporter

    def broken(key, value):
        raise RuntimeError("a buggy callback")

    received = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(received, Scrubber(callback=broken))))
    provider.get_tracer("test").start_span("otp", attributes={"phone": "+886912345678"}).end()

    assert received.get_finished_spans() == ()
    assert kyo_telemetry.metric("kyo.telemetry.dropped", kyo_signal="traces").value == 1
    provider.shutdown()


# --- end to end: a Flask app, real Redis, everything exported -----------------------------

PHONE = "+886912345678"
LOCAL_PHONE = "0912-345-678"
CODE = "739184"
EMAIL = "alice.chen@example.com"
BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig-4f8a2c"
COOKIE = "sess-93b1d7e0c4a2"
API_KEY = "sk_live_51HxYzSecret"
PASSWORD = "correct-horse-battery"
RAW_VALUES = [
    PHONE,
    PHONE.replace("+", "%2B"),
    "886912345678",
    "912345678",
    "0912345678",
    LOCAL_PHONE,
    "912-345-678",
    EMAIL,
    "alice.chen",
    "alice.chen%40example.com",
    BEARER,
    COOKIE,
    API_KEY,
    PASSWORD,
]


def build_app(redis_client) -> flask.Flask:
    """A small OTP service: codes in Redis under the phone number, logs with ``extra=``."""
    app = flask.Flask("scrub_e2e")
    log = logging.getLogger("scrub_e2e")

    @app.post("/otp/send")
    def send():
        body = flask.request.get_json()
        phone = body["phone"]
        redis_client.set(f"otp:{phone}", CODE, ex=300)
        log.info("sent code %s to %s (%s)", CODE, phone, body.get("email"),
                 extra={"phone": phone, "code": CODE, "email": body.get("email"), "password": body.get("password")})
        kyo_otel.otp.sent(flask.request.headers.get("X-Tenant-Id"))
        return {"sent": True}

    @app.get("/otp/verify")
    def verify():
        phone = flask.request.args["phone"]
        stored = redis_client.get(f"otp:{phone}")
        ok = stored is not None and stored.decode() == flask.request.args["code"]
        log.warning("verification for %s with code=%s: %s", phone, flask.request.args["code"], ok,
                    extra={"request": {"phone": phone, "otp": flask.request.args["code"]}})
        kyo_otel.otp.verified(flask.request.headers.get("X-Tenant-Id"), ok, None if ok else "wrong_code")
        kyo_otel.audit("otp.verify", f"phone:{phone}", user_id=phone, tenant_id=None,
                       result="success" if ok else "failure", email=EMAIL)
        return {"verified": ok}, 200 if ok else 400

    @app.get("/users/<phone>")
    def user(phone):
        raise LookupError(f"no user with phone {phone} or email {EMAIL}")

    return app


def test_no_raw_value_reaches_any_exported_signal(kyo_telemetry, redis_client, monkeypatch):
    # Record sensitive request headers on spans, as an operator might: the scrubber must still win.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization,cookie,x-api-key,x-phone")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "")
    telemetry = kyo_telemetry.handle
    app = build_app(redis_client)
    kyo_otel.instrument_app(app, telemetry, redis=redis_client)
    client = app.test_client()
    client.set_cookie("session", COOKIE)  # sent as a Cookie header
    headers = {
        "Authorization": f"Bearer {BEARER}",
        "X-Api-Key": API_KEY,
        "X-Phone": LOCAL_PHONE,
        "X-Tenant-Id": "acme",
    }

    sent = client.post("/otp/send", json={"phone": PHONE, "email": EMAIL, "password": PASSWORD}, headers=headers)
    assert sent.status_code == 200
    assert redis_client.get(f"otp:{PHONE}") == CODE.encode()  # the app really stored it
    wrong = client.get(f"/otp/verify?phone=%2B886912345678&code=000000&email={EMAIL}", headers=headers)
    assert wrong.status_code == 400
    right = client.get(f"/otp/verify?phone=%2B886912345678&code={CODE}", headers={**headers, "X-Tenant-Id": PHONE})
    assert right.status_code == 200 and right.get_json() == {"verified": True}
    missing = client.get(f"/users/{LOCAL_PHONE}?api_key={API_KEY}", headers=headers)
    assert missing.status_code == 500

    metrics = telemetry.memory.metrics.get_metrics_data()
    tenants = {
        point.attributes.get("kyo.tenant.id")
        for resource in metrics.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }
    assert {"acme", "+886*******78"} <= tenants  # a phone number used as a tenant id is masked too
    exported = exported_json(telemetry, metrics)
    leaked = [value for value in RAW_VALUES if value in exported]
    assert leaked == [], f"raw values in the exported telemetry: {leaked}"
    # The code as a token of its own (a timestamp's microseconds may contain any six digits).
    assert not re.search(rf"(?<![0-9A-Za-z.]){CODE}(?![0-9A-Za-z])", exported)

    # What is left is still useful: the masked forms, and what scrubbed them.
    for masked in ("+886*******78", "0912****78", "a***@example.com", "[scrubbed:code]", "[scrubbed:authorization]",
                   "[scrubbed:cookie]", "[scrubbed:api_key]", "[scrubbed:password]", "[scrubbed:otp]"):
        assert masked in exported, masked

    spans = telemetry.memory.spans.get_finished_spans()
    statements = {s.attributes.get("db.statement") for s in spans if s.attributes.get("db.system") == "redis"}
    assert {"SET ? ? ? ?", "GET ?"} <= statements  # the fixture's FLUSHDB may be there too
    assert all(re.fullmatch(r"[A-Z]+( \?)*", statement) for statement in statements)
    logs = telemetry.memory.logs.get_finished_logs()
    traced = [r for r in logs if r.log_record.trace_id]
    assert traced, "log records carry the trace id of the request"
    for record in traced:
        hex_id = f"{record.log_record.trace_id:032x}"
        assert record.log_record.attributes["aws.xray.trace_id"] == f"1-{hex_id[:8]}-{hex_id[8:]}"
    error = next(r for r in logs if r.log_record.severity_text == "ERROR")
    assert error.log_record.attributes["exception.type"] == "LookupError"
    assert error.log_record.attributes["exception.message"] == "no user with phone 0912****78 or email a***@example.com"


def test_scrubbing_can_be_turned_off_explicitly():
    assert kyo_otel.resolve_settings({}, env={}).scrubbing is True
    assert kyo_otel.resolve_settings({}, env={"KYO_OTEL_SCRUBBING": "false"}).scrubbing is False
    with pytest.raises(kyo_otel.ConfigError, match="true or false"):
        kyo_otel.resolve_settings({}, env={"KYO_OTEL_SCRUBBING": "sometimes"})

    from tests.support.subprocess_python import last_json_line, run_python

    report = last_json_line(run_python(
        """
        import json, logging
        import kyo_otel
        telemetry = kyo_otel.configure(environment="test")
        logging.getLogger("raw").warning("sent to +886912345678")
        print(json.dumps({"scrubber": telemetry.scrubber is not None,
                          "bodies": [r.log_record.body for r in telemetry.memory.logs.get_finished_logs()]}))
        """,
        env={"KYO_OTEL_SCRUBBING": "false"},
    ))
    assert report == {"scrubber": False, "bodies": ["sent to +886912345678"]}


OTLP_APP = """
    import logging, os
    import flask, redis
    import kyo_otel

    app = flask.Flask("otlp_scrub")
    client_redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/otp/send")
    def send():
        phone = flask.request.json["phone"]
        client_redis.set(f"otp:{phone}", "739184", ex=300)
        logging.getLogger("otlp_scrub").warning("code 739184 sent to %s", phone,
                                                 extra={"email": "alice.chen@example.com", "otp_code": "739184"})
        kyo_otel.otp.sent(flask.request.headers.get("X-Tenant-Id"))
        kyo_otel.audit("otp.send", "otp", user_id=phone, tenant_id=None, result="success")
        return {"sent": True}

    kyo_otel.configure(environment="production", service_name="otlp-scrub", otlp_endpoint=os.environ["ENDPOINT"],
                       app=app, redis=client_redis)
    response = app.test_client().post("/otp/send?phone=%2B886912345678&code=739184", json={"phone": "+886912345678"},
                                      headers={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0", "X-Tenant-Id": "0912-345-678"})
    assert response.status_code == 200
    assert kyo_otel.shutdown(), "flushed within the bound"
"""


def test_nothing_sensitive_reaches_the_collector_over_otlp(redis_server):
    from google.protobuf import text_format

    from tests.support.subprocess_python import exported_over_otlp

    receiver = exported_over_otlp(OTLP_APP, env={
        "REDIS_URL": redis_server.url,
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization",
    })
    assert all(receiver.requests(signal) for signal in ("traces", "logs", "metrics"))
    text = "\n".join(text_format.MessageToString(r, as_utf8=True) for r in receiver.requests())
    for raw in ("+886912345678", "886912345678", "0912-345-678", "0912345678", "739184", "alice.chen",
                "eyJhbGciOiJIUzI1NiJ9"):
        assert not receiver.contains(raw) and raw not in text, raw
    for masked in ("+886*******78", "0912****78", "[scrubbed:code]", "[scrubbed:otp_code]", "[scrubbed:authorization]",
                   "a***@example.com", "SET ? ? ? ?", "aws.xray.trace_id"):
        assert masked in text, masked


# --- leaks found by the leak hunt ----------------------------------------------------------


def test_a_phone_key_masks_its_value_on_every_request_not_only_the_first(kyo_telemetry):
    # The phone key rule masks what does not look typed ("912345678" under "phone"). It asked
    # whether the text scrubber had returned the very same object; the text scrubber's memo
    # returns the object it saw first, so from the second request with the same number on,
    # the raw number went out.
    app = flask.Flask("phone_key_every_request")
    log = logging.getLogger("phone_key_every_request")

    @app.post("/lookup")
    def lookup():
        phone = flask.request.get_json()["phone"]  # a new str object on every request
        log.info("lookup", extra={"user.phone": phone})
        return {"found": False}

    kyo_otel.instrument_app(app, kyo_telemetry.handle)
    client = app.test_client()
    for _ in range(3):
        assert client.post("/lookup", json={"phone": "987654321"}).status_code == 200

    phones = [record.attributes["user.phone"] for record in kyo_telemetry.logs(message="lookup")]
    assert phones == ["9876***21"] * 3


def test_a_rate_limited_resource_is_scrubbed_like_the_tenant_id(kyo_telemetry, redis_client):
    # Metric attributes get no scrubbing exporter: the tenant id went through the scrubber in its
    # guard, the rate-limited resource (free text from the caller) went out as it was given.
    app = flask.Flask("rate_limited_resource")

    @app.post("/otp/send")
    def send():
        phone = flask.request.get_json()["phone"]
        if redis_client.incr(f"rate:{phone}") > 1:
            kyo_otel.rate_limited(flask.request.headers["X-Tenant-Id"], f"otp.send:{phone}")
            return {"error": "rate_limited"}, 429
        return {"sent": True}

    kyo_otel.instrument_app(app, kyo_telemetry.handle, redis=redis_client)
    client = app.test_client()
    statuses = [client.post("/otp/send", json={"phone": PHONE}, headers={"X-Tenant-Id": "acme"}).status_code
                for _ in range(2)]
    assert statuses == [200, 429]

    points = kyo_telemetry.metric_points("kyo.rate_limit.hits")
    assert [point.attributes["kyo.rate_limit.resource"] for point in points] == ["otp.send:+886*******78"]


def _received(code: str, protocol: str, **env: str):
    """The OTLP receiver (``protocol``) after ``code`` ran in a fresh interpreter, exporting to it."""
    from kyo_otel.receiver import OtlpReceiver
    from tests.support.subprocess_python import run_python

    with OtlpReceiver(protocol=protocol) as receiver:
        done = run_python(code, env={**env, "ENDPOINT": receiver.endpoint, "KYO_OTEL_OTLP_PROTOCOL": protocol})
        assert done.returncode == 0, done.stderr
    return receiver


RESOURCE_APP = """
    import logging, os
    import kyo_otel

    kyo_otel.configure(environment="production", service_name="resource-scrub", otlp_endpoint=os.environ["ENDPOINT"])
    logging.getLogger("resource_scrub").warning("started")
    kyo_otel.otp.sent("acme")
    assert kyo_otel.shutdown(), "flushed within the bound"
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_resource_attributes_from_the_environment_are_scrubbed_on_every_signal(protocol):
    # OTEL_RESOURCE_ATTRIBUTES is free text an operator writes; the resource went out unscrubbed
    # with every span, log record and metric, over both OTLP protocols.
    receiver = _received(RESOURCE_APP, protocol,
                         OTEL_RESOURCE_ATTRIBUTES=f"service.owner={EMAIL},deploy.api_token={API_KEY},team=otp")
    assert receiver.logs("started") and receiver.metric_points("kyo.otp.sent")
    for raw in (EMAIL, "alice.chen", API_KEY):
        assert not receiver.contains(raw), raw
    resource = receiver.logs("started")[0].resource
    assert (resource["service.owner"], resource["deploy.api_token"], resource["team"]) == (
        "a***@example.com", "[scrubbed:token]", "otp")


def test_camel_case_codes_config_keys_and_url_passwords_in_log_text_are_scrubbed(kyo_telemetry, redis_client, redis_server):
    # Free text knew otp_code, smsCode and api_key, but not a mobile client's verifyCode, Flask's
    # SECRET_KEY, or the password in a connection URL: all three went out in log bodies.
    app = flask.Flask("camel_case_client")
    app.config["SECRET_KEY"] = "f3a9c1e7b2d4-flask-signing"
    store_url = redis_server.url.replace("redis://", "redis://default:p4ssw0rd-9c1e@")
    log = logging.getLogger("camel_case_client")
    log.info("otp store at %s, config SECRET_KEY=%s", store_url, app.config["SECRET_KEY"])

    @app.post("/otp/verify")
    def verify():
        body = flask.request.get_json()
        stored = redis_client.get(f"otp:{body['phoneNumber']}")
        if stored is None or stored.decode() != body["verifyCode"]:
            log.warning("verification failed: %s", flask.request.get_data(as_text=True))
            return {"verified": False}, 401
        return {"verified": True}

    kyo_otel.instrument_app(app, kyo_telemetry.handle, redis=redis_client)
    redis_client.set(f"otp:{PHONE}", CODE)
    response = app.test_client().post("/otp/verify", json={"phoneNumber": PHONE, "verifyCode": "482913"})
    assert response.status_code == 401

    bodies = [record.message for record in kyo_telemetry.logs(logger="camel_case_client")]
    assert bodies == [
        f"otp store at {redis_server.url.replace('redis://', 'redis://default:[scrubbed:password]@')}, "
        "config SECRET_KEY=[scrubbed:secret_key]",
        'verification failed: {"phoneNumber": "+886*******78", "verifyCode": "[scrubbed:verifycode]"}',
    ]


def _exported_query(kyo_telemetry, query: str) -> str:
    """The ``url.query`` the server span of ``GET /otp/status?<query>`` exports."""
    app = flask.Flask("query_scrub")

    @app.get("/otp/status")
    def status():
        return {"pending": False}

    kyo_otel.instrument_app(app, kyo_telemetry.handle)
    assert app.test_client().get("/otp/status", query_string=query).status_code == 200
    return kyo_telemetry.span("GET /otp/status").attributes["url.query"]


def test_a_phone_query_parameter_is_masked_whatever_its_value_looks_like(kyo_telemetry):
    # The phone and email key rules held for attributes and bodies, not for the keys of a query:
    # ?phone=886912345678 (a client that drops the "+") went out in url.query.
    query = _exported_query(kyo_telemetry, "phone=886912345678&email=alice.chen%40example.com&lang=en")
    assert query == "phone=8869******78&email=a***@example.com&lang=en"


TRACE_STATE_APP = """
    import os
    import flask
    import kyo_otel

    app = flask.Flask("trace_state_scrub")

    @app.get("/ping")
    def ping():
        return {"ok": True}

    kyo_otel.configure(environment="production", service_name="trace-state-scrub", otlp_endpoint=os.environ["ENDPOINT"], app=app)
    response = app.test_client().get("/ping", headers={
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=t61rcWkgMzE,phone=+886912345678,session=s3cr3t,mail=alice.chen@example.com,0912345678@sms=1",
    })
    assert response.status_code == 200
    assert kyo_otel.shutdown(), "flushed within the bound"
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_client_trace_state_is_scrubbed_before_it_is_exported(protocol):
    # The tracestate header is the client's text, and the server span carries it out in its
    # trace_state field: it went out raw, on kyo's wire encoder (grpc) and through the
    # scrubbing exporter (http) alike.
    receiver = _received(TRACE_STATE_APP, protocol)
    [server] = receiver.spans("GET /ping")
    assert server.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server.trace_state == (
        "vendor=t61rcWkgMzE,phone=+886*******78,session=[scrubbed:session],mail=a***@example.com,0912****78@sms=1"
    )
    for raw in ("886912345678", "s3cr3t", "alice.chen", "0912345678"):
        assert not receiver.contains(raw), raw


def test_a_trace_state_key_is_scrubbed_as_text_and_dropped_when_its_mask_is_no_key():
    # A tenant@vendor key may be all digits before the "@": a phone number went out as a key.
    from opentelemetry.trace import TraceState

    state = TraceState([("0912345678@sms", "1"), ("tel-0912345678", "2"), ("rojo", "00f067aa0ba902b7")])
    assert list(scrubber.scrub_trace_state(state).items()) == [
        ("0912****78@sms", "1"), ("tel-0912****78", "2"), ("rojo", "00f067aa0ba902b7")]
    # A key an extra pattern masks to "[scrubbed:ticket]" is no valid key: its pair goes.
    assert list(Scrubber(extra_patterns={"ticket": r"tk-[0-9]{6}"}).scrub_trace_state(
        TraceState([("tk-123456", "x"), ("rojo", "1")])).items()) == [("rojo", "1")]


def test_a_trace_state_with_nothing_to_scrub_is_kept_as_it_is():
    from opentelemetry.trace import TraceState

    state = TraceState([("vendor", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
    assert scrubber.scrub_trace_state(state) is state


# --- keys, event names and the application's own metrics ------------------------------------

DATA_IN_NAMES_APP = """
    import logging, os
    from opentelemetry import metrics, trace
    import kyo_otel

    kyo_otel.configure(environment="production", service_name="names-scrub", otlp_endpoint=os.environ["ENDPOINT"])
    phone, other = "+886912345678", "+886913345678"  # the same mask: +886*******78
    with trace.get_tracer("names").start_as_current_span("lookup") as span:
        span.set_attribute(f"sms.sent.{phone}", True)
        span.set_attribute(f"sms.sent.{other}", False)
        logging.getLogger("names").warning("lookup done", extra={"alice.chen@example.com": 1, "event.name": f"otp.sent.{phone}"})
    sent = metrics.get_meter("names").create_counter("app.sms.sent")
    sent.add(1, {"user.phone": phone, "note": "for alice.chen@example.com"})
    sent.add(2, {"user.phone": "912345678", "note": "none"})
    assert kyo_otel.shutdown(), "flushed within the bound"
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_attribute_keys_event_names_and_the_applications_metrics_are_scrubbed(protocol):
    # Three ways data left raw: an attribute key built from data (scrubbed as keys of a mapping
    # body were, but not as the attributes' own keys), a log record's event name, and the
    # attributes of a metric the application records with the OpenTelemetry API on kyo's meter
    # provider (metrics had no scrubbing at all outside kyo's own instruments).
    receiver = _received(DATA_IN_NAMES_APP, protocol)
    for raw in ("886912345678", "886913345678", "912345678", "alice.chen"):
        assert not receiver.contains(raw), raw
    [span] = receiver.spans("lookup")
    # Two keys that mask alike both stay: nothing is lost.
    assert {k: v for k, v in span.attributes.items() if k.startswith("sms.")} == {
        "sms.sent.+886*******78": True, "sms.sent.+886*******78#2": False}
    [record] = receiver.logs("lookup done")
    assert record.attributes["a***@example.com"] == 1
    assert record.event_name == "otp.sent.+886*******78"
    points = {p.attributes["user.phone"]: (p.value, p.attributes["note"]) for p in receiver.metric_points("app.sms.sent")}
    assert points == {"+886*******78": (1, "for a***@example.com"), "9123***78": (2, "none")}


def test_the_memory_profile_sees_the_applications_metrics_scrubbed_too(kyo_telemetry):
    from opentelemetry import metrics

    counter = metrics.get_meter("memory-names").create_counter("app.lookups")
    counter.add(1, {"user.phone": "+886912345678", "kind": "sms"})
    [point] = kyo_telemetry.metric_points("app.lookups", kind="sms")
    assert (point.attributes["user.phone"], point.value) == ("+886*******78", 1)


def test_keys_that_need_nothing_are_kept_and_remembered():
    attributes = {"http.route": "/otp/send", "db.statement": "SET ? ?", "user_agent.original": "curl/8.5"}
    assert scrubber.scrub_attributes(attributes) is None
    assert set(attributes) <= scrubber.plain_keys  # the next check is one subset test
    assert not scrubber.keys_change(attributes)


def test_a_phone_number_whose_spaces_alone_are_encoded_is_masked_in_the_query(kyo_telemetry):
    # fetch("/otp/status?to=" + phone) with "+886 912 345 678": the browser encodes the spaces and
    # leaves the "+", and decoding the "+" as a space left " 886 912 345 678", a bare digit run.
    assert _exported_query(kyo_telemetry, "to=+886%20912%20345%20678&q=a+b%20c") == "to=+886*******78&q=a+b%20c"


def test_bracketed_form_keys_are_classified_by_their_last_name():
    # Rails and PHP forms name fields user[password], user[phone]: the brackets hid the key's last
    # segment, and the password went out raw in url.query and in a logged form mapping.
    assert scrubber.scrub_value("url.query", "user[password]=hunter2&user[phone]=886912345678&user[name]=al") == (
        "user[password]=[scrubbed:password]&user[phone]=8869******78&user[name]=al"
    )
    assert scrubber.scrub_value(None, {"user[password]": "hunter2", "user[otp_code]": 482913}) == {
        "user[password]": "[scrubbed:password]", "user[otp_code]": "[scrubbed:otp_code]"}


def test_a_metric_point_that_cannot_be_scrubbed_is_dropped_and_the_reader_keeps_collecting(kyo_telemetry):
    # The reader scrubs at collection, inside collect(): a failing scrub raised out of it, and
    # the periodic reader's thread, which only catches timeouts, ended with it (no metrics for the
    # rest of the process); get_metrics_data() and force_flush() raised into the application.
    import io

    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.resources import Resource

    from kyo_otel import metrics
    from kyo_otel.config import resolve_settings
    from kyo_otel.exporters import DELTA_TEMPORALITY

    def callback(key, value):
        if value == "unscrubbable":
            raise RuntimeError("a buggy callback")
        return value

    out = io.StringIO()
    settings = resolve_settings(env={"KYO_OTEL_PROFILE": "console", "OTEL_METRIC_EXPORT_INTERVAL": "600000"})
    reader = metrics.periodic_reader(
        settings, ConsoleMetricExporter(out=out, preferred_temporality=DELTA_TEMPORALITY), Scrubber(callback=callback)
    )
    provider = metrics.build_meter_provider(Resource.create({"service.name": "metric-scrub-failure"}), reader)
    lookups = provider.get_meter("failing").create_counter("app.lookups")
    lookups.add(1, {"user.phone": "+886912345678", "note": "unscrubbable"})
    lookups.add(2, {"user.phone": "+886913345678", "note": "fine"})
    reader.collect()
    lookups.add(3, {"note": "later"})
    reader.collect()
    provider.shutdown()

    exported = out.getvalue()
    assert '"note": "fine"' in exported and '"note": "later"' in exported
    assert "unscrubbable" not in exported and "886912345678" not in exported and "886913345678" not in exported
    assert kyo_telemetry.metric("kyo.telemetry.dropped", kyo_signal="metrics").value == 1


def test_a_key_of_a_str_subclass_is_scrubbed_like_a_str():
    # keys_change looked only at keys whose type is exactly str: a subclass key (markupsafe's
    # Markup, a StrEnum-style class) holding a phone number was remembered as plain, and kept.
    from markupsafe import Markup

    assert scrubber.scrub_attributes({Markup("sms.sent.+886912345678"): True}) == {"sms.sent.+886*******78": True}


def test_a_set_in_a_mapping_body_is_scrubbed_element_by_element():
    # A set (or frozenset) was returned as it was: the console exporter prints it with str().
    assert scrubber.scrub_value(None, {"recipients": {"+886912345678"}, "done": frozenset({"ops@example.com"})}) == {
        "recipients": ["+886*******78"], "done": ["o***@example.com"]}


# --- codes and secrets in URL paths ---------------------------------------------------------
# The real ADOT collector showed a one-time code reaching X-Ray's http.request.url raw: a 404 on
# /users/<phone>/codes/<code> had its phone number masked, not its code; so did any matched route
# with a <code> or <token> in its path. The raw path is also in werkzeug's access line.


@pytest.mark.parametrize(
    ("path", "scrubbed"),
    [
        ("/users/+886912345678/codes/739184", "/users/+886*******78/codes/[scrubbed:code]"),
        ("/verify/739184", "/verify/[scrubbed:code]"),
        ("/api/otp/482913/confirm", "/api/otp/[scrubbed:code]/confirm"),
        ("/reset-password/Zx8aBq2", "/reset-password/[scrubbed:password]"),
        ("/auth/magicLink/kQzvBwmx", "/auth/magicLink/[scrubbed:token]"),
        ("/emailVerifications/ab12cd", "/emailVerifications/[scrubbed:code]"),
        ("/v1/tokens/tk_9f8e7d6c?expand=1", "/v1/tokens/[scrubbed:token]?expand=1"),
        ("/secrets/%2Fs3cr3t", "/secrets/[scrubbed:secret]"),
        ('"GET /OTP/739184 HTTP/1.1" 404 -', '"GET /OTP/[scrubbed:code] HTTP/1.1" 404 -'),
        ("https://otp.example.com/verify/739184.", "https://otp.example.com/verify/[scrubbed:code]."),
        # A code-like segment with a capital after another one: the value is the segment after it
        # (was: the camelCase word masked as if it were the value, the code after it kept).
        ("/otp/verifyCode/482913", "/otp/verifyCode/[scrubbed:code]"),
        ("/reset/magicLink/Zx8aBq2", "/reset/magicLink/[scrubbed:token]"),
        ("/verify/Codes/482913?x=1", "/verify/Codes/[scrubbed:code]?x=1"),
        ("/api/tokens/resetToken/Ab12cd", "/api/tokens/resetToken/[scrubbed:token]"),
        # Look-alikes stay: a listing, a route named for the action, words, ids under other names.
        ("/codes", "/codes"),
        ("/codes/new", "/codes/new"),
        ("/otp/verify", "/otp/verify"),
        ("/verify", "/verify"),
        ("/tokens/me", "/tokens/me"),
        ("/v1/status", "/v1/status"),
        ("/barcode/4006381333931", "/barcode/4006381333931"),
        ("/tokenizer/v2", "/tokenizer/v2"),
        ("GET /verify/<code>", "GET /verify/<code>"),
        ("https://otp.example.com/Ab12", "https://otp.example.com/Ab12"),
    ],
)
def test_a_code_or_token_after_a_code_like_path_segment_is_masked(path, scrubbed):
    assert scrubber.scrub_text(path) == scrubbed
    assert scrubber.scrub_value("url.full", path) == scrubbed


def test_every_code_like_path_word_is_a_word_of_the_path_rule():
    from kyo_otel.scrub import PATH_SECRET_WORDS

    for label, words in PATH_SECRET_WORDS.items():
        for word in words:
            for segment in (word, word + "s", word.upper(), "email-" + word, "email" + word.capitalize()):
                assert scrubber.scrub_text(f"/{segment}/Ab12") == f"/{segment}/[scrubbed:{label}]", segment


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8), max_size=3),
    word=st.sampled_from(["code", "codes", "otp", "token", "tokens", "verify", "secret", "password", "reset", "magic",
                          "reset-password", "magicLink", "emailVerification", "OTP", "sms_code"]),
    value=st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=1, max_size=40),
    digit=st.sampled_from("0123456789"),
    after=st.sampled_from(["", "/confirm", "?lang=en", " HTTP/1.1", '" 404 -', "#top"]),
)
def test_any_value_after_a_code_like_segment_is_masked_in_any_path(before, word, value, digit, after):
    secret = value[: len(value) // 2] + digit + value[len(value) // 2 :]  # a digit somewhere: a value
    prefix = "".join("/" + segment for segment in before)
    scrubbed = scrubber.scrub_text(f"GET {prefix}/{word}/{secret}{after}")
    kept = secret.rstrip(".")  # trailing dots are prose's: "... /verify/482913."
    assert kept not in scrubbed.split("/")
    assert scrubbed.startswith(f"GET {prefix}/{word}/[scrubbed:") and scrubbed.endswith(after)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12), min_size=1, max_size=6))
def test_a_path_of_words_is_never_changed(segments):
    # /otp/verify, /codes/new, /tokens/me: words after a code-like segment are routes, not values.
    path = "/" + "/".join(segments)
    assert scrubber.scrub_text(path) == path
    assert scrubber.scrub_text(f"GET {path}/verify/code/tokens HTTP/1.1") == f"GET {path}/verify/code/tokens HTTP/1.1"


def test_a_routes_secret_phone_and_email_variables_are_masked_wherever_its_raw_path_appears():
    own = Scrubber()
    paths = ["/confirm/qwzxkvbn", '"GET /users/886912345678/links/kqzvbwmx HTTP/1.1" 200',
             "http://localhost/confirm/zxqw?x=1", "/files/a/reset/b", "/orders/12345678"]
    assert [own.scrub_text(p) for p in paths] == paths  # nothing says these are secrets yet...
    for route in ("/confirm/<code>", "/users/<phone>/links/<magic>", "/files/<path:reset_token>",
                  "/orders/<int:order_id>"):
        own.learn_route(route)
    # ... the routes do (and texts remembered as plain are scrubbed again).
    assert [own.scrub_text(p) for p in paths] == [
        "/confirm/[scrubbed:code]", '"GET /users/8869******78/links/[scrubbed:token] HTTP/1.1" 200',
        "http://localhost/confirm/[scrubbed:code]?x=1", "/files/[scrubbed:token]", "/orders/12345678"]
    # A path the route does not match in full is left to the other rules.
    assert own.scrub_text("/confirm/qwzxkvbn/extra") == "/confirm/qwzxkvbn/extra"


def test_a_route_that_starts_with_a_variable_masks_whole_paths_only():
    own = Scrubber()
    own.learn_route("/<token>")  # a link shortener's, or a magic link's
    own.learn_route("/<otp>/for/<phone>")
    assert [own.scrub_text(t) for t in (
        '"GET /qwzxkvbn HTTP/1.1" 302', "http://localhost:8000/qwzxkvbn?utm=1", "/qwzxkvbn", "HTTP/1.1",
        "v2/qwzxkvbn", "/abcdef/for/886912345678",
    )] == [
        '"GET /[scrubbed:token] HTTP/1.1" 302', "http://localhost:8000/[scrubbed:token]?utm=1", "/[scrubbed:token]",
        "HTTP/1.1", "v2/qwzxkvbn", "/[scrubbed:otp]/for/8869******78",
    ]


def test_the_otlp_encoder_forgets_what_it_encoded_before_a_route_was_learned():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kyo_otel.otlp_wire import SpanEncoder

    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    provider.get_tracer("paths").start_span("GET", attributes={"url.path": "/confirm/qwzxkvbn"}).end()
    [span] = finished.get_finished_spans()
    own = Scrubber()
    encoder = SpanEncoder(own)
    assert b"/confirm/qwzxkvbn" in encoder.encode([span])
    own.learn_route("/confirm/<code>")  # a route added after the app was instrumented
    assert b"/confirm/qwzxkvbn" not in encoder.encode([span])
    assert b"/confirm/[scrubbed:code]" in encoder.encode([span])


PATHS_APP = """
    import json, logging, os, threading, urllib.error, urllib.request
    import flask
    from opentelemetry import metrics
    from werkzeug.serving import make_server
    import kyo_otel

    app = flask.Flask("path_scrub")

    @app.get("/verify/<code>")
    def verify(code):
        return {"verified": False}, 400

    @app.get("/u/<token>")
    def magic_link(token):
        return {"signed_in": False}, 401

    @app.get("/users/<phone>")
    def user(phone):
        return {"user": None}

    if os.environ.get("ENDPOINT"):
        kyo_otel.configure(environment="production", service_name="path-scrub", otlp_endpoint=os.environ["ENDPOINT"],
                           instrumentation=os.environ["INSTRUMENTATION"], app=app)
    else:
        kyo_otel.configure(environment="development", console_format="json", service_name="path-scrub",
                           instrumentation=os.environ["INSTRUMENTATION"], app=app)

    @app.get("/late/<otp>")  # added after the app was instrumented
    def late(otp):
        return {"verified": False}, 400

    by_path = metrics.get_meter("path_scrub").create_counter("app.requests.by_path")

    @app.after_request
    def count(response):
        by_path.add(1, {"url.path": flask.request.path})
        return response

    server = make_server("127.0.0.1", 0, app)  # werkzeug's server: its access line has the raw path
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    statuses = []
    for path in ("/verify/739184", "/u/kqzvbwmx", "/users/886912345678", "/late/qwzxkvbn",
                 "/users/+886912345678/codes/739184"):
        try:
            statuses.append(opener.open(f"http://127.0.0.1:{server.port}{path}").status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    server.shutdown()
    assert statuses == [400, 401, 200, 400, 404], statuses
    assert kyo_otel.shutdown(), "flushed within the bound"
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PATH_SECRETS = ("739184", "kqzvbwmx", "886912345678", "qwzxkvbn")
SCRUBBED_PATHS = {"/verify/[scrubbed:code]", "/u/[scrubbed:token]", "/users/8869******78", "/late/[scrubbed:otp]",
                  "/users/+886*******78/codes/[scrubbed:code]"}


@pytest.mark.parametrize("instrumentation", ["kyo", "contrib"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_codes_and_tokens_in_url_paths_reach_no_signal_over_otlp(protocol, instrumentation):
    receiver = _received(PATHS_APP, protocol, INSTRUMENTATION=instrumentation)
    for raw in PATH_SECRETS:
        assert not receiver.contains(raw), raw
    servers = [span for span in receiver.spans() if span.kind == 2]  # SERVER
    assert {span.attributes["url.path"] for span in servers} == SCRUBBED_PATHS
    assert sorted(span.name for span in servers) == sorted(
        ["GET /verify/<code>", "GET /u/<token>", "GET /users/<phone>", "GET /late/<otp>", "GET"])
    # werkzeug's access lines (coloured by status): '127.0.0.1 - - [...] "GET /verify/... HTTP/1.1" 400 -'
    access = {_ANSI.sub("", str(record.body)).split('"')[1] for record in receiver.logs(" HTTP/1.1")}
    assert access == {f"GET {path} HTTP/1.1" for path in SCRUBBED_PATHS}
    assert {p.attributes["url.path"] for p in receiver.metric_points("app.requests.by_path")} == SCRUBBED_PATHS


@pytest.mark.parametrize("instrumentation", ["kyo", "contrib"])
def test_codes_and_tokens_in_url_paths_stay_off_the_console(instrumentation):
    from tests.support.subprocess_python import run_python

    done = run_python(PATHS_APP, env={"INSTRUMENTATION": instrumentation})
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    for raw in PATH_SECRETS:
        assert raw not in printed, raw
    for path in SCRUBBED_PATHS:
        assert f"GET {path} HTTP/1.1" in _ANSI.sub("", printed), path  # the access lines
        assert f"url.path={path} " in printed, path  # the metrics table (spans show their route)
