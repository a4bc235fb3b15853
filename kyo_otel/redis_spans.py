"""Lean client spans for redis-py: the contrib instrumentation's spans, with less of its CPU.

``opentelemetry-instrumentation-redis`` goes through wrapt, rebuilds the attributes and sets them
one by one, and re-derives the connection attributes on every call. These wrappers emit the same
spans (name, kind, attributes, parent, errors) with the connection attributes computed once per
connection pool and all attributes handed to ``start_span`` at once: about 20-25 µs less per
command or pipeline (a quarter of contrib's cost). What is left is the SDK span itself and its
export (``benchmarks/overhead.py --compare kyo kyo,instrumentation=contrib kyo,-redis``).

Covered: ``redis.Redis``, ``redis.cluster.RedisCluster``, ``redis.asyncio.Redis`` and
``redis.asyncio.cluster.RedisCluster`` commands, their pipelines and transactions (``execute``,
and the commands a WATCHing pipeline runs at once): the classes contrib instruments.

Statements are sanitized as contrib does (``SET ? ? ? ?``): no key or value is ever recorded.
For RediSearch commands contrib also records the query and the documents found; these spans keep
its span names (``redis.search``, ``redis.create_index``) but never those values.

Nothing is installed while the contrib ``RedisInstrumentor`` instruments redis, and a wrapper
steps aside when the contrib one is installed after it, so a command never gets two spans.
``suppress_instrumentation()`` (the health check's PING) creates no span.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio.client
import redis.asyncio.cluster
import redis.client
import redis.cluster
from opentelemetry import trace as trace_api
from kyo_otel._sdk.semconv import (  # contrib's helpers (fast path contrib-semconv)
    _get_schema_url_for_signal_types,
    _get_semconv_opt_in_modes,
    _OpenTelemetryStabilitySignalType,
    _set_db_redis_database_index,
    _set_db_statement,
    _set_db_system,
    _set_http_net_peer_name_client,
    _set_http_peer_port_client,
    _set_net_transport,
)
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.semconv.attributes.network_attributes import NetworkTransportValues
from opentelemetry.semconv.trace import DbSystemValues, NetTransportValues
from opentelemetry.trace import SpanKind, TracerProvider

from kyo_otel._sdk.contrib_flags import redis_instrumented_by_contrib
from kyo_otel._sdk.redis_pipelines import queued as _queued
from kyo_otel.runtime_context import attach, detach, instrumentation_enabled, with_span
from kyo_otel.spans import LeanTracer, end_quietly, record_error
from kyo_otel.version import __version__

_logger = logging.getLogger(__name__)
_SIGNALS = (_OpenTelemetryStabilitySignalType.DATABASE, _OpenTelemetryStabilitySignalType.HTTP)
_STATEMENT_LIMIT = 1000  # contrib's: longer sanitized statements end with "..."
_CLIENT = SpanKind.CLIENT
_SEARCH_NAMES = {"FT.SEARCH": "redis.search", "FT.CREATE": "redis.create_index"}  # contrib's names


class _State:
    """What the wrappers read on every call; ``tracer`` is None when uninstalled."""

    tracer: LeanTracer | None = None
    instrumented_by_contrib: Callable[[], bool] = staticmethod(lambda: False)  # type: ignore[assignment]
    statement_keys: tuple[str, ...] = ("db.statement",)
    modes: dict[Any, Any] = {}
    generation = 0  # bumped at each install: connection attributes cached before are recomputed


_state = _State()
_contrib = RedisInstrumentor()  # a singleton: its flag says whether contrib instruments redis
_lock = threading.Lock()
_CACHE_ATTRIBUTE = "_kyo_otel_span_attributes"
_originals: dict[tuple[type, str], Any] = {}  # (class, method name) -> the method we replaced


def install(tracer_provider: TracerProvider | None = None) -> bool:
    """Wrap redis-py's client classes (once); ``False`` when contrib instruments redis instead.

    Installing again (after ``uninstall`` or with a new provider) only swaps the tracer.
    """
    with _lock:
        if _contrib.is_instrumented_by_opentelemetry:
            return False
        modes = _get_semconv_opt_in_modes(_SIGNALS)
        statement: dict[str, Any] = {}
        _set_db_statement(statement, "", modes[_OpenTelemetryStabilitySignalType.DATABASE])
        _state.statement_keys = tuple(statement)
        _commands.clear()  # the statement keys may have changed with the semconv modes
        _pipelines.clear()
        _state.modes = modes
        _state.generation += 1
        _state.instrumented_by_contrib = redis_instrumented_by_contrib(_contrib)
        _state.tracer = LeanTracer(
            trace_api.get_tracer(__name__, __version__, tracer_provider, schema_url=_get_schema_url_for_signal_types(list(_SIGNALS)))
        )
        for cls, name, wrap, describe in _TARGETS:
            if (cls, name) not in _originals:
                original = cls.__dict__[name]
                _originals[(cls, name)] = original
                setattr(cls, name, wrap(original, describe))
        return True


def uninstall() -> None:
    """Stop making spans and restore the original methods (those nobody wrapped again since)."""
    with _lock:
        _state.tracer = None
        for (cls, name), original in list(_originals.items()):
            if getattr(cls.__dict__.get(name), "_kyo_otel", False):
                setattr(cls, name, original)
                del _originals[(cls, name)]
            # else someone (contrib) wrapped ours: ours stays underneath as a pass-through


# --- attributes ------------------------------------------------------------------------------


def _connection_attributes(instance: Any) -> dict[str, Any]:
    """db.system, the database index and the peer, as contrib derives them; cached on the pool."""
    pool = getattr(instance, "connection_pool", None)
    cached = getattr(pool, _CACHE_ATTRIBUTE, None)
    if cached is not None and cached[0] == _state.generation:
        return cached[1]
    kwargs = getattr(pool, "connection_kwargs", None)
    attributes: dict[str, Any] = {}
    if kwargs is not None:
        db_mode = _state.modes[_OpenTelemetryStabilitySignalType.DATABASE]
        net_mode = _state.modes[_OpenTelemetryStabilitySignalType.HTTP]
        _set_db_system(attributes, DbSystemValues.REDIS.value, db_mode)
        database = kwargs.get("db")
        _set_db_redis_database_index(attributes, 0 if database is None else database, db_mode)
        if "path" in kwargs:
            _set_http_net_peer_name_client(attributes, kwargs.get("path", ""), net_mode)
            _set_net_transport(attributes, NetTransportValues.OTHER.value, NetworkTransportValues.UNIX.value, net_mode)
        else:
            _set_http_net_peer_name_client(attributes, kwargs.get("host", "localhost"), net_mode)
            _set_http_peer_port_client(attributes, kwargs.get("port", 6379), net_mode)
            _set_net_transport(attributes, NetTransportValues.IP_TCP.value, NetworkTransportValues.TCP.value, net_mode)
        try:
            setattr(pool, _CACHE_ATTRIBUTE, (_state.generation, attributes))
        except AttributeError:  # a pool stand-in with __slots__: derive again next time
            pass
    return attributes


_SUBCOMMANDS = frozenset({
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "HOTKEYS", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SENTINEL", "SLOWLOG", "TFUNCTION", "XGROUP", "XINFO",
})
"""Commands whose second word is part of the name: redis-py's ``execute_command("CONFIG GET", p)``."""


def _named(command: Any) -> tuple[str, int]:
    """A command's name and how many arguments its first argument holds after the name.

    redis-py sends each word of the first argument as an argument of its own: its ``"CONFIG
    GET"``, and an application's ``execute_command(f"SET {key} {code}")`` alike. Only the
    command's own words name it; the others are keys and values (the whole string was the span's
    name and statement)."""
    if type(command) is bytes and b" " in command:
        command = command.decode("utf-8", "replace")
    if type(command) is not str:
        return str(command), 0
    words = command.split()
    if len(words) < 2:
        return command, 0
    size = 2 if words[0].upper() in _SUBCOMMANDS else 1
    return " ".join(words[:size]), len(words) - size


def _sanitized(args: tuple[Any, ...]) -> str:
    """``COMMAND ? ?``: the command name and one ``?`` per argument, never an argument."""
    if not args:
        return ""
    name, more = _named(args[0])
    statement = name + " ?" * (more + len(args) - 1)
    if len(statement) > _STATEMENT_LIMIT:
        statement = statement[: _STATEMENT_LIMIT - 3] + "..."
    return statement


def name_contrib_span(span: Any, instance: Any, args: Any, kwargs: Any) -> None:
    """A request hook for contrib's Redis spans (``instrumentation="contrib"``): a command written
    as one string (``SET key value``) gets its name and a ``?`` statement, as here; contrib keeps
    the whole string as both."""
    command = args[0] if args else None
    if type(command) in (str, bytes) and len(command.split()) > 1 and span.is_recording():
        name, _ = _named(command)
        if name != command:
            span.update_name(name)
            statement: dict[str, Any] = {}
            database = _get_semconv_opt_in_modes(_SIGNALS)[_OpenTelemetryStabilitySignalType.DATABASE]
            _set_db_statement(statement, _sanitized(args), database)  # the keys contrib set
            span.set_attributes(statement)


_Description = tuple[str, dict[str, Any]]
_commands: dict[tuple[Any, ...], _Description] = {}
_pipelines: dict[tuple[Any, ...], _Description] = {}
"""(command name, argument count) per command -> the span's name and statement attributes, for
single commands and for pipelines. A service runs a handful of command shapes, and the name
and statement depend on nothing else."""
_DESCRIBED_LIMIT = 1024


def _recalled(described: dict[tuple[Any, ...], _Description], key: tuple[Any, ...] | None) -> _Description | None:
    try:
        return described.get(key) if key else None
    except TypeError:  # an unhashable command name (not redis-py's): described anew each time
        return None


def _remember(described: dict[tuple[Any, ...], _Description], key: tuple[Any, ...], name: str, attributes: dict[str, Any]) -> None:
    """Keep a description when every command name is text (an int name would equal a bool one
    in the key, and their names differ)."""
    if all(type(command) is str or type(command) is bytes for command, _ in key):
        if len(described) >= _DESCRIBED_LIMIT:
            described.clear()
        described[key] = (name, attributes)


def _command_span(instance: Any, args: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    key = ((args[0], len(args)),) if args else None
    described = _recalled(_commands, key)
    if described is None:
        command = args[0] if args else None
        if command:
            name = (_SEARCH_NAMES.get(command) if isinstance(command, str) else None) or _named(command)[0]
        else:
            database = instance.connection_pool.connection_kwargs.get("db")
            name = str(0 if database is None else database)
        attributes = dict.fromkeys(_state.statement_keys, _sanitized(args))
        attributes["db.redis.args_length"] = len(args)
        described = (name, attributes)
        if key is not None and command:
            _remember(_commands, key, name, attributes)
    name, statement = described
    attributes = statement.copy()
    attributes.update(_connection_attributes(instance))
    return name, attributes


def _pipeline_span(instance: Any, _: Any) -> tuple[str, dict[str, Any]]:
    """``execute``'s own arguments (``raise_on_error``) say nothing: the queued commands do."""
    try:
        queued = [command.args if hasattr(command, "args") else command[0] for command in _queued(instance)]
        key = tuple([(args[0], len(args)) for args in queued])
    except (AttributeError, IndexError, TypeError, ValueError, KeyError):
        queued, key = [], None
    described = _recalled(_pipelines, key)
    if described is None:
        try:
            statement = "\n".join([_sanitized(args) for args in queued])
            name = " ".join([_named(args[0])[0] for args in queued])
        except (AttributeError, IndexError, TypeError, ValueError):
            queued, key, statement, name = [], None, "", ""
        attributes = dict.fromkeys(_state.statement_keys, statement)
        attributes["db.redis.pipeline_length"] = len(queued)
        described = (name or "redis", attributes)
        if key:
            _remember(_pipelines, key, *described)
    name, statement_attributes = described
    attributes = statement_attributes.copy()
    attributes.update(_connection_attributes(instance))
    return name, attributes


_Describe = Callable[[Any, Any], tuple[str, dict[str, Any]]]


_NOT_ERRORS: tuple[type[BaseException], ...] = (redis.WatchError,)
"""A transaction's expected retry signal, not an error (contrib leaves the status unset)."""


class _ClientSpan:
    """The span around one call (sync or async): current while the call runs; an exception out of
    it recorded as the SDK's ``start_as_current_span`` (contrib's) records it, an exception event
    and ERROR status, except a transaction's expected retry signal (``_NOT_ERRORS``).

    No span at all when uninstalled, when contrib instruments redis, under
    ``suppress_instrumentation()``, or if describing the call failed: a telemetry failure never
    reaches the command."""

    __slots__ = ("_span", "_token")

    def __init__(self, describe: _Describe, instance: Any, args: Any) -> None:
        self._span: Any = None
        tracer = _state.tracer  # read once: uninstall() may run on another thread
        if tracer is None or _state.instrumented_by_contrib() or not instrumentation_enabled():
            return
        try:
            name, attributes = describe(instance, args)
            span = tracer.start_span(name, None, _CLIENT, attributes)
            self._token = attach(with_span(span))
            self._span = span
        except Exception:
            _logger.debug("kyo_otel: no span for this Redis call", exc_info=True)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        span = self._span
        if span is None:
            return
        if isinstance(error, Exception) and not isinstance(error, _NOT_ERRORS) and span.is_recording():
            record_error(span, error)
        detach(self._token)
        end_quietly(span)


# --- wrappers --------------------------------------------------------------------------------


def _marked(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    functools.update_wrapper(wrapper, original)
    wrapper._kyo_otel = True  # type: ignore[attr-defined]
    return wrapper


def _traced(original: Callable[..., Any], describe: _Describe) -> Callable[..., Any]:
    """``original`` (a command or a pipeline's execute) inside a client span."""

    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _ClientSpan(describe, self, args):
            return original(self, *args, **kwargs)

    return _marked(traced, original)


def _traced_async(original: Callable[..., Any], describe: _Describe) -> Callable[..., Any]:
    """The same for the asyncio client's coroutines."""

    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _ClientSpan(describe, self, args):
            return await original(self, *args, **kwargs)

    return _marked(traced, original)


_TARGETS: tuple[tuple[type, str, Callable[[Callable[..., Any], _Describe], Callable[..., Any]], _Describe], ...] = (
    (redis.client.Redis, "execute_command", _traced, _command_span),
    (redis.client.Pipeline, "execute", _traced, _pipeline_span),
    (redis.client.Pipeline, "immediate_execute_command", _traced, _command_span),
    (redis.cluster.RedisCluster, "execute_command", _traced, _command_span),
    (redis.cluster.ClusterPipeline, "execute", _traced, _pipeline_span),
    (redis.asyncio.client.Redis, "execute_command", _traced_async, _command_span),
    (redis.asyncio.client.Pipeline, "execute", _traced_async, _pipeline_span),
    (redis.asyncio.client.Pipeline, "immediate_execute_command", _traced_async, _command_span),
    (redis.asyncio.cluster.RedisCluster, "execute_command", _traced_async, _command_span),
    (redis.asyncio.cluster.ClusterPipeline, "execute", _traced_async, _pipeline_span),
)
"""(class, method, wrapper factory, what the span says about the call)."""
