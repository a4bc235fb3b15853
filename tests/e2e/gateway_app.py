"""The sample app as ``sample_app/wsgi.py`` builds it for gunicorn (one app and one telemetry
configuration per worker), with the e2e run's SMS gateway (``tests/e2e/gateway.py``)."""

import os

from sample_app.app import connect_redis, create_app
from tests.e2e.gateway import RedisGateway

app = create_app(sender=RedisGateway(connect_redis(os.environ["REDIS_URL"])), configure_telemetry=True)
