"""Scenario 6: bad input at volume. Hypothesis throws random JSON, wrong types, huge strings,
invalid UTF-8, thousands of tenant ids and random paths at the sample app; the app answers 4xx
JSON (never 500), logs no unhandled exception, keeps its tenant series under the cap, and none
of the scrubbing test's sensitive values reaches the collector.

Hypothesis drives the Flask test client in a fresh process (telemetry is process-wide) that
exports over OTLP to the receiver here, against the real Redis; a final pass sends hand-made
malformed HTTP to the app in gunicorn.
"""

from __future__ import annotations

import re
import socket

import pytest

from kyo_otel import catalog
from tests.support.gunicorn_app import GunicornApp, app_env
from tests.support.subprocess_python import last_json_line, run_python

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CAP = 20  # KYO_OTEL_TENANT_CARDINALITY_CAP for these runs: thousands of tenants overflow it

# The scrubbing test's sensitive values (tests/test_scrubbing.py on the logs-scrub branch).
PHONE = "+886912345678"
CODE = "739184"
EMAIL = "alice.chen@example.com"
BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig-4f8a2c"
API_KEY = "sk_live_51HxYzSecret"
PASSWORD = "correct-horse-battery"
RAW_VALUES = [PHONE, PHONE.replace("+", "%2B"), "886912345678", "0912345678", "0912-345-678", EMAIL,
              "alice.chen%40example.com", BEARER, API_KEY, PASSWORD]
CODE_TOKEN = re.compile(rf"(?<![0-9A-Za-z.]){CODE}(?![0-9A-Za-z])".encode())

GUARDED = [spec.name for spec in catalog.METRICS if spec.tenant_guarded]


def scenario_env(receiver, redis_server) -> dict[str, str]:
    # Exports at shutdown only, and queues that hold everything: every item is checked.
    return app_env(receiver.endpoint, redis_server.url, KYO_OTEL_TENANT_CARDINALITY_CAP=str(CAP),
                   OTEL_METRIC_EXPORT_INTERVAL="60000", KYO_OTEL_SPAN_QUEUE_SIZE="200000",
                   KYO_OTEL_LOG_QUEUE_SIZE="200000", KYO_OTEL_BATCH_DELAY="1000")


def check_received(receiver) -> dict[str, object]:
    """What the collector got from a bad-input run: checked, and returned as figures."""
    errors = [r for r in receiver.logs() if r.severity_number >= 17]
    tenants: dict[tuple[str, str], set[str]] = {}
    for name in GUARDED:
        for point in receiver.metric_points(name):
            key = (name, point.resource.get("service.instance.id", ""))
            tenants.setdefault(key, set()).add(point.attributes.get(catalog.TENANT))
    routes = {p.attributes.get(catalog.ROUTE) for p in receiver.metric_points(catalog.HTTP_SERVER_DURATION.name)}
    leaked = [value for value in RAW_VALUES if receiver.contains(value)] + (["code"] if receiver.contains(CODE_TOKEN) else [])
    figures = {
        "error_log_records": len(errors),
        "max_tenant_values_per_process": max((len(v) for v in tenants.values()), default=0),
        "overflowed": receiver.metric_total(catalog.CARDINALITY_OVERFLOW.name),
        "routes": sorted(r for r in routes if r),
        "dropped": receiver.metric_total(catalog.TELEMETRY_DROPPED.name),
        "received": receiver.counts(),
        "leaked": leaked,
    }
    assert errors == [], [(r.body, r.attributes.get("exception.type")) for r in errors[:5]]
    # per process: the cap, plus the overflow value and the no-tenant value
    assert figures["max_tenant_values_per_process"] <= CAP + 2, tenants
    assert figures["routes"] and set(figures["routes"]) <= {"/otp/send", "/otp/verify", catalog.UNMATCHED_ROUTE}
    assert figures["dropped"] == 0  # everything was exported, so the leak check saw everything
    assert leaked == [], f"sensitive values reached the collector: {leaked}"
    return figures


HYPOTHESIS_RUN = r'''
import json, string, sys
from collections import Counter
from hypothesis import HealthCheck, given, settings, strategies as st

import kyo_otel
from sample_app.app import create_app

PHONE, CODE, EMAIL, BEARER, API_KEY, PASSWORD = %(secrets)r
app = create_app(configure_telemetry=True)
client = app.test_client()
statuses = Counter()
examples = Counter()
run = settings(max_examples=%(examples)d, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))

def check(name, response):
    examples[name] += 1
    statuses[response.status_code] += 1
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.is_json, (response.status_code, response.get_data()[:300])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
    | st.sampled_from([PHONE, CODE, EMAIL, PASSWORD, int(CODE), "+" + "9" * 40]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
fields = st.dictionaries(st.sampled_from(["phone", "code", "email", "password", "otp", "tenant"]), json_values, max_size=4)
huge = st.integers(1_000, 40_000).map(lambda n: "9" * n)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
tenants = st.one_of(header_text, st.sampled_from([EMAIL, PHONE, "acme", "", "x" * 300]))

@run
@given(path=st.sampled_from(["/otp/send", "/otp/verify"]), body=st.one_of(
    json_values.map(json.dumps), fields.map(json.dumps), huge.map(lambda s: json.dumps({"phone": s})),
    st.binary(max_size=200), st.binary(max_size=50).map(lambda b: b'{"phone": "' + b + b'\xff\xfe"}')),
    tenant=tenants)
def bodies(path, body, tenant):
    check("bodies", client.post(path, data=body, headers={"X-Tenant-Id": tenant, "Content-Type": "application/json",
                                                          "Authorization": "Bearer " + BEARER}))

@run
@given(path=st.text(string.ascii_letters + string.digits + "/%%+-._~@?&=", max_size=60),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
def paths(path, method):
    # (a leading "//" would make the test client read a host name: not what a server receives)
    check("paths", client.open("/" + path.lstrip("/") + "/" + PHONE + "?email=" + EMAIL + "&api_key=" + API_KEY, method=method,
                               headers={"X-Tenant-Id": "acme"}))

@run
@given(phone=json_values | huge | st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"), code=json_values | huge)
def wrong_types(phone, code):
    check("wrong_types", client.post("/otp/verify", json={"phone": phone, "code": code}, headers={"X-Tenant-Id": "acme"}))

bodies(); paths(); wrong_types()
for n in range(%(tenants)d):  # thousands of distinct, valid tenant ids
    check("tenants", client.post("/otp/send", json={"phone": "+1555%%07d" %% n}, headers={"X-Tenant-Id": "tenant-%%d" %% n}))
check("secret", client.post("/otp/verify", json={"phone": PHONE, "code": CODE, "email": EMAIL, "password": PASSWORD},
                            headers={"X-Tenant-Id": "acme"}))
print(json.dumps({"examples": examples, "statuses": statuses, "flushed": kyo_otel.shutdown(30)}))
'''


def test_hypothesis_bad_input_in_process(redis_server, receiver, figures):
    redis_server.start()
    code = HYPOTHESIS_RUN % {"secrets": (PHONE, CODE, EMAIL, BEARER, API_KEY, PASSWORD), "examples": 150,
                             "tenants": 2000}
    report = last_json_line(run_python(code, env=scenario_env(receiver, redis_server), timeout=240))
    received = check_received(receiver)
    figures.record("bad input (hypothesis, Flask test client)", **report, **received)
    assert report["flushed"] is True
    assert report["statuses"].get("500") is None


def raw_requests(port: int) -> list[bytes]:
    """Malformed HTTP that no client library would send."""
    head = f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    send = "POST /otp/send HTTP/1.1\r\n" + head
    verify = "POST /otp/verify HTTP/1.1\r\n" + head

    def with_body(start: str, body: bytes, extra: str = "") -> bytes:
        return (start + extra + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body

    requests = [
        with_body(send, b'{"phone": "\xff\xfe\xfd"}', "X-Tenant-Id: acme\r\n"),
        with_body(send, b"\xc3\x28\xa0\xa1 not json", "X-Tenant-Id: acme\r\n"),
        with_body(send, b'{"phone": ' + b'"9' * 5000 + b'"}', "X-Tenant-Id: acme\r\n"),  # past the 16 KiB limit
        with_body(send, ('{"phone": "' + PHONE + '"}').encode(), "X-Tenant-Id: " + EMAIL + "\r\n"),
        with_body(send, b'{"phone": "+15550000001"}', "X-Tenant-Id: \xe9\xff\r\n".encode("latin-1").decode("latin-1")),
        with_body(verify, ('{"phone": "' + PHONE + '", "code": "' + CODE + '"}').encode(),
                  "X-Tenant-Id: acme\r\nAuthorization: Bearer " + BEARER + "\r\nX-Api-Key: " + API_KEY + "\r\n"),
        with_body(verify, b'{"phone": [1, 2], "code": {"a": null}}', "X-Tenant-Id: acme\r\n"),
        with_body(send, b"{}", "X-Tenant-Id: " + "t" * 8000 + "\r\n"),
        b"GET /users/" + PHONE.encode() + b"/\xff\xfe?email=" + EMAIL.encode() + b" HTTP/1.1\r\n" + head.encode() + b"\r\n",
        b"GET /%ff%fe/" + PHONE.replace("+", "%2B").encode() + b" HTTP/1.1\r\n" + head.encode() + b"\r\n",
        b"BREW /otp/send HTTP/1.1\r\n" + head.encode() + b"\r\n",
        b"GET /" + b"a" * 6000 + b" HTTP/1.1\r\n" + head.encode() + b"\r\n",
    ]
    requests += [with_body(send, f'{{"phone": "+1555{n:07d}"}}'.encode(), f"X-Tenant-Id: raw-tenant-{n}\r\n")
                 for n in range(300)]
    return requests


def exchange(port: int, raw: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def test_malformed_http_against_gunicorn(redis_server, receiver, figures):
    redis_server.start()
    with GunicornApp(scenario_env(receiver, redis_server)) as app:
        statuses = [exchange(app.port, raw) for raw in raw_requests(app.port)]
        app.stop()
        output = app.output()
    received = check_received(receiver)
    summary = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    figures.record("bad input (raw HTTP, gunicorn)", statuses=summary, **received)
    assert all(0 < s < 500 for s in statuses), summary
    assert "Traceback" not in output, output[-3000:]
