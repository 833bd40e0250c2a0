"""The shape of the package: layers that only point down, and no private name used across modules.

Read from the source with ``ast``: every ``import`` (at module level or inside a function) and
every ``lazy_module("name")`` call is an edge. A module may only depend on modules of a lower
layer; a new module must be placed in :data:`LAYERS` to pass.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set, Tuple

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "harmony_np"

# lowest first; a module may import from any earlier layer, never from its own or a later one
LAYERS: List[Set[str]] = [
    {"_version", "errors", "records", "tuning", "chat_template"},  # no imports of harmony_np
    {"caches", "threads"},
    {"vocab", "rust_text"},  # rust_text: openai_harmony's error texts that come from Rust
    {"model", "kernels", "bpe"},  # kernels: the Numba code, on NumPy arrays only; bpe: text to ids, the one seam
    {"gate", "lazy"},  # gate: the one input gate; lazy: the kernels' first import
    {"arrow_layout"},  # Arrow's list and string layouts read and written by their buffers
    {"schema", "header", "ragged", "chat"},  # chat: chat-format data <-> harmony messages (model only)
    {"render", "parse", "chat_render"},
    {"render_batch", "recover"},
    {"stream", "parse_batch"},
    {"encoding"},  # the facade
    {"arrow"},  # tables in, tables out (pyarrow inside its functions only)
    {"parquet_io"},  # Parquet streamed a batch at a time, under the CLI (pyarrow inside functions)
    {"cli"},
    {"__init__"},
    {"__main__"},
]

# Private attributes of other libraries, each read in one place, for a reason given there.
FOREIGN_PRIVATE = {
    "_core_bpe": "vocab.py: tiktoken's Rust CoreBPE (Vocabulary.core_bpe)",
    "_mergeable_ranks": "vocab.py: tiktoken's ranks, shared by a thread's own Encoding",
    "_lock": "threads.py: llvmlite's LLVM lock, which a fork must hold",
    "_value_": "Enum's value slot (the .value property is slow on the hot path)",
}


def _modules() -> Dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def _target(node: ast.ImportFrom) -> List[str]:
    """The harmony_np modules an ``ImportFrom`` reads."""
    if node.level == 1:
        if node.module:
            return [node.module.split(".")[0]]
        # from . import x: module x, or a name of the package's __init__
        return [a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names]
    if node.level == 0 and node.module and node.module.split(".")[0] == "harmony_np":
        parts = node.module.split(".")
        return [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
    return []


def _edges(tree: ast.Module) -> List[Tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out += [(m, node.lineno) for m in _target(node)]
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "harmony_np" and len(parts) > 1:
                    out.append((parts[1], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append((arg.value, node.lineno))
    return out


def _rank() -> Dict[str, int]:
    return {m: i for i, layer in enumerate(LAYERS) for m in layer}


def test_every_module_has_a_layer():
    modules = set(_modules())
    placed = set(_rank())
    assert modules - placed == set(), "place these modules in LAYERS"
    assert placed - modules == set(), "LAYERS names modules that do not exist"


def _layer_violations(modules: Dict[str, ast.Module], rank: Dict[str, int]) -> List[str]:
    bad = []
    for name, tree in modules.items():
        for target, line in _edges(tree):
            if target not in rank:
                bad.append(f"{name}.py:{line} imports unknown harmony_np.{target}")
            elif rank[target] >= rank[name]:
                bad.append(f"{name}.py:{line} imports {target} (layer {rank[target]} >= its own {rank[name]})")
    return bad


def test_imports_only_point_down():
    assert _layer_violations(_modules(), _rank()) == []


def test_no_import_cycle():
    # implied by the layers; checked on the graph itself too, so a wrong LAYERS cannot hide one
    graph = {name: {t for t, _ in _edges(tree)} for name, tree in _modules().items()}
    state: Dict[str, int] = {}

    def visit(n: str, path: List[str]) -> None:
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " -> ".join(path + [n, m]))
            if m not in state:
                visit(m, path + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(modules: Dict[str, ast.Module]) -> List[str]:
    bad = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _target(node):
                bad += [f"{name}.py:{node.lineno} imports {a.name}" for a in node.names if _is_private(a.name)]
    return bad


def test_no_private_name_imported_across_modules():
    assert _private_imports(_modules()) == []


def _own_private_names(tree: ast.Module) -> Set[str]:
    """Private names a module defines: module globals, class attributes and methods, ``self.``
    attributes it assigns and ``__slots__`` entries."""
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__slots__" for t in node.targets):
            for elt in getattr(node.value, "elts", ()):
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    names.add(elt.value)
    return {n for n in names if _is_private(n)}


def _foreign_private_reads(modules: Dict[str, ast.Module]) -> List[str]:
    """``obj._x`` where ``_x`` is defined by no class or global of the module reading it: another
    module's (or library's) private state, reached past its public API."""
    bad = []
    for name, tree in modules.items():
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in own or node.attr in FOREIGN_PRIVATE:
                continue
            bad.append(f"{name}.py:{node.lineno} reads .{node.attr}")
    # getattr(obj, "_x") with a literal name counts too
    for name, tree in modules.items():
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr"):
                if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                    attr = node.args[1].value
                    if _is_private(attr) and attr not in own and attr not in FOREIGN_PRIVATE:
                        bad.append(f"{name}.py:{node.lineno} {node.func.id}(..., {attr!r})")
    return bad


def test_no_private_attribute_of_another_module():
    assert _foreign_private_reads(_modules()) == []


def test_the_checks_see_a_violation():
    # each check must be able to fail: an upward import (also a lazy one), a private name
    # imported, another module's private attribute read
    bad = {
        "parse": ast.parse("from .encoding import HarmonyEncoding\n"),
        "gate": ast.parse("x = lazy_module('cli')\n"),
        "render": ast.parse("from .schema import _MISSING\n"),
        "stream": ast.parse("class A:\n    def f(self, enc):\n        self._own = 1\n        return enc._renderer, self._own, getattr(enc, '_name')\n"),
    }
    rank = _rank()
    assert _layer_violations({"parse": bad["parse"]}, rank) == [f"parse.py:1 imports encoding (layer {rank['encoding']} >= its own {rank['parse']})"]
    assert _layer_violations({"gate": bad["gate"]}, rank) == [f"gate.py:1 imports cli (layer {rank['cli']} >= its own {rank['gate']})"]
    assert _private_imports({"render": bad["render"]}) == ["render.py:1 imports _MISSING"]
    assert _foreign_private_reads({"stream": bad["stream"]}) == ["stream.py:4 reads ._renderer", "stream.py:4 getattr(..., '_name')"]
