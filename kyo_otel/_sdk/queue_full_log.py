"""Counting queue drops by the SDK batch processors' log messages: the fallback of
``kyo_otel.drops`` on an SDK without processor self-metrics. The logger is named after the SDK's
private module that holds its ``BatchProcessor``."""

from __future__ import annotations

import logging

SDK_LOGGER = "opentelemetry.sdk._shared_internal"
"""The logger of the SDK's ``BatchProcessor`` (opentelemetry-sdk 1.45)."""


def filter_processor_warnings(counter: logging.Filter) -> None:
    """Put ``counter`` in front of the SDK logger's own filters.

    It must run first: the SDK's duplicate filter would hide all but one drop per 20 seconds.
    The logger is made to create WARNING records even if the application silenced
    ``opentelemetry`` loggers; the only ones at that level are the drops this filter swallows.
    """
    sdk_logger = logging.getLogger(SDK_LOGGER)
    sdk_logger.filters.insert(0, counter)
    if sdk_logger.getEffectiveLevel() > logging.WARNING:
        sdk_logger.setLevel(logging.WARNING)
