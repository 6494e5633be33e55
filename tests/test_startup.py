"""Start-up: what a loss command imports and builds. Not timed here: benchmarks/bench.py times start-up
against `python -c "import numpy"`; these tests keep the heavy imports out for good."""

from __future__ import annotations

import importlib
import os
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from losscli.edge import console
from losscli.edge.cli import app
from losscli.losses import CATALOG, FAMILIES

ROOT = Path(__file__).resolve().parent.parent

# What a loss on .npy files with the numpy backend must never import: torch (the torch backend only),
# data-frame libraries, dask (the dask engine only), matplotlib and PIL (--plot only), and pydantic (typer 0.29
# imports it to parse options; pyproject keeps typer < 0.29).
HEAVY = ("torch", "pandas", "pyarrow", "polars", "scipy", "dask", "distributed", "matplotlib", "PIL", "pydantic",
         "typer._adapters")

# Runs `python -m losscli ARGS` and, as the process ends, writes the names of the commands it built and the modules
# it imported (every import counts, importlib's too).
PROBE = """\
import atexit, runpy, sys
from typer.core import TyperCommand, TyperGroup

built = []
for cls in (TyperCommand, TyperGroup):
    def record(self, *args, init=cls.__init__, **kwargs):
        init(self, *args, **kwargs)
        built.append(self.name)
    cls.__init__ = record

def report():
    with open("probe.txt", "w") as out:
        out.write(" ".join(built) + "\\n" + "\\n".join(sys.modules))

atexit.register(report)
sys.argv = ["losscli", *sys.argv[1:]]
runpy.run_module("losscli", run_name="__main__", alter_sys=True)
"""


def probe(*args: str, cwd: Path, exit_code: int = 0) -> tuple[set[str], list[str]]:
    """The modules that ``python -m losscli ARGS`` imports, and the names of the commands it builds."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_code, proc.stderr[-2000:]
    built, _, modules = (cwd / "probe.txt").read_text().partition("\n")
    return set(modules.splitlines()), built.split()


def imported(*args: str, cwd: Path) -> set[str]:
    """The modules that ``python -m losscli ARGS`` imports."""
    return probe(*args, cwd=cwd)[0]


def drawing(modules: set[str]) -> list[str]:
    """The modules loaded only to draw: rich, and the table format's renderer."""
    return sorted(m for m in modules if m.split(".")[0] == "rich" or m == "losscli.edge.render_table")


def families(modules: set[str]) -> list[str]:
    """The family modules of the catalog loaded."""
    return sorted(m.rpartition(".")[2] for m in modules if m.startswith("losscli.losses.") and not m.endswith(".base"))


@pytest.mark.parametrize("fmt", ["table", "plain", "json", "csv", "metrics"])
def test_a_loss_on_npy_files_imports_and_builds_what_it_runs(tmp_path, fmt):
    """Nothing heavy; the group and the loss's command alone (not check, compare, list or another loss), its
    family's module alone; rich only to draw a table."""
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([1.0, 4.0], dtype=np.float32))
    modules, built = probe("mse", "a.npy", "b.npy", "--format", fmt, cwd=tmp_path)
    assert {"losscli.edge.cli", "numpy"} <= modules  # the listing works
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []
    assert built == ["losscli", "mse"]
    assert families(modules) == ["regression"]
    assert bool(drawing(modules)) is (fmt == "table")  # the check sees imports


def test_errors_and_help_texts_that_need_escaping_load_no_rich(tmp_path):
    """One-line errors (a bad file, a usage error) are written without rich; so is a run of a loss whose help text
    has markup to escape (cross-entropy's ``w[t]``: its help is written only when shown)."""
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "logits.npy", np.array([[1.0, 2.0], [0.5, 0.0]], dtype=np.float32))
    np.save(tmp_path / "labels.npy", np.array([1, 0]))
    for args in (("mse", "a.npy", "missing.npy", "-f", "plain"), ("mse", "a.npy", "a.npy", "--bogus"),
                 ("mse", "a.npy")):
        modules, built = probe(*args, cwd=tmp_path, exit_code=2)
        assert drawing(modules) == [] and built == ["losscli", "mse"], args
    modules, built = probe("cross-entropy", "logits.npy", "labels.npy", "-f", "json", cwd=tmp_path)
    assert drawing(modules) == [] and built == ["losscli", "cross-entropy"]
    assert families(modules) == ["classification"]
    assert drawing(probe("cross-entropy", "--help", cwd=tmp_path)[0]) != []  # the check sees imports


def test_check_and_compare_print_json_without_rich(tmp_path):
    """`losscli check -f json` and `losscli compare -f json` build their own command alone and load no rich."""
    for name, values in (("a", [1.0, 2.0]), ("b", [1.0, 3.0]), ("t", [1.0, 4.0])):
        np.save(tmp_path / f"{name}.npy", np.array(values, dtype=np.float32))
    modules, built = probe("compare", "mse", "a.npy", "b.npy", "t.npy", "--resamples", "100", "-f", "json",
                           cwd=tmp_path)
    assert drawing(modules) == [] and built == ["losscli", "compare", "mse"]
    modules, built = probe("check", str(ROOT / "samples" / "gates.toml"), "-f", "json", cwd=tmp_path)
    assert drawing(modules) == [] and built == ["losscli", "check"]


def test_the_catalog_index_names_each_familys_losses():
    """FAMILIES, which names the losses before their modules are imported, is each family module's LOSSES in
    order, and every family module is in it."""
    found = {path.stem for path in (ROOT / "losscli" / "losses").glob("*.py")} - {"__init__", "base"}
    assert set(FAMILIES) == found
    for module, names in FAMILIES.items():
        assert tuple(spec.name for spec in importlib.import_module(f"losscli.losses.{module}").LOSSES) == names
    assert [spec.name for spec in CATALOG.values()] == list(CATALOG)
    assert "mse" in CATALOG and "mse-loss" not in CATALOG
    with pytest.raises(KeyError):
        CATALOG["mse-loss"]


LINES = ["input (a.npy): expected a .npy file, but there is no such file", "[bold]not markup[/bold] w[t] \\[x] [/]",
         "C:\\data\\", ":smile: stays", "é 漢字 " + "wide " * 40, "trailing space ", "", "tab\there",
         "two\nlines", "bell\x07"]


@pytest.mark.parametrize("line", LINES)
def test_a_line_on_stderr_is_what_rich_prints(line, capsys):
    """Without a terminal, say() writes its line itself: what rich writes (a line with a tab or a control
    character, which rich changes, still goes through rich)."""
    from rich.console import Console
    from rich.text import Text

    expected = io.StringIO()
    Console(file=expected, highlight=False, soft_wrap=True, emoji=False).print(Text.assemble(("error:", "red"),
                                                                                            f" {line}"))
    console.say("error", line)
    assert capsys.readouterr().err == expected.getvalue()


@pytest.mark.parametrize("text", ["plain text", "w[t]", "[0, 1]", "[[check]]", "\\[b]", "a\\", "a\\\\", ""])
def test_escape_is_richs(text):
    from rich.markup import escape

    assert console.escape(text) == escape(text)


def test_a_progress_bar_makes_its_console_when_it_draws():
    """Given a function that makes the console, the bar calls it only once its delay has passed, and draws nothing
    where rich sees no terminal."""
    from rich.console import Console

    from losscli.edge.progress import ProgressBar

    made: list[Console] = []

    def make() -> Console:
        made.append(Console(file=io.StringIO(), force_terminal=False))
        return made[-1]

    ProgressBar(make, "mse", delay=3600)(1, 2)
    assert made == []
    bar = ProgressBar(make, "mse", delay=0)
    bar(1, 2)
    bar(2, 2)
    bar.close()
    assert len(made) == 1 and bar.bar is None and made[0].file.getvalue() == ""


# The statistics load only when asked for: --ci loads the bootstrap, `losscli compare` the comparison.
STATISTICS = ("losscli.engine.bootstrap", "losscli.compare", "losscli.edge.comparison")


def test_a_plain_loss_command_loads_no_statistics(tmp_path):
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([1.0, 4.0], dtype=np.float32))
    plain = imported("mse", "a.npy", "b.npy", cwd=tmp_path)
    assert "losscli.api" in plain and [m for m in STATISTICS if m in plain] == []
    with_ci = imported("mse", "a.npy", "b.npy", "--ci", "0.9", "--resamples", "100", cwd=tmp_path)
    assert [m for m in STATISTICS if m in with_ci] == ["losscli.engine.bootstrap"]  # the check sees imports


def test_a_plain_loss_command_loads_no_groups(tmp_path):
    """losscli.engine.groups loads with --by or --by-class only (not for --ci either)."""
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([1.0, 4.0], dtype=np.float32))
    np.save(tmp_path / "by.npy", np.array([3, 5]))
    plain = imported("mse", "a.npy", "b.npy", cwd=tmp_path)
    with_ci = imported("mse", "a.npy", "b.npy", "--ci", "0.9", "--resamples", "100", cwd=tmp_path)
    assert "losscli.api" in plain and "losscli.engine.groups" not in plain | with_ci
    assert "losscli.engine.groups" in imported("mse", "a.npy", "b.npy", "--by", "by.npy", cwd=tmp_path)
    np.save(tmp_path / "logits.npy", np.zeros((2, 6), dtype=np.float32))
    by_class = imported("cross-entropy", "logits.npy", "by.npy", "--by-class", cwd=tmp_path)
    assert "losscli.engine.groups" in by_class  # the check sees imports


def test_matplotlib_loads_only_for_a_plot(tmp_path):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([1.0, 4.0], dtype=np.float32))
    plain = imported("mse", "a.npy", "b.npy", "--hist", "--per-sample", cwd=tmp_path)
    assert [m for m in plain if m.split(".")[0] == "matplotlib" or m == "losscli.edge.plots"] == []
    plotted = imported("mse", "a.npy", "b.npy", "--plot", "p.svg", cwd=tmp_path)
    assert {"matplotlib", "losscli.edge.plots"} <= plotted  # the check sees imports
    (tmp_path / "gates.toml").write_text('[[check]]\nname = "a"\nloss = "mse"\ninput = "a.npy"\ntarget = "b.npy"\n'
                                         "max = 10\n")
    assert [m for m in imported("check", "gates.toml", cwd=tmp_path) if m.split(".")[0] == "matplotlib"] == []


def test_compare_imports_nothing_heavy(tmp_path):
    for name, values in (("a", [1.0, 2.0]), ("b", [1.0, 3.0]), ("t", [1.0, 4.0])):
        np.save(tmp_path / f"{name}.npy", np.array(values, dtype=np.float32))
    modules = imported("compare", "mse", "a.npy", "b.npy", "t.npy", "--resamples", "100", cwd=tmp_path)
    assert set(STATISTICS) <= modules
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []


def test_import_losscli_alone_loads_no_api():
    code = ("import sys, losscli\n"
            "assert 'losscli.api' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
            "assert losscli.compute('mse', [1.0, 2.0], [1.0, 4.0]).item() == 2.0\n"
            "assert 'losscli.api' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_core_imports_no_edge_and_no_torch():
    """compute() (arrays and paths, views, a gradient) and check() run without rich, typer, click, torch or dask."""
    code = ("import sys, losscli\n"
            "r = losscli.compute('cross-entropy', 'samples/classification/logits.npy',\n"
            "                    'samples/classification/labels.csv',\n"
            "                    outputs=losscli.Outputs(grad=True, per_sample=True, top=2, hist=True))\n"
            "assert 'losscli.engine.bootstrap' not in sys.modules and 'losscli.compare' not in sys.modules\n"
            "assert 'losscli.engine.groups' not in sys.modules\n"
            "assert losscli.check('samples/gates.toml').exit_code == 0  # its statistics load the bootstrap\n"
            "loaded = sorted(m for m in sys.modules\n"
            "                if m.split('.')[0] in ('rich', 'typer', 'click', 'torch', 'dask', 'distributed'))\n"
            "assert loaded == [], loaded\n"
            "assert not any(m.startswith('losscli.edge') for m in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unknown_attribute_of_the_package():
    import losscli

    with pytest.raises(AttributeError, match="has no attribute 'computee'"):
        losscli.computee  # noqa: B018


# The loss commands are built when first looked up; every name is still listed and suggested.


def test_help_lists_every_loss():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    missing = [name for name in CATALOG if f" {name} " not in result.stdout]
    assert missing == []


def test_a_mistyped_loss_is_suggested():
    result = CliRunner().invoke(app, ["cross-entropyy", "a.npy", "b.npy"])
    assert result.exit_code == 2
    assert "No such command 'cross-entropyy'. Did you mean 'cross-entropy'" in result.stderr


# Runs the console script's entry and, as the process ends, writes the thread count of numpy's OpenBLAS and the
# variable that sets it.
BLAS_PROBE = """\
import atexit, os, sys
from losscli import blas

def report():
    with open("blas.txt", "w") as out:
        out.write(f"{[lib.get() for lib in blas._loaded()]} {os.environ.get('OPENBLAS_NUM_THREADS')}")

atexit.register(report)
sys.argv = ["losscli", "mse", "a.npy", "a.npy", "-f", "plain"]
from losscli.edge.main import entry
entry()
"""


@pytest.mark.parametrize("users", [None, "2"])
def test_the_console_script_starts_no_blas_threads_unless_asked(tmp_path, users):
    """numpy loads with OpenBLAS on one thread (its threads cost start-up and losscli never uses them); the
    environment is put back for the processes losscli starts, and a user's own setting wins."""
    np.save(tmp_path / "a.npy", np.arange(4.0))
    env = {"PYTHONPATH": str(ROOT), "PATH": "", **({"OPENBLAS_NUM_THREADS": users} if users else {})}
    proc = subprocess.run([sys.executable, "-c", BLAS_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    threads, variable = (tmp_path / "blas.txt").read_text().split(" ")
    assert variable == str(users)
    if users is None:
        assert threads in ("[1]", "[]")  # [] where numpy's BLAS is not OpenBLAS
    elif threads != "[]":
        assert threads == f"[{min(int(users), os.cpu_count() or 1)}]"
