"""Redis client spans: kyo_otel's lean spans are the contrib instrumentation's spans, for less CPU.

``instrumentation="kyo"`` (the default) makes them with ``kyo_otel.redis_spans``;
``instrumentation="contrib"`` with ``opentelemetry-instrumentation-redis``. The same workload runs
under each, in a fresh process (instrumentations are process-wide), against the real Redis server
of the test session, and the spans must be the same.
"""

from __future__ import annotations

import redis as redis_lib
import pytest

from kyo_otel.health import RedisHealth
from tests.support.redis_server import RedisServer
from tests.support.subprocess_python import last_json_line, run_python

pytestmark = [pytest.mark.redis, pytest.mark.fastpath]

PHONE_KEY = "otp:+886912345678"
CODE = "424242"

# Every kind of call the sample app makes, and the failures it meets, inside a parent span.
WORKLOAD = f"""
    import asyncio, json, os
    import redis, redis.asyncio
    import kyo_otel
    from opentelemetry import trace
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    telemetry = kyo_otel.configure(environment="test")
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    other = redis.Redis.from_url(os.environ["REDIS_URL"])  # a concurrent writer
    key = "{PHONE_KEY}"

    async def async_calls():  # the asyncio client: a command and a transaction
        client = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
        await client.get(key)
        async with client.pipeline() as pipe:
            await pipe.set(key, "{CODE}").get(key).execute()
        await client.aclose()

    with trace.get_tracer("app").start_as_current_span("POST /otp/send"):
        client.set(key, "{CODE}", ex=60)
        client.get(key)
        pipe = client.pipeline(transaction=False)
        pipe.incr("rate:" + key)
        pipe.expire("rate:" + key, 60)
        pipe.execute()
        with client.pipeline() as pipe:  # WATCH / MULTI / EXEC, as a verification does
            pipe.watch(key)
            pipe.get(key)
            pipe.multi()
            pipe.delete(key)
            pipe.execute()
        with client.pipeline() as pipe:  # a concurrent change: WatchError, the caller retries
            pipe.watch(key)
            other.set(key, "{CODE}")
            pipe.multi()
            pipe.get(key)
            try:
                pipe.execute()
            except redis.WatchError:
                pass
        try:
            client.lpush(key, "{CODE}")  # WRONGTYPE: the key holds a string
        except redis.ResponseError:
            pass
        pipe = client.pipeline()
        pipe.hset(key, "attempts", 1)  # WRONGTYPE inside a transaction
        try:
            pipe.execute()
        except redis.ResponseError:
            pass
        with suppress_instrumentation():
            client.ping()  # the health check's PING: no span
        asyncio.run(async_calls())


    spans = sorted(telemetry.memory.spans.get_finished_spans(), key=lambda s: s.start_time)
    index = {{s.context.span_id: i for i, s in enumerate(spans)}}
    print(json.dumps([
        {{
            "name": s.name,
            "kind": s.kind.name,
            "parent": index.get(s.parent.span_id) if s.parent else None,
            "attributes": dict(s.attributes),
            "status": [s.status.status_code.name, s.status.description],
            "events": [[e.name, {{k: v for k, v in e.attributes.items() if k != "exception.stacktrace"}}] for e in s.events],
            "scope": s.instrumentation_scope.name,
        }}
        for s in spans
    ]))
"""


def spans_under(instrumentation: str, redis_server) -> list[dict]:
    result = run_python(WORKLOAD, env={"REDIS_URL": redis_server.url, "KYO_OTEL_INSTRUMENTATION": instrumentation})
    return last_json_line(result)


def test_kyo_spans_are_the_contrib_spans(redis_server, redis_client):
    contrib = spans_under("contrib", redis_server)
    redis_client.flushdb()
    kyo = spans_under("kyo", redis_server)

    assert [s["name"] for s in kyo] == [
        "POST /otp/send", "SET", "GET", "INCRBY EXPIRE", "WATCH", "GET", "DEL", "WATCH", "SET", "GET", "LPUSH", "HSET",
        "GET", "SET GET",
    ]
    assert {s["scope"] for s in kyo[1:]} == {"kyo_otel.redis_spans"}
    assert {s["scope"] for s in contrib[1:]} == {"opentelemetry.instrumentation.redis"}
    for ours, theirs in zip(kyo, contrib, strict=True):
        del ours["scope"], theirs["scope"]
        assert ours == theirs

    request, set_, get, pipeline, watch, *_, lpush, transaction, async_get, async_transaction = kyo
    assert set_ == {
        "name": "SET",
        "kind": "CLIENT",
        "parent": 0,
        "attributes": {
            "db.statement": "SET ? ? ? ?",
            "db.redis.args_length": 5,
            "db.system": "redis",
            "db.redis.database_index": 0,
            "server.address": "127.0.0.1",
            "server.port": redis_server.port,
            "network.transport": "tcp",
        },
        "status": ["UNSET", None],
        "events": [],
    }
    assert pipeline["attributes"]["db.statement"] == "INCRBY ? ?\nEXPIRE ? ?"
    assert pipeline["attributes"]["db.redis.pipeline_length"] == 2
    assert async_get["parent"] == async_transaction["parent"] == 0
    assert async_transaction["attributes"]["db.redis.pipeline_length"] == 2
    assert kyo[9]["status"] == ["UNSET", None], "a WatchError is the caller's retry, not an error"
    assert lpush["status"][0] == transaction["status"][0] == "ERROR"
    assert lpush["events"] == [["exception", {
        "exception.type": "redis.exceptions.ResponseError",
        "exception.message": "WRONGTYPE Operation against a key holding the wrong kind of value",
        "exception.escaped": "False",
    }]]


CLUSTER_WORKLOAD = f"""
    import json, os
    import redis, redis.cluster
    import kyo_otel

    telemetry = kyo_otel.configure(environment="test")
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]))
    client.set("{PHONE_KEY}", "{CODE}", ex=60)
    client.get("{PHONE_KEY}")
    pipe = client.pipeline()
    pipe.set("{PHONE_KEY}", "{CODE}")
    pipe.get("{PHONE_KEY}")
    pipe.execute()
    try:
        client.lpush("{PHONE_KEY}", "{CODE}")
    except redis.ResponseError:
        pass
    print(json.dumps([
        [s.name, s.kind.name, dict(s.attributes), s.status.status_code.name, [e.name for e in s.events]]
        for s in telemetry.memory.spans.get_finished_spans()
    ]))
"""


ASYNC_CLUSTER_WORKLOAD = f"""
    import asyncio, json, os
    import redis, redis.asyncio.cluster
    import kyo_otel

    telemetry = kyo_otel.configure(environment="test")

    async def calls():
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]))
        await client.set("{PHONE_KEY}", "{CODE}", ex=60)
        await client.get("{PHONE_KEY}")
        pipe = client.pipeline()
        pipe.set("{PHONE_KEY}", "{CODE}")
        pipe.get("{PHONE_KEY}")
        await pipe.execute()
        try:
            await client.lpush("{PHONE_KEY}", "{CODE}")
        except redis.ResponseError:
            pass
        await client.close()

    asyncio.run(calls())
    print(json.dumps([
        [s.name, s.kind.name, dict(s.attributes), s.status.status_code.name, [e.name for e in s.events]]
        for s in telemetry.memory.spans.get_finished_spans()
    ]))
"""


@pytest.mark.parametrize("workload", [CLUSTER_WORKLOAD, ASYNC_CLUSTER_WORKLOAD], ids=["sync", "asyncio"])
def test_cluster_client_spans_are_the_contrib_spans(workload):
    with RedisServer(cluster=True) as cluster:
        spans = {
            instrumentation: last_json_line(run_python(workload, env={
                "REDIS_PORT": str(cluster.port), "KYO_OTEL_INSTRUMENTATION": instrumentation,
            }))
            for instrumentation in ("contrib", "kyo")
        }
    assert spans["kyo"] == spans["contrib"]
    assert [name for name, *_ in spans["kyo"]][-4:] == ["SET", "GET", "SET GET", "LPUSH"]
    assert spans["kyo"][-2][2] == {"db.statement": "SET ? ?\nGET ?", "db.redis.pipeline_length": 2}
    assert spans["kyo"][-1][3:] == ["ERROR", ["exception"]]


def test_no_key_or_value_reaches_a_redis_span(redis_client, kyo_telemetry):  # FLUSHDB before the capture
    phone_key, rate_key = PHONE_KEY, "rate:+886912345678"
    redis_client.set(phone_key, CODE, ex=60)
    redis_client.get(phone_key)
    with redis_client.pipeline() as pipe:
        pipe.watch(phone_key)
        pipe.hmget(rate_key, ["hash", "attempts"])
        pipe.multi()
        pipe.hset(rate_key, mapping={"hash": CODE, "attempts": 0})
        pipe.execute()
    redis_client.set(rate_key + ":text", CODE + "x")
    with pytest.raises(redis_lib.ResponseError):
        redis_client.incr(rate_key + ":text")  # not an integer: an error span, still no value

    spans = kyo_telemetry.spans()
    assert [s.name for s in spans] == ["SET", "GET", "WATCH", "HMGET", "HSET", "SET", "INCRBY"]
    for span in spans:
        recorded = repr(dict(span.attributes)) + repr([dict(e.attributes) for e in span.events]) + span.name
        for secret in ("+886912345678", CODE, "hash", "attempts"):
            assert secret not in recorded, (span.name, recorded)


def test_the_health_check_ping_makes_no_span(redis_client, kyo_telemetry):
    health = RedisHealth(redis_client)
    assert health.check()["healthy"]
    redis_client.ping()
    assert [s.name for s in kyo_telemetry.spans()] == ["PING"]


# The contrib instrumentation may be active before kyo_otel is configured (the user's code, or
# ``opentelemetry-instrument`` without the kyo distro) or after: a command still gets one span.
ONE_SPAN_EACH = """
    import json, os
    import redis
    import kyo_otel
    from kyo_otel import redis_spans
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    original = redis.Redis.execute_command
    report = {}

    def scopes(telemetry):
        client.ping()
        names = [s.instrumentation_scope.name for s in telemetry.memory.spans.get_finished_spans()]
        telemetry.memory.spans.clear()
        return names

    RedisInstrumentor().instrument()  # contrib first: kyo_otel leaves it alone
    telemetry = kyo_otel.configure(environment="test")
    report["contrib first"] = scopes(telemetry)
    kyo_otel.shutdown()
    report["still instrumented after shutdown"] = RedisInstrumentor().is_instrumented_by_opentelemetry
    RedisInstrumentor().uninstrument()

    telemetry = kyo_otel.configure(environment="test")
    redis_spans.install(telemetry.tracer_provider)  # again: no second wrapper
    report["kyo"] = scopes(telemetry)
    RedisInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)  # contrib after kyo_otel
    report["contrib after"] = scopes(telemetry)
    RedisInstrumentor().uninstrument()
    report["kyo again"] = scopes(telemetry)
    kyo_otel.shutdown()
    report["restored after shutdown"] = redis.Redis.execute_command is original
    print(json.dumps(report))
"""


def test_a_command_gets_one_span_whoever_instrumented_first(redis_server):
    report = last_json_line(run_python(ONE_SPAN_EACH, env={"REDIS_URL": redis_server.url}))
    assert report == {
        "contrib first": ["opentelemetry.instrumentation.redis"],
        "still instrumented after shutdown": True,
        "kyo": ["kyo_otel.redis_spans"],
        "contrib after": ["opentelemetry.instrumentation.redis"],
        "kyo again": ["kyo_otel.redis_spans"],
        "restored after shutdown": True,
    }


def test_repeated_command_shapes_get_the_same_spans(redis_client, kyo_telemetry):
    """A command's name and statement are worked out once per shape (command names and argument
    counts) and reused: a shape met again gets the same span, and a one-command pipeline is not
    taken for that command."""
    for _ in range(2):
        redis_client.get(PHONE_KEY)
        pipe = redis_client.pipeline(transaction=False)
        pipe.get(PHONE_KEY)
        pipe.execute()
        redis_client.set(PHONE_KEY, CODE, ex=60)  # same command, other argument counts
        redis_client.set(PHONE_KEY, CODE)
    spans = [(s.name, dict(s.attributes)) for s in kyo_telemetry.spans()]
    assert spans[:4] == spans[4:]
    (_, get), (_, pipeline), (_, set_ex), (_, set_) = spans[:4]
    assert (get["db.statement"], get["db.redis.args_length"]) == ("GET ?", 2) and "db.redis.pipeline_length" not in get
    assert (pipeline["db.statement"], pipeline["db.redis.pipeline_length"]) == ("GET ?", 1)
    assert "db.redis.args_length" not in pipeline
    assert (set_ex["db.statement"], set_["db.statement"]) == ("SET ? ? ? ?", "SET ? ?")
    assert get["db.system"] == "redis" and pipeline["server.port"] == get["server.port"]


class _Unprintable(Exception):
    """An application exception whose message cannot be built (``str()`` raises)."""

    def __str__(self) -> str:
        raise AttributeError("detail")


def test_an_exception_that_cannot_be_printed_reaches_the_caller_as_raised(redis_client, kyo_telemetry):
    """Recording an exception on the Redis span reads its message; when that fails, the caller
    still gets its own exception (not the recorder's), and the span still ends, as an error."""
    from opentelemetry import trace

    def parse_stock(response, **options):  # a response callback of the application's
        raise _Unprintable()

    redis_client.set_response_callback("GET", parse_stock)
    with pytest.raises(_Unprintable):
        redis_client.get("stock:7")
    assert trace.get_current_span() is trace.INVALID_SPAN  # the span was made current, then detached
    (span,) = kyo_telemetry.spans("GET")
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "_Unprintable: <exception str() failed>"


ONE_STRING_COMMANDS = f"""
    import json, os
    import redis
    import kyo_otel

    telemetry = kyo_otel.configure(environment="test")
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.execute_command("SET {PHONE_KEY} {CODE} EX 60")  # redis-py sends each word as an argument
    assert client.get("{PHONE_KEY}") == b"{CODE}"
    client.config_get("maxmemory")  # redis-py's own two-word name: CONFIG GET
    print(json.dumps([[s.name, s.attributes["db.statement"]] for s in telemetry.memory.spans.get_finished_spans()]))
"""


@pytest.mark.parametrize("instrumentation", ["kyo", "contrib"])
def test_a_command_written_as_one_string_records_its_name_not_its_words(redis_server, instrumentation):
    # execute_command(f"SET {key} {code}") works (redis-py splits the words), and the whole string
    # was the span's name and its db.statement: the phone number masked by the scrubber at most,
    # the code not at all.
    spans = last_json_line(run_python(ONE_STRING_COMMANDS, env={
        "REDIS_URL": redis_server.url, "KYO_OTEL_INSTRUMENTATION": instrumentation}))
    assert spans == [["SET", "SET ? ? ? ?"], ["GET", "GET ?"], ["CONFIG GET", "CONFIG GET ?"]]
