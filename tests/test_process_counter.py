"""Domain counters summed in the process export the same DELTA points as the SDK's counters."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kyo_otel import catalog
from kyo_otel.exporters import DELTA_TEMPORALITY
from kyo_otel.instruments import ProcessCounter, Recorder


def _points(reader: InMemoryMetricReader, name: str) -> dict[tuple, int]:
    data = reader.get_metrics_data()
    found: dict[tuple, int] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    assert metric.data.is_monotonic
                    assert metric.data.aggregation_temporality.name == "DELTA"
                    for point in metric.data.data_points:
                        found[tuple(sorted(point.attributes.items()))] = point.value
    return found


def _reader_and_meter():
    reader = InMemoryMetricReader(preferred_temporality=DELTA_TEMPORALITY)
    return reader, MeterProvider(metric_readers=[reader]).get_meter("test")


def test_each_collection_reports_what_was_added_since_the_previous_one_and_nothing_for_quiet_series():
    reader, meter = _reader_and_meter()
    counter = ProcessCounter(meter, catalog.OTP_SENT)
    acme, globex = {catalog.TENANT: "acme"}, {catalog.TENANT: "globex"}
    counter.add(1, acme)
    counter.add(2, acme)
    counter.add(1, globex)
    assert _points(reader, catalog.OTP_SENT.name) == {((catalog.TENANT, "acme"),): 3, ((catalog.TENANT, "globex"),): 1}
    counter.add(5, acme)
    assert _points(reader, catalog.OTP_SENT.name) == {((catalog.TENANT, "acme"),): 5}
    assert _points(reader, catalog.OTP_SENT.name) == {}


def test_concurrent_adds_from_request_threads_are_all_counted():
    reader, meter = _reader_and_meter()
    counter = ProcessCounter(meter, catalog.OTP_SENT)
    attributes = {catalog.TENANT: "acme"}

    def work():
        for _ in range(5000):
            counter.add(1, attributes)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _points(reader, catalog.OTP_SENT.name) == {((catalog.TENANT, "acme"),): 20_000}


def test_the_recorder_counts_domain_events_per_guarded_tenant():
    reader, meter = _reader_and_meter()
    recorder = Recorder(meter, tenant_cap=1)
    recorder.otp_sent("acme")
    recorder.otp_sent("acme")
    recorder.otp_sent("globex")  # over the cap of one tenant: folded into the overflow value
    recorder.otp_verified("acme", False, "wrong_code")
    sent = _points(reader, catalog.OTP_SENT.name)
    assert sent == {((catalog.TENANT, "acme"),): 2, ((catalog.TENANT, catalog.TENANT_OVERFLOW),): 1}
