"""The pytest plugin that installing ``kyo_otel`` registers (entry point ``pytest11``).

It adds one fixture, ``kyo_telemetry``: the memory profile, emptied before each test, with the
queries of ``kyo_otel.testing.CapturedTelemetry``. And it makes ``test`` the default environment
(the memory profile) before conftest files are imported: an app factory's ``configure()`` then
already keeps telemetry in memory, and the fixture has no other configuration to replace (its
warning would fail suites run with ``filterwarnings = error``). An environment given to
``configure()`` or by ``KYO_OTEL_ENVIRONMENT`` still wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from kyo_otel import config as kyo_config

if TYPE_CHECKING:
    from kyo_otel.testing import CapturedTelemetry

_previous_default: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> None:
    _previous_default.append(kyo_config.set_default_environment("test"))


def pytest_unconfigure(config: Any) -> None:
    if _previous_default:  # an in-process pytest run (pytester) gives the outer run its default back
        kyo_config.set_default_environment(_previous_default.pop())


@pytest.fixture
def kyo_telemetry() -> Iterator[CapturedTelemetry]:
    """Spans, metric points and log records emitted during this test (memory profile)."""
    from kyo_otel.testing import capture

    captured = capture()
    yield captured
    captured.clear()
