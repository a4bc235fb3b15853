"""The WSGI entry for gunicorn (``sample_app/gunicorn.conf.py``): one app and one telemetry
configuration per worker, made as the worker imports this module after the fork."""

from sample_app.app import create_app

app = create_app(configure_telemetry=True)
