"""Fast path ``contrib-semconv``: the contrib instrumentations' semantic-convention helpers
(``opentelemetry.instrumentation._semconv``), so that kyo's Redis spans carry exactly the
attributes contrib's would under ``OTEL_SEMCONV_STABILITY_OPT_IN``.

Re-exported under their contrib names. Off (the module or a helper is gone): kyo's own
rendering of the same rules below (``default``: the old attribute names, ``database`` /
``http``: the stable ones, ``.../dup``: both).
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

from kyo_otel._sdk import fast_path

_NAMES = (
    "_get_schema_url_for_signal_types", "_get_semconv_opt_in_modes", "_OpenTelemetryStabilitySignalType",
    "_set_db_redis_database_index", "_set_db_statement", "_set_db_system", "_set_http_net_peer_name_client",
    "_set_http_peer_port_client", "_set_net_transport",
)


# --- kyo's rendering, used when contrib's helpers are not there ---------------------------------


class _Signal(Enum):
    HTTP = "http"
    DATABASE = "database"


class _Mode(Enum):
    DEFAULT = "default"
    STABLE = "stable"
    DUP = "dup"


def _modes(signals: Any) -> dict[Any, _Mode]:
    opt_in = [part.strip() for part in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")]
    modes = {}
    for signal in signals:
        value = signal.value
        modes[signal] = _Mode.DUP if f"{value}/dup" in opt_in else _Mode.STABLE if value in opt_in else _Mode.DEFAULT
    return modes


def _old(mode: Any) -> bool:
    return mode is not _Mode.STABLE


def _new(mode: Any) -> bool:
    return mode is not _Mode.DEFAULT


def _schema_url(signals: Any) -> str:
    versions = {_Signal.HTTP: "1.21.0", _Signal.DATABASE: "1.25.0"}
    modes = _modes(signals)
    newest = max((versions[s] for s in signals if modes[s] is not _Mode.DEFAULT), default="1.11.0", key=lambda v: tuple(map(int, v.split("."))))
    return f"https://opentelemetry.io/schemas/{newest}"


def _pair(old: str | None, new: str | None) -> Any:
    def set_value(result: dict[str, Any], value: Any, mode: Any) -> None:
        if value is None or value == "" and old != "db.statement":
            return
        if old is not None and _old(mode):
            result[old] = value
        if new is not None and _new(mode):
            result[new] = value

    return set_value


def _transport(result: dict[str, Any], old: Any, new: Any, mode: Any) -> None:
    if _old(mode):
        result["net.transport"] = old
    if _new(mode):
        result["network.transport"] = new


def _database_index(result: dict[str, Any], index: Any, mode: Any) -> None:
    if _old(mode) and index is not None:
        result["db.redis.database_index"] = int(index)


def _statement(result: dict[str, Any], statement: Any, mode: Any) -> None:
    if statement is None:
        return
    if _old(mode):
        result["db.statement"] = statement
    if _new(mode):
        result["db.query.text"] = statement


def _port(result: dict[str, Any], port: Any, mode: Any) -> None:
    try:
        port = int(port)
    except (TypeError, ValueError):
        return
    _pair("net.peer.port", "server.port")(result, port, mode)


_OWN = {
    "_get_schema_url_for_signal_types": _schema_url,
    "_get_semconv_opt_in_modes": _modes,
    "_OpenTelemetryStabilitySignalType": _Signal,
    "_set_db_redis_database_index": _database_index,
    "_set_db_statement": _statement,
    "_set_db_system": _pair("db.system", "db.system.name"),
    "_set_http_net_peer_name_client": _pair("net.peer.name", "server.address"),
    "_set_http_peer_port_client": _port,
    "_set_net_transport": _transport,
}


def _contrib() -> dict[str, Any]:
    from opentelemetry.instrumentation import _semconv

    found = {name: getattr(_semconv, name, None) for name in _NAMES}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        raise AttributeError(f"opentelemetry.instrumentation._semconv has no {', '.join(missing)}")
    return found


try:
    _helpers = _contrib()
except Exception:  # the probe says why
    _helpers = _OWN

_get_schema_url_for_signal_types = _helpers["_get_schema_url_for_signal_types"]
_get_semconv_opt_in_modes = _helpers["_get_semconv_opt_in_modes"]
_OpenTelemetryStabilitySignalType = _helpers["_OpenTelemetryStabilitySignalType"]
_set_db_redis_database_index = _helpers["_set_db_redis_database_index"]
_set_db_statement = _helpers["_set_db_statement"]
_set_db_system = _helpers["_set_db_system"]
_set_http_net_peer_name_client = _helpers["_set_http_net_peer_name_client"]
_set_http_peer_port_client = _helpers["_set_http_peer_port_client"]
_set_net_transport = _helpers["_set_net_transport"]


@fast_path(
    "contrib-semconv",
    replaces="(no public equivalent) contrib's semantic-convention helpers, for attributes identical to contrib's",
    fallback="kyo's rendering of the same OTEL_SEMCONV_STABILITY_OPT_IN rules",
)
def probe() -> None:
    if _helpers is _OWN:
        _contrib()  # raises with the reason
        raise RuntimeError("contrib's helpers were missing when kyo_otel was imported")
    from opentelemetry.instrumentation import _semconv

    # With explicit modes: asking for the modes would fix contrib's reading of the environment
    # before configure() sets its default.
    signals = (_OpenTelemetryStabilitySignalType.DATABASE, _OpenTelemetryStabilitySignalType.HTTP)
    database, http = _semconv._StabilityMode.DATABASE_DUP, _semconv._StabilityMode.HTTP_DUP  # noqa: SLF001
    result: dict[str, Any] = {}
    _set_db_statement(result, "GET ?", database)
    _set_db_system(result, "redis", database)
    _set_http_net_peer_name_client(result, "localhost", http)
    _set_http_peer_port_client(result, 6379, http)
    if not result or set(result.values()) != {"GET ?", "redis", "localhost", 6379}:
        raise RuntimeError(f"contrib's semconv helpers set {result!r}")
    if len(result) != 8:
        raise RuntimeError(f"contrib's semconv helpers in dup modes set {sorted(result)}, not both names of each")
    if not callable(_get_schema_url_for_signal_types) or not callable(_get_semconv_opt_in_modes) or len(signals) != 2:
        raise TypeError("contrib's semconv mode functions are not callable")
