"""The scrubber: phone numbers, OTP codes, emails and secrets never leave the process.

One ``Scrubber`` is applied to every signal before any exporter sees it (see
``ScrubbingSpanExporter`` / ``ScrubbingLogExporter`` here, and ``scrubbed_points``, which the
metric reader applies at each collection). What it does:

- **Values of sensitive keys** are replaced whatever their type: an attribute key (or a key of a
  mapping body) whose last segment is ``password``, ``token``, ``secret``, ``authorization``,
  ``cookie``, ``session``, ``otp``... (``http.request.header.authorization``, ``set-cookie``,
  ``otp_code``, ``api_key``, ``session_id``). ``code`` counts only as the whole key or after
  ``otp`` / ``sms`` / ``verification``..., so ``http.response.status_code`` stays a number.
  In free text, ``password=...``, ``"token": "..."``, ``Authorization: Bearer ...`` and
  ``code 482913`` (4-8 digits after code/otp/pin) lose their value.
- **Phone numbers** as users type them: ``+886912345678``, ``+886 912 345 678``,
  ``0912-345-678``, ``0912.345.678``, ``0912345678``, ``(02) 2345-6789``, and ``%2B886...``
  inside URLs. The compact form keeps its first 4 characters and last 2 digits, one ``*`` per
  hidden digit: ``+886912345678`` -> ``+886*******78``, ``0912-345-678`` -> ``0912****78``
  (the old logger's ``0912****78``). A phone number starts with ``+`` or ``0``, has 8-15
  digits (local: 9-11) in groups split by single spaces, dots or dashes, and touches no
  letter or digit: so trace ids, span ids, UUIDs, dates, epoch timestamps and decimals do
  not match.
- **Emails**: ``alice@example.com`` -> ``a***@example.com``.
- **Phone and email keys** (``phone``, ``user.phone_number``, ``msisdn``, ``email``...): the
  value is masked even when it does not look typed (``912345678``, an int).
- **URLs** (``url.full``, ``url.query``, ``http.target``, ``http.url``...): the path is kept
  (and scrubbed as text); query values of sensitive keys become ``[scrubbed:<key>]``, those of
  phone and email keys are masked as above, and the others are decoded and scrubbed.
- **URL paths**, in any text: the segment after a code/otp/token/verify/secret/password/reset/
  magic-like one, when it reads as a value (a digit, a capital or a ``%``):
  ``/users/+886*******78/codes/[scrubbed:code]``; ``/codes/new`` and ``/otp/verify`` stay. And the
  routes the Flask integration hands over (``learn_route``): the values of their variables named
  like a secret, phone or email key, in their raw paths (``/u/<token>``: ``/u/[scrubbed:token]``).
- **Keys and names**: attribute keys and the keys of mapping bodies are scrubbed as text
  (``sms.+886912345678`` -> ``sms.+886*******78``; two keys masked alike both stay, the second
  suffixed ``#2``), as are span, event and log event names and the keys and values of a
  client's ``tracestate``.
  Metric points get the same attribute scrubbing at collection (``scrubbed_points``).
- **Extra patterns** (``{"iban": r"..."}`` -> ``[scrubbed:iban]``) join the one combined
  pattern; a **callback** ``(key, value) -> value`` sees every string value after the built-in
  rules.

Only strings are searched: numbers and booleans pass unchanged unless their key is sensitive.
A string that cannot match (shorter than 5 characters, or with fewer than 8 digits, no ``@``,
no ``%40`` and no sensitive word) is returned after two C-level scans. Key classification and the
results for texts up to 200 characters are memoised in bounded LRUs (4096 entries each).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, unquote_plus

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, Status, TraceState

_logger = logging.getLogger(__name__)

SCRUBBED = "[scrubbed:{}]"

# Last key segment (after splitting on . _ - and lowering) that makes a value secret.
SENSITIVE_SEGMENTS = frozenset(
    {
        "password", "passwd", "pwd", "passphrase", "passcode", "secret", "token", "authorization",
        "cookie", "session", "sessionid", "otp", "otpcode", "apikey", "credential", "credentials",
        "jwt", "pin", "signature",
    }
)
# Last two segments joined: api_key, x-api-key, session_id, private_key, access_key, otp_code...
SENSITIVE_PAIRS = frozenset(
    {
        "apikey", "sessionid", "sessionkey", "privatekey", "secretkey", "accesskey", "signingkey",
        "otpcode", "smscode", "verificationcode", "verifycode", "authcode", "logincode", "mfacode",
        "securitycode", "confirmationcode", "onetimecode", "resetcode", "codeverifier",
    }
)
# Keys that hold a phone number or an email whatever it looks like (``912345678`` under ``phone``).
PHONE_SEGMENTS = frozenset({"phone", "mobile", "msisdn", "tel", "telephone", "phonenumber", "mobilenumber", "phoneno"})
EMAIL_SEGMENTS = frozenset({"email", "mail", "emailaddress"})
# Keys whose values are set by code, never by users: not searched (they are on every span).
SAFE_KEYS = frozenset(
    {
        "http.route", "http.request.method", "http.method", "url.scheme", "network.protocol.version",
        "network.protocol.name", "network.transport", "network.type", "db.system", "db.system.name",
        "db.operation.name", "rpc.system", "code.function.name", "code.file.path", "code.function",
        "code.filepath", "code.namespace", "exception.type", "otel.scope.name", "error.type",
    }
)
# Keys whose values are URLs or query strings: the path is kept, sensitive query values go.
URL_KEYS = frozenset(
    {"url.full", "url.query", "url.original", "http.target", "http.url", "http.request.url", "url"}
)
# Free-text keys whose value is a secret (``password=...``, ``"token": "..."``).
_SECRET_WORDS = (
    r"password|passwd|pwd|passphrase|client[_-]?secret|secret[_-]?access[_-]?key|"
    r"(?:secret|private|access|signing|session)[_-]?key|secret|access[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|(?:session|auth|api|csrf|xsrf)[_-]?token|token|x-api-key|api[_-]?key|authorization|set-cookie|cookie|"
    r"session[_-]?id|sessionid|session|signature|code[_-]?verifier"
)
# Free-text keys whose value is a one-time code: only a 4-8 character value with a digit counts,
# so ``status code: 404`` and ``otp: sent`` stay, and ``otp:0912345678`` is left to the phone rule.
_CODE_WORDS = (
    r"otp[_-]?code|verification[_-]?code|sms[_-]?code|"
    # the camelCase keys of JSON bodies too (verifyCode, mfaCode): snake_case ones end in "code"
    r"(?:verify|auth|login|mfa|security|confirmation|one[_-]?time|reset)[_-]?code|code|otp|pin|passcode"
)
# URL path segments whose next segment is a secret, by the label it gets: /codes/482913 ->
# /codes/[scrubbed:code]. Whole words of the segment (split at - _ and camelCase), plural or not.
PATH_SECRET_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "code": ("code", "otp", "passcode", "verify", "verification"),
    "token": ("token", "magic", "reset", "confirm", "confirmation", "activate", "activation", "invite", "invitation"),
    "secret": ("secret",),
    "password": ("password", "passwd"),
})
_PATH_LABELS = {
    plural: label for label, words in PATH_SECRET_WORDS.items() for word in words for plural in (word, word + "s")
}


def _trie(words: Iterable[str]) -> str:
    """An alternation of ``words`` as a prefix tree (``co(?:de|nfirm)``): the regex engine tries
    the alternatives of one position after another, and most fail on their first letter."""
    heads: dict[str, list[str]] = {}
    for word in words:
        heads.setdefault(word[:1], []).append(word[1:])
    optional = heads.pop("", None) is not None  # a word ends here
    alternatives = [re.escape(head) + _trie(tails) for head, tails in sorted(heads.items())]
    if not alternatives:
        return ""
    if len(alternatives) == 1 and not optional:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")" + ("?" if optional else "")


_PATH_WORDS = _trie(_PATH_LABELS)
# The segment after one: it must look like a value, not a word (a digit, a capital or a % in it),
# and its trailing punctuation is prose's (".../verify/482913.").
_PATH_SEGMENT = r"[^/?#\s\"'<>]"
_PATH_VALUE = _PATH_SEGMENT + r"*[^/?#\s\"'<>),.;:\]]"
# A code-like segment: its words read one by one (each ends at - or _ or before a capital: one
# way to read a segment, no backtracking), until a word of the list.
_PATH_KEY = r"(?:[A-Za-z0-9][a-z0-9]*(?:[_\-]|(?=[A-Z])))*?(?i:" + _PATH_WORDS + r")(?![a-z])[A-Za-z0-9_\-]*"
# A Flask route's variables (<code>, <int:id>, <string(length=6):otp>) and what their raw values
# may be in a path: one segment, or for the path converter several.
_ROUTE_VARIABLE = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<arguments>.*?)\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>"
)
_ROUTE_VALUE = r"[^/?#\s\"'<>]+"
_ROUTE_PATH_VALUE = r"[^?#\s\"'<>]+"
_PATH_START = r"/(?:(?<![^\s\"'(\[=,]/)|/[^/?#\s\"'<>]*/)"
"""The "/" where a path starts: at the start of the text or after a space, quote or ``=``; or the
"//host/" of a URL."""
_PATH_END = r"(?=[?#\s\"'<>]|\Z)"
_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
_KEY_SEPARATOR = r"[\"']?[ \t]*[:=][ \t]*[\"']?"
_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "email",
        # The local part starts at the start of its run (the lookbehind), with any character of
        # the run, a dot too (``_john@``, ``...john@`` after a truncation: the lookbehind leaves no
        # later start in such a run), and may be as long as a whole address (RFC 5321's 64 is not
        # what people type); matching only from a run's start keeps the scan linear.
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,254}(?:@|%40)"
        r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z]{2,24}" + _NOT_ALNUM_AFTER,
    ),
    (
        # The password of a URL's userinfo: redis://default:p4ss@redis.internal:6379/0.
        "userinfo",
        r"(?<=://)[^\s/:@?#]*:(?P<userinfo_value>[^\s/@?#]+)(?=@)",
    ),
    (
        "secret",
        r"(?=[PpSsTtAaXxCcIiRr])" + _NOT_ALNUM_BEFORE + r"(?P<secret_key>(?i:" + _SECRET_WORDS + r"))" + _NOT_ALNUM_AFTER + _KEY_SEPARATOR
        + r"(?P<secret_value>(?:(?i:bearer|basic|digest|token|bot)[ \t]+)?[^\s&,;\"'<>]+)",
    ),
    (
        "code",
        r"(?=[OoVvSsCcPpAaLlMmRr])" + _NOT_ALNUM_BEFORE + r"(?P<code_key>(?i:" + _CODE_WORDS + r"))" + _NOT_ALNUM_AFTER
        + r"(?:" + _KEY_SEPARATOR + r"|(?:[ \t]+is)?[ \t]+)"
        # ... and not the start of a longer number (``otp:0912-345-678`` is a phone number).
        + r"(?P<code_value>(?=[A-Za-z]*[0-9])[0-9A-Za-z]{4,8})" + _NOT_ALNUM_AFTER + r"(?![ .\-]\d)",
    ),
    (
        # The code before the words, as SMS templates put it: "482913 is your verification code".
        "code_first",
        r"(?=[0-9])" + _NOT_ALNUM_BEFORE + r"[0-9]{4,8}(?=[ \t]+(?i:is)[ \t]+(?i:your)[ \t]+(?:[A-Za-z\-]+[ \t]+){0,3}"
        r"(?i:code|otp|pin|passcode|password)(?![A-Za-z]))",
    ),
    (
        # A JSON web token wherever it is (its header always starts "eyJ")...
        "jwt",
        r"(?=e)(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
    ),
    (
        # ... and a Bearer credential without a key before it ("sent Bearer abc..."); after one
        # ("Authorization: Bearer ...") the secret rule takes it.
        "bearer",
        r"(?=[Bb])" + _NOT_ALNUM_BEFORE + r"(?i:bearer)[ \t]+(?P<bearer_value>[A-Za-z0-9\-._~+/]{12,}=*)",
    ),
    (
        # A URL path segment after a code/token-like one: /verify/482913, /users/.../codes/482913,
        # /reset-password/Zx8aB..., /auth/magicLink/...; a segment that reads as a word stays
        # (/otp/verify, /codes/new, /tokens/me), as does a keyword segment with nothing after it.
        # The next segment is checked first (most paths have no value after a word: cheap to
        # rule out); then the segment's words are read one by one (each ends at - or _ or before
        # a capital: one way to read a segment, no backtracking), until a word of the list.
        # A next segment that is itself code-like with a value after it (/otp/verifyCode/482913)
        # is not the value: the match moves on to it, and the segment after it is masked.
        "path",
        r"/(?=[A-Za-z0-9_\-]+/" + _PATH_SEGMENT + r"*[0-9A-Z%])(?P<path_key>" + _PATH_KEY + r")/"
        r"(?!" + _PATH_KEY + r"/" + _PATH_SEGMENT + r"*[0-9A-Z%])(?P<path_value>" + _PATH_VALUE + r")",
    ),
    (
        "phone",
        # Each alternative starts with a literal (+ % ( 0) so that a digit-heavy string without
        # one is skipped at C speed; the lookbehinds after it check what precedes that literal.
        # Groups are maximal digit runs joined by single separators: no ambiguous splits, so a
        # long run of digits that is not a phone number fails fast.
        r"(?:\+(?<![0-9+]\+)\d+\)?"  # the ")" of "(+886) 912 345 678"
        r"|%(?<![0-9A-Za-z+]%)2[Bb]\d+"
        r"|\((?<![0-9A-Za-z+]\()0\d{1,3}\)[ \t]?\d+"
        r"|0(?<![0-9A-Za-z+]0)(?<![0-9][.,\-]0)\d+)"
        r"(?:[ .\-]\d+|[ .\-]?\(\d+\)){0,6}"
        + _NOT_ALNUM_AFTER + r"(?![.,]\d)",
    ),
)
_TRACE_STATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
"""A W3C trace-state value (printable ASCII without ``,`` and ``=``, not ending in a space)."""
_TRACE_STATE_KEY = re.compile(r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}")
"""A W3C trace-state key (``vendor``, or ``tenant@vendor`` whose tenant may start with a digit)."""
_LABELS = {"userinfo": "password", "code_first": "code", "jwt": "jwt", "bearer": "bearer"}
"""What the built-in rules other than phone, email, secret and code put in ``[scrubbed:...]``."""
_WORD_BRANCHES = ("secret", "code", "code_first", "jwt", "bearer", "path")
"""The branches a sensitive word in the text (``_WORDS_HINT``) calls for."""
_PHONE_DIGITS = {"international": (8, 15), "local": (9, 11), "dialled": (10, 17)}
_MIN_LENGTH = 5
_SHORT = 200  # texts up to this length are memoised
_PLAIN_KEYS_LIMIT = 4096
_MIN_PHONE_DIGITS = 8
# The fast path: a phone number needs 8 digits; everything else needs one of these (lowered).
_EIGHT_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){%d}" % _MIN_PHONE_DIGITS)
_SIX_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){6}")
_DIGIT_RUN = re.compile(r"[0-9]+")
_WORDS_HINT = re.compile(r"code|otp|pin|pass|pwd|secret|token|key|auth|cookie|session|signature|bearer|eyj")
# ... and the path words the hint lacks, looked for only in a text with a "/" (substring tests:
# more alternatives in the hint would slow it down on every text).
_PATH_HINTS = ("verif", "reset", "magic", "confirm", "activat", "invit")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEGMENT_SPLIT = re.compile(r"[._\-\s/:\[\]]+")  # brackets: a form's user[password]


def _mask_phone_groups(found: str) -> str:
    """Mask a phone-shaped match: too few digits is not a phone number; too many is a phone
    number followed by more numbers (``0912 345 678 2026``) when its first groups make one, and
    otherwise an id (``0000000000000001``), left alone; but not after a ``+``, which only phone
    numbers start with: ``+886912345678901`` plus an extension typed without a break is masked
    whole, with or without a space after the country code."""
    if found[:2] == "00" and found[2:3] in "123456789":  # 00886...: the international prefix dialled
        low, high = _PHONE_DIGITS["dialled"]
    else:
        low, high = _PHONE_DIGITS["local" if found[0] in "0(" else "international"]
    skip = 3 if found[0] == "%" else 0  # %2B
    count, end, overflow = 0, 0, False
    for group in _DIGIT_RUN.finditer(found, skip):
        if count + len(group.group()) > high:
            overflow = True
            break
        count += len(group.group())
        end = group.end()
    if count < low:
        # After a "+", digits that overflow E.164 are a number run into its extension: in the
        # first group (+8869123456780123), or after a country code (+886 9123456780123; a country
        # code never starts with 0, a UTC offset does: +0800 1700000000000000000 stays).
        if overflow and found[0] in "+%" and (count == 0 or found[skip or 1] != "0"):
            return mask_phone(found)
        return found
    if end < len(found) and found[end] == ")" and "(" in found[:end]:  # a "(345)" group's; not prose's
        end += 1
    return mask_phone(found[:end]) + found[end:]


def mask_phone(text: str) -> str:
    """``+886 912-345-678`` -> ``+886*******78``: first 4 characters and last 2 digits kept."""
    encoded_plus = text[:3] in ("%2B", "%2b")
    digits = "".join(c for c in (text[3:] if encoded_plus else text) if c.isdigit())
    compact = ("+" if encoded_plus or text.startswith("+") else "") + digits
    return compact[:4] + "*" * max(0, len(compact) - 6) + compact[-2:]


def mask_email(text: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: the domain stays, the mailbox goes."""
    at = text.find("@")
    separator = "@"
    if at < 0:
        at = text.lower().find("%40")
        separator = "%40"
    return text[:1] + "***@" + text[at + len(separator):]


def _compile_extra(extra_patterns: Mapping[str, str | re.Pattern[str]] | Iterable[str | re.Pattern[str]]) -> list[tuple[str, str, str]]:
    """[(group name, label, pattern source)] for the user's patterns."""
    items = list(extra_patterns.items()) if isinstance(extra_patterns, Mapping) else [
        ("custom", p) for p in extra_patterns
    ]
    compiled = []
    for index, (label, pattern) in enumerate(items):
        if isinstance(pattern, re.Pattern):
            flags = "".join(f for f, bit in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)) if pattern.flags & bit)
            source = f"(?{flags}:{pattern.pattern})" if flags else pattern.pattern
        else:
            source = str(pattern)
        re.compile(source)  # a bad pattern fails here, naming itself
        compiled.append((f"extra_{index}", str(label), source))
    return compiled


class Scrubber:
    """Masks phone numbers, emails, codes and secrets in attribute values, bodies and text.

    ``extra_patterns``: a mapping label -> regex (or an iterable of regexes, label ``custom``);
    matches become ``[scrubbed:<label>]``. ``sensitive_keys``: more key segments whose values
    are always replaced. ``callback(key, value) -> value``: runs on every string value of an
    attribute, a body or a trace state after the built-in rules (``key`` is ``None`` for a string body); return
    the value to keep. (Span, event and log event names, attribute and trace-state keys, status
    descriptions get the built-in rules only.)
    """

    def __init__(
        self,
        *,
        extra_patterns: Mapping[str, str | re.Pattern[str]] | Iterable[str | re.Pattern[str]] = (),
        sensitive_keys: Iterable[str] = (),
        callback: Callable[[str | None, str], str] | None = None,
    ) -> None:
        self._extra = _compile_extra(extra_patterns)
        self._labels = {name: label for name, label, _ in self._extra}
        extra = [f"(?P<{name}>{source})" for name, _, source in self._extra]
        branches = {name: f"(?P<{name}>{source})" for name, source in _PATTERNS}
        # The combined pattern, and the same without the branches that cheap checks rule out
        # for a given text (no "@": no email branch...), indexed by (email, words, digits).
        self._pattern = re.compile("|".join([*branches.values(), *extra]))
        self._patterns: dict[tuple[bool, bool, bool], re.Pattern[str]] = {}
        for email, words, digits in itertools.product((False, True), repeat=3):
            chosen = [branches["email"], branches["userinfo"]] * email + [branches[name] for name in _WORD_BRANCHES] * words
            chosen += [branches["phone"]] * digits
            if chosen:
                self._patterns[(email, words, digits)] = re.compile("|".join(chosen + extra))
        own = {"".join(_SEGMENT_SPLIT.split(k.lower())) for k in sensitive_keys}
        self._segments = SENSITIVE_SEGMENTS | own
        self._pairs = SENSITIVE_PAIRS | own
        self._callback = callback
        self.memoizable = callback is None
        """Whether the result for a (key, value) can be remembered: no callback to ask each time."""
        # Bounded: attribute keys are few, but a body mapping could bring arbitrary ones.
        self.key_kind = lru_cache(maxsize=4096)(self._key_kind)
        # Short values repeat (hosts, user agents, routes, messages without arguments): their
        # results are remembered, in a bounded LRU.
        self._scrub_short = lru_cache(maxsize=4096)(self._scrub_text)
        self.plain_keys: set[Any] = set()
        """Attribute keys found to hold nothing to mask (``keys_change``); bounded."""
        self._routes_seen: set[str] = set()
        self._routes_lock = threading.Lock()
        self._route_sources: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._routes: tuple[re.Pattern[str], dict[int, tuple[str, ...]]] | None = None
        self.generation = 0
        """Counts the routes learned (``learn_route``): what was scrubbed before may now scrub
        differently, so a cache of scrubbed values (``kyo_otel.otlp_wire``) starts over."""

    # -- keys --------------------------------------------------------------------------------

    def _key_kind(self, key: str) -> str | None:
        """How a key's values are treated: ``"secret:<word>"`` (replaced), ``"url"``, ``"phone"``,
        ``"email"``, ``"safe"`` (set by code, not searched), or ``None`` (searched as text)."""
        lowered = key.lower()
        if lowered in URL_KEYS:
            return "url"
        if lowered in SAFE_KEYS:
            return "safe"
        # camelCase words are segments too: accessToken, clientSecret, phoneNumber.
        segments = [s for s in _SEGMENT_SPLIT.split(_CAMEL_BOUNDARY.sub("_", key).lower()) if s]
        if not segments:
            return None
        last = segments[-1]
        if last in self._segments:
            return "secret:" + last
        if len(segments) >= 2 and segments[-2] + last in self._pairs:
            return "secret:" + segments[-2] + "_" + last
        if last == "code" and len(segments) == 1:
            return "secret:code"
        if "".join(segments) in self._pairs:
            return "secret:" + "_".join(segments)
        if last in PHONE_SEGMENTS or (len(segments) >= 2 and segments[-2] + last in PHONE_SEGMENTS):
            return "phone"
        if last in EMAIL_SEGMENTS or (len(segments) >= 2 and segments[-2] + last in EMAIL_SEGMENTS):
            return "email"
        return None

    # -- routes ------------------------------------------------------------------------------

    def learn_route(self, template: str) -> None:
        """A Flask route template (``/users/<phone>/confirm/<code>``): from now on, wherever its
        raw path appears in text (``url.path``, ``url.full``, an access log line), the values of
        its variables named like a secret, a phone number or an email are masked as such a key's
        value would be (``/users/0912****78/confirm/[scrubbed:code]``), whatever the segment before
        them. Called on the request path: a template seen before costs one set lookup, and this
        never raises."""
        if template in self._routes_seen:
            return
        try:
            with self._routes_lock:  # requests on several threads may meet new routes at once
                self._learn_route(template)
        except Exception:
            _logger.warning("kyo_otel could not read the route %r: its raw paths are scrubbed as text only",
                            template, exc_info=True)

    def _learn_route(self, template: str) -> None:
        if len(self._routes_seen) < _PLAIN_KEYS_LIMIT:
            self._routes_seen.add(template)
        source = self._route_source(template)
        if source is None or template in self._route_sources:
            return
        sources = {**self._route_sources, template: source}
        # A route's groups are its sensitive variables, numbered on from the previous route's: the
        # last group of a match (lastindex) says which route matched. No group around a whole
        # route: every alternative then starts with a literal "/", which the regex engine looks
        # for at C speed instead of trying each route at each position.
        groups: dict[int, tuple[int, tuple[str, ...]]] = {}
        alternatives = []
        index = 1
        for pattern, kinds in sources.values():
            groups[index + len(kinds) - 1] = (index, kinds)
            alternatives.append(pattern)
            index += len(kinds)
        self._routes = (re.compile("|".join(alternatives)), groups)  # one assignment: export threads read it
        self._route_sources = sources
        self._scrub_short.cache_clear()  # texts remembered as plain may hold this route's values
        self.generation += 1

    def _route_source(self, template: str) -> tuple[str, tuple[str, ...]] | None:
        """The pattern of a route's raw paths (a group per sensitive variable) and those variables'
        kinds; ``None`` when no variable is sensitive."""
        parts, kinds = [], []
        position = 0
        for variable in _ROUTE_VARIABLE.finditer(template):
            parts.append(re.escape(template[position:variable.start()]))
            value = _ROUTE_PATH_VALUE if variable.group("converter") == "path" else _ROUTE_VALUE
            kind = self._variable_kind(variable.group("name"))
            parts.append(f"(?:{value})" if kind is None else f"({value})")
            if kind is not None:
                kinds.append(kind)
            position = variable.end()
        if not kinds:
            return None
        parts.append(re.escape(template[position:]))
        pattern = "".join(parts)
        if template.startswith("/<"):  # a route that starts with a variable matches only where a path starts
            pattern = _PATH_START + pattern[1:]  # (its own "/" is the start's)
        return f"(?:{pattern}{_PATH_END})", tuple(kinds)

    def _variable_kind(self, name: str) -> str | None:
        """``secret:<label>``, ``phone`` or ``email`` for a route variable named like such a key
        (``code``, ``otp``, ``reset_token``, ``magic``, ``phone``), else ``None``."""
        kind = self.key_kind(name)
        if kind is not None and (kind.startswith("secret:") or kind == "phone" or kind == "email"):
            return kind
        label = _path_label(name)
        return None if label is None else "secret:" + label

    def _scrub_routes(self, text: str) -> str:
        """``text`` with the sensitive values of the learned routes' raw paths masked."""
        routes = self._routes
        if routes is None or "/" not in text:
            return text
        pattern, groups = routes
        if pattern.search(text) is None:  # the usual answer, and cheaper to get than from sub()
            return text

        def replace(match: re.Match[str]) -> str:
            first, kinds = groups[match.lastindex or 0]
            found, start = match.group(0), match.start()
            out, position = [], 0
            for group, kind in enumerate(kinds, first):
                begin, end = match.span(group)
                out.append(found[position:begin - start])
                out.append(_masked_path_value(kind, match.group(group)))
                position = end - start
            return "".join(out) + found[position:]

        return pattern.sub(replace, text)

    # -- text --------------------------------------------------------------------------------

    def _pattern_for(self, text: str) -> re.Pattern[str] | None:
        """The pattern ``text`` needs, or ``None`` when nothing in it can match (the fast path)."""
        if len(text) < _MIN_LENGTH:
            return None
        if self._extra:
            return self._pattern
        lowered = text.lower()
        words = _WORDS_HINT.search(lowered) is not None or ("/" in text and _has_path_word(lowered))
        key = ("@" in text or "%40" in text, words, _EIGHT_DIGITS.match(text) is not None)
        return self._patterns.get(key)

    def may_match(self, text: str) -> bool:
        """False when ``text`` cannot contain anything to scrub."""
        return self._pattern_for(text) is not None

    def scrub_text(self, text: str) -> str:
        """Free text (a log message, a span name, an attribute value) with every match masked."""
        if len(text) <= _SHORT:
            return self._scrub_short(text)
        return self._scrub_text(text)

    def _scrub_text(self, text: str) -> str:
        if self._routes is not None:
            text = self._scrub_routes(text)
        pattern = self._pattern_for(text)
        return text if pattern is None else pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        """A match masked: phone numbers and emails keep a hint; for the rest, what comes before
        the rule's ``<kind>_value`` group stays (``password=``) and the rest becomes
        ``[scrubbed:<label>]``, labelled by the key found (``secret``, ``code``), the rule
        (``_LABELS``) or the extra pattern's name."""
        kind = match.lastgroup or ""
        found = match.group(0)
        if kind == "phone":
            return _mask_phone_groups(found)
        if kind == "email":
            return mask_email(found)
        if kind == "secret" or kind == "code":
            label = _normal(match.group(kind + "_key"))
        elif kind == "path":
            label = _path_label(match.group("path_key")) or "code"
        else:
            label = _LABELS.get(kind) or self._labels.get(kind, "custom")
        value = kind + "_value"
        kept = match.start(value) - match.start() if value in match.re.groupindex else 0
        return found[:kept] + SCRUBBED.format(label)

    def scrub_url(self, url: str, *, query_only: bool = False) -> str:
        """Keep the path (scrubbed as text); drop values of sensitive query keys."""
        if query_only:
            path, question, rest = "", "", url
        else:
            path, question, rest = url.partition("?")
            if not question:
                return self.scrub_text(url)
        query, hash_mark, fragment = rest.partition("#")
        pairs = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            if equals:
                key = unquote_plus(name)
                kind = self.key_kind(key)
                if kind is not None and kind.startswith("secret:"):
                    value = SCRUBBED.format(kind[7:])
                elif kind == "phone" or kind == "email":  # the key says what it is: ?phone=886912345678
                    decoded = unquote(value)  # a "+" kept: it is more likely the number's own
                    scrubbed = self.scrub_value(key, decoded)
                    if scrubbed != decoded:
                        value = scrubbed
                elif "%" in value or "+" in value or self.may_match(value):
                    value = self._scrub_query_text(value)
            name = self.scrub_text(name)  # a key is text a client chose too: ?+886912345678=1
            pairs.append(name + equals + value)
        scrubbed_fragment = self.scrub_text(fragment) if fragment else fragment
        prefix = self.scrub_text(path) + question if path or question else ""
        return prefix + "&".join(pairs) + hash_mark + scrubbed_fragment

    def _scrub_query_text(self, value: str) -> str:
        """A query value read as text, scrubbed; as it was (still encoded) when nothing is found.

        A "+" may be a phone number's own (+886...) or an encoded space. The raw value is masked
        first (then what is left is decoded with the "+" kept); else it is decoded keeping the "+"
        (a browser encodes the spaces of "+886 912 345 678", not its "+"); else with the "+" read
        as a space."""
        raw = self.scrub_text(value)
        if raw != value:
            return self.scrub_text(unquote(raw))
        if "+" in value and "%" in value:
            kept = unquote(value)
            masked = self.scrub_text(kept)
            if masked != kept:
                return masked
        decoded = unquote_plus(value)
        scrubbed = self.scrub_text(decoded)
        return scrubbed if scrubbed != decoded else value

    # -- values ------------------------------------------------------------------------------

    def scrub_value(self, key: str | None, value: Any) -> Any:
        """One attribute value (or body), by its key; sequences and mappings element-wise."""
        kind = self.key_kind(key) if key else None
        if type(value) is str:
            if kind is None:
                scrubbed = self.scrub_text(value)
            elif kind == "safe":
                return value
            elif kind == "url":
                scrubbed = self.scrub_url(value, query_only=key is not None and key.endswith("query"))
            elif kind == "phone":
                scrubbed = self.scrub_text(value)
                # Compared by value: the memo of scrub_text hands back the equal text it saw first.
                if scrubbed == value and _SIX_DIGITS.match(value) is not None:
                    scrubbed = mask_phone(value.strip())  # not typed like a phone number, but the key says so
            elif kind == "email" and "@" in value and " " not in value.strip():
                scrubbed = mask_email(value.strip())
            elif kind == "email":
                scrubbed = self.scrub_text(value)
            else:
                return SCRUBBED.format(kind[7:]) if value else value
            return scrubbed if self._callback is None else self._callback(key, scrubbed)
        if kind is not None and kind.startswith("secret:"):
            return SCRUBBED.format(kind[7:]) if value is not None else value
        if kind == "phone" and isinstance(value, int) and not isinstance(value, bool):
            return mask_phone(str(value))  # a phone number stored as a number
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):  # a str subclass
            return self.scrub_value(key, str(value))
        if isinstance(value, Mapping):
            return self.scrub_mapping(value)
        if isinstance(value, (list, tuple)):
            items = [self.scrub_value(key, v) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (set, frozenset)):  # a console exporter prints one as its elements
            return [self.scrub_value(key, v) for v in value]
        if isinstance(value, (bytes, bytearray)):
            return self.scrub_value(key, bytes(value).decode("utf-8", "replace"))
        return value

    def scrub_trace_state(self, state: TraceState) -> TraceState:
        """A span's W3C trace state with each value scrubbed by its key and each key as text
        (``state`` itself when nothing changed). It arrives from the client in ``tracestate`` and
        is exported with the server span: any caller could put a phone number or a token there,
        in a value or in a key (``0912345678@sms``). A value the mask leaves invalid for a trace
        state is replaced by ``scrubbed``; a key it leaves invalid, or like an earlier one, loses
        its pair (a key cannot be suffixed: ``#`` is not allowed in one)."""
        changed = False
        pairs: list[tuple[str, str]] = []
        for key, value in state.items():
            masked = self.scrub_text(key)
            if masked != key:
                changed = True
                if _TRACE_STATE_KEY.fullmatch(masked) is None or any(masked == k for k, _ in pairs):
                    continue
            scrubbed = self.scrub_value(key, value)
            if scrubbed != value:
                changed = True
                if not isinstance(scrubbed, str) or _TRACE_STATE_VALUE.fullmatch(scrubbed) is None:
                    scrubbed = "scrubbed"
            pairs.append((masked, scrubbed))
        return TraceState(pairs) if changed else state

    def scrub_mapping(self, mapping: Mapping[Any, Any]) -> dict[str, Any]:
        """Values by their key, and the keys as text: a phone number or an email used as a key
        (``{"+886912345678": "sent"}``) is masked too. Two keys masked alike both stay, the
        later one suffixed ``#2``, ``#3``..."""
        scrubbed: dict[str, Any] = {}
        for key, item in mapping.items():
            text = str(key)
            masked = self.scrub_text(text)
            if masked in scrubbed:
                n = 2
                while f"{masked}#{n}" in scrubbed:
                    n += 1
                masked = f"{masked}#{n}"
            scrubbed[masked] = self.scrub_value(text, item)
        return scrubbed

    def keys_change(self, keys: Iterable[Any]) -> bool:
        """Whether an attribute key holds something to mask. Code names its keys, but a key built
        from data (``f"sms.{phone}"``) is text like any other. The keys found plain are
        remembered (a bounded set): the usual answer is one C-level subset check."""
        plain = self.plain_keys
        if plain.issuperset(keys):
            return False
        for key in keys:
            if key not in plain:
                if isinstance(key, str) and self.scrub_text(key) != key:
                    return True
                if len(plain) >= _PLAIN_KEYS_LIMIT:
                    plain.clear()
                plain.add(key)
        return False

    def scrub_attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A scrubbed copy, or ``None`` when nothing changed (the caller keeps the original).
        Keys are scrubbed as text, as in a mapping body (``scrub_mapping``)."""
        if not attributes:
            return None
        result: dict[str, Any] | None = None
        # Spans hand out a read-only proxy of BoundedAttributes, which iterate through the Mapping
        # protocol in Python; copy() of either is one dict copy.
        plain = attributes.copy() if isinstance(attributes, (BoundedAttributes, MappingProxyType)) else attributes
        if self.keys_change(plain):
            return self.scrub_mapping(plain)
        for key, value in plain.items():
            scrubbed = self.scrub_value(key, value)
            if scrubbed is not value and result is None and scrubbed != value:
                result = dict(plain)
            if result is not None:
                result[key] = scrubbed
        return result


def _masked_path_value(kind: str, value: str) -> str:
    """A route variable's value from a raw path, masked as the value of a key of ``kind``."""
    if kind.startswith("secret:"):
        return SCRUBBED.format(kind[7:])
    decoded = unquote(value)
    if kind == "phone":
        return mask_phone(decoded) if _SIX_DIGITS.match(decoded) is not None else value
    return mask_email(decoded) if "@" in decoded else value  # email


def _has_path_word(lowered: str) -> bool:
    for word in _PATH_HINTS:
        if word in lowered:
            return True
    return False


def _path_label(segment: str) -> str | None:
    """The label of the secret word in a path segment or route variable name (``reset-password``
    -> ``password``: the last one), or None."""
    words = _SEGMENT_SPLIT.split(_CAMEL_BOUNDARY.sub("_", segment).lower())
    return next((_PATH_LABELS[w] for w in reversed(words) if w in _PATH_LABELS), None)


def _normal(key: str) -> str:
    return key.lower().replace("-", "_")


def _bounded(original: Any, scrubbed: dict[str, Any]) -> Mapping[str, Any]:
    """Scrubbed attributes that still report how many the SDK dropped (a plain dict when none).

    ``original`` is what had the attributes (a span, an event, a link, a log record)."""
    dropped = getattr(original, "dropped_attributes", 0) or 0
    if not dropped:
        return scrubbed
    attributes = BoundedAttributes(attributes=scrubbed, immutable=True)
    attributes.dropped = dropped
    return attributes


class _FailClosed:
    """An item that cannot be scrubbed is dropped (and counted), never exported raw."""

    def __init__(self, signal: str, failed_to: str = "scrub") -> None:
        self.signal = signal
        self.failed_to = failed_to
        self._warned = False

    def dropped(self, count: int = 1) -> None:
        from kyo_otel.instruments import recorder

        recorder().dropped(self.signal, count)
        if not self._warned:
            self._warned = True
            _logger.warning("kyo_otel could not %s a %s record; it was dropped", self.failed_to, self.signal, exc_info=True)


class _ScrubbingExporter:
    """What both scrubbing exporters share: scrub each item (``scrub``), drop and count the ones
    that fail, hand the rest to the wrapped exporter; flush and shutdown go straight through."""

    signal: str
    memory_exporter: type  # the wrapped exporter's processor exports synchronously for this one
    success: Any

    def __init__(self, exporter: Any, scrubber: Scrubber) -> None:
        self.exporter = exporter
        self.scrubber = scrubber
        # The processor exports synchronously for the memory exporter (tests see items at once).
        self.synchronous = isinstance(exporter, self.memory_exporter) or getattr(exporter, "synchronous", False)
        self._failures = _FailClosed(self.signal)

    def scrub(self, item: Any) -> Any:
        raise NotImplementedError

    def export(self, items: Sequence[Any]) -> Any:
        scrubbed = []
        for item in items:
            try:
                scrubbed.append(self.scrub(item))
            except Exception:
                self._failures.dropped()
        return self.exporter.export(scrubbed) if scrubbed else self.success

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class ScrubbingSpanExporter(_ScrubbingExporter, SpanExporter):
    """Hands the wrapped exporter scrubbed copies of the spans: name, attributes, events, links,
    status description, trace state. Runs where the exporter runs (the batch thread), not on the request."""

    signal, memory_exporter, success = "traces", InMemorySpanExporter, SpanExportResult.SUCCESS

    def scrub(self, span: ReadableSpan) -> ReadableSpan:
        scrubber = self.scrubber
        name = scrubber.scrub_text(span.name)
        attributes = scrubber.scrub_attributes(span.attributes)
        events, events_changed = [], False
        for event in span.events:
            event_name = scrubber.scrub_text(event.name)
            event_attributes = scrubber.scrub_attributes(event.attributes)
            if event_attributes is None and event_name == event.name:
                events.append(event)
            else:
                events_changed = True
                events.append(
                    Event(
                        event_name,
                        _bounded(event, event_attributes) if event_attributes is not None else event.attributes,
                        event.timestamp,
                    )
                )
        links, links_changed = [], False
        for link in span.links:
            link_attributes = scrubber.scrub_attributes(link.attributes)
            if link_attributes is None:
                links.append(link)
            else:
                links_changed = True
                links.append(Link(link.context, _bounded(link, link_attributes)))
        context = span.context
        if context is not None and context.trace_state:
            trace_state = scrubber.scrub_trace_state(context.trace_state)
            if trace_state is not context.trace_state:
                context = SpanContext(context.trace_id, context.span_id, context.is_remote, context.trace_flags, trace_state)
        status = span.status
        if status.description:
            description = scrubber.scrub_text(status.description)
            if description != status.description:
                status = Status(status.status_code, description)
        if (name == span.name and attributes is None and not events_changed and not links_changed
                and status is span.status and context is span.context):
            return span
        return ReadableSpan(
            name=name,
            context=context,
            parent=span.parent,
            resource=span.resource,
            attributes=_bounded(span, attributes) if attributes is not None else span.attributes,
            events=_bounded_list(span.events, events) if events_changed else span.events,
            links=_bounded_list(span.links, links) if links_changed else span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


def _bounded_list(original: Any, items: list[Any]) -> BoundedList:
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = getattr(original, "dropped", 0)
    return bounded


class ScrubbingLogExporter(_ScrubbingExporter, LogRecordExporter):
    """Hands the wrapped exporter scrubbed copies of the log records: body, attributes, event name."""

    signal, memory_exporter, success = "logs", InMemoryLogRecordExporter, LogRecordExportResult.SUCCESS

    def scrub(self, item: ReadableLogRecord) -> ReadableLogRecord:
        record = item.log_record
        body = self.scrubber.scrub_value(None, record.body)
        attributes = self.scrubber.scrub_attributes(record.attributes)
        event_name = getattr(record, "event_name", None)
        scrubbed_name = self.scrubber.scrub_text(event_name) if event_name else event_name
        if attributes is None and body is record.body and scrubbed_name == event_name:
            return item
        copied = copy.copy(record)
        copied.body = body
        if scrubbed_name != event_name:
            copied.event_name = scrubbed_name
        if attributes is not None:
            copied.attributes = _bounded(item, attributes)
        return ReadableLogRecord(
            log_record=copied, resource=item.resource, instrumentation_scope=item.instrumentation_scope, limits=item.limits
        )


def scrubbed_points(data: MetricsData, scrubber: Scrubber, failures: _FailClosed) -> MetricsData:
    """``data`` with every point's attributes scrubbed (``data`` itself when none changed).

    kyo_otel's own instruments bound and scrub their attributes as they record; this is for the
    application's: an instrument made with the OpenTelemetry API on kyo's meter provider records
    whatever attributes it is given (``{"user.phone": phone}``), and metrics have no scrubbing
    exporter. Two points whose attributes mask alike both go out, as two points. A point that
    cannot be scrubbed (a callback that raises) is dropped and counted in ``failures``, never
    exported raw; nothing raises out of here: the periodic reader's thread would end with it, and
    with it every later collection."""
    changed = False
    resource_metrics = []
    for rm in data.resource_metrics:
        scope_metrics = []
        for sm in rm.scope_metrics:
            metrics = []
            for metric in sm.metrics:
                points = getattr(metric.data, "data_points", None) or ()
                new_points = []
                for point in points:
                    try:
                        attributes = scrubber.scrub_attributes(point.attributes)
                        new_points.append(point if attributes is None else dataclasses.replace(point, attributes=attributes))
                    except Exception:
                        failures.dropped()
                if len(new_points) != len(points) or any(new is not old for new, old in zip(new_points, points)):
                    changed = True
                    if not new_points:  # every point dropped: no metric without points
                        continue
                    metric = dataclasses.replace(metric, data=dataclasses.replace(metric.data, data_points=new_points))
                metrics.append(metric)
            scope_metrics.append(ScopeMetrics(sm.scope, metrics, sm.schema_url))
        resource_metrics.append(ResourceMetrics(rm.resource, scope_metrics, rm.schema_url))
    return MetricsData(resource_metrics) if changed else data


def scrubbing(exporter: Any, scrubber: Scrubber, wrapper: type[_ScrubbingExporter]) -> Any:
    """``exporter`` made to export scrubbed items only: kyo_otel's OTLP/gRPC exporters scrub while
    they encode (``scrub_with``, see ``kyo_otel.otlp_wire``); any other is wrapped in ``wrapper``
    (``ScrubbingSpanExporter`` / ``ScrubbingLogExporter``)."""
    scrub_with = getattr(exporter, "scrub_with", None)
    if scrub_with is not None:
        scrub_with(scrubber)
        return exporter
    return wrapper(exporter, scrubber)
