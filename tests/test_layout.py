"""Guards: curator

The house's layout, checked (issue 24): every test file names the modules it guards on its
docstring's first line (``Guards: curator.x, curator.y``), every module named exists, and every
curator module is guarded by at least one test file; no two curator modules import each other, at
module level or through imports inside functions (``python tests/test_layout.py --cycles`` lists
them); and every import of a curator module inside a function says why on its line."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CURATOR = REPO_ROOT / "curator"
TESTS = REPO_ROOT / "tests"
# "Guards:" and names on the line, continued on indented lines
GUARDS = re.compile(r"^Guards:[ \t]*(?P<names>[^\n]*(?:\n[ \t]+[^\n]*)*)")


def curator_modules(*roots: Path) -> dict[str, Path]:
    """Every module and package of curator (and of ``roots``) by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(p for root in (CURATOR, *roots) for p in root.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def guarded_by(test_file: Path) -> list[str] | None:
    """The module names on the ``Guards:`` line(s) of a test file's docstring, or None."""
    docstring = ast.get_docstring(ast.parse(test_file.read_text(encoding="utf-8")), clean=False)
    match = GUARDS.match(docstring or "")
    if match is None:
        return None
    return [name for name in re.split(r"[\s,]+", match["names"]) if name]


def test_every_test_file_names_the_modules_it_guards() -> None:
    modules = curator_modules(REPO_ROOT / "perf")  # the performance harness has tests too
    missing, unknown = [], []
    for test_file in sorted(TESTS.glob("test_*.py")):
        names = guarded_by(test_file)
        if not names:
            missing.append(test_file.name)
            continue
        unknown += [f"{test_file.name}: {name}" for name in names if name not in modules]
    assert missing == [], (
        "start the docstring of each test file with 'Guards: curator.module, ...' "
        f"(the modules it tests): {missing}"
    )
    assert unknown == [], f"no such curator module: {unknown}"


def test_every_curator_module_is_guarded_by_a_test_file() -> None:
    named: set[str] = set()
    for test_file in TESTS.glob("test_*.py"):
        named.update(guarded_by(test_file) or [])
    unguarded = [
        name
        for name, path in curator_modules().items()
        if path.name not in ("__init__.py", "__main__.py") and name not in named
    ]
    assert unguarded == [], (
        "name each module in the Guards: line of the test file that tests it "
        f"(or write one): {unguarded}"
    )


def import_graph(function_level: bool, packages: bool = True) -> dict[str, set[str]]:
    """module -> the curator modules it imports (at module level; with ``function_level`` also
    inside functions). ``if TYPE_CHECKING:`` imports do not count; ``from pkg import submodule``
    depends on the submodule, not on the package's ``__init__``. With ``packages``, a module that
    imports ``curator.pkg.mod`` from outside ``curator.pkg`` also depends on ``curator.pkg``'s
    ``__init__`` (Python runs it first: importing ``curator.compile.cost`` loads all that
    ``curator/compile/__init__.py`` imports)."""
    modules = curator_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def visit(name: str, node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and (top or function_level):
                graph[name].update(_targets(name, child, modules))
            visit(name, child, inner)

    for name, path in modules.items():
        visit(name, ast.parse(path.read_text(encoding="utf-8")), True)
        if packages:
            graph[name] |= {p for t in graph[name] for p in _packages_run(name, t, modules)}
        graph[name].discard(name)
    return graph


def _packages_run(name: str, target: str, modules: dict[str, Path]) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` runs, less those ``name`` is in."""
    parts = target.split(".")
    outer = (".".join(parts[:i]) for i in range(2, len(parts)))
    return {p for p in outer if p in modules and not (name == p or name.startswith(p + "."))}


def _targets(name: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:
        package = name.split(".") if modules[name].name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return subs | ({base} if base in modules and len(subs) < len(node.names) else set())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in sorted(graph):
        if vertex not in index:
            strong(vertex)
    return found


def test_no_two_modules_import_each_other_at_module_level() -> None:
    assert cycles(import_graph(function_level=False)) == []


def test_no_cycle_hides_behind_a_function_level_import() -> None:
    """Two modules that need each other are one idea in two places, even when an import inside a
    function keeps Python from failing on it: move the shared piece to the module that owns it (or
    a small types module), or pass the function in. Package ``__init__``s are left out here: a
    function runs after every package has loaded, and the one package-level loop left (hub and
    compile, through curator.hub.feasibility) is said on its import lines."""
    assert cycles(import_graph(function_level=True, packages=False)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_importing_a_submodule_from_outside_its_package_runs_the_package() -> None:
    modules = curator_modules()
    assert _packages_run("curator.hub.feasibility", "curator.compile.cost", modules) == {
        "curator.compile"
    }
    assert _packages_run("curator.compile.api", "curator.compile.cost", modules) == set()
    assert _packages_run("curator.cli.main", "curator.errors", modules) == set()


if __name__ == "__main__":  # python tests/test_layout.py --cycles
    for level, packages in ((False, True), (True, False), (True, True)):
        found = cycles(import_graph(function_level=level, packages=packages))
        print(
            f"{'with' if level else 'without'} function-level imports, package __init__s "
            f"{'counted' if packages else 'not counted'}: {len(found)} cycle(s)"
        )
        for component in found:
            print("  " + " <-> ".join(component))
    sys.exit(0)


# Every import of curator's own modules inside a function says why on its line: the start-up it
# keeps light (``# start-up: kept off --help``: curator --help loads this module, not that one;
# ``# start-up: numpy``), the SDK it loads, or the cycle a module-level import would make
# (``# cycle: ...``). Anything else goes at module level.
REASON = re.compile(r"#\s*(start-up|cycle|SDK):\s*\S")


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source line) of each import of a curator module inside a function of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            names = (
                [inner.module or ""]
                if isinstance(inner, ast.ImportFrom)
                else [a.name for a in inner.names]
                if isinstance(inner, ast.Import)
                else []
            )
            if any(name == "curator" or name.startswith("curator.") for name in names):
                found.append((inner.lineno, lines[inner.lineno - 1]))
    return found


def test_function_level_imports_of_curator_say_why() -> None:
    unexplained = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {text.strip()}"
        for path in sorted(CURATOR.rglob("*.py"))
        for line, text in function_level_imports(path)
        if not REASON.search(text)
    ]
    assert unexplained == [], (
        "import at module level, or say on the line why not (# start-up: ..., # SDK: ..., "
        "# cycle: ...): "
        f"{unexplained}"
    )
