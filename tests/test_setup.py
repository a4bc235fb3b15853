"""`make run` installs only what running needs; `make test` adds the rest; the README says what.

The Makefile's plans are read with ``make -n`` (what make would run, nothing run) against a
virtualenv directory of the test's own, so the worktree's `.venv` is not touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def plan(target: str, venv: Path) -> str:
    """The commands ``make <target>`` would run with ``venv`` as the virtualenv."""
    result = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def installs(commands: str) -> list[str]:
    return re.findall(r'pip install --quiet -e "\.\[([\w,]*)\]"', commands)


def test_make_run_on_a_fresh_clone_installs_the_package_and_the_app_extra_only(tmp_path):
    commands = plan("run", tmp_path / "venv")
    assert "-m venv" in commands
    assert installs(commands) == ["app"]
    assert "apt-get" not in commands


def test_make_test_on_a_fresh_clone_installs_the_test_and_infra_extras_and_redis(tmp_path):
    commands = plan("test", tmp_path / "venv")
    assert "-m venv" in commands
    assert installs(commands) == ["test,infra"]
    assert "-m pytest" in commands


def test_make_test_after_make_run_adds_to_the_same_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("")
    (venv / ".installed-run").write_text("")  # what `make run` leaves

    assert installs(plan("run", venv)) == []
    commands = plan("test", venv)
    assert "-m venv" not in commands
    assert installs(commands) == ["test,infra"]


def test_make_doctor_runs_the_cli_from_the_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    commands = plan("doctor", venv)
    assert installs(commands) == ["app"]
    assert f"{venv}/bin/kyo-otel doctor" in commands


def test_the_readme_says_what_set_up_installs_and_where_the_cli_is():
    setup = ROOT.joinpath("README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    for needed in ("make doctor", ".venv/bin/kyo-otel", "`app` extra", "`test` extra", "`infra` extra",
                   "redis-server", "apt-get", "sudo", "Node.js"):
        assert needed in setup, needed


def test_make_collector_run_starts_the_built_collector_with_the_local_config(tmp_path):
    commands = plan("collector-run", tmp_path / "venv")
    assert ".collector/otelcol-kyo --config collector/otel-collector.local.yaml" in commands
    readme = " ".join(ROOT.joinpath("README.md").read_text().split())
    assert "make collector-run" in readme
