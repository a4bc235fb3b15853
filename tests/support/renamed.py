"""What a release of the SDK, contrib or redis-py that renames one private name looks like: the
name gone, everywhere its own code used it.

``rename(monkeypatch, classes, old, new)`` moves a class attribute ``old`` to ``new`` and
recompiles every method of ``classes`` whose source mentions ``old`` with ``new`` instead, so the
package keeps working through its public API while ``old`` no longer exists; ``monkeypatch``
undoes it all after the test.
"""

from __future__ import annotations

import __future__
import inspect
import re
import textwrap
from typing import Any

import pytest


def _function(member: Any) -> Any:
    if isinstance(member, (staticmethod, classmethod)):
        return member.__func__
    if isinstance(member, property):
        return member.fget
    return member if inspect.isfunction(member) else None


def _recompiled(cls: type, function: Any, pattern: re.Pattern[str], new: str) -> Any:
    function = inspect.unwrap(function)  # its source holds the decorators, applied again below
    source = textwrap.dedent(inspect.getsource(function))
    source = pattern.sub(new, source).replace("super()", "super(__class__, self)")
    namespace = dict(function.__globals__)
    namespace["__class__"] = cls
    # Annotations stay unevaluated: they may name what the module imports only for type checking.
    code = compile(source, inspect.getsourcefile(function) or "<renamed>", "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - the package's own source
    return namespace[pattern.sub(new, function.__name__)]


def rename(monkeypatch: pytest.MonkeyPatch, classes: list[type], old: str, new: str, instances: tuple[Any, ...] = ()) -> None:
    """Rename ``old`` to ``new`` in ``classes`` (and in the ``__dict__`` of ``instances``)."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    for cls in classes:
        for name, member in list(vars(cls).items()):
            function = _function(member)
            if function is None or not function.__qualname__.startswith(f"{cls.__qualname__}."):
                continue  # not written in this class's body (a wrapper made elsewhere)
            try:
                source = inspect.getsource(function)
            except (OSError, TypeError):
                continue
            if pattern.search(source):
                recompiled = _recompiled(cls, function, pattern, new)
                if name == old:  # the renamed method itself
                    monkeypatch.delattr(cls, old)
                    monkeypatch.setattr(cls, new, recompiled, raising=False)
                else:
                    monkeypatch.setattr(cls, name, recompiled)
        if old in vars(cls):
            value = vars(cls)[old]
            monkeypatch.delattr(cls, old)
            monkeypatch.setattr(cls, new, value, raising=False)
    for instance in instances:
        if old in vars(instance):
            value = vars(instance)[old]
            monkeypatch.delattr(instance, old)
            monkeypatch.setattr(instance, new, value, raising=False)
