"""What moto stored in one pipeline run, read as CloudWatch and X-Ray would read it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kyo_otel.aws_names import APPLICATION_LOG_GROUP, AUDIT_LOG_GROUP, METRICS_LOG_GROUP


@dataclass(frozen=True)
class Datum:
    """One CloudWatch metric value that an EMF event defines."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    value: Any  # a number, a list of numbers, or {Values, Counts, Max, Min, Count, Sum}
    unit: str | None

    @property
    def dims(self) -> dict[str, str]:
        return dict(self.dimensions)

    @property
    def count(self) -> float:
        """How many samples the value stands for (a histogram's Count, else 1 per value)."""
        if isinstance(self.value, dict):
            return self.value["Count"] if "Count" in self.value else sum(self.value["Counts"])
        return len(self.value) if isinstance(self.value, list) else 1

    @property
    def total(self) -> float:
        """The sum of the values (a counter's delta, a histogram's Sum)."""
        if isinstance(self.value, dict):
            return self.value["Sum"]
        return sum(self.value) if isinstance(self.value, list) else self.value


def emf_metrics(event: dict[str, Any]) -> Iterator[Datum]:
    """The metrics CloudWatch extracts from one EMF event: for each directive in
    ``_aws.CloudWatchMetrics``, each dimension set, each metric: the value of the field named
    after the metric, with the dimension values read from the fields named after the dimensions."""
    for directive in event.get("_aws", {}).get("CloudWatchMetrics", []):
        for dimension_set in directive["Dimensions"]:
            dims = tuple(sorted((name, str(event[name])) for name in dimension_set))
            for metric in directive["Metrics"]:
                if metric["Name"] in event:
                    yield Datum(directive["Namespace"], metric["Name"], dims, event[metric["Name"]], metric.get("Unit"))


class Stored:
    def __init__(self, dump: dict[str, Any]) -> None:
        self.dump = dump
        self.ledger = dump["ledger"]
        self.requests: list[dict[str, Any]] = self.ledger["requests"]

    def messages(self, group: str) -> list[str]:
        return [m for stream in self.dump["logs"].get(group, {}).values() for m in stream]

    def records(self, group: str) -> list[dict[str, Any]]:
        """The JSON log records awscloudwatchlogs wrote to ``group``."""
        return [json.loads(m) for m in self.messages(group)]

    @property
    def application(self) -> list[dict[str, Any]]:
        return self.records(APPLICATION_LOG_GROUP)

    @property
    def audit(self) -> list[dict[str, Any]]:
        return self.records(AUDIT_LOG_GROUP)

    def metrics(self) -> list[Datum]:
        return [d for event in self.records(METRICS_LOG_GROUP) for d in emf_metrics(event)]

    def segments(self) -> list[dict[str, Any]]:
        """Every segment and subsegment document, nested subsegments included."""
        found = []

        def walk(document: dict[str, Any]) -> None:
            found.append(document)
            for sub in document.get("subsegments", []):
                walk(sub)

        for trace in self.dump["traces"]:
            for document in trace["segments"]:
                walk(document)
        return found

    def trace_ids(self) -> set[str]:
        return {trace["id"] for trace in self.dump["traces"]}

    def everything(self) -> str:
        """All that moto stored, as text: every log event of every group and every trace document."""
        return json.dumps({"logs": self.dump["logs"], "traces": self.dump["traces"]})
