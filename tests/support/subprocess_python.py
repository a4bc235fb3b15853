"""Run a snippet of Python in a fresh interpreter: a new process is a real start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60, argv0: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the test interpreter; ``env`` adds to a copy of the environment without KYO_/OTEL_ variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_"))}
    clean.update(env or {})
    clean["PYTHONPATH"] = str(ROOT)
    command = (argv0 or []) + [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def last_json_line(result: subprocess.CompletedProcess[str]) -> Any:
    """The last stdout line that parses as JSON (the snippet's report)."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    for line in reversed(result.stdout.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise AssertionError(f"no JSON line in stdout:\n{result.stdout}\nstderr:\n{result.stderr}")


def exported_over_otlp(code: str, env: dict[str, str] | None = None) -> Any:
    """Run ``code`` (which configures kyo_otel with ``otlp_endpoint=os.environ["ENDPOINT"]``),
    with ``env`` added, against a real OTLP receiver on 127.0.0.1; the receiver, holding what the
    process exported."""
    from kyo_otel.receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        done = run_python(code, env={**(env or {}), "ENDPOINT": receiver.endpoint})
        assert done.returncode == 0, done.stderr
    return receiver
