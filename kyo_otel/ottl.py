"""The few OTTL log conditions kyo_otel's collector config uses, evaluated in Python.

The filter processor drops a log record when one of its conditions is true. Without a collector
to run, the audit split is proven by evaluating the same condition strings on the OTLP records
the app really sends. Only a small subset is understood (comparisons with ``==``/``!=``,
``and``/``or``/``not``, parentheses, ``attributes["k"]``, ``resource.attributes["k"]``,
``severity_text``, ``severity_number``, ``body``); anything else raises
``UnsupportedCondition`` rather than guessing. Semantics follow OTTL: ``nil`` equals only
``nil``, values of different types are never equal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class UnsupportedCondition(ValueError):
    """An OTTL condition outside the subset kyo_otel can evaluate (and so cannot prove)."""


@dataclass
class LogView:
    """The parts of one OTLP log record an OTTL log condition can look at."""

    attributes: dict[str, Any] = field(default_factory=dict)
    resource_attributes: dict[str, Any] = field(default_factory=dict)
    severity_text: str = ""
    severity_number: int = 0
    body: Any = None


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+)|(?P<op>==|!=|\(|\)|\[|\]|\.)|(?P<word>[A-Za-z_][A-Za-z_0-9]*))"""
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise UnsupportedCondition(f"cannot read {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """``a == b``, ``!=``, ``and``, ``or``, ``not``, parentheses; paths ``attributes["k"]``,
    ``resource.attributes["k"]``, ``severity_text``, ``severity_number``, ``body``; string, integer,
    ``true``/``false``/``nil`` literals. Anything else raises ``UnsupportedCondition``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise UnsupportedCondition(f"expected {value or 'more'} in {self.text!r}")
        self.i += 1
        return token

    def parse(self) -> Any:
        tree = self.or_()
        if self.peek() is not None:
            raise UnsupportedCondition(f"unexpected {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return tree

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == ("word", "or"):
            self.take()
            left = ("or", left, self.and_())
        return left

    def and_(self) -> Any:
        left = self.not_()
        while self.peek() == ("word", "and"):
            self.take()
            left = ("and", left, self.not_())
        return left

    def not_(self) -> Any:
        if self.peek() == ("word", "not"):
            self.take()
            return ("not", self.not_())
        if self.peek() == ("op", "("):
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        left = self.operand()
        token = self.peek()
        if token is None or token[1] not in ("==", "!="):
            raise UnsupportedCondition(f"only == and != comparisons are supported in {self.text!r}")
        op = self.take()[1]
        return (op, left, self.operand())

    def operand(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return ("lit", json.loads(value))
        if kind == "num":
            return ("lit", int(value))
        if kind != "word":
            raise UnsupportedCondition(f"unexpected {value!r} in {self.text!r}")
        if value in ("true", "false"):
            return ("lit", value == "true")
        if value == "nil":
            return ("lit", None)
        if value in ("severity_text", "severity_number", "body"):
            return ("field", value)
        if value == "resource":
            self.take(".")
            self.take("attributes")
            return ("resource", self.key())
        if value == "attributes":
            return ("attr", self.key())
        raise UnsupportedCondition(f"path or function {value!r} is not supported in {self.text!r}")

    def key(self) -> str:
        self.take("[")
        kind, value = self.take()
        if kind != "str":
            raise UnsupportedCondition(f"attribute keys must be string literals in {self.text!r}")
        self.take("]")
        return json.loads(value)


def parse_condition(text: str) -> Any:
    """Parse one OTTL log condition of the supported subset (raises ``UnsupportedCondition``)."""
    return _Parser(text).parse()


def _evaluate(tree: Any, record: LogView) -> Any:
    op = tree[0]
    if op == "lit":
        return tree[1]
    if op == "attr":
        return record.attributes.get(tree[1])
    if op == "resource":
        return record.resource_attributes.get(tree[1])
    if op == "field":
        return getattr(record, tree[1])
    if op == "not":
        return not _evaluate(tree[1], record)
    if op == "and":
        return bool(_evaluate(tree[1], record)) and bool(_evaluate(tree[2], record))
    if op == "or":
        return bool(_evaluate(tree[1], record)) or bool(_evaluate(tree[2], record))
    left, right = _evaluate(tree[1], record), _evaluate(tree[2], record)
    # OTTL: nil equals only nil; values of different types are not equal.
    equal = left == right and (
        type(left) is type(right) or isinstance(left, (int, float)) and isinstance(right, (int, float))
    )
    return equal if op == "==" else not equal


def condition_matches(condition: str, record: LogView) -> bool:
    """Whether one OTTL log condition is true for the record (true = the filter drops it)."""
    return bool(_evaluate(parse_condition(condition), record))


def log_view_from_otlp(resource_attributes: Iterable[Any], record: Any) -> LogView:
    """A LogView of an OTLP protobuf LogRecord (and its resource's KeyValues), as the collector sees it."""

    def value(any_value: Any) -> Any:
        kind = any_value.WhichOneof("value")
        return None if kind is None else getattr(any_value, kind)

    return LogView(
        attributes={kv.key: value(kv.value) for kv in record.attributes},
        resource_attributes={kv.key: value(kv.value) for kv in resource_attributes},
        severity_text=record.severity_text,
        severity_number=int(record.severity_number),
        body=value(record.body),
    )
