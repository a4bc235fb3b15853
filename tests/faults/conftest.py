"""Fixtures of the fault suite: a real OTLP receiver, and a summary of every scenario's figures.

Each scenario records what it measured with ``figures.record(name, **values)``; the values are
printed as the scenario runs (visible with ``pytest -s``) and again in the terminal summary, so
the CI log shows them either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kyo_otel.receiver import OtlpReceiver

_FIGURES: list[tuple[str, dict[str, Any]]] = []


class Figures:
    def record(self, scenario: str, **values: Any) -> None:
        _FIGURES.append((scenario, values))
        print(f"\n[faults] {scenario}: {json.dumps(values, default=str)}")


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


@pytest.fixture
def receiver():
    """A running OTLP/gRPC receiver on 127.0.0.1, stopped after the test."""
    with OtlpReceiver() as running:
        yield running


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.write_sep("=", "fault scenarios: measured figures")
    for scenario, values in _FIGURES:
        terminalreporter.write_line(f"{scenario}: {json.dumps(values, default=str)}")
