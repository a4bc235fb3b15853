"""The OTP logic: validation, the per-tenant-and-phone rate limit, codes stored as keyed hashes.

Nothing secret reaches Redis or the telemetry: keys carry an HMAC of the phone number, values an
HMAC of the code (bound to tenant and phone), both keyed with the server secret. A code lives
``ttl_seconds``, allows ``max_attempts`` wrong guesses and is deleted by the verification that
matches it (single use, also under concurrent verifications: WATCH/MULTI).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis as redis_lib

from sample_app.sms import SmsSender

PHONE_PATTERN = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164: + country code and number, at most 15 digits
CODE_PATTERN = re.compile(r"^[0-9]{6}$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

EXPIRED = "expired"
WRONG_CODE = "wrong_code"
TOO_MANY_ATTEMPTS = "too_many_attempts"


class InvalidField(ValueError):
    """A request field (or header) that is missing or malformed: a 400 naming it."""

    def __init__(self, field: str, message: str, error: str = "invalid_field") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.error = error


class VerificationConflict(RuntimeError):
    """Concurrent verifications of one code kept invalidating each other: try again (409)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window resets


@dataclass(frozen=True)
class Verification:
    success: bool
    reason: str | None = None  # expired | wrong_code | too_many_attempts
    attempts_remaining: int | None = None


@dataclass(frozen=True)
class OtpSettings:
    secret: bytes
    ttl_seconds: int = 300
    rate_limit: int = 5
    rate_window_seconds: int = 600
    max_attempts: int = 5


def validate_tenant(value: str | None) -> str:
    if value is None or value == "":
        raise InvalidField("X-Tenant-Id", "the X-Tenant-Id header is required", "missing_tenant")
    if not TENANT_PATTERN.match(value):
        raise InvalidField(
            "X-Tenant-Id", "X-Tenant-Id must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def _required_text(body: dict[str, Any], field: str, pattern: re.Pattern[str], message: str) -> str:
    """``body[field]``: a 400 ``missing_field`` when absent or null, ``invalid_field`` when it is
    not a string matching ``pattern``."""
    value = body.get(field)
    if value is None:
        raise InvalidField(field, f"{field} is required", "missing_field")
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidField(field, message)
    return value


def validate_phone(body: dict[str, Any]) -> str:
    return _required_text(body, "phone", PHONE_PATTERN, "phone must be a string in E.164 format, e.g. +886912345678")


def validate_code(body: dict[str, Any]) -> str:
    return _required_text(body, "code", CODE_PATTERN, "code must be a string of 6 digits")


def _text(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class OtpService:
    """Send and verify codes for (tenant, phone) pairs, with Redis as the only state."""

    def __init__(self, client: Any, settings: OtpSettings, sender: SmsSender) -> None:
        self.redis = client
        self.settings = settings
        self.sender = sender

    # -- keys and hashes -------------------------------------------------------------------

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.settings.secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    def phone_ref(self, tenant: str, phone: str) -> str:
        """A stable pseudonym of the phone within a tenant: Redis keys and audit records use it."""
        return self._mac("phone", tenant, phone)[:32]

    def _code_key(self, tenant: str, phone: str) -> str:
        return f"otp:code:{tenant}:{self.phone_ref(tenant, phone)}"

    def _rate_key(self, tenant: str, phone: str) -> str:
        return f"otp:rate:send:{tenant}:{self.phone_ref(tenant, phone)}"

    def _code_hash(self, tenant: str, phone: str, code: str) -> bytes:
        return self._mac("code", tenant, phone, code).encode()

    # -- operations ------------------------------------------------------------------------

    def check_rate(self, tenant: str, phone: str) -> RateDecision:
        """Count this send in a fixed window of ``rate_window_seconds``; allowed up to the limit."""
        key, window, limit = self._rate_key(tenant, phone), self.settings.rate_window_seconds, self.settings.rate_limit
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        if ttl is None or int(ttl) < 0:  # cannot happen with SET EX NX; never leave a counter forever
            self.redis.expire(key, window)
            ttl = window
        count = int(count)
        return RateDecision(count <= limit, limit, max(0, limit - count), max(1, int(ttl)))

    def send(self, tenant: str, phone: str) -> None:
        """Store a fresh code (replacing any earlier one) and hand it to the SMS sender."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._code_key(tenant, phone)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"hash": self._code_hash(tenant, phone, code), "attempts": 0})
        pipe.expire(key, self.settings.ttl_seconds)
        pipe.execute()
        try:
            self.sender.send(tenant, phone, code)
        except Exception:
            self.redis.delete(key)  # an undelivered code must not be guessable
            raise

    def verify(self, tenant: str, phone: str, code: str) -> Verification:
        """Compare in constant time; a match deletes the code, a miss spends one attempt."""
        key = self._code_key(tenant, phone)
        expected = self._code_hash(tenant, phone, code)
        limit = self.settings.max_attempts
        for _ in range(8):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    stored, attempts = pipe.hmget(key, ["hash", "attempts"])
                    if stored is None:
                        pipe.unwatch()
                        return Verification(False, EXPIRED)
                    used = int(attempts or 0)
                    if used >= limit:
                        pipe.unwatch()
                        return Verification(False, TOO_MANY_ATTEMPTS, 0)
                    match = hmac.compare_digest(_text(stored), expected)
                    pipe.multi()
                    if match:
                        pipe.delete(key)
                    else:
                        pipe.hincrby(key, "attempts", 1)
                    pipe.execute()
                except redis_lib.WatchError:
                    continue  # another verification changed the code meanwhile: read it again
            if match:
                return Verification(True)
            return Verification(False, WRONG_CODE, limit - used - 1)
        raise VerificationConflict("the code kept changing during verification")
