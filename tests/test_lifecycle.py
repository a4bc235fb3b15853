"""The life of a configuration: idempotence, bounded shutdown, fork, zero-code use, disabled SDK.

Each test runs in a fresh interpreter because configuration is process-wide, as in production.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.redis_server import free_port
from tests.support.subprocess_python import last_json_line, run_python

APP = """
import json, logging
from flask import Flask
import kyo_otel

app = Flask("lifecycle")
log = logging.getLogger("lifecycle")

@app.get("/work")
def work():
    log.info("working")
    return {"ok": True}
"""


def test_second_configure_returns_the_same_handle_and_duplicates_nothing():
    report = last_json_line(run_python(APP + """
first = kyo_otel.configure(service_name="otp", environment="test", app=app)
second = kyo_otel.configure(service_name="otp", environment="test", app=app)
third = kyo_otel.configure(service_name="other", environment="test")
kyo_otel.instrument_app(app)
app.test_client().get("/work")
root = logging.getLogger()
print(json.dumps({
    "same": first is second is third,
    "handlers": len([h for h in root.handlers if getattr(h, "kyo_otel_handler", False)]),
    "spans": [s.name for s in first.memory.spans.get_finished_spans()],
    "logs": [r.log_record.body for r in first.memory.logs.get_finished_logs() if r.log_record.body == "working"],
}))
"""))
    assert report == {"same": True, "handlers": 1, "spans": ["GET /work"], "logs": ["working"]}


def test_the_application_keeps_its_own_handlers_and_no_basic_config_is_made():
    report = last_json_line(run_python(APP + """
import io
stream = io.StringIO()
mine = logging.StreamHandler(stream)
logging.getLogger().addHandler(mine)
kyo_otel.configure(environment="test", app=app)
app.test_client().get("/work")
root = logging.getLogger()
print(json.dumps({"mine_kept": mine in root.handlers, "mine_saw": "working" in stream.getvalue(),
                  "handlers": len(root.handlers)}))
"""))
    assert report == {"mine_kept": True, "mine_saw": True, "handlers": 2}


def test_shutdown_returns_within_its_bound_when_the_collector_is_unreachable():
    port = free_port()  # nothing listens here
    report = last_json_line(run_python(APP + f"""
import time
handle = kyo_otel.configure(environment="production", app=app, shutdown_timeout=2,
                            otlp_endpoint="http://127.0.0.1:{port}", otlp_timeout=10)
client = app.test_client()
for _ in range(50):
    client.get("/work")
start = time.monotonic()
finished = handle.shutdown()
print(json.dumps({{"seconds": time.monotonic() - start, "finished": finished}}))
""", timeout=60))
    assert report["seconds"] < 3.0, report


def test_process_exit_is_bounded_too_when_nobody_calls_shutdown():
    port = free_port()
    import time

    start = time.monotonic()
    result = run_python(APP + f"""
kyo_otel.configure(environment="production", app=app, shutdown_timeout=1, otlp_endpoint="http://127.0.0.1:{port}")
for _ in range(20):
    app.test_client().get("/work")
print(json.dumps({{"done": True}}))
""", timeout=60)
    elapsed = time.monotonic() - start
    assert last_json_line(result) == {"done": True}
    assert elapsed < 15, elapsed


def test_forked_children_get_their_own_instance_id_and_flush_at_exit():
    result = run_python("""
import json, multiprocessing, os, sys
import kyo_otel
from opentelemetry import trace

handle = kyo_otel.configure(environment="development", traces_exporter="console",
                            metrics_exporter="none", logs_exporter="none", batch_delay=60000)
parent_id = handle.resource.attributes["service.instance.id"]

def child(queue):
    queue.put(kyo_otel.current().tracer_provider.resource.attributes["service.instance.id"])
    with trace.get_tracer("child").start_as_current_span("work-in-child"):
        pass  # buffered: the batch delay is a minute, only the exit flush can print it

queue = multiprocessing.get_context("fork").Queue()
process = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
process.start()
child_id = queue.get(timeout=10)
process.join(20)
sys.stdout.flush()
print(json.dumps({"distinct": child_id != parent_id, "exitcode": process.exitcode}))
""")
    assert last_json_line(result) == {"distinct": True, "exitcode": 0}
    assert "work-in-child" in result.stdout  # printed by the child's exit flush (os._exit skips atexit)


def test_sdk_disabled_installs_nothing():
    report = last_json_line(run_python(APP + """
from opentelemetry import trace
handle = kyo_otel.configure(environment="production", app=app)
app.test_client().get("/work")
print(json.dumps({
    "providers": handle.providers,
    "tracer": type(trace.get_tracer_provider()).__name__,
    "instrumented": getattr(app, "_is_instrumented_by_opentelemetry", False),
    "request_hooks": len(app.before_request_funcs.get(None, [])) + len(app.after_request_funcs.get(None, [])),
}))
""", env={"OTEL_SDK_DISABLED": "true"}))
    assert report == {"providers": [], "tracer": "ProxyTracerProvider", "instrumented": False, "request_hooks": 0}


def test_opentelemetry_instrument_with_the_kyo_distro_gives_the_configure_setup(tmp_path: Path):
    script = tmp_path / "zero_code_app.py"
    script.write_text(APP.replace("import kyo_otel", "") + """
import kyo_otel
app.test_client().get("/work")
app.test_client().get("/no/such/path")
handle = kyo_otel.current()
data = handle.memory.metrics.get_metrics_data()
names = sorted({m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics})
root = logging.getLogger()
print(json.dumps({
    "spans": sorted(s.name for s in handle.memory.spans.get_finished_spans()),
    "metrics": names,
    "logs": [r.log_record.body for r in handle.memory.logs.get_finished_logs() if r.log_record.body == "working"],
    "handlers": len(root.handlers),
}))
""")
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(os.sys.executable))
    assert instrument, "opentelemetry-instrument is installed with opentelemetry-instrumentation"
    result = run_python(
        script.read_text(),
        env={"OTEL_PYTHON_DISTRO": "kyo", "OTEL_PYTHON_CONFIGURATOR": "kyo", "KYO_OTEL_ENVIRONMENT": "test",
             "OTEL_SERVICE_NAME": "zero-code"},
        argv0=[instrument],
    )
    report = last_json_line(result)
    assert report["spans"] == ["GET", "GET /work"]
    assert "http.server.request.duration" in report["metrics"]
    assert "http.server.duration" not in report["metrics"]  # the instrumentation's own metric stays off
    assert report["logs"] == ["working"]
    assert report["handlers"] == 1


def test_force_flush_in_the_memory_profile_keeps_the_metric_points_for_the_test_to_read():
    report = last_json_line(run_python("""
import json
import kyo_otel
from flask import Flask
app = Flask("flush")
app.add_url_rule("/work", "work", lambda: {"ok": True})
handle = kyo_otel.configure(environment="test", app=app)
app.test_client().get("/work")
handle.force_flush()
data = handle.memory.metrics.get_metrics_data()
counts = [p.count for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
          if m.name == "http.server.request.duration" for p in m.data.data_points]
print(json.dumps({"requests": counts}))
"""))
    assert report == {"requests": [1]}
