"""Fast path ``global-providers``: replace kyo's own global providers after ``shutdown()``, and
give the providers a forked worker's identity.

The API lets each global provider be set once (``set_tracer_provider`` warns and refuses a
second); a worker that shut down and configures afresh needs its new providers to be the global
ones, so kyo_otel replaces the API's private globals (``trace._TRACER_PROVIDER``,
``metrics._internal._METER_PROVIDER``, ``_logs._internal._LOGGER_PROVIDER``) when they hold a
provider of its own. After a fork, the providers' ``_update_resource`` gives them a new
``service.instance.id``. Off: the API's setters (a second configuration keeps the first
providers global, with the API's warning), and forked workers keep the parent's instance id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kyo_otel._sdk import fast_path, is_on

_logger = logging.getLogger("kyo_otel")
_GLOBALS = {
    "traces": ("opentelemetry.trace", "_TRACER_PROVIDER"),
    "metrics": ("opentelemetry.metrics._internal", "_METER_PROVIDER"),
    "logs": ("opentelemetry._logs._internal", "_LOGGER_PROVIDER"),
}


def _module(signal: str) -> Any:
    import importlib

    return importlib.import_module(_GLOBALS[signal][0])


def set_global(signal: str, provider: Any, setter: Callable[[Any], None]) -> None:
    """Install ``provider`` as the API's global one; after ``shutdown()`` kyo_otel replaces its
    own earlier provider; a provider installed by someone else is left alone (with the API's
    own warning)."""
    module, attribute = _module(signal), _GLOBALS[signal][1]
    existing = getattr(module, attribute, None)
    if existing is not None and getattr(existing, "_kyo_otel", False):
        if is_on("global-providers"):
            setattr(module, attribute, provider)
            provider._kyo_otel = True
            return
        _logger.warning(
            "kyo_otel: the API's global %s provider stays the first configuration's (fast path global-providers "
            "is off): what the application makes through the global API after this configure() is dropped; "
            "kyo_otel's own instrumentation uses the new providers", signal,
        )
    setter(provider)
    provider._kyo_otel = True


def update_resource(provider: Any, identity: Any) -> bool:
    """Merge ``identity`` into the provider's resource (a forked worker's); False when off."""
    if not is_on("global-providers"):
        return False
    provider._update_resource(identity)  # noqa: SLF001
    return True


@fast_path(
    "global-providers",
    replaces="(no public equivalent) a second set_*_provider after shutdown, and a forked worker's resource",
    fallback="the API's set_*_provider (the first configuration's providers stay global; forked workers keep the parent's instance id)",
)
def probe() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    for signal, (_, attribute) in _GLOBALS.items():
        if not hasattr(_module(signal), attribute):
            raise AttributeError(f"{_GLOBALS[signal][0]} has no {attribute}")
    for cls in (TracerProvider, MeterProvider, LoggerProvider):
        if not callable(getattr(cls, "_update_resource", None)):
            raise AttributeError(f"{cls.__name__} has no _update_resource")
    provider = TracerProvider(resource=Resource({"a": 1}), shutdown_on_exit=False)
    provider._update_resource(Resource({"b": 2}))  # noqa: SLF001
    if dict(provider.resource.attributes) != {"a": 1, "b": 2}:
        raise RuntimeError("TracerProvider._update_resource does not merge the resource")
