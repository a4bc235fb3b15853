"""The pytest plugin that installing ``kyo_otel`` registers (entry point ``pytest11``).

It adds one fixture, ``kyo_telemetry``: the memory profile, emptied before each test, with the
queries of ``kyo_otel.testing.CapturedTelemetry``. Nothing is imported or configured until a
test asks for the fixture, so other projects' test runs pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kyo_otel.testing import CapturedTelemetry


@pytest.fixture
def kyo_telemetry() -> Iterator[CapturedTelemetry]:
    """Spans, metric points and log records emitted during this test (memory profile)."""
    from kyo_otel.testing import capture

    captured = capture()
    yield captured
    captured.clear()
