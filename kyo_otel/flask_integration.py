"""Flask integration: request spans (kyo_otel's lean server span, ``kyo_otel.flask_spans``, or
opentelemetry-instrumentation-flask with ``instrumentation="contrib"``), request metrics and a
reusable ``/health`` endpoint from kyo_otel.

Request metrics are keyed by the route template (``/otp/verify``), never the raw URL: requests
that match no route share the one value ``(unmatched)``, so a scanner probing a thousand paths
adds no series. The instrumentation's own metrics are off (see ``kyo_otel.catalog``).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import SpanKind

from kyo_otel import catalog, context, flask_spans
from kyo_otel._sdk.flask_app import has_served_requests
from kyo_otel.excluded_urls import ExcludedUrls
from kyo_otel.health import ActiveTenants, RedisHealth
from kyo_otel.instruments import recorder

if TYPE_CHECKING:
    from flask import Flask

    from kyo_otel.telemetry import Telemetry

_logger = logging.getLogger(__name__)

_START = "kyo_otel.start"
_CONTEXT = "kyo_otel.context"


class RequestContext:
    """A request's id (the caller's ``X-Request-Id`` or a new one) and tenant id, read from the
    WSGI environ, for every log record of the request and for the server span.

    kyo_otel's server span (``kyo_otel.flask_spans``) enters it around the whole request, its
    attributes among the span's first; otherwise a Flask hook on each side of the request does.
    """

    __slots__ = ("_request_id_key", "_tenant_key", "_metrics")

    def __init__(self, tenant_header: str, metrics: bool) -> None:
        self._request_id_key = flask_spans.environ_key(context.REQUEST_ID_HEADER)
        self._tenant_key = flask_spans.environ_key(tenant_header)
        self._metrics = metrics

    def begin(self, environ: Any) -> tuple[dict[str, str], Any]:
        """Enter the request's context: its span attributes, and what to pass to ``end()``."""
        if self._metrics:
            environ[_START] = time.perf_counter()
        request_id = context.accepted_request_id(environ.get(self._request_id_key))
        tenant = environ.get(self._tenant_key) or None
        state = (context.begin(request_id, tenant), ((context.REQUEST_ID_HEADER, request_id),))
        if tenant is None:
            return {context.REQUEST_ID: request_id}, state
        return {context.REQUEST_ID: request_id, context.TENANT_ID: context.tenant_id() or ""}, state

    @staticmethod
    def response_headers(state: Any) -> tuple[tuple[str, str], ...]:
        """``X-Request-Id``, echoed (or the new id)."""
        return state[1]  # type: ignore[no-any-return]

    @staticmethod
    def end(state: Any) -> None:
        context.end(state[0])


def _install_request_hooks(
    app: Flask,
    excluded: tuple[str, ...],
    request_context: RequestContext | None,
    active: ActiveTenants | None,
    learn_route: Callable[[str], None] | None = None,
) -> None:
    """With ``active`` (metrics on), the request's latency by route template and its tenant among
    the active ones; with ``request_context`` (when no kyo_otel server span enters it), the request
    and tenant ids for the request's log records and span, and ``X-Request-Id`` echoed in the
    response (kyo_otel's WSGI wrapper echoes it itself when it enters the context); with
    ``learn_route``, the matched route template, before the request's span ends and its access
    line is logged (``Scrubber.learn_route``; routes are learned as they are registered too,
    ``_learn_routes_as_added``: this is for a rule that bypassed the app's ``url_map.add``).

    One hook on each side of the request rather than one per concern: each Flask hook and each
    ``request`` lookup costs the request a few microseconds.
    """
    from flask import request
    from kyo_otel.runtime_context import current_span

    excluded_urls = ExcludedUrls(excluded)
    is_excluded = excluded_urls.environ if excluded_urls else None

    if request_context is not None:
        begin = request_context.begin

        @app.before_request
        def _kyo_begin() -> None:
            environ = request.environ
            attributes, environ[_CONTEXT] = begin(environ)
            span = current_span()
            if span.is_recording():
                span.set_attributes(attributes)

        @app.teardown_request
        def _kyo_context_end(_error: BaseException | None) -> None:
            state = request.environ.pop(_CONTEXT, None)
            if state is not None:
                request_context.end(state)

    @app.after_request
    def _kyo_after(response: Any) -> Any:
        if request_context is not None:  # else the WSGI wrapper that entered it adds the headers
            state = request.environ.get(_CONTEXT)
            if state is not None:
                headers = response.headers
                for name, value in request_context.response_headers(state):
                    if name not in headers:
                        headers[name] = value
        if active is None and learn_route is None:  # metrics and scrubbing off
            return response
        current = request._get_current_object()  # one context lookup instead of one per attribute
        rule = current.url_rule
        if learn_route is not None and rule is not None:
            learn_route(rule.rule)
        start = current.environ.get(_START)
        if active is None or start is None or (is_excluded is not None and is_excluded(current.environ)):
            return response
        status = response.status_code
        recorder().request(rule.rule if rule is not None else None, current.method, status, time.perf_counter() - start)
        if status < 400:
            active.mark(context.tenant_id())  # read from the header once, in RequestContext.begin
        return response


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
    from kyo_otel._sdk.contrib_flags import app_instrumented_by_contrib

    return app_instrumented_by_contrib(app)


def _install_health(app: Flask, path: str, health: RedisHealth | None) -> None:
    """Answer ``GET path`` with kyo's health check, but only for a request no application rule
    matched: an app's own route for the path wins whenever it is registered, before or after
    this call (a route of kyo's registered first would win Werkzeug's match and turn the app's
    503 into a 200). Flask hands every failed match to ``raise_routing_exception``, so matched
    requests pay nothing for this."""
    from flask import abort, jsonify
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    methods = ("GET", "HEAD")
    route_failed = app.raise_routing_exception

    def raise_routing_exception(failed: Any) -> Any:
        if failed.path != path or type(failed.routing_exception) is not NotFound:
            route_failed(failed)  # no rule for the path at all, not a 405 or a redirect of the app's
        if failed.method not in methods:
            raise MethodNotAllowed(valid_methods=list(methods))
        checks: dict[str, Any] = {}
        if health is not None:
            checks["redis"] = health.check()
        healthy = all(c["healthy"] for c in checks.values())
        response = jsonify({"status": "ok" if healthy else "degraded", "checks": checks})
        response.status_code = 200 if healthy else 503
        abort(response)  # a response raised as an HTTPException: Flask's after_request hooks run on it

    app.raise_routing_exception = raise_routing_exception  # type: ignore[method-assign]


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

    Before ``configure()`` the app is remembered and instrumented when ``configure()`` runs (an
    app factory may instrument before the entry point configures). Safe to call twice: the
    second call on the same app does nothing.
    """
    from kyo_otel import telemetry as telemetry_module

    telemetry = telemetry or telemetry_module.current()
    if getattr(app, "_kyo_otel_instrumented", False):
        return app
    if telemetry is None:
        _pending[app] = {"redis": redis, "tenant_header": tenant_header, "health_path": health_path}
        return app
    _pending.pop(app, None)
    app._kyo_otel_instrumented = True  # type: ignore[attr-defined]
    settings = telemetry.settings
    health = RedisHealth(redis) if redis is not None else None
    if health_path:
        _install_health(app, health_path, health)
    if not telemetry.providers:
        return app  # OTEL_SDK_DISABLED or profile none: no per-request work at all
    active = telemetry.active_tenants(redis)
    request_context: RequestContext | None = RequestContext(tenant_header, metrics=active is not None)
    if telemetry.tracer_provider is not None and settings.instrumentation == "kyo":
        if not _instrumented_by_contrib(app):
            flask_spans.instrument(app, telemetry.tracer_provider, settings.excluded_urls, request_context)
            request_context = None  # entered by the server span's wrapper
    elif telemetry.tracer_provider is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(
            app,
            request_hook=_name_unmatched_span,
            tracer_provider=_ServerSpanTracerProvider(telemetry.tracer_provider),
            meter_provider=NoOpMeterProvider(),
            # sqlcommenter tags are for SQL drivers; the context they attach costs every request.
            enable_commenter=False,
            excluded_urls=ExcludedUrls(settings.excluded_urls).contrib_value(),
        )
    # Raw paths of routes with a <code>, <token>, <phone>... are scrubbed in every signal.
    learn_route = telemetry.scrubber.learn_route if telemetry.scrubber is not None else None
    if learn_route is not None:
        for rule in app.url_map.iter_rules():
            learn_route(rule.rule)
        _learn_routes_as_added(app, learn_route)
    # After the instrumentation's own hooks: the server span is current when ours run.
    _install_request_hooks(app, settings.excluded_urls, request_context, active, learn_route)
    telemetry.observe_redis(health)
    return app


def _learn_routes_as_added(app: Flask, learn_route: Callable[[str], None]) -> None:
    """Learn each route the app registers from now on (an app factory that configures first adds
    its routes after), as it is registered: the first request's own log records, and Flask's
    "Exception on <path>" line, are emitted before the request's end, and would otherwise carry
    the route's raw ``<token>`` before anything had learned it. Through ``Map.add``, which every
    ``add_url_rule`` (app or blueprint) calls: nothing per request."""
    url_map = app.url_map
    add = url_map.add

    def add_and_learn(rule_factory: Any, *args: Any, **kwargs: Any) -> Any:
        result = add(rule_factory, *args, **kwargs)
        template = getattr(rule_factory, "rule", None)
        for found in [template] if isinstance(template, str) else [rule.rule for rule in url_map.iter_rules()]:
            learn_route(found)  # never raises
        return result

    url_map.add = add_and_learn  # type: ignore[method-assign]


_pending: weakref.WeakKeyDictionary[Flask, dict[str, Any]] = weakref.WeakKeyDictionary()
"""Apps given to ``instrument_app`` before ``configure()``, with their options (weakly held: an
app that is gone is not instrumented later)."""


def instrument_pending(telemetry: Telemetry) -> None:
    """Instrument the apps ``instrument_app`` was given before ``configure()`` (called by it).

    An app that has already served a request cannot take Flask hooks any more: it is left as it
    is, with a warning saying why.
    """
    for app, options in list(_pending.items()):
        _pending.pop(app, None)
        if has_served_requests(app):
            _logger.warning(
                "kyo_otel: Flask app %r served requests before kyo_otel.configure() and is not instrumented; "
                "call configure() before the app's first request",
                app.name,
            )
            continue
        try:
            instrument_app(app, telemetry, **options)
        except AssertionError as error:  # Flask's own check: the app took its first request meanwhile
            _logger.warning("kyo_otel: Flask app %r is not instrumented: %s", app.name, error)
