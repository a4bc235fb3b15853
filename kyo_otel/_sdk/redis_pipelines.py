"""Fast path ``redis-cluster-pipeline-queue``: the commands a redis-py cluster pipeline queued,
read from its private ``_execution_strategy`` (redis-py 6+), to name its span and statement.

Off: the pipeline's public ``command_stack`` (empty on redis-py 6+ cluster pipelines, absent on
asyncio cluster pipelines before redis-py 6: their spans are then named ``redis`` with an empty
statement; commands still run, spans still made).
"""

from __future__ import annotations

from typing import Any

from kyo_otel._sdk import fast_path, is_on


def queued(instance: Any) -> Any:
    """The pipeline's queued commands: ``command_stack``, or a cluster pipeline's queue."""
    return _queued(instance) if is_on("redis-cluster-pipeline-queue") else getattr(instance, "command_stack", ())


def _queued(instance: Any) -> Any:
    strategy = getattr(instance, "_execution_strategy", None)  # redis-py 6+ cluster pipelines
    if strategy is not None:
        queue = getattr(strategy, "command_queue", None)
        return queue if queue is not None else strategy._command_queue  # noqa: SLF001
    stack = getattr(instance, "command_stack", None)
    return stack if stack is not None else instance._command_stack  # noqa: SLF001 - asyncio cluster pipelines before redis-py 6


class _Unconnected:
    """The probe's nodes manager: its pipeline never executes, so every attribute it reads while
    built (redis-py 8 reads ``himport_registry``) is None."""

    def __getattr__(self, name: str) -> None:
        return None


@fast_path(
    "redis-cluster-pipeline-queue",
    replaces="(no public equivalent) the queued commands of a redis-py 6+ cluster pipeline",
    fallback="the pipeline's public command_stack",
)
def probe() -> None:
    import redis.client
    import redis.cluster

    pipeline = redis.Redis().pipeline()  # no connection until it executes
    pipeline.command_stack.append((("SET", "k", "v"), {}))
    if list(_queued(pipeline)) != [(("SET", "k", "v"), {})]:
        raise RuntimeError("a redis-py pipeline's command_stack does not hold its queued commands")
    # redis-py 6+ keeps a cluster pipeline's commands in its execution strategy, older ones in
    # command_stack: either way, what _queued reads must be the command just queued.
    cluster_pipeline = redis.cluster.ClusterPipeline(nodes_manager=_Unconnected(), commands_parser=None)
    cluster_pipeline.set("k", "v")  # queued, not sent
    commands = [getattr(command, "args", None) for command in _queued(cluster_pipeline)]
    if commands != [("SET", "k", "v")]:
        raise RuntimeError(f"a redis-py cluster pipeline's queued commands read {commands!r}")
