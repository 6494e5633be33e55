"""benchmarks/bench.py keeps working: a smoke run on small inputs. It asserts the table's shape, never a
time (performance lives in the benchmark and README, not in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_bench_refuses_an_unknown_case():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--cases", "msee"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown case(s) msee; the cases are startup, mse, ce-10, ce-1000, csv, parquet, remote" in proc.stderr
