"""The resource: who is emitting. One per process, so gunicorn workers never collide."""

from __future__ import annotations

import os
import uuid

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as sdk_version

from kyo_otel.catalog import ENVIRONMENT, SERVICE
from kyo_otel.config import Settings
from kyo_otel.scrub import Scrubber
from kyo_otel.version import __version__


def build_resource(settings: Settings, scrubber: Scrubber | None = None) -> Resource:
    """Resource attributes: ``OTEL_RESOURCE_ATTRIBUTES`` first, kyo's own settings on top.

    A ``service.name`` given only through ``OTEL_RESOURCE_ATTRIBUTES`` is kept (the spec lets
    ``OTEL_SERVICE_NAME`` override it, not kyo's default). ``service.instance.id`` is a fresh
    UUID for each call, i.e. for each process that configures telemetry. With a ``scrubber``
    the attributes are scrubbed here, once: every signal carries the resource, and no exporter
    scrubs it.
    """
    attributes: dict[str, str | int] = dict(settings.resource_attributes)
    if settings.sources.get("service_name") != "default" or SERVICE not in attributes:
        attributes[SERVICE] = settings.service_name
    attributes["service.version"] = settings.service_version
    attributes[ENVIRONMENT] = settings.environment
    attributes["service.instance.id"] = str(uuid.uuid4())
    attributes["process.pid"] = os.getpid()
    attributes["telemetry.sdk.language"] = "python"
    attributes["telemetry.sdk.name"] = "opentelemetry"
    attributes["telemetry.sdk.version"] = sdk_version
    attributes["telemetry.distro.name"] = "kyo_otel"
    attributes["telemetry.distro.version"] = __version__
    if scrubber is not None:
        attributes = scrubber.scrub_attributes(attributes) or attributes
    return Resource(attributes)
