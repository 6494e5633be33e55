"""The way out (issue 10, parts A and B, and the command line's help and completion): stdout's failures, a
closed pipe, interrupts during a streamed output, what stdout carries for ``-r none`` with and without
``--output``, bounded memory, ``--top``'s limit, and a gate file's inputs never a report's target.

Expected numbers are numpy arithmetic written here; the real-process tests run ``python -m losscli``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.edge.render import to_json
from losscli.edge.render_json import json_pieces
from losscli.errors import OptionError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# The peak RSS of the command itself: spawned from this small process, not forked from pytest (Linux keeps a
# process's peak across exec, so a child forked from a large parent would report the parent's size).
PEAK = ("import os, sys; pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ); "
        "_, status, use = os.wait4(pid, 0); print(os.waitstatus_to_exitcode(status), use.ru_maxrss)")


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def losscli_process(*args, **kw) -> subprocess.Popen:
    """``python -m losscli ARGS`` with SIGINT's default action, as in a terminal: a test run started in the
    background by a shell without job control inherits SIGINT ignored, and Python then leaves it ignored."""
    return subprocess.Popen([sys.executable, "-m", "losscli", *map(str, args)], env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def errors(stderr: str) -> list[str]:
    """stderr's lines but the warning about the NaN that the inputs hold on purpose."""
    return [line for line in stderr.splitlines() if not line.startswith("warning: input (")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pair(tmp_path):
    """(70_000,) float32 files with a NaN: more than one slice of printed values (65,536)."""
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=70_000).astype(np.float32), rng.normal(size=70_000).astype(np.float32)
    a[123] = np.nan
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path / "a.npy", tmp_path / "b.npy", (a - b) * (a - b)


# -- B: stdout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["mse", "A", "B", "-f", "plain"], ["mse", "A", "B", "-r", "none", "-f", "csv"],
                                  ["mse", "A", "B"], ["list"]])
def test_a_failure_to_write_stdout_is_one_line_and_exit_2(pair, args):
    a, b, _ = pair
    args = [{"A": a, "B": b}.get(x, x) for x in args]
    with open("/dev/full", "w") as full:
        proc = losscli_process(*args, stdout=full, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert errors(err) == ["error: stdout: expected to write the output, but got 'No space left on device'"]


@pytest.mark.parametrize("fmt", ["plain", "csv", "json"])
def test_a_pipe_closed_early_ends_quietly_with_141(pair, fmt):
    """As `losscli ... | head -1`: the reader takes one line and goes away."""
    a, b, _ = pair
    proc = losscli_process("mse", a, b, "-r", "none", "-f", fmt, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert first and errors(err.decode()) == []


def test_a_pipe_read_to_the_end_is_exit_0(pair):
    a, b, expected = pair
    proc = subprocess.run([sys.executable, "-m", "losscli", "mse", a, b, "-r", "none", "-f", "plain"], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert np.array_equal(np.array(proc.stdout.split(), np.float32), expected, equal_nan=True)


# -- B: what stdout carries for -r none --------------------------------------------------------------------


def summary_reference(values: np.ndarray) -> dict:
    numbers = values[~np.isnan(values)].astype(np.float64)
    return {"count": values.size, "nan": int(np.isnan(values).sum()), "mean": numbers.sum() / numbers.size,
            "min": float(numbers.min()), "max": float(numbers.max())}


def assert_summary(found: dict, values: np.ndarray) -> None:
    ref = summary_reference(values)
    assert int(found["count"]) == ref["count"] and int(found["nan"]) == ref["nan"]
    assert float(found["mean"]) == pytest.approx(ref["mean"], rel=1e-9)
    assert np.float32(found["min"]) == np.float32(ref["min"]) and np.float32(found["max"]) == np.float32(ref["max"])


@pytest.mark.parametrize("out", ["o.npy", "o.csv"])
def test_with_output_stdout_carries_the_summary_and_the_file_in_every_format(pair, tmp_path, out):
    a, b, expected = pair
    target = tmp_path / out
    result = invoke("mse", a, b, "-r", "none", "-o", target, "-f", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 0 and document["value"] is None and document["output"] == str(target)
    assert document["shape"] == [70_000]
    schema = json.loads((ROOT / "losscli" / "result.schema.json").read_text())
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert_summary(document["summary"], expected)
    if out == "o.npy":
        assert np.array_equal(np.load(target), expected, equal_nan=True)

    plain = invoke("mse", a, b, "-r", "none", "-o", target, "-f", "plain").stdout.splitlines()
    fields = dict(line.split(" ", 1) for line in plain)
    assert list(fields) == ["count", "mean", "min", "max", "nan", "output"] and fields["output"] == str(target)
    assert_summary(fields, expected)

    header, row, *rest = invoke("mse", a, b, "-r", "none", "-o", target, "-f", "csv").stdout.splitlines()
    assert header == "count,mean,min,max,nan,output" and rest == []
    assert_summary(dict(zip(header.split(","), row.split(","))), expected)

    table = invoke("mse", a, b, "-r", "none", "-o", target, env={"COLUMNS": "300"}).stdout
    ref = summary_reference(expected)
    assert f"(70000,) float32, written to {target}" in table
    assert (f"70000 values · mean {ref['mean']:.6g} · min {ref['min']:.6g} · max {ref['max']:.6g} · 1 NaN"
            in table)
    assert len(table.splitlines()) < 20  # no values


def test_without_output_the_values_are_printed_whole_in_every_format(pair):
    a, b, expected = pair
    plain = invoke("mse", a, b, "-r", "none", "-f", "plain").stdout
    assert np.array_equal(np.array(plain.split(), np.float32), expected, equal_nan=True)
    csv = invoke("mse", a, b, "-r", "none", "-f", "csv").stdout.splitlines()
    assert csv[0] == "i0,value" and [line.split(",")[0] for line in csv[1:]] == [str(i) for i in range(70_000)]
    assert np.array_equal(np.array([line.split(",")[1] for line in csv[1:]], np.float32), expected, equal_nan=True)
    document = json.loads(invoke("mse", a, b, "-r", "none", "-f", "json").stdout)
    values = np.array([np.nan if v == "NaN" else v for v in document["value"]], np.float32)
    assert np.array_equal(values, expected, equal_nan=True)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2), (0,), (3, 0), (70_000, 2)])
def test_the_streamed_json_is_what_one_json_dumps_prints(shape):
    """Byte for byte: the pieces are the document json.dumps lays out, non-finite values and all."""
    rng = np.random.default_rng(1)
    value = rng.normal(size=shape).astype(np.float32)
    if value.size:
        value.reshape(-1)[:3] = [np.nan, np.inf, -np.inf][: min(3, value.size)]
    result = losscli.compute("mse", np.zeros(3, np.float32), np.ones(3, np.float32), reduction="none")
    result = dataclasses.replace(result, value=value)
    assert "".join(json_pieces(result, to_json)) == json.dumps(to_json(result), indent=2, allow_nan=False)


def test_table_summary_line_without_output(pair):
    a, b, expected = pair
    ref = summary_reference(expected)
    table = invoke("mse", a, b, "-r", "none").stdout
    assert f"70000 values · mean {ref['mean']:.6g} · min {ref['min']:.6g} · max {ref['max']:.6g} · 1 NaN" in table


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Two 3e7-element float32 files (120 MB each)."""
    folder = tmp_path_factory.mktemp("large")
    for name, seed in (("a.npy", 0), ("b.npy", 1)):
        np.save(folder / name, np.random.default_rng(seed).random(30_000_000, dtype=np.float32))
    return folder


@pytest.mark.parametrize("fmt", ["table", "json", "plain", "csv"])
def test_none_with_output_stays_in_bounded_memory(large, fmt):
    """-r none -o on 3e7 elements: peak RSS under 160 MiB (the values alone are 114 MiB as float32)."""
    proc = subprocess.run([sys.executable, "-c", PEAK, "-m", "losscli", "mse", "a.npy", "b.npy", "-r", "none",
                           "-o", f"out-{fmt}.npy", "-f", fmt], cwd=large, env=ENV, capture_output=True, text=True,
                          timeout=300)
    status, peak_kib = map(int, proc.stdout.splitlines()[-1].split())
    assert status == 0, proc.stderr
    assert peak_kib < 160 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert "30000000" in proc.stdout  # the count, in every format
    if fmt == "csv":
        out = np.load(large / "out-csv.npy", mmap_mode="r")
        a, b = np.load(large / "a.npy", mmap_mode="r"), np.load(large / "b.npy", mmap_mode="r")
        for begin in range(0, 30_000_000, 10_000_000):  # the file itself, against numpy, in slices
            d = a[begin:begin + 10_000_000] - b[begin:begin + 10_000_000]
            assert np.array_equal(out[begin:begin + 10_000_000], d * d)


# -- B: --top ----------------------------------------------------------------------------------------------


def test_a_top_k_beyond_what_is_held_is_refused(pair):
    a, b, _ = pair
    result = invoke("mse", a, b, "-r", "none", "-f", "plain", "--top", 10**9)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: --top: expected a count of at most 1000000 (the K largest are held in memory and sorted), but got "
        "1000000000; to rank more, write every value (reduction none) to a file and sort it there"]
    with pytest.raises(OptionError, match=r"^top: expected a count of at most 1000000"):
        losscli.compute("mse", str(a), str(b), reduction="none", outputs=losscli.Outputs(top=1_000_001))
    top = invoke("mse", a, b, "-r", "none", "-f", "plain", "--top", 1_000_000)  # the largest allowed: all of them
    assert top.exit_code == 0 and len(top.stdout.splitlines()) == 70_000


# -- A: interrupts during a streamed output ----------------------------------------------------------------


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupt_leaves_the_old_file_and_no_debris(tmp_path, signum, status):
    rng = np.random.default_rng(5)
    for name in ("p.npy", "t.npy"):
        np.save(tmp_path / name, rng.normal(size=(1_000_000, 4)).astype(np.float32))
    target = tmp_path / "out.csv"
    target.write_text("the old file\n")
    proc = losscli_process("mse", "p.npy", "t.npy", "-r", "none", "-o", "out.csv", "-f", "plain", cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".out.csv.") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.005)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and out == ""
    assert target.read_text() == "the old file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "p.npy", "t.npy"]


# -- A: losscli check never writes onto a check's input ------------------------------------------------------


@pytest.mark.parametrize("option", ["--report", "--junit", "--markdown", "--write-baseline"])
def test_check_refuses_a_target_that_is_an_input_of_a_check(tmp_path, option):
    rng = np.random.default_rng(2)
    (tmp_path / "data").mkdir()
    for name in ("p.npy", "t.npy"):
        np.save(tmp_path / "data" / name, rng.normal(size=(6, 2)).astype(np.float32))
    gates = tmp_path / "g.toml"
    gates.write_text('[[check]]\nname = "m"\nloss = "mse"\ninput = "data/p.npy"\ntarget = "data/t.npy"\nmax = 100\n')
    before = digest(tmp_path / "data" / "t.npy")
    result = invoke("check", gates, option, f"{tmp_path}/./data/t.npy")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {option} (") and "one of the inputs" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert digest(tmp_path / "data" / "t.npy") == before


# -- D: help, bare losscli, completion ---------------------------------------------------------------------


def test_bare_losscli_prints_the_help_alone_with_exit_2():
    result = invoke()
    assert result.exit_code == 2 and result.stderr == ""
    assert "Usage:" in result.stdout and "Commands" in result.stdout and "error:" not in result.stdout


@pytest.mark.parametrize("args", [[], ["mse"], ["check"], ["list"], ["reductions"], ["cross-entropy"]])
def test_h_is_help_everywhere(args):
    short, long = invoke(*args, "-h"), invoke(*args, "--help")
    assert short.exit_code == long.exit_code == 0 and "Usage:" in short.stdout
    assert short.stdout == long.stdout


def test_shell_completion_is_offered_and_completes_commands():
    assert "--install-completion" in invoke("--help").stdout
    # run from bash, as a user would: typer detects the shell from the parent processes (a test run may have
    # none: CI, nohup); "; true" keeps bash from exec'ing the command in its place
    entry = "import sys; sys.argv[0] = 'losscli'; from losscli.edge.main import entry; entry()"
    script = subprocess.run(["bash", "-c", f"{sys.executable} -c \"{entry}\" --show-completion; true"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert "_LOSSCLI_COMPLETE=complete_bash" in script.stdout, script.stderr
    found = CliRunner().invoke(app, [], prog_name="losscli",
                               env={"_LOSSCLI_COMPLETE": "complete_bash", "COMP_WORDS": "losscli cross-",
                                    "COMP_CWORD": "1"})
    assert found.stdout.split() == ["cross-entropy"]
