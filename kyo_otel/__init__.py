"""kyo_otel: an OpenTelemetry distribution for Flask services that ship to AWS (or anywhere OTLP).

    import kyo_otel
    telemetry = kyo_otel.configure(service_name="otp-service", environment="production", app=app)
    kyo_otel.otp.sent(tenant_id)

Everything else is in small modules: ``config`` (parameters and precedence), ``catalog`` (every
metric), ``telemetry`` (the providers), ``flask_integration``, ``instruments`` (domain events),
``scrub`` (nothing sensitive leaves), ``logs`` / ``context`` (structured logs), ``audit``.
"""

from kyo_otel.audit import AUDIT_ATTRIBUTE, AUDIT_VALUE, audit
from kyo_otel.catalog import METRICS, MetricSpec
from kyo_otel.config import Settings, resolve_settings
from kyo_otel.context import request_context
from kyo_otel.errors import ConfigError
from kyo_otel.flask_integration import instrument_app
from kyo_otel.instruments import otp, rate_limited
from kyo_otel.scrub import Scrubber
from kyo_otel.telemetry import Telemetry, configure, current, shutdown
from kyo_otel.version import __version__

__all__ = [
    "AUDIT_ATTRIBUTE",
    "AUDIT_VALUE",
    "METRICS",
    "ConfigError",
    "MetricSpec",
    "Scrubber",
    "Settings",
    "Telemetry",
    "__version__",
    "audit",
    "configure",
    "current",
    "instrument_app",
    "otp",
    "rate_limited",
    "request_context",
    "resolve_settings",
    "shutdown",
]
