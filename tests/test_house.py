"""The shape of the house (CONTRIBUTING.md) stays true: data flows one way, functions stay short, and one
module writes files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "losscli"
MODULES = sorted(PACKAGE.rglob("*.py"))
WRITER = PACKAGE / "edge" / "writer.py"


def test_the_package_has_no_import_circle_and_no_private_import():
    """Imports inside functions count; the tool ships with the project's shared tools."""
    tool = ROOT.parent / "shared" / "tools" / "import-circles"
    proc = subprocess.run([sys.executable, str(tool), "losscli"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("no import circles, no private imports"), proc.stdout


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
