"""Private names of the SDK, the API, the contrib instrumentations, redis-py, Flask and werkzeug
are used in one place only: ``kyo_otel/_sdk/``, where each use belongs to a fast path with a probe
and a public fallback (``kyo_otel._sdk.FAST_PATHS``).

The rule, checked on the source (``ast``) of every other ``kyo_otel`` module:

1. no import of a third-party module whose dotted path has a part starting with ``_``
   (``opentelemetry.exporter.otlp.proto.common._internal``), except ``DOCUMENTED_MODULES``, the
   only import paths the SDK documents for the logs signal;
2. no import of a name starting with ``_`` from a third-party module (``_BaseConfigurator``);
3. no attribute ``obj._name`` (read, written or deleted; also ``getattr``/``setattr``/``hasattr``/
   ``delattr`` with a literal name) unless kyo_otel itself defines ``_name`` (a module-level name,
   a class attribute or method, or an attribute its own classes assign on ``self``) and no
   third-party class kyo_otel subclasses defines it;
4. in a class with a third-party base: no ``self._name`` / ``super()._name`` / ``def _name`` for a
   ``_name`` that a third-party class in its MRO defines (a class attribute or method, or an
   attribute its methods assign on ``self``): overriding or reading the base's private state.

Dunder (``__x__``) and enum "sunder" (``_value_``) names are not private. ``DOCUMENTED_NAMES``
lists the underscore names their project documents as public API.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from functools import lru_cache
from pathlib import Path

import kyo_otel

PACKAGE = Path(kyo_otel.__file__).parent
THIRD_PARTY = frozenset({"opentelemetry", "redis", "flask", "werkzeug", "grpc", "google", "wrapt"})
DOCUMENTED_MODULES = frozenset({
    # The logs signal's API and SDK live under these paths; the SDK's docs import from them.
    "opentelemetry._logs",
    "opentelemetry.sdk._logs",
    "opentelemetry.sdk._logs.export",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
})
DOCUMENTED_NAMES = frozenset({
    "_get_current_object",  # werkzeug's LocalProxy; Flask's docs, "Notes On Proxies"
})


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and not (len(name) > 2 and name.endswith("_"))


def _third_party(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in THIRD_PARTY  # type: ignore[union-attr]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_sdk" not in p.relative_to(PACKAGE).parts)


def _import(path: Path) -> object:
    """The module at ``path`` (``__main__`` runs the CLI when imported: its own namespace suffices)."""
    if path.name == "__main__.py":
        return {}
    return importlib.import_module(_module_name(path))


def _module_name(path: Path) -> str:
    return ".".join(("kyo_otel", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _self_assigned(tree: ast.AST) -> set[str]:
    """Names assigned as ``self.<name>`` anywhere in ``tree``."""
    return {
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name) and node.value.id == "self"
    }


@lru_cache(maxsize=None)
def _defined_by(cls: type) -> frozenset[str]:
    """What a third-party class and its third-party bases define: attributes, and what their
    methods assign on ``self``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or not _third_party(klass.__module__):
            continue
        names.update(vars(klass))
        try:
            names |= _self_assigned(ast.parse(inspect.getsource(klass).replace("\r", "")))
        except (OSError, TypeError, SyntaxError, IndentationError):
            pass
    return frozenset(names)


def _bases(module: object, node: ast.ClassDef) -> list[type]:
    """The class's bases, evaluated in its module (a base that cannot be: skipped)."""
    found = []
    for base in node.bases:
        try:
            value = eval(compile(ast.Expression(base), "<base>", "eval"), vars(module) if not isinstance(module, dict) else module)  # noqa: S307 - our own source
        except Exception:
            continue
        if isinstance(value, type):
            found.append(value)
    return found


def _third_party_names(module: object, node: ast.ClassDef) -> frozenset[str]:
    names: set[str] = set()
    for base in _bases(module, node):
        names |= _defined_by(base)
    return frozenset(names)


def _kyo_defined() -> set[str]:
    """Private names kyo_otel itself defines (module-level, class bodies, own ``self`` attributes)."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = _import(path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and not _third_party(getattr(node, "module", None)):
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_kyo"):
                names.add(node.value)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names |= _self_assigned(node) - _third_party_names(module, node)
    return {name for name in names if _is_private(name)}


def _violations(path: Path, kyo_names: set[str]) -> list[str]:
    source = path.read_text()
    tree = ast.parse(source)
    module = _import(path)
    where = path.relative_to(PACKAGE.parent)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{node.lineno}: {what}")  # type: ignore[attr-defined]

    def check_module(node: ast.AST, name: str) -> None:
        if _third_party(name) and any(part.startswith("_") for part in name.split(".")) and name not in DOCUMENTED_MODULES:
            report(node, f"imports the private module {name}")

    def visit(node: ast.AST, private_of_bases: frozenset[str]) -> None:
        if isinstance(node, ast.ClassDef):
            private_of_bases = _third_party_names(module, node)
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(node, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            check_module(node, node.module or "")
            if _third_party(node.module):
                for alias in node.names:
                    if _is_private(alias.name):
                        report(node, f"imports {alias.name} from {node.module}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in private_of_bases and _is_private(node.name):
            report(node, f"overrides {node.name} of a third-party base class")
        elif isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr not in DOCUMENTED_NAMES:
            target = node.value
            on_self = (isinstance(target, ast.Name) and target.id in ("self", "cls")) or (
                isinstance(target, ast.Call) and isinstance(target.func, ast.Name) and target.func.id == "super")
            if on_self:
                if node.attr in private_of_bases:
                    report(node, f"uses {node.attr} of a third-party base class")
            elif node.attr not in kyo_names or node.attr in _all_third_party_defined():
                report(node, f"uses the private attribute {node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _is_private(node.args[1].value)):
            name = node.args[1].value
            target = node.args[0]
            on_self = isinstance(target, ast.Name) and target.id in ("self", "cls")
            if (on_self and name in private_of_bases) or (not on_self and (name not in kyo_names or name in _all_third_party_defined())):
                report(node, f"uses the private attribute {name} by name")
        for child in ast.iter_child_nodes(node):
            visit(child, private_of_bases)

    visit(tree, frozenset())
    return found


@lru_cache(maxsize=None)
def _all_third_party_defined() -> frozenset[str]:
    """Private names of every third-party class a kyo_otel class (anywhere, ``_sdk`` included)
    subclasses: a kyo name that is also one of these is the third party's, not ours."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _import(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names |= {n for n in _third_party_names(module, node) if _is_private(n)}
    return frozenset(names)


def test_only_kyo_otel_sdk_touches_private_names_of_other_packages():
    kyo_names = _kyo_defined()
    found = [violation for path in _modules() for violation in _violations(path, kyo_names)]
    assert not found, "private names used outside kyo_otel/_sdk:\n" + "\n".join(found)


def test_the_rule_catches_each_kind_of_use(tmp_path, monkeypatch):
    """The checker itself: each kind of use in a throwaway module is reported."""
    source = '''
from opentelemetry.sdk._configuration import _BaseConfigurator
from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry import context


class Handler(LoggingHandler):
    def emit(self, record):
        if self._is_emitting.get():
            return

    def _get_attributes(self, record):
        return {}


def read(runtime):
    return context._RUNTIME_CONTEXT, getattr(runtime, "_current_context")
'''
    package = tmp_path / "kyo_otel_probe_pkg"
    package.mkdir()
    module = package / "checked.py"
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    monkeypatch.setattr(f"{__name__}._module_name", lambda path: "kyo_otel_probe_pkg.checked")
    found = "\n".join(_violations(module, set()))
    for expected in ("private module opentelemetry.sdk._configuration", "imports _BaseConfigurator",
                     "private module opentelemetry.exporter.otlp.proto.common._internal", "imports _encode_value",
                     "uses _is_emitting of a third-party base", "overrides _get_attributes",
                     "private attribute _RUNTIME_CONTEXT", "_current_context by name"):
        assert expected in found, (expected, found)
