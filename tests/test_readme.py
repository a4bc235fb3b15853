"""The README's snippets run, so they cannot rot.

A fenced block after ``<!-- test -->`` runs (``python`` with the interpreter, ``sh`` with bash,
stopping at the first failing command); after ``<!-- test: pytest -->`` it is a test file run by
pytest. A ``text`` block after ``<!-- output -->`` is the output of the block before it: what the
block printed, line for line and in order, with clock times, hex ids (trace, X-Ray, request ids)
and durations allowed to differ, and spacing (column widths) too. Every ``python`` block is
either run or says why not (``<!-- no-test: why -->``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"^<!--\s*(test(?::\s*(\w+))?|output|no-test:.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    line: int
    language: str
    code: str
    marker: str | None  # test | pytest | output | no-test | None
    output: Block | None = None


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    marker: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        found = MARKER.match(line)
        fence = FENCE.match(line)
        if found:
            kind = found.group(1)
            marker = "pytest" if found.group(2) == "pytest" else kind.split(":")[0]
        elif fence:
            start = index
            index += 1
            body: list[str] = []
            while index < len(lines) and not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            block = Block(start + 1, fence.group(1), "\n".join(body) + "\n", marker)
            if marker == "output" and blocks:
                blocks[-1].output = block
            else:
                blocks.append(block)
            marker = None
        elif line.strip():
            marker = None  # a marker applies to the block right after it
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())
RUNNABLE = [b for b in BLOCKS if b.marker in ("test", "pytest")]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "NO_COLOR"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def normalized(text: str) -> str:
    text = re.sub(r"\d\d:\d\d:\d\d(\.\d{3})?", "HH:MM:SS", text)
    text = re.sub(r"\b[0-9a-f]{8,32}\b", "HEXID", text)
    text = re.sub(r"\d+(\.\d+)?ms\b", "Nms", text)
    return " ".join(text.split())


def printed_lines(text: str) -> list[str]:
    return [normalized(line) for line in text.splitlines() if line.strip()]


def run_block(block: Block, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if block.marker == "pytest":
        (tmp_path / "test_from_readme.py").write_text(block.code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
        cwd = tmp_path
    elif block.language == "python":
        command, cwd = [sys.executable, "-c", block.code], tmp_path
    elif block.language in ("sh", "bash", "shell"):
        command, cwd = ["bash", "-euo", "pipefail", "-c", block.code], ROOT
    else:
        raise AssertionError(f"README line {block.line}: cannot run a {block.language!r} block")
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_the_getting_started_snippets_are_found():
    assert {b.marker for b in RUNNABLE} == {"test", "pytest"}
    assert {b.language for b in RUNNABLE} >= {"python", "sh"}


def test_every_python_block_runs_or_says_why_not():
    unmarked = [b.line for b in BLOCKS if b.language == "python" and b.marker is None]
    assert unmarked == [], f"README python blocks at lines {unmarked}: add <!-- test --> or <!-- no-test: why -->"


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"README.md:{b.line}" for b in RUNNABLE])
def test_readme_snippet_runs(block, tmp_path):
    result = run_block(block, tmp_path)
    assert result.returncode == 0, f"README.md line {block.line} failed:\n{result.stdout}\n{result.stderr}"
    if block.output is not None:
        assert printed_lines(result.stdout) == printed_lines(block.output.code), (
            f"README.md line {block.output.line} shows another output than the block prints:\n{result.stdout}"
        )


def test_outputs_are_compared_whole_and_in_order():
    shown = "12:00:01.230 span 4bf92f35    3.1ms     GET /a\n12:00:01.231 log  4bf92f35 INFO  a: b  kyo.request.id=0af7651916cd43dd8448eb211c80319c\n"
    assert printed_lines(shown) == printed_lines(shown.replace("4bf92f35", "00f067aa").replace("3.1ms", "12.0ms"))
    assert printed_lines(shown) != printed_lines("\n".join(reversed(shown.splitlines())))  # order counts
    assert printed_lines(shown) != printed_lines(shown + "metrics @ 12:00:02\n")  # so does a line more
    assert printed_lines(shown) != printed_lines(shown.replace("INFO  a: b", "INFO  a: b  tenant=acme"))


def _shape(body: dict) -> dict:
    """The body with the measured latency reduced to its type: the rest must match exactly."""
    redis_check = body["checks"]["redis"]
    return {**body, "checks": {"redis": {**redis_check, "latency_ms": type(redis_check["latency_ms"]).__name__}}}


def test_the_health_row_shows_the_bodies_the_sample_service_answers():
    from sample_app.app import connect_redis, create_app

    row = next(line for line in README.read_text().splitlines() if line.startswith("| `GET /health`"))
    ok, degraded = [json.loads(body) for body in re.findall(r"`(\{[^`]*\})`", row)]
    with socket.socket() as closed:  # a local port nothing listens on: Redis is down
        closed.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"

    healthy = create_app().test_client().get("/health")
    unhealthy = create_app(connect_redis(down)).test_client().get("/health")

    assert (healthy.status_code, _shape(healthy.get_json())) == (200, _shape(ok))
    assert (unhealthy.status_code, _shape(unhealthy.get_json())) == (503, _shape(degraded))


def test_the_readme_says_when_to_use_configure_with_an_app_and_when_instrument_app():
    text = " ".join(README.read_text().split())
    paragraph = text[text.index("**`configure(app=...)` or `instrument_app(app)`.**"):][:800]
    for needed in ("one app", "application factory", "several apps", "before `configure()`"):
        assert needed in paragraph, needed
