"""kyo_otel in a Flask app nobody here wrote: its own routes win over kyo's ``/health`` whenever
they are registered, and every app a process creates is instrumented and counted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from flask import Blueprint, Flask

import kyo_otel
from tests.support.subprocess_python import last_json_line, run_python


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


FACTORY = """
import json, logging
from flask import Flask
import kyo_otel

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")  # the application's own set-up

def create_app(name):
    app = Flask(name)
    app.add_url_rule("/work", "work", lambda: {"ok": True})
    return kyo_otel.instrument_app(app)

def served_spans(handle, app):
    app.test_client().get("/work")
    return [span.name for span in handle.memory.spans.get_finished_spans()]
"""


@pytest.mark.parametrize("order", ["instrument_app, then configure", "configure, then instrument_app"])
def test_instrument_app_takes_effect_whether_configure_ran_before_or_after(order):
    """The README's factory calls ``instrument_app(app)``; the entry point may configure after it."""
    first, second = ("app = create_app('shop')", "handle = kyo_otel.configure(environment='test')")
    if order.startswith("configure"):
        first, second = second, first
    report = last_json_line(run_python(FACTORY + f"""
{first}
{second}
health = app.test_client().get("/health")
print(json.dumps({{"spans": served_spans(handle, app), "health": health.status_code}}))
"""))
    assert report == {"spans": ["GET /work"], "health": 200}


def test_an_app_that_served_requests_before_configure_is_left_alone_with_a_warning():
    result = run_python(FACTORY + """
early = create_app("early")
early.test_client().get("/work")  # Flask takes no new hooks after an app's first request
handle = kyo_otel.configure(environment="test")
print(json.dumps({"spans": served_spans(handle, early), "health": early.test_client().get("/health").status_code}))
""")
    assert last_json_line(result) == {"spans": [], "health": 404}
    assert "Flask app 'early' served requests before kyo_otel.configure() and is not instrumented" in result.stderr


def run_suite(tmp_path, source: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a user's test module with pytest in a fresh interpreter (the installed
    plugin gives it ``kyo_telemetry``)."""
    (tmp_path / "test_app.py").write_text(textwrap.dedent(source))
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + textwrap.dedent(ini))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KYO_OTEL_", "OTEL_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_every_app_a_process_creates_counts_its_active_tenants(tmp_path):
    """One app per test, or several apps in one test: each one's tenants are counted, and each
    test starts from none."""
    result = run_suite(tmp_path, """
        from flask import Flask
        import kyo_otel

        def create_app(name):
            app = Flask(name)
            app.add_url_rule("/work", "work", lambda: {"ok": True})
            return kyo_otel.instrument_app(app)

        def work(app, tenant):
            assert app.test_client().get("/work", headers={"X-Tenant-Id": tenant}).status_code == 200

        def test_first_app(kyo_telemetry):
            work(create_app("first"), "acme")
            assert kyo_telemetry.metric("kyo.tenants.active").value == 1

        def test_a_later_app(kyo_telemetry):
            later = create_app("later")
            work(later, "globex")
            work(later, "initech")
            assert kyo_telemetry.metric("kyo.tenants.active").value == 2  # acme was the first test's

        def test_two_apps_in_one_process(kyo_telemetry):
            shop, admin = create_app("shop"), create_app("admin")
            work(shop, "acme")
            work(admin, "globex")
            work(admin, "acme")
            assert kyo_telemetry.metric("kyo.tenants.active").value == 2
    """)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


STRICT_SUITE = """
    import logging

    import pytest
    from flask import Flask

    import kyo_otel


    def create_app():
        app = Flask("flaskr")
        kyo_otel.configure(service_name="flaskr", app=app)  # at the top of the factory, no environment
        app.add_url_rule("/", "index", lambda: logging.getLogger("flaskr").info("index") or "hello")
        return app


    module_app = create_app()  # configured while the module is collected


    @pytest.fixture
    def client():
        return create_app().test_client()


    def test_the_factory_configured_first(client, kyo_telemetry):
        assert client.get("/").status_code == 200
        assert kyo_telemetry.span("GET /").attributes["http.route"] == "/"
        assert kyo_telemetry.logs(message="index")


    def test_the_fixture_first(kyo_telemetry, client):
        assert client.get("/").status_code == 200
        assert kyo_telemetry.handle.settings.environment == "test"
        assert [span.name for span in kyo_telemetry.spans()] == ["GET /"]
"""


def test_the_fixture_works_in_a_strict_suite_whose_app_factory_configures(tmp_path):
    """flaskr-style: ``configure()`` in the factory, ``filterwarnings = error``. Under pytest the
    default environment is ``test``, so the factory's configuration is already the memory profile
    the fixture needs and nothing has to be replaced with a warning."""
    result = run_suite(tmp_path, STRICT_SUITE, ini="filterwarnings =\n    error\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_route_registered_after_configure_has_its_token_masked_from_its_first_request_on(kyo_telemetry):
    """The factory configures first (``configure(app=...)`` at its top), then registers a route
    with a ``<token>``. The first request's own log records (the view's, and Flask's "Exception
    on <path>" for a failing view) are emitted before the request ends: the route must already be
    known then, not only from the request's end on."""
    import logging

    from flask import request

    app = kyo_otel.instrument_app(Flask("links"))
    links = Blueprint("links", __name__)

    @links.get("/links/<token>")
    def follow(token):
        logging.getLogger("links").warning("following %s", request.url)
        raise RuntimeError(f"no link at {request.path}")

    app.register_blueprint(links)

    assert app.test_client().get("/links/qwzxkvbn").status_code == 500

    records = kyo_telemetry.logs(logger="links")
    assert [r.message.split(" ")[0] for r in records] == ["following", "Exception"], records
    exported = repr([(r.message, dict(r.attributes)) for r in records]) + repr(
        [(s.name, dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events]) for s in kyo_telemetry.spans()])
    assert "qwzxkvbn" not in exported
    assert "/links/[scrubbed:token]" in exported
