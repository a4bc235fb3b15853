"""Flush on SIGTERM, the signal ECS, Docker and Kubernetes stop a container with.

Python's default action for SIGTERM ends the process at once, skipping ``atexit``: a plain server
(``flask run``, werkzeug's ``run_simple``, a zero-code process under ``opentelemetry-instrument``)
loses every span, log record and metric point still buffered. ``configure()`` installs a handler
that shuts the configuration down (within ``shutdown_timeout``) and then lets SIGTERM end the
process exactly as the default would (killed by the signal, exit status 143 in a shell).

Only in place of the default: a process whose SIGTERM already has a handler (gunicorn's workers
and master, ``python -m sample_app``, an application's own) or is ignored keeps it, and an
application that installs its own later replaces this one. Off with ``flush_on_sigterm=False``
or ``KYO_OTEL_FLUSH_ON_SIGTERM=false``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

_logger = logging.getLogger(__name__)
_flush: Callable[[], Any] | None = None


def flush_on_sigterm(flush: Callable[[], Any]) -> bool:
    """Run ``flush`` on SIGTERM before the default action, if SIGTERM has its default action
    here; ``True`` when the handler is in place. Outside the main thread Python cannot set a
    signal handler: nothing is installed."""
    global _flush
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        _flush = flush
        return True
    if current is not signal.SIG_DFL:
        return False  # the application's or the server's own handler, or SIGTERM ignored
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (or not the main interpreter)
        _logger.debug("kyo_otel: configure() outside the main thread installs no SIGTERM handler")
        return False
    _flush = flush
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    try:
        if _flush is not None:
            _flush()
    finally:
        # What the default would have done: end the process, killed by the signal.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
