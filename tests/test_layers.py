"""The layers, checked from the source: who may import whom (issue 7).

Every module under `streams/` and `agents/` is parsed with `ast` (nothing is imported),
and every import it holds counts, also those inside functions:

* `streams/core`: the contracts and rules; no wire, runner, worker, ops, registry or CLI,
  no Kafka client, no Faust;
* `streams/wire`: only the core, the settings and itself; no Faust;
* `streams/runners` and `streams/gateway`: no Faust, nothing of the worker or the CLI;
* `streams/client` (embedded in a system's own process): no Faust, worker, CLI, and of the
  gateway only its subscription patterns;
* `streams/storage` (the Event Storage, read by the gateway and the CLI): no Faust, worker,
  CLI or gateway;
* Faust (`faust`, `mode`) only in `streams/worker` and `agents/`;
* nothing under `streams/` imports `agents`;
* no import cycle among modules (imports a module runs when it is loaded).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "agents")
FAUST = ("faust", "mode")


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, e.g. `streams.core.step`."""
    target: str
    """What it imports, as precisely as known: a module, or `pkg.module.name`."""
    line: int
    top_level: bool
    """Run when the module loads (not inside a function, nor under `if TYPE_CHECKING`)."""

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], *, top_level: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, with whether it runs when the module loads."""
    for node in body:
        yield node, top_level
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _statements(node.body, top_level=False)
        elif isinstance(node, ast.ClassDef):
            yield from _statements(node.body, top_level=top_level)
        elif isinstance(node, ast.If):
            runs = top_level and not _is_type_checking(node.test)
            yield from _statements(node.body, top_level=runs)
            yield from _statements(node.orelse, top_level=top_level)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    for child in children:
                        if isinstance(child, ast.stmt):
                            yield from _statements([child], top_level=top_level)
                        elif isinstance(child, ast.ExceptHandler | ast.match_case):
                            yield from _statements(child.body, top_level=top_level)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def _imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    tree = ast.parse(source)
    found: list[Import] = []
    for node, top_level in _statements(tree.body, top_level=True):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                # `from pkg import module` imports that module; `from module import name`,
                # the module.
                name = f"{base}.{alias.name}"
                found.append(
                    Import(module, name if name in SOURCES else base, node.lineno, top_level)
                )
    return list(dict.fromkeys(found))


IMPORTS: dict[str, list[Import]] = {
    module: _imports_of(module, path.read_text(), is_package=path.name == "__init__.py")
    for module, path in SOURCES.items()
}


def _under(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _violations(layer: str, forbidden: Callable[[str], bool]) -> list[Import]:
    return [
        found
        for module, imports in IMPORTS.items()
        if _under(module, layer)
        for found in imports
        if forbidden(found.target)
    ]


# -- the rules ----------------------------------------------------------------------------


def _core_forbidden(target: str) -> bool:
    return _under(
        target,
        *(f"streams.{layer}" for layer in ("wire", "runners", "worker", "ops", "registry", "cli")),
        "aiokafka",
        *FAUST,
    )


def _wire_forbidden(target: str) -> bool:
    if _under(target, *FAUST):
        return True
    return _under(target, "streams", "agents") and not _under(
        target, "streams.core", "streams.settings", "streams.wire"
    )


def _runners_forbidden(target: str) -> bool:
    return _under(target, *FAUST, "streams.worker", "streams.cli", "agents")


def _client_forbidden(target: str) -> bool:
    return _runners_forbidden(target) or (
        _under(target, "streams.gateway") and not _under(target, "streams.gateway.patterns"))


RULES: dict[str, Callable[[], list[Import]]] = {
    "core imports no wire, runner, worker, ops, registry, CLI, Kafka client or Faust": (
        lambda: _violations("streams.core", _core_forbidden)
    ),
    "wire imports only the core, the settings and itself; no Faust": (
        lambda: _violations("streams.wire", _wire_forbidden)
    ),
    "runners import no Faust, worker or CLI": (
        lambda: _violations("streams.runners", _runners_forbidden)
    ),
    "the gateway imports no Faust, worker or CLI (it is a process of its own)": (
        lambda: _violations("streams.gateway", _runners_forbidden)
    ),
    "the client SDK imports no Faust, worker, CLI or gateway server": (
        lambda: _violations("streams.client", _client_forbidden)
    ),
    "the Event Storage imports no Faust, worker, CLI or gateway (the gateway reads it)": (
        lambda: _violations("streams.storage", lambda target: _runners_forbidden(target)
                            or _under(target, "streams.gateway"))
    ),
    "only streams/worker and agents/ import Faust": (
        lambda: [
            found
            for found in _violations("streams", lambda target: _under(target, *FAUST))
            if not _under(found.module, "streams.worker")
        ]
    ),
    "nothing under streams/ imports agents": (
        lambda: _violations("streams", lambda target: _under(target, "agents"))
    ),
}

@pytest.mark.parametrize("rule", list(RULES))
def test_layer(rule: str) -> None:
    broken = RULES[rule]()

    assert not broken, "\n".join(map(str, broken))


# -- cycles -----------------------------------------------------------------------------------


def _load_graph() -> dict[str, list[str]]:
    """Each module and the modules it imports when it loads."""
    return {
        module: sorted(
            {
                found.target
                for found in imports
                if found.top_level and found.target in SOURCES and found.target != module
            }
        )
        for module, imports in IMPORTS.items()
    }


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The import cycles of `graph` (its strongly connected components; Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    cycles = _cycles(_load_graph())

    assert not cycles, "\n".join(" <-> ".join(cycle) for cycle in cycles)


# -- the checker itself ------------------------------------------------------------------------


def test_every_module_is_parsed() -> None:
    assert {"streams.core.step", "streams.core.rules", "agents"} <= set(SOURCES)
    assert all(IMPORTS[module] for module in ("streams.core.step", "streams.wire.codec"))


def test_imports_inside_functions_count_but_not_for_cycles() -> None:
    source = """
from typing import TYPE_CHECKING
import streams.core.kinds
if TYPE_CHECKING:
    from streams.wire import codec
try:
    from . import limits
except ImportError:
    limits = None

class Later:
    def load(self) -> None:
        import faust
"""
    found = {i.target: i.top_level for i in _imports_of("streams.core.step", source)}

    assert found == {
        "typing": True,
        "streams.core.kinds": True,
        "streams.wire.codec": False,
        "streams.core.limits": True,
        "faust": False,
    }


def test_relative_and_package_imports_resolve() -> None:
    assert _resolve("streams.core.rules", True, 1, "stays") == "streams.core.rules.stays"
    assert _resolve("streams.core.step", False, 1, "rules") == "streams.core.rules"
    assert _resolve("streams.core.step", False, 2, "wire") == "streams.wire"


def test_a_cycle_is_found() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}

    assert _cycles(graph) == [["a", "b", "c"]]
