"""The Flask application: routes, settings, and JSON errors for every failure.

``create_app()`` builds the app around a Redis client (a real one from ``REDIS_URL``, or an
embedded fakeredis stand-in). Telemetry is configured by the entry points (``python -m
sample_app``, ``sample_app.wsgi``) or by ``create_app(configure_telemetry=True)``; an app
created after ``kyo_otel.configure()`` is instrumented by it either way.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

import redis as redis_lib
from flask import Flask, jsonify, request
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

import kyo_otel
from kyo_otel.health import RedisHealth
from sample_app import otp as otp_lib
from sample_app.otp import InvalidField, OtpService, OtpSettings, VerificationConflict
from sample_app.sms import LoggingSender, SmsSender, mask_phone

SERVICE_NAME = "kyo-otp-service"
RATE_LIMITED_RESOURCE = "otp.send"

_log = logging.getLogger("sample_app.otp")
_errors = logging.getLogger("sample_app.errors")

# Redis failures that mean "unavailable right now" (503), not a bug (500).
REDIS_UNAVAILABLE = (redis_lib.exceptions.ConnectionError, redis_lib.exceptions.TimeoutError)


def connect_redis(url: str, timeout: float = 1.0) -> redis_lib.Redis:
    """A client whose requests fail fast while Redis is down (one quick retry, short timeouts),
    and that reconnects by itself when Redis is back."""
    return redis_lib.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
        health_check_interval=30,
    )


def embedded_redis() -> Any:
    """An in-process Redis stand-in (fakeredis) for running without any infrastructure."""
    import fakeredis

    return fakeredis.FakeRedis()


def _setting(name: str, argument: Any, env: Mapping[str, str], default: int, low: int, high: int) -> int:
    raw, source = (argument, "argument") if argument is not None else (env.get(name), name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(raw, bool) or not low <= value <= high:
        raise kyo_otel.ConfigError(name, raw, f"an integer in [{low}, {high}]", source)
    return value


def resolve_settings(
    env: Mapping[str, str],
    *,
    ttl_seconds: int | None = None,
    rate_limit: int | None = None,
    rate_window_seconds: int | None = None,
    max_attempts: int | None = None,
    secret: str | bytes | None = None,
) -> OtpSettings:
    """Argument > environment variable > default, like kyo_otel's own settings."""
    raw_secret = secret if secret is not None else env.get("OTP_SECRET")
    if raw_secret is None:
        # Fine for one process; several workers or restarts need a shared OTP_SECRET.
        raw_secret = secrets.token_bytes(32)
    elif len(raw_secret) < 16:
        raise kyo_otel.ConfigError("OTP_SECRET", "(hidden)", "at least 16 characters", "argument" if secret else "OTP_SECRET")
    return OtpSettings(
        secret=raw_secret if isinstance(raw_secret, bytes) else raw_secret.encode(),
        ttl_seconds=_setting("OTP_TTL_SECONDS", ttl_seconds, env, 300, 1, 86_400),
        rate_limit=_setting("OTP_RATE_LIMIT", rate_limit, env, 5, 1, 1_000_000),
        rate_window_seconds=_setting("OTP_RATE_WINDOW_SECONDS", rate_window_seconds, env, 600, 1, 86_400),
        max_attempts=_setting("OTP_MAX_ATTEMPTS", max_attempts, env, 5, 1, 100),
    )


def _error(status: int, error: str, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"error": error, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidField("body", "the request body must be a JSON object", "invalid_json")
    return body


def _rate_headers(decision: otp_lib.RateDecision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(int(time.time()) + decision.reset_after),  # epoch seconds
    }


_VERIFY_STATUS = {otp_lib.WRONG_CODE: 401, otp_lib.EXPIRED: 410, otp_lib.TOO_MANY_ATTEMPTS: 403}
_VERIFY_MESSAGES = {
    otp_lib.WRONG_CODE: "the code does not match",
    otp_lib.EXPIRED: "no valid code for this phone: it expired, was used, or was never sent",
    otp_lib.TOO_MANY_ATTEMPTS: "too many wrong codes; request a new one",
}


def create_app(
    redis_client: Any = None,
    *,
    ttl_seconds: int | None = None,
    rate_limit: int | None = None,
    rate_window_seconds: int | None = None,
    max_attempts: int | None = None,
    secret: str | bytes | None = None,
    sender: SmsSender | None = None,
    env: Mapping[str, str] | None = None,
    configure_telemetry: bool = False,
) -> Flask:
    """The OTP service. Settings: argument > ``OTP_*`` / ``REDIS_URL`` variable > default.

    ``redis_client`` defaults to ``connect_redis(REDIS_URL)``, or fakeredis when it is unset.
    Raises ``kyo_otel.ConfigError`` for a bad setting.
    """
    env = os.environ if env is None else env
    settings = resolve_settings(
        env,
        ttl_seconds=ttl_seconds,
        rate_limit=rate_limit,
        rate_window_seconds=rate_window_seconds,
        max_attempts=max_attempts,
        secret=secret,
    )
    if redis_client is None:
        url = env.get("REDIS_URL")
        redis_client = connect_redis(url) if url else embedded_redis()
    service = OtpService(redis_client, settings, sender or LoggingSender())

    app = Flask("sample_app")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    app.json.sort_keys = False
    app.extensions["otp"] = service
    health = RedisHealth(redis_client, timeout=0.5)

    @app.post("/otp/send")
    def send() -> Any:
        tenant = otp_lib.validate_tenant(request.headers.get("X-Tenant-Id"))
        phone = otp_lib.validate_phone(_json_body())
        masked = mask_phone(phone)
        decision = service.check_rate(tenant, phone)
        headers = _rate_headers(decision)
        if not decision.allowed:
            kyo_otel.rate_limited(tenant, RATE_LIMITED_RESOURCE)
            _log.warning(
                "otp send rate limited",
                extra={"otp.action": "send", "kyo.tenant.id": tenant, "otp.phone": masked, "otp.outcome": "rate_limited"},
            )
            headers["Retry-After"] = str(decision.reset_after)
            return _error(429, "rate_limited", "too many codes requested for this phone; retry later", headers=headers)
        try:
            service.send(tenant, phone)
        except REDIS_UNAVAILABLE:
            raise
        except Exception:
            _log.error(
                "otp send failed: the SMS sender raised",
                exc_info=True,
                extra={"otp.action": "send", "kyo.tenant.id": tenant, "otp.phone": masked, "otp.outcome": "sms_failed"},
            )
            return _error(502, "sms_failed", "the code could not be delivered; try again", headers=headers)
        kyo_otel.otp.sent(tenant)
        _log.info(
            "otp sent",
            extra={"otp.action": "send", "kyo.tenant.id": tenant, "otp.phone": masked, "otp.outcome": "sent"},
        )
        response = jsonify({"status": "sent", "expires_in": settings.ttl_seconds})
        response.headers.update(headers)
        return response

    @app.post("/otp/verify")
    def verify() -> Any:
        tenant = otp_lib.validate_tenant(request.headers.get("X-Tenant-Id"))
        body = _json_body()
        phone = otp_lib.validate_phone(body)
        code = otp_lib.validate_code(body)
        result = service.verify(tenant, phone, code)
        kyo_otel.otp.verified(tenant, result.success, result.reason)
        outcome = "success" if result.success else "failure"
        kyo_otel.audit(  # kept a year in its own log group, never dropped by log levels
            "otp.verify",
            "otp",
            user_id="phone:" + service.phone_ref(tenant, phone),  # a keyed pseudonym, never the number
            tenant_id=tenant,
            result=outcome,
            **({"kyo.otp.failure_reason": result.reason} if result.reason else {}),
        )
        fields = {"otp.action": "verify", "kyo.tenant.id": tenant, "otp.phone": mask_phone(phone), "otp.outcome": outcome}
        if result.success:
            _log.info("otp verified", extra=fields)
            return jsonify({"verified": True})
        fields["otp.failure_reason"] = result.reason
        _log.info("otp verification failed", extra=fields)
        body = {"verified": False, "error": result.reason, "message": _VERIFY_MESSAGES[result.reason]}
        if result.attempts_remaining is not None:
            body["attempts_remaining"] = result.attempts_remaining
        return jsonify(body), _VERIFY_STATUS[result.reason]

    @app.get("/health")
    def health_check() -> Any:
        redis_state = health.check()
        healthy = redis_state["healthy"]
        return jsonify({"status": "ok" if healthy else "degraded", "checks": {"redis": redis_state}}), 200 if healthy else 503

    @app.errorhandler(InvalidField)
    def invalid_field(exc: InvalidField) -> Any:
        return _error(400, exc.error, exc.message, exc.field)

    @app.errorhandler(VerificationConflict)
    def conflict(exc: VerificationConflict) -> Any:
        return _error(409, "conflict", "the code was being verified concurrently; try again")

    @app.errorhandler(redis_lib.exceptions.ConnectionError)
    @app.errorhandler(redis_lib.exceptions.TimeoutError)
    def redis_unavailable(exc: Exception) -> Any:
        _errors.warning("redis unavailable: %s", type(exc).__name__, extra={"error.type": type(exc).__name__})
        return _error(503, "unavailable", "storage is unavailable; try again shortly", headers={"Retry-After": "1"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        name = (exc.name or "error").lower().replace(" ", "_")
        response = _error(exc.code or 500, name, exc.description or exc.name or "error")
        for header, value in exc.get_headers():
            if header.lower() != "content-type":  # keeps Allow (405), Retry-After...
                response.headers[header] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        _errors.error("unexpected error", exc_info=exc, extra={"error.type": type(exc).__name__})
        return _error(500, "internal_error", "an unexpected error occurred")

    if configure_telemetry:
        kyo_otel.configure(service_name=SERVICE_NAME, app=app, redis=redis_client)
    elif kyo_otel.current() is not None:
        kyo_otel.instrument_app(app, redis=redis_client)
    return app
