"""Fast path ``sync-gauge-type``: the SDK's synchronous gauge class (``_Gauge``, not exported
under a public name), to give it an explicit temporality. Off: the SDK's default for gauges
(CUMULATIVE, the same)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk import metrics as sdk_metrics

from kyo_otel._sdk import fast_path

SYNC_GAUGE: Any = getattr(sdk_metrics, "_Gauge", None)
"""The SDK's synchronous Gauge class, or None."""


@fast_path(
    "sync-gauge-type",
    replaces="(nothing faster: names the SDK's synchronous gauge class for the temporality table)",
    fallback="the SDK's default gauge temporality (CUMULATIVE, the same)",
)
def probe() -> None:
    if not isinstance(SYNC_GAUGE, type) or not callable(getattr(SYNC_GAUGE, "set", None)):
        raise AttributeError("opentelemetry.sdk.metrics has no _Gauge class")
