"""The fork-safe recipe for gunicorn (and other pre-forking servers).

In ``gunicorn.conf.py``::

    from kyo_otel.gunicorn import on_starting, post_fork, worker_exit  # noqa: F401  (gunicorn hooks)

``on_starting`` refuses to start with a bad telemetry variable. Configure telemetry where the
app is created (in each worker, or once in the master with ``preload_app``: each forked worker
then gets its own ``service.instance.id``). ``worker_exit`` flushes what the worker buffered
before it leaves, within the shutdown bound. Children forked
by ``multiprocessing`` flush at exit too (see ``kyo_otel.telemetry.after_fork``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from kyo_otel import config, telemetry
from kyo_otel.errors import ConfigError


def on_starting(server: Any) -> None:
    """Check the telemetry variables in the master, before any worker starts.

    Without it a bad value (``KYO_OTEL_PROFILE=bogus``, a malformed ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_TRACES_SAMPLER_ARG=2``) surfaces as a traceback from every worker that fails to boot;
    with it gunicorn stops at once with one line naming the setting, the value and what is
    allowed. Only the environment is checked: ``configure()`` arguments are the app's own.
    """
    from kyo_otel.flask_spans import HeaderCapture

    try:
        config.resolve_settings()
        HeaderCapture.from_environment()  # the OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* patterns
    except ConfigError as exc:
        raise SystemExit(f"kyo_otel: configuration error: {exc}") from None


def post_fork(server: Any, worker: Any) -> None:
    """Give the worker its own identity if the app was preloaded and configured in the master.

    Python's fork hooks normally do this already (``kyo_otel.telemetry.after_fork``); calling it
    again is harmless, and it covers servers that fork without running them.
    """
    telemetry.after_fork()


def worker_exit(server: Any, worker: Any) -> None:
    """Flush and shut down the worker's telemetry, bounded by the shutdown timeout.

    The outcome goes to gunicorn's error log, one line per worker: how long the flush took, or
    that it stopped at its bound (collector slow or unreachable) and what was unsent is lost.
    """
    handle = telemetry.current()
    if handle is None or handle.pid != os.getpid():
        return
    start = time.monotonic()
    flushed = handle.shutdown()
    seconds = time.monotonic() - start
    log = getattr(worker, "log", None)
    if log is None:
        return
    if flushed:
        log.info("kyo_otel: telemetry flushed and shut down in %.2fs", seconds)
    else:
        log.warning(
            "kyo_otel: telemetry shutdown stopped at its bound after %.2fs (KYO_OTEL_SHUTDOWN_TIMEOUT=%gs); "
            "what was not yet exported is lost",
            seconds,
            handle.settings.shutdown_timeout,
        )
