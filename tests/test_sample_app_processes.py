"""The sample service's entry points as a user runs them: ``python -m sample_app`` (stopped by a
signal), ``python -m sample_app demo``, and gunicorn with ``sample_app/gunicorn.conf.py``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis as redis_lib

from kyo_otel.receiver import OtlpReceiver, free_port
from tests.support.gunicorn_app import process_env, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+886912345678"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without telemetry, Redis, OTP or gunicorn settings, plus ``extra``."""
    return process_env({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **extra})


def call(url: str, body: dict | None = None, tenant: str = "acme") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"X-Tenant-Id": tenant, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stop(process: subprocess.Popen, signum: int, timeout: float = 20) -> tuple[str, str]:
    process.send_signal(signum)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_make_run_serves_with_console_telemetry_and_stops_gracefully(signum):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_app", "--port", str(port)],
        cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        assert call(url + "/otp/send", {"phone": PHONE})[0] == 200
        status, body = call(url + "/otp/verify", {"phone": PHONE, "code": "000000"})
        assert status in (401, 200)  # 200 once in a million
    finally:
        out, err = stop(process, signum)
    assert process.returncode == 0, err
    assert "embedded fakeredis" in err and "stopped (telemetry flushed)" in err
    # The console profile: a span line per request, log lines, and the metrics flushed at exit.
    assert "POST /otp/send" in out and "http.route=/otp/verify" in out
    assert "otp sent" in out and "otp.phone=+886*******78" in out
    assert "kyo.otp.sent" in out and "kyo.otp.verifications" in out
    assert PHONE[1:] not in out + err


def test_make_run_exports_to_a_collector_when_the_standard_variables_say_so():
    receiver = OtlpReceiver(protocol="http/protobuf").start()
    port = free_port()
    env = environment(OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp",
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    process = subprocess.Popen([sys.executable, "-m", "sample_app", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        assert call(url + "/otp/send", {"phone": PHONE})[0] == 200
        assert call(url + "/otp/verify", {"phone": PHONE, "code": "999999"})[0] in (200, 401)
        assert call(url + "/otp/send", {"phone": PHONE}, tenant="globex")[0] == 200
    finally:
        out, err = stop(process, signal.SIGTERM)
        receiver.stop()
    assert process.returncode == 0, err
    assert "stopped (telemetry flushed)" in err and out == ""  # nothing on the console
    spans = receiver.spans()
    assert {"POST /otp/send", "POST /otp/verify"} <= {span.name for span in spans}
    everything = [*spans, *receiver.metric_points(), *receiver.logs()]
    assert {item.resource.get("service.name") for item in everything} == {"kyo-otp-service"}
    points = receiver.metric_points("kyo.otp.sent")
    assert {(p.kind, p.temporality) for p in points} == {("sum", "delta")}
    tenants = {point.attributes["kyo.tenant.id"] for point in points}
    assert {t: receiver.metric_total("kyo.otp.sent", **{"kyo.tenant.id": t}) for t in tenants} == {"acme": 1, "globex": 1}
    bodies = [record.body for record in receiver.logs()]
    assert bodies.count("otp sent") == 2
    assert {"otp verification failed", "otp verified"} & set(bodies)
    assert sum(str(body).startswith("audit: otp.verify") for body in bodies) == 1
    # On the wire: no phone number in any form.
    assert not receiver.contains(PHONE[1:]) and not receiver.contains(PHONE[-8:])


def run_demo(*args: str, **env: str) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "sample_app", "demo", "--json", *args],
        cwd=ROOT, env=environment(**env), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


def test_demo_summary_is_what_the_telemetry_recorded():
    summary, printed = run_demo("--duration", "3")
    metrics, client = summary["metrics"], summary["client"]
    assert summary["exporters"] == {"traces": "memory", "metrics": "memory", "logs": "memory"}
    assert summary["requests"] > 100
    # Every figure is read from the telemetry, and agrees with what the driver saw over HTTP.
    assert metrics["http.server.request.duration"]["count"] == summary["requests"] == summary["spans"]["server"]
    assert metrics["kyo.otp.sent"]["total"] == client["sent"] > 120  # including the tenant flood
    assert metrics["kyo.rate_limit.hits"]["total"] == client["rate_limited"] > 0
    assert summary["verifications"] == client["verifications"]
    assert set(summary["verifications"]) == {"success", "wrong_code", "expired", "too_many_attempts"}
    assert summary["logs"]["kyo_otel.audit"] == sum(summary["verifications"].values())
    assert metrics["kyo.telemetry.cardinality_overflow"]["total"] > 0  # 128 tenants, a cap of 100
    assert metrics["kyo.tenants.active"]["value"] == 128
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert 0 < summary["otp_success_rate"] < 1
    assert "OTP success" in printed and "p95" in printed


@pytest.mark.redis
@pytest.mark.slow
def test_demo_with_a_real_redis_goes_through_an_outage(redis_server):
    redis_server.start()
    summary, printed = run_demo("--duration", "4", REDIS_URL=redis_server.url)
    redis_lib.Redis.from_url(redis_server.url, socket_timeout=10).ping()  # the pause is over
    assert summary["client"]["unavailable"] > 0 and summary["statuses"]["503"] == summary["client"]["unavailable"]
    assert summary["metrics"]["kyo.http.server.errors"]["total"] >= summary["client"]["unavailable"]
    assert summary["logs"]["sample_app.errors"] >= summary["client"]["unavailable"]
    assert summary["metrics"]["kyo.otp.sent"]["total"] == summary["client"]["sent"]


@pytest.mark.redis
@pytest.mark.slow
def test_gunicorn_workers_share_codes_through_redis_and_flush_at_exit(redis_client, redis_server):
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = environment(REDIS_URL=redis_server.url, OTP_SECRET="a-shared-secret-for-all-workers",
                      GUNICORN_BIND=f"127.0.0.1:{port}", KYO_OTEL_ENVIRONMENT="development")
    process = subprocess.Popen([str(gunicorn), "-c", "sample_app/gunicorn.conf.py"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        assert call(url + "/otp/send", {"phone": PHONE})[0] == 200
        # Whichever worker answers, it finds the code (same Redis, same secret) and counts attempts.
        remaining = [call(url + "/otp/verify", {"phone": PHONE, "code": "000000"})[1].get("attempts_remaining") for _ in range(5)]
    finally:
        out, err = stop(process, signal.SIGTERM)
    assert remaining == [4, 3, 2, 1, 0]  # (one chance in a million that 000000 is the code)
    assert process.returncode == 0, err
    assert "Booting worker" in err and err.count("Worker exiting") == 2
    assert "kyo.otp.verifications" in out  # each worker flushed its metrics in worker_exit


def test_gunicorn_refuses_to_start_without_a_shared_redis():
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run([str(gunicorn), "-c", "sample_app/gunicorn.conf.py"], cwd=ROOT,
                            env=environment(OTP_SECRET="a-shared-secret-for-all-workers"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "set REDIS_URL" in result.stdout + result.stderr
