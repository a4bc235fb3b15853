"""The tenant guard: tenant ids become metric dimensions only within a bound.

Every distinct value of a dimension is a billed CloudWatch custom metric, so a flood of requests
with random ``X-Tenant-Id`` values must not create series without limit. Allow-listed tenants
always pass; other tenants pass until a metric has seen ``cap`` distinct values, after which
new ones are reported as one overflow value, with a warning logged once per metric and every
folded measurement counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from kyo_otel.catalog import TENANT_MISSING, TENANT_OVERFLOW
from kyo_otel.fork_locks import fork_safe

_logger = logging.getLogger(__name__)


class TenantGuard:
    """Maps a raw tenant id to the value recorded for one metric; O(1) once a value is known."""

    def __init__(
        self,
        metric_name: str,
        cap: int,
        allowlist: Iterable[str] = (),
        sanitize: Callable[[str], str] = str,
        on_overflow: Callable[[str], None] | None = None,
        values: str = "tenant ids",
        advice: str = "raise KYO_OTEL_TENANT_CARDINALITY_CAP or list important tenants in KYO_OTEL_TENANT_ALLOWLIST",
    ) -> None:
        """``values`` and ``advice`` word the warning: the same bound serves other dimensions
        whose values come from callers (the rate-limited resources)."""
        self.metric_name = metric_name
        self._values = values
        self._advice = advice
        self.cap = cap
        self._allow = frozenset(allowlist)
        self._sanitize = sanitize
        self._on_overflow = on_overflow
        self._known: dict[str, str] = {}
        self._new_locks()
        fork_safe(self)
        self._warned = False

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    @property
    def distinct(self) -> int:
        """How many distinct tenant values this metric has admitted (the overflow value excluded)."""
        return len(self._known)

    def reset(self) -> None:
        """Forget the admitted tenant ids (tests start each case from an empty guard)."""
        with self._lock:
            self._known.clear()
            self._warned = False

    def __call__(self, tenant: str | None) -> str:
        if not tenant:
            return TENANT_MISSING
        value = self._known.get(tenant)
        if value is None:
            value = self._admit(tenant)
        if value is TENANT_OVERFLOW and self._on_overflow is not None:
            self._on_overflow(self.metric_name)
        return value

    def _admit(self, tenant: str) -> str:
        # Overflowed raw ids are not remembered: the map would grow with the flood.
        with self._lock:
            value = self._known.get(tenant)
            if value is None:
                if tenant in self._allow or len(self._known) < self.cap:
                    value = self._known[tenant] = self._sanitize(tenant)[:128]
                else:
                    value = TENANT_OVERFLOW
                    self._warn()
        return value

    def _warn(self) -> None:
        if not self._warned:
            self._warned = True
            _logger.warning(
                "metric %s reached its cap of %d distinct %s; further ones are recorded as %r (%s)",
                self.metric_name,
                self.cap,
                self._values,
                TENANT_OVERFLOW,
                self._advice,
            )
