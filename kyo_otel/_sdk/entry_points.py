"""The SDK's configurator base class (``opentelemetry.sdk._configuration._BaseConfigurator``) and
the ``_configure`` hook ``opentelemetry-instrument`` calls on a distro and a configurator: the
plugin contract of zero-code instrumentation, private by name. Not a fast path: without the base
class, ``OTEL_PYTHON_CONFIGURATOR=kyo`` is a plain class whose ``configure()`` still configures.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

try:
    from opentelemetry.sdk._configuration import _BaseConfigurator as _Base
except ImportError:  # another layout
    _Base = object  # type: ignore[assignment,misc]


class Configurator(_Base):  # type: ignore[misc,valid-type]
    """Calls ``self.configure_kyo()`` where ``opentelemetry-instrument`` configures."""

    def configure(self, **kwargs: Any) -> None:
        if _Base is object:
            self._configure(**kwargs)
        else:
            super().configure(**kwargs)

    def _configure(self, **kwargs: Any) -> None:
        self.configure_kyo()

    def configure_kyo(self) -> None:
        raise NotImplementedError


class Distro(BaseDistro):
    """A distro with nothing of its own to configure (``configure()`` did it)."""

    def _configure(self, **kwargs: Any) -> None:
        return None
