"""The catalog's instruments and the typed API that records the domain events.

``kyo_otel.otp.sent(tenant)``, ``kyo_otel.otp.verified(tenant, success, reason)`` and
``kyo_otel.rate_limited(tenant, resource)`` can be called from any code at any time: before
``configure()`` they do nothing, and afterwards they record into in-process aggregations (no
I/O, no lock held across I/O). A failure inside the SDK is logged once and never raised into
business code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from kyo_otel import catalog
from kyo_otel.cardinality import TenantGuard
from kyo_otel.catalog import MetricSpec
from kyo_otel.fork_locks import fork_safe
from kyo_otel.histogram import ProcessHistogram
from kyo_otel.metrics import WithProcessMetrics

_logger = logging.getLogger(__name__)
RATE_LIMIT_RESOURCE_CAP = 32
"""Distinct rate-limited resources a process reports before folding new ones into the overflow value."""


def create_instrument(meter: Meter, spec: MetricSpec, callbacks: Iterable[Callable[[CallbackOptions], Iterable[Observation]]] = ()) -> Any:
    """The one place that turns a catalog entry into an instrument."""
    common = {"name": spec.name, "unit": spec.unit, "description": spec.description}
    if spec.kind == "counter":  # summed in the process, observed at each collection: ProcessCounter
        return meter.create_observable_counter(callbacks=list(callbacks), **common)
    if spec.kind == "histogram":
        return meter.create_histogram(**common)
    if spec.kind == "gauge":
        return meter.create_gauge(**common)
    if spec.kind == "observable_gauge":
        return meter.create_observable_gauge(callbacks=list(callbacks), **common)
    raise ValueError(f"unknown instrument kind {spec.kind!r} for {spec.name}")


class ProcessCounter:
    """A monotonic counter summed in the process and handed to the SDK at each collection.

    ``add`` is a dict update under a lock (about a microsecond); the SDK's synchronous
    ``Counter.add`` builds a measurement and validates and hashes the attributes on every call
    (about 7 µs on a small container). What is exported is the same: an observable counter
    reports the running totals of the series that changed since the previous collection, and
    the SDK turns them into DELTA points, so a series without new measurements gets no point,
    as with a synchronous counter. Series are keyed by the identity of their attribute dict:
    pass the same (cached, never mutated) dict for the same series, as ``Recorder`` does.
    """

    def __init__(self, meter: Meter, spec: MetricSpec) -> None:
        self._series: dict[int, list[Any]] = {}  # id(attributes) -> [attributes, total, total reported]
        self._new_locks()
        fork_safe(self)
        create_instrument(meter, spec, [self._observe])

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def add(self, amount: int, attributes: dict[str, Any]) -> None:
        with self._lock:
            series = self._series.get(id(attributes))
            if series is None:
                self._series[id(attributes)] = [attributes, amount, 0]
            else:
                series[1] += amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            changed = [series for series in self._series.values() if series[1] != series[2]]
            for series in changed:
                series[2] = series[1]
            return [Observation(total, attributes) for attributes, total, _ in changed]


class Recorder:
    """Holds the instruments of one configuration and records measurements into them.

    Attribute dicts are cached per distinct key: the keys are bounded (routes, status codes,
    guarded tenant values), so the hot path allocates nothing after warm-up. ``reader`` is the
    reader of ``meter``'s provider: a kyo_otel one (``kyo_otel.metrics``) takes the request
    latencies from a ``ProcessHistogram``; with any other the SDK's histogram records them.
    """

    def __init__(
        self,
        meter: Meter,
        tenant_cap: int,
        tenant_allowlist: Iterable[str] = (),
        sanitize: Callable[[str], str] = str,
        reader: MetricReader | None = None,
    ) -> None:
        self.meter = meter
        # Counters are summed in the process (see ProcessCounter) and the request latencies are
        # buffered and aggregated at collection (ProcessHistogram): about a microsecond each on
        # the request thread.
        self._overflow = ProcessCounter(meter, catalog.CARDINALITY_OVERFLOW)
        self._overflow_attrs = {
            spec.name: {catalog.GUARDED_METRIC: spec.name} for spec in catalog.METRICS if spec.tenant_guarded
        }
        self._dropped = ProcessCounter(meter, catalog.TELEMETRY_DROPPED)
        self._duration: Any
        if isinstance(reader, WithProcessMetrics):
            scope = InstrumentationScope(meter.name, meter.version, meter.schema_url)
            self._duration = ProcessHistogram(scope, catalog.HTTP_SERVER_DURATION)
            reader.add_source(self._duration)
        else:
            self._duration = create_instrument(meter, catalog.HTTP_SERVER_DURATION)
        self._errors = ProcessCounter(meter, catalog.HTTP_SERVER_ERRORS)
        self._sent = ProcessCounter(meter, catalog.OTP_SENT)
        self._verifications = ProcessCounter(meter, catalog.OTP_VERIFICATIONS)
        self._rate_limits = ProcessCounter(meter, catalog.RATE_LIMIT_HITS)
        # Rate-limited resources are meant to be a few fixed names (otp.send): each is a billed
        # CloudWatch metric, so caller text (a phone number, a URL) is bounded like tenant ids,
        # and scrubbed here, before they make a series (the reader scrubs every point again at collection).
        self._resources = TenantGuard(
            catalog.RATE_LIMIT_HITS.name, RATE_LIMIT_RESOURCE_CAP, (), sanitize, None,
            values="rate-limited resources", advice="pass a fixed name such as 'otp.send'; caller text belongs in logs",
        )
        allow = tuple(tenant_allowlist)
        self.guards = {
            spec.name: TenantGuard(spec.name, tenant_cap, allow, sanitize, self._count_overflow)
            for spec in catalog.METRICS
            if spec.tenant_guarded
        }
        self._attrs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._failed = False

    # -- helpers ---------------------------------------------------------------------------

    def reset_guards(self) -> None:
        """Forget the tenant ids and resources the cardinality guards admitted (tests start each
        case from empty guards)."""
        for guard in (*self.guards.values(), self._resources):
            guard.reset()

    def _count_overflow(self, metric_name: str) -> None:
        self._overflow.add(1, self._overflow_attrs[metric_name])

    def _cached(self, key: tuple[Any, ...], build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attrs[key] = build()
        return attrs

    def _fail(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            _logger.warning("kyo_otel could not record %s; telemetry continues without it", what, exc_info=True)

    # -- domain events ---------------------------------------------------------------------

    def otp_sent(self, tenant: str | None) -> None:
        try:
            value = self.guards[catalog.OTP_SENT.name](tenant)
            self._sent.add(1, self._cached(("sent", value), lambda: {catalog.TENANT: value}))
        except Exception:
            self._fail(catalog.OTP_SENT.name)

    def otp_verified(self, tenant: str | None, success: bool, reason: str | None = None) -> None:
        try:
            value = self.guards[catalog.OTP_VERIFICATIONS.name](tenant)
            if success:
                key: tuple[Any, ...] = ("ok", value)
                attrs = self._cached(key, lambda: {catalog.TENANT: value, catalog.OTP_RESULT: catalog.OTP_SUCCESS})
            else:
                why = reason if reason in catalog.OTP_FAILURE_REASONS else "other"
                attrs = self._cached(
                    ("fail", value, why),
                    lambda: {catalog.TENANT: value, catalog.OTP_RESULT: catalog.OTP_FAILURE, catalog.OTP_FAILURE_REASON: why},
                )
            self._verifications.add(1, attrs)
        except Exception:
            self._fail(catalog.OTP_VERIFICATIONS.name)

    def rate_limited(self, tenant: str | None, resource: str) -> None:
        try:
            value = self.guards[catalog.RATE_LIMIT_HITS.name](tenant)
            guarded = self._resources(str(resource))
            attrs = self._cached(("rl", value, guarded), lambda: {catalog.TENANT: value, catalog.RATE_LIMIT_RESOURCE: guarded})
            self._rate_limits.add(1, attrs)
        except Exception:
            self._fail(catalog.RATE_LIMIT_HITS.name)

    def request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """One finished HTTP request: latency histogram, and the error counter for 4xx/5xx."""
        try:
            route = route or catalog.UNMATCHED_ROUTE
            # Keyed by the method as exported: one series (one dict) per attribute set, and no
            # new entry for every method a client invents.
            method = method if method in catalog.HTTP_METHODS else "_OTHER"
            key = ("req", route, method, status)
            attrs = self._attrs.get(key)
            if attrs is None:
                attrs = self._attrs[key] = {catalog.ROUTE: route, catalog.METHOD: method, catalog.STATUS_CODE: status}
            self._duration.record(seconds, attrs)
            if status >= 400:
                error = catalog.ERROR_SERVER if status >= 500 else catalog.ERROR_CLIENT
                self._errors.add(1, self._cached(("err", route, error), lambda: {catalog.ERROR_TYPE: error, catalog.ROUTE: route}))
        except Exception:
            self._fail(catalog.HTTP_SERVER_DURATION.name)

    def dropped(self, signal: str, count: int) -> None:
        try:
            self._dropped.add(count, self._cached(("drop", signal), lambda: {catalog.DROPPED_SIGNAL: signal}))
        except Exception:
            self._fail(catalog.TELEMETRY_DROPPED.name)


class _NoRecorder:
    """Stands in before ``configure()`` and when metrics are off: every call is a no-op."""

    def otp_sent(self, tenant: str | None) -> None:
        return None

    def otp_verified(self, tenant: str | None, success: bool, reason: str | None = None) -> None:
        return None

    def rate_limited(self, tenant: str | None, resource: str) -> None:
        return None

    def request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        return None

    def dropped(self, signal: str, count: int) -> None:
        return None


NO_RECORDER = _NoRecorder()
_current: Recorder | _NoRecorder = NO_RECORDER


def set_recorder(recorder: Recorder | _NoRecorder) -> None:
    global _current
    _current = recorder


def recorder() -> Recorder | _NoRecorder:
    return _current


class _Otp:
    """``kyo_otel.otp``: the OTP domain events."""

    @staticmethod
    def sent(tenant: str | None) -> None:
        """An OTP was handed to the SMS sender."""
        _current.otp_sent(tenant)

    @staticmethod
    def verified(tenant: str | None, success: bool, reason: str | None = None) -> None:
        """A verification finished; ``reason`` is one of expired, wrong_code, too_many_attempts."""
        _current.otp_verified(tenant, success, reason)


otp = _Otp()


def rate_limited(tenant: str | None, resource: str) -> None:
    """A request was rejected by the rate limiter guarding ``resource`` (e.g. ``otp.send``)."""
    _current.rate_limited(tenant, resource)
