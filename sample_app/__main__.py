"""``python -m sample_app``: serve on 127.0.0.1:8000. ``python -m sample_app demo``: drive traffic.

Serving configures telemetry from the environment (development -> console by default; the
standard ``OTEL_*_EXPORTER=otlp`` variables switch to a collector) and stops gracefully on
SIGTERM or Ctrl-C: the server stops accepting, then ``kyo_otel.shutdown()`` flushes what was
recorded, within its bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from werkzeug.serving import make_server

import kyo_otel
from sample_app.app import SERVICE_NAME, create_app


def serve(host: str, port: int) -> int:
    app = create_app()
    client = app.extensions["otp"].redis
    telemetry = kyo_otel.configure(service_name=SERVICE_NAME, app=app, redis=client)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the request spans already say it
    server = make_server(host, port, app, threaded=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, name="sample-app-server", daemon=True)
    thread.start()
    store = "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded fakeredis (set REDIS_URL for a real Redis)"
    exporters = ", ".join(f"{s}={telemetry.settings.exporter(s)}" for s in ("traces", "metrics", "logs"))
    print(
        f"{SERVICE_NAME} on http://{host}:{server.server_port}  (store: {store}; telemetry: {exporters})",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    print(f"{SERVICE_NAME}: stopping", file=sys.stderr, flush=True)
    server.shutdown()
    thread.join(5)
    server.server_close()
    flushed = kyo_otel.shutdown()
    print(f"{SERVICE_NAME}: stopped (telemetry {'flushed' if flushed else 'flush timed out'})", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="serve the OTP service (the default)")
    demo_parser = commands.add_parser("demo", help="start the service in-process, drive traffic, summarise the telemetry")
    for sub in (parser, serve_parser):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    demo_parser.add_argument("--duration", type=float, default=15.0, help="seconds of traffic (default 15)")
    demo_parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                             help="a real Redis (default REDIS_URL; without it, fakeredis and no outage)")
    demo_parser.add_argument("--json", action="store_true", help="print the summary as one JSON line too")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from sample_app.demo import run_demo

        run_demo(duration=args.duration, redis_url=args.redis_url, as_json=args.json)
        return 0
    return serve(args.host, args.port)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except kyo_otel.ConfigError as exc:  # a bad setting: say which, not where in the code
        sys.exit(f"{SERVICE_NAME}: configuration error: {exc}")
