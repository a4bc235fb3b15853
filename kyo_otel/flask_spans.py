"""kyo_otel's own server span for Flask apps: the span opentelemetry-instrumentation-flask makes
(same name, kind, stable HTTP semantic-convention attributes, status and exception event), for
less than half its cost.

On the sample app's ``/otp/send`` (``benchmarks/overhead.py --compare kyo kyo,-flask
kyo,instrumentation=contrib kyo,instrumentation=contrib,-flask``) the contrib span costs about
310 microseconds of CPU a request, this one about 135, its export included: the contrib
instrumentation collects the request attributes twice and sets them twice, and runs two Flask
hooks and a context manager around the request. Here one WSGI wrapper enters the request context
(request and tenant ids), reads the environ once, starts the span with its attributes, keeps it
current while Flask handles the request (log records and Redis spans are inside it), adds the
route and status when the response starts, and ends the span when the request is done, or, for a
streamed body, when the server closes it.

``settings.instrumentation = "contrib"`` keeps opentelemetry-instrumentation-flask instead.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import wsgiref.util
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    detect_synthetic_user_agent,
    redact_url,
)

from kyo_otel._sdk.contrib_flags import mark_app
from kyo_otel._sdk.propagators import composite_parts
from kyo_otel.catalog import HTTP_METHODS
from kyo_otel.errors import ConfigError
from kyo_otel.excluded_urls import ExcludedUrls
from kyo_otel.runtime_context import attach, current_context, current_span, detach, with_span
from kyo_otel.spans import LeanTracer, end_quietly, record_error
from kyo_otel.version import __version__

if TYPE_CHECKING:
    from flask import Flask

SCOPE = "kyo_otel.flask"
"""Instrumentation scope of the server spans."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.21.0"
"""The semantic conventions of the attributes (stable HTTP), as the contrib instrumentation says."""
LEGACY_SCHEMA_URL = "https://opentelemetry.io/schemas/1.11.0"
"""The contrib instrumentation's schema when it records only the legacy HTTP attributes."""
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


def http_conventions(opt_in: str | None) -> tuple[bool, bool]:
    """(legacy, stable): the HTTP attribute names ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for, read
    as the contrib instrumentations read it: comma-separated values, ``http/dup`` both sets,
    ``http`` the stable names, anything else (or nothing) the legacy names. ``configure()`` sets
    ``http`` when the variable is unset."""
    values = [value.strip() for value in (opt_in or "").split(",")]
    if "http/dup" in values:
        return True, True
    return ("http" not in values), ("http" in values)

_ORIGINAL = "_kyo_otel_original_wsgi_app"
_logger = logging.getLogger(__name__)

# Responses whose body is complete when the application returns: the span ends then rather
# than at close(), which a test client (Flask's, unbuffered) never calls.
_NO_BODY_STATUS = frozenset({"204", "304"})
_CONTENT_LENGTH = frozenset({"Content-Length", "content-length", "CONTENT-LENGTH"})


def environ_key(header: str) -> str:
    """Where WSGI puts a request header: ``X-Tenant-Id`` -> ``HTTP_X_TENANT_ID`` (the two the
    environ keeps without the prefix: ``CONTENT_TYPE``, ``CONTENT_LENGTH``)."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


class _EnvironGetter(Getter[Any]):
    """Propagation headers from a WSGI environ (``traceparent`` -> ``HTTP_TRACEPARENT``)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def get(self, carrier: Any, key: str) -> list[str] | None:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = environ_key(key)
        value = carrier.get(name)
        return None if value is None else [value]

    def keys(self, carrier: Any) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()
_NO_CONTEXT = context_api.Context()

# A service sees few distinct user agents (its clients, load balancers, probes): remembered.
_synthetic_type = functools.lru_cache(maxsize=256)(detect_synthetic_user_agent)


def _headers_read(textmap: Any) -> tuple[str, ...] | None:
    """The environ keys of every header ``textmap`` reads, or ``None`` when that is not known.

    ``fields`` are what a propagator *injects*; for W3C tracecontext, baggage and AWS X-Ray they
    are also all that ``extract`` reads. Others may read more (B3's multi-header propagator also
    accepts the single ``b3`` header): they are always asked."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    known = (TraceContextTextMapPropagator, W3CBaggagePropagator, AwsXRayPropagator)
    parts = composite_parts(textmap) if type(textmap) is CompositePropagator else [textmap]
    if not isinstance(parts, list) or not all(type(part) in known for part in parts):
        return None
    return tuple(environ_key(field) for part in parts for field in part.fields)


class _Extractor:
    """The global propagator's ``extract``, skipped when the request has none of the headers it
    reads (see ``_headers_read``): most requests into a service carry no trace context, and
    asking three propagators to find nothing costs more than looking for their headers."""

    def __init__(self) -> None:
        self._textmap: Any = None
        self._keys: tuple[str, ...] | None = None

    def __call__(self, environ: Any) -> Any:
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:  # set_global_textmap() since the last request
            self._keys = _headers_read(textmap)
            self._textmap = textmap
        keys = self._keys
        if keys is not None:
            for key in keys:
                if key in environ:
                    break
            else:
                return _NO_CONTEXT
        return textmap.extract(environ, getter=_GETTER)


class HeaderCapture:
    """``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` / ``_RESPONSE``: the headers an
    operator asked to see on server spans (names or regular expressions, comma-separated), as
    ``http.request.header.<name>`` string arrays, values of ``..._SANITIZE_FIELDS`` as ``[REDACTED]``.
    Read and compiled once, when the app is instrumented; kyo_otel's scrubber still masks
    credentials and phone numbers in what is captured before it is exported."""

    def __init__(self, names: str | None, sanitized: str | None, prefix: str, variables: tuple[str, str]) -> None:
        match, redact = _any_of(names, variables[0]), _any_of(sanitized, variables[1])
        self._match = match.fullmatch if match is not None else None
        self._redact = redact.search if redact is not None else None
        self._prefix = prefix

    def __bool__(self) -> bool:
        return self._match is not None

    def attributes(self, headers: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
        """``headers``: (name, value) pairs; a repeated name's values are joined with commas."""
        match, redact = self._match, self._redact
        if match is None:
            return {}
        joined: dict[str, str] = {}
        for name, value in headers:
            if match(name):
                name = name.lower()
                joined[name] = value if name not in joined else f"{joined[name]},{value}"
        return {
            self._prefix + name.replace("-", "_"): ("[REDACTED]" if redact is not None and redact(name) else value,)
            for name, value in joined.items()
        }

    @classmethod
    def from_environment(cls) -> tuple[HeaderCapture, HeaderCapture]:
        """The two captures the ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` variables ask for;
        ``kyo_otel.ConfigError`` naming the variable for a pattern that does not compile."""
        sanitize = OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS
        sanitized = os.environ.get(sanitize)
        request, response = OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE
        return (
            cls(os.environ.get(request), sanitized, "http.request.header.", (request, sanitize)),
            cls(os.environ.get(response), sanitized, "http.response.header.", (response, sanitize)),
        )


def _any_of(patterns: str | None, variable: str) -> re.Pattern[str] | None:
    """One case-insensitive alternation of comma-separated patterns; ``None`` when there are none."""
    names = [p.strip() for p in (patterns or "").split(",") if p.strip()]
    try:
        return re.compile("|".join(names), re.IGNORECASE) if names else None
    except re.error as error:
        raise ConfigError(
            variable, patterns, f"comma-separated header names or regular expressions ({error})",
            "environment",
        ) from None


def _request_headers(environ: Any) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-"), value


def _protocol_version(protocol: str) -> str:
    return protocol[5:] if protocol[:5].upper() == "HTTP/" else protocol


def _host_without_port(host: str) -> str:
    """``example.com:8443`` -> ``example.com``; ``[::1]:80`` -> ``[::1]``."""
    head, colon, port = host.rpartition(":")
    if colon and port.isdigit() and (head.endswith("]") or ":" not in head):
        return head
    return host


def _add_port(attributes: dict[str, Any], key: str, port: str | None) -> None:
    """A port from the environ, when it is a number."""
    if port:
        try:
            attributes[key] = int(port)
        except ValueError:
            pass


def request_attributes(environ: Any, method: str) -> dict[str, Any]:
    """The span's request attributes, each read once from the environ."""
    attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": environ.get("wsgi.url_scheme", "http")}
    original = environ.get("REQUEST_METHOD", "")
    if original != method:
        attributes["http.request.method_original"] = original
    host = environ.get("HTTP_HOST")
    if host:
        attributes["server.address"] = _host_without_port(host)
    _add_port(attributes, "server.port", environ.get("SERVER_PORT"))
    attributes["url.path"] = environ.get("PATH_INFO") or "/"
    query = environ.get("QUERY_STRING")
    if query:
        attributes["url.query"] = query
    client = environ.get("REMOTE_HOST") or environ.get("REMOTE_ADDR")
    if client:
        attributes["client.address"] = client
    _add_port(attributes, "client.port", environ.get("REMOTE_PORT"))
    _add_user_agent(attributes, "user_agent.original", environ.get("HTTP_USER_AGENT"))
    protocol = environ.get("SERVER_PROTOCOL")
    if protocol:
        attributes["network.protocol.version"] = _protocol_version(protocol)
    return attributes


def legacy_request_attributes(environ: Any, method: str) -> dict[str, Any]:
    """The legacy names (semantic conventions before 1.21) for what ``request_attributes`` reads,
    as the contrib instrumentation records them (``OTEL_SEMCONV_STABILITY_OPT_IN`` without
    ``http``, or ``http/dup`` beside the stable ones)."""
    attributes: dict[str, Any] = {"http.method": method}
    for key, name in (("SERVER_NAME", "http.server_name"), ("wsgi.url_scheme", "http.scheme")):
        value = environ.get(key)
        if value:
            attributes[name] = value
    host = environ.get("HTTP_HOST")
    if host:
        attributes["net.host.name"] = attributes["http.host"] = host
    _add_port(attributes, "net.host.port", environ.get("SERVER_PORT"))
    target = environ.get("RAW_URI")
    if target is None:
        target = environ.get("REQUEST_URI")
    if target:
        attributes["http.target"] = target
    else:
        attributes["http.url"] = redact_url(wsgiref.util.request_uri(environ))
    address = environ.get("REMOTE_ADDR")
    if address:
        attributes["net.peer.ip"] = address
    _add_port(attributes, "net.peer.port", environ.get("REMOTE_PORT"))
    name = environ.get("REMOTE_HOST")
    if name and name != address:
        attributes["net.peer.name"] = name
    _add_user_agent(attributes, "http.user_agent", environ.get("HTTP_USER_AGENT"))
    protocol = environ.get("SERVER_PROTOCOL")
    if protocol:
        attributes["http.flavor"] = _protocol_version(protocol)
    return attributes


def _add_user_agent(attributes: dict[str, Any], key: str, agent: str | None) -> None:
    """The user agent under ``key`` (stable or legacy name) and, for a bot or a test tool, its
    ``user_agent.synthetic.type``."""
    if agent:
        attributes[key] = agent
        synthetic = _synthetic_type(agent)
        if synthetic:
            attributes["user_agent.synthetic.type"] = synthetic


def _both_conventions(environ: Any, method: str) -> dict[str, Any]:
    attributes = request_attributes(environ, method)
    attributes.update(legacy_request_attributes(environ, method))
    return attributes


def _method(environ: Any) -> str:
    method = environ.get("REQUEST_METHOD", "")
    if method in HTTP_METHODS:
        return method
    method = method.strip().upper()
    return method if method in HTTP_METHODS else "_OTHER"


def _route(environ: Any) -> str | None:
    """The matched route template (``/orders/<int:order_id>``), or ``None``: read from the
    request Flask made for this environ, so the URL is matched once, by Flask."""
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    return rule.rule if rule is not None else None


def _add_route(span: Any, environ: Any, method: str, attributes: dict[str, Any]) -> None:
    """``GET /orders/<int:order_id>`` and its ``http.route``; a request that matched no route keeps
    its method as its name: a raw path could carry a phone number, and every distinct name would
    be a new operation in the trace backend."""
    route = _route(environ)
    if route is not None:
        attributes["http.route"] = route
        span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")


def _body_is_complete(status: str, method: str, headers: list[tuple[str, str]]) -> bool:
    """Whether the response body is complete once the application returns (a known length, or no
    body): streamed bodies (no length) end their span at close()."""
    if method == "HEAD" or status[:3] in _NO_BODY_STATUS:
        return True
    for name, _ in headers:
        if name in _CONTENT_LENGTH:
            return True
    return False


class _EndOnClose:
    """A streamed body: the span ends when the server closes it, after the last chunk."""

    __slots__ = ("_iterable", "_span")

    def __init__(self, iterable: Iterable[bytes], span: Any) -> None:
        self._iterable = iterable
        self._span = span

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            end_quietly(self._span)


def _record_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    """Flask's ``got_request_exception``: an exception no error handler took, recorded on the
    server span (current while Flask handles the request). Sent only then, it costs nothing to
    the requests that succeed."""
    from flask import request

    span = current_span()
    if span.is_recording():
        record_error(span, exception)
        # Named now: an exception Flask propagates leaves no response, and the request is gone
        # by the time it reaches the WSGI wrapper.
        environ = request.environ
        route: dict[str, Any] = {}
        _add_route(span, environ, _method(environ), route)
        span.set_attributes(route)


def _failed(span: Any, exc: BaseException, stable: bool = True) -> None:
    """An exception out of the application: recorded (once: Flask's signal may have done it), the
    span ended; a failure to record it is swallowed, the exception goes on untouched."""
    try:
        if not _recorded(span):
            record_error(span, exc)
        recorded = getattr(span, "attributes", None)
        if stable and recorded is not None and "http.response.status_code" not in recorded:
            span.set_attribute("error.type", type(exc).__qualname__)  # no response: the exception says why
        span.end()
    except Exception:
        _logger.debug("kyo_otel: could not record an exception on the server span", exc_info=True)


def _recorded(span: Any) -> bool:
    """Whether ``_record_exception`` already recorded the exception on its way out of Flask."""
    return any(event.name == "exception" for event in getattr(span, "events", ()))


class RequestContext(Protocol):
    """What the request is (e.g. ``kyo_otel.flask_integration.RequestContext``: request and
    tenant ids): entered around each request, its attributes added to the server span, its
    response headers (``X-Request-Id``) added to the response unless the application set them."""

    def begin(self, environ: Any) -> tuple[dict[str, Any], Any]: ...

    def response_headers(self, state: Any) -> Sequence[tuple[str, str]]: ...

    def end(self, state: Any) -> None: ...


def _with_missing(headers: list[tuple[str, str]], added: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` and those of ``added`` it lacks (names compared without case), or ``headers``
    alone if they cannot be read. Added to the WSGI header list itself: werkzeug's ``Headers``
    lookups and validation cost a request about 15 µs, for one header."""
    try:
        present = {name.lower() for name, _ in headers}
    except Exception:  # not the (str, str) pairs WSGI asks for: the server will say so, not us
        return headers
    missing = [pair for pair in added if pair[0].lower() not in present]
    return headers + missing if missing else headers


def _adding(start_response: Callable[..., Any], added: Sequence[tuple[str, str]]) -> Callable[..., Any]:
    """``start_response`` that adds the missing ones of ``added`` to the response headers
    (``start_response`` itself when there are none to add)."""
    if not added:
        return start_response

    def start_response_adding(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, _with_missing(headers, added), *exc_info)

    return start_response_adding


def instrument(
    app: Flask, tracer_provider: Any, excluded_urls: Iterable[str] = (), request_context: RequestContext | None = None
) -> None:
    """Give every request of ``app`` a server span (none for ``excluded_urls``: regular expressions
    searched in the request's URL, see ``kyo_otel.excluded_urls``), inside ``request_context``
    when given (the excluded requests too).

    Marks the app as instrumented the way opentelemetry-instrumentation-flask does, so that its
    ``instrument_app`` on the same app adds no second server span.
    """
    from flask.signals import got_request_exception

    if getattr(app, _ORIGINAL, None) is not None:
        return
    legacy, stable = http_conventions(os.environ.get(SEMCONV_OPT_IN))
    collect = _both_conventions if legacy and stable else request_attributes if stable else legacy_request_attributes
    status_keys = ("http.response.status_code",) * stable + ("http.status_code",) * legacy
    schema_url = SCHEMA_URL if stable else LEGACY_SCHEMA_URL
    tracer = LeanTracer(tracer_provider.get_tracer(SCOPE, __version__, schema_url=schema_url))
    start_span = tracer.start_span
    wsgi_app = app.wsgi_app
    excluded = ExcludedUrls(excluded_urls)
    is_excluded = excluded.environ if excluded else None
    extract = _Extractor()
    server = SpanKind.SERVER
    internal = SpanKind.INTERNAL
    error = Status(StatusCode.ERROR)
    # None when not configured: the request path then tests a name, not a __bool__ call.
    request_headers, response_headers = (capture or None for capture in HeaderCapture.from_environment())

    def traced_wsgi_app(environ: Any, start_response: Callable[..., Any]) -> Any:
        if request_context is None:
            return traced(environ, start_response, None, ())
        try:
            extra, state = request_context.begin(environ)
            added = request_context.response_headers(state)
        except Exception:  # as for the span: the request goes on without its context
            _logger.debug("kyo_otel: no request context for this request", exc_info=True)
            return traced(environ, start_response, None, ())
        try:
            return traced(environ, start_response, extra, added)
        finally:
            request_context.end(state)

    def traced(
        environ: Any, start_response: Callable[..., Any], extra: dict[str, Any] | None, added: Sequence[tuple[str, str]]
    ) -> Any:
        if is_excluded is not None and is_excluded(environ):
            return wsgi_app(environ, _adding(start_response, added))
        try:
            method = _method(environ)
            if current_span() is INVALID_SPAN:
                parent = extract(environ)
                kind = server
            else:  # inside another instrumented layer (a WSGI middleware's span): a child of it
                parent = current_context()
                kind = internal
            started = collect(environ, method)
            if extra:
                started.update(extra)
            if request_headers is not None and kind is server:
                started.update(request_headers.attributes(_request_headers(environ)))
            span = start_span("HTTP" if method == "_OTHER" else method, parent, kind, started)
            token = attach(with_span(span, parent))
        except Exception:  # a telemetry failure costs the request its span, never the request
            _logger.debug("kyo_otel: no server span for this request", exc_info=True)
            return wsgi_app(environ, _adding(start_response, added))
        complete = False

        def start_response_seen(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            nonlocal complete
            try:
                if added:
                    headers = _with_missing(headers, added)
                complete = _body_is_complete(status, method, headers)
                _response_seen(span, environ, method, kind, status, headers)
            except Exception:
                _logger.debug("kyo_otel: the server span missed its response attributes", exc_info=True)
            return start_response(status, headers, *exc_info)

        try:
            body = wsgi_app(environ, start_response_seen)
        except BaseException as exc:
            _failed(span, exc, stable)
            raise
        finally:
            detach(token)
        if complete:
            end_quietly(span)
            return body
        return _EndOnClose(body, span)

    def _response_seen(span: Any, environ: Any, method: str, kind: Any, status: str, headers: Any) -> None:
        """Status code, route, name and captured response headers, once the response starts."""
        if not span.is_recording():
            return
        code = status[:3]
        attributes: dict[str, Any] = {}
        try:
            number = int(code)
        except ValueError:
            if stable:
                attributes["error.type"] = status
            span.set_status(error)
        else:
            for key in status_keys:
                attributes[key] = number
            if code[0] == "5":
                if stable:
                    attributes["error.type"] = code
                if span.status.status_code is not StatusCode.ERROR:  # else it names the exception
                    span.set_status(error)
        _add_route(span, environ, method, attributes)
        if response_headers is not None and kind is server:
            attributes.update(response_headers.attributes(headers))
        getattr(span, "set_trusted_attributes", span.set_attributes)(attributes)

    got_request_exception.connect(_record_exception, app, weak=False)
    setattr(app, _ORIGINAL, (wsgi_app, request_context))
    app.wsgi_app = traced_wsgi_app  # type: ignore[method-assign]
    mark_app(app, True)  # as contrib marks the apps it instruments


def uninstrument(app: Flask) -> bool:
    """Remove the server spans ``instrument`` added (its request context stays); ``False`` when it
    had added none."""
    from flask.signals import got_request_exception

    original = getattr(app, _ORIGINAL, None)
    if original is None:
        return False
    wsgi_app, request_context = original
    app.wsgi_app = wsgi_app if request_context is None else _in_context(wsgi_app, request_context)  # type: ignore[method-assign]
    delattr(app, _ORIGINAL)
    got_request_exception.disconnect(_record_exception, app)
    mark_app(app, False)
    return True


def _in_context(wsgi_app: Callable[..., Any], request_context: RequestContext) -> Callable[..., Any]:
    def in_context(environ: Any, start_response: Callable[..., Any]) -> Any:
        _, state = request_context.begin(environ)
        added = request_context.response_headers(state)
        try:
            return wsgi_app(environ, _adding(start_response, added))
        finally:
            request_context.end(state)

    return in_context
