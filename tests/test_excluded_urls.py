"""The URL excluded-URL patterns are searched in is Flask's ``request.url``, whatever the request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import get_current_url

from kyo_otel.excluded_urls import ExcludedUrls, request_url

pytestmark = pytest.mark.fastpath  # a fast path's contract: runs at both version bounds

# Mostly the characters URLs are made of, with the ones werkzeug quotes or decodes among them
# (WSGI gives non-ASCII bytes as latin-1 characters: "\xe6\x97\xa5" is UTF-8 for 日).
_TEXT = st.text(alphabet=st.sampled_from("abcXYZ019/-._~!$&'()*+,;=:@?%# \xe9\xe6\x97\xa5\x7f"), max_size=12)
_PATHS = st.one_of(st.just(""), _TEXT.map(lambda text: "/" + text))  # as WSGI says SCRIPT_NAME and PATH_INFO
_HOSTS = st.sampled_from(["localhost", "localhost:80", "localhost:443", "shop.example:8080", "xn--bcher-kva.example",
                          "[::1]:8000", "bad host", ""])


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["http", "https"]), host=_HOSTS, root=_PATHS, path=_PATHS, query=_TEXT)
def test_the_url_is_flasks_request_url(scheme, host, root, path, query):
    environ = EnvironBuilder(path="/", base_url=f"{scheme}://localhost/").get_environ()
    environ.update({"SCRIPT_NAME": root, "PATH_INFO": path, "QUERY_STRING": query})
    if host:
        environ["HTTP_HOST"] = host
    else:
        del environ["HTTP_HOST"]

    assert request_url(environ) == get_current_url(environ)


def test_patterns_are_searched_and_empty_ones_ignored():
    excluded = ExcludedUrls(["", r"/orders/\d+$", "healthz"])

    assert [excluded.url(u) for u in ("http://a/orders/7", "http://a/orders/7/items", "https://a/api/healthz?x=1")] == [
        True, False, True]
    assert not ExcludedUrls(["", ""]) and ExcludedUrls(["", ""]).url("http://a/") is False
