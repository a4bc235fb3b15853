"""SMS senders: the OTP service hands each code to one of these.

A sender is any object with ``send(tenant, phone, code)``. The default one only logs a masked
phone number (a real deployment plugs in its SMS gateway client); ``OutboxSender`` keeps the
codes in memory so that the demo and the tests can read the code a user would have received.
Neither ever logs the code.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from typing import Protocol

_logger = logging.getLogger("sample_app.sms")


def mask_phone(phone: str) -> str:
    """``+886912345678`` -> ``+886*******78`` (first 4 characters, last 2 digits, as kyo_otel's
    scrubber masks): enough to tell numbers apart in a log, no more."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:4] + "*" * (len(phone) - 6) + phone[-2:]


class SmsSender(Protocol):
    def send(self, tenant: str, phone: str, code: str) -> None:
        """Deliver ``code`` to ``phone``; raise to report a failed delivery."""


class LoggingSender:
    """The default: pretends to deliver, logging the masked phone number (never the code)."""

    def send(self, tenant: str, phone: str, code: str) -> None:
        _logger.info("sms delivered", extra={"kyo.tenant.id": tenant, "otp.phone": mask_phone(phone)})


class OutboxSender:
    """Keeps the last few codes per (tenant, phone) in memory, for the demo and the tests."""

    def __init__(self, keep: int = 5) -> None:
        self._codes: defaultdict[tuple[str, str], deque[str]] = defaultdict(lambda: deque(maxlen=keep))
        self._lock = threading.Lock()
        self.sent = 0

    def send(self, tenant: str, phone: str, code: str) -> None:
        with self._lock:
            self._codes[(tenant, phone)].append(code)
            self.sent += 1

    def latest(self, tenant: str, phone: str) -> str | None:
        """The last code sent to ``phone`` for ``tenant``, or ``None``."""
        with self._lock:
            codes = self._codes.get((tenant, phone))
            return codes[-1] if codes else None


class FailingSender:
    """A gateway that is down: every delivery fails (the service answers 502)."""

    def send(self, tenant: str, phone: str, code: str) -> None:
        raise ConnectionError("SMS gateway unreachable")
