"""The sample OTP service through its HTTP interface, against the real Redis server the suite runs.

Telemetry is the memory profile of this process (``kyo_otel.configure(environment="test")``);
each test reads what its own requests recorded.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from werkzeug.serving import make_server

import kyo_otel
from sample_app import OutboxSender, connect_redis, create_app
from sample_app.sms import FailingSender

pytestmark = pytest.mark.redis

TENANT = "acme"
PHONE = "+886912345678"
SECRET = "a-test-secret-of-enough-length"


@pytest.fixture
def telemetry(kyo_telemetry):
    """The memory profile of this process (kyo_otel's pytest fixture), emptied for each test."""
    return kyo_telemetry


def assert_never_contains(telemetry, *secrets: str) -> None:
    """No span (name, attribute, event) or log record (body, attribute) carries any of ``secrets``."""
    texts = []
    for span in telemetry.spans():
        texts += [span.name, span.status.description or "", *map(str, (span.attributes or {}).values())]
        for event in span.events:
            texts += [event.name, *map(str, (event.attributes or {}).values())]
    for log in telemetry.logs():
        texts += [log.message, *map(str, log.attributes.values())]
    leaks = [(secret, text) for text in texts for secret in secrets if secret in text]
    assert not leaks, f"telemetry carries a secret: {leaks[:3]}"


@pytest.fixture
def outbox():
    return OutboxSender()


@pytest.fixture
def make_app(redis_client, outbox, telemetry):
    def make(client=None, **settings):
        return create_app(client or redis_client, **{"secret": SECRET, "sender": outbox, **settings})

    return make


@pytest.fixture
def http(make_app):
    return make_app().test_client()


def send(http, phone=PHONE, tenant=TENANT):
    return http.post("/otp/send", json={"phone": phone}, headers={"X-Tenant-Id": tenant})


def verify(http, code, phone=PHONE, tenant=TENANT):
    return http.post("/otp/verify", json={"phone": phone, "code": code}, headers={"X-Tenant-Id": tenant})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- the happy path ------------------------------------------------------------------------


def test_send_then_verify(http, outbox, telemetry, redis_client):
    sent = send(http)
    assert sent.status_code == 200
    assert sent.get_json() == {"status": "sent", "expires_in": 300}
    assert sent.headers["X-RateLimit-Limit"] == "5" and sent.headers["X-RateLimit-Remaining"] == "4"
    code = outbox.latest(TENANT, PHONE)
    assert code is not None and len(code) == 6 and code.isdigit()

    verified = verify(http, code)
    assert verified.status_code == 200 and verified.get_json() == {"verified": True}

    assert telemetry.metric("kyo.otp.sent", kyo_tenant_id=TENANT).value == 1
    assert telemetry.metric("kyo.otp.verifications", kyo_tenant_id=TENANT, kyo_otp_result="success").value == 1
    assert telemetry.metric("http.server.request.duration", http_route="/otp/verify", http_response_status_code=200).count == 1
    routes = {span.attributes.get("http.route") for span in telemetry.spans() if span.kind.name == "SERVER"}
    assert routes == {"/otp/send", "/otp/verify"}
    assert any(span.kind.name == "CLIENT" and "HSET" in span.name for span in telemetry.spans())  # a span per Redis call
    actions = [(r.message, r.attributes["otp.action"], r.attributes["otp.phone"]) for r in telemetry.logs(logger="sample_app.otp")]
    assert actions == [("otp sent", "send", "+886*******78"), ("otp verified", "verify", "+886*******78")]
    (audit,) = telemetry.logs(logger="kyo_otel.audit")
    assert audit.attributes["kyo.log.type"] == "audit"  # what the collector routes to the audit log group
    assert (audit.attributes["kyo.audit.action"], audit.attributes["kyo.audit.result"]) == ("otp.verify", "success")
    assert audit.attributes["kyo.tenant.id"] == TENANT and audit.attributes["user.id"].startswith("phone:")

    # Nothing secret leaves the process, nor sits in Redis in clear.
    assert_never_contains(telemetry, PHONE, PHONE[1:], PHONE[-8:], code)
    stored = b" ".join(redis_client.keys("*")) + b" ".join(str(redis_client.hgetall(k)).encode() for k in redis_client.keys("otp:code:*"))
    assert PHONE[-8:].encode() not in stored


def test_a_code_works_once(http, outbox, telemetry):
    send(http)
    code = outbox.latest(TENANT, PHONE)
    assert verify(http, code).status_code == 200
    again = verify(http, code)
    assert again.status_code == 410 and again.get_json()["error"] == "expired"
    assert telemetry.metric("kyo.otp.verifications", kyo_otp_failure_reason="expired").value == 1


def test_a_new_code_replaces_the_previous_one(http, outbox):
    send(http)
    first = outbox.latest(TENANT, PHONE)
    send(http)
    second = outbox.latest(TENANT, PHONE)
    if first != second:  # one chance in a million that they are equal
        assert verify(http, first).status_code == 401
    assert verify(http, second).status_code == 200


def test_codes_are_per_tenant(http, outbox):
    send(http, tenant="acme")
    code = outbox.latest("acme", PHONE)
    assert verify(http, code, tenant="globex").status_code == 410
    assert verify(http, code, tenant="acme").status_code == 200


# --- attempts, expiry, rate limit ----------------------------------------------------------


def test_five_wrong_codes_lock_the_code(http, outbox, telemetry):
    send(http)
    code = outbox.latest(TENANT, PHONE)
    remaining = []
    for _ in range(5):
        response = verify(http, wrong(code))
        assert response.status_code == 401 and response.get_json()["error"] == "wrong_code"
        remaining.append(response.get_json()["attempts_remaining"])
    assert remaining == [4, 3, 2, 1, 0]
    locked = verify(http, code)  # even the right code, now
    assert locked.status_code == 403 and locked.get_json()["error"] == "too_many_attempts"
    assert telemetry.metric("kyo.otp.verifications", kyo_tenant_id=TENANT, kyo_otp_failure_reason="wrong_code").value == 5
    assert telemetry.metric("kyo.otp.verifications", kyo_otp_failure_reason="too_many_attempts").value == 1
    audits = [r.attributes["kyo.otp.failure_reason"] for r in telemetry.logs(logger="kyo_otel.audit")]
    assert audits == ["wrong_code"] * 5 + ["too_many_attempts"]
    assert_never_contains(telemetry, code, wrong(code), PHONE[1:])


def test_concurrent_verifications_of_one_code_succeed_once(make_app, outbox):
    app = make_app()
    send(app.test_client())
    code = outbox.latest(TENANT, PHONE)
    results: list[int] = []

    def attempt():
        results.append(verify(app.test_client(), code).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [200] + [410] * 5


def test_a_code_expires_after_its_ttl(make_app, outbox, telemetry):
    http = make_app(ttl_seconds=1).test_client()
    assert send(http).get_json()["expires_in"] == 1
    code = outbox.latest(TENANT, PHONE)
    time.sleep(1.2)
    expired = verify(http, code)
    assert expired.status_code == 410 and expired.get_json()["error"] == "expired"
    assert telemetry.metric("kyo.otp.verifications", kyo_tenant_id=TENANT, kyo_otp_failure_reason="expired").value == 1


def test_sends_are_rate_limited_per_tenant_and_phone(make_app, telemetry):
    http = make_app(rate_limit=3, rate_window_seconds=60).test_client()
    before = time.time()
    remaining = [send(http).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = send(http)
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "rate_limited"
    assert limited.headers["X-RateLimit-Limit"] == "3" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert before < int(limited.headers["X-RateLimit-Reset"]) <= time.time() + 61
    assert send(http, phone="+886900000001").status_code == 200  # another phone
    assert send(http, tenant="globex").status_code == 200  # the same phone, another tenant
    assert telemetry.metric("kyo.rate_limit.hits", kyo_tenant_id=TENANT, kyo_rate_limit_resource="otp.send").value == 1
    assert telemetry.metric("kyo.otp.sent").value == 5
    (warning,) = [r for r in telemetry.logs(logger="sample_app.otp") if r.attributes["otp.outcome"] == "rate_limited"]
    assert warning.level == "WARN"


def test_the_rate_limit_window_resets(make_app):
    http = make_app(rate_limit=1, rate_window_seconds=1).test_client()
    assert send(http).status_code == 200
    assert send(http).status_code == 429
    time.sleep(1.1)
    assert send(http).status_code == 200


# --- errors are JSON, never a 500 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "error"),
    [
        ("/otp/send", b"{not json", "body", "invalid_json"),
        ("/otp/send", b"", "body", "invalid_json"),
        ("/otp/send", b'["+886912345678"]', "body", "invalid_json"),
        ("/otp/send", b"{}", "phone", "missing_field"),
        ("/otp/send", b'{"phone": null}', "phone", "missing_field"),
        ("/otp/send", b'{"phone": 886912345678}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": ["+886912345678"]}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "0912345678"}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "+0912345678"}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "+1234"}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "+8869123456789012"}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "+88691234567a"}', "phone", "invalid_field"),
        ("/otp/send", b'{"phone": "+886 912 345 678"}', "phone", "invalid_field"),
        ("/otp/verify", b'{"phone": "+886912345678"}', "code", "missing_field"),
        ("/otp/verify", b'{"code": "123456"}', "phone", "missing_field"),
        ("/otp/verify", b'{"phone": "+886912345678", "code": 123456}', "code", "invalid_field"),
        ("/otp/verify", b'{"phone": "+886912345678", "code": "12345"}', "code", "invalid_field"),
        ("/otp/verify", b'{"phone": "+886912345678", "code": "1234567"}', "code", "invalid_field"),
        ("/otp/verify", b'{"phone": "+886912345678", "code": "12a456"}', "code", "invalid_field"),
        ("/otp/verify", b'{"phone": "+886912345678", "code": true}', "code", "invalid_field"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(http, path, body, field, error):
    response = http.post(path, data=body, headers={"X-Tenant-Id": TENANT, "Content-Type": "application/json"})
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["field"] == field and payload["error"] == error and payload["message"]


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing_tenant"),
        ({"X-Tenant-Id": ""}, "missing_tenant"),
        ({"X-Tenant-Id": "bad tenant"}, "invalid_field"),
        ({"X-Tenant-Id": "-acme"}, "invalid_field"),
        ({"X-Tenant-Id": "acme/../x"}, "invalid_field"),
        ({"X-Tenant-Id": "a" * 65}, "invalid_field"),
    ],
)
def test_a_missing_or_invalid_tenant_is_400(http, headers, error, telemetry):
    for path in ("/otp/send", "/otp/verify"):
        response = http.post(path, json={"phone": PHONE, "code": "123456"}, headers=headers)
        assert response.status_code == 400
        assert response.get_json()["field"] == "X-Tenant-Id" and response.get_json()["error"] == error
    assert telemetry.metric("kyo.otp.sent").value == 0


def test_unknown_paths_wrong_methods_and_big_bodies_are_json(http, telemetry):
    missing = http.get("/otp/nothing-here")
    assert missing.status_code == 404 and missing.is_json and missing.get_json()["error"] == "not_found"
    wrong_method = http.get("/otp/send")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["Allow"]
    too_big = http.post("/otp/send", data=b"{" + b" " * 20_000 + b"}", headers={"X-Tenant-Id": TENANT})
    assert too_big.status_code == 413 and too_big.is_json
    # A probed path is no new route in the metrics: the 404 and the 405 share one value.
    assert telemetry.metric("kyo.http.server.errors", error_type="ClientError", http_route="(unmatched)").value == 2


def test_an_sms_gateway_failure_is_502_and_leaves_no_usable_code(make_app, redis_client, telemetry):
    http = make_app(sender=FailingSender()).test_client()
    response = send(http)
    assert response.status_code == 502 and response.get_json()["error"] == "sms_failed"
    assert redis_client.keys("otp:code:*") == []
    assert telemetry.metric("kyo.otp.sent").value == 0
    (failure,) = telemetry.logs(logger="sample_app.otp")
    assert failure.level == "ERROR" and failure.attributes["otp.outcome"] == "sms_failed"


def test_an_unexpected_error_is_a_500_json_without_a_stack_trace(make_app, telemetry):
    app = make_app()

    def broken():
        raise RuntimeError("a bug")

    app.add_url_rule("/broken", "broken", broken)
    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error", "message": "an unexpected error occurred"}
    assert b"Traceback" not in response.data and b"a bug" not in response.data
    (logged,) = telemetry.logs(logger="sample_app.errors")
    assert logged.attributes["exception.type"] == "RuntimeError" and "Traceback" in logged.attributes["exception.stacktrace"]


def test_bad_settings_raise_config_errors_naming_them():
    with pytest.raises(kyo_otel.ConfigError, match="OTP_TTL_SECONDS"):
        create_app(ttl_seconds=0, env={})
    with pytest.raises(kyo_otel.ConfigError, match="OTP_RATE_LIMIT.*'lots'"):
        create_app(env={"OTP_RATE_LIMIT": "lots"})
    with pytest.raises(kyo_otel.ConfigError, match="OTP_SECRET"):
        create_app(env={"OTP_SECRET": "short"})


def test_settings_come_from_the_environment(redis_server, outbox):
    app = create_app(env={"REDIS_URL": redis_server.url, "OTP_TTL_SECONDS": "7", "OTP_RATE_LIMIT": "2"}, sender=outbox)
    http = app.test_client()
    response = send(http)
    assert response.get_json()["expires_in"] == 7 and response.headers["X-RateLimit-Limit"] == "2"
    assert app.extensions["otp"].redis.connection_pool.connection_kwargs["port"] == redis_server.port


# --- Redis outage --------------------------------------------------------------------------


def test_a_redis_outage_is_503_json_and_the_same_app_recovers(redis_server, make_app, outbox, telemetry):
    client = connect_redis(redis_server.url)
    http = make_app(client).test_client()
    assert send(http).status_code == 200
    assert http.get("/health").status_code == 200
    redis_server.stop()
    try:
        started = time.monotonic()
        for response in (send(http), verify(http, "123456"), http.get("/health")):
            assert response.status_code == 503 and response.is_json
        assert time.monotonic() - started < 10  # fails fast: short timeouts, one retry
        assert send(http).get_json()["error"] == "unavailable"
        assert http.get("/health").get_json()["status"] == "degraded"
    finally:
        redis_server.start()
    # The same app, the same client: it reconnects by itself.
    assert http.get("/health").get_json()["status"] == "ok"
    assert send(http).status_code == 200
    assert verify(http, outbox.latest(TENANT, PHONE)).status_code == 200
    assert telemetry.metric("kyo.http.server.errors", error_type="ServerError", http_route="/otp/send").value == 2
    assert any(r.message.startswith("redis unavailable") for r in telemetry.logs(logger="sample_app.errors"))


# --- over a real socket --------------------------------------------------------------------


@pytest.fixture
def served(make_app):
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


def call(url, body=None, headers=None, method="POST"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_over_a_real_socket_with_a_caller_trace(served, outbox, telemetry):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller = {"X-Tenant-Id": TENANT, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    status, headers, body = call(served + "/otp/send", {"phone": PHONE}, caller)
    assert (status, body["status"], headers["X-RateLimit-Remaining"]) == (200, "sent", "4")
    status, _, body = call(served + "/otp/verify", {"phone": PHONE, "code": outbox.latest(TENANT, PHONE)}, caller)
    assert (status, body) == (200, {"verified": True})
    status, _, body = call(served + "/nowhere", {}, caller)
    assert status == 404 and body["error"] == "not_found"
    status, _, body = call(served + "/health", method="GET")
    assert status == 200 and body["status"] == "ok"
    servers = [s for s in telemetry.spans() if s.kind.name == "SERVER"]
    assert len(servers) == 3  # /health is not traced
    assert {f"{s.context.trace_id:032x}" for s in servers} == {trace_id}
    assert {s.parent.span_id for s in servers} == {0x00F067AA0BA902B7}


# --- no input makes a 500 ------------------------------------------------------------------


def test_arbitrary_input_never_gets_a_500(http):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
    bodies = st.dictionaries(st.sampled_from(["phone", "code", "x"]), values, max_size=3).map(json.dumps).map(str.encode) | st.binary(max_size=40)
    tenants = st.none() | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=70)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(path=st.sampled_from(["/otp/send", "/otp/verify", "/health", "/otp", "/"]), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), body=bodies, tenant=tenants)
    def check(path, method, body, tenant):
        headers = {"Content-Type": "application/json"} | ({"X-Tenant-Id": tenant} if tenant is not None else {})
        response = http.open(path, method=method, data=body, headers=headers)
        assert response.status_code < 500 and response.is_json

    check()
