"""Telemetry dropped on a full export queue: counted in ``kyo.telemetry.dropped``, warned about
once per interval.

The SDK's batch span and log processors hold at most ``max_queue_size`` items; when the
collector is slow or down the queue fills and each further item is dropped with the warning
"Queue full, dropping Span." (or "Log."), which the SDK itself deduplicates to one per 20
seconds: the number of items lost is not reported anywhere by default. kyo_otel puts a filter in
front of that logger which takes each of these records, counts it into the catalog counter
``kyo.telemetry.dropped`` (attribute ``kyo.signal``: traces or logs) and swallows it; one summary
warning per interval says how many items were dropped.

The summary is logged from a short-lived thread: a drop can happen inside the log bridge itself
(the log queue is full while a record is being emitted), and logging from there would re-enter
the bridge.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter

from kyo_otel import catalog, instruments
from kyo_otel.fork_locks import fork_safe

SDK_LOGGER = "opentelemetry.sdk._shared_internal"
"""The logger of the SDK's ``BatchProcessor`` (opentelemetry-sdk 1.45)."""
_QUEUE_FULL = "Queue full, dropping"
_SIGNALS = {"Span": "traces", "Log": "logs"}  # the processor's ``exporting`` name -> signal
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
        if not (isinstance(record.msg, str) and record.msg.startswith(_QUEUE_FULL)):
            return True
        kind = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        signal = _SIGNALS.get(str(kind), str(kind).lower() or "unknown")
        instruments.recorder().dropped(signal, 1)
        with self._lock:
            self.total[signal] += 1
            self._pending[signal] += 1
            now = time.monotonic()
            first = self._last_report == -float("inf")
            due = now - self._last_report >= self.interval
            if due:
                self._last_report = now
                pending, self._pending = self._pending, Counter()
        if due:
            _warn_off_thread(_message(pending, first, self.interval))
        return False

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


_lock = threading.Lock()
_installed: DropCounter | None = None


def install(interval: float = REPORT_INTERVAL) -> DropCounter:
    """Put the counter in front of the SDK logger's own filters (once per process).

    It must run first: the SDK's duplicate filter would hide all but one drop per 20 seconds.
    The logger is made to create WARNING records even if the application silenced
    ``opentelemetry`` loggers; the only ones at that level are the drops this filter swallows.
    """
    global _installed
    with _lock:
        if _installed is None:
            _installed = DropCounter(interval)
            sdk_logger = logging.getLogger(SDK_LOGGER)
            sdk_logger.filters.insert(0, _installed)
            if sdk_logger.getEffectiveLevel() > logging.WARNING:
                sdk_logger.setLevel(logging.WARNING)
        return _installed


def installed() -> DropCounter | None:
    return _installed
