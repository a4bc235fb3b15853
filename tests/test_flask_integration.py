"""kyo_otel in a Flask app nobody here wrote: its own routes win over kyo's ``/health`` whenever
they are registered, and every app a process creates is instrumented and counted."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask

import kyo_otel


def failing_check():
    return {"status": "down", "database": "unreachable"}, 503


def app_with_its_own_health(when: str) -> Flask:
    """An app factory that registers a failing ``/health`` of its own, ``when`` relative to kyo."""
    app = Flask("flaskr")
    if when == "before":
        app.add_url_rule("/health", "health", failing_check)
    kyo_otel.instrument_app(app)
    if when == "after":
        app.add_url_rule("/health", "health", failing_check)
    elif when == "after, in a blueprint":
        checks = Blueprint("checks", __name__)
        checks.add_url_rule("/health", "health", failing_check)
        app.register_blueprint(checks)
    return app


@pytest.mark.parametrize("when", ["before", "after", "after, in a blueprint"])
def test_the_apps_own_health_route_wins_whenever_it_is_registered(kyo_telemetry, when):
    response = app_with_its_own_health(when).test_client().get("/health")

    assert (response.status_code, response.get_json()) == (503, {"status": "down", "database": "unreachable"})


def test_an_app_without_its_own_health_route_gets_kyos(kyo_telemetry):
    app = kyo_otel.instrument_app(Flask("plain"))
    client = app.test_client()

    ok = client.get("/health", headers={"X-Request-Id": "lb-probe-1"})
    assert (ok.status_code, ok.get_json()) == (200, {"status": "ok", "checks": {}})
    assert ok.headers["X-Request-Id"] == "lb-probe-1"  # the request hooks ran on it
    assert client.head("/health").status_code == 200
    assert client.post("/health").status_code == 405
    assert client.get("/elsewhere").status_code == 404


def test_the_apps_own_rule_for_other_methods_keeps_the_path(kyo_telemetry):
    """A path the app claims only for POST is the app's: GET gets the app's 405, not kyo's check."""
    app = kyo_otel.instrument_app(Flask("webhooks"))
    app.add_url_rule("/health", "report", lambda: ("", 204), methods=["POST"])
    client = app.test_client()

    assert client.get("/health").status_code == 405
    assert client.post("/health").status_code == 204
