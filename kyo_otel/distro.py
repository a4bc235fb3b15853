"""Zero-code use: ``OTEL_PYTHON_DISTRO=kyo OTEL_PYTHON_CONFIGURATOR=kyo opentelemetry-instrument``."""

from __future__ import annotations
