"""Production entry: ``gunicorn -c sample_app/gunicorn.conf.py`` (from the repository root).

Settings come from the environment: ``REDIS_URL`` (required: workers share codes and rate limits
through it), ``OTP_SECRET`` (required: every worker must hash codes with the same key),
``GUNICORN_BIND`` (default 127.0.0.1:8000), ``GUNICORN_WORKERS`` (default 2), and the telemetry
variables (``KYO_OTEL_ENVIRONMENT=production`` selects the otlp profile; ``OTEL_EXPORTER_OTLP_*``
point it at the collector). The app is not preloaded: each worker imports ``sample_app.wsgi``
and configures its own telemetry after the fork; the hooks below give each worker its identity
and flush its telemetry when it exits.
"""

import os

from kyo_otel.gunicorn import on_starting, post_fork, worker_exit  # noqa: F401  (gunicorn hooks)

for _required in ("REDIS_URL", "OTP_SECRET"):
    if not os.environ.get(_required):
        raise SystemExit(
            f"sample_app/gunicorn.conf.py: set {_required} (see the README, 'Production'); "
            "for a single process without infrastructure use `make run`"
        )

wsgi_app = "sample_app.wsgi:app"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
preload_app = False
graceful_timeout = 10  # SIGTERM: finish in-flight requests, then worker_exit flushes telemetry
accesslog = None  # request spans and http.server.request.duration replace the access log
