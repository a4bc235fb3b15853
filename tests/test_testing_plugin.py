"""The ``kyo_telemetry`` fixture: queries over what was emitted, stable snapshots, no leaks."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

import kyo_otel
from kyo_otel.testing import capture

logger = logging.getLogger("tests.checkout")


def tracer(kyo_telemetry):
    return kyo_telemetry.handle.tracer_provider.get_tracer("tests")


def test_spans_by_name_and_attributes(kyo_telemetry):
    with tracer(kyo_telemetry).start_as_current_span("charge", attributes={"kyo.tenant.id": "acme", "amount": 3}):
        with tracer(kyo_telemetry).start_as_current_span("charge", attributes={"kyo.tenant.id": "globex"}):
            pass

    assert [s.attributes["kyo.tenant.id"] for s in kyo_telemetry.spans("charge")] == ["globex", "acme"]
    assert kyo_telemetry.span("charge", kyo_tenant_id="acme").attributes["amount"] == 3
    assert kyo_telemetry.span(**{"kyo.tenant.id": "globex"}).name == "charge"
    assert kyo_telemetry.spans("refund") == []
    with pytest.raises(AssertionError, match="found 2; spans seen: 'charge', 'charge'"):
        kyo_telemetry.span("charge")


def test_metric_points_add_up_across_collections(kyo_telemetry):
    kyo_otel.otp.sent("acme")
    kyo_otel.otp.sent("acme")
    kyo_otel.otp.sent("globex")
    assert kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="acme").value == 2

    # The reader is DELTA: that query consumed the first points; the store keeps them.
    kyo_otel.otp.sent("acme")
    assert kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="acme").value == 3
    assert kyo_telemetry.metric("kyo.otp.sent").value == 4
    assert {p.attributes["kyo.tenant.id"] for p in kyo_telemetry.metric_points("kyo.otp.sent")} == {"acme", "globex"}


def test_histogram_points_keep_count_min_max(kyo_telemetry):
    kyo_otel.telemetry.current().recorder.request("/otp/send", "POST", 200, 0.010)
    assert kyo_telemetry.metric("http.server.request.duration").count == 1
    kyo_otel.telemetry.current().recorder.request("/otp/send", "POST", 200, 0.030)

    point = kyo_telemetry.metric("http.server.request.duration", http_route="/otp/send")
    assert (point.count, point.min, point.max) == (2, 0.010, 0.030)
    assert point.mean == pytest.approx(0.020)


def test_unknown_metric_name_is_an_error_not_zero(kyo_telemetry):
    with pytest.raises(KeyError, match="not in the metric catalog"):
        kyo_telemetry.metric("kyo.otp.snet")
    assert kyo_telemetry.metric("kyo.otp.verifications").value == 0  # known, nothing recorded


def test_logs_by_level_message_and_substring(kyo_telemetry):
    logger.info("order %s paid", "A-17")
    logger.warning("card declined")

    assert [log.message for log in kyo_telemetry.logs()] == ["order A-17 paid", "card declined"]
    assert kyo_telemetry.logs(level="WARNING")[0].message == "card declined"
    assert kyo_telemetry.logs(level="warn") == kyo_telemetry.logs(level="WARNING")
    assert kyo_telemetry.logs(message="order A-17 paid")[0].logger == "tests.checkout"
    assert len(kyo_telemetry.logs(contains="A-17")) == 1
    assert kyo_telemetry.logs(level="ERROR") == []


def test_log_records_carry_the_trace_of_the_current_span(kyo_telemetry):
    with tracer(kyo_telemetry).start_as_current_span("checkout"):
        logger.info("inside")
    span = kyo_telemetry.span("checkout")
    (log,) = kyo_telemetry.logs(message="inside")
    assert (log.trace_id, log.span_id) == (span.context.trace_id, span.context.span_id)


def emit_checkout(kyo_telemetry):
    with tracer(kyo_telemetry).start_as_current_span("checkout", attributes={"server.port": 51234}):
        with tracer(kyo_telemetry).start_as_current_span("charge"):
            logger.info("charged")


def test_snapshot_replaces_ids_timestamps_and_volatile_values(kyo_telemetry):
    emit_checkout(kyo_telemetry)
    snapshot = kyo_telemetry.snapshot()
    assert [{k: v for k, v in entry.items() if k not in ("attributes", "logger")} for entry in snapshot] == [
        {"span": "checkout", "kind": "INTERNAL", "trace_id": "trace-1", "span_id": "span-1", "parent_id": None,
         "start": "t0", "end": "t4", "status": "UNSET"},
        {"span": "charge", "kind": "INTERNAL", "trace_id": "trace-1", "span_id": "span-2", "parent_id": "span-1",
         "start": "t1", "end": "t3", "status": "UNSET"},
        {"log": "charged", "level": "INFO", "trace_id": "trace-1", "span_id": "span-2", "time": "t2"},
    ]
    assert snapshot[0]["attributes"] == {"server.port": "<server.port>"}

    kyo_telemetry.clear()
    emit_checkout(kyo_telemetry)
    assert kyo_telemetry.snapshot() == snapshot, "same code, new ids and clock: same snapshot"


def test_clear_empties_every_signal_and_the_tenant_guards(kyo_telemetry):
    for number in range(150):
        kyo_otel.otp.sent(f"flood-{number}")
    logger.warning("noise")
    emit_checkout(kyo_telemetry)

    kyo_telemetry.clear()

    assert (kyo_telemetry.spans(), kyo_telemetry.logs()) == ([], [])
    assert kyo_telemetry.metric_points("kyo.otp.sent") == []
    kyo_otel.otp.sent("acme")  # admitted again: the flood did not use up the cap for later tests
    assert kyo_telemetry.metric("kyo.otp.sent", kyo_tenant_id="acme").value == 1


def test_installed_plugin_gives_each_test_an_empty_capture(tmp_path):
    """A project with no conftest gets the fixture from the pytest11 entry point."""
    (tmp_path / "test_shop.py").write_text(
        textwrap.dedent(
            """
            import logging
            import kyo_otel

            def test_first(kyo_telemetry):
                kyo_otel.otp.sent("acme")
                logging.getLogger("shop").warning("first")
                assert kyo_telemetry.metric("kyo.otp.sent").value == 1

            def test_second_sees_nothing_of_the_first(kyo_telemetry):
                assert kyo_telemetry.logs() == []
                assert kyo_telemetry.metric("kyo.otp.sent").value == 0
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_leftover_configuration_of_another_profile_is_replaced_with_a_warning():
    kyo_otel.shutdown()
    console = kyo_otel.configure(environment="development", metric_export_interval=3_600_000)
    with pytest.warns(UserWarning, match=r"replacing this process's configuration \(traces=console"):
        captured = capture()
    assert kyo_otel.current() is captured.handle is not console
    assert console.tracer_provider is not captured.handle.tracer_provider
    logger.warning("captured")
    assert captured.logs(message="captured")
