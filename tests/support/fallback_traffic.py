"""One request's worth of every signal, for comparing what kyo_otel exports with a fast path on
and off (``tests/test_fast_path_fallbacks.py``): run in a fresh interpreter after the test has
removed a private name, against a real OTLP receiver and Redis server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

PHONE = "+886912345678"
CODE = "424242"
PLAIN = "tenant-07"
CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"


def traffic(endpoint: str, redis_url: str) -> dict[str, Any]:
    """Configure kyo_otel (otlp profile), serve two requests that use Redis, log, and count with
    a phone number and a code in them, shut down (exports everything); the fast paths' state."""
    import redis
    from flask import Flask
    from opentelemetry import metrics

    import kyo_otel

    app = Flask("fallback")
    client = redis.Redis.from_url(redis_url)
    log = logging.getLogger("app.sms")
    sent = metrics.get_meter("app").create_counter("app.sent")
    depth = metrics.get_meter("app").create_gauge("app.queue_depth")  # a synchronous gauge

    @app.post("/otp/send")
    def send() -> Any:
        client.set(f"otp:{PHONE}", CODE, ex=60)
        pipe = client.pipeline()
        pipe.incr(f"rate:{PHONE}").expire(f"rate:{PHONE}", 60).execute()
        log.info("sent code %s to %s", CODE, PHONE, extra={"user.phone": PHONE, "tenant": PLAIN})
        sent.add(1, {"user.phone": PHONE, "tenant": PLAIN})
        depth.set(3, {"user.phone": PHONE})
        return {"sent": True}

    handle = kyo_otel.configure(
        app=app, profile="otlp", otlp_endpoint=endpoint, service_name="fallback", environment="test",
        batch_delay=50, metric_export_interval=60_000,
    )
    for _ in range(2):
        # A caller's trace context, as the propagators (W3C, baggage, X-Ray) read it.
        response = app.test_client().post("/otp/send", headers={
            "X-Tenant-Id": PLAIN,
            "traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01",
            "tracestate": f"vendor=sms{PHONE}",
            "baggage": "plan=gold",
        })
        assert response.status_code == 200, response.get_data(as_text=True)
    flushed = handle.shutdown(10)
    return {"fast_paths": handle.fast_paths, "flushed": flushed}


if __name__ == "__main__":
    print(json.dumps(traffic(os.environ["ENDPOINT"], os.environ["REDIS_URL"])))
    sys.stdout.flush()
