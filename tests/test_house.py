"""The shape of the house (CONTRIBUTING.md) stays true: data flows one way, functions stay short, and one
module writes files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "losscli"
MODULES = sorted(PACKAGE.rglob("*.py"))
WRITER = PACKAGE / "edge" / "writer.py"


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module a module imports, at top level or inside functions (a lazy import is still an edge)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return found


def test_the_package_has_no_import_circle_and_no_private_import():
    """Data flows one way: no circle among losscli's modules (the package's own __init__ left out: re-exporting
    from it is fine), counting imports inside functions; and no private module of a dependency."""
    names = {_module_name(p): p for p in MODULES}
    graph = {name: {t for t in _imports(path) if t in names and t not in (name, "losscli")}
             for name, path in names.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target] if target in path else [name, target]
            if target not in state and (circle := visit(target, path + [target])):
                return circle
        state[name] = 2
        return None

    circles = [c for name in sorted(graph) if name not in state and (c := visit(name, [name]))]
    assert circles == []
    private = sorted({f"{name} imports {t}" for name, path in names.items() for t in _imports(path)
                      if not t.startswith("losscli") and any(part.startswith("_") for part in t.split(".")[1:])})
    assert private == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_60_lines(path):
    tree = ast.parse(path.read_text())
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert long == []


WRITING_CALLS = {"os.replace", "os.rename", "os.pwrite", "os.write", "os.fdopen", "np.save", "np.savez",
                 "np.savez_compressed", "np.savetxt", "format.open_memmap"}
WRITING_METHODS = {"tofile", "write_text", "write_bytes"}


def _writes(tree: ast.AST) -> list[str]:
    """Calls that write files: open() in a writing mode, numpy's savers, os's writes and renames."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value.attr if isinstance(func.value, ast.Attribute) else getattr(func.value, "id", "")
            if f"{owner}.{func.attr}" in WRITING_CALLS or func.attr in WRITING_METHODS:
                found.append(f"{owner}.{func.attr} at line {node.lineno}")
        elif getattr(func, "id", "") == "open":
            modes = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
            if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                found.append(f"open for writing at line {node.lineno}")
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if p != WRITER], ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_writer_writes_files(path):
    assert _writes(ast.parse(path.read_text())) == []


def test_the_writer_is_found_writing():
    assert _writes(ast.parse(WRITER.read_text()))  # the check above would notice a write
