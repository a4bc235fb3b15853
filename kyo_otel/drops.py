"""Telemetry dropped on a full export queue: counted in ``kyo.telemetry.dropped``, warned about
once per interval.

The SDK's batch span and log processors hold at most ``max_queue_size`` items; when the
collector is slow or down the queue fills and each further item is dropped with the warning
"Queue full, dropping Span." (or "Log."), which the SDK itself deduplicates to one per 20
seconds: the number of items lost is not reported anywhere by default.

Where the installed SDK has them, the processors' own self-metrics count the drops: each batch
processor is built (``counted_processor``) with a meter provider of kyo's (``ProcessorMeters``)
and the SDK's switch for them on, and every ``otel.sdk.processor.{span,log}.processed`` point
with ``error.type=queue_full`` is counted into the catalog counter ``kyo.telemetry.dropped``
(attribute ``kyo.signal``: traces or logs). If the application turned those metrics on itself
(``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), they also go to its global meter provider, as
the SDK would send them. On an SDK without them, the fallback is the old way: a filter in front
of the SDK processors' logger (``kyo_otel._sdk.queue_full_log``) that counts each "Queue full"
record and swallows it. Either way one summary warning per interval says how many items were
dropped.

The summary is logged from a short-lived thread: a drop can happen inside the log bridge itself
(the log queue is full while a record is being emitted), and logging from there would re-enter
the bridge.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import NoOpMeter

from kyo_otel import catalog, instruments
from kyo_otel.fork_locks import fork_safe

_QUEUE_FULL = "Queue full, dropping"
_SIGNALS = {"Span": "traces", "Log": "logs"}  # the processor's ``exporting`` name -> signal
PROCESSED = {"otel.sdk.processor.span.processed": "traces", "otel.sdk.processor.log.processed": "logs"}
"""The SDK processors' self-metrics (semantic conventions) that count what they dropped, by signal."""
_ENABLED = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_NOUNS = {"traces": ("span", "spans"), "logs": ("log record", "log records")}

REPORT_INTERVAL = 60.0
"""Seconds between two summary warnings while items are being dropped."""

_logger = logging.getLogger("kyo_otel.drops")


class DropCounter(logging.Filter):
    """A filter for the SDK's batch-processor logger: counts "Queue full" records and swallows them."""

    def __init__(self, interval: float = REPORT_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self.total: Counter[str] = Counter()
        """Items dropped since this filter was installed, per signal."""
        self._pending: Counter[str] = Counter()
        self._last_report = -float("inf")
        self._new_locks()
        fork_safe(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """The fallback: a "Queue full" record of the SDK processors' logger, counted and swallowed."""
        if not _log_counting or not (isinstance(record.msg, str) and record.msg.startswith(_QUEUE_FULL)):
            return True
        kind = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        self.count(_SIGNALS.get(str(kind), str(kind).lower() or "unknown"), 1)
        return False

    def count(self, signal: str, items: int) -> None:
        """``items`` of ``signal`` dropped: counted, and warned about once per interval."""
        instruments.recorder().dropped(signal, items)
        with self._lock:
            self.total[signal] += items
            self._pending[signal] += items
            now = time.monotonic()
            first = self._last_report == -float("inf")
            due = now - self._last_report >= self.interval
            if due:
                self._last_report = now
                pending, self._pending = self._pending, Counter()
        if due:
            _warn_off_thread(_message(pending, first, self.interval))

    def report(self) -> None:
        """Warn about drops not reported yet (at shutdown: the last interval's count)."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if pending:
            _warn(_message(pending, False, None))


def _message(pending: Counter[str], first: bool, interval: float | None) -> str:
    what = " and ".join(
        f"{n} {_NOUNS.get(signal, (signal, signal))[n != 1]}" for signal, n in sorted(pending.items())
    )
    if first:
        return (
            f"kyo_otel is dropping telemetry: an export queue is full (collector slow or unreachable?); "
            f"dropped {what} so far. Drops are counted in {catalog.TELEMETRY_DROPPED.name} and summarised "
            f"here every {interval:.0f}s while they go on"
        )
    since = f" in the last {interval:.0f}s" if interval else " since the last report"
    return f"kyo_otel dropped {what}{since}: an export queue was full (counted in {catalog.TELEMETRY_DROPPED.name})"


def _warn(message: str) -> None:
    """Log the warning; also print it to stderr when kyo_otel's own log bridge is its only
    destination, as Python does for a logger without handlers: when the collector is down, the
    bridge is exactly what cannot deliver it."""
    _logger.warning(message)
    if _logger.isEnabledFor(logging.WARNING) and not _other_handlers(_logger):
        sys.stderr.write(f"WARNING kyo_otel: {message}\n")


def _other_handlers(logger: logging.Logger | None) -> bool:
    while logger is not None:
        if any(not getattr(h, "kyo_otel_handler", False) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def _warn_off_thread(message: str) -> None:
    threading.Thread(target=_warn, args=(message,), name="kyo-otel-drops", daemon=True).start()


class _DroppedItems:
    """The SDK processor's ``processed`` counter: its ``queue_full`` points are counted as drops
    (and everything is passed on to ``forward``, the application's own, when it wants them)."""

    def __init__(self, signal: str, counter: DropCounter, forward: Any) -> None:
        self.signal, self.counter, self.forward = signal, counter, forward

    def add(self, amount: int | float, attributes: Any = None, context: Any = None) -> None:
        if attributes and attributes.get("error.type") == "queue_full":
            self.counter.count(self.signal, int(amount))
        if self.forward is not None:
            self.forward.add(amount, attributes, context)


class _ProcessorMeter(NoOpMeter):
    def __init__(self, meters: ProcessorMeters, name: str, forward: Any) -> None:
        super().__init__(name)
        self._meters, self._forward = meters, forward

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        forward = self._forward.create_counter(name, unit, description) if self._forward is not None else None
        signal = PROCESSED.get(name)
        if signal is None:
            return forward if forward is not None else super().create_counter(name, unit, description)
        self._meters.counting.add(signal)
        return _DroppedItems(signal, self._meters.counter, forward)

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        if self._forward is not None:
            return self._forward.create_up_down_counter(name, unit, description)
        return super().create_up_down_counter(name, unit, description)

    def create_observable_up_down_counter(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> Any:
        if self._forward is not None:
            return self._forward.create_observable_up_down_counter(name, callbacks, unit, description)
        return super().create_observable_up_down_counter(name, callbacks, unit, description)


class ProcessorMeters(metrics_api.MeterProvider):
    """The meter provider kyo gives the SDK's batch processors: their self-metrics count drops."""

    def __init__(self, counter: DropCounter, forward: Any = None) -> None:
        self.counter = counter
        self.forward = forward
        self.counting: set[str] = set()
        """The signals whose processor created its ``processed`` counter here."""

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Any = None) -> Any:
        forward = self.forward.get_meter(name, version, schema_url, attributes) if self.forward is not None else None
        return _ProcessorMeter(self, name, forward)


@contextmanager
def _sdk_processor_metrics_on() -> Iterator[bool]:
    """The SDK's switch for its self-metrics, on while a processor is built (read only then);
    yields whether the application had turned them on itself."""
    with _lock:
        before = os.environ.get(_ENABLED)
        wanted = (before or "").strip().lower() == "true"
        os.environ[_ENABLED] = "true"
        try:
            yield wanted
        finally:
            if before is None:
                del os.environ[_ENABLED]
            else:
                os.environ[_ENABLED] = before


def counted_processor(cls: type, exporter: Any, signal: str, **options: Any) -> Any:
    """``cls(exporter, **options)`` (a batch processor) whose drops are counted: through its own
    self-metrics where the SDK has them, else (the fallback) from its "Queue full" warnings."""
    counter = install()
    with _sdk_processor_metrics_on() as wanted:
        meters = ProcessorMeters(counter, metrics_api.get_meter_provider() if wanted else None)
        try:
            processor = cls(exporter, meter_provider=meters, **options)
        except TypeError:  # an SDK whose processors take no meter provider
            processor = None
    global _log_counting
    if processor is not None and signal in meters.counting:
        _log_counting = False
        return processor
    if processor is not None:
        processor.shutdown()  # no self-metrics on this SDK: built again, the old way
    _count_from_log_messages(counter)
    return cls(exporter, **options)


def counting_from() -> str:
    """How drops are counted: "processor metrics", or "log messages" (the fallback)."""
    return "log messages" if _log_counting else "processor metrics"


_lock = threading.Lock()
_installed: DropCounter | None = None
_filter_installed = False
_log_counting = False
"""Whether the last batch processor built counts its drops by its log messages (the fallback)."""


def install(interval: float = REPORT_INTERVAL) -> DropCounter:
    """The process's drop counter (made once)."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = DropCounter(interval)
        return _installed


def _count_from_log_messages(counter: DropCounter) -> None:
    """The fallback: the counter in front of the SDK processors' logger (once per process)."""
    global _filter_installed, _log_counting
    from kyo_otel._sdk.queue_full_log import filter_processor_warnings

    with _install_lock:
        _log_counting = True
        if not _filter_installed:
            filter_processor_warnings(counter)
            _filter_installed = True


_install_lock = threading.Lock()


def installed() -> DropCounter | None:
    return _installed
