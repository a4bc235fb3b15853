"""Flask integration: request spans (kyo_otel's lean server span, ``kyo_otel.flask_spans``, or
opentelemetry-instrumentation-flask with ``instrumentation="contrib"``), request metrics and a
reusable ``/health`` endpoint from kyo_otel.

Request metrics are keyed by the route template (``/otp/verify``), never the raw URL: requests
that match no route share the one value ``(unmatched)``, so a scanner probing a thousand paths
adds no series. The instrumentation's own metrics are off (see ``kyo_otel.catalog``).
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import SpanKind

from kyo_otel import catalog, context, flask_spans
from kyo_otel.health import ActiveTenants, RedisHealth
from kyo_otel.instruments import recorder

if TYPE_CHECKING:
    from flask import Flask

    from kyo_otel.telemetry import Telemetry

_START = "kyo_otel.start"
_CONTEXT = "kyo_otel.context"


def _install_request_hooks(
    app: Flask, excluded: tuple[str, ...], tenant_header: str, active: ActiveTenants | None, metrics: bool
) -> None:
    """Request id (the caller's ``X-Request-Id`` or a new one, echoed in the response) and tenant
    id for every log record of the request and on the server span; with ``metrics``, the request's
    latency by route template and its tenant among the active ones.

    One hook on each side of the request rather than one per concern: each Flask hook and each
    ``request`` lookup costs the request a few microseconds.
    """
    from flask import request
    from opentelemetry.trace import get_current_span

    excluded_set = frozenset(excluded)
    request_id_header = context.REQUEST_ID_HEADER
    accepted_request_id = context.accepted_request_id

    @app.before_request
    def _kyo_begin() -> None:
        environ = request.environ
        if metrics:
            environ[_START] = time.perf_counter()
        headers = request.headers
        request_id = accepted_request_id(headers.get(request_id_header))
        tenant = headers.get(tenant_header) or None
        environ[_CONTEXT] = context.begin(request_id, tenant)
        span = get_current_span()
        if span.is_recording():
            if tenant is None:
                span.set_attribute(context.REQUEST_ID, request_id)
            else:
                span.set_attributes({context.REQUEST_ID: request_id, context.TENANT_ID: context.tenant_id() or ""})

    @app.after_request
    def _kyo_after(response: Any) -> Any:
        request_id = context.request_id()
        headers = response.headers
        if request_id is not None and request_id_header not in headers:
            headers[request_id_header] = request_id
        if not metrics:
            return response
        start = request.environ.get(_START)
        if start is None or request.path in excluded_set:
            return response
        rule = request.url_rule
        status = response.status_code
        recorder().request(rule.rule if rule is not None else None, request.method, status, time.perf_counter() - start)
        if active is not None and status < 400:
            active.mark(context.tenant_id())  # read from the header once, in _kyo_begin
        return response

    @app.teardown_request
    def _kyo_context_end(_error: BaseException | None) -> None:
        tokens = request.environ.pop(_CONTEXT, None)
        if tokens is not None:
            context.end(tokens)


def _name_unmatched_span(span: Any, environ: Any) -> None:
    """A request that matched no route is named by its method only: a raw path could carry a
    phone number, and every distinct name would be a new operation in the trace backend."""
    from flask import request

    if request.url_rule is None and span.is_recording():
        span.update_name(request.method if request.method in catalog.HTTP_METHODS else "HTTP")


class _ServerSpanTracerProvider:
    """The tracer provider handed to the Flask instrumentation, whose tracer starts server spans
    without their request attributes.

    The instrumentation passes the attributes to ``start_span`` and then, the span recording,
    sets each of them again one by one: cleaning and storing them once instead of twice saves
    about a tenth of the span's cost. The span ends up with the same attributes; kyo_otel's
    samplers (always on/off, trace id ratio, parent based) never read them.
    """

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _AttributesSetAfterStart(self._provider.get_tracer(*args, **kwargs))


class _AttributesSetAfterStart:
    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def start_span(
        self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL, attributes: Any = None, **kwargs: Any
    ) -> Any:
        return self._tracer.start_span(name, context, kind, None, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracer, name)


def _instrumented_by_contrib(app: Flask) -> bool:
    """An app opentelemetry-instrumentation-flask already gives a server span: instrumented with
    ``FlaskInstrumentor().instrument_app(app)``, or created after ``FlaskInstrumentor().instrument()``
    (whose Flask subclass marks the app only after ``Flask.__init__``, from where the kyo distro
    calls ``instrument_app``)."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return True
    contrib = sys.modules.get("opentelemetry.instrumentation.flask")
    return contrib is not None and isinstance(app, getattr(contrib, "_InstrumentedFlask", ()))


def _install_health(app: Flask, path: str, health: RedisHealth | None) -> None:
    from flask import jsonify

    if any(rule.rule == path for rule in app.url_map.iter_rules()):
        return  # the application has its own

    def kyo_health() -> Any:
        checks: dict[str, Any] = {}
        if health is not None:
            checks["redis"] = health.check()
        healthy = all(c["healthy"] for c in checks.values())
        body = {"status": "ok" if healthy else "degraded", "checks": checks}
        return jsonify(body), 200 if healthy else 503

    app.add_url_rule(path, "kyo_health", kyo_health, methods=["GET"])


def instrument_app(
    app: Flask,
    telemetry: Telemetry | None = None,
    *,
    redis: Any = None,
    tenant_header: str = "X-Tenant-Id",
    health_path: str | None = "/health",
) -> Flask:
    """Instrument one Flask app: spans, request metrics, active tenants, Redis health, /health,
    and the request context of log records (request id, tenant id; ``X-Request-Id`` echoed).

    Safe to call twice: the second call on the same app does nothing.
    """
    from kyo_otel import telemetry as telemetry_module

    telemetry = telemetry or telemetry_module.current()
    if getattr(app, "_kyo_otel_instrumented", False) or telemetry is None:
        return app
    app._kyo_otel_instrumented = True  # type: ignore[attr-defined]
    settings = telemetry.settings
    health = RedisHealth(redis) if redis is not None else None
    if health_path:
        _install_health(app, health_path, health)
    if not telemetry.providers:
        return app  # OTEL_SDK_DISABLED or profile none: no per-request work at all
    if telemetry.tracer_provider is not None and settings.instrumentation == "kyo":
        if not _instrumented_by_contrib(app):
            flask_spans.instrument(app, telemetry.tracer_provider, settings.excluded_urls)
    elif telemetry.tracer_provider is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(
            app,
            request_hook=_name_unmatched_span,
            tracer_provider=_ServerSpanTracerProvider(telemetry.tracer_provider),
            meter_provider=NoOpMeterProvider(),
            # sqlcommenter tags are for SQL drivers; the context they attach costs every request.
            enable_commenter=False,
            excluded_urls=",".join(re.escape(path) + r"(\?|$)" for path in settings.excluded_urls),
        )
    # After the instrumentation's own hooks: the server span is current when ours run.
    active = ActiveTenants(redis) if telemetry.meter_provider is not None else None
    _install_request_hooks(app, settings.excluded_urls, tenant_header, active, metrics=active is not None)
    if active is not None:
        telemetry.observe_levels(health, active)
    return app
