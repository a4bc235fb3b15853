"""The README's install lines, run as a new user runs them: a fresh virtualenv with the pip that
Python 3.11's venv ships (23.2.1), whose resolver gives up (``ResolutionImpossible``) on ranges
that newer pips resolve. ``pip install -e .`` from a copy of the source, and ``pip install
kyo-otel`` from a wheel built here: both are real installs (from the registry, through pip's
cache), checked with ``pip check`` and by tracing a Flask request in the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_311_PIP = "23.2.1"
INSTALL_TIMEOUT = 900

pytestmark = pytest.mark.slow

_SMOKE = textwrap.dedent(
    """
    import json
    from importlib.metadata import version

    from flask import Flask

    import kyo_otel
    from kyo_otel.testing import capture

    app = Flask("shop")

    @app.get("/ping")
    def ping():
        return {"ok": True}

    captured = capture(service_name="shop")
    kyo_otel.instrument_app(app)
    assert app.test_client().get("/ping").status_code == 200
    span = captured.span("GET /ping")
    print(json.dumps({
        "kyo-otel": version("kyo-otel"),
        "route": span.attributes["http.route"],
        "sdk": version("opentelemetry-sdk"),
    }))
    """
)


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "PYTHON", "PIP_REQUIRE"))}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def _venv_with_python_311_pip(path: Path) -> Path:
    """A fresh virtualenv whose pip is the one Python 3.11 ships, whatever Python runs the tests."""
    _run([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    if PYTHON_311_PIP not in _run([str(python), "-m", "pip", "--version"]).stdout:
        _run([str(python), "-m", "pip", "install", "--quiet", f"pip=={PYTHON_311_PIP}"])
    assert _run([str(python), "-m", "pip", "--version"]).stdout.startswith(f"pip {PYTHON_311_PIP} ")
    return python


def _source_copy(path: Path) -> Path:
    """What the repository ships for installing: pyproject, README and the package (no build
    artefacts of the working tree, which an editable install would also write to)."""
    path.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, path / name)
    shutil.copytree(ROOT / "kyo_otel", path / "kyo_otel", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return path


def _installed_and_working(python: Path, workdir: Path) -> dict[str, str]:
    _run([str(python), "-m", "pip", "check"])
    done = _run([str(python), "-c", _SMOKE], cwd=workdir)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _editable_install(workdir: Path) -> dict[str, str]:
    source = _source_copy(workdir / "src")
    python = _venv_with_python_311_pip(workdir / "venv")
    _run([str(python), "-m", "pip", "install", "--quiet", "-e", "."], cwd=source)
    return _installed_and_working(python, workdir)


def _wheel_install(workdir: Path) -> dict[str, str]:
    source = _source_copy(workdir / "src")
    python = _venv_with_python_311_pip(workdir / "venv")
    wheels = workdir / "wheels"
    _run([str(python), "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=source)
    (wheel,) = wheels.glob("kyo_otel-*.whl")
    _run([str(python), "-m", "pip", "install", "--quiet", "--find-links", str(wheels), "kyo-otel"], cwd=workdir)
    return {**_installed_and_working(python, workdir), "wheel": wheel.name}


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[dict[str, str]]]:
    """Both install lines, each into its own fresh virtualenv, side by side (each is mostly
    waiting on the registry); each test reads its own outcome."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {
            "editable": pool.submit(_editable_install, tmp_path_factory.mktemp("editable")),
            "wheel": pool.submit(_wheel_install, tmp_path_factory.mktemp("wheel")),
        }


def test_editable_install_resolves_with_the_pip_python_311_ships(installs) -> None:
    report = installs["editable"].result()

    assert report["route"] == "/ping"


def test_built_wheel_installs_by_name_with_the_pip_python_311_ships(installs) -> None:
    report = installs["wheel"].result()

    assert report["route"] == "/ping"
    assert report["wheel"].startswith(f"kyo_otel-{report['kyo-otel']}-")
