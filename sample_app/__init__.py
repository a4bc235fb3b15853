"""The sample OTP service: a multi-tenant Flask app that sends and verifies one-time passwords.

    from sample_app import create_app
    app = create_app()                      # REDIS_URL, or an embedded fakeredis
    app = create_app(redis_client, ttl_seconds=2, sender=OutboxSender())

``python -m sample_app`` serves it on 127.0.0.1:8000; ``python -m sample_app demo`` drives traffic
through it and summarises the telemetry; ``sample_app/gunicorn.conf.py`` is the production entry.
"""

from sample_app.app import SERVICE_NAME, connect_redis, create_app, embedded_redis
from sample_app.otp import OtpService, OtpSettings
from sample_app.sms import LoggingSender, OutboxSender, SmsSender, mask_phone

__all__ = [
    "SERVICE_NAME",
    "LoggingSender",
    "OtpService",
    "OtpSettings",
    "OutboxSender",
    "SmsSender",
    "connect_redis",
    "create_app",
    "embedded_redis",
    "mask_phone",
]
