"""Start-up: what a loss command imports and builds. Not timed here: benchmarks/bench.py times start-up
against `python -c "import numpy"`; these tests keep the heavy imports out for good."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from losscli.edge.cli import app
from losscli.losses import CATALOG

ROOT = Path(__file__).resolve().parent.parent

# What a loss on .npy files with the numpy backend must never import: torch (the torch backend only),
# data-frame libraries, dask (the dask engine only), matplotlib and PIL (--plot only), and pydantic (typer 0.29
# imports it to parse options; pyproject keeps typer < 0.29).
HEAVY = ("torch", "pandas", "pyarrow", "polars", "scipy", "dask", "distributed", "matplotlib", "PIL", "pydantic",
         "typer._adapters")


def imported(*args: str, cwd: Path) -> set[str]:
    """The modules that ``python -m losscli ARGS`` imports, as ``python -X importtime`` lists them."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "losscli", *args], cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {cells[2].strip() for cells in lines if len(cells) == 3}


@pytest.mark.parametrize("fmt", ["table", "plain"])
def test_a_loss_on_npy_files_imports_nothing_heavy(tmp_path, fmt):
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([1.0, 4.0], dtype=np.float32))
    modules = imported("mse", "a.npy", "b.npy", "--format", fmt, cwd=tmp_path)
    assert {"losscli.edge.cli", "numpy"} <= modules  # the listing works
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == []


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
