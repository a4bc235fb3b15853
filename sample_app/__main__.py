"""Placeholder entry point until the sample OTP service lands: a tiny instrumented app."""

import logging

import fakeredis
from flask import Flask

import kyo_otel

app = Flask(__name__)
redis = fakeredis.FakeRedis()
log = logging.getLogger("sample_app")


@app.get("/hello")
def hello():
    redis.incr("hello")
    log.info("said hello")
    return {"hello": "world"}


if __name__ == "__main__":
    kyo_otel.configure(service_name="kyo-otp-service", environment="development", app=app, redis=redis)
    app.run(host="127.0.0.1", port=8000)
