"""Fast path ``contrib-instrumented-flags``: the contrib instrumentations' own flags, read and
set directly.

``_is_instrumented_by_opentelemetry`` of the contrib ``RedisInstrumentor`` (a singleton) says
whether contrib instruments redis; kyo's Redis wrappers read it at every command, so that a
command never gets two spans. The same attribute on a Flask app (and contrib's
``_InstrumentedFlask`` class) says contrib instruments that app; kyo sets it on the apps it
instruments, as contrib does, so that contrib leaves them alone. Off: the instrumentor's public
``is_instrumented_by_opentelemetry`` property (a little slower per command), and apps are not
marked (contrib's ``instrument_app`` would then add its own spans: don't call it on an app kyo
instruments).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from kyo_otel._sdk import fast_path, is_on

_FLAG = "_is_instrumented_by_opentelemetry"


def redis_instrumented_by_contrib(instrumentor: Any) -> Callable[[], bool]:
    """A call answering whether contrib instruments redis now, chosen once (at ``install``)."""
    if is_on("contrib-instrumented-flags"):
        return functools.partial(getattr, instrumentor, _FLAG)  # one C call: an attribute read
    return lambda: bool(instrumentor.is_instrumented_by_opentelemetry)


def mark_app(app: Any, instrumented: bool) -> None:
    """Mark a Flask app as instrumented (or not) the way contrib's Flask instrumentation does."""
    if is_on("contrib-instrumented-flags"):
        setattr(app, _FLAG, instrumented)


def app_instrumented_by_contrib(app: Any) -> bool:
    """Whether contrib's Flask instrumentation instruments ``app``: marked by
    ``FlaskInstrumentor().instrument_app(app)``, or created after ``FlaskInstrumentor().instrument()``."""
    if getattr(app, _FLAG, False):
        return True
    contrib = sys.modules.get("opentelemetry.instrumentation.flask")
    if contrib is None:
        return False
    instrumented_class = getattr(contrib, "_InstrumentedFlask", None)
    if isinstance(instrumented_class, type):
        return isinstance(app, instrumented_class)
    instrumentor = getattr(contrib, "FlaskInstrumentor", None)  # public: contrib instruments every app
    return bool(instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry)


@fast_path(
    "contrib-instrumented-flags",
    replaces="the contrib instrumentors' is_instrumented_by_opentelemetry property, read at every Redis command",
    fallback="the public is_instrumented_by_opentelemetry property",
)
def probe() -> None:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    value = getattr(instrumentor, _FLAG, None)
    if not isinstance(value, bool):
        raise AttributeError(f"RedisInstrumentor has no boolean {_FLAG}")
    if value is not instrumentor.is_instrumented_by_opentelemetry:
        raise RuntimeError(f"RedisInstrumentor.{_FLAG} is not what is_instrumented_by_opentelemetry answers")
    if _FLAG not in vars(BaseInstrumentor):
        raise AttributeError(f"BaseInstrumentor has no {_FLAG}")
