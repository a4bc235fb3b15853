"""Fast path ``encode-once``: an OTLP/gRPC exporter that encodes a batch once, however often the
SDK retries it.

The SDK's gRPC exporter retries a failed batch (about 1 s, then 2 s later, within its timeout)
and turns it into protobuf again for each attempt: 40 ms of CPU, holding the GIL, for 512 spans.
While the collector is down every batch fails, so that repeated encoding is most of what
telemetry costs the request threads; encoding once removes two thirds of it. Overrides the
exporter's private ``_translate_data`` and ``_export``. Off: the SDK exporter as it is.
"""

from __future__ import annotations

import functools
from typing import Any

from kyo_otel._sdk import fast_path, is_on


class _EncodeOnce:
    _kyo_last: tuple[Any, Any] | None = None

    def _translate_data(self, data: Any) -> Any:
        last = self._kyo_last
        if last is not None and last[0] is data:
            return last[1]
        request = super()._translate_data(data)  # type: ignore[misc]
        self._kyo_last = (data, request)
        return request

    def _export(self, data: Any) -> Any:
        try:
            return super()._export(data)  # type: ignore[misc]
        finally:
            self._kyo_last = None  # keep no batch alive between exports


@functools.lru_cache(maxsize=None)
def _encoding_once(cls: type) -> type:
    return type(cls.__name__, (_EncodeOnce, cls), {"__module__": cls.__module__, "__doc__": cls.__doc__})


def encoding_once(cls: type) -> type:
    """``cls`` (an OTLP/gRPC exporter class) encoding each batch once, while the path is on."""
    if not is_on("encode-once") or not hasattr(cls, "_translate_data") or not hasattr(cls, "_export"):
        return cls
    return _encoding_once(cls)


@fast_path(
    "encode-once",
    replaces="the SDK's gRPC exporters encoding a batch again at each retry",
    fallback="the SDK's gRPC exporters as they are",
)
def probe() -> None:
    import inspect

    from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin

    for name, parameters in (("_translate_data", 2), ("_export", 2)):
        method = getattr(OTLPExporterMixin, name, None)
        if not callable(method):
            raise AttributeError(f"the SDK's gRPC exporter has no {name}")
        if len(inspect.signature(method).parameters) != parameters:
            raise TypeError(f"the SDK's gRPC exporter's {name}{inspect.signature(method)} takes other arguments")
    export = inspect.getsource(OTLPExporterMixin._export)  # noqa: SLF001
    if "_translate_data" not in export:
        raise RuntimeError("the SDK's gRPC exporter's _export no longer encodes through _translate_data")
