"""Dependencies point one way (ARCHITECTURE.md): no context imports a higher layer, and
no contexts import each other in a circle.

The import graph of `src/accord` is read with `ast` (imports at module level and inside
functions alike) and collapsed to contexts, the first package under `accord`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "accord"

LAYERS: dict[str, int] = {
    **dict.fromkeys(("core", "store", "lake", "engine"), 0),
    **dict.fromkeys(("accounts", "consent", "collect"), 1),
    **dict.fromkeys(("identity", "profiles", "reach"), 2),
    **dict.fromkeys(("audiences", "predict", "recommend", "analytics", "experiments"), 3),
    **dict.fromkeys(("messaging", "leads", "journeys"), 4),
    **dict.fromkeys(("process", "rights"), 5),
    **dict.fromkeys(("web", "demo", "cli"), 6),
}

# Wiring modules put contexts together for HTTP and the command line, and may reach any
# context: a context's routes (`api.py`, `pages.py`, or a package of them such as
# `accounts/pages/`) and commands (`cli.py`), the `accord` command itself (`cli.py`,
# `cli_*.py`), and the top layer (`web/`, `demo/`).
WIRING_NAMES = ("api.py", "pages.py", "cli.py")
WIRING_DIRS = tuple(name.removesuffix(".py") for name in WIRING_NAMES)
WIRING_PACKAGES = ("web", "demo")
# Alembic needs one metadata holding every table: `store/schema.py` imports each
# context's models to build it, and the migrations read it. That is a registry of
# table definitions, not a use of the contexts' logic, so it does not count.
METADATA_REGISTRY = ("store/schema.py", "store/migrations/")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    where: str  # file:line


def _is_wiring(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return (
        name in WIRING_NAMES
        or any(part in WIRING_DIRS for part in relative.split("/")[1:-1])
        or name.startswith("cli_")
        or relative.split("/", 1)[0] in WIRING_PACKAGES
        or relative.startswith(METADATA_REGISTRY)
    )


def _context_of(relative: str) -> str | None:
    """`profiles/service.py` is in `profiles`; `cli.py` is `cli`; `__init__.py` is none."""
    first = relative.split("/", 1)[0]
    if first == "__init__.py":
        return None
    return first.removesuffix(".py")


def _module_of(relative: str) -> list[str]:
    parts = ["accord", *relative.removesuffix(".py").split("/")]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _targets(node: ast.Import | ast.ImportFrom, module: list[str], package: bool) -> list[str]:
    """The `accord` modules an import names, as dotted names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module if package else module[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    if prefix == "accord":
        # `from accord import profiles` names the context itself.
        return [f"accord.{alias.name}" for alias in node.names]
    return [prefix]


def import_graph(root: Path = SRC) -> list[Import]:
    """Every import of one context by another, outside the wiring modules."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        source = _context_of(relative)
        if source is None or _is_wiring(relative):
            continue
        module = _module_of(relative)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, module, path.name == "__init__.py"):
                parts = target.split(".")
                if parts[0] != "accord" or len(parts) < 2 or parts[1] == source:
                    continue
                where = f"src/accord/{relative}:{node.lineno}"
                found.append(Import(source=source, target=parts[1], where=where))
    return found


def _cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one context (Tarjan)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        edges[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
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
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if node not in index:
            visit(node)
    return found


def _lines(imports: list[Import]) -> str:
    return "\n".join(f"  {i.where}: {i.source} imports {i.target}" for i in imports)


def test_every_context_has_a_layer() -> None:
    contexts = {
        _context_of(p.relative_to(SRC).as_posix())
        for p in SRC.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    } - {None}
    unplaced = sorted(
        c for c in contexts if c not in LAYERS and not (c is not None and c.startswith("cli_"))
    )
    assert not unplaced, (
        f"contexts with no layer (add them to LAYERS and ARCHITECTURE.md): {unplaced}"
    )


def test_no_context_imports_a_higher_layer() -> None:
    upward = [
        i
        for i in import_graph()
        if i.target in LAYERS and LAYERS[i.target] > LAYERS.get(i.source, len(LAYERS))
    ]
    assert not upward, (
        "a context imports a higher layer; invert it (the higher one registers a step, "
        "a job or a handler):\n" + _lines(upward)
    )


def test_no_import_cycles_between_contexts() -> None:
    imports = import_graph()
    cycles = _cycles(imports)
    report = []
    for component in cycles:
        inside = [i for i in imports if i.source in component and i.target in component]
        report.append(f"cycle among {', '.join(component)}:\n{_lines(inside)}")
    assert not cycles, "contexts import each other in a circle:\n" + "\n".join(report)


def test_the_graph_sees_imports_inside_functions_and_skips_wiring(tmp_path: Path) -> None:
    root = tmp_path / "accord"
    for name, text in {
        "__init__.py": "",
        "core/__init__.py": "",
        "low/__init__.py": "",
        "low/service.py": "def f():\n    from accord.high import service\n",
        "low/api.py": "from accord.high import service\n",
        "low/pages/__init__.py": "",
        "low/pages/area.py": "from accord.high import service\n",
        "high/__init__.py": "",
        "high/service.py": "from accord import low\nfrom ..core import clock\n",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = {(i.source, i.target, i.where.rsplit(":", 1)[1]) for i in import_graph(root)}
    assert found == {("low", "high", "2"), ("high", "low", "1"), ("high", "core", "2")}
    assert _cycles(import_graph(root)) == [["high", "low"]]
