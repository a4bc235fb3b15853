"""Scenario 7: a bad telemetry setting stops the service at start-up with one clear line naming
the setting, its value and what is allowed: no worker boots, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.gunicorn_app import ROOT, GunicornApp, app_env, process_env

BAD_SETTINGS = [
    pytest.param({"KYO_OTEL_PROFILE": "bogus"},
                 "invalid profile 'bogus' (from KYO_OTEL_PROFILE): expected one of console, otlp, memory, none",
                 id="unknown-profile"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"},
                 "invalid otlp_endpoint 'localhost:4317' (from OTEL_EXPORTER_OTLP_ENDPOINT): expected a URL",
                 id="malformed-endpoint"),
    pytest.param({"OTEL_TRACES_SAMPLER_ARG": "2"},
                 "invalid sample_ratio '2' (from OTEL_TRACES_SAMPLER_ARG): expected a number in [0, 1]",
                 id="sampler-ratio-2"),
    pytest.param({"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-tenant-id,("},
                 "invalid OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST 'x-tenant-id,(' (from environment): "
                 "expected comma-separated header names or regular expressions",
                 id="header-capture-pattern"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_SETTINGS)
def test_gunicorn_refuses_to_start(bad, message, figures):
    app = GunicornApp(app_env("http://127.0.0.1:4317", "redis://127.0.0.1:6379/0", **bad))
    try:
        with pytest.raises(RuntimeError, match="gunicorn exited with 1"):
            app.start()
        output = app.output()
    finally:
        app.close()
    figures.record(f"bad config, gunicorn, {next(iter(bad))}", exit_code=app.process.returncode,
                   last_line=output.strip().splitlines()[-1])
    assert f"kyo_otel: configuration error: {message}" in output
    assert "Traceback" not in output and "Booting worker" not in output


@pytest.mark.parametrize(("bad", "message"), BAD_SETTINGS)
def test_python_m_sample_app_refuses_to_start(bad, message):
    env = process_env(app_env("http://127.0.0.1:4317", "redis://127.0.0.1:6379/0", **bad))
    completed = subprocess.run([sys.executable, "-m", "sample_app", "--port", "0"], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode != 0
    assert f"kyo-otp-service: configuration error: {message}" in completed.stderr
    assert "Traceback" not in completed.stderr
