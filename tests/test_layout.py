"""The architecture, checked on the source tree (AST only, nothing imported).

Dependencies point one way: service (with migrations) -> search -> early_exit, robustness, acc_predictor ->
supernets (packages of one rank never import each other); no import cycle between top-level packages; no FastAPI
route defined inside a function; no function in service/ over 100 lines; every package names its public API in
``__all__``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"supernets": 0, "acc_predictor": 1, "early_exit": 1, "robustness": 1, "search": 2, "service": 3,
        "migrations": 3}
SAME = {"migrations": "service"}  # alembic's env imports the models; the service runs the migrations
ROUTE_VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "websocket"}
MAX_SERVICE_FUNCTION_LINES = 100


def _scan() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"upward": [], "nested_route": [], "long_function": []}
    edges: dict[str, set[str]] = defaultdict(set)
    for pkg in RANK:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text(), str(f))
            rel = f.relative_to(ROOT)
            parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
            for node in ast.walk(tree):
                mods: list[str] = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                for m in mods:
                    top = m.split(".")[0]
                    if top in RANK and SAME.get(top, top) != SAME.get(pkg, pkg):
                        edges[pkg].add(top)
                        if RANK[top] >= RANK[pkg]:
                            found["upward"].append(f"{rel}:{node.lineno} {pkg} imports {m}")
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    outer = parents.get(node)
                    while outer is not None and not isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef):
                        outer = parents.get(outer)
                    is_route = any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                                   and d.func.attr in ROUTE_VERBS for d in node.decorator_list)
                    if pkg == "service" and is_route and outer is not None:
                        found["nested_route"].append(f"{rel}:{node.lineno} {node.name} inside {outer.name}")
                    n = (node.end_lineno or node.lineno) - node.lineno + 1
                    if pkg == "service" and n > MAX_SERVICE_FUNCTION_LINES:
                        found["long_function"].append(f"{rel}:{node.lineno} {node.name} is {n} lines")
    found["cycle"] = _cycles(edges)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[str]:
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    for start in RANK:
        stack = [(start, [start])]
        while stack:
            cur, path = stack.pop()
            for nxt in sorted(edges[cur]):
                if nxt == start and frozenset(path) not in seen:
                    seen.add(frozenset(path))
                    out.append(" -> ".join([*path, start]))
                elif nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return out


SCAN = _scan()


@pytest.mark.parametrize("kind", ["upward", "cycle", "nested_route", "long_function"])
def test_layout_rule(kind: str) -> None:
    assert not SCAN[kind], "\n".join(SCAN[kind])


@pytest.mark.parametrize("pkg", ["supernets", "acc_predictor", "early_exit", "robustness", "search", "service"])
def test_package_names_its_public_api(pkg: str) -> None:
    tree = ast.parse((ROOT / pkg / "__init__.py").read_text())
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)]
    assert "__all__" in names, f"{pkg}/__init__.py has no __all__"


def test_the_checker_catches_what_it_claims(tmp_path: Path) -> None:
    """The rules fire on a tree that breaks them (so a clean result means something)."""
    global ROOT
    saved = ROOT
    for pkg in RANK:
        (tmp_path / pkg).mkdir()
    (tmp_path / "supernets" / "a.py").write_text("import search.spec\n")
    (tmp_path / "search" / "b.py").write_text("from supernets import codec\n")
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_SERVICE_FUNCTION_LINES + 1))
    (tmp_path / "service" / "c.py").write_text(
        "def create_app():\n    @app.get('/x')\n    def route():\n        pass\n" + body + "\n")
    try:
        ROOT = tmp_path
        found = _scan()
    finally:
        ROOT = saved
    assert found["upward"] == ["supernets/a.py:1 supernets imports search.spec"]
    assert found["cycle"] and found["nested_route"] and found["long_function"]
