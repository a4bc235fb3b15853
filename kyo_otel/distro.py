"""Zero-code use through ``opentelemetry-instrument``, with the same setup as ``configure()``.

    OTEL_PYTHON_DISTRO=kyo OTEL_PYTHON_CONFIGURATOR=kyo opentelemetry-instrument flask --app app run

The configurator calls ``kyo_otel.configure()`` with settings from the environment. The distro
then adjusts three instrumentations that ``opentelemetry-instrument`` would otherwise load with
their defaults: Redis is already instrumented by ``configure()`` (sanitized statements), logging
is already bridged by ``configure()`` (a second handler would duplicate every record), and every
Flask app is instrumented by ``kyo_otel.instrument_app`` as it is created (request metrics by
route template, the instrumentation's duplicate metrics off). kyo's ``/health`` is not added in
this mode: code that never called kyo_otel did not ask for an endpoint.
"""

from __future__ import annotations

import functools
from typing import Any

from kyo_otel._sdk.entry_points import Configurator, Distro

_HANDLED_BY_CONFIGURE = frozenset({"redis", "logging"})


class KyoConfigurator(Configurator):
    """``OTEL_PYTHON_CONFIGURATOR=kyo``: ``kyo_otel.configure()`` from the environment."""

    def configure_kyo(self) -> None:
        import kyo_otel

        kyo_otel.configure()


class KyoDistro(Distro):
    """``OTEL_PYTHON_DISTRO=kyo``: instrument Flask apps the kyo way, skip what configure() did."""

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in _HANDLED_BY_CONFIGURE:
            return
        if entry_point.name == "flask":
            instrument_every_flask_app()
            return
        super().load_instrumentor(entry_point, **kwargs)


def instrument_every_flask_app() -> None:
    """Patch ``flask.Flask.__init__`` so that each new app goes through ``instrument_app``."""
    import flask

    original = flask.Flask.__init__
    if getattr(original, "_kyo_otel", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        from kyo_otel.flask_integration import instrument_app

        instrument_app(self, health_path=None)

    __init__._kyo_otel = True  # type: ignore[attr-defined]
    flask.Flask.__init__ = __init__  # type: ignore[method-assign]
