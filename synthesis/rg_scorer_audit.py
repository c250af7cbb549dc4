"""Reads a reasoning-gym dataset's scorer and lists every way it could evaluate the answer text as code.

reasoning-gym's `score_answer` receives the model's answer. Some scorers pass it to `eval` (spiral_matrix,
n_queens, string_insertion, binary_matrix) or to `sympy.parse_expr`, which `eval`s too (countdown, puzzle24,
simple_integration, polynomial_multiplication): a boxed `__import__('os').system(...)` would run during
verification. This module inspects the installed package's source — no scorer is ever called — starting at the
dataset class's `score_answer` and following what it can reach inside reasoning-gym: methods of the class,
functions and classes of reasoning-gym modules named in it, and imports inside it. It reports

- a call of an evaluating builtin (`eval`, `exec`, `compile`, `__import__`, ...),
- any use of a module that evaluates strings somewhere in its API (sympy's `sympify` sits behind most of its
  functions, math-verify and latex2sympy hand text to sympy, `importlib`, `subprocess`, `pickle`, ...),
- source it cannot read (other than the methods `dataclasses` generates).

A `self.<name>(...)` call that is not defined on the class (an attribute set in `__init__`, e.g. a game engine
class kept as `self._Game`) is followed through the class's `__init__`, whose imports and names are walked too.

It errs towards flagging: a scorer that only evaluates its own reference answer is flagged all the same. The
result is one of the inputs of `synthesis.rg_scoring.check_scorer`; the other is the committed review table, and
a test compares the two over the installed registry, so an upgrade that makes a scorer evaluate text fails it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
import types
from dataclasses import dataclass
from typing import Any

EVALUATING_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "execfile", "breakpoint", "input"})
# Root packages whose APIs evaluate strings as code somewhere (sympify) or run processes / load code.
EVALUATING_MODULES = frozenset(
    {
        "sympy",
        "math_verify",
        "latex2sympy2",
        "latex2sympy2_extended",
        "importlib",
        "subprocess",
        "pickle",
        "marshal",
        "dill",
        "builtins",
        "os",
        "runpy",
        "code",
        "codeop",
        "pty",
        "multiprocessing",
        "ctypes",
    }
)
_PACKAGE = "reasoning_gym"
_MAX_FUNCTIONS = 400  # a bound on the walk, far above any scorer's reach


@dataclass(frozen=True, slots=True)
class ScorerFinding:
    """One reason the scorer is unsafe for untrusted text: what was found and where."""

    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.what} in {self.where}"


def audit_scorer(dataset_cls: type, *, package: str = _PACKAGE) -> list[ScorerFinding]:
    """Every evaluating construct reachable from `dataset_cls.score_answer` (empty: nothing found). Code is
    followed while it belongs to `package`."""
    walker = _Walker(dataset_cls, package)
    walker.visit_function(dataset_cls.score_answer, owner=dataset_cls)
    return sorted(set(walker.findings), key=lambda f: (f.where, f.what))


def _root(module_name: str | None) -> str:
    return (module_name or "").split(".")[0]


def _generated_by_dataclasses(function: Any) -> bool:
    """`__init__`, `__eq__`, `__repr__`, ... that `dataclasses` compiles from field names (no file behind them)."""
    code = getattr(function, "__code__", None)
    name = getattr(function, "__name__", "")
    return code is not None and code.co_filename == "<string>" and name.startswith("__") and name.endswith("__")


def _qualname(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


class _Walker:
    """A bounded walk over the scorer's reachable source, collecting findings."""

    def __init__(self, dataset_cls: type, package: str) -> None:
        self.dataset_cls = dataset_cls
        self.package = package
        self.findings: list[ScorerFinding] = []
        self.seen: set[int] = set()

    def _in_package(self, obj: object) -> bool:
        return _root(getattr(obj, "__module__", None)) == self.package

    def visit_function(self, function: Any, *, owner: type | None) -> None:
        function = inspect.unwrap(getattr(function, "__func__", function))
        if id(function) in self.seen or len(self.seen) >= _MAX_FUNCTIONS:
            return
        self.seen.add(id(function))
        where = _qualname(function)
        if _generated_by_dataclasses(function):
            return
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError, SyntaxError):
            self.findings.append(ScorerFinding("source not readable, cannot review", where))
            return
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                child._gradus_parent = parent  # type: ignore[attr-defined]
        namespace = dict(getattr(function, "__globals__", {}))
        for node in ast.walk(tree):
            self._visit_node(node, namespace, owner, where)

    def visit_class(self, cls: type) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        for klass in cls.__mro__:
            if not self._in_package(klass):
                continue
            for value in vars(klass).values():
                target = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                if inspect.isfunction(target):
                    self.visit_function(target, owner=cls)

    def _visit_node(self, node: ast.AST, namespace: dict[str, Any], owner: type | None, where: str) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            self._visit_import(node, namespace, where)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self._visit_name(node.id, namespace, where)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
            self._visit_self_attribute(node, owner, where)

    def _visit_import(self, node: ast.Import | ast.ImportFrom, namespace: dict[str, Any], where: str) -> None:
        modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for module in modules:
            if _root(module) in EVALUATING_MODULES:
                self.findings.append(ScorerFinding(f"imports {module}", where))
        if isinstance(node, ast.ImportFrom):
            module = self._absolute(node, namespace)
            if _root(module) in EVALUATING_MODULES and node.level:
                self.findings.append(ScorerFinding(f"imports {module}", where))
            if _root(module) != self.package:
                return
            try:
                imported = importlib.import_module(module)
            except Exception:  # an import that fails cannot run either; nothing to follow
                return
            for alias in node.names:
                if hasattr(imported, alias.name):
                    namespace[alias.asname or alias.name] = getattr(imported, alias.name)

    @staticmethod
    def _absolute(node: ast.ImportFrom, namespace: dict[str, Any]) -> str:
        if not node.level:
            return node.module or ""
        package = namespace.get("__package__") or ""
        return importlib.util.resolve_name("." * node.level + (node.module or ""), package)

    def _visit_name(self, name: str, namespace: dict[str, Any], where: str) -> None:
        if name in EVALUATING_BUILTINS and name not in namespace:
            self.findings.append(ScorerFinding(f"calls {name}()", where))
            return
        if name not in namespace:
            return
        self._follow(namespace[name], name, where)

    def _follow(self, obj: object, name: str, where: str) -> None:
        if isinstance(obj, types.ModuleType):
            if _root(obj.__name__) in EVALUATING_MODULES:
                self.findings.append(ScorerFinding(f"uses module {obj.__name__} (as {name})", where))
            return
        module = getattr(obj, "__module__", None)
        if _root(module) in EVALUATING_MODULES:
            self.findings.append(ScorerFinding(f"uses {module}.{getattr(obj, '__name__', name)}", where))
        elif self._in_package(obj):
            if inspect.isclass(obj):
                self.visit_class(obj)
            elif inspect.isfunction(obj) or inspect.ismethod(obj):
                self.visit_function(obj, owner=None)

    def _visit_self_attribute(self, node: ast.Attribute, owner: type | None, where: str) -> None:
        cls = owner or self.dataset_cls
        attribute = inspect.getattr_static(cls, node.attr, None)
        if attribute is None:
            # An instance attribute: a data field is harmless; a called one is whatever __init__ put there.
            if self._is_called(node):
                self._visit_initializer(cls, node.attr, where)
            return
        target = attribute.__func__ if isinstance(attribute, classmethod | staticmethod) else attribute
        if isinstance(target, property):
            target = target.fget
        if inspect.isfunction(target):
            if _root(target.__module__) == self.package:
                self.visit_function(target, owner=cls)
        else:
            self._follow(target, f"self.{node.attr}", where)

    def _visit_initializer(self, cls: type, attribute: str, where: str) -> None:
        initializer = inspect.getattr_static(cls, "__init__", None)
        if inspect.isfunction(initializer) and _generated_by_dataclasses(initializer):
            return  # a dataclass field: data, whose own methods are walked where its class is named
        if inspect.isfunction(initializer) and _root(initializer.__module__) == self.package:
            self.visit_function(initializer, owner=cls)
            return
        self.findings.append(ScorerFinding(f"calls self.{attribute}, which no reviewable __init__ sets", where))

    @staticmethod
    def _is_called(node: ast.Attribute) -> bool:
        """`self.x(...)`, or `self.x.y(...)` unless x is the dataset's config (a plain dataclass of settings)."""
        chain: ast.AST = node
        while isinstance(getattr(chain, "_gradus_parent", None), ast.Attribute):
            chain = chain._gradus_parent  # type: ignore[attr-defined]
        parent = getattr(chain, "_gradus_parent", None)
        called = isinstance(parent, ast.Call) and parent.func is chain
        return called and (chain is node or node.attr != "config")
