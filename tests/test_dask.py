"""The dask engine (``--engine dask``, ``compute(engine=...)``) against real clusters on 127.0.0.1, no mocks: a
``LocalCluster`` of two worker processes, and a cluster started as users start one from a shell (``dask
scheduler`` and two ``dask worker`` processes) in a folder of its own, so that relative paths reach its workers
only when losscli makes them absolute. Each cluster starts once for the module and is stopped after it.

The dask engine computes the local engine's chunks in partitions and merges them in row order, so its results
are the local engine's to the last digit: values equal with ``np.array_equal``, the same warnings, the same
JSON text, the same bytes in the files written. torch.nn.functional on the concatenated arrays
(tests/oracle.py) is the independent reference. Chunks are forced small (``Streaming(chunk_rows=...)``) and
partitions short (``CHUNKS_PER_PARTITION``, which the client reads) so that each run has several partitions;
the command line, which has no chunk flag, gets inputs just above ``STREAM_ELEMENTS``, so that they stream.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dask.distributed import Client, LocalCluster, get_task_stream
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.edge.render import Format, pieces
from losscli.engine import cluster as dask_engine
from losscli.engine import sources as engine_sources
from losscli.engine.cluster import Cluster
from losscli.losses import CATALOG
from tests.oracle import (
    Case, CtcCase, LinearCase, assert_matches, ctc_oracle, linear_oracle, oracle, tolerance_of, one_line_error,
)

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"  # the venv's `dask` command, as a user runs it
WAIT = 60  # seconds, at most, for a cluster to start or to get a worker back

runner = CliRunner()
rng = np.random.default_rng(20261201)

N = 203  # rows of the API's cases: prime, so that no chunk size divides it
SHARDS = (0, 41, 41, 130, N)  # uneven shards of the row-wise files, an empty one among them
CHUNK_ROWS = 5  # 41 chunks
PARTITION_CHUNKS = 3  # 14 partitions of them
REDUCTIONS = ("none", "mean", "sum")

# The command line's inputs: 8 class scores a row, just above STREAM_ELEMENTS, so that they stream (9 chunks of
# CHUNK_ELEMENTS); uneven shards; a bad label at row 777 of the last shard of bad-*.npy.
CLASSES = 8
BIG = engine_sources.STREAM_ELEMENTS // CLASSES + 9_973
BIG_SHARDS = (0, 100_003, 170_004, BIG)
BAD_ROW = BIG_SHARDS[2] + 777
BAD_LINE = (f"error: target (bad-*.npy): expected class indices in [0, 8) or ignore_index -100, but got 9 at "
            f"index {BAD_ROW} (bad-2.npy row 777)")


def normal(*shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def uniform(*shape: int, low: float = 0.0) -> np.ndarray:
    return (low + rng.random(shape)).astype(np.float32)


def labels(classes: int, n: int = N) -> np.ndarray:
    t = rng.integers(0, classes, n)
    t[rng.random(n) < 0.1] = -100
    return t


def keep(*shape: int) -> np.ndarray:
    return rng.random(shape) < 0.75


# -- clusters --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_cluster():
    """Two worker processes of one thread on 127.0.0.1; a worker killed is restarted by its nanny."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def engine(local_cluster):
    """The local cluster as compute()'s engine, connected once for the module."""
    with Cluster(address=local_cluster.scheduler_address) as cluster:
        cluster.open()
        yield cluster


@pytest.fixture(scope="module")
def client(local_cluster):
    """A client of the test's own, to look at the local cluster: its workers' pids, the tasks it ran."""
    with Client(local_cluster.scheduler_address, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def shell_cluster(tmp_path_factory, free_port):
    """``dask scheduler`` and two ``dask worker`` processes started as from a shell, in a folder other than the
    tests': the scheduler's address, once it reports both workers. Stopped after the module (terminated, killed
    when they do not end in time)."""
    folder = tmp_path_factory.mktemp("workers")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout's losscli
    commands = [[DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--dashboard-address", "127.0.0.1:0"]]
    commands += [[DASK, "worker", address, "--nthreads", 1, "--host", "127.0.0.1", "--no-dashboard",
                  "--local-directory", folder]] * 2
    processes: list[subprocess.Popen] = []
    try:
        for i, command in enumerate(commands):
            with open(folder / f"{i}.log", "w") as log:
                processes.append(subprocess.Popen([str(c) for c in command], cwd=folder, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        try:
            with Client(address, timeout=WAIT, set_as_default=False) as watcher:
                watcher.wait_for_workers(2, timeout=WAIT)
        except (OSError, TimeoutError) as e:
            logs = "\n".join((folder / f"{i}.log").read_text()[-2000:] for i in range(len(commands)))
            pytest.fail(f"the shell cluster did not start in {WAIT} s ({e}):\n{logs}")
        yield address
    finally:
        _stop(processes[1:])  # the workers first, so that they do not wait for a scheduler gone
        _stop(processes[:1])


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its session: the worker a nanny started too
            process.wait(timeout=15)


@pytest.fixture
def partitions(monkeypatch):
    """Short partitions, so that every run has several (the client reads CHUNKS_PER_PARTITION)."""
    monkeypatch.setattr(dask_engine, "CHUNKS_PER_PARTITION", PARTITION_CHUNKS)


# -- the results compared --------------------------------------------------------------------------------


def json_text(result: losscli.LossResult) -> str:
    """What ``--format json`` prints for the result."""
    return "".join(pieces(result, Format.json))


def assert_identical(got: losscli.LossResult, local: losscli.LossResult) -> None:
    """The dask engine's result is the local engine's: every digit, warning, count and view, and its JSON."""
    assert (got.value.dtype, got.value.shape) == (local.value.dtype, local.value.shape)
    assert np.array_equal(got.value, local.value, equal_nan=True)
    assert (got.warnings, got.count, got.selected, got.inputs) == (local.warnings, local.count, local.selected,
                                                                  local.inputs)
    assert json_text(got) == json_text(local)


# -- every family, files and arrays ------------------------------------------------------------------------


def _family_cases() -> list[tuple[str, Any]]:
    """One loss of each family, as the oracle's case: with a mask, and with a weight where the loss takes one."""
    x, y, regression_mask = normal(N, 3), normal(N, 3), keep(N, 3)
    x[150, 1] = np.nan  # in a late shard, masked out: a worker's chunk warns, and the value stays finite
    regression_mask[150, 1] = False
    log_probs = torch.randn(12, 3, 5, dtype=torch.float64).log_softmax(-1).numpy()
    return [
        ("mse", Case("mse", x, y, weight=uniform(N, 3), mask=regression_mask)),
        ("cross-entropy", Case("cross-entropy", normal(N, 5), labels(5), weight=uniform(5, low=0.1), mask=keep(N),
                               params={"label_smoothing": 0.1})),
        ("bce-with-logits", Case("bce-with-logits", normal(N, 3), uniform(N, 3), weight=uniform(N, 3),
                                 pos_weight=uniform(3, low=0.5), mask=keep(N, 3))),
        ("gaussian-nll", Case("gaussian-nll", normal(N, 3), normal(N, 3), var=uniform(N, 3, low=0.1),
                              mask=keep(N, 3))),
        ("multi-margin", Case("multi-margin", normal(N, 4), rng.integers(0, 4, N), weight=uniform(4, low=0.1),
                              mask=keep(N))),
        ("triplet-margin", Case.of("triplet-margin", (normal(N, 4), normal(N, 4), normal(N, 4)), mask=keep(N))),
        ("linear-cross-entropy", LinearCase(input=normal(N, 6), linear_weight=normal(5, 6), target=labels(5),
                                            weight=uniform(5, low=0.1), mask=keep(N))),
        # ctc does not stream (its samples are axis 1): one partition, on a worker all the same
        ("ctc", CtcCase(log_probs=log_probs, targets=rng.integers(1, 5, (3, 4)), input_lengths=np.array([12, 10, 12]),
                        target_lengths=np.array([4, 3, 2]), mask=np.array([True, False, True]))),
    ]


FAMILY_CASES = _family_cases()


def family(loss: str) -> str:
    """A loss's family: the module of its definition (regression, classification, ..., sequence)."""
    return type(CATALOG[loss].family).__module__.rpartition(".")[2]


def test_every_family_has_a_case():
    assert {family(loss) for loss, _ in FAMILY_CASES} == {family(loss) for loss in CATALOG}


def _arguments(case: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The case's files in torch's order, and its named files and options, as compute() takes them."""
    if isinstance(case, CtcCase):
        return [case.log_probs, case.targets, case.input_lengths, case.target_lengths], {"mask": case.mask}
    if isinstance(case, LinearCase):
        return ([case.input, case.linear_weight, case.target],
                {"linear_bias": case.linear_bias, "weight": case.weight, "mask": case.mask, **case.params})
    return list(case.files), {"weight": case.weight, "pos_weight": case.pos_weight, "mask": case.mask, **case.params}


def _save(stem: str, array: Any) -> Any:
    """``array`` as .npy files in the current folder, named relatively: a row-wise file as uneven shards (a glob),
    any other as one file."""
    if not isinstance(array, np.ndarray):
        return array  # an option, or a file not given
    if array.ndim == 0 or len(array) != N:
        np.save(f"{stem}.npy", array)
        return f"{stem}.npy"
    for i, (start, stop) in enumerate(zip(SHARDS, SHARDS[1:])):
        np.save(f"{stem}-{i}.npy", array[start:stop])
    return f"{stem}-*.npy"


def _reference(loss: str, case: Any) -> torch.Tensor:
    if loss == "ctc":
        return ctc_oracle(case)
    return linear_oracle(case) if loss == "linear-cross-entropy" else oracle(case)


@pytest.mark.parametrize("given", ["files", "arrays"])
@pytest.mark.parametrize("loss, case", FAMILY_CASES, ids=[loss for loss, _ in FAMILY_CASES])
def test_each_family_on_dask_is_the_local_engine_to_the_last_digit(engine, client, partitions, tmp_path, monkeypatch,
                                                                 loss, case, given):
    """Sharded files (named relatively: the workers run in the folder pytest started in) or arrays in memory
    (sent a partition's rows at a time), for none, mean and sum: the local engine's result, and torch's value.
    A loss that streams runs in 14 partitions; ctc, which does not, in one."""
    monkeypatch.chdir(tmp_path)
    arrays, named = _arguments(case)
    if given == "files":
        arrays = [_save(f"file{i}", a) for i, a in enumerate(arrays)]
        named = {name: _save(name, value) for name, value in named.items()}
    tolerance = tolerance_of(*_arguments(case)[0])
    for reduction in REDUCTIONS:
        kw = dict(named, reduction=reduction, streaming=losscli.Streaming(chunk_rows=CHUNK_ROWS))
        local = losscli.compute(loss, *arrays, **kw)
        with get_task_stream(client=client) as tasks:
            on_dask = losscli.compute(loss, *arrays, engine=engine, **kw)
        assert len(tasks.data) == (1 if loss == "ctc" else -(-N // (CHUNK_ROWS * PARTITION_CHUNKS)))
        assert_identical(on_dask, local)
        assert_matches(local.value, _reference(loss, replace(case, reduction=reduction)), tolerance,
                       f"{loss} {reduction}")
        if loss == "mse":  # the NaN at row 150 (row 20 of the last shard), found on a worker
            name, shard = (" (file0-*.npy)", " (file0-3.npy row 20)") if given == "files" else ("", "")
            assert local.warnings == [f"input{name} holds 1 non-finite value(s) (first: nan at index (150, 1){shard}); "
                                      "the result propagates them"]


def test_views_are_the_local_engines(engine, client, partitions):
    """--per-sample, --top and --hist from partitions merged equal the local engine's; the per-sample losses
    are torch's on each row, and the top K their largest."""
    x, y = normal(N, 3), normal(N, 3)
    per_row = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y), reduction="none").mean(1).numpy()
    outputs = losscli.Outputs(per_sample=True, top=7, hist=True)
    kw = dict(outputs=outputs, streaming=losscli.Streaming(chunk_rows=CHUNK_ROWS))
    local = losscli.compute("mse", x, y, **kw)
    with get_task_stream(client=client) as tasks:
        on_dask = losscli.compute("mse", x, y, engine=engine, **kw)
    assert len(tasks.data) >= 3  # partitions, each a task on a worker
    assert_identical(on_dask, local)
    assert np.array_equal(on_dask.per_sample, local.per_sample)
    assert np.array_equal(on_dask.top.index, local.top.index) and np.array_equal(on_dask.top.value, local.top.value)
    assert (on_dask.hist.nan, on_dask.hist.inf) == (local.hist.nan, local.hist.inf)
    assert np.array_equal(on_dask.hist.edges, local.hist.edges)
    assert np.array_equal(on_dask.hist.counts, local.hist.counts)
    np.testing.assert_allclose(on_dask.per_sample, per_row, rtol=1e-6)
    assert list(on_dask.top.index) == list(np.argsort(-per_row, kind="stable")[:7])
    assert on_dask.hist.counts.sum() == N
    elements = dict(outputs=losscli.Outputs(top=5, hist=True), streaming=losscli.Streaming(chunk_rows=CHUNK_ROWS))
    assert_identical(losscli.compute("mse", x, y, engine=engine, **elements), losscli.compute("mse", x, y, **elements))


def test_warnings_and_errors_found_on_workers_are_the_local_engines(engine, partitions):
    """A value torch computes with but the loss does not expect, in a late row: the same warning, and under
    strict the same error naming its row."""
    x, target = normal(N), np.ones(N, np.float32)
    target[180] = 0.0  # hinge-embedding expects -1 or 1
    kw = dict(streaming=losscli.Streaming(chunk_rows=CHUNK_ROWS))
    local = losscli.compute("hinge-embedding", x, target, **kw)
    assert_identical(losscli.compute("hinge-embedding", x, target, engine=engine, **kw), local)
    assert local.warnings == ["target holds values other than -1 or 1; torch adds both terms for them: "
                              "x + max(0, margin - x)"]
    expected = F.hinge_embedding_loss(torch.from_numpy(x), torch.from_numpy(target))
    np.testing.assert_allclose(local.value, expected.numpy(), rtol=1e-5)
    with pytest.raises(losscli.ValueDomainError) as found_locally:
        losscli.compute("hinge-embedding", x, target, strict=True, **kw)
    with pytest.raises(losscli.ValueDomainError) as found_on_dask:
        losscli.compute("hinge-embedding", x, target, strict=True, engine=engine, **kw)
    assert str(found_on_dask.value) == str(found_locally.value)
    assert "but got 0.0 at index 180" in str(found_locally.value)


def test_without_an_address_a_local_cluster_is_started_for_the_call_and_stopped(monkeypatch, partitions):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    x, y = normal(N, 3), normal(N, 3)
    before = {p.pid for p in multiprocessing.active_children()}
    streaming = losscli.Streaming(chunk_rows=CHUNK_ROWS)
    on_dask = losscli.compute("l1", x, y, engine="dask", streaming=streaming)
    assert_identical(on_dask, losscli.compute("l1", x, y, streaming=streaming))
    np.testing.assert_allclose(on_dask.value, F.l1_loss(torch.from_numpy(x), torch.from_numpy(y)).numpy(), rtol=1e-6)
    assert {p.pid for p in multiprocessing.active_children()} <= before  # its workers are gone


def test_a_worker_killed_in_the_middle_of_a_run_changes_nothing(engine, client, tmp_path, monkeypatch, partitions):
    """One worker process killed (SIGKILL) when a third of the rows are merged: dask computes its partitions
    again elsewhere, and the values written in row order are the local engine's."""
    monkeypatch.chdir(tmp_path)
    rows = 6_000
    np.save("x.npy", normal(rows, 4))
    np.save("y.npy", normal(rows, 4))
    victim = next(iter(client.run(os.getpid).values()))
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed and done >= total // 3:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    kw = dict(reduction="none")
    on_dask = losscli.compute("mse", "x.npy", "y.npy", engine=engine, **kw,
                              streaming=losscli.Streaming(chunk_rows=30, progress=kill_once))
    local = losscli.compute("mse", "x.npy", "y.npy", **kw, streaming=losscli.Streaming(chunk_rows=30))
    assert killed and killed[0] < rows  # in the middle of the run
    assert_identical(on_dask, local)
    client.wait_for_workers(2, timeout=WAIT)  # the nanny's new worker, for the tests after this one
    assert victim not in client.run(os.getpid).values()


# -- the command line on a cluster started from a shell ----------------------------------------------------


class Big(NamedTuple):
    folder: Path
    x: np.ndarray
    t: np.ndarray
    weight: np.ndarray
    mask: np.ndarray


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Big:
    """x-*.npy (class scores), t-*.npy and bad-*.npy (labels), m-*.npy (a mask) in uneven shards, w.npy (class
    weights); a.npy and b.npy, whose l1 is 0.75 exactly."""
    folder = tmp_path_factory.mktemp("big")
    x, t, mask = normal(BIG, CLASSES), rng.integers(0, CLASSES, BIG), keep(BIG)
    bad = t.copy()
    bad[BAD_ROW] = 9
    for i, (start, stop) in enumerate(zip(BIG_SHARDS, BIG_SHARDS[1:])):
        for stem, array in (("x", x), ("t", t), ("bad", bad), ("m", mask)):
            np.save(folder / f"{stem}-{i}.npy", array[start:stop])
    weight = uniform(CLASSES, low=0.1)
    np.save(folder / "w.npy", weight)
    np.save(folder / "a.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(folder / "b.npy", np.array([1.5, 3.0], dtype=np.float32))
    return Big(folder, x, t, weight, mask)


def invoke(*args: Any, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)



@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_command_line_through_scheduler_and_environment(shell_cluster, big, monkeypatch, partitions, reduction):
    """The same -f json text by --scheduler and by DASK_SCHEDULER_ADDRESS as locally; torch's value."""
    monkeypatch.chdir(big.folder)
    args = ["cross-entropy", "x-*.npy", "t-*.npy", "--weight", "w.npy", "--mask", "m-*.npy", "-r", reduction,
            "-f", "json"]
    local = invoke(*args)
    by_flag = invoke(*args, "--engine", "dask", "--scheduler", shell_cluster)
    by_environment = invoke(*args, "--engine", "dask", env={"DASK_SCHEDULER_ADDRESS": shell_cluster})
    assert local.exit_code == 0, local.stderr
    assert (by_flag.exit_code, by_flag.stdout, by_flag.stderr) == (0, local.stdout, "")
    assert (by_environment.exit_code, by_environment.stdout, by_environment.stderr) == (0, local.stdout, "")
    expected = oracle(Case("cross-entropy", big.x, big.t, weight=big.weight, mask=big.mask, reduction=reduction))
    np.testing.assert_allclose(json.loads(local.stdout)["value"], expected.numpy(), rtol=1e-5)


def test_a_user_shell_run_by_dask_scheduler_address(shell_cluster, big):
    """`python -m losscli ... --engine dask` with DASK_SCHEDULER_ADDRESS, in a process of its own."""
    args = [sys.executable, "-m", "losscli", "cross-entropy", "x-*.npy", "t-*.npy", "-f", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_SCHEDULER_ADDRESS": shell_cluster}
    on_dask = subprocess.run([*args, "--engine", "dask"], cwd=big.folder, env=env, capture_output=True, text=True,
                             timeout=120)
    local = subprocess.run(args, cwd=big.folder, env=env, capture_output=True, text=True, timeout=120)
    assert (on_dask.returncode, on_dask.stderr) == (0, ""), on_dask.stderr
    assert on_dask.stdout == local.stdout
    expected = F.cross_entropy(torch.from_numpy(big.x), torch.from_numpy(big.t)).numpy()
    np.testing.assert_allclose(json.loads(on_dask.stdout)["value"], expected, rtol=1e-5)


@pytest.mark.parametrize("suffix", ["npy", "csv", "parquet"])
def test_none_written_on_dask_is_the_local_file_byte_for_byte(shell_cluster, big, monkeypatch, partitions, suffix):
    monkeypatch.chdir(big.folder)
    args = ["cross-entropy", "x-*.npy", "t-*.npy", "-r", "none", "-o", f"out.{suffix}", "-f", "json"]
    written, printed = {}, {}
    try:
        for engine in ("local", "dask"):
            result = invoke(*args, "--engine", engine, *(["--scheduler", shell_cluster] if engine == "dask" else []))
            assert (result.exit_code, result.stderr) == (0, ""), result.stderr
            written[engine], printed[engine] = Path(f"out.{suffix}").read_bytes(), result.stdout
            if suffix == "npy":
                expected = F.cross_entropy(torch.from_numpy(big.x), torch.from_numpy(big.t), reduction="none")
                np.testing.assert_allclose(np.load(f"out.{suffix}"), expected.numpy(), rtol=1e-5, atol=1e-6)
    finally:
        Path(f"out.{suffix}").unlink(missing_ok=True)
    assert written["dask"] == written["local"]
    assert printed["dask"] == printed["local"]


@pytest.mark.parametrize("suffix", ["npy", "csv", "parquet"])
def test_a_bad_row_in_a_late_shard_is_one_line_naming_shard_and_row(shell_cluster, big, monkeypatch, partitions,
                                                                    suffix):
    """Found on a worker, after earlier partitions were written: the local engine's message, exit 2, and no file
    left where -o pointed."""
    monkeypatch.chdir(big.folder)
    before = sorted(os.listdir())
    args = ["cross-entropy", "x-*.npy", "bad-*.npy", "-r", "none", "-o", f"out.{suffix}"]
    local = invoke(*args, "-f", "json")
    on_dask = invoke(*args, "-f", "json", "--engine", "dask", "--scheduler", shell_cluster)
    assert one_line_error(local) == one_line_error(on_dask) == BAD_LINE
    assert on_dask.stdout == ""
    table = invoke(*args, "--engine", "dask", "--scheduler", shell_cluster)
    assert table.exit_code == 2
    assert table.stderr.strip().splitlines()[1:] == [BAD_LINE]  # after the line naming the scheduler
    assert sorted(os.listdir()) == before


def _report(result) -> dict:
    """A check report without its timing ("seconds", "created"), which no two runs share."""
    def drop(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k not in ("seconds", "created")}
        return [drop(v) for v in value] if isinstance(value, list) else value

    return drop(json.loads(result.stdout))


GATES = """
[[check]]
name = "classifier"
loss = "cross-entropy"
input = "x-*.npy"
target = "t-*.npy"
weight = "w.npy"
mask = "m-*.npy"
label_smoothing = 0.1
max = 10.0

[[check]]
name = "margins"
loss = "multi-margin"
input = "x-*.npy"
target = "t-*.npy"
max = 10.0

[[check]]
name = "bad labels"
loss = "cross-entropy"
input = "x-*.npy"
target = "bad-*.npy"
max = 10.0

[[check]]
name = "small"
loss = "l1"
input = "a.npy"
target = "b.npy"
max = 1.0
"""


ONE_CHECK = '[[check]]\nname = "small"\nloss = "l1"\ninput = "a.npy"\ntarget = "b.npy"\nmax = 1\n'


def test_check_on_dask_reports_what_the_local_engine_reports(shell_cluster, big, monkeypatch, partitions):
    """Four checks as one graph, two of them on the same files: the local engine's report (timing aside); the
    check with a bad label errors alone, naming its shard and row."""
    monkeypatch.chdir(big.folder)
    Path("gates.toml").write_text(GATES)
    local = invoke("check", "gates.toml", "-f", "json")
    on_dask = invoke("check", "gates.toml", "-f", "json", "--engine", "dask", "--scheduler", shell_cluster)
    assert (local.exit_code, on_dask.exit_code, on_dask.stderr) == (2, 2, local.stderr)
    report = _report(on_dask)
    assert report == _report(local)
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["status"] for c in checks.values()] == ["pass", "pass", "error", "pass"]
    assert checks["bad labels"]["message"] == BAD_LINE.removeprefix("error: ")
    x, t = torch.from_numpy(big.x), torch.from_numpy(big.t)
    classifier = oracle(Case("cross-entropy", big.x, big.t, weight=big.weight, mask=big.mask,
                             params={"label_smoothing": 0.1}))
    np.testing.assert_allclose(checks["classifier"]["value"], classifier.numpy(), rtol=1e-5)
    np.testing.assert_allclose(checks["margins"]["value"], F.multi_margin_loss(x, t).numpy(), rtol=1e-5)
    assert checks["small"]["value"] == 0.75  # mean(|1 - 1.5|, |2 - 3|)


def test_plots_on_dask_are_the_local_engines_byte_for_byte(shell_cluster, big, monkeypatch, partitions):
    """The histograms a plot draws are fed on the workers and merged: the same PNG as the local engine's, for a
    loss command and for each check of a gate file (their histograms fed through one graph)."""
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(big.folder)
    Path("gates.toml").write_text(GATES)
    dask = ("--engine", "dask", "--scheduler", shell_cluster)
    args = ("cross-entropy", "x-*.npy", "t-*.npy", "--weight", "w.npy", "--mask", "m-*.npy", "-f", "plain")
    assert invoke(*args, "--plot", "local.png").exit_code == 0
    assert invoke(*args, "--plot", "dask.png", *dask).exit_code == 0
    assert Path("local.png").read_bytes() == Path("dask.png").read_bytes()
    assert invoke("check", "gates.toml", "-q", "--plots", "local").exit_code == 2  # the bad labels
    assert invoke("check", "gates.toml", "-q", "--plots", "dask", *dask).exit_code == 2
    names = sorted(os.listdir("local"))
    assert names == sorted(os.listdir("dask")) == ["classifier.png", "margins.png", "small.png"]
    assert [Path("local", n).read_bytes() for n in names] == [Path("dask", n).read_bytes() for n in names]


def test_table_output_names_the_scheduler_and_its_dashboard_on_stderr(shell_cluster, big, monkeypatch):
    monkeypatch.chdir(big.folder)
    line = rf"dask: scheduler {re.escape(shell_cluster)} · dashboard http://127\.0\.0\.1:\d+/status"
    for how in (["--scheduler", shell_cluster], []):
        table = invoke("l1", "a.npy", "b.npy", "--engine", "dask", *how,
                       env={"DASK_SCHEDULER_ADDRESS": shell_cluster} if not how else None)
        assert table.exit_code == 0, table.stderr
        assert re.fullmatch(line, table.stderr.strip()), table.stderr
        assert "0.75" in table.stdout and "dask" not in table.stdout
    as_json = invoke("l1", "a.npy", "b.npy", "--engine", "dask", "--scheduler", shell_cluster, "-f", "json")
    assert (as_json.exit_code, as_json.stderr) == (0, "")
    assert json.loads(as_json.stdout)["value"] == 0.75 and "dask" not in as_json.stdout
    Path("one.toml").write_text(ONE_CHECK)
    gates = invoke("check", "one.toml", "--engine", "dask", "--scheduler", shell_cluster)
    assert gates.exit_code == 0 and re.fullmatch(line, gates.stderr.strip().splitlines()[0]), gates.stderr
    local = invoke("l1", "a.npy", "b.npy", env={"DASK_SCHEDULER_ADDRESS": shell_cluster})  # no --engine dask
    assert (local.exit_code, local.stderr) == (0, "")


# -- refusals ------------------------------------------------------------------------------------------------


def test_an_unreachable_scheduler_is_one_line_error(free_port, big, monkeypatch):
    monkeypatch.setattr(dask_engine, "CONNECT_SECONDS", 2)
    monkeypatch.chdir(big.folder)
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    expected = f"--scheduler: expected a dask scheduler at {nowhere}, but could not reach it"
    one_line_error(invoke("l1", "a.npy", "b.npy", "--engine", "dask", "--scheduler", nowhere), expected)
    Path("one.toml").write_text(ONE_CHECK)
    from_env = f"DASK_SCHEDULER_ADDRESS: expected a dask scheduler at {nowhere}, but could not reach it"
    one_line_error(invoke("check", "one.toml", "--engine", "dask", env={"DASK_SCHEDULER_ADDRESS": nowhere}), from_env)


def test_a_scheduler_without_the_dask_engine_is_refused(free_port, big, monkeypatch):
    monkeypatch.chdir(big.folder)
    nowhere = f"tcp://127.0.0.1:{free_port()}"  # refused before any connection is tried
    expected = "error: --scheduler: a scheduler is for the dask engine: add --engine dask"
    assert one_line_error(invoke("l1", "a.npy", "b.npy", "--scheduler", nowhere)) == expected
    Path("one.toml").write_text(ONE_CHECK)
    assert one_line_error(invoke("check", "one.toml", "--scheduler", nowhere)) == expected
    with pytest.raises(losscli.OptionError, match=r"^scheduler: a scheduler is for the dask engine: add "
                                                  r"engine='dask'$"):
        losscli.compute("l1", "a.npy", "b.npy", scheduler=nowhere)


@pytest.mark.parametrize("flags, what", [(["--grad", "g.npy"], "a gradient"), (["--cross-check"], "a cross-check"),
                                         (["--backend", "torch"], "the torch backend")])
def test_what_needs_the_whole_batch_is_refused_before_any_cluster(big, monkeypatch, flags, what):
    """One line naming --engine, and no cluster reached or started for it (a table run would name one)."""
    monkeypatch.chdir(big.folder)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    line = one_line_error(invoke("l1", "a.npy", "b.npy", "--engine", "dask", *flags))
    assert line == (f"error: --engine: {what} needs the whole batch in one process, but the dask engine computes "
                    "it in partitions: use the local engine --engine local")
    assert not Path("g.npy").exists()
