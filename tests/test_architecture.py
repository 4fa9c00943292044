"""The layout's rules, checked on the code's own imports: no import cycles, no Qt under engine/,
and `import engine` stays light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "viewer")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of this project that ``path`` imports, anywhere in the file (lazy imports too)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_walker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_project_imports_itself_back():
    graph = project_graph()
    assert "engine.codec.autoencoder" in graph and "viewer.window.main_window" in graph  # the walk saw the tree
    # A package's __init__ importing its own submodules is how a package offers them, not a cycle.
    graph = {name: {m for m in deps if not m.startswith(name + ".")} for name, deps in graph.items()}
    assert find_cycle(graph) is None


def test_engine_never_imports_qt():
    for path in (ROOT / "engine").rglob("*.py"):
        qt = {m for m in imports_of(path) if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "pyqtgraph")}
        assert not qt, f"{path.relative_to(ROOT)} imports {sorted(qt)}"


def test_importing_the_engine_pulls_no_qt_and_the_cli_no_torch():
    code = ("import sys, engine, engine.api\n"
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    code = ("import sys, engine.cli\n"
            "assert 'torch' not in sys.modules, 'hfd --help would wait for torch'\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_viewer_reaches_the_engine_through_its_public_api_only():
    allowed = {"engine", "engine.api", "engine.errors", "engine.progress"}
    for path in (ROOT / "viewer").rglob("*.py"):
        # a name imported from a module is listed as module.name: its module must be allowed
        used = {m for m in imports_of(path) if m.split(".")[0] == "engine"}
        outside = {m for m in used if m not in allowed and m.rpartition(".")[0] not in allowed}
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"
