"""What telemetry costs a request: bare app vs stock OpenTelemetry vs kyo_otel, side by side.

    make bench                                   # everything (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/overhead.py --only cpu --rounds 5 --profile

Three parts, all against a real redis-server and an OTLP/gRPC receiver on 127.0.0.1:

1. CPU per request, in-process, with Flask's test client. Each variant (see ``variants.py``)
   lives in its own child process (global providers: one configuration per process); all three
   are alive at once and stepped in interleaved rounds (bare, upstream, kyo, then the next round
   in rotated order), so machine noise hits all alike. A round is K requests to one route; its
   cost is the child's whole-process CPU time (``time.process_time``: user + system time of
   every thread, so the batch processors' and gRPC's export threads count) from the end of its
   previous round to the end of this one, including a flush of the spans and logs the round
   produced, divided by K. Medians over the rounds are printed with the ratios kyo/bare and
   (kyo - bare)/(upstream - bare).
2. Throughput: gunicorn with 2 sync workers per variant, driven by ``wrk`` on loopback.
3. Micro-benchmarks of the hot paths on the request thread (thread CPU time): one domain-metric
   record, one log record through the bridge (scrubbed, for kyo), one server span with the
   request attributes.
4. Where kyo's time goes (``--breakdown``): in the kyo child itself, the server span, the Redis
   spans, the log records, and the export of spans or of log records switched off in turn, in
   interleaved rounds. A part costs a request what switching it off saves. Micro-benchmarks
   understate what a part costs inside a request: code that runs between two Redis round trips
   runs slower than the same code in a tight loop (a lean span: about 16 µs against 6).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.variants import VARIANTS  # noqa: E402

ROUTES = ("/otp/send", "/otp/verify")
TENANTS = [f"tenant-{i:02d}" for i in range(20)]


# --- the child: one variant, driven over a pipe ---------------------------------------------


class Driver:
    """Runs rounds of requests against one variant's app through Flask's test client."""

    def __init__(self, variant: str, redis_url: str, endpoint: str) -> None:
        from benchmarks import variants

        self.variant = variant
        self.app, self.sender, self.flush = variants.make_app(variant, redis_url, endpoint)
        self.client = self.app.test_client()
        self.numbers = itertools.count()
        self.to_verify: list[tuple[str, str, str]] = []  # (tenant, phone, code)
        self.unexpected: dict[str, int] = {}
        self.last_cpu = time.process_time()

    def _send(self) -> int:
        n = next(self.numbers)
        tenant, phone = TENANTS[n % len(TENANTS)], f"+1555{n:07d}"
        response = self.client.post("/otp/send", json={"phone": phone}, headers={"X-Tenant-Id": tenant})
        code = self.sender.codes.pop(phone, None)
        if code is not None:
            self.to_verify.append((tenant, phone, code))
        return response.status_code

    def _verify(self) -> int:
        if not self.to_verify:
            self._send()
        tenant, phone, code = self.to_verify.pop()
        response = self.client.post("/otp/verify", json={"phone": phone, "code": code}, headers={"X-Tenant-Id": tenant})
        return response.status_code

    def run(self, route: str, k: int) -> None:
        call = self._send if route == "/otp/send" else self._verify
        for _ in range(k):
            status = call()
            if status >= 300:
                key = f"{route} {status}"
                self.unexpected[key] = self.unexpected.get(key, 0) + 1
        self.flush()

    def round(self, route: str, k: int) -> dict[str, Any]:
        self.run(route, k)
        now = time.process_time()
        cpu, self.last_cpu = now - self.last_cpu, now
        return {"us_per_request": cpu / k * 1e6}

    def profile(self, route: str, k: int, top: int) -> dict[str, Any]:
        """cProfile over ``k`` requests: own time per package, then the telemetry functions."""
        import collections
        import re

        profiler = cProfile.Profile()
        profiler.enable()
        self.run(route, k)
        profiler.disable()
        stats = pstats.Stats(profiler)
        by_package: collections.Counter[str] = collections.Counter()
        for (path, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            match = re.search(r"site-packages/(opentelemetry/(?:sdk/)?[^/]+|[^/]+)", path) or re.search(
                r"(kyo_otel|sample_app|benchmarks)/", path)
            by_package[match.group(1) if match else "stdlib and built-ins"] += own
        total = sum(by_package.values())
        lines = [f"   own time per request under cProfile (inflated by the profiler; compare shares): {total / k * 1e6:.0f} us"]
        lines += [f"   {share / total * 100:5.1f}%  {package}" for package, share in by_package.most_common(top)]
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(r"opentelemetry|kyo_otel", top)
        text = re.sub(r"\S*site-packages/", "", out.getvalue())
        self.last_cpu = time.process_time()
        return {"text": "\n".join(lines) + "\n" + text}

    def micro(self, n: int) -> dict[str, Any]:
        return micro_benchmarks(self.variant, n, self.flush)

    def breakdown(self, rounds: int, k: int) -> dict[str, Any]:
        """kyo's parts switched off one at a time in this one process, in interleaved rounds of
        ``k`` requests to /otp/send: CPU microseconds per request per configuration (medians).
        One process for all, so no difference of memory layout or hash seed between variants
        (a few percent between processes) hides a part's cost."""
        parts = _Parts(self.app)
        samples: dict[str, list[float]] = {name: [] for name in parts.CONFIGURATIONS}
        names = list(samples)
        for name in names:  # warm-up
            parts.set(name)
            self.run("/otp/send", k // 4)
        for n in range(rounds):
            for name in names[n % len(names):] + names[: n % len(names)]:
                parts.set(name)
                start = time.process_time()
                self.run("/otp/send", k)
                samples[name].append((time.process_time() - start) / k * 1e6)
        parts.set("everything")
        self.last_cpu = time.process_time()
        return {name: statistics.median(values) for name, values in samples.items()}


class _Parts:
    """Switches parts of a configured kyo_otel off and on again, in the running process."""

    CONFIGURATIONS = {
        "everything": (),
        "no server span": ("server span",),
        "no Redis spans": ("redis spans",),
        "no log records": ("log records",),
        "spans made, not exported": ("span export",),
        "log records made, not exported": ("log export",),
        "none of the three": ("server span", "redis spans", "log records"),
    }

    def __init__(self, app: Any) -> None:
        import collections
        import logging

        from kyo_otel import flask_spans, logs, telemetry

        self.app = app
        self.telemetry = telemetry.current()
        self.traced = app.wsgi_app
        flask_spans.uninstrument(app)  # the request context stays, entered by a plain wrapper
        self.plain, app.wsgi_app = app.wsgi_app, self.traced
        self.root = logging.getLogger()
        self.handler = logs.kyo_handlers(self.root)[0]
        # The batch processors' queues; a deque of no length takes and keeps nothing.
        self.span_batch = self.telemetry.tracer_provider._active_span_processor._span_processors[0]._batch_processor
        self.log_batch = self.telemetry.logger_provider._kyo_batch_queue.batch
        self.queues = (self.span_batch._queue, self.log_batch._queue)
        self.nowhere: collections.deque[Any] = collections.deque(maxlen=0)

    def set(self, configuration: str) -> None:
        from kyo_otel import redis_spans

        off = self.CONFIGURATIONS[configuration]
        self.app.wsgi_app = self.plain if "server span" in off else self.traced
        if "redis spans" in off:
            redis_spans.uninstall()
        else:
            redis_spans.install(self.telemetry.tracer_provider)
        if "log records" in off:
            self.root.removeHandler(self.handler)
        elif self.handler not in self.root.handlers:
            self.root.addHandler(self.handler)
        self.span_batch._queue = self.nowhere if "span export" in off else self.queues[0]
        self.log_batch._queue = self.nowhere if "log export" in off else self.queues[1]


def micro_benchmarks(variant: str, n: int, flush: Any) -> dict[str, Any]:
    """One round of the hot paths, ``n`` calls each. Per call, in microseconds: the calling
    thread's CPU time (what a request waits for), and the whole process's CPU time including the
    flush that exports what the calls produced (what the container pays)."""
    import logging

    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind

    import kyo_otel

    results: dict[str, Any] = {}

    def timed(name: str, call: Any, batch: int = 500) -> None:
        thread = process = 0.0
        for _ in range(max(1, n // batch)):
            start_thread, start_process = time.thread_time(), time.process_time()
            for _ in range(batch):
                call()
            thread += time.thread_time() - start_thread
            flush()  # export now (and keep the queues from overflowing: a dropped record is cheaper)
            process += time.process_time() - start_process
        calls = max(1, n // batch) * batch
        results[name] = (thread / calls * 1e6, process / calls * 1e6)

    if variant == "kyo":
        timed("domain metric record", lambda: kyo_otel.otp.sent("tenant-07"), batch=5000)
    else:
        counter = metrics.get_meter("bench").create_counter("otp.sent")
        attrs = {"tenant.id": "tenant-07"}
        timed("domain metric record", lambda: counter.add(1, attrs), batch=5000)
    log = logging.getLogger("sample_app.sms")
    timed("log record with a phone number", lambda: log.info("sms sent to %s", "+886912345678"))
    tracer = trace.get_tracer("bench")
    attributes = {
        "http.request.method": "POST",
        "url.scheme": "http",
        "url.path": "/otp/send",
        "http.route": "/otp/send",
        "server.address": "127.0.0.1",
        "server.port": 8000,
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "wrk",
    }

    def span() -> None:
        with tracer.start_as_current_span("POST /otp/send", kind=SpanKind.SERVER, attributes=attributes) as s:
            s.set_attribute("http.response.status_code", 202)

    if variant == "kyo":  # the way kyo_otel's server span is made (kyo_otel.flask_spans)
        from opentelemetry import context as context_api

        from kyo_otel.spans import LeanTracer

        lean = LeanTracer(tracer)

        def span() -> None:
            s = lean.start_span("POST /otp/send", None, SpanKind.SERVER, dict(attributes))
            token = context_api.attach(trace.set_span_in_context(s))
            s.set_trusted_attributes({"http.response.status_code": 202})  # type: ignore[attr-defined]
            context_api.detach(token)
            s.end()

    timed("server span with the request attributes", span)
    return results


def child_main(variant: str, redis_url: str, endpoint: str) -> None:
    """Answer the parent's commands, one JSON line each way, on the original stdout."""
    from benchmarks import variants

    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the app prints goes to stderr, never into the protocol
    driver = Driver(variant, redis_url, endpoint)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            variants.shutdown(variant)
            reply: dict[str, Any] = {"unexpected": driver.unexpected}
        else:
            reply = getattr(driver, op)(**command)
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()
        if op == "quit":
            return


class Child:
    def __init__(self, variant: str, redis_url: str, endpoint: str) -> None:
        self.variant = variant
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "child", variant, redis_url, endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.variant} child died (exit code {self.process.wait()})")
        return json.loads(line)

    def close(self) -> dict[str, Any]:
        try:
            return self.ask("quit")
        finally:
            self.process.wait(30)


# --- part 1: CPU per request -----------------------------------------------------------------


def _children(variants: Any, redis_url: str, receiver: Any) -> list[Child]:
    """One child per variant, each with its own Redis database (1, 2, ...)."""
    return [Child(v, f"{redis_url[:-1]}{i + 1}", receiver.endpoint) for i, v in enumerate(variants)]


def _interleaved_rounds(children: list[Child], args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """A warm-up round per child and route (imports, caches, first connections), then
    ``args.rounds`` rounds of ``args.requests`` requests per route, the children taking turns in a
    rotating order: CPU microseconds per request, per (variant, route)."""
    samples: dict[tuple[str, str], list[float]] = {(c.variant, r): [] for c in children for r in ROUTES}
    for child in children:
        for route in ROUTES:
            child.ask("round", route=route, k=max(50, args.requests // 4))
    for n in range(args.rounds):
        for route in ROUTES:
            for child in children[n % len(children):] + children[: n % len(children)]:
                samples[(child.variant, route)].append(child.ask("round", route=route, k=args.requests)["us_per_request"])
        print(f"   round {n + 1}/{args.rounds} done", file=sys.stderr)
    return samples


def compare(args: argparse.Namespace, redis_url: str, receiver: Any) -> None:
    """CPU per request of any variants, e.g. ``bare kyo kyo,-flask kyo,logs_exporter=none``:
    the same interleaved rounds, one median per variant and route."""
    print(f"\n== CPU per request, {args.rounds} interleaved rounds x {args.requests} requests, medians (us)")
    children = _children(args.compare, redis_url, receiver)
    try:
        samples = _interleaved_rounds(children, args)
    finally:
        for child in children:
            try:
                child.close()
            except Exception:
                child.process.kill()
    print(f"   {'variant':<44}" + "".join(f"{r:>14}" for r in ROUTES))
    for child in children:
        print(f"   {child.variant:<44}" + "".join(f"{statistics.median(samples[(child.variant, r)]):>14.0f}" for r in ROUTES))


def cpu_benchmark(args: argparse.Namespace, redis_url: str, receiver: Any) -> dict[str, Any]:
    print(f"\n== CPU per request (Flask test client, {args.rounds} rounds x {args.requests} requests per route "
          f"and variant, whole-process CPU, medians)")
    children = {child.variant: child for child in _children(VARIANTS, redis_url, receiver)}
    extra: dict[str, Any] = {}
    try:
        samples = _interleaved_rounds(list(children.values()), args)
        if args.micro:
            rounds: dict[str, list[dict[str, Any]]] = {"upstream": [], "kyo": []}
            for n in range(args.micro_rounds):
                for variant in (("upstream", "kyo") if n % 2 == 0 else ("kyo", "upstream")):
                    rounds[variant].append(children[variant].ask("micro", n=args.micro))
            extra["micro"] = {
                v: {name: tuple(statistics.median(r[name][i] for r in rs) for i in (0, 1)) for name in rs[0]}
                for v, rs in rounds.items()
            }
        if args.profile:
            extra["profile"] = children["kyo"].ask("profile", route="/otp/send", k=args.requests, top=args.profile)["text"]
        if args.breakdown:
            extra["breakdown"] = children["kyo"].ask("breakdown", rounds=args.breakdown, k=args.requests)
    finally:
        for child in children.values():
            try:
                unexpected = child.close()["unexpected"]
                if unexpected:
                    print(f"   note: {child.variant} answered {unexpected}")
            except Exception as exc:  # a dead child already said why on stderr
                print(f"   {child.variant}: {exc}")
                child.process.kill()

    print(f"\n   {'route':<13}{'bare us':>10}{'upstream us':>13}{'kyo us':>9}{'upstream/bare':>15}{'kyo/bare':>10}"
          f"{'(kyo-bare)/(upstream-bare)':>29}")
    table: dict[str, Any] = {}
    for route in ROUTES:
        bare, upstream, kyo = (statistics.median(samples[(v, route)]) for v in VARIANTS)
        share = (kyo - bare) / (upstream - bare) if upstream != bare else float("nan")
        table[route] = {"bare": bare, "upstream": upstream, "kyo": kyo, "kyo/bare": kyo / bare, "share": share}
        print(f"   {route:<13}{bare:>10.0f}{upstream:>13.0f}{kyo:>9.0f}{upstream / bare:>15.2f}{kyo / bare:>10.2f}{share:>29.2f}")
    spread = {f"{v} {r}": (min(s), max(s)) for (v, r), s in samples.items()}
    print("   spread over rounds (min-max us): " + ", ".join(f"{k} {lo:.0f}-{hi:.0f}" for k, (lo, hi) in spread.items()))
    return {"table": table, **extra}


def print_breakdown(medians: dict[str, float], args: argparse.Namespace) -> None:
    print(f"\n== Where kyo's time goes on /otp/send: parts switched off in the kyo process itself "
          f"({args.breakdown} interleaved rounds x {args.requests} requests, whole-process CPU, medians)")
    everything = medians["everything"]
    for name, value in medians.items():
        saved = "" if name == "everything" else f"   saves {everything - value:5.0f} us"
        print(f"   {name:<34}{value:>8.0f} us{saved}")
    print("   (server span: the WSGI wrapper's span, the request context stays; no log records: the bridge "
          "detached; not exported: the batch queue takes nothing)")


# --- part 2: throughput under gunicorn ----------------------------------------------------

WRK_SCRIPT = """
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"phone": "+1666%07d"}', counter)
  local headers = {["Content-Type"] = "application/json", ["X-Tenant-Id"] = "tenant-" .. (counter % 20)}
  return wrk.format("POST", "/otp/send", headers, body)
end
"""


def _workers_cpu(server: subprocess.Popen[bytes]) -> tuple[float, float]:
    """CPU seconds (user + system) of the gunicorn workers (the arbiter only supervises): all
    threads, and the request-serving main threads alone."""
    import psutil

    total = main = 0.0
    for worker in psutil.Process(server.pid).children():
        try:
            for thread in worker.threads():
                total += thread.user_time + thread.system_time
                if thread.id == worker.pid:
                    main += thread.user_time + thread.system_time
        except psutil.NoSuchProcess:
            pass
    return total, main


def _wrk(port: int, seconds: float, connections: int, script: str) -> tuple[float, int, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script, f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec"))
    done = next(int(line.split()[0]) for line in out.splitlines() if " requests in " in line)
    bad = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    return rps, done, bad


def throughput_benchmark(args: argparse.Namespace, redis_url: str, receiver: Any,
                         variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Requests per second and worker CPU per request of each variant under gunicorn, the variants
    taking turns in rotating order; the first variant is the one the others are divided by."""
    import psutil

    from kyo_otel.receiver import free_port
    from tests.support.gunicorn_app import gunicorn_command, wait_until_serving

    if shutil.which("wrk") is None:
        print("\n== Throughput: skipped, `wrk` is not installed (apt-get install wrk; `make bench` does it)")
        return {}
    print(f"\n== Throughput (gunicorn, 2 sync workers, wrk -c{args.connections} on loopback, POST /otp/send, "
          f"{args.seconds:g}s x {args.throughput_rounds} rounds, medians)")
    import redis as redis_lib

    script = os.path.join(tempfile.mkdtemp(prefix="kyo-bench-"), "send.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    request_thread: dict[str, list[float]] = {v: [] for v in variants}
    receiving: dict[str, list[float]] = {v: [] for v in variants}
    me = psutil.Process()
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for i, variant in enumerate(variants):
            port = free_port()
            env = dict(os.environ, BENCH_VARIANT=variant, BENCH_REDIS_URL=f"{redis_url[:-1]}{4 + i}",
                       BENCH_OTLP_ENDPOINT=receiver.endpoint, PYTHONPATH=ROOT)
            command = gunicorn_command(port, 2, "--log-level", "warning", "benchmarks.wsgi:app")
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
            servers[variant] = (process, port)
        for process, port in servers.values():
            wait_until_serving(f"http://127.0.0.1:{port}", process)
            _wrk(port, 1, args.connections, script)  # warm-up
        for n in range(args.throughput_rounds):
            order = variants[n % len(variants):] + variants[: n % len(variants)]
            for variant in order:
                process, port = servers[variant]
                redis_lib.Redis.from_url(f"{redis_url[:-1]}{4 + variants.index(variant)}").flushdb()  # fresh rate limits
                before, received = _workers_cpu(process), sum(me.cpu_times()[:2])
                rps, done, bad = _wrk(port, args.seconds, args.connections, script)
                time.sleep(1.5)  # the batch processors export what the run left (1 s schedule for kyo)
                rates[variant].append(rps)
                after = _workers_cpu(process)
                cpu[variant].append((after[0] - before[0]) / done * 1e6)
                request_thread[variant].append((after[1] - before[1]) / done * 1e6)
                receiving[variant].append((sum(me.cpu_times()[:2]) - received) / done * 1e6)
                if bad:
                    print(f"   note: {variant} answered {bad} non-2xx responses")
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in servers.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    medians = {v: statistics.median(r) for v, r in rates.items()}
    cpu_medians = {v: statistics.median(c) for v, c in cpu.items()}
    first = variants[0]
    width = max(10, *(len(v) + 2 for v in variants))
    print(f"   {'variant':<{width}}{'requests/s':>12}{'vs ' + first:>{len(first) + 6}}{'worker CPU us/request':>24}"
          f"{'vs ' + first:>{len(first) + 6}}{'of which request thread':>25}{'receiver':>10}   (rounds: requests/s)")
    for variant in variants:
        rounds = ", ".join(f"{r:.0f}" for r in rates[variant])
        print(f"   {variant:<{width}}{medians[variant]:>12.0f}{medians[variant] / medians[first]:>{len(first) + 6}.2f}"
              f"{cpu_medians[variant]:>24.0f}{cpu_medians[variant] / cpu_medians[first]:>{len(first) + 6}.2f}"
              f"{statistics.median(request_thread[variant]):>25.0f}{statistics.median(receiving[variant]):>10.0f}   ({rounds})")
    print("   (receiver: CPU us/request of this process, which runs the OTLP receiver standing in for the collector)")
    if {"bare", "upstream", "kyo"} <= set(variants):
        share = (cpu_medians["kyo"] - cpu_medians["bare"]) / (cpu_medians["upstream"] - cpu_medians["bare"])
        print(f"   worker CPU (kyo - bare)/(upstream - bare): {share:.2f}  (includes the export of what the run produced)")
    return medians


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("cpu", "throughput"), help="run one part only")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds per route (CPU part)")
    parser.add_argument("--requests", type=int, default=400, help="requests per round (CPU part)")
    parser.add_argument("--micro", type=int, default=5000, help="calls per micro-benchmark round (0: skip)")
    parser.add_argument("--micro-rounds", type=int, default=5)
    parser.add_argument("--breakdown", type=int, default=10, metavar="ROUNDS",
                        help="rounds of the same-process breakdown of kyo's parts (CPU part; 0: skip)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile kyo on /otp/send with cProfile and print the top N functions")
    parser.add_argument("--seconds", type=float, default=6, help="wrk duration per throughput round")
    parser.add_argument("--throughput-rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--throughput-compare", nargs="+", metavar="VARIANT",
                        help="only the throughput part, for these variants (same forms as --compare), divided by the first")
    parser.add_argument("--compare", nargs="+", metavar="VARIANT",
                        help="only compare these variants' CPU per request, e.g. bare kyo kyo,-flask kyo,-redis "
                             "kyo,logs_exporter=none (settings for configure(); -flask/-redis remove an instrumentation)")
    args = parser.parse_args()

    from benchmarks.receiver import CountingReceiver
    from tests.support.redis_server import RedisServer

    print(f"kyo_otel overhead benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with RedisServer() as redis_server, CountingReceiver() as receiver:
        if args.compare:
            compare(args, redis_server.url, receiver)
            return
        if args.throughput_compare:
            throughput_benchmark(args, redis_server.url, receiver, tuple(args.throughput_compare))
            return
        if args.only in (None, "cpu"):
            result = cpu_benchmark(args, redis_server.url, receiver)
            if "micro" in result:
                print(f"\n== Micro-benchmarks ({args.micro_rounds} interleaved rounds of {args.micro} calls, medians; us per "
                      "call: request-thread CPU / whole-process CPU including the export of what the calls produced)")
                kyo, upstream = result["micro"]["kyo"], result["micro"]["upstream"]
                print(f"   {'':<42}{'kyo':>16}{'upstream':>18}")
                for name in kyo:
                    print(f"   {name:<42}{kyo[name][0]:>7.2f} / {kyo[name][1]:>6.2f}{upstream[name][0]:>9.2f} / {upstream[name][1]:>6.2f}")
                print("   (domain metric record: kyo_otel.otp.sent(tenant) for kyo, an SDK counter.add(1, {tenant}) upstream)")
            if "breakdown" in result:
                print_breakdown(result["breakdown"], args)
            if "profile" in result:
                print("\n== cProfile of kyo on /otp/send\n" + result["profile"])
        if args.only in (None, "throughput"):
            throughput_benchmark(args, redis_server.url, receiver)
        time.sleep(0.5)
        print("\n== What the receiver got: " + ", ".join(
            f"{service} {count} {signal}" for (service, signal), count in sorted(receiver.counts.items())))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        child_main(*sys.argv[2:])
    else:
        main()
