"""Whether a Flask app has served a request: Flask accepts no new hooks after that (its setup
methods raise), and exposes the fact only as ``Flask._got_first_request`` (the public
``got_first_request`` went in Flask 2.3). Not a fast path: read with a default, so a Flask that
renames it reads as "not served", and instrumenting such an app then fails in Flask's own check,
which ``instrument_pending`` reports."""

from __future__ import annotations

from typing import Any


def has_served_requests(app: Any) -> bool:
    return bool(getattr(app, "_got_first_request", False))
