"""Levels measured off the request path: Redis health and latency, active tenants.

Both are observable gauges (CloudWatch converts UpDownCounters to deltas, which turns a level
into nonsense). Their callbacks run in the metric reader's thread once per export interval, so
Redis is pinged at least once per interval even when nobody calls ``/health``, with a short
timeout, and a Redis outage shows as 0 in the next export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from kyo_otel import catalog
from kyo_otel.fork_locks import fork_safe
from kyo_otel.instruments import create_instrument

_logger = logging.getLogger(__name__)

ACTIVE_TENANTS_KEY = "kyo:telemetry:active-tenants"


def _isolated_client(client: Any, timeout: float) -> Any:
    """A client on its own small pool with a short timeout, so a hung Redis delays no request."""
    try:
        kwargs = dict(client.connection_pool.connection_kwargs)
        kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False)
        kwargs.pop("retry", None)
        pool = client.connection_pool.__class__(connection_class=client.connection_pool.connection_class, max_connections=2, **kwargs)
        return client.__class__(connection_pool=pool)
    except Exception:  # fakeredis and other stand-ins share their server state anyway
        return client


class RedisHealth:
    """PINGs Redis with a timeout; reports health 1/0 and the round trip in milliseconds."""

    def __init__(self, client: Any, timeout: float = 0.5) -> None:
        self.client = _isolated_client(client, timeout)
        self.timeout = timeout

    def check(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            with suppress_instrumentation():  # a health PING is not a request's Redis span
                self.client.ping()
        except Exception as exc:
            return {"healthy": False, "latency_ms": None, "error": type(exc).__name__}
        return {"healthy": True, "latency_ms": round((time.perf_counter() - start) * 1000, 3)}

    def observe(self, meter: Meter) -> None:
        """Register the health and latency gauges; one PING serves both callbacks."""
        state: dict[str, Any] = {}

        def health(options: CallbackOptions) -> Iterable[Observation]:
            result = self.check()
            state["latest"] = result
            yield Observation(1 if result["healthy"] else 0)

        def latency(options: CallbackOptions) -> Iterable[Observation]:
            result = state.pop("latest", None) or self.check()
            if result["healthy"]:
                yield Observation(result["latency_ms"])

        create_instrument(meter, catalog.REDIS_HEALTH, [health])
        create_instrument(meter, catalog.REDIS_LATENCY, [latency])


class ActiveTenants:
    """Tenants seen in the last ``window`` seconds, across every worker process.

    Requests only add the tenant id to a bounded in-process map (no I/O). At each collection the
    map is written to a Redis sorted set shared by all workers (ZADD, trim, ZCARD in one
    pipeline), so every worker reports the same total; CloudWatch readers use ``Maximum``.
    Without Redis, or while it is down, the count is this process's own.
    """

    def __init__(self, client: Any = None, window: float = 300.0, max_pending: int = 10_000, timeout: float = 0.5) -> None:
        self.client = _isolated_client(client, timeout) if client is not None else None
        self._given = client
        self.timeout = timeout
        self.window = window
        self.max_pending = max_pending
        self._local: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._new_locks()
        fork_safe(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def use_redis(self, client: Any) -> None:
        """Share the count through ``client``'s Redis from now on (the latest app's client, when
        several apps of one process count into this one)."""
        if client is not None and client is not self._given:
            self._given = client
            self.client = _isolated_client(client, self.timeout)

    def reset(self) -> None:
        """Forget the tenants this process has seen (tests start each case from none); what was
        already written to Redis stays there."""
        with self._lock:
            self._local.clear()
            self._pending.clear()

    def mark(self, tenant: str | None) -> None:
        if not tenant:
            return
        now = time.time()
        if len(self._pending) < self.max_pending or tenant in self._pending:
            self._pending[tenant] = now
        if len(self._local) < self.max_pending or tenant in self._local:
            self._local[tenant] = now

    def count(self) -> int:
        now = time.time()
        cutoff = now - self.window
        with self._lock:
            # Request threads add to both maps without the lock (``mark``): each is read through
            # one copy made in C (a Python loop over a live map would meet "dictionary changed
            # size during iteration"), and only what the copy saw is removed, so a mark made
            # meanwhile stays (replacing the maps would drop it).
            for tenant, seen in self._local.copy().items():
                if seen < cutoff and self._local.get(tenant, now) < cutoff:
                    self._local.pop(tenant, None)
            local = len(self._local)
            pending = self._pending.copy()
            for tenant, seen in pending.items():
                if self._pending.get(tenant) == seen:
                    self._pending.pop(tenant, None)
        if self.client is None:
            return local
        try:
            with suppress_instrumentation():
                return self._write_and_count(pending, cutoff)
        except Exception:
            with self._lock:  # keep what was not written for the next collection
                for tenant, seen in pending.items():
                    self._pending.setdefault(tenant, seen)
            return local

    def _write_and_count(self, pending: dict[str, float], cutoff: float) -> int:
        pipe = self.client.pipeline(transaction=False)
        if pending:
            pipe.zadd(ACTIVE_TENANTS_KEY, pending)
        pipe.zremrangebyscore(ACTIVE_TENANTS_KEY, "-inf", cutoff)
        pipe.zcard(ACTIVE_TENANTS_KEY)
        pipe.expire(ACTIVE_TENANTS_KEY, int(self.window) * 2)
        return int(pipe.execute()[-2])

    def observe(self, meter: Meter) -> None:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(self.count())

        create_instrument(meter, catalog.ACTIVE_TENANTS, [callback])
