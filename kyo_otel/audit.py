"""Audit records: who did what to which resource, with what result, kept for a year.

``kyo_otel.audit("otp.verify", "phone", user_id=user, tenant_id=tenant, result="success")``
writes one log record carrying ``kyo.log.type="audit"``. The collector sends records with that
attribute to the audit log group (one-year retention) and all others to the application group
(one month); application records never carry it (the logging handler removes it from
``extra=``).

Audit records go straight to the logger provider: no logger level, handler level or
``KYO_OTEL_LOG_LEVEL`` can drop them, and log records are never sampled. They pass through the
same scrubber as everything else, so a phone number given as ``user_id`` is masked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current

from kyo_otel.context import TENANT_ID, add_correlation, tenant_id as current_tenant_id

AUDIT_ATTRIBUTE = "kyo.log.type"
"""The log-record attribute the collector filters on to route audit records."""
AUDIT_VALUE = "audit"
"""Its value on audit records (application records do not have the attribute)."""
AUDIT_LOGGER = "kyo_otel.audit"
"""Instrumentation scope (the ``logger`` field) of audit records."""

ACTION = "kyo.audit.action"
RESOURCE = "kyo.audit.resource"
RESULT = "kyo.audit.result"
USER_ID = "user.id"

_logger = logging.getLogger(__name__)
_warned = False


def audit_attributes(
    action: str, resource: str, *, user_id: str | None, tenant_id: str | None, result: str, **context: Any
) -> dict[str, Any]:
    """The attributes of one audit record (``context`` first, so it cannot overwrite the fields)."""
    attributes: dict[str, Any] = {k: v for k, v in context.items() if v is not None}
    attributes.update({AUDIT_ATTRIBUTE: AUDIT_VALUE, ACTION: str(action), RESOURCE: str(resource), RESULT: str(result)})
    if user_id is not None:
        attributes[USER_ID] = str(user_id)
    tenant = tenant_id if tenant_id is not None else current_tenant_id()
    if tenant is not None:
        attributes[TENANT_ID] = str(tenant)
    add_correlation(attributes)
    return attributes


def audit(
    action: str, resource: str, *, user_id: str | None, tenant_id: str | None, result: str, **context: Any
) -> None:
    """Write an audit record: ``action`` on ``resource`` by ``user_id`` in ``tenant_id`` -> ``result``.

    ``tenant_id=None`` takes the current request's tenant. Extra keyword arguments become
    attributes as named (scrubbed like any other; pass namespaced keys with ``**{"kyo.x": v}``).
    Never raises: a failure is logged once.
    """
    global _warned
    try:
        attributes = audit_attributes(action, resource, user_id=user_id, tenant_id=tenant_id, result=result, **context)
        body = f"audit: {action} {resource} -> {result}"
        from kyo_otel import logs
        from kyo_otel.telemetry import current

        handle = current()
        provider = handle.logger_provider if handle is not None else None
        if provider is None:
            # Logs are not exported by kyo_otel: hand the record to the application's own
            # handlers, past the loggers' levels (``handle`` skips the level check).
            stdlib_logger = logging.getLogger(AUDIT_LOGGER)
            stdlib_logger.handle(
                stdlib_logger.makeRecord(AUDIT_LOGGER, logging.INFO, __file__, 0, body, (), None, extra=attributes)
            )
            return
        now = time.time_ns()
        logs.emit(
            provider,
            AUDIT_LOGGER,
            LogRecord(
                timestamp=now,
                observed_timestamp=now,
                context=get_current(),
                severity_text="INFO",
                severity_number=SeverityNumber.INFO,
                body=body,
                attributes=attributes,
            ),
        )
    except Exception:
        if not _warned:
            _warned = True
            _logger.warning("kyo_otel.audit could not write an audit record", exc_info=True)
