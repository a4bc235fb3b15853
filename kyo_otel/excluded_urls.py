"""Requests traced by no span and counted in no request metric: ``excluded_urls``
(``KYO_OTEL_EXCLUDED_URLS``, ``OTEL_PYTHON_FLASK_EXCLUDED_URLS``, ``OTEL_PYTHON_EXCLUDED_URLS``),
with the contrib instrumentations' meaning so that one value works in both ``instrumentation``
modes: regular expressions, any of which *found* anywhere in the request's full URL
(``http://host/health?verbose=1``, what Flask's ``request.url`` says) excludes the request. So
``/health`` also excludes ``/health/deep`` and ``/api/healthz``; ``/health$`` or ``/health(\\?|$)``
excludes that path only. Empty items are ignored (in contrib an empty alternative would exclude
every request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from werkzeug.wsgi import get_current_url


_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~!$&'()*+,;=:@-]*").fullmatch
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9/_.~!$&'()*+,;=:@?-]*").fullmatch
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?").fullmatch
_DEFAULT_PORT = {"http": ":80", "https": ":443"}


def request_url(environ: Any) -> str:
    """The request's full URL, as Flask's ``request.url`` (werkzeug's ``get_current_url``) says it.

    werkzeug quotes each part and decodes the result back to an IRI, about 50 µs a request; for
    the URLs most requests have (a host name, paths and queries of characters that this round
    trip leaves as they are, no ``%`` escapes) the parts are simply joined, the same string. Any
    other URL is werkzeug's."""
    scheme = environ.get("wsgi.url_scheme")
    host = environ.get("HTTP_HOST")
    root = environ.get("SCRIPT_NAME", "")
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if (
        scheme in _DEFAULT_PORT and host and _PLAIN_HOST(host) and "xn--" not in host
        and _PLAIN_PATH(root) and _PLAIN_PATH(path) and _PLAIN_QUERY(query)
    ):
        if host.endswith(_DEFAULT_PORT[scheme]):
            host = host[: -len(_DEFAULT_PORT[scheme])]
        url = f"{scheme}://{host}{root.rstrip('/')}/{path.lstrip('/')}"
        return f"{url}?{query}" if query else url
    return get_current_url(environ)


class ExcludedUrls:
    """The compiled patterns; ``bool()`` says whether there are any."""

    __slots__ = ("patterns", "_search")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(pattern for pattern in patterns if pattern)
        self._search = re.compile("|".join(self.patterns)).search if self.patterns else None

    def __bool__(self) -> bool:
        return self._search is not None

    def url(self, url: str) -> bool:
        """Whether a request for ``url`` (a full URL) is excluded."""
        return self._search is not None and self._search(url) is not None

    def environ(self, environ: Any) -> bool:
        """Whether the request of this WSGI environ is excluded (its URL as Flask builds it)."""
        return self._search is not None and self._search(request_url(environ)) is not None

    def contrib_value(self) -> str:
        """The value to hand the contrib Flask instrumentation (``excluded_urls=``): the same
        patterns, comma-separated as it splits them."""
        return ",".join(self.patterns)


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression (``None`` when it is one)."""
    try:
        re.compile(pattern)
    except re.error as error:
        return str(error)
    return None
