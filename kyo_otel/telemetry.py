"""``configure()``: the three providers, their exporters, the log bridge and the instrumentation.

One configuration per process. A second ``configure()`` resolves (and so validates) its
arguments, then returns the existing handle unchanged, warning when the arguments differ: the
OpenTelemetry API lets global providers be set only once, and instrumentations already hold
tracers from the first ones. Call ``shutdown()`` before a ``configure()`` that should start over
(e.g. in a forked worker, see ``kyo_otel.gunicorn``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kyo_otel import _sdk as fast_paths
from kyo_otel import catalog, console, drops, exporters, instruments, logs, metrics, traces
from kyo_otel._sdk.providers import set_global, update_resource
from kyo_otel.config import Settings, resolve_settings
from kyo_otel.health import ActiveTenants
from kyo_otel.resource import build_resource
from kyo_otel.scrub import Scrubber, ScrubbingLogExporter, ScrubbingSpanExporter, scrubbing

_logger = logging.getLogger(__name__)


@dataclass
class MemoryExporters:
    """What the memory profile keeps: finished spans, log records, and a reader for metrics."""

    spans: InMemorySpanExporter | None
    logs: InMemoryLogRecordExporter | None
    metrics: InMemoryMetricReader | None


class Telemetry:
    """The handle ``configure()`` returns: the providers, ``force_flush()`` and ``shutdown()``."""

    def __init__(self, settings: Settings, resource: Resource) -> None:
        self.settings = settings
        self.resource = resource
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.logger_provider: LoggerProvider | None = None
        self.metric_reader: MetricReader | None = None
        self.memory = MemoryExporters(None, None, None)
        self.recorder: instruments.Recorder | None = None
        self.log_handler: logging.Handler | None = None
        self.scrubber: Scrubber | None = None
        self.pid = os.getpid()
        self.redis_spans: str | None = None  # who makes the Redis spans: "kyo", "contrib", or not us
        self._redis_observed = False
        self._active_tenants: ActiveTenants | None = None
        self._levels_lock = threading.Lock()
        self.console: console.ConsoleSink | None = None  # console spans and logs both: printed together
        self.fast_paths: dict[str, bool] = {}
        """Each fast path (``kyo_otel._sdk``) and whether its probe passed at this configuration."""
        self._is_shut_down = False

    @property
    def providers(self) -> list[Any]:
        return [p for p in (self.tracer_provider, self.meter_provider, self.logger_provider) if p is not None]

    def observe_redis(self, health: Any) -> None:
        """Register the Redis health and latency gauges once per process (the first app's client)."""
        if self.meter_provider is None or health is None or self._redis_observed:
            return
        self._redis_observed = True
        health.observe(self.meter_provider.get_meter(catalog.SCOPE))

    def active_tenants(self, redis: Any = None) -> ActiveTenants | None:
        """The process's one count of active tenants, which every app instrumented with this
        configuration marks (``None`` without metrics): one gauge per process, whichever apps
        serve the requests. ``redis`` (an app's client) becomes the Redis it is shared through."""
        if self.meter_provider is None:
            return None
        with self._levels_lock:
            if self._active_tenants is None:
                self._active_tenants = ActiveTenants(redis)
                self._active_tenants.observe(self.meter_provider.get_meter(catalog.SCOPE))
            else:
                self._active_tenants.use_redis(redis)
        return self._active_tenants

    def reset_active_tenants(self) -> None:
        """Forget the tenants this process has seen (the test fixture starts each test from none)."""
        if self._active_tenants is not None:
            self._active_tenants.reset()

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything buffered; ``False`` when the bound was reached first.

        The memory profile's metric reader is left alone: flushing it would collect, and the
        DELTA points of that collection would be gone before a test reads them.
        """
        bound = timeout or self.settings.shutdown_timeout
        providers = [p for p in self.providers if not (p is self.meter_provider and self.memory.metrics is not None)]
        return _bounded([lambda p=p: p.force_flush(_ms(bound)) for p in providers], bound, "force_flush")

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop all three signals within ``timeout`` seconds (default: the setting).

        Returns ``False`` when an exporter was still busy at the deadline (e.g. the collector is
        unreachable); the process can exit anyway, only that unsent batch is lost.
        """
        global _current
        if self._is_shut_down:
            return True
        self._is_shut_down = True
        bound = timeout if timeout is not None else self.settings.shutdown_timeout
        counter = drops.installed()
        if counter is not None:
            counter.report()  # drops since the last summary, while the log bridge is still attached
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
        _uninstrument_redis(self.redis_spans)
        self.redis_spans = None
        if instruments.recorder() is self.recorder:
            instruments.set_recorder(instruments.NO_RECORDER)
        ms = _ms(bound)
        calls: list[Callable[[], Any]] = []
        if self.tracer_provider is not None:
            calls.append(lambda: self.tracer_provider.shutdown())  # type: ignore[union-attr]
        if self.logger_provider is not None:
            calls.append(lambda: self.logger_provider.shutdown())  # type: ignore[union-attr]
        if self.meter_provider is not None:
            calls.append(lambda: self.meter_provider.shutdown(timeout_millis=ms))  # type: ignore[union-attr]
        if self.console is not None:  # nothing to wait for: one after the other, so the output reads in order
            ordered = list(calls)
            calls = [lambda: [call() for call in ordered]]
        done = _bounded(calls, bound, "shutdown")
        with _lock:
            if _current is self:
                _current = None
        return done


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _bounded(calls: list[Callable[[], Any]], timeout: float, what: str) -> bool:
    """Run the calls in parallel daemon threads and wait at most ``timeout`` seconds in all."""
    threads = [threading.Thread(target=_quietly(call, what), name=f"kyo-otel-{what}", daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [t for t in threads if t.is_alive()]
    if late:
        _logger.warning("kyo_otel %s did not finish within %.1fs; unsent telemetry is dropped", what, timeout)
    return not late


def _quietly(call: Callable[[], Any], what: str) -> Callable[[], None]:
    def run() -> None:
        try:
            call()
        except Exception:
            _logger.warning("kyo_otel %s failed", what, exc_info=True)

    return run


# --- building ----------------------------------------------------------------------------


def _span_exporter(settings: Settings, kind: str, sink: console.ConsoleSink | None) -> Any:
    if kind == "otlp":
        return exporters.otlp_span_exporter(settings)
    if kind == "console":
        return console.ConsoleSpanExporter(sink=sink)
    return InMemorySpanExporter()


def _metric_reader(settings: Settings, kind: str, scrubber: Scrubber | None) -> MetricReader:
    if kind == "memory":
        return metrics.memory_reader(scrubber)
    exporter = (
        exporters.otlp_metric_exporter(settings)
        if kind == "otlp"
        else console.ConsoleMetricExporter(
            preferred_temporality=exporters.DELTA_TEMPORALITY, preferred_aggregation=exporters.EXPONENTIAL_HISTOGRAMS
        )
    )
    return metrics.periodic_reader(settings, exporter, scrubber)


def _log_exporter(settings: Settings, kind: str, sink: console.ConsoleSink | None) -> Any:
    if kind == "otlp":
        return exporters.otlp_log_exporter(settings)
    if kind == "console":
        return console.ConsoleLogExporter(fmt=settings.console_format, sink=sink)
    return InMemoryLogRecordExporter()


def _build(settings: Settings, scrubber: Scrubber | None = None) -> Telemetry:
    # Every exporter, whatever the profile, exports only scrubbed items; the scrubbing runs in
    # the export thread (batch processors), not in the request (kyo's OTLP/gRPC encoders scrub
    # as they encode, the other exporters get scrubbed copies). The resource is scrubbed once, here.
    scrubber = (scrubber or Scrubber()) if settings.scrubbing else None
    resource = build_resource(settings, scrubber)
    handle = Telemetry(settings, resource)
    if settings.disabled:
        return handle
    handle.scrubber = scrubber
    traces.install_propagators()
    # Stable HTTP semantic conventions (http.request.method, url.path, http.response.status_code)
    # rather than the instrumentations' legacy default; an explicit user choice is kept.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    # Each fast path's probe (kyo_otel._sdk): one that fails is off, with a warning.
    fast_paths.probe_all()

    if {settings.exporter("traces"), settings.exporter("logs")} & {"otlp", "console"}:
        drops.install()  # batch processors: count what a full queue drops
    if settings.exporter("traces") == settings.exporter("logs") == "console":
        handle.console = console.ConsoleSink()
    kind = settings.exporter("traces")
    if kind != "none":
        exporter = _span_exporter(settings, kind, handle.console)
        handle.memory.spans = exporter if kind == "memory" else None
        if handle.scrubber is not None:
            exporter = scrubbing(exporter, handle.scrubber, ScrubbingSpanExporter)
        handle.tracer_provider = traces.build_tracer_provider(settings, resource, exporter)
        set_global("traces", handle.tracer_provider, trace_api.set_tracer_provider)
        handle.redis_spans = _instrument_redis(settings, handle.tracer_provider)

    kind = settings.exporter("metrics")
    if kind != "none":
        reader = _metric_reader(settings, kind, handle.scrubber)
        handle.metric_reader = reader
        handle.memory.metrics = reader if isinstance(reader, InMemoryMetricReader) else None
        handle.meter_provider = metrics.build_meter_provider(resource, reader)
        set_global("metrics", handle.meter_provider, metrics_api.set_meter_provider)
        handle.recorder = instruments.Recorder(
            handle.meter_provider.get_meter(catalog.SCOPE),
            settings.tenant_cardinality_cap,
            settings.tenant_allowlist,
            sanitize=handle.scrubber.scrub_text if handle.scrubber is not None else str,
            reader=reader,
        )
        instruments.set_recorder(handle.recorder)

    kind = settings.exporter("logs")
    if kind != "none":
        exporter = _log_exporter(settings, kind, handle.console)
        handle.memory.logs = exporter if kind == "memory" else None
        if handle.scrubber is not None:
            exporter = scrubbing(exporter, handle.scrubber, ScrubbingLogExporter)
        handle.logger_provider = logs.build_logger_provider(settings, resource, exporter)
        set_global("logs", handle.logger_provider, set_logger_provider)
        if handle.console is not None:
            handle.console.flush_logs = handle.logger_provider.force_flush
        handle.log_handler = logs.attach_handler(
            handle.logger_provider, settings.log_level, scrub=handle.scrubber.scrub_text if handle.scrubber is not None else None
        )
    handle.fast_paths = {path.name: path.on for path in fast_paths.FAST_PATHS.values()}  # as built (an exporter may have turned one off)
    return handle


def _instrument_redis(settings: Settings, tracer_provider: TracerProvider) -> str | None:
    """Redis client spans, sanitized statements only (``SET ? ?``): keys hold phone numbers,
    values hold codes. Returns who makes them for this configuration ("kyo", "contrib"), or
    ``None`` when the contrib instrumentation was already active (a user's or
    ``opentelemetry-instrument``'s) and is left as it is."""
    if settings.instrumentation != "contrib":
        from kyo_otel import redis_spans

        return "kyo" if redis_spans.install(tracer_provider) else None
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    _uninstrument_redis("kyo")
    _uninstrument_redis("contrib")  # already instrumented (a user, an earlier configuration): redone with this provider
    from kyo_otel.redis_spans import name_contrib_span

    RedisInstrumentor().instrument(tracer_provider=tracer_provider, request_hook=name_contrib_span)
    return "contrib"


def _uninstrument_redis(installed: str | None) -> None:
    if installed == "kyo":
        from kyo_otel import redis_spans

        redis_spans.uninstall()
    elif installed == "contrib":
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


_lock = threading.RLock()
_current: Telemetry | None = None
_atexit_registered = False


def current() -> Telemetry | None:
    """The handle of this process's configuration, or ``None``."""
    return _current


def configure(
    *,
    app: Any = None,
    redis: Any = None,
    env: Mapping[str, str] | None = None,
    scrubber: Scrubber | None = None,
    **settings: Any,
) -> Telemetry:
    """Set up traces, metrics and logs for this process and return the handle.

    Keyword arguments are the settings of ``kyo_otel.config.PARAMS`` (``service_name``,
    ``environment``, ``profile``...); each beats its ``KYO_OTEL_*`` variable, which beats the
    standard ``OTEL_*`` one, which beats the default. ``env`` replaces ``os.environ`` as the
    source of variables. ``app`` (a Flask app) is instrumented too, with ``redis`` (a client)
    used for the health check and the active-tenant count; apps given to ``instrument_app()``
    before this call are instrumented now. ``scrubber`` replaces the default
    ``kyo_otel.Scrubber()`` (extra patterns, a callback); ``scrubbing=False`` turns scrubbing
    off. Raises ``kyo_otel.ConfigError``.
    """
    global _current, _atexit_registered
    resolved = resolve_settings(settings, env)
    if app is not None:  # its header captures checked before anything is installed
        from kyo_otel.flask_spans import HeaderCapture

        HeaderCapture.from_environment()
    with _lock:
        after_fork()  # no-op unless configured before a fork that skipped the fork hooks
        if _current is None:
            _current = _build(resolved, scrubber)
            if resolved.flush_on_sigterm and _current.providers:
                from kyo_otel.signals import flush_on_sigterm

                flush_on_sigterm(_shutdown_at_exit)
            if not _atexit_registered:
                atexit.register(_shutdown_at_exit)
                os.register_at_fork(after_in_child=after_fork)
                import multiprocessing.util

                multiprocessing.util.register_after_fork(_FORK_MARKER, _flush_multiprocessing_child_at_exit)
                _atexit_registered = True
        elif _current.settings.comparable() != resolved.comparable():
            _logger.warning(
                "kyo_otel.configure() was called again with different settings; keeping the first "
                "configuration (call shutdown() first to replace it)"
            )
        handle = _current
    from kyo_otel.flask_integration import instrument_app, instrument_pending

    instrument_pending(handle)  # apps given to instrument_app() before this call
    if app is not None:
        instrument_app(app, handle, redis=redis)
    return handle


def after_fork() -> None:
    """In a forked child: give the inherited configuration this process's identity.

    The SDK restarts its export threads in the child and drops the parent's queued items; what
    it does not change is ``service.instance.id``, so two gunicorn workers forked from a
    preloaded app would report as one instance (and their DELTA points would collide). This
    sets a fresh id and pid on all three providers. (``multiprocessing`` children, which leave
    through ``os._exit`` and skip ``atexit``, flush from a finalizer registered by
    ``_flush_multiprocessing_child_at_exit``.) Runs from
    ``os.register_at_fork``; call it from the post-fork hook of servers that fork without
    running Python's fork hooks (uWSGI). Idempotent.
    """
    handle = _current
    if handle is None or handle.pid == os.getpid():
        return
    handle.pid = os.getpid()
    identity = Resource({"service.instance.id": str(uuid.uuid4()), "process.pid": handle.pid})
    handle.resource = handle.resource.merge(identity)
    updated = [update_resource(provider, identity) for provider in handle.providers]
    if handle.metric_reader is not None and hasattr(handle.metric_reader, "resource"):
        handle.metric_reader.resource = handle.metric_reader.resource.merge(identity)
    if not all(updated):
        _logger.warning("kyo_otel: this forked process keeps its parent's service.instance.id (fast path global-providers is off)")


class _ForkMarker:
    """A weak-referenceable object for ``multiprocessing.util.register_after_fork``."""


_FORK_MARKER = _ForkMarker()


def _flush_multiprocessing_child_at_exit(_: object) -> None:
    # multiprocessing clears its finalizers when a child starts, then runs these after-fork
    # callbacks: registered here, the finalizer runs when the child leaves through os._exit.
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _shutdown_at_exit, exitpriority=100)


def shutdown(timeout: float | None = None) -> bool:
    """Shut down this process's configuration, if any (see ``Telemetry.shutdown``)."""
    handle = _current
    return handle.shutdown(timeout) if handle is not None else True


def _shutdown_at_exit() -> None:
    handle = _current
    if handle is not None and handle.pid == os.getpid():
        handle.shutdown()
