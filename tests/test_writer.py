"""The one writer: never onto an input, whole or not at all, no debris."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.edge.writer import ArrayFile, check_targets, save_array, write_text
from losscli.errors import InputError, ValueDomainError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "p.npy", rng.normal(size=(20, 3)).astype(np.float32))
    np.save(tmp_path / "t.npy", rng.normal(size=(20, 3)).astype(np.float32))
    return tmp_path / "p.npy", tmp_path / "t.npy"


@pytest.mark.parametrize("option", ["-o", "--grad"])
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink"])
def test_an_output_onto_an_input_is_refused_before_any_work(inputs, option, spelling):
    p, t = inputs
    before = digest(p)
    target = {"same": p, "dot": p.parent / "." / p.name, "symlink": p.parent / "link.npy",
              "hardlink": p.parent / "hard.npy"}[spelling]
    if spelling == "symlink":
        target.symlink_to(p)
    if spelling == "hardlink":
        os.link(p, target)
    result = invoke("mse", p, t, "-r", "none", option, target)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "losscli never writes over its inputs" in result.stderr
    assert result.stderr.startswith(f"error: {'--output' if option == '-o' else '--grad'} (")
    assert digest(p) == before


def test_two_outputs_onto_one_file_are_refused(inputs, tmp_path):
    result = invoke("mse", *inputs, "-o", tmp_path / "o.npy", "--grad", tmp_path / "o.npy")
    assert result.exit_code == 2 and "the file of --output" in result.stderr
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("option", ["--report", "--junit", "--markdown", "--write-baseline"])
def test_a_report_onto_the_gate_file_is_refused(tmp_path, option):
    gates = tmp_path / "gates.toml"
    gates.write_text((SAMPLES / "gates.toml").read_text())
    before = digest(gates)
    result = invoke("check", gates, option, gates)
    assert result.exit_code == 2 and "losscli never writes over its inputs" in result.stderr
    assert digest(gates) == before


def test_a_failed_stream_leaves_the_earlier_output_and_no_debris(tmp_path):
    x = np.zeros((50, 4), np.float32)
    t = np.zeros(50, np.int64)
    t[-1] = 9  # a bad label in the last chunk: found after the first chunks were written
    out = tmp_path / "losses.npy"
    np.save(out, np.arange(3.0))
    with pytest.raises(ValueDomainError, match=r"target: expected class indices in \[0, 4\)"):
        losscli.compute("cross-entropy", x, t, reduction="none",
                        streaming=losscli.Streaming(chunk_rows=7, sink=ArrayFile(str(out))))
    np.testing.assert_array_equal(np.load(out), np.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.npy"]


@pytest.mark.parametrize("suffix", ["npy", "csv"])
def test_a_streamed_output_appears_whole_only_at_the_end(tmp_path, suffix):
    out = tmp_path / f"v.{suffix}"
    seen = []
    x, y = np.arange(12.0).reshape(6, 2), np.zeros((6, 2))
    result = losscli.compute("l1", x, y, reduction="none", streaming=losscli.Streaming(
        chunk_rows=2, sink=ArrayFile(str(out)), progress=lambda done, rows: seen.append(out.exists())))
    assert seen == [False, False, False]  # never visible half-written
    np.testing.assert_array_equal(np.asarray(result.value), np.abs(x - y))
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_an_unwritable_target_is_one_line_and_leaves_no_debris(tmp_path):
    folder = tmp_path / "missing"
    with pytest.raises(InputError, match=r"^--grad \(.*a.npy\): expected a writable path, but got"):
        save_array(np.zeros(3), str(folder / "a.npy"), "--grad")
    with pytest.raises(InputError, match=r"^--report \(.*\): expected a writable path"):
        write_text(str(folder / "r.json"), "{}", "--report")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_error_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)  # the disk fills as the file is flushed
    with pytest.raises(InputError, match="No space left on device"):
        write_text(str(path), "new", "--report")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_new_file_gets_the_usual_permissions_and_an_old_one_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(str(tmp_path / "new.txt"), "x", "--report")
        old = tmp_path / "old.txt"
        old.write_text("y")
        old.chmod(0o600)
        write_text(str(old), "z", "--report")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
    assert old.stat().st_mode & 0o777 == 0o600 and old.read_text() == "z"


def test_targets_that_do_not_exist_yet_are_not_the_same_file(tmp_path):
    check_targets({"--output": str(tmp_path / "a.npy"), "--grad": str(tmp_path / "b.npy")}, [str(tmp_path / "c.npy")])


def _limited(limit: int, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m losscli ARGV`` under a file-size limit of ``limit`` bytes (a stand-in for a full disk: a
    write past it fails with EFBIG; Python ignores SIGXFSZ)."""
    code = ("import resource, runpy, sys\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            f"sys.argv = ['losscli', *{argv!r}]\n"
            "runpy.run_module('losscli', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_streamed_csv_past_a_file_size_limit_is_one_line_and_leaves_the_old_file(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "p.npy", rng.normal(size=(600_000, 4)).astype(np.float32))  # streams: > 2**21 elements
    np.save(tmp_path / "t.npy", rng.normal(size=(600_000, 4)).astype(np.float32))
    (tmp_path / "out.csv").write_text("old\n")
    done = _limited(8 << 20, ["mse", "p.npy", "t.npy", "-r", "none", "-o", "out.csv", "-f", "plain"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: --output (out.csv): expected a writable path")
    assert (tmp_path / "out.csv").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "p.npy", "t.npy"]


def test_a_baseline_past_a_file_size_limit_keeps_the_old_one(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("old")
    done = _limited(400, ["check", str(SAMPLES / "gates.toml"), "--write-baseline", str(baseline)], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--write-baseline (" in done.stderr and "Traceback" not in done.stderr
    assert baseline.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"]


def test_two_runs_writing_one_output_leave_one_whole_result(tmp_path):
    """Concurrent writers: the last complete one wins, whole: never rows of both."""
    rng = np.random.default_rng(6)
    a, b = (rng.normal(size=(400_000, 4)).astype(np.float32) for _ in range(2))
    zero = np.zeros_like(a)
    for name, array in (("a.npy", a), ("b.npy", b), ("z.npy", zero)):
        np.save(tmp_path / name, array)
    runs = [subprocess.Popen([sys.executable, "-m", "losscli", "l1", name, "z.npy", "-r", "none", "-o", "out.npy",
                              "-f", "plain"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("a.npy", "b.npy")]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    out = np.load(tmp_path / "out.npy")
    assert np.array_equal(out, np.abs(a)) or np.array_equal(out, np.abs(b))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npy", "out.npy", "z.npy"]
