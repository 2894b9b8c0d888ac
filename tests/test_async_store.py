"""No blocking store work inside `async def` (docs/development.md, "Store work from HTTP").

An `async def` runs on the event loop: one slow statement there stalls every request. The
source of `src/accord` is read with `ast`; a finding is a call, directly in an `async def`
body (a nested `def` or `lambda` runs in the thread pool, so it does not count), of

- `.read()`, `.write()`, `.write_soon()`, `.begin()` or `.connect()` on something named like a
  store or an engine (`store`, `state.store`, `self._store`, `engine`, `reader_engine`), or
- a sync function of the project that does store work: a module-level `def` whose first
  parameter is annotated `Connection` or `Store`, or whose body makes one of the calls
  above or calls such a function (resolved by name through the module's own definitions
  and its `accord` imports).

A call under `await` is a coroutine (or an awaitable method) and never counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "accord"

STORE_METHODS = frozenset({"read", "write", "write_soon", "begin", "connect"})
STORE_TYPES = frozenset({"Connection", "Store"})
Nested = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef


@dataclass(frozen=True)
class Finding:
    where: str  # module:line
    function: str  # the async def
    call: str

    def __str__(self) -> str:
        return f"{self.where}: {self.call} in async def {self.function}"


def _module_name(path: Path, root: Path) -> str:
    parts = ["accord", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _direct_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of a function body, without descending into nested functions, lambdas
    and classes (their bodies run elsewhere, if at all)."""
    stack: list[ast.AST] = [n for n in reversed(body) if not isinstance(n, Nested)]
    while stack:
        node = stack.pop()
        yield node
        for child in reversed(list(ast.iter_child_nodes(node))):
            if not isinstance(child, Nested):
                stack.append(child)


def _awaited(body: list[ast.stmt]) -> set[int]:
    return {id(n.value) for n in _direct_nodes(body) if isinstance(n, ast.Await)}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_store_call(call: ast.Call) -> bool:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in STORE_METHODS:
        return False
    receiver = _dotted(func.value)
    if receiver is None:
        return False
    last = receiver.rsplit(".", 1)[-1].lstrip("_").lower()
    return last.endswith(("store", "engine"))


def _first_parameter_is_store(node: ast.FunctionDef) -> bool:
    params = [*node.args.posonlyargs, *node.args.args]
    if params and params[0].arg in ("self", "cls"):
        return False
    if not params or params[0].annotation is None:
        return False
    annotation = params[0].annotation
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        name = annotation.value.rsplit(".", 1)[-1]
    else:
        name = (_dotted(annotation) or "").rsplit(".", 1)[-1]
    return name in STORE_TYPES


class Module:
    """One module: its sync top-level functions and the `accord` names it imports."""

    def __init__(self, name: str, source: str, filename: str) -> None:
        self.name = name
        self.filename = filename
        self.tree = ast.parse(source, filename=filename)
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}
        # Local name -> fully qualified name (a module or a function in one).
        self.imports: dict[str, str] = {}
        package = name.split(".")
        is_package = filename.endswith("__init__.py")
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:  # `import accord.x.y` binds `accord`
                        top = alias.name.split(".", 1)[0]
                        self.imports[top] = top
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package if is_package else package[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{prefix}.{alias.name}"

    def resolve(self, func: ast.expr) -> str | None:
        """The qualified name a call's function refers to, when it is a project function."""
        dotted = _dotted(func)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if not rest and head in self.functions:
            return f"{self.name}.{head}"
        if head in self.imports:
            return f"{self.imports[head]}.{rest}" if rest else self.imports[head]
        return None


def find_blocking(sources: Mapping[str, tuple[str, str]]) -> list[Finding]:
    """Blocking calls in async defs, for modules given as name -> (source, filename)."""
    modules = [Module(name, source, filename) for name, (source, filename) in sources.items()]
    blocking: set[str] = set()
    calls: dict[str, list[str]] = {}
    for module in modules:
        for fname, node in module.functions.items():
            qualified = f"{module.name}.{fname}"
            direct = list(_direct_nodes(node.body))
            if _first_parameter_is_store(node) or any(
                isinstance(n, ast.Call) and _is_store_call(n) for n in direct
            ):
                blocking.add(qualified)
            calls[qualified] = [
                target
                for n in direct
                if isinstance(n, ast.Call) and (target := module.resolve(n.func)) is not None
            ]
    # A sync function calling one that does store work does store work too.
    changed = True
    while changed:
        changed = False
        for qualified, targets in calls.items():
            if qualified not in blocking and any(t in blocking for t in targets):
                blocking.add(qualified)
                changed = True

    found = []
    for module in modules:
        for handler in ast.walk(module.tree):
            if not isinstance(handler, ast.AsyncFunctionDef):
                continue
            awaited = _awaited(handler.body)
            for inner in _direct_nodes(handler.body):
                if not isinstance(inner, ast.Call) or id(inner) in awaited:
                    continue
                target = module.resolve(inner.func)
                if _is_store_call(inner) or target in blocking:
                    found.append(
                        Finding(
                            where=f"{module.filename}:{inner.lineno}",
                            function=handler.name,
                            call=ast.unparse(inner.func) + "()",
                        )
                    )
    return sorted(found, key=lambda f: (f.where.split(":")[0], int(f.where.split(":")[1])))


def _project(root: Path = SRC) -> dict[str, tuple[str, str]]:
    return {
        _module_name(path, root): (
            path.read_text(encoding="utf-8"),
            f"src/accord/{path.relative_to(root).as_posix()}",
        )
        for path in sorted(root.rglob("*.py"))
    }


def test_no_blocking_store_work_in_async_def() -> None:
    found = find_blocking(_project())
    assert not found, (
        "blocking store work on the event loop: make the handler a plain `def`, or "
        "`await store_work.read/write(state, work)` (docs/development.md):\n"
        + "\n".join(f"  {f}" for f in found)
    )


THREAD_POOL = ("run_in_threadpool", "to_thread")


def test_handlers_reach_the_thread_pool_through_store_work() -> None:
    """Routes (`api.py`, `pages.py`) have one way to the thread pool, `web.store_work`, so
    the rule above has one shape to look for."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name not in ("api.py", "pages.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n.endswith(THREAD_POOL) for n in names):
                found.append(f"src/accord/{path.relative_to(SRC).as_posix()}:{node.lineno}")
    assert not found, "use accord.web.store_work.read/write/run instead:\n  " + "\n  ".join(found)


# The checker itself, on small modules ---------------------------------------------------

SERVICE = """
from sqlalchemy import Connection
from accord.store.db import Store

def lookup(conn: Connection, *, key: str) -> str:
    return key

def load(store: Store) -> None:
    pass

def opens(state) -> None:
    with state.store.read() as conn:
        pass

def indirect(x) -> None:
    lookup(x, key="a")

def pure(x: int) -> int:
    return x

async def coroutine(store: Store) -> None:
    pass
"""


def _check(handler: str) -> list[str]:
    sources = {
        "accord.demo.service": (SERVICE, "demo/service.py"),
        "accord.demo.api": (
            "from accord.demo import service\nfrom accord.demo.service import lookup\n" + handler,
            "demo/api.py",
        ),
    }
    return [f.call for f in find_blocking(sources)]


def test_the_checker_finds_a_store_transaction_in_async_def() -> None:
    assert _check("async def h(state):\n    with state.store.write() as conn:\n        pass\n") == [
        "state.store.write()"
    ]
    assert _check("async def h(self):\n    self._engine.connect()\n") == ["self._engine.connect()"]


def test_the_checker_finds_a_service_doing_store_work() -> None:
    handler = (
        "async def h(conn, state):\n"
        "    service.lookup(conn, key='k')\n"
        "    lookup(conn, key='k')\n"
        "    service.load(state.store)\n"
        "    service.opens(state)\n"
        "    service.indirect(1)\n"
    )
    assert _check(handler) == [
        "service.lookup()",
        "lookup()",
        "service.load()",
        "service.opens()",
        "service.indirect()",
    ]


def test_the_checker_leaves_thread_pool_work_and_coroutines_alone() -> None:
    handler = (
        "async def h(state, request):\n"
        "    def work(conn):\n"
        "        return service.lookup(conn, key='k')\n"
        "    await store_work.read(state, work)\n"
        "    await store_work.write(state, lambda conn: lookup(conn, key='k'))\n"
        "    await service.coroutine(state.store)\n"
        "    await request.body()\n"
        "    await state.async_engine.connect()\n"
        "    request.form_data.read()\n"
        "    service.pure(1)\n"
        "    with open('f') as f:\n"
        "        f.read()\n"
        "def sync_handler(state):\n"
        "    with state.store.write() as conn:\n"
        "        service.lookup(conn, key='k')\n"
    )
    assert _check(handler) == []
