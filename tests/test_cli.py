"""The ``kyo-otel`` command, run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from kyo_otel import catalog

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = shutil.which("kyo-otel", path=str(Path(sys.executable).parent)) or "kyo-otel"


def kyo_otel_command(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_"))}
    return subprocess.run(
        [SCRIPT, *args], env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


class TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver: keeps every export request it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []

    def Export(self, request, context):  # noqa: N802 (the gRPC method name)
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_receiver():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    sink = TraceSink()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sink.endpoint = f"http://127.0.0.1:{port}"
    yield sink
    server.stop(grace=None)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_doctor_sends_a_real_empty_export_with_the_configured_headers(otlp_receiver):
    result = kyo_otel_command(
        "doctor",
        env={"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": otlp_receiver.endpoint,
             "KYO_OTEL_OTLP_HEADERS": "x-api-key=s3cret"},
    )
    assert result.returncode == 0, result.stdout
    assert f"ok    OTLP endpoint {otlp_receiver.endpoint} accepts TCP connections" in result.stdout
    assert "empty OTLP trace export" in result.stdout and "accepted in" in result.stdout
    (request,) = otlp_receiver.requests
    assert len(request.resource_spans) == 0
    assert otlp_receiver.metadata[0]["x-api-key"] == "s3cret"


def test_doctor_fails_plainly_when_nothing_listens():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = kyo_otel_command("doctor", "--timeout", "2", env={"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": endpoint})
    assert result.returncode == 1
    assert f"FAIL  OTLP endpoint {endpoint}: nothing listens on 127.0.0.1:" in result.stdout
    assert "fix: start the collector" in result.stdout
    assert "1 problem found." in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_says_when_the_port_speaks_another_protocol(otlp_receiver):
    """gRPC receiver, HTTP exporter: the TCP check passes, the real export does not."""
    result = kyo_otel_command(
        "doctor", "--timeout", "2",
        env={"KYO_OTEL_PROFILE": "otlp", "KYO_OTEL_OTLP_ENDPOINT": otlp_receiver.endpoint,
             "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    )
    assert result.returncode == 1
    assert "accepts TCP connections" in result.stdout
    assert "FAIL  an empty OTLP trace export" in result.stdout
    assert "fix: this looks like a gRPC port: set KYO_OTEL_OTLP_PROTOCOL=grpc" in result.stdout
    assert otlp_receiver.requests == []


def test_doctor_reports_a_bad_setting_with_its_source():
    result = kyo_otel_command("doctor", env={"KYO_OTEL_SAMPLE_RATIO": "2"})
    assert result.returncode == 1
    assert "invalid sample_ratio '2' (from KYO_OTEL_SAMPLE_RATIO): expected a number in [0, 1]" in result.stdout
    assert "fix: change KYO_OTEL_SAMPLE_RATIO" in result.stdout


def test_doctor_skips_the_network_when_no_signal_uses_otlp(tmp_path):
    result = kyo_otel_command("doctor", env={"KYO_OTEL_ENVIRONMENT": "development"}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "skip  OTLP endpoint: no signal exports to OTLP (traces=console" in result.stdout


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


def test_bad_arguments_are_usage_errors():
    result = kyo_otel_command("cost", "--tenants", "0")
    assert result.returncode == 2
    assert "must be greater than 0" in result.stderr
