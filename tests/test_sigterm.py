"""SIGTERM, as ECS, Docker and Kubernetes stop a container: a plain server under zero-code flushes
every signal and then dies by SIGTERM as it would have; a handler of the application's own is
left alone. Real processes, real signals, a real OTLP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kyo_otel.receiver import OtlpReceiver, free_port
from tests.support.gunicorn_app import process_env
from tests.support.subprocess_python import run_python

APP = """
import logging
from flask import Flask

app = Flask("plain")

@app.get("/work")
def work():
    logging.getLogger("plain").info("working")
    return {"ok": True}
"""


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}: {process.communicate()}")
        try:
            get(url)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_a_plain_server_under_zero_code_flushes_everything_on_sigterm_and_dies_by_it(tmp_path: Path):
    (tmp_path / "plain_app.py").write_text(APP)
    bin_dir = Path(sys.executable).parent
    instrument, flask = shutil.which("opentelemetry-instrument", path=bin_dir), shutil.which("flask", path=bin_dir)
    assert instrument and flask
    port = free_port()
    with OtlpReceiver() as receiver:
        env = process_env({
            "OTEL_PYTHON_DISTRO": "kyo", "OTEL_PYTHON_CONFIGURATOR": "kyo", "OTEL_SERVICE_NAME": "plain",
            "KYO_OTEL_ENVIRONMENT": "production", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Nothing would leave before the signal: only the flush on SIGTERM can export it.
            "KYO_OTEL_BATCH_DELAY": "600000", "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        })
        process = subprocess.Popen(
            [instrument, flask, "--app", "plain_app", "run", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/work"
            wait_until_answering(url, process)
            assert [get(url) for _ in range(3)] == [200, 200, 200]
            assert not any(receiver.counts().values())  # everything still buffered in the process
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == -signal.SIGTERM, err
        assert len(receiver.spans("GET /work")) >= 4
        assert len(receiver.logs(body_contains="working")) >= 4
        assert receiver.metric_points("http.server.request.duration", **{"http.route": "/work"})
        assert {span.resource.get("service.name") for span in receiver.spans()} == {"plain"}


def test_the_applications_own_sigterm_handler_is_left_alone():
    result = run_python("""
import json, os, signal, sys
import kyo_otel

def own(signum, frame):
    print(json.dumps({"handler": "own", "kept": signal.getsignal(signal.SIGTERM) is own}), flush=True)
    sys.exit(3)

signal.signal(signal.SIGTERM, own)
kyo_otel.configure(environment="test")
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()
""")
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout) == {"handler": "own", "kept": True}


@pytest.mark.parametrize(("code", "env", "handler"), [
    ("kyo_otel.configure(environment='test')", {}, "_on_sigterm"),
    ("signal.signal(signal.SIGTERM, signal.SIG_IGN); kyo_otel.configure(environment='test')", {}, "SIG_IGN"),
    ("kyo_otel.configure(environment='test', flush_on_sigterm=False)", {}, "SIG_DFL"),
    ("kyo_otel.configure(environment='test')", {"KYO_OTEL_FLUSH_ON_SIGTERM": "false"}, "SIG_DFL"),
    ("t = threading.Thread(target=kyo_otel.configure, kwargs={'environment': 'test'}); t.start(); t.join()", {}, "SIG_DFL"),
    ("kyo_otel.configure(environment='test')", {"OTEL_SDK_DISABLED": "true"}, "SIG_DFL"),
], ids=["default", "ignored", "off by argument", "off by variable", "from a thread", "disabled SDK"])
def test_the_handler_is_installed_only_where_sigterm_has_its_default_and_can_be_turned_off(code, env, handler):
    result = run_python(f"""
import signal, threading
import kyo_otel
{code}
installed = signal.getsignal(signal.SIGTERM)
print(getattr(installed, "__name__", None) or installed.name)
""", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == handler
