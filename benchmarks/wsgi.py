"""gunicorn entry point for the throughput benchmark: ``BENCH_VARIANT`` picks bare, upstream or kyo.

Each worker builds its own app and telemetry at import (no ``--preload``), so no provider
crosses a fork.
"""

import os

from benchmarks.variants import make_app

app, _, _ = make_app(os.environ["BENCH_VARIANT"], os.environ["BENCH_REDIS_URL"], os.environ["BENCH_OTLP_ENDPOINT"])
