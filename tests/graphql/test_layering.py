"""The graph's modules form no import cycle, and type modules reach each other only through ``refs``.

Module-level imports are read from the source (``ast``): an import under ``if TYPE_CHECKING:`` or inside
a function does not run when the module is imported, so it does not count. A fresh interpreter then
imports each type module first, before any other of the graph's, then builds the schema: no module
depends on another having been imported before it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from oro_graph.graphql import refs

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "oro_graph.graphql"
SOURCES = {f"{PACKAGE}.{p.stem}": p for p in sorted((ROOT / "oro_graph" / "graphql").glob("*.py"))}
SOURCES.pop(f"{PACKAGE}.__init__")
TYPE_MODULES = {f"{PACKAGE}.{home}" for home in refs.HOMES.values()}


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level(statements: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, and in top-level try/if blocks."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            found += _module_level(node.body) + _module_level(node.orelse) + _module_level(node.finalbody)
            for handler in node.handlers:
                found += _module_level(handler.body)
    return found


def graph_imports(module: str) -> set[str]:
    """The modules of the graph that ``module`` imports when it is imported."""
    tree = ast.parse(SOURCES[module].read_text())
    out: set[str] = set()
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.module == PACKAGE:  # from oro_graph.graphql import refs
            names = [f"{PACKAGE}.{alias.name}" for alias in node.names]
        else:
            names = [node.module or ""]
        out |= {name for name in names if name in SOURCES}
    return out


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    # given: a -> b -> c -> a, and d outside it
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    # then
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_and_function_imports_do_not_count() -> None:
    # given
    source = (
        "from typing import TYPE_CHECKING\n"
        "from oro_graph.graphql import refs\n"
        "if TYPE_CHECKING:\n    from oro_graph.graphql.agents import Agent\n"
        "def f():\n    from oro_graph.graphql.suites import Suite\n"
    )

    # when
    imports = _module_level(ast.parse(source).body)

    # then
    assert [ast.unparse(node) for node in imports] == [
        "from typing import TYPE_CHECKING",
        "from oro_graph.graphql import refs",
    ]


def test_the_graph_modules_form_no_import_cycle() -> None:
    # given
    edges = {module: graph_imports(module) for module in SOURCES}

    # then
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_type_modules_reach_each_other_only_through_refs() -> None:
    # given: schema merges the roots of every type module; no other module may import one
    for module in sorted(set(SOURCES) - {f"{PACKAGE}.schema"}):
        # when
        imported = graph_imports(module) & TYPE_MODULES

        # then
        assert not imported, (
            f"{module} imports {sorted(imported)}: write refs.X instead (see graphql/refs.py)"
        )


def test_refs_names_each_type_where_it_is_defined_and_mypy_sees_the_same() -> None:
    # given: the TYPE_CHECKING imports of refs.py, which mypy reads
    tree = ast.parse(SOURCES[f"{PACKAGE}.refs"].read_text())
    block = next(node for node in tree.body if _is_type_checking(node))
    seen = {
        alias.name: node.module
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }

    # then
    assert seen == {name: f"{PACKAGE}.{home}" for name, home in refs.HOMES.items()}
    for name, home in refs.HOMES.items():
        assert getattr(refs, name).__module__ == f"{PACKAGE}.{home}"


FRESH = """
import importlib, json, sys
out = {}
for module in json.loads(sys.argv[1]) + ["oro_graph.graphql.schema"]:  # the schema last: it resolves all
    for name in [n for n in sys.modules if n == "oro_graph.graphql" or n.startswith("oro_graph.graphql.")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
        out[module] = "ok"
    except Exception as exc:
        out[module] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@pytest.mark.slow  # about 8 s of CPU: each type module's import builds most of the graph's types
def test_each_module_imports_first_in_a_fresh_interpreter() -> None:
    # given: the type modules and refs, each imported before any other module of the graph
    modules = sorted(TYPE_MODULES | {f"{PACKAGE}.refs"})

    # when
    done = subprocess.run(
        [sys.executable, "-c", FRESH, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # then
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == {module: "ok" for module in [*modules, f"{PACKAGE}.schema"]}
