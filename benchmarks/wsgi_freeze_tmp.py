import gc, os
from benchmarks.variants import make_app
app, _, _ = make_app(os.environ["BENCH_VARIANT"], os.environ["BENCH_REDIS_URL"], os.environ["BENCH_OTLP_ENDPOINT"])
gc.freeze()
