"""Shared fixtures: a real Redis server for the session, and a clean database per test."""

from __future__ import annotations


import pytest
import redis as redis_lib

from tests.support.redis_server import RedisServer


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
