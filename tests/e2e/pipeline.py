"""The whole pipeline, run once, inside a network namespace with only loopback:

    sample app (gunicorn, 2 workers, production profile) -> built collector running
    collector/otel-collector.yaml -> moto (server mode) as CloudWatch Logs and X-Ray

``python -m tests.e2e.pipeline OUT.json`` is what ``tests/e2e/conftest.py`` runs under
``unshare --net``: it brings ``lo`` up, starts Redis, moto, the collector and the app, sends a
bounded mix of traffic (keeping a ledger of every request and answer), stops the app (its workers
flush) and the collector (its batches flush), and writes the ledger and everything moto stored to
OUT.json. The tests assert on that file, outside the namespace.

The collector runs the committed config with nothing changed but where AWS is: ``--set``
overrides of each AWS exporter's ``endpoint`` and ``region``, and credentials in its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import boto3
import redis as redis_lib
from moto.server import ThreadedMotoServer

from kyo_otel.collector import HEALTH_CHECK_ENDPOINT, load_config
from kyo_otel.receiver import free_port
from tests.e2e.gateway import GATEWAY_DOWN, code_key
from tests.support import load
from tests.support.gunicorn_app import SHARED_SECRET, GunicornApp, app_env, request
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / ".collector" / "otelcol-kyo"
CONFIG = ROOT / "collector" / "otel-collector.yaml"
REGION = "us-east-1"
# Credentials the collector's AWS SDK signs with (moto accepts any); distinctive, so that the
# no-leak test can look for them too.
AWS_ACCESS_KEY_ID = "AKIAE2EKYOTESTKEY001"
AWS_SECRET_ACCESS_KEY = "e2e-aws-secret-key-never-stored-0123456789"
TENANTS = ("tenant-a", "tenant-b", "tenant-c")
JOURNEYS_PER_TENANT = 16
RATE_LIMIT = 3  # OTP_RATE_LIMIT: the fourth code for one phone within the window is refused (429)
EMAIL = "alice.e2e@example.com"
BEARER = "e2e-bearer-token-0123456789abcdef"
EXPORT_WAIT = 45.0  # bound on waiting for the collector's batches (5 s / 10 s timeouts) to reach moto


def aws_exporters(config: dict) -> list[str]:
    """The ids of the config's AWS exporters (awsxray, awsemf, awscloudwatchlogs/...)."""
    return [name for name in config["exporters"] if name.split("/", 1)[0].startswith("aws")]


def collector_command(endpoint: str) -> list[str]:
    """The built collector on the committed config, each AWS exporter pointed at ``endpoint``."""
    overrides = []
    for exporter in aws_exporters(load_config(CONFIG)):
        overrides += [f"--set=exporters::{exporter}::endpoint={endpoint}", f"--set=exporters::{exporter}::region={REGION}"]
    return [str(COLLECTOR), f"--config={CONFIG}", *overrides]


def aws_env() -> dict[str, str]:
    """The collector's AWS settings: credentials in the environment, no instance metadata."""
    return {
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AWS_ACCESS_KEY_ID,
                        aws_secret_access_key=AWS_SECRET_ACCESS_KEY)


def wait_healthy(process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    url = f"http://{HEALTH_CHECK_ENDPOINT}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the collector exited with {process.returncode}:\n{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the collector was not healthy within {timeout}s:\n{log.read_text()[-5000:]}")


class Ledger:
    """Every request made and what it was answered, and the sensitive values the traffic carried."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[dict] = []
        self.phones: set[str] = set()
        self.codes: set[str] = set()

    def call(self, call: load.Call, route: str | None, expected: int) -> bytes:
        status, body = request(self.port, call.method, call.path, call.body, call.headers)
        assert status == expected, f"{call.method} {call.path}: {status} {body[:300]!r}, expected {expected}"
        tenant = call.headers.get("X-Tenant-Id")
        self.requests.append({"method": call.method, "route": route, "status": status, "tenant": tenant})
        return body


def traffic(port: int, redis_url: str) -> Ledger:
    """Per tenant: codes sent and verified (right and wrong), a phone that hits the rate limit;
    a tenant whose SMS gateway is down (502, an exception logged); unmatched paths that carry a
    phone and a code (404); invalid input (400) carrying an email; health checks."""
    ledger = Ledger(port)
    store = redis_lib.Redis.from_url(redis_url)
    number = iter(range(7_000_001, 7_100_000))

    def new_phone() -> str:
        phone = load.phone(next(number))
        ledger.phones.add(phone)
        return phone

    for tenant in TENANTS:
        for journey in range(JOURNEYS_PER_TENANT):
            phone = new_phone()
            ledger.call(load.send(tenant, phone), "/otp/send", 200)
            code = store.get(code_key(tenant, phone)).decode()
            ledger.codes.add(code)
            if journey % 2 == 0:
                ledger.call(load.verify(tenant, phone, code), "/otp/verify", 200)
            else:
                wrong = f"{(int(code) + 1) % 1_000_000:06d}"
                ledger.codes.add(wrong)
                ledger.call(load.verify(tenant, phone, wrong), "/otp/verify", 401)
        limited = new_phone()
        for _ in range(RATE_LIMIT):
            ledger.call(load.send(tenant, limited), "/otp/send", 200)
            ledger.codes.add(store.get(code_key(tenant, limited)).decode())
        ledger.call(load.send(tenant, limited), "/otp/send", 429)
    for _ in range(4):
        ledger.call(load.send(GATEWAY_DOWN, new_phone()), "/otp/send", 502)
    for tenant in TENANTS[:2]:
        phone = new_phone()
        ledger.call(load.send(tenant, phone), "/otp/send", 200)
        code = store.get(code_key(tenant, phone)).decode()
        ledger.codes.add(code)
        # A code and a phone number in unmatched paths (404), one with a token in the query too.
        ledger.call(load.Call("GET", f"/users/{phone}/codes/{code}", headers={"X-Tenant-Id": tenant}), None, 404)
        ledger.call(load.Call("GET", f"/verify/{code}?access_token={BEARER}",
                              headers={"X-Tenant-Id": tenant, "Authorization": f"Bearer {BEARER}"}), None, 404)
        # Invalid input: an email where the phone number belongs, a code of the wrong length.
        bad_phone = json.dumps({"phone": EMAIL}).encode()
        ledger.call(load.Call("POST", "/otp/send", bad_phone, {"X-Tenant-Id": tenant, "Content-Type": "application/json"}),
                    "/otp/send", 400)
        ledger.call(load.verify(tenant, phone, code + "9", expected=(400,)), "/otp/verify", 400)
    for _ in range(3):
        ledger.call(load.Call("GET", "/health"), "/health", 200)
    store.close()
    return ledger


def dump_logs(logs) -> dict[str, dict[str, list[str]]]:
    """Every event message moto stored: {group: {stream: [message, ...]}}."""
    stored: dict[str, dict[str, list[str]]] = {}
    for group in logs.describe_log_groups()["logGroups"]:
        name = group["logGroupName"]
        streams = stored.setdefault(name, {})
        for stream in logs.describe_log_streams(logGroupName=name)["logStreams"]:
            messages, token = [], None
            while True:
                page = logs.get_log_events(logGroupName=name, logStreamName=stream["logStreamName"], startFromHead=True,
                                           **({"nextToken": token} if token else {}))
                messages += [event["message"] for event in page["events"]]
                if not page["events"] or page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
            streams[stream["logStreamName"]] = messages
    return stored


def dump_traces(xray, since: float) -> list[dict]:
    """Every X-Ray trace moto stored since ``since``: [{id, segments: [document, ...]}]."""
    ids, token = [], None
    while True:
        page = xray.get_trace_summaries(StartTime=since - 60, EndTime=time.time() + 60, **({"NextToken": token} if token else {}))
        ids += [summary["Id"] for summary in page["TraceSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    traces = []
    for start in range(0, len(ids), 5):  # X-Ray's BatchGetTraces takes 5 ids at a time
        for trace in xray.batch_get_traces(TraceIds=ids[start:start + 5])["Traces"]:
            traces.append({"id": trace["Id"], "segments": [json.loads(s["Document"]) for s in trace["Segments"]]})
    return traces


def audit_events(stored: dict) -> int:
    return sum(len(messages) for messages in stored.get("/aws/kyo/otp-service/audit", {}).values())


def run(out: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    started = time.time()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    logs, xray = client("logs", endpoint), client("xray", endpoint)
    config = load_config(CONFIG)
    groups = {body["log_group_name"] for name, body in config["exporters"].items() if "log_group_name" in body}
    for group in sorted(groups):  # the infrastructure creates the groups (with their retention)
        logs.create_log_group(logGroupName=group)
    collector_log = Path(out).with_suffix(".collector.log")
    redis_server = RedisServer().start()
    collector = None
    app = None
    try:
        with open(collector_log, "wb") as sink:
            collector = subprocess.Popen(collector_command(endpoint), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                         env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                                              **aws_env()})
        wait_healthy(collector, collector_log)
        # The production profile with its default endpoint (localhost:4317, gRPC), short app-side
        # export intervals so that the run stays short, and a low rate limit to reach 429.
        env = app_env("http://localhost:4317", redis_server.url, OTP_RATE_LIMIT=str(RATE_LIMIT))
        del env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        app = GunicornApp(env, workers=2, app="tests.e2e.gateway_app:app").start()
        ledger = traffic(app.port, redis_server.url)
        app_stop_seconds = app.stop()
        app_output = app.output()
        # The collector exports on its own batch timeouts (5 s logs and traces, 10 s metrics):
        # wait, bounded, until one audit record per verification has arrived, then a little longer.
        verifications = sum(1 for r in ledger.requests if r["route"] == "/otp/verify" and r["status"] in (200, 401))
        deadline = time.monotonic() + EXPORT_WAIT
        while time.monotonic() < deadline and audit_events(dump_logs(logs)) < verifications:
            time.sleep(1)
        time.sleep(11)  # one more metrics batch timeout
        collector.terminate()
        collector_exit = collector.wait(30)
        result = {
            "ledger": {"requests": ledger.requests, "phones": sorted(ledger.phones), "codes": sorted(ledger.codes),
                       "email": EMAIL, "secrets": [SHARED_SECRET, BEARER, AWS_SECRET_ACCESS_KEY]},
            "logs": dump_logs(logs),
            "traces": dump_traces(xray, started),
            "collector": {"command": collector_command(endpoint), "exit": collector_exit,
                          "output": collector_log.read_text(errors="replace")},
            "app": {"stop_seconds": app_stop_seconds, "output": app_output[-20000:]},
            "statuses": dict(Counter(r["status"] for r in ledger.requests)),
        }
        Path(out).write_text(json.dumps(result))
    finally:
        if app is not None:
            app.close()
        if collector is not None and collector.poll() is None:
            collector.kill()
        redis_server.stop()
        moto.stop()


if __name__ == "__main__":
    run(Path(sys.argv[1]))
