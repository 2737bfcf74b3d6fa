"""Guardrails of the package layout (issue 11): one-way imports, private names, module size.

The modules under test are read from the tree, so a new module is checked as soon as it exists.
The import graph comes from an AST pass over every ``import`` (top level and inside functions;
imports under ``if TYPE_CHECKING:`` are left out, they never run). Layers, top to bottom:

  leaves (errors, _files, _checks, _classnames, _seeding, _devices, _imaging, _yaml, plots)
  -> data (+_sources), models, losses, diffaug, config -> generator -> io -> export
  -> training/ | augment/ (siblings: neither imports the other) -> evaluation/ -> demo, bench, cli
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganaug"
MAX_LINES = 450

#: The modules below training/augment; none of them may import an upper layer.
LOWER = ("ganaug.errors", "ganaug._files", "ganaug._checks", "ganaug._classnames",
         "ganaug._seeding", "ganaug._devices",
         "ganaug._imaging", "ganaug._timing", "ganaug._yaml", "ganaug.plots", "ganaug.data", "ganaug._sources",
         "ganaug._folders", "ganaug._specs", "ganaug.models",
         "ganaug.losses", "ganaug.diffaug", "ganaug.config", "ganaug.generator", "ganaug.io",
         "ganaug.export", "ganaug.model_document", "ganaug.progress")
UPPER = ("ganaug.training", "ganaug.augment", "ganaug.evaluation", "ganaug.bench", "ganaug.cli",
         "ganaug.cli_args", "ganaug.cli_experiment", "ganaug.demo", "ganaug.reference_loop")
#: Private leaf modules that exist to be imported across the package.
SHARED_PRIVATE = {"_checks", "_seeding", "_devices", "_imaging", "_files", "_sources", "_timing",
                  "_folders", "_specs", "_yaml", "_classnames"}
#: The one cycle allowed: the registry imports the built-in families so that their
#: ``@register_arch`` runs (timm-style plugin registration); they import the registry back.
PLUGIN_EDGES = {("ganaug.models.registry", "ganaug.models.dcgan"),
                ("ganaug.models.registry", "ganaug.models.resnet")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _runtime_nodes(tree: ast.AST):
    """Every node that can run: skips the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if (isinstance(child, ast.If) and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"):
            for stmt in child.orelse:
                yield stmt
                yield from _runtime_nodes(stmt)
            continue
        yield child
        yield from _runtime_nodes(child)


@cache
def _imports(module: str) -> tuple[tuple[str, str | None, int], ...]:
    """``(imported ganaug module, imported name or None, line)`` for each import in ``module``."""
    out = []
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names
                    if a.name.split(".")[0] == "ganaug"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != "ganaug":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES
                           else (base, a.name, node.lineno))
    return tuple(out)


def _graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in _imports(m) if target in MODULES and target != m}
            for m in MODULES}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other through imports (sorted)."""
    reach = {v: _reachable(graph, v) for v in graph}
    groups = {frozenset(w for w in reach[v] if v in reach[w]) for v in graph if v in reach[v]}
    return sorted(sorted(g) for g in groups)


# -- the checks ---------------------------------------------------------------------------------
def test_the_tree_is_read():
    assert {"ganaug", "ganaug.errors", "ganaug.models.registry", "ganaug.data"} <= set(MODULES)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_except_the_arch_plugins():
    graph = _graph()
    assert {b for a, b in PLUGIN_EDGES} <= graph["ganaug.models.registry"], \
        "the registry no longer imports its plugins: drop PLUGIN_EDGES"
    for a, b in PLUGIN_EDGES:
        graph[a].discard(b)
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other: " + "; ".join(map(" <-> ".join, cycles))


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, LOWER)])
def test_lower_layers_never_import_upper_ones(module):
    upward = [f"line {line}: {target}" for target, _, line in _imports(module)
              if _within(target, UPPER)]
    assert upward == [], f"{module} imports an upper layer: {upward}"


def test_training_and_augment_never_import_each_other():
    siblings = {"ganaug.training": "ganaug.augment", "ganaug.augment": "ganaug.training"}
    crossing = [f"{module} line {line}: {target}"
                for module in MODULES for side, other in siblings.items()
                if _within(module, (side,))
                for target, _, line in _imports(module) if _within(target, (other,))]
    assert crossing == []


def _private_imports(module: str) -> list[str]:
    problems = []
    for target, name, line in _imports(module):
        package, _, leaf = target.rpartition(".")
        # A subpackage's private module serves that subpackage only; the top-level ones that
        # serve everybody are SHARED_PRIVATE.
        shared = package == "ganaug" and leaf in SHARED_PRIVATE
        inside = package != "ganaug" and _within(module, (package,))
        if _is_private(leaf) and not (shared or inside) and target != module:
            problems.append(f"line {line}: imports private module {target}")
        if name is not None and _is_private(name) and target != module:
            problems.append(f"line {line}: imports {target}.{name}")
    return problems


def _private_attributes(module: str) -> list[str]:
    """``mod._name`` where ``mod`` is bound by an import to another ganaug module."""
    nodes = list(_runtime_nodes(ast.parse(MODULES[module].read_text())))
    bound: dict[str, str] = {}  # local name -> the ganaug module it is bound to
    for node in nodes:
        if isinstance(node, ast.Import):
            bound.update({a.asname: a.name for a in node.names
                          if a.asname and a.name.startswith("ganaug")})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ganaug"):
            bound.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                          if f"{node.module}.{a.name}" in MODULES})
    return [f"line {node.lineno}: uses {bound[node.value.id]}.{node.attr}" for node in nodes
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and bound.get(node.value.id, module) != module and _is_private(node.attr)]


@pytest.mark.parametrize("module", list(MODULES))
def test_no_private_names_cross_modules(module):
    problems = list(dict.fromkeys(_private_imports(module) + _private_attributes(module)))
    assert problems == [], f"{module} reaches into another module's private names: {problems}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_size(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it (STYLE: ~400 at most)"


def test_every_module_has_a_layer():
    """A new module must be placed in LOWER or UPPER, so the layer tests cover it."""
    top = ("ganaug", "ganaug.__main__", "ganaug.albumentations")
    unplaced = [m for m in MODULES if m not in top and not _within(m, (*LOWER, *UPPER))]
    assert unplaced == []
