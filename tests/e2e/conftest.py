"""The pipeline runs once per session, inside a loopback-only network namespace; the tests read
what moto stored (see ``tests/e2e/pipeline.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.stored import Stored
from tests.support.gunicorn_app import ROOT



def in_loopback_namespace(command: list[str]) -> list[str]:
    """``command`` in a new network namespace (only ``lo``, which the driver brings up); as a
    user, in a user namespace that maps them to root so that they may create it."""
    return ["unshare", "--net", *([] if os.geteuid() == 0 else ["--map-root-user"]), "--", *command]


@pytest.fixture(scope="session")
def stored(tmp_path_factory, otelcol) -> Stored:
    out = tmp_path_factory.mktemp("e2e") / "pipeline.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(in_loopback_namespace([sys.executable, "-m", "tests.e2e.pipeline", str(out)]),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, f"the pipeline run failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return Stored(json.loads(out.read_text()))


@pytest.fixture(scope="session")
def infra_usages():
    """(namespace, metric, {dimension: value}, statistic) of every metric the synthesized alarms
    and dashboard read, as tests/test_infra.py synthesizes them (the deployment's defaults)."""
    import aws_cdk as cdk

    from infra import app as infra_app
    from tests.test_infra import CONTEXT, alarm_usages, dashboard_body, widget_usages

    from aws_cdk.assertions import Template

    stacks = infra_app.build(cdk.App(context=CONTEXT), env={})
    return alarm_usages(Template.from_stack(stacks.alarms)) + widget_usages(
        dashboard_body(Template.from_stack(stacks.dashboard)))
