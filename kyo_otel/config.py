"""Configuration: one table of parameters, one precedence rule, read from a mapping.

Every setting is resolved the same way: ``configure()`` argument > ``KYO_OTEL_*`` variable >
standard ``OTEL_*`` variable > default. Defaults may depend on settings resolved before them
(the exporters follow from the environment name, the OTLP endpoint from the protocol). The
environment is any mapping, so tests pass a dict instead of patching ``os.environ``, and each
resolved value remembers where it came from (``kyo-otel doctor`` prints it).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from kyo_otel.errors import ConfigError

PROFILES = ("console", "otlp", "memory", "none")
PROTOCOLS = ("grpc", "http/protobuf")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
CONSOLE_FORMATS = ("text", "json")
INSTRUMENTATIONS = ("kyo", "contrib")
"""Who makes the request and Redis spans: kyo_otel's lean spans, or the contrib instrumentations
(same span names and semantic-convention attributes; the contrib ones cost the request more)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SIGNALS = ("traces", "metrics", "logs")

# Environment names map to a profile; any other name is treated as a deployed environment.
_ENVIRONMENT_PROFILES = {
    "development": "console",
    "dev": "console",
    "local": "console",
    "test": "memory",
    "testing": "memory",
}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


_default_environment = "development"


def set_default_environment(name: str) -> str:
    """Make ``name`` the environment when neither an argument nor ``KYO_OTEL_ENVIRONMENT`` names
    one, and return the previous default. The pytest plugin makes it ``test``, so an app
    factory's ``configure()`` gets the memory profile under pytest without a change."""
    global _default_environment
    previous, _default_environment = _default_environment, name
    return previous


def _environment_default(resolved: Mapping[str, Any]) -> str:
    return _default_environment


def profile_for_environment(environment: str) -> str:
    """development -> console, test -> memory, anything else (production, staging...) -> otlp."""
    return _ENVIRONMENT_PROFILES.get(environment.strip().lower(), "otlp")


# --- parsers: (raw value, setting name, source) -> value, raising ConfigError -------------


def _text(raw: Any, name: str, source: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(name, raw, "a non-empty string", source)
    return raw.strip()


def _choice(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[Any, str, str], str]:
    def parse(raw: Any, name: str, source: str) -> str:
        value = raw.strip().upper() if upper and isinstance(raw, str) else raw
        value = value.strip().lower() if isinstance(value, str) and not upper else value
        if value not in choices:
            raise ConfigError(name, raw, "one of " + ", ".join(choices), source)
        return value

    return parse


_exporter = _choice(PROFILES)


def _bool(raw: Any, name: str, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise ConfigError(name, raw, "true or false", source)


def _number(low: float, high: float, *, integer: bool = False) -> Callable[[Any, str, str], float]:
    kind = "an integer" if integer else "a number"

    def parse(raw: Any, name: str, source: str) -> float:
        try:
            value = int(raw) if integer else float(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, raw, f"{kind} in [{low:g}, {high:g}]", source) from None
        if isinstance(raw, bool) or math.isnan(value) or not low <= value <= high:
            raise ConfigError(name, raw, f"{kind} in [{low:g}, {high:g}]", source)
        return value

    return parse


def shown_endpoint(url: Any) -> Any:
    """``http://user:pw@collector:4317`` -> ``http://user:***@collector:4317``: an endpoint is
    printed (errors, ``kyo-otel doctor``), a password in it is a credential."""
    if not isinstance(url, str) or "@" not in url:
        return url
    scheme, at, rest = url.partition("://")
    userinfo, sign, host = rest.partition("@")
    if not at or not sign or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def _endpoint(raw: Any, name: str, source: str) -> str:
    allowed = "a URL such as http://localhost:4317 (scheme http or https, a host, an optional port)"
    if not isinstance(raw, str):
        raise ConfigError(name, raw, allowed, source)
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(name, shown_endpoint(raw), allowed, source) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or (port is not None and port == 0):
        raise ConfigError(name, shown_endpoint(raw), allowed, source)
    return raw.strip().rstrip("/")


def _values_hidden(raw: str) -> str:
    """``x-api-key=k3y,Authorization: Bearer t0k`` -> ``x-api-key=***,***``: the values of the
    headers are credentials, and the error is printed (stderr, ``kyo-otel doctor``)."""
    return ",".join(item.partition("=")[0] + "=***" if "=" in item else "***" if item.strip() else item for item in raw.split(","))


def _key_values(raw: Any, name: str, source: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (W3C baggage style, values URL-decoded) or a mapping."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if not isinstance(raw, str):
        raise ConfigError(name, "(hidden)", "key=value pairs separated by commas", source)
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(name, _values_hidden(raw), "key=value pairs separated by commas (values hidden here)", source)
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _names(raw: Any, name: str, source: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if isinstance(raw, (list, tuple, set, frozenset)) and all(isinstance(i, str) for i in raw):
        return tuple(raw)
    raise ConfigError(name, raw, "a comma-separated list of names", source)


def _url_patterns(raw: Any, name: str, source: str) -> tuple[str, ...]:
    """Regular expressions (see ``kyo_otel.excluded_urls``), each checked here."""
    from kyo_otel.excluded_urls import check_pattern

    patterns = _names(raw, name, source)
    for pattern in patterns:
        problem = check_pattern(pattern)
        if problem is not None:
            raise ConfigError(name, raw, f"comma-separated regular expressions ({pattern!r}: {problem})", source)
    return patterns


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One setting: its argument name, its variables, its parser and its default."""

    name: str
    parse: Callable[[Any, str, str], Any]
    default: Any  # a value, or a callable taking the settings resolved so far
    kyo_env: str | None = None
    otel_env: tuple[str, ...] = ()
    doc: str = ""


def _otlp_default_endpoint(resolved: Mapping[str, Any]) -> str:
    return "http://localhost:4318" if resolved["otlp_protocol"] == "http/protobuf" else "http://localhost:4317"


def _exporter_default(resolved: Mapping[str, Any]) -> str:
    return resolved["profile"] or profile_for_environment(resolved["environment"])


def _metric_interval_default(resolved: Mapping[str, Any]) -> float:
    # A person watching the console wants the table within seconds; collectors want a minute.
    return 10_000.0 if resolved["metrics_exporter"] == "console" else 60_000.0


PARAMS: tuple[Param, ...] = (
    Param("service_name", _text, "unknown_service", "KYO_OTEL_SERVICE_NAME", ("OTEL_SERVICE_NAME",),
          "service.name resource attribute"),
    Param("service_version", _text, "0.0.0", "KYO_OTEL_SERVICE_VERSION", (), "service.version"),
    Param("environment", _text, _environment_default, "KYO_OTEL_ENVIRONMENT", (),
          "deployment.environment.name; also picks the default profile (development; test under pytest)"),
    Param("profile", _choice(PROFILES), None, "KYO_OTEL_PROFILE", (),
          "exporters for all three signals; default follows the environment name"),
    Param("traces_exporter", _exporter, _exporter_default, "KYO_OTEL_TRACES_EXPORTER", ("OTEL_TRACES_EXPORTER",)),
    Param("metrics_exporter", _exporter, _exporter_default, "KYO_OTEL_METRICS_EXPORTER",
          ("OTEL_METRICS_EXPORTER",)),
    Param("logs_exporter", _exporter, _exporter_default, "KYO_OTEL_LOGS_EXPORTER", ("OTEL_LOGS_EXPORTER",)),
    Param("otlp_protocol", _choice(PROTOCOLS), "grpc", "KYO_OTEL_OTLP_PROTOCOL", ("OTEL_EXPORTER_OTLP_PROTOCOL",)),
    Param("otlp_endpoint", _endpoint, _otlp_default_endpoint, "KYO_OTEL_OTLP_ENDPOINT",
          ("OTEL_EXPORTER_OTLP_ENDPOINT",), "the collector; localhost (an ADOT sidecar) by default"),
    Param("otlp_headers", _key_values, {}, "KYO_OTEL_OTLP_HEADERS", ("OTEL_EXPORTER_OTLP_HEADERS",)),
    Param("otlp_timeout", _number(0.1, 60), 5.0, "KYO_OTEL_OTLP_TIMEOUT", (), "seconds per export call"),
    Param("sampler", _choice(SAMPLERS), "parentbased_traceidratio", "KYO_OTEL_SAMPLER", ("OTEL_TRACES_SAMPLER",)),
    Param("sample_ratio", _number(0.0, 1.0), 1.0, "KYO_OTEL_SAMPLE_RATIO", ("OTEL_TRACES_SAMPLER_ARG",),
          "ratio for the traceidratio samplers"),
    Param("disabled", _bool, False, "KYO_OTEL_DISABLED", ("OTEL_SDK_DISABLED",), "install no-op providers"),
    Param("log_level", _choice(LOG_LEVELS, upper=True), "INFO", "KYO_OTEL_LOG_LEVEL", (),
          "lowest level the log bridge exports (audit records are always exported)"),
    Param("console_format", _choice(CONSOLE_FORMATS), "text", "KYO_OTEL_CONSOLE_FORMAT", (),
          "console profile: text for people, json for container log drivers"),
    Param("metric_export_interval", _number(100, 3_600_000), _metric_interval_default,
          "KYO_OTEL_METRIC_EXPORT_INTERVAL", ("OTEL_METRIC_EXPORT_INTERVAL",),
          "milliseconds between metric exports (10 s on the console, 60 s otherwise)"),
    Param("span_queue_size", _number(1, 1_000_000, integer=True), 2048, "KYO_OTEL_SPAN_QUEUE_SIZE",
          ("OTEL_BSP_MAX_QUEUE_SIZE",)),
    Param("log_queue_size", _number(1, 1_000_000, integer=True), 2048, "KYO_OTEL_LOG_QUEUE_SIZE",
          ("OTEL_BLRP_MAX_QUEUE_SIZE",)),
    Param("span_export_batch_size", _number(1, 1_000_000, integer=True), 512, "KYO_OTEL_SPAN_EXPORT_BATCH_SIZE",
          ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), "spans per export call (at most the queue size)"),
    Param("log_export_batch_size", _number(1, 1_000_000, integer=True), 512, "KYO_OTEL_LOG_EXPORT_BATCH_SIZE",
          ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",), "log records per export call (at most the queue size)"),
    Param("batch_delay", _number(1, 600_000), 1000.0, "KYO_OTEL_BATCH_DELAY", ("OTEL_BSP_SCHEDULE_DELAY",),
          "milliseconds between span and log batch exports"),
    Param("shutdown_timeout", _number(0.1, 300), 5.0, "KYO_OTEL_SHUTDOWN_TIMEOUT", (),
          "seconds shutdown() may take, collector reachable or not"),
    Param("resource_attributes", _key_values, {}, "KYO_OTEL_RESOURCE_ATTRIBUTES", ("OTEL_RESOURCE_ATTRIBUTES",)),
    Param("excluded_urls", _url_patterns, (r"/health(\?|$)",), "KYO_OTEL_EXCLUDED_URLS",
          ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
          "regular expressions; a request whose full URL contains a match gets no span nor request metric"),
    Param("tenant_allowlist", _names, (), "KYO_OTEL_TENANT_ALLOWLIST", (),
          "tenant ids always kept as a metric dimension"),
    Param("tenant_cardinality_cap", _number(1, 10_000, integer=True), 100, "KYO_OTEL_TENANT_CARDINALITY_CAP", (),
          "distinct tenant ids per metric before values fold into one overflow value"),
    Param("scrubbing", _bool, True, "KYO_OTEL_SCRUBBING", (), "mask phone numbers, codes, emails, secrets"),
    Param("instrumentation", _choice(INSTRUMENTATIONS), "kyo", "KYO_OTEL_INSTRUMENTATION", (),
          "request and Redis spans: kyo (lean, in-house) or contrib (opentelemetry-instrumentation-flask/-redis)"),
    Param("flush_on_sigterm", _bool, True, "KYO_OTEL_FLUSH_ON_SIGTERM", (),
          "on SIGTERM, flush and shut down telemetry, then stop as the default action would; only where "
          "SIGTERM has no handler of its own"),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; ``sources`` says where each value came from."""

    service_name: str
    service_version: str
    environment: str
    profile: str | None
    traces_exporter: str
    metrics_exporter: str
    logs_exporter: str
    otlp_protocol: str
    otlp_endpoint: str
    otlp_headers: dict[str, str]
    otlp_timeout: float
    sampler: str
    sample_ratio: float
    disabled: bool
    log_level: str
    console_format: str
    metric_export_interval: float
    span_queue_size: int
    log_queue_size: int
    span_export_batch_size: int
    log_export_batch_size: int
    batch_delay: float
    shutdown_timeout: float
    resource_attributes: dict[str, str]
    excluded_urls: tuple[str, ...]
    tenant_allowlist: tuple[str, ...]
    tenant_cardinality_cap: int
    scrubbing: bool
    instrumentation: str
    flush_on_sigterm: bool
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def exporter(self, signal: str) -> str:
        """The exporter of one signal: console, otlp, memory or none."""
        return "none" if self.disabled else getattr(self, f"{signal}_exporter")

    def comparable(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "sources"}


def resolve_settings(arguments: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every parameter: argument > KYO_OTEL_* > OTEL_* > default.

    ``profile`` given by argument or ``KYO_OTEL_PROFILE`` stands in for each signal's exporter at
    its own level, so ``profile="memory"`` beats ``OTEL_TRACES_EXPORTER=otlp``, while a bare
    ``OTEL_TRACES_EXPORTER=otlp`` beats the environment name's default.
    """
    arguments = {k: v for k, v in (arguments or {}).items() if v is not None}
    unknown = set(arguments) - set(PARAMS_BY_NAME)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError("argument", name, "one of " + ", ".join(PARAMS_BY_NAME))
    env = os.environ if env is None else env
    resolved: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for param in PARAMS:
        candidates: list[tuple[str, Any]] = []
        if param.name in arguments:
            candidates.append(("argument", arguments[param.name]))
        signal = param.name.removesuffix("_exporter") if param.name.endswith("_exporter") else None
        if signal and "profile" in arguments:
            candidates.append(("argument profile", arguments["profile"]))
        if param.kyo_env and env.get(param.kyo_env, "").strip():
            candidates.append((param.kyo_env, env[param.kyo_env]))
        if signal and env.get("KYO_OTEL_PROFILE", "").strip():
            candidates.append(("KYO_OTEL_PROFILE", env["KYO_OTEL_PROFILE"]))
        for name in param.otel_env:
            if env.get(name, "").strip():
                candidates.append((name, env[name]))
                break
        if candidates:
            source, raw = candidates[0]
            resolved[param.name] = param.parse(raw, param.name, source)
        else:
            source = "default"
            default = param.default(resolved) if callable(param.default) else param.default
            resolved[param.name] = default
        sources[param.name] = source
    return Settings(**resolved, sources=sources)
