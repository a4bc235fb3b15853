"""Fast path ``redis-cluster-pipeline-queue``: the commands a redis-py cluster pipeline queued,
read from its private ``_execution_strategy`` (redis-py 6+), to name its span and statement.

Off: the pipeline's public ``command_stack`` (empty on redis-py 6+ cluster pipelines: their
spans are then named ``redis`` with an empty statement; commands still run, spans still made).
"""

from __future__ import annotations

from typing import Any

from kyo_otel._sdk import fast_path, is_on


def queued(instance: Any) -> Any:
    """The pipeline's queued commands: ``command_stack``, or a cluster pipeline's queue."""
    if is_on("redis-cluster-pipeline-queue"):
        strategy = getattr(instance, "_execution_strategy", None)
        if strategy is not None:
            queue = getattr(strategy, "command_queue", None)
            return queue if queue is not None else strategy._command_queue  # noqa: SLF001
    return instance.command_stack


@fast_path(
    "redis-cluster-pipeline-queue",
    replaces="(no public equivalent) the queued commands of a redis-py 6+ cluster pipeline",
    fallback="the pipeline's public command_stack",
)
def probe() -> None:
    import inspect

    import redis.client
    import redis.cluster

    pipeline = redis.Redis().pipeline()  # no connection until it executes
    pipeline.command_stack.append((("SET", "k", "v"), {}))
    if list(queued(pipeline)) != [(("SET", "k", "v"), {})]:
        raise RuntimeError("a redis-py pipeline's command_stack does not hold its queued commands")
    source = inspect.getsource(redis.cluster.ClusterPipeline.__init__)
    if "command_stack" not in source and "_execution_strategy" not in source:
        raise AttributeError("a redis-py cluster pipeline keeps its commands neither in command_stack nor _execution_strategy")
