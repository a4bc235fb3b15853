"""``kyo-otel``: doctor (is this set up right?), cost (what will CloudWatch bill?), catalog.

    kyo-otel doctor [--collector PATH] [--target auto|adot|otelcol] [--timeout SECONDS]
    kyo-otel cost --tenants N [--instances M]
    kyo-otel catalog [--format table|json]

``doctor`` also lists kyo_otel's fast paths (``kyo_otel._sdk``), each on or off with the reason. It
reads the same environment ``configure()`` reads, so run it where the service runs
(same variables, same network). It exits non-zero when anything is wrong and says how to fix it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from kyo_otel import catalog
from kyo_otel.config import PARAMS, SIGNALS, Settings, resolve_settings, shown_endpoint
from kyo_otel.errors import ConfigError

DEFAULT_COLLECTOR = Path("collector") / "otel-collector.yaml"


@dataclass
class Check:
    """One doctor finding: ok, skipped, or a problem with the fix."""

    status: str  # ok | skip | FAIL
    what: str
    fix: str = ""


# --- doctor ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    if value is None:
        return "(follows environment)"
    return str(value)


def _masked(name: str, value: Any) -> Any:
    """Header values are credentials (API keys, bearer tokens): only their names are shown; so is
    an endpoint's password."""
    if name == "otlp_headers" and isinstance(value, dict):
        return {k: "***" for k in value}
    if name == "otlp_endpoint":
        return shown_endpoint(value)
    return value


def configuration_lines(settings: Settings) -> list[str]:
    width = max(len(p.name) for p in PARAMS)
    lines = ["Configuration (argument > KYO_OTEL_* > OTEL_* > default):"]
    for param in PARAMS:
        value = _show(_masked(param.name, getattr(settings, param.name)))
        lines.append(f"  {param.name:<{width}}  {value:<32}  {settings.sources.get(param.name, '')}")
    return lines


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80)


def check_tcp(endpoint: str, timeout: float) -> Check:
    host, port = _host_port(endpoint)
    endpoint = shown_endpoint(endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror:
        return Check("FAIL", f"OTLP endpoint {endpoint}: host name {host!r} does not resolve",
                     "fix the host in KYO_OTEL_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT)")
    except ConnectionRefusedError:
        return Check("FAIL", f"OTLP endpoint {endpoint}: nothing listens on {host}:{port} (connection refused)",
                     "start the collector (the ADOT sidecar; see the README's collector section), "
                     "or point KYO_OTEL_OTLP_ENDPOINT at a running one")
    except (socket.timeout, TimeoutError):
        return Check("FAIL", f"OTLP endpoint {endpoint}: no answer from {host}:{port} within {timeout:g}s",
                     "a firewall or security group drops the traffic, or the address is wrong")
    except OSError as exc:
        return Check("FAIL", f"OTLP endpoint {endpoint}: cannot connect to {host}:{port} ({exc.strerror or exc})",
                     "check the address in KYO_OTEL_OTLP_ENDPOINT and the network between here and the collector")
    return Check("ok", f"OTLP endpoint {endpoint} accepts TCP connections")


_SINGULAR = {"traces": "trace", "metrics": "metric", "logs": "log"}


def _empty_request(signal: str) -> tuple[Any, Any]:
    """The empty export request of one signal and its gRPC stub class."""
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as messages
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as stubs

        return messages.ExportTraceServiceRequest(), stubs.TraceServiceStub
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as messages
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as stubs

        return messages.ExportMetricsServiceRequest(), stubs.MetricsServiceStub
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as messages
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as stubs

    return messages.ExportLogsServiceRequest(), stubs.LogsServiceStub


def _empty_export_grpc(settings: Settings, signal: str, timeout: float) -> None:
    import grpc

    host, port = _host_port(settings.otlp_endpoint)
    target = f"{host}:{port}"
    if settings.otlp_endpoint.startswith("https://"):
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    else:
        channel = grpc.insecure_channel(target)
    request, stub = _empty_request(signal)
    try:
        metadata = [(k.lower(), v) for k, v in settings.otlp_headers.items()]
        stub(channel).Export(request, timeout=timeout, metadata=metadata)
    finally:
        channel.close()


def _empty_export_http(settings: Settings, signal: str, timeout: float) -> None:
    import urllib.request

    request, _ = _empty_request(signal)
    http_request = urllib.request.Request(
        f"{settings.otlp_endpoint}/v1/{signal}",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **settings.otlp_headers},
        method="POST",
    )
    with urllib.request.urlopen(http_request, timeout=timeout) as response:  # noqa: S310 (the configured endpoint)
        response.read()


def _grpc_fix(code_name: str, signal: str, first: bool) -> str:
    if code_name == "UNIMPLEMENTED":
        pipeline = (
            f"the collector has no {signal} pipeline with the otlp receiver: add otlp to "
            f"service.pipelines.{signal}.receivers"
        )
        if not first:
            return pipeline
        return (
            "this port does not serve OTLP/gRPC: use the collector's gRPC port (4317), or set "
            f"KYO_OTEL_OTLP_PROTOCOL=http/protobuf for its HTTP port (4318); or {pipeline}"
        )
    fixes = {
        "UNAVAILABLE": "the collector is not answering gRPC here (an HTTP port, TLS mismatch, or it is starting): "
        "check the port (4317 for gRPC) and http:// versus https://",
        "UNAUTHENTICATED": "the collector wants credentials: set KYO_OTEL_OTLP_HEADERS (or OTEL_EXPORTER_OTLP_HEADERS)",
        "PERMISSION_DENIED": "the credentials in KYO_OTEL_OTLP_HEADERS are refused",
        "DEADLINE_EXCEEDED": "the collector accepted the connection but did not answer in time: is it overloaded?",
    }
    return fixes.get(code_name, "look at the collector's own log for why it refused the export")


def check_empty_export(settings: Settings, signal: str, timeout: float, first: bool = True) -> Check:
    """Send a real OTLP export with nothing in it: proves protocol, path, TLS, credentials and
    that the collector has a pipeline for the signal."""
    what = f"an empty OTLP {_SINGULAR[signal]} export to {shown_endpoint(settings.otlp_endpoint)} ({settings.otlp_protocol})"
    start = time.perf_counter()
    try:
        if settings.otlp_protocol == "grpc":
            _empty_export_grpc(settings, signal, timeout)
        else:
            _empty_export_http(settings, signal, timeout)
    except Exception as exc:  # every failure becomes a finding, never a traceback
        code = getattr(exc, "code", None)
        if callable(code):  # grpc.RpcError
            name = code().name
            detail = (exc.details() if hasattr(exc, "details") else "") or ""
            return Check("FAIL", f"{what} was refused: {name} {detail}".rstrip(), _grpc_fix(name, signal, first))
        if isinstance(code, int):  # urllib's HTTPError
            fix = (
                f"this port does not serve OTLP/HTTP at /v1/{signal}: use the collector's HTTP port (4318), "
                f"or set KYO_OTEL_OTLP_PROTOCOL=grpc for its gRPC port (4317); or add otlp to "
                f"service.pipelines.{signal}.receivers"
                if code in (404, 405, 415)
                else "the collector refused the export; see its log"
            )
            return Check("FAIL", f"{what} was refused: HTTP {code}", fix)
        import http.client

        if isinstance(exc, http.client.HTTPException):  # e.g. HTTP/1.1 sent to a gRPC (HTTP/2) port
            return Check("FAIL", f"{what} failed: the endpoint does not answer HTTP/1.1 ({type(exc).__name__})",
                         "this looks like a gRPC port: set KYO_OTEL_OTLP_PROTOCOL=grpc, or use the HTTP port (4318)")
        return Check("FAIL", f"{what} failed: {type(exc).__name__}: {exc}",
                     "check the endpoint's scheme (http/https), port and protocol")
    elapsed = (time.perf_counter() - start) * 1000
    return Check("ok", f"{what} accepted in {elapsed:.0f} ms")


def check_exports(settings: Settings, signals: list[str], timeout: float) -> list[Check]:
    """One empty export per signal sent over OTLP; after a failure that is not about a missing
    pipeline the others would fail the same way, so they are not tried."""
    checks: list[Check] = []
    for index, signal in enumerate(signals):
        check = check_empty_export(settings, signal, timeout, first=index == 0)
        checks.append(check)
        if check.status == "FAIL" and "pipeline" not in check.fix:
            break
    return checks


def collector_target(path: Path, target: str) -> str:
    """``adot`` for the production config; ``otelcol`` for the local stock-collector one."""
    if target != "auto":
        return target
    return "otelcol" if ".local." in path.name else "adot"


def check_collector(path: Path, explicit: bool, target: str = "auto") -> list[Check]:
    """The collector's own ``validate`` (the binary ``make collector`` builds, when it is there)
    and kyo_otel's checks of what no collector can know (the catalog, personal data)."""
    if not path.exists():
        if explicit:
            return [Check("FAIL", f"collector configuration {path} does not exist", "give the path of the YAML file")]
        return [Check("skip", f"no {path} here (run from the project root, or pass --collector PATH)")]
    from kyo_otel import collector

    kind = collector_target(path, target)
    try:
        problems, binary = collector.check(path, target=kind)
    except Exception as exc:
        return [Check("FAIL", f"{path}: {exc}", "fix the file so that it parses as a collector configuration")]
    checks = []
    if binary is None:
        checks.append(Check("skip", f"no collector binary to validate {path} with (looked for "
                            f"{collector.BUILT_COLLECTOR} and {', '.join(collector.COLLECTOR_COMMANDS)} on PATH)",
                            "build one with `make collector` in the project root"))
    if not problems:
        by = f"{binary} validate and " if binary else ""
        checks.append(Check("ok", f"{path} passes {by}the {kind} catalog checks"))
        return checks
    return checks + [
        Check("FAIL", ": ".join(dict.fromkeys(part for part in (str(path), p.where, p.what) if part)),
              p.fix or "see the README's collector section")
        for p in problems
    ]


def doctor(args: argparse.Namespace, out: IO[str], env: dict[str, str] | None = None) -> int:
    checks: list[Check] = []
    settings: Settings | None = None
    try:
        settings = resolve_settings({}, env)
    except ConfigError as exc:
        checks.append(Check("FAIL", f"configuration: {exc}", f"change {exc.source or 'the setting'} to an allowed value"))
    if settings is not None:
        out.write("\n".join(configuration_lines(settings)) + "\n\n")
        otlp_signals = [s for s in SIGNALS if settings.exporter(s) == "otlp"]
        if not otlp_signals:
            checks.append(Check(
                "skip",
                f"OTLP endpoint: no signal exports to OTLP (traces={settings.exporter('traces')}, "
                f"metrics={settings.exporter('metrics')}, logs={settings.exporter('logs')}); "
                "set KYO_OTEL_PROFILE=otlp to check the collector connection",
            ))
        else:
            tcp = check_tcp(settings.otlp_endpoint, args.timeout)
            checks.append(tcp)
            if tcp.status == "ok":
                checks.extend(check_exports(settings, otlp_signals, args.timeout))
    from kyo_otel._sdk import status_lines

    out.write("\n".join(status_lines()) + "\n\n")
    explicit = args.collector is not None
    checks.extend(check_collector(Path(args.collector) if explicit else DEFAULT_COLLECTOR, explicit, args.target))

    out.write("Checks:\n")
    for check in checks:
        out.write(f"  {check.status:<4}  {check.what}\n")
        if check.fix:
            out.write(f"        fix: {check.fix}\n")
    failed = sum(1 for c in checks if c.status == "FAIL")
    out.write(f"\n{failed} problem{'s' if failed != 1 else ''} found.\n" if failed else "\nAll checks passed.\n")
    return 1 if failed else 0


# --- cost ---------------------------------------------------------------------------------


def cost(args: argparse.Namespace, out: IO[str]) -> int:
    from kyo_otel import cost as cost_module

    estimate = cost_module.estimate(tenants=args.tenants, instances=args.instances)
    out.write(estimate.format_table().rstrip("\n") + "\n")
    return 0


# --- catalog -----------------------------------------------------------------------------


def _dimension_sets(spec: catalog.MetricSpec) -> str:
    return " ".join("(" + ", ".join(dims) + ")" for dims in spec.dimension_sets)


def catalog_rows() -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "kind": spec.kind,
            "unit": spec.unit,
            "cloudwatch_unit": spec.cloudwatch_unit,
            "attributes": list(spec.attributes),
            "dimension_sets": [list(dims) for dims in spec.dimension_sets],
            "cloudwatch_dimension_sets": [list(dims) for dims in spec.cloudwatch_dimension_sets()],
            "statistics": list(spec.statistics),
            "legacy_name": spec.legacy_name,
            "tenant_guarded": spec.tenant_guarded,
            "description": spec.description,
        }
        for spec in catalog.METRICS
    ]


def catalog_table() -> str:
    header = ("name", "kind", "unit", "dimension sets", "description")
    rows = [(s.name, s.kind, s.unit, _dimension_sets(s), s.description) for s in catalog.METRICS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip()
        for row in [header, tuple("-" * len(h) for h in header), *rows]
    ]
    base = ", ".join(catalog.BASE_DIMENSIONS)
    lines.append(f"\nIn CloudWatch (namespace {catalog.NAMESPACE}) every dimension set also has {base}.")
    return "\n".join(lines)


def show_catalog(args: argparse.Namespace, out: IO[str]) -> int:
    if args.format == "json":
        out.write(json.dumps({"namespace": catalog.NAMESPACE, "base_dimensions": list(catalog.BASE_DIMENSIONS),
                              "metrics": catalog_rows()}, indent=2) + "\n")
    else:
        out.write(catalog_table() + "\n")
    return 0


# --- entry point -------------------------------------------------------------------------


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kyo-otel", description="kyo_otel's command line: doctor, cost, catalog.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "doctor",
        help="show the effective configuration and check the collector connection",
        description="Reads the environment configure() reads, so run it where the service runs. Prints each "
        "setting and its source, connects to the OTLP endpoint and sends it an empty export per signal, "
        "validates the collector configuration. Exit status 1 when anything is wrong.",
    )
    check.add_argument("--collector", metavar="PATH", help=f"collector configuration to validate (default {DEFAULT_COLLECTOR})")
    check.add_argument("--target", choices=("auto", "adot", "otelcol"), default="auto",
                       help="collector the file is for: adot (production) or otelcol (a stock collector, "
                       "e.g. collector/otel-collector.local.yaml); auto decides by the file name")
    check.add_argument("--timeout", type=_positive(float), default=3.0, metavar="SECONDS",
                       help="bound of each network check (default 3)")
    check.set_defaults(run=doctor)

    price = commands.add_parser("cost", help="CloudWatch custom metrics and monthly cost for a number of tenants")
    price.add_argument("--tenants", type=_positive(int), required=True, metavar="N")
    price.add_argument("--instances", type=_positive(int), default=1, metavar="M",
                       help="instances (tasks) running the service (default 1)")
    price.set_defaults(run=cost)

    table = commands.add_parser("catalog", help="every metric kyo_otel emits")
    table.add_argument("--format", choices=("table", "json"), default="table")
    table.set_defaults(run=show_catalog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, sys.stdout))
    except BrokenPipeError:  # `kyo-otel catalog | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
