"""The ADOT collector configuration: generated from the metric catalog, checked by a real collector.

``collector/otel-collector.yaml``'s metric parts (the filter's allow-list, ``metric_declarations``,
``metric_descriptors``) are rendered from ``kyo_otel.catalog``; the rest is written here once, with
the reason for each choice next to it. Two kinds of check, and each says how to fix what it finds:

- ``collector_validate()`` runs ``otelcol validate`` of the collector ``make collector`` builds
  (ADOT v0.49's components and release): component names, keys, required settings, pipelines.
- ``validate()`` checks what no collector can know: the catalog against the metric filter,
  ``metric_declarations`` and ``metric_descriptors``, and no personal data out of the process
  (no debug exporter in production, OTLP receivers on localhost only).

``check()`` runs both (the first when a binary is there); ``kyo-otel doctor`` calls it.

    python -m kyo_otel.collector render > collector/otel-collector.yaml
    python -m kyo_otel.collector check collector/otel-collector.yaml
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kyo_otel import catalog
from kyo_otel.audit import AUDIT_ATTRIBUTE, AUDIT_VALUE
from kyo_otel.aws_names import APPLICATION_LOG_GROUP, AUDIT_LOG_GROUP, METRICS_LOG_GROUP

LOG_STREAM = "{TaskId}"
"""One stream per ECS task; awsemf and awscloudwatchlogs fill the placeholder from aws.ecs.task.id."""

OTLP_GRPC_ENDPOINT = "localhost:4317"
OTLP_HTTP_ENDPOINT = "localhost:4318"
HEALTH_CHECK_ENDPOINT = "127.0.0.1:13133"
"""ADOT's /healthcheck binary (the container health check) GETs http://127.0.0.1:13133/."""

INDEXED_SPAN_ATTRIBUTES = (catalog.ROUTE, catalog.METHOD, catalog.STATUS_CODE, catalog.TENANT)
"""Span attributes X-Ray indexes as annotations (searchable); the others go to metadata."""

AUDIT_IS = f'attributes["{AUDIT_ATTRIBUTE}"] == "{AUDIT_VALUE}"'
AUDIT_IS_NOT = f'attributes["{AUDIT_ATTRIBUTE}"] != "{AUDIT_VALUE}"'
"""OTTL conditions of the two logs filters (a filter drops a record when its condition is true)."""

ECS_LOG_ATTRIBUTES = ("aws.log.group.names", "aws.log.group.arns", "aws.log.stream.names", "aws.log.stream.arns")
"""Set by the ECS detector from the task's awslogs driver; they would beat awsxray's aws_log_groups."""

CLOUDWATCH_UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)
"""CloudWatch StandardUnit values; awsemf drops a metric_descriptor with any other unit."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a collector config: where, what, and how to fix it."""

    where: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}. Fix: {self.fix}"


# --- the production config ---------------------------------------------------------------


def metric_selector(name: str) -> str:
    """The anchored regex awsemf matches a metric name with: exactly that name, dots literal."""
    return "^" + re.escape(name) + "$"


def render_production_config() -> dict[str, Any]:
    """The ADOT sidecar's config as a dict; ``render_production_yaml()`` writes it with comments."""
    metrics = catalog.METRICS
    log_sending = {
        "sending_queue": {"enabled": True, "queue_size": 1000},
        "retry_on_failure": {
            "enabled": True,
            "initial_interval": "1s",
            "max_interval": "30s",
            "max_elapsed_time": "5m",
        },
    }
    return {
        "extensions": {"health_check": {"endpoint": HEALTH_CHECK_ENDPOINT}},
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": OTLP_GRPC_ENDPOINT}, "http": {"endpoint": OTLP_HTTP_ENDPOINT}}},
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_mib": 200, "spike_limit_mib": 50},
            "resource_detection": {
                "detectors": ["env", "ecs", "ec2"],
                "timeout": "2s",
                "override": False,
                "ecs": {"resource_attributes": {name: {"enabled": False} for name in ECS_LOG_ATTRIBUTES}},
            },
            "filter/catalog_metrics": {
                "error_mode": "ignore",
                "metrics": {"include": {"match_type": "strict", "metric_names": [m.name for m in metrics]}},
            },
            "filter/application_logs": {"error_mode": "ignore", "logs": {"log_record": [AUDIT_IS]}},
            "filter/audit_logs": {"error_mode": "ignore", "logs": {"log_record": [AUDIT_IS_NOT]}},
            "batch/traces": {"timeout": "5s", "send_batch_size": 256, "send_batch_max_size": 512},
            "batch/metrics": {"timeout": "10s", "send_batch_size": 1024, "send_batch_max_size": 2048},
            "batch/logs": {"timeout": "5s", "send_batch_size": 512, "send_batch_max_size": 1024},
        },
        "exporters": {
            "awsxray": {
                "indexed_attributes": list(INDEXED_SPAN_ATTRIBUTES),
                "aws_log_groups": [APPLICATION_LOG_GROUP],
            },
            "awsemf": {
                "namespace": catalog.NAMESPACE,
                "log_group_name": METRICS_LOG_GROUP,
                "log_stream_name": LOG_STREAM,
                "dimension_rollup_option": "NoDimensionRollup",
                "resource_to_telemetry_conversion": {"enabled": True},
                "metric_declarations": [
                    {
                        "dimensions": [list(dims) for dims in m.cloudwatch_dimension_sets()],
                        "metric_name_selectors": [metric_selector(m.name)],
                    }
                    for m in metrics
                ],
                "metric_descriptors": [
                    {"metric_name": m.name, "unit": m.cloudwatch_unit, "overwrite": True} for m in metrics
                ],
            },
            "awscloudwatchlogs/application": {
                "log_group_name": APPLICATION_LOG_GROUP,
                "log_stream_name": LOG_STREAM,
                **log_sending,
            },
            "awscloudwatchlogs/audit": {
                "log_group_name": AUDIT_LOG_GROUP,
                "log_stream_name": LOG_STREAM,
                **log_sending,
            },
        },
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "resource_detection", "batch/traces"],
                    "exporters": ["awsxray"],
                },
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "filter/catalog_metrics", "resource_detection", "batch/metrics"],
                    "exporters": ["awsemf"],
                },
                "logs/application": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "filter/application_logs", "resource_detection", "batch/logs"],
                    "exporters": ["awscloudwatchlogs/application"],
                },
                "logs/audit": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "filter/audit_logs", "resource_detection", "batch/logs"],
                    "exporters": ["awscloudwatchlogs/audit"],
                },
            },
        },
    }


_HEADER = """\
# ADOT collector (aws-otel-collector v0.49) sidecar config for the kyo OTP service.
# GENERATED from kyo_otel/catalog.py by `python -m kyo_otel.collector render`; do not edit by hand
# (tests/test_collector.py fails when this file and the render differ).
# Checked by `python -m kyo_otel.collector check <file>`: the built collector's `validate` (make collector)
# and the catalog checks no collector can make (kyo_otel.collector.validate).
"""
_COMMENTS = {
    "extensions": "The container health check (ADOT's /healthcheck binary) asks this endpoint.",
    "receivers": "OTLP from the app in the same task (shared network namespace): localhost only.",
    "processors/memory_limiter": "First in every pipeline: refuses data before the sidecar (256 MiB) runs out.",
    "processors/resource_detection": (
        "Adds ECS/EC2 facts (task, cluster, region) without overriding the app's own resource attributes.\n"
        "aws.log.* from the task's awslogs driver are off: they would beat awsxray's aws_log_groups."
    ),
    "processors/filter/catalog_metrics": (
        "Only catalog metrics reach awsemf; anything else (SDK self-metrics...) would still be written\n"
        "to the EMF log group and billed as ingestion without becoming a CloudWatch metric."
    ),
    "processors/filter/application_logs": (
        "ADOT ships no connector: two logs pipelines, each drops what is not its own.\n"
        "A record is dropped when a condition is true. Here: audit records."
    ),
    "processors/filter/audit_logs": "Drops everything that is not an audit record (absent attribute included).",
    "processors/batch/traces": "One batch processor per signal, sized for its exporter.",
    "exporters/awsxray": "Route, method, status and tenant become searchable annotations.",
    "exporters/awsemf": (
        "Exactly the catalog's dimension sets (NoDimensionRollup), service.name and\n"
        "deployment.environment.name on every one (resource_to_telemetry_conversion)."
    ),
    "exporters/awscloudwatchlogs/application": (
        "Groups are created by infra with their retention; the exporter only creates streams."
    ),
    "service": (
        "The OTLP receiver fans out to every pipeline of a signal: both logs pipelines see each\n"
        "record, and their filters keep it in exactly one."
    ),
}


def render_production_yaml() -> str:
    """The production config as YAML text, with the reasons as comments."""
    import yaml

    config = render_production_config()
    lines = [_HEADER]
    for kind, components in config.items():
        comment = _COMMENTS.get(kind)
        if comment:
            lines.extend(f"# {line}" for line in comment.splitlines())
        if kind == "service":
            lines.append(yaml.safe_dump({kind: components}, sort_keys=False, width=110).rstrip())
            lines.append("")
            continue
        lines.append(f"{kind}:")
        for name, body in components.items():
            comment = _COMMENTS.get(f"{kind}/{name}")
            if comment:
                lines.extend(f"  # {line}" for line in comment.splitlines())
            dumped = yaml.safe_dump({name: body}, sort_keys=False, width=110).rstrip()
            lines.extend(("  " + line) if line else line for line in dumped.splitlines())
        lines.append("")
    return "\n".join(lines)


# --- reading -----------------------------------------------------------------------------


def load_config(path: str | Path) -> dict[str, Any]:
    """A collector config file as a dict (YAML; ``${env:...}`` references are left as text)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    return loaded if isinstance(loaded, dict) else {}


def component_type(component_id: str) -> str:
    """``awscloudwatchlogs/audit`` -> ``awscloudwatchlogs``."""
    return component_id.split("/", 1)[0]


def _section(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    value = config.get(kind)
    return value if isinstance(value, dict) else {}


def _pipelines(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    service = _section(config, "service")
    pipelines = service.get("pipelines")
    if not isinstance(pipelines, dict):
        return {}
    return {name: (body if isinstance(body, dict) else {}) for name, body in pipelines.items()}


def _ids(pipeline: Mapping[str, Any], kind: str) -> list[str]:
    value = pipeline.get(kind) or []
    return [str(v) for v in value] if isinstance(value, list) else []


def _body(config: Mapping[str, Any], kind: str, component_id: str) -> dict[str, Any]:
    body = _section(config, kind).get(component_id)
    return body if isinstance(body, dict) else {}


def _exporters_in(config: Mapping[str, Any], signal: str, exporter_type: str) -> list[tuple[str, dict[str, Any], str]]:
    """(pipeline name, pipeline, exporter id) for each ``exporter_type`` exporter of a ``signal`` pipeline."""
    return [
        (name, pipeline, exporter)
        for name, pipeline in _pipelines(config).items()
        if name.split("/", 1)[0] == signal
        for exporter in _ids(pipeline, "exporters")
        if component_type(exporter) == exporter_type
    ]


# --- what awsemf emits -------------------------------------------------------------------

OTEL_LIB = "OTelLib"
"""awsemf adds the instrumentation scope name to every point's labels under this key."""


def _resource_labels(converted: bool, exclude_service: bool) -> set[str]:
    """Resource attribute keys of the app that awsemf turns into labels."""
    if not converted:
        return set()
    from kyo_otel.config import resolve_settings
    from kyo_otel.resource import build_resource

    keys = set(build_resource(resolve_settings({}, {})).attributes)
    if exclude_service:  # pkg/resourcetotelemetry: service.name, service.namespace, service.instance.id
        keys -= {"service.name", "service.namespace", "service.instance.id"}
    return keys


def _metric_filter_names(config: Mapping[str, Any], processors: Iterable[str]) -> set[str] | None:
    """Catalog metric names that pass the pipeline's filters, or None when a filter cannot be read."""
    names = set(catalog.BY_NAME)
    for processor in processors:
        if component_type(processor) != "filter":
            continue
        metrics = _body(config, "processors", processor).get("metrics")
        if not isinstance(metrics, dict):
            continue
        include, exclude = metrics.get("include"), metrics.get("exclude")
        if set(metrics) - {"include", "exclude"}:
            return None
        for props, keep in ((include, True), (exclude, False)):
            if props is None:
                continue
            if (
                not isinstance(props, dict)
                or props.get("match_type") != "strict"
                or set(props) - {"match_type", "metric_names"}
            ):
                return None
            listed = set(props.get("metric_names") or [])
            names = names & listed if keep else names - listed
    return names


def _rollup(option: str, labels: set[str]) -> set[tuple[str, ...]]:
    zero = (OTEL_LIB,) if OTEL_LIB in labels else ()
    others = labels - {OTEL_LIB}
    sets: set[tuple[str, ...]] = set()
    if option == "ZeroAndSingleDimensionRollup" and others:
        sets.add(zero)
    if option in ("ZeroAndSingleDimensionRollup", "SingleDimensionRollupOnly"):
        sets.update(tuple(sorted(zero + (label,))) for label in others)
    return sets


def emitted_dimension_sets(config: Mapping[str, Any]) -> dict[str, set[tuple[str, ...]]]:
    """Per catalog metric name, the CloudWatch dimension sets the config's awsemf exporter emits.

    Follows exporter/awsemfexporter: only metrics that pass the metrics pipeline's filters reach
    it; a declared set is emitted when its ``metric_name_selectors`` match the name and the point
    carries every label in it (the catalog attributes, the app's resource attributes when
    ``resource_to_telemetry_conversion`` is on, and ``OTelLib``); rollup sets are added unless
    ``dimension_rollup_option`` is ``NoDimensionRollup``. Each set is a tuple sorted by name, as
    awsemf sorts them: compare with ``tuple(sorted(dims))``. Metrics that reach no awsemf exporter
    are absent; a metric present with an empty set is written to the EMF log group only.
    """
    emitted: dict[str, set[tuple[str, ...]]] = {}
    for _, pipeline, exporter in _exporters_in(config, "metrics", "awsemf"):
        names = _metric_filter_names(config, _ids(pipeline, "processors"))
        if names is None:
            names = set(catalog.BY_NAME)
        body = _body(config, "exporters", exporter)
        conversion = body.get("resource_to_telemetry_conversion") or {}
        resource = _resource_labels(bool(conversion.get("enabled")), bool(conversion.get("exclude_service_attributes")))
        option = body.get("dimension_rollup_option", "ZeroAndSingleDimensionRollup")
        declarations = [d for d in body.get("metric_declarations") or [] if isinstance(d, dict)]
        for name in names:
            spec = catalog.BY_NAME[name]
            labels = set(spec.attributes) | resource | {OTEL_LIB}
            sets = emitted.setdefault(name, set())
            if not declarations:  # every label is one dimension set, plus rollups
                sets.add(tuple(sorted(labels)))
                sets.update(_rollup(option, labels))
                continue
            for declaration in declarations:
                selectors = [s for s in declaration.get("metric_name_selectors") or [] if isinstance(s, str)]
                if not any(_safe_search(s, name) for s in selectors):
                    continue
                matched = False
                for dims in declaration.get("dimensions") or []:
                    dims = tuple(sorted(set(dims or [])))
                    if len(dims) <= 10 and set(dims) <= labels:
                        sets.add(dims)
                        matched = True
                if matched:
                    sets.update(_rollup(option, labels))
    return emitted


def _safe_search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def log_pipelines_by_group(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """CloudWatch log group -> the logs pipelines that write to it."""
    groups: dict[str, list[str]] = {}
    for name, _, exporter in _exporters_in(config, "logs", "awscloudwatchlogs"):
        group = _body(config, "exporters", exporter).get("log_group_name", "")
        groups.setdefault(str(group), []).append(name)
    return groups


# --- validation --------------------------------------------------------------------------


def validate(config_or_path: Mapping[str, Any] | str | Path, *, target: str = "adot") -> list[Problem]:
    """What no collector can know about a config, each problem with what to do about it; [] when sound.

    ``target="adot"`` (default), a production config: the catalog against the metric filter,
    ``metric_declarations`` and ``metric_descriptors`` both ways, no debug exporter, OTLP receivers
    on localhost. ``target="otelcol"``, a local config: OTLP receivers on localhost. Whether the
    collector accepts the file at all is ``collector_validate()``'s question.
    """
    if target not in ("adot", "otelcol"):
        raise ValueError(f"target must be 'adot' or 'otelcol', not {target!r}")
    if isinstance(config_or_path, (str, Path)):
        try:
            config: Mapping[str, Any] = load_config(config_or_path)
        except (OSError, ValueError) as error:
            return [
                Problem(
                    str(config_or_path), f"cannot read the file ({error})", "point at a readable YAML collector config"
                )
            ]
    else:
        config = config_or_path
    problems = _check_receivers(config)
    if target == "adot":
        problems += _check_no_debug_exporter(config)
        problems += _check_metrics(config)
    return problems


def _check_no_debug_exporter(config: Mapping[str, Any]) -> list[Problem]:
    return [
        Problem(
            f"exporters.{exporter_id}",
            "a debug exporter in production prints every span, point and log record (personal data, cost)",
            "remove it; use collector/otel-collector.local.yaml to see telemetry locally",
        )
        for exporter_id in _section(config, "exporters")
        if component_type(exporter_id) in ("debug", "logging", "file")
    ]


def _host_port(endpoint: Any) -> tuple[str, str]:
    text = str(endpoint)
    text = re.sub(r"^[a-z]+://", "", text)
    host, _, port = text.rpartition(":")
    return host, port


def _endpoint(body: Any, default: str) -> Any:
    """A component's endpoint setting, or the collector's default when it sets none."""
    return body.get("endpoint", default) if isinstance(body, dict) else default


def _check_receivers(config: Mapping[str, Any]) -> list[Problem]:
    problems = []
    defaults = {"grpc": OTLP_GRPC_ENDPOINT, "http": OTLP_HTTP_ENDPOINT}
    for receiver_id, body in _section(config, "receivers").items():
        if component_type(receiver_id) != "otlp":
            continue
        protocols = body.get("protocols") if isinstance(body, dict) else None
        if not isinstance(protocols, dict) or not protocols:
            problems.append(
                Problem(
                    f"receivers.{receiver_id}",
                    "enables no protocol",
                    "list protocols: grpc: and/or http: (an empty mapping enables one)",
                )
            )
            continue
        for protocol, settings in protocols.items():
            endpoint = _endpoint(settings, defaults.get(protocol, ""))
            host, _ = _host_port(endpoint)
            if host not in LOOPBACK_HOSTS:
                problems.append(
                    Problem(
                        f"receivers.{receiver_id}.protocols.{protocol}.endpoint",
                        f"{endpoint!r} listens beyond this task (the app shares the task's localhost)",
                        f"bind to {defaults.get(protocol, 'localhost:<port>')}",
                    )
                )
    return problems


def _check_metrics(config: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    emf_pipelines = {name: pipeline for name, pipeline, _ in _exporters_in(config, "metrics", "awsemf")}
    if not emf_pipelines:
        return [
            Problem(
                "service.pipelines",
                "no metrics pipeline exports to awsemf",
                "add a metrics pipeline otlp -> filter -> awsemf",
            )
        ]
    for pipeline_name, pipeline in emf_pipelines.items():
        where = f"service.pipelines.{pipeline_name}"
        filters = [
            p
            for p in _ids(pipeline, "processors")
            if component_type(p) == "filter" and "metrics" in _body(config, "processors", p)
        ]
        if not filters:
            problems.append(
                Problem(
                    where,
                    "no filter processor drops metrics outside the catalog before awsemf "
                    "(they would be written to the EMF log group and billed)",
                    "add a filter with metrics.include match_type strict and the catalog's names",
                )
            )
        else:
            for filter_id in filters:
                metrics = _body(config, "processors", filter_id)["metrics"]
                include = metrics.get("include") if isinstance(metrics, dict) else None
                if not isinstance(include, dict) or include.get("match_type") != "strict" or set(metrics) - {"include"}:
                    problems.append(
                        Problem(
                            f"processors.{filter_id}.metrics",
                            "is not a strict include list, so kyo_otel cannot prove what reaches awsemf",
                            "use include: {match_type: strict, metric_names: [catalog names]}",
                        )
                    )
                    continue
                listed = set(include.get("metric_names") or [])
                for name in sorted(catalog.BY_NAME.keys() - listed):
                    problems.append(
                        Problem(
                            f"processors.{filter_id}.metrics.include.metric_names",
                            f"catalog metric {name!r} is dropped before awsemf",
                            f"add {name} (or regenerate with `python -m kyo_otel.collector render`)",
                        )
                    )
                for name in sorted(listed - catalog.BY_NAME.keys()):
                    problems.append(
                        Problem(
                            f"processors.{filter_id}.metrics.include.metric_names",
                            f"{name!r} is not in the catalog, so it gets through undeclared",
                            f"remove {name}, or add it to kyo_otel/catalog.py",
                        )
                    )
        for exporter_id in _ids(pipeline, "exporters"):
            if component_type(exporter_id) == "awsemf":
                problems += _check_awsemf(exporter_id, _body(config, "exporters", exporter_id))
    emitted = emitted_dimension_sets(config)
    for spec in catalog.METRICS:
        expected = {tuple(sorted(dims)) for dims in spec.cloudwatch_dimension_sets()}
        got = emitted.get(spec.name)
        if got is None:
            continue  # reported above: the filter drops it
        for dims in sorted(expected - got):
            problems.append(
                Problem(
                    f"exporters.awsemf.metric_declarations ({spec.name})",
                    f"catalog dimension set {list(dims)} is not emitted",
                    "declare it in a metric_declaration whose selector matches "
                    f"{metric_selector(spec.name)} (and keep resource_to_telemetry_conversion on)",
                )
            )
        for dims in sorted(got - expected):
            problems.append(
                Problem(
                    f"exporters.awsemf.metric_declarations ({spec.name})",
                    f"dimension set {list(dims)} is emitted but not in the catalog (a billed metric "
                    "no alarm or dashboard knows)",
                    "remove it, or add it to the catalog",
                )
            )
    return problems


def _check_awsemf(exporter_id: str, body: Mapping[str, Any]) -> list[Problem]:
    where = f"exporters.{exporter_id}"
    problems = []
    if body.get("namespace") != catalog.NAMESPACE:
        problems.append(
            Problem(
                f"{where}.namespace",
                f"{body.get('namespace')!r} is not the catalog's namespace",
                f"set namespace: {catalog.NAMESPACE}",
            )
        )
    if body.get("dimension_rollup_option") != "NoDimensionRollup":
        problems.append(
            Problem(
                f"{where}.dimension_rollup_option",
                "rollups add dimension sets the catalog does not declare (each a billed custom metric)",
                "set dimension_rollup_option: NoDimensionRollup",
            )
        )
    if not (body.get("resource_to_telemetry_conversion") or {}).get("enabled"):
        problems.append(
            Problem(
                f"{where}.resource_to_telemetry_conversion",
                "is off: service.name and deployment.environment.name cannot become dimensions",
                "set resource_to_telemetry_conversion: {enabled: true}",
            )
        )
    if not body.get("log_group_name"):
        problems.append(
            Problem(
                f"{where}.log_group_name",
                "is not set (defaults to /metrics/<namespace>, which the IAM policy and infra do not know)",
                f"set log_group_name: {METRICS_LOG_GROUP}",
            )
        )
    for index, declaration in enumerate(body.get("metric_declarations") or []):
        dwhere = f"{where}.metric_declarations[{index}]"
        if not isinstance(declaration, dict):
            continue
        selectors = declaration.get("metric_name_selectors") or []
        if not selectors:
            problems.append(
                Problem(
                    dwhere,
                    "has no metric_name_selectors (awsemf drops the declaration)",
                    "add metric_name_selectors: [^<metric name>$]",
                )
            )
        for selector in selectors:
            try:
                re.compile(str(selector))
            except re.error as error:
                problems.append(
                    Problem(
                        dwhere,
                        f"selector '{selector}' is not a valid regex ({error})",
                        "use ^<metric name>$ with dots escaped",
                    )
                )
                continue
            matched = [n for n in catalog.BY_NAME if re.search(str(selector), n)]
            if not matched:
                problems.append(
                    Problem(
                        dwhere,
                        f"selector '{selector}' names no catalog metric",
                        "remove the declaration or fix the name",
                    )
                )
            elif not (str(selector).startswith("^") and str(selector).endswith("$")):
                problems.append(
                    Problem(
                        dwhere,
                        f"selector '{selector}' is not anchored and may match future metrics",
                        f"use {metric_selector(matched[0])}",
                    )
                )
        for dims in declaration.get("dimensions") or []:
            if len(dims or []) > 10:
                problems.append(
                    Problem(dwhere, f"dimension set {dims} has more than 10 names (awsemf drops it)", "split it")
                )
    descriptors = {d.get("metric_name"): d for d in body.get("metric_descriptors") or [] if isinstance(d, dict)}
    for spec in catalog.METRICS:
        descriptor = descriptors.get(spec.name)
        if descriptor is None:
            problems.append(
                Problem(
                    f"{where}.metric_descriptors",
                    f"{spec.name} has no descriptor, so CloudWatch gets the OTel unit {spec.unit!r}",
                    f"add {{metric_name: {spec.name}, unit: {spec.cloudwatch_unit}, overwrite: true}}",
                )
            )
        elif descriptor.get("unit") != spec.cloudwatch_unit or descriptor.get("overwrite") is not True:
            problems.append(
                Problem(
                    f"{where}.metric_descriptors ({spec.name})",
                    f"unit {descriptor.get('unit')!r}, overwrite {descriptor.get('overwrite')!r}",
                    f"set unit: {spec.cloudwatch_unit} and overwrite: true",
                )
            )
    for name, descriptor in descriptors.items():
        if name not in catalog.BY_NAME:
            problems.append(
                Problem(f"{where}.metric_descriptors ({name})", "names a metric the catalog lacks", "remove it")
            )
        if descriptor.get("unit") not in CLOUDWATCH_UNITS:
            problems.append(
                Problem(
                    f"{where}.metric_descriptors ({name})",
                    f"{descriptor.get('unit')!r} is not a CloudWatch unit (awsemf drops the descriptor)",
                    "use Seconds, Milliseconds, Bytes, Count, Percent, None...",
                )
            )
    return problems


# --- the real collector -----------------------------------------------------------------

BUILT_COLLECTOR = Path(".collector") / "otelcol-kyo"
"""Where ``make collector`` puts the collector it builds from ``collector/builder-config.yaml``
(relative to the repository root): the components both configs use, at ADOT v0.49's release."""
COLLECTOR_COMMANDS = ("otelcol-kyo", "otelcol-contrib")


def find_collector(root: str | Path | None = None) -> Path | None:
    """The collector binary to validate configs with: ``make collector``'s build under ``root``
    (default: the working directory), else ``otelcol-kyo`` or ``otelcol-contrib`` on PATH."""
    built = Path(root or ".") / BUILT_COLLECTOR
    if built.is_file() and os.access(built, os.X_OK):
        return built
    for command in COLLECTOR_COMMANDS:
        found = shutil.which(command)
        if found:
            return Path(found)
    return None


def collector_validate(binary: str | Path, path: str | Path, timeout: float = 60.0) -> list[Problem]:
    """``<binary> validate --config <path>``: [] when the collector accepts the file and warns of
    nothing; else a Problem with what it said (an error, or a warning such as a deprecated name).

    Validation builds every component, and the AWS exporters look up their region as they are
    built: from the environment (an ECS task has AWS_REGION), else from instance metadata. So it
    runs with instance metadata off, and with a region when the environment has none.
    """
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        env["AWS_REGION"] = "us-east-1"
    try:
        result = subprocess.run([str(binary), "validate", f"--config={path}"], capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [Problem(str(path), f"{binary} could not run ({error})", "rebuild it with `make collector`")]
    said = (result.stderr + result.stdout).strip()
    name = Path(binary).name
    if result.returncode != 0:
        return [Problem(str(path), f"{name} validate refuses it: {said}", "change what the collector names")]
    warnings = [line for line in said.splitlines() if "warn" in line.lower() or "deprecated" in line.lower()]
    return [Problem(str(path), f"{name} validate warns: {line.strip()}", "change what the collector names")
            for line in warnings]


def check(path: str | Path, *, target: str = "adot", binary: str | Path | None = None) -> tuple[list[Problem], Path | None]:
    """Both checks of a config file: the collector's own ``validate`` (``binary``, default
    ``find_collector()``; skipped when there is none) and ``validate()``. Returns the problems and
    the binary that validated the file, or None when none did."""
    found = Path(binary) if binary else find_collector()
    problems = collector_validate(found, path) if found else []
    return problems + validate(path, target=target), found


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``render`` prints the production YAML; ``check FILE [--local]`` prints problems (exit 1 if any)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["render"]:
        sys.stdout.write(render_production_yaml())
        return 0
    if args[:1] == ["check"] and len(args) >= 2:
        problems, binary = check(args[1], target="otelcol" if "--local" in args else "adot")
        for problem in problems:
            print(problem)
        checked_by = f"validated by {binary}" if binary else "no collector binary to validate with (make collector)"
        print(f"{len(problems)} problem(s) in {args[1]} ({checked_by})")
        return 1 if problems else 0
    print("usage: python -m kyo_otel.collector render | check FILE [--local]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
