"""The sample app in a real gunicorn (master + workers) on 127.0.0.1, as it runs in production.

``sample_app/gunicorn.conf.py`` configures it; the test adds only the bind address, the worker
count and environment variables (the collector endpoint, export intervals, Redis URL).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from kyo_otel.receiver import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "sample_app" / "gunicorn.conf.py"

_SHUTDOWN_REPORT = re.compile(
    r"kyo_otel: telemetry (?:flushed and shut down in (?P<flushed>[0-9.]+)s|shutdown stopped at its bound after (?P<bounded>[0-9.]+)s)"
)

SHARED_SECRET = "fault-suite-shared-otp-secret-0123456789"


def app_env(endpoint: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The variables of a deployed instance pointed at a test collector and Redis: every signal
    over OTLP/gRPC, short export intervals, and one OTP secret shared by the workers."""
    env = {
        "KYO_OTEL_ENVIRONMENT": "production",
        "KYO_OTEL_PROFILE": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "KYO_OTEL_BATCH_DELAY": "200",
        "KYO_OTEL_SHUTDOWN_TIMEOUT": "5",
        "REDIS_URL": redis_url,
        "OTP_SECRET": SHARED_SECRET,
        "OTP_RATE_LIMIT": "1000000",
    }
    env.update(extra)
    return env


def process_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without telemetry, Redis or OTP variables, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "OTP_", "REDIS_URL", "GUNICORN_"))}
    base.update(env)
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return base


class GunicornApp:
    """``gunicorn -c sample_app/gunicorn.conf.py`` with ``workers`` workers on a free port; ``app``
    (``module:variable``) replaces the config's ``wsgi_app``."""

    def __init__(self, env: dict[str, str], workers: int = 2, config: Path = CONFIG, app: str | None = None) -> None:
        self.port = free_port()
        self.workers_wanted = workers
        self.config = config
        self.app = app
        self.env = process_env(env)
        self._log = tempfile.NamedTemporaryFile(prefix="kyo-gunicorn-", suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return gunicorn_command(self.port, self.workers_wanted, "-c", str(self.config), *([self.app] if self.app else []))

    def start(self, timeout: float = 30) -> GunicornApp:
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            if len(self.workers()) == self.workers_wanted and self._answers():
                # every worker has imported the app once both answered at least one request
                booted = self.output().count("Booting worker")
                if booted >= self.workers_wanted:
                    return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"gunicorn did not start within {timeout}s:\n{self.output()}")

    def _answers(self) -> bool:
        try:
            status, _ = request(self.port, "GET", "/health", timeout=2)
            return status in (200, 503)
        except OSError:
            return False

    def workers(self) -> list[psutil.Process]:
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> dict[int, int]:
        """Resident memory of each worker, in bytes."""
        sizes = {}
        for worker in self.workers():
            try:
                sizes[worker.pid] = worker.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return sizes

    def stop(self, timeout: float = 60) -> float:
        """SIGTERM the master (a graceful stop) and return the seconds until it exited."""
        assert self.process is not None
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for worker in self.workers():
                worker.kill()
            self.process.kill()
            self.process.wait(10)

    def output(self) -> str:
        """Everything the master and workers wrote to stdout and stderr so far."""
        return Path(self._log.name).read_text(errors="replace")

    def shutdown_reports(self) -> list[tuple[bool, float]]:
        """What ``kyo_otel.gunicorn.worker_exit`` logged for each worker: (flushed, seconds)."""
        reports = []
        for match in _SHUTDOWN_REPORT.finditer(self.output()):
            flushed = match.group("flushed") is not None
            reports.append((flushed, float(match.group("flushed") or match.group("bounded"))))
        return reports

    def __enter__(self) -> GunicornApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill whatever is left and remove the log."""
        self.kill()
        self._log.close()
        if os.path.exists(self._log.name):
            os.unlink(self._log.name)


def gunicorn_command(port: int, workers: int, *options: str) -> list[str]:
    """``gunicorn`` on 127.0.0.1:``port`` with ``workers`` workers, then ``options`` (a config
    file, an app module...)."""
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *options]
    if _has_setting("control_socket_disable"):
        command.append("--no-control-socket")  # gunicorn >= 25 shares one socket path per user by default
    return command


def _has_setting(name: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == name for setting in KNOWN_SETTINGS)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, bytes]:
    """One HTTP request on a new connection (gunicorn's sync workers close each one anyway)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until ``url/health`` answers 2xx; an AssertionError if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}: {process.communicate()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not start within {timeout}s")
