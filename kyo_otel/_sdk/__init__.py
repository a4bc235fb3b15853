"""The one place where kyo_otel uses private names of the SDK, the API, the contrib
instrumentations and redis-py: one module per fast path, each with a probe.

kyo_otel is fast because it replaces a few of those packages' internals (lean spans, the OTLP
wire encoder, the log handler's direct queue path...). A release may rename any of them. Each
fast path here registers a probe (``fast_path``) that checks the private names it needs (that
they exist, that they are callable as expected, and where cheap that they behave); ``configure()``
runs them all (``probe_all``). A fast path whose probe fails is off for that configuration: the
public SDK or contrib path is used instead, and one warning names the path and why. ``kyo-otel
doctor`` lists each one as on or off. ``tests/test_private_names.py`` keeps private names out of
every other module; ``tests/test_fast_path_fallbacks.py`` removes each path's internals and checks
that the fallback exports the same scrubbed data.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_logger = logging.getLogger("kyo_otel")

_MODULES = (
    "runtime_context", "lean_spans", "span_processors", "otlp_wire", "encode_once", "log_handler",
    "log_queue", "collect_hook", "contrib_flags", "redis_pipelines", "semconv", "providers",
    "propagators", "instrument_types",
)
"""The fast-path modules of this package, imported by ``probe_all`` (each registers itself)."""


@dataclass
class FastPath:
    """One replaced internal: what it replaces, what is used instead when it is off, its probe."""

    name: str
    replaces: str
    fallback: str
    probe: Callable[[], None] = field(repr=False)
    on: bool = True
    reason: str = ""


FAST_PATHS: dict[str, FastPath] = {}
_lock = threading.Lock()
_warned: set[tuple[str, str]] = set()


def fast_path(name: str, replaces: str, fallback: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated function as ``name``'s probe: it raises when the internals the
    path needs are missing or behave differently (the exception's text is the reason)."""

    def register(probe: Callable[[], None]) -> Callable[[], None]:
        FAST_PATHS[name] = FastPath(name, replaces, fallback, probe)
        return probe

    return register


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def run(name: str, warn: bool = True) -> bool:
    """Run one probe now; ``True`` when the fast path is on. Never raises."""
    path = FAST_PATHS[name]
    try:
        path.probe()
    except Exception as error:  # anything: a probe exists to catch what nobody foresaw
        turn_off(name, _reason(error), warn)
    else:
        path.on, path.reason = True, ""
    return path.on


def turn_off(name: str, reason: str, warn: bool = True) -> None:
    """Mark a fast path off (its probe failed, or its use failed where only use can tell, such as
    building an exporter) and warn once per path and reason."""
    path = FAST_PATHS[name]
    path.on, path.reason = False, reason
    if not warn:
        return
    with _lock:
        if (name, reason) in _warned:
            return
        _warned.add((name, reason))
    _logger.warning(
        "kyo_otel fast path %r is off (%s): the installed packages differ from what it needs; "
        "using %s instead. Everything is still exported and scrubbed, at a little more CPU",
        name, reason, path.fallback,
    )


def is_on(name: str) -> bool:
    """The result of the last probe (``probe_all`` runs them at ``configure()``)."""
    return FAST_PATHS[name].on


def load() -> dict[str, FastPath]:
    """Import every fast-path module (each registers its probe)."""
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return FAST_PATHS


def probe_all(warn: bool = True) -> list[FastPath]:
    """Run every probe (``configure()`` does, once per configuration): the fast paths, on or off.
    ``warn=False``: no warning for a path found off (``kyo-otel doctor`` lists them itself)."""
    load()
    for name in list(FAST_PATHS):
        run(name, warn)
    return list(FAST_PATHS.values())


def status_lines() -> list[str]:
    """``kyo-otel doctor``'s list: each fast path, on or off (and why), and what it replaces."""
    paths = probe_all(warn=False)
    width = max(len(path.name) for path in paths)
    lines = ["Fast paths (kyo_otel._sdk; each falls back to the public path when its probe fails):"]
    for path in sorted(paths, key=lambda p: p.name):
        state = "on " if path.on else "OFF"
        lines.append(f"  {state}  {path.name:<{width}}  {'replaces ' + path.replaces if path.on else path.reason + '; using ' + path.fallback}")
    return lines
