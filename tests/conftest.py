"""Shared fixtures: a real Redis server for the session, and a clean database per test."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import pytest
import redis as redis_lib
from hypothesis import settings

# CI (CI=true) runs the property tests on fixed examples, so that a run passes or fails on the
# code, not on the draw; locally each run draws anew, and finds what a fixed draw cannot.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

from tests.support.redis_server import RedisServer


_UNDER_TEST = (
    "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp", "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-flask", "opentelemetry-instrumentation-redis",
    "opentelemetry-instrumentation-logging", "opentelemetry-propagator-aws-xray", "flask", "werkzeug", "redis",
)


def pytest_report_header(config):
    """The versions this run tests, first thing in its output (make test: the newest the ranges
    allow; make test-oldest: constraints/oldest.txt)."""
    found = []
    for name in _UNDER_TEST:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"versions under test: python {platform.python_version()}, " + ", ".join(found)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on 127.0.0.1 (a random port), for the whole test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server):
    """A client of the session's Redis server, with an empty database and the server running."""
    redis_server.start()
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    redis_server.start()
    client.close()


@pytest.fixture(scope="session")
def otelcol():
    """The collector ``make collector`` builds (``make test`` builds it first); no test skips
    for want of it."""
    from pathlib import Path

    from kyo_otel.collector import BUILT_COLLECTOR

    binary = Path(__file__).resolve().parent.parent / BUILT_COLLECTOR
    assert binary.is_file(), f"no collector at {binary}: run `make collector` (`make test` does)"
    return binary
