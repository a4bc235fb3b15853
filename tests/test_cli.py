"""The ``kyo-otel`` command, run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from kyo_otel import catalog, cost
from kyo_otel.receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = shutil.which("kyo-otel", path=str(Path(sys.executable).parent)) or "kyo-otel"


def kyo_otel_command(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_"))}
    return subprocess.run(
        [SCRIPT, *args], env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


def test_doctor_shows_each_value_and_where_it_came_from(otlp_receiver):
    result = kyo_otel_command(
        "doctor",
        env={
            "KYO_OTEL_PROFILE": "otlp",
            "KYO_OTEL_OTLP_ENDPOINT": otlp_receiver.endpoint,
            "OTEL_SERVICE_NAME": "otp-service",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(l.split() == ["service_name", "otp-service", "OTEL_SERVICE_NAME"] for l in lines)
    assert any(l.split() == ["otlp_endpoint", otlp_receiver.endpoint, "KYO_OTEL_OTLP_ENDPOINT"] for l in lines)
    assert any(l.split() == ["traces_exporter", "otlp", "KYO_OTEL_PROFILE"] for l in lines)
    assert any(l.split() == ["sample_ratio", "1.0", "default"] for l in lines)
    assert "s3cret" not in result.stdout, "header values are credentials"
    assert "All checks passed." in result.stdout


def otlp_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": receiver.endpoint, **extra}


def test_doctor_sends_a_real_empty_export(otlp_receiver):
    result = kyo_otel_command("doctor", env=otlp_env(otlp_receiver))
    assert result.returncode == 0, result.stdout
    assert f"ok    OTLP endpoint {otlp_receiver.endpoint} accepts TCP connections" in result.stdout
    for signal in ("trace", "metric", "log"):
        assert f"ok    an empty OTLP {signal} export to {otlp_receiver.endpoint} (grpc) accepted in" in result.stdout
    assert otlp_receiver.calls == {"traces": 1, "metrics": 1, "logs": 1}
    assert otlp_receiver.counts() == {"spans": 0, "points": 0, "logs": 0}


class TracesOnly(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):  # noqa: N802 (gRPC's name)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_doctor_finds_a_collector_without_a_metrics_pipeline():
    """A collector whose otlp receiver is in the traces pipeline only answers metrics with UNIMPLEMENTED."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TracesOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = kyo_otel_command(
            "doctor", env={"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
        )
    finally:
        server.stop(grace=None)
    assert result.returncode == 1
    assert "ok    an empty OTLP trace export" in result.stdout
    assert "FAIL  an empty OTLP metric export" in result.stdout and "UNIMPLEMENTED" in result.stdout
    assert "fix: the collector has no metrics pipeline with the otlp receiver: add otlp to service.pipelines.metrics.receivers" in result.stdout
    assert "2 problems found." in result.stdout  # metrics and logs


def test_doctor_explains_a_collector_that_wants_credentials(otlp_receiver):
    otlp_receiver.error = grpc.StatusCode.UNAUTHENTICATED
    result = kyo_otel_command("doctor", env=otlp_env(otlp_receiver))
    assert result.returncode == 1
    assert "was refused: UNAUTHENTICATED" in result.stdout
    assert "fix: the collector wants credentials: set KYO_OTEL_OTLP_HEADERS" in result.stdout


def test_doctor_gives_up_on_a_slow_collector_within_its_timeout(otlp_receiver):
    otlp_receiver.delay = 30
    result = kyo_otel_command("doctor", "--timeout", "1", env=otlp_env(otlp_receiver))
    assert result.returncode == 1
    assert "was refused: DEADLINE_EXCEEDED" in result.stdout
    assert "did not answer in time" in result.stdout


def test_doctor_fails_plainly_when_nothing_listens(otlp_receiver):
    otlp_receiver.stop()  # the collector is down
    endpoint = otlp_receiver.endpoint
    result = kyo_otel_command("doctor", "--timeout", "2", env={"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": endpoint})
    assert result.returncode == 1
    assert f"FAIL  OTLP endpoint {endpoint}: nothing listens on 127.0.0.1:" in result.stdout
    assert "fix: start the collector" in result.stdout
    assert "1 problem found." in result.stdout
    assert "Traceback" not in result.stderr


class OtlpHttpHandler(http.server.BaseHTTPRequestHandler):
    """A real OTLP/HTTP endpoint: accepts protobuf posts to /v1/traces, /v1/metrics, /v1/logs."""

    received: list[tuple[str, str, str]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, self.headers.get("Content-Type"), self.headers.get("x-api-key")))
        status = 200 if self.path in ("/v1/traces", "/v1/metrics", "/v1/logs") else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_doctor_over_otlp_http_sends_the_configured_headers():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpHttpHandler)
    OtlpHttpHandler.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = kyo_otel_command(
            "doctor",
            env={"KYO_OTEL_PROFILE": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                 "KYO_OTEL_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
                 "KYO_OTEL_OTLP_HEADERS": "x-api-key=s3cret"},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stdout
    assert sorted(OtlpHttpHandler.received) == [
        (f"/v1/{signal}", "application/x-protobuf", "s3cret") for signal in ("logs", "metrics", "traces")
    ]
    assert "s3cret" not in result.stdout


def test_doctor_says_when_the_port_speaks_another_protocol(otlp_receiver):
    """gRPC receiver, HTTP exporter: the TCP check passes, the real export does not."""
    result = kyo_otel_command(
        "doctor", "--timeout", "2",
        env=otlp_env(otlp_receiver, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf"),
    )
    assert result.returncode == 1
    assert "accepts TCP connections" in result.stdout
    assert "FAIL  an empty OTLP trace export" in result.stdout
    assert "metric export" not in result.stdout, "one failure of this kind is enough"
    assert "fix: this looks like a gRPC port: set KYO_OTEL_OTLP_PROTOCOL=grpc" in result.stdout
    assert otlp_receiver.calls["traces"] == 0


def test_doctor_reports_a_bad_setting_with_its_source():
    result = kyo_otel_command("doctor", env={"KYO_OTEL_SAMPLE_RATIO": "2"})
    assert result.returncode == 1
    assert "invalid sample_ratio '2' (from KYO_OTEL_SAMPLE_RATIO): expected a number in [0, 1]" in result.stdout
    assert "fix: change KYO_OTEL_SAMPLE_RATIO" in result.stdout


def test_doctor_skips_the_network_when_no_signal_uses_otlp(tmp_path):
    result = kyo_otel_command("doctor", env={"KYO_OTEL_ENVIRONMENT": "development"}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "skip  OTLP endpoint: no signal exports to OTLP (traces=console" in result.stdout


def test_doctor_validates_the_projects_collector_configuration_with_the_built_collector(otelcol):
    result = kyo_otel_command("doctor")  # from the project root: collector/otel-collector.yaml
    assert result.returncode == 0, result.stdout
    assert ("ok    collector/otel-collector.yaml passes .collector/otelcol-kyo validate and the adot catalog checks"
            in result.stdout)


def _project_config_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of collector/otel-collector.yaml with ``old`` replaced by ``new``."""
    config = tmp_path / "otel-collector.yaml"
    config.write_text((ROOT / "collector" / "otel-collector.yaml").read_text().replace(old, new))
    return config


def test_doctor_reports_what_the_collector_refuses(otelcol, tmp_path):
    broken = _project_config_with(tmp_path, "  awsemf:\n", "  awsemf:\n    timeout: 5s\n")
    result = kyo_otel_command("doctor", "--collector", str(broken))
    assert result.returncode == 1
    assert f"FAIL  {broken}: otelcol-kyo validate refuses it:" in result.stdout
    assert "timeout" in result.stdout


def test_doctor_says_when_there_is_no_collector_binary_to_validate_with(tmp_path):
    config = tmp_path / "otel-collector.yaml"
    config.write_text((ROOT / "collector" / "otel-collector.yaml").read_text())
    result = kyo_otel_command("doctor", "--collector", str(config), cwd=tmp_path,
                              env={"PATH": str(Path(sys.executable).parent)})  # no otelcol-kyo/otelcol-contrib
    assert result.returncode == 0, result.stdout
    assert f"skip  no collector binary to validate {config} with" in result.stdout
    assert "make collector" in result.stdout
    assert f"ok    {config} passes the adot catalog checks" in result.stdout


def test_doctor_names_each_collector_problem_and_its_fix(tmp_path):
    broken = _project_config_with(tmp_path, "kyo.otp.sent", "kyo.otp.snet")
    result = kyo_otel_command("doctor", "--collector", str(broken))
    assert result.returncode == 1
    assert f"FAIL  {broken}: processors.filter/catalog_metrics" in result.stdout
    assert "catalog metric 'kyo.otp.sent' is dropped before awsemf" in result.stdout
    assert "fix: add kyo.otp.sent" in result.stdout


def test_doctor_checks_the_local_collector_file_as_a_local_config(otelcol):
    result = kyo_otel_command("doctor", "--collector", "collector/otel-collector.local.yaml")
    assert result.returncode == 0, result.stdout
    assert "passes .collector/otelcol-kyo validate and the otelcol catalog checks" in result.stdout


def test_doctor_fails_on_a_missing_collector_file(tmp_path):
    result = kyo_otel_command("doctor", "--collector", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert f"collector configuration {tmp_path / 'nope.yaml'} does not exist" in result.stdout


def test_catalog_table_lists_every_metric_with_its_dimension_sets():
    result = kyo_otel_command("catalog")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    for spec in catalog.METRICS:
        assert spec.name in rows
        assert spec.kind in rows[spec.name].split()
        assert spec.description in rows[spec.name]
    assert "(http.route, http.response.status_code)" in rows["http.server.request.duration"]


def test_catalog_json_is_the_catalog():
    result = kyo_otel_command("catalog", "--format", "json")
    data = json.loads(result.stdout)
    assert data["namespace"] == catalog.NAMESPACE
    assert [m["name"] for m in data["metrics"]] == [s.name for s in catalog.METRICS]
    sent = next(m for m in data["metrics"] if m["name"] == "kyo.otp.sent")
    assert sent["cloudwatch_dimension_sets"] == [
        ["service.name", "deployment.environment.name"],
        ["service.name", "deployment.environment.name", "kyo.tenant.id"],
    ]


def test_cost_prints_the_estimate_per_metric_and_the_total():
    result = kyo_otel_command("cost", "--tenants", "200", "--instances", "4")
    assert result.returncode == 0, result.stderr
    expected = cost.estimate(tenants=200, instances=4)
    assert result.stdout.strip() == expected.format_table().strip()
    assert f"custom metrics: {expected.total_metrics}" in result.stdout
    for row in expected.rows:
        assert row.metric in result.stdout


def test_bad_arguments_are_usage_errors():
    result = kyo_otel_command("cost", "--tenants", "0")
    assert result.returncode == 2
    assert "must be greater than 0" in result.stderr


def test_doctor_reports_malformed_headers_without_their_credentials():
    # "Authorization: Bearer ..." (a colon where "=" belongs) is the usual mistake, and the error
    # printed the whole value: the token went to the terminal, or with configure() to stderr.
    result = kyo_otel_command("doctor", env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k3y-5ecret,Authorization: Bearer t0k3n-abc"})
    assert result.returncode == 1
    assert ("invalid otlp_headers 'x-api-key=***,***' (from OTEL_EXPORTER_OTLP_HEADERS): "
            "expected key=value pairs separated by commas (values hidden here)") in result.stdout
    for secret in ("k3y-5ecret", "t0k3n-abc"):
        assert secret not in result.stdout + result.stderr


def test_doctor_never_prints_the_password_of_an_endpoint():
    # An endpoint's userinfo password went to the terminal in the configuration table, in the
    # connection check's finding and in the error for an invalid endpoint.
    from kyo_otel.receiver import free_port

    unreachable = f"http://otel:s3cr3t-pw@127.0.0.1:{free_port()}"
    result = kyo_otel_command("doctor", env={"OTEL_EXPORTER_OTLP_ENDPOINT": unreachable, "KYO_OTEL_PROFILE": "otlp"})
    assert f"OTLP endpoint {unreachable.replace('s3cr3t-pw', '***')}: nothing listens on" in result.stdout
    invalid = kyo_otel_command("doctor", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://otel:s3cr3t-pw@127.0.0.1:4317"})
    assert "invalid otlp_endpoint 'ftp://otel:***@127.0.0.1:4317'" in invalid.stdout
    for output in (result.stdout + result.stderr, invalid.stdout + invalid.stderr):
        assert "s3cr3t-pw" not in output
