"""benchmarks/bench.py keeps working: smoke runs on tiny inputs, and how it judges a target. It asserts the
tables' shape and the values' agreement, never a time (performance lives in the benchmark and docs/, not in tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
LOSSES = sorted(p.stem for p in (ROOT / "docs" / "losses").glob("*.md") if p.stem != "index")  # one page a loss


def bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def cells(stdout: str, header: str) -> list[list[str]]:
    """The rows of the table whose header starts with ``header``, as lists of stripped cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    return rows


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_bench_quick_whole_processes_and_in_memory():
    """The issue's cases on tiny inputs: every tool has a row, the targets are the issue's, values agree."""
    proc = bench("--quick", "--cases", "startup,mse-files,csv,none-out,mse-memory,ce-1000,ce-10")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("Machine: ") and "cores" in out and "numpy " in out and "losscli " in out
    assert "Command: `python benchmarks/bench.py --quick --cases" in out
    rows = cells(out, "| case | tool | time: median (min–max) | peak RSS |")
    assert [(r[0], r[5]) for r in rows] == [
        ("startup", "time ≤ 1.4x"), ("startup", "time ≤ 1.7x"), ("startup", ""),
        ("mse-files", "time ≤ 0.6x, peak RSS ≤ 64 MiB"), ("mse-files", ""), ("csv", "time ≤ 0.5x"), ("csv", ""),
        ("csv", ""),
        ("none-out", "time ≤ 1x, peak RSS ≤ 160 MiB"), ("none-out", "")]
    assert "none-out: out.npy and the one-liner's o.npy agree" in out
    rows = cells(out, "| case | size | tool | time: median (min–max) | GB/s")
    assert [(r[0], r[6]) for r in rows] == [
        ("mse-memory", "≥ 10 GB/s"), ("mse-memory", ""), ("mse-memory", ""), ("ce-1000", "time ≤ 1x"),
        ("ce-1000", ""), ("ce-10", "time ≤ 0.5x"), ("ce-10", "")]
    assert rows[2][2] == "`F.mse_loss(a, b), 2 threads`" and rows[2][5] == "1 (reference)"
    assert "values differ" not in out


def test_bench_quick_kernels_has_every_loss_against_torch():
    """One row per loss (every loss that has a docs page), each value equal to torch's to 1e-4 relative."""
    proc = bench("--quick", "--cases", "kernels")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = cells(proc.stdout, "| loss | size | losscli ms")
    assert sorted(r[0] for r in rows) == LOSSES
    assert not [r for r in rows if r[-1] == "**error**"], proc.stdout
    assert "Every loss's value agrees with torch's to 0.0001 relative." in proc.stdout


def test_bench_kernels_filter():
    proc = bench("--quick", "--cases", "kernels", "--losses", "ctc,mse")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r[0] for r in cells(proc.stdout, "| loss | size | losscli ms")] == ["mse", "ctc"]  # catalog order


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed is not installed")
def test_bench_quick_dask_cases():
    """The dask cases: the local cluster a run starts, running clusters of 2 and 1 workers (started and stopped
    by the benchmark), the local engine; every tool printed the same digits, and the workers' RSS is reported."""
    proc = bench("--quick", "--cases", "dask-mse,dask-ce", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells_ = cells(proc.stdout, "| case | tool | time: median (min–max) | peak RSS | workers' peak RSS |")
    assert [c[0] for c in cells_] == ["dask-mse"] * 4 + ["dask-ce"] * 4
    tools = [c[1] for c in cells_[:4]]
    assert "--engine dask (local cluster" in tools[0] and "(running, 2 workers)" in tools[1]
    assert "(running, 1 worker)" in tools[2] and tools[3].endswith("(local engine)`")
    assert all(c[4].endswith("MiB") for c in cells_[:3]) and cells_[3][4] == "-"  # workers' RSS, none for local
    assert [c[6] for c in cells_[:4]] == ["", "time ≤ 1.3x", "", ""]
    assert "values differ" not in proc.stdout
    assert "dask-mse: every tool printed" in proc.stdout and "dask-ce: every tool printed" in proc.stdout


def test_bench_refuses_an_unknown_case_or_loss():
    proc = bench("--cases", "msee", timeout=60)
    assert proc.returncode == 2
    assert ("unknown case(s) msee; the cases are startup, mse-memory, mse-files, ce-1000, ce-10, csv, none-out, "
            "parquet, remote, dask-mse, dask-ce, kernels") in proc.stderr
    proc = bench("--cases", "kernels", "--losses", "mse,ctcc", timeout=60)
    assert proc.returncode == 2 and "unknown loss(es) ctcc; the losses are mse, l1," in proc.stderr


def test_every_loss_has_a_kernel_workload():
    assert sorted(load_bench().KERNELS) == LOSSES


def test_a_target_is_judged_on_the_median_not_the_best_round():
    bench_ = load_bench()
    target = bench_.Target(time=1.0, peak_mib=64)
    assert str(target) == "time ≤ 1x, peak RSS ≤ 64 MiB"
    assert bench_.verdict(target, dict(ratio=0.9, peak=60 * 2**20), dict(ratio=0.8, peak=50 * 2**20)) == "yes"
    assert bench_.verdict(target, dict(ratio=1.1, peak=60 * 2**20), dict(ratio=0.8, peak=50 * 2**20)) == \
        "**no** (met in the best round only)"
    assert bench_.verdict(target, dict(ratio=0.9, peak=65 * 2**20), dict(ratio=0.9, peak=65 * 2**20)) == "**no**"
    assert bench_.verdict(bench_.Target(gbps=10), dict(gbps=9.0), dict(gbps=11.0)).startswith("**no**")
    assert bench_.verdict(None, dict(ratio=5.0), dict(ratio=5.0)) == ""
