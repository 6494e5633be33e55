"""benchmarks/bench.py keeps working: a smoke run on small inputs. It asserts the table's shape, never a
time (performance lives in the benchmark and README, not in tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_prints_a_table():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--cases",
                           "startup,mse,csv"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| case | tool | median time | peak RSS |")
    cases = [row.split("|")[1].strip() for row in rows[1:]]
    assert cases == ["startup", "startup", "mse", "mse", "csv", "csv"]
    assert "values differ" not in proc.stdout  # losscli and the one-liner printed the same loss


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed is not installed")
def test_bench_quick_dask_cases():
    """The dask cases: the local cluster a run starts, running clusters of 2 and 1 workers (started and stopped
    by the benchmark), the local engine; every tool printed the same digits, and the workers' RSS is reported."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--cases",
                           "dask-mse,dask-ce"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| case | tool | median time | peak RSS | workers' peak RSS |")
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows[1:]]
    assert [c[0] for c in cells] == ["dask-mse"] * 4 + ["dask-ce"] * 4
    tools = [c[1] for c in cells[:4]]
    assert "--engine dask (local cluster" in tools[0] and "(running, 2 workers)" in tools[1]
    assert "(running, 1 worker)" in tools[2] and tools[3].endswith("(local engine)`")
    assert all(c[4].endswith("MiB") for c in cells[:3]) and cells[3][4] == "-"  # workers' RSS, none for local
    assert [c[6] for c in cells[:4]] == ["", "time <= 1.3x (running, 2 workers)", "", ""]
    assert "values differ" not in proc.stdout
    assert "dask-mse: every tool printed" in proc.stdout and "dask-ce: every tool printed" in proc.stdout


def test_bench_refuses_an_unknown_case():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--cases", "msee"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert ("unknown case(s) msee; the cases are startup, mse, ce-10, ce-1000, csv, parquet, remote, "
            "dask-mse, dask-ce") in proc.stderr
