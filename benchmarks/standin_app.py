"""A stand-in for the sample OTP app while it is being written: the same routes and Redis work.

``create_app(redis, sms_sender)`` mirrors the sample app's factory: ``POST /otp/send`` validates
the phone, applies a per-tenant-and-phone rate limit, stores a hash of a fresh code with a TTL
and hands the code to the sender; ``POST /otp/verify`` checks it in constant time, at most five
attempts, single use, and writes an audit log line.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from typing import Any, Callable

from flask import Flask, jsonify, request

import kyo_otel

log = logging.getLogger("sample_app")
audit = logging.getLogger("sample_app.audit")
_PHONE = re.compile(r"^\+[1-9]\d{7,14}$")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def create_app(redis: Any, sms_sender: Callable[[str, str], None] | None = None) -> Flask:
    app = Flask("standin_app")
    send_sms = sms_sender or (lambda phone, code: log.info("sms sent to %s", phone[:4] + "****" + phone[-2:]))

    def _payload() -> tuple[dict[str, Any] | None, Any]:
        tenant = request.headers.get("X-Tenant-Id")
        if not tenant:
            return None, (jsonify(error="missing X-Tenant-Id header", field="X-Tenant-Id"), 400)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return None, (jsonify(error="malformed JSON"), 400)
        phone = body.get("phone")
        if not isinstance(phone, str) or not _PHONE.match(phone):
            return None, (jsonify(error="invalid phone", field="phone"), 400)
        body["tenant"] = tenant
        return body, None

    @app.post("/otp/send")
    def send() -> Any:
        body, error = _payload()
        if error:
            return error
        tenant, phone = body["tenant"], body["phone"]
        limit_key = f"otp:rl:{tenant}:{phone}"
        pipe = redis.pipeline(transaction=False)
        pipe.incr(limit_key)
        pipe.expire(limit_key, 600, nx=True)
        count = pipe.execute()[0]
        if count > 5:
            kyo_otel.rate_limited(tenant, "otp.send")
            return jsonify(error="rate limited"), 429
        code = f"{secrets.randbelow(1_000_000):06d}"
        redis.set(f"otp:code:{tenant}:{phone}", _hash(code), ex=300)
        redis.delete(f"otp:attempts:{tenant}:{phone}")
        send_sms(phone, code)
        kyo_otel.otp.sent(tenant)
        log.info("otp sent", extra={"tenant": tenant})
        return jsonify(status="sent"), 202

    @app.post("/otp/verify")
    def verify() -> Any:
        body, error = _payload()
        if error:
            return error
        tenant, phone, code = body["tenant"], body["phone"], body.get("code")
        if not isinstance(code, str) or not code.isdigit() or len(code) != 6:
            return jsonify(error="invalid code", field="code"), 400
        stored = redis.get(f"otp:code:{tenant}:{phone}")
        if stored is None:
            result, reason = False, "expired"
        elif redis.incr(f"otp:attempts:{tenant}:{phone}") > 5:
            result, reason = False, "too_many_attempts"
        elif hmac.compare_digest(stored.decode(), _hash(code)):
            redis.delete(f"otp:code:{tenant}:{phone}", f"otp:attempts:{tenant}:{phone}")
            result, reason = True, None
        else:
            result, reason = False, "wrong_code"
        kyo_otel.otp.verified(tenant, result, reason)
        audit.info("otp verification", extra={"tenant": tenant, "result": "success" if result else reason})
        return (jsonify(status="verified"), 200) if result else (jsonify(error=reason), 401 if reason == "wrong_code" else 410)

    return app
