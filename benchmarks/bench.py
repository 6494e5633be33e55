"""losscli against the tools it replaces and the kernels it matches: time, throughput and peak memory.

    python benchmarks/bench.py                       # the targets of issue 14 and the per-loss table, 7 rounds
    python benchmarks/bench.py --cases kernels --losses ctc,multi-margin --repeat 9
    python benchmarks/bench.py --cases startup --also ../old-checkout   # start-up against another checkout
    python benchmarks/bench.py --cases all           # and parquet, remote (moto, boto3, s3fs), dask-* (dask)
    python benchmarks/bench.py --quick               # tiny inputs, one round: a smoke test, its times mean nothing

Three kinds of measure, each printed as a markdown table ready to paste into docs/performance.md:

* **Whole processes** (start-up, files, CSV, ``-r none -o``, parquet, remote, dask): each run a child process
  timed from start to exit; its peak RSS is what the kernel reports for it (``os.wait4``). losscli runs as users
  run it: its console script (the file ``pip install`` writes for its entry point), on the working tree, its
  bytecode cached as after ``pip install``.
* **In memory** (MSE over 5e7 float32, cross-entropy): one child process makes the inputs, imports everything,
  then times each tool's call (``perf_counter`` around it), torch with ``torch.set_num_threads(2)``.
* **Kernels**: every loss, ``losscli.compute`` (numpy backend) against its ``torch.nn.functional`` function on
  the same arrays, in memory as above, one child process per family; the values must agree to 1e-4 relative.

The tools of a case take turns, round after round, each round in a rotated order, so that a machine busy with
something else slows them alike. Every figure is a median over the rounds, with the spread (min-max) beside it,
and a target is judged on the median: one met only in the best round is not met. Below each table: the share
of the machine's CPU that other processes took while a tool ran, and whether the values agreed.

The dask cases (``dask-*``) measure ``--engine dask`` against the local engine (their reference) on sharded
``.npy`` files: with the local cluster a run starts itself, and against clusters of 1 and 2 workers that the
benchmark starts before the runs (``dask scheduler``, ``dask worker``) and stops after them. The workers' RSS is
not in a client's peak: the table adds their peak (each worker's ``VmHWM`` over a run, summed over the workers),
and every tool must print the very same digits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TRIES = 5  # runs of a tool at most, for one timed run, on a busy machine (--busy)
AGREE = 1e-4  # relative: how close an in-memory tool's value must be to the reference's
CPUS = os.cpu_count() or 1
# seconds of rest before each timed call in memory: torch's OpenMP workers (and OpenBLAS's) spin for a while after
# a call, and on 2 cores they slowed the next tool's call (losscli's MSE over 1e7: 43 ms right after torch, 32 ms
# after a rest; torch itself was not slowed)
PAUSE = 0.1


class Target(NamedTuple):
    """A goal for one tool, judged on medians: its time at most ``time`` x the reference's, its peak RSS at most
    ``peak_mib`` MiB or ``peak_ratio`` x the reference's, its throughput at least ``gbps`` GB/s."""

    time: float | None = None
    peak_mib: float | None = None
    peak_ratio: float | None = None
    gbps: float | None = None

    def __str__(self) -> str:
        parts = [f"time ≤ {self.time:g}x" if self.time is not None else "",
                 f"peak RSS ≤ {self.peak_mib:g} MiB" if self.peak_mib is not None else "",
                 f"peak RSS ≤ {self.peak_ratio:g}x" if self.peak_ratio is not None else "",
                 f"≥ {self.gbps:g} GB/s" if self.gbps is not None else ""]
        return ", ".join(part for part in parts if part)

    def met(self, ratio: float = 0.0, peak: float = 0.0, peak_ratio: float = 0.0, gbps: float = float("inf")) -> bool:
        """Whether the figures (time ratio, peak RSS in bytes, its ratio, GB/s) meet every bound the target has."""
        return ((self.time is None or ratio <= self.time) and (self.peak_mib is None or peak <= self.peak_mib * 2**20)
                and (self.peak_ratio is None or peak_ratio <= self.peak_ratio)
                and (self.gbps is None or gbps >= self.gbps))


def verdict(target: Target | None, median: dict[str, float], best: dict[str, float]) -> str:
    """The met? cell: judged on the medians; a target met only by the best round's figures says so."""
    if target is None:
        return ""
    if target.met(**median):
        return "yes"
    return "**no** (met in the best round only)" if target.met(**best) else "**no**"


@dataclass
class Tool:
    """One tool of a case: a command run as a process of its own (``argv``), or, in memory, a call that a child
    times (``argv`` empty). The last tool of a case is the reference the others are measured against."""

    name: str
    argv: list[str] = field(default_factory=list)
    target: Target | None = None  # the goal this tool is judged on
    times: list[float] = field(default_factory=list)  # seconds, one per round
    peaks: list[int] = field(default_factory=list)  # bytes
    output: str = ""  # of the last run (in memory: the value)
    outputs: set[str] = field(default_factory=set)  # of every timed run
    cluster: Running | None = None  # a dask cluster started before the case's runs, that this tool uses
    workers: Callable[[int], list[int]] | None = None  # (the run's pid) -> pids of the dask workers it uses
    worker_peaks: list[int] = field(default_factory=list)  # bytes: each worker's peak RSS in a run, summed
    others: list[float] = field(default_factory=list)  # share of the machine's CPU that other processes took
    retried: int = 0  # runs run again because the machine was busy (--busy)


@dataclass
class Case:
    """Whole processes on the same inputs; the last tool is the reference the others are measured against.
    ``agree``: code run in the folder after the runs, printing one line on whether the outputs agree."""

    name: str
    build: Callable[[bool], tuple[str, list[Tool]]]  # quick -> (code that writes the inputs, tools)
    size: tuple[str, str]  # (full, quick), as the report names them
    needs: tuple[str, ...] = ()  # modules without which the case is skipped
    exact: bool = False  # every tool must print the reference's output, digit for digit
    agree: str = ""
    # rounds per --repeat: a case of short runs, whose spread from round to round is wider than the margins it
    # judges, takes more rounds (they cost little) so that its median settles
    rounds: int = 1


SCRIPTS = "bin"  # in the temporary folder: the console scripts (see console_script)


def losscli(*args: str, script: str = "losscli") -> list[str]:
    return [sys.executable, f"{SCRIPTS}/{script}", *args]


def console_script(tree: Path) -> str:
    """The script ``pip install`` writes for losscli's console entry point (read from ``tree``'s pyproject.toml),
    with ``tree`` first on ``sys.path``: the ``losscli`` command as users run it, from that checkout."""
    import tomllib

    module, function = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]["losscli"].split(":")
    return (f"import re\nimport sys\nsys.path.insert(0, {str(tree)!r})\nfrom {module} import {function}\n"
            "if __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
            f"    sys.exit({function}())\n")


def write_scripts(folder: Path, also: list[Path]) -> None:
    """``bin/losscli`` for the working tree, and ``bin/losscli-1``, ... for the checkouts of ``--also``."""
    (folder / SCRIPTS).mkdir()
    for name, tree in [("losscli", ROOT), *((f"losscli-{i}", tree) for i, tree in enumerate(also, 1))]:
        (folder / SCRIPTS / name).write_text(console_script(tree))


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# Each case gives the code that writes its inputs (run in a child: see run_setup) and its tools, all run in
# the temporary folder.
SETUP = "import numpy as np\nrng = np.random.default_rng(0)\n"


def two_npy(quick: bool) -> str:
    """a.npy and b.npy: two float32 vectors of 5e7 elements (200 MB each; 1e6 quick)."""
    n = 10**6 if quick else 5 * 10**7
    return SETUP + f"for name in ('a.npy', 'b.npy'):\n    np.save(name, rng.standard_normal({n}, dtype=np.float32))"


def build_startup(quick: bool, also: list[Path] = ()) -> tuple[str, list[Tool]]:
    """losscli on tiny files, plain and as its default table, against importing numpy; ``also``: the plain
    command from other checkouts (an earlier commit), each with its bytecode cached like this one's."""
    others = [Tool(f"losscli mse tiny.npy tiny.npy -f plain ({tree})",
                   losscli("mse", "tiny.npy", "tiny.npy", "-f", "plain", script=f"losscli-{i}"))
              for i, tree in enumerate(also, 1)]
    return SETUP + "np.save('tiny.npy', np.arange(4, dtype=np.float32))", [
        Tool("losscli mse tiny.npy tiny.npy -f plain", losscli("mse", "tiny.npy", "tiny.npy", "-f", "plain"),
             Target(time=1.4)),
        Tool("losscli mse tiny.npy tiny.npy (table)", losscli("mse", "tiny.npy", "tiny.npy"), Target(time=1.7)),
        *others, Tool('python -c "import numpy"', python("import numpy"))]


def build_mse_files(quick: bool) -> tuple[str, list[Tool]]:
    code = ("import time\nimport numpy as np\nt = time.perf_counter()\n"
            "print(np.mean((np.load('a.npy') - np.load('b.npy'))**2), time.perf_counter() - t)")
    return two_npy(quick), [Tool("losscli mse a.npy b.npy -f plain", losscli("mse", "a.npy", "b.npy", "-f", "plain"),
                                 Target(time=0.6, peak_mib=64)),
                            Tool("np.mean((np.load(a) - np.load(b))**2)", python(code))]


def build_none_out(quick: bool) -> tuple[str, list[Tool]]:
    """Every element's loss written to a file, against the one-liner that computes it whole and saves it."""
    code = "import numpy as np\nnp.save('o.npy', (np.load('a.npy') - np.load('b.npy'))**2)"
    return two_npy(quick), [Tool("losscli mse a.npy b.npy -r none -o out.npy",
                                 losscli("mse", "a.npy", "b.npy", "-r", "none", "-o", "out.npy"),
                                 Target(time=1.0, peak_mib=160)),
                            Tool("np.save(o, (np.load(a) - np.load(b))**2)", python(code))]


NONE_OUT_AGREE = ("import numpy as np\nmine, theirs = np.load('out.npy'), np.load('o.npy')\n"
                  "same = mine.dtype == theirs.dtype and mine.shape == theirs.shape\n"
                  "print('out.npy and the one-liner\\'s o.npy agree (dtype, shape, values to 1e-6 relative)'"
                  " if same and np.allclose(mine, theirs, rtol=1e-6, atol=0) else "
                  "f'values differ: out.npy {mine.dtype} {mine.shape}, the one-liner\\'s {theirs.dtype} {theirs.shape}'"
                  " + (f', largest difference {np.max(np.abs(mine - theirs))}' if same else ''))")


def build_parquet(quick: bool) -> tuple[str, list[Tool]]:
    """mse over two float32 columns of a Parquet file in row groups of 2**20 rows, against reading the table
    whole with pyarrow and taking the mean."""
    n = 10**6 if quick else 5 * 10**7
    setup = SETUP + ("import pyarrow as pa, pyarrow.parquet as pq\n"
                     f"pred = rng.standard_normal({n}, dtype=np.float32)\n"
                     f"target = rng.standard_normal({n}, dtype=np.float32)\n"
                     "pq.write_table(pa.table({'pred': pred, 'target': target}), 'data.parquet', "
                     "row_group_size=1 << 20, compression='none')")
    code = ("import time\nimport numpy as np, pyarrow.parquet as pq\nt = time.perf_counter()\n"
            "d = pq.read_table('data.parquet')\n"
            "p, y = d['pred'].to_numpy(), d['target'].to_numpy()\n"
            "print(np.mean((p - y)**2), time.perf_counter() - t)")
    return setup, [Tool("losscli mse data.parquet:pred data.parquet:target -f plain",
                        losscli("mse", "data.parquet:pred", "data.parquet:target", "-f", "plain"),
                        Target(peak_ratio=0.25)),
                   Tool("pq.read_table(data.parquet) + np.mean", python(code))]


def build_csv(quick: bool) -> tuple[str, list[Tool]]:
    n = 10**4 if quick else 10**6
    setup = SETUP + (f"np.savetxt('data.csv', rng.random(({n}, 2)), fmt='%.8g', delimiter=',', "
                     "header='pred,target', comments='')")
    code = ("import time\nimport numpy as np\nt = time.perf_counter()\n"
            "d = np.loadtxt('data.csv', delimiter=',', skiprows=1)\n"
            "print(np.mean((d[:, 0] - d[:, 1])**2), time.perf_counter() - t)")
    floor = ("import time\nimport numpy as np\nimport pyarrow.csv as pcsv\nt = time.perf_counter()\n"
             "d = pcsv.read_csv('data.csv')\n"
             "print(np.mean((d['pred'].to_numpy() - d['target'].to_numpy())**2), time.perf_counter() - t)")
    return setup, [Tool("losscli mse data.csv:pred data.csv:target -f plain (with pyarrow)",
                        losscli("mse", "data.csv:pred", "data.csv:target", "-f", "plain"), Target(time=0.5)),
                   Tool("pyarrow.csv.read_csv(data.csv) + np.mean (the floor: no CLI, pyarrow's own threads)",
                        python(floor)),
                   Tool("np.loadtxt(data.csv) + np.mean", python(code))]


def build_remote(quick: bool) -> tuple[str, list[Tool]]:
    """Two .npy objects on a local S3 server (:func:`s3_server`): losscli reads them by ranged requests, a chunk at
    a time, against downloading each whole with boto3 and computing in memory."""
    n = 10**6 if quick else 5 * 10**7
    setup = SETUP + ("import io, boto3\ns3 = boto3.client('s3')\ns3.create_bucket(Bucket='bench')\n"
                     "for name in ('a.npy', 'b.npy'):\n    f = io.BytesIO()\n"
                     f"    np.save(f, rng.standard_normal({n}, dtype=np.float32))\n"
                     "    s3.put_object(Bucket='bench', Key=name, Body=f.getvalue())")
    code = ("import io, time\nimport boto3, numpy as np\nt = time.perf_counter()\ns3 = boto3.client('s3')\n"
            "a, b = (np.load(io.BytesIO(s3.get_object(Bucket='bench', Key=k)['Body'].read())) for k in ('a.npy', 'b.npy'))\n"
            "print(np.mean((a - b)**2), time.perf_counter() - t)")
    return setup, [Tool("losscli mse s3://bench/a.npy s3://bench/b.npy -f plain",
                        losscli("mse", "s3://bench/a.npy", "s3://bench/b.npy", "-f", "plain"), Target(peak_ratio=0.25)),
                   Tool("boto3 get_object (whole) + np.load + np.mean", python(code))]


@contextlib.contextmanager
def s3_server(env: dict[str, str]) -> Iterator[None]:
    """moto's S3 server on a free port of 127.0.0.1, in a process of its own; ``env`` points children at it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the S3 server (moto) did not start within 30 s") from None
                time.sleep(0.1)
        env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


# rows per shard, in hundredths of the whole: eight shards of uneven sizes
SHARDS = (9, 14, 11, 16, 7, 13, 12, 18)


def shards(rows: int) -> list[int]:
    counts = [rows * share // 100 for share in SHARDS]
    counts[-1] += rows - sum(counts)
    return counts


def write_shards(prefix: str, rows: int, make: str) -> str:
    """Code that writes ``prefix-0.npy`` ... ``prefix-7.npy``, shard ``i`` of ``n`` rows being ``make`` (an
    expression of ``n``), one shard in memory at a time."""
    return f"for i, n in enumerate({shards(rows)}):\n    np.save(f'{prefix}-{{i}}.npy', {make})\n"


def build_dask(loss: str, inputs: tuple[str, str], setup: Callable[[bool], str],
               judged: int | None) -> Callable[[bool], tuple[str, list[Tool]]]:
    """``losscli LOSS 'a-*.npy' 'b-*.npy'`` on eight shards: with ``--engine dask`` (the local cluster it starts
    itself, one worker per core), against running clusters of 2 and 1 workers, and the local engine (the
    reference). ``judged``: the size of the running cluster that the case's target (time ≤ 1.3x) is about."""
    def build(quick: bool) -> tuple[str, list[Tool]]:
        files = [f"{name}-*.npy" for name in inputs]
        command = [loss, *files, "--format", "plain"]
        shown = f"losscli {loss} {' '.join(repr(f) for f in files)}"
        two, one = Running(2), Running(1)
        tools = [Tool(f"{shown} --engine dask (local cluster of {CPUS}, started by the run)",
                      losscli(*command, "--engine", "dask"), workers=descendants)]
        for cluster in (two, one):
            tools.append(Tool(f"{shown} --engine dask --scheduler (running, {cluster.size} worker"
                              f"{'s' if cluster.size > 1 else ''})",
                              losscli(*command, "--engine", "dask", "--scheduler", cluster.address),
                              Target(time=1.3) if judged == cluster.size else None, cluster=cluster,
                              workers=cluster.pids))
        tools.append(Tool(f"{shown} (local engine)", losscli(*command)))
        return SETUP + setup(quick), tools
    return build


def dask_mse_setup(quick: bool) -> str:
    """Two float32 inputs of 4e8 elements (1e7 quick), each in eight shards of (rows, 8)."""
    rows = (10**7 if quick else 4 * 10**8) // 8
    make = "rng.standard_normal((n, 8), dtype=np.float32)"
    return write_shards("p", rows, make) + write_shards("t", rows, make)


def dask_ce_setup(quick: bool) -> str:
    """(4e7, 10) float32 logits ((1e6, 10) quick) and int64 labels, each in eight shards."""
    rows = 10**6 if quick else 4 * 10**7
    return (write_shards("x", rows, "rng.standard_normal((n, 10), dtype=np.float32)")
            + write_shards("y", rows, "rng.integers(0, 10, n)"))


class Running:
    """A dask scheduler and ``size`` workers of one thread each, as processes of their own on 127.0.0.1
    (``dask scheduler``, ``dask worker --nthreads 1 --no-nanny``), started before a case's runs and stopped
    after them, so that a run against it pays no start-up."""

    def __init__(self, size: int) -> None:
        self.size, self.port = size, free_port()
        self.procs: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def pids(self, run: int) -> list[int]:
        return [proc.pid for proc in self.procs[1:]]

    def start(self, env: dict[str, str], folder: Path, log: Path) -> None:
        dask = [sys.executable, "-m", "dask"]
        with open(log, "ab") as out:
            self.procs.append(subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                "--no-dashboard"], stdout=out, stderr=out, env=env, cwd=folder))
            for _ in range(self.size):
                self.procs.append(subprocess.Popen(
                    [*dask, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                     "--host", "127.0.0.1", "--local-directory", str(folder / f"dask-{self.port}")],
                    stdout=out, stderr=out, env=env, cwd=folder))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the workers, then the scheduler
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


@contextlib.contextmanager
def running(clusters: list[Running], env: dict[str, str], folder: Path) -> Iterator[None]:
    """``clusters`` started (all at once), then stopped when the case is done."""
    log = folder / "dask.log"
    # their start-up is not measured: the installed bytecode of dask and its dependencies (not compiled again
    # into the benchmark's cache), losscli's compiled in memory
    env = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"} | {"PYTHONDONTWRITEBYTECODE": "1"}
    try:
        for cluster in clusters:
            cluster.start(env, folder, log)
        wait = "from distributed import Client\n" + "".join(
            f"with Client({c.address!r}, timeout=60) as client:\n    client.wait_for_workers({c.size}, timeout=60)\n"
            for c in clusters)
        if clusters and subprocess.run([sys.executable, "-c", wait], env=env, cwd=folder,
                                       capture_output=True).returncode:
            raise SystemExit(f"a dask cluster did not start:\n{log.read_text()[-2000:]}")
        yield
    finally:
        for cluster in clusters:
            cluster.stop()


def descendants(pid: int) -> list[int]:
    """Every process ``pid`` started, from ``/proc/PID/task/*/children``: the local cluster's workers (and
    multiprocessing's resource tracker)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peaks:
    """The peak RSS of the processes ``pids(run)`` while a run lasts, read every 50 ms from their ``VmHWM``
    (the kernel's high-water mark, which ``clear_refs`` resets for processes that outlive a run)."""

    def __init__(self, pids: Callable[[int], list[int]], run: int) -> None:
        self.pids, self.run, self.high = pids, run, {}
        for pid in pids(run):
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            self._read()

    def _read(self) -> None:
        for pid in self.pids(self.run):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            high = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            self.high[pid] = max(self.high.get(pid, 0), high)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        self._read()  # the workers of a running cluster are still there
        return sum(self.high.values())


CASES = {case.name: case for case in [
    Case("startup", build_startup, ("4 elements", "4 elements"), rounds=9),
    Case("mse-files", build_mse_files, ("two .npy files of 5e7 float32 (200 MB each)", "1e6 float32")),
    Case("csv", build_csv, ("1e6 rows x 2 columns", "1e4 rows"), needs=("pyarrow",)),
    Case("none-out", build_none_out, ("two .npy files of 5e7 float32", "1e6 float32"), agree=NONE_OUT_AGREE),
    Case("parquet", build_parquet, ("5e7 rows x 2 float32, row groups of 2^20", "1e6 rows x 2"), needs=("pyarrow",)),
    Case("remote", build_remote, ("5e7 float32 (200 MB) each", "1e6"), needs=("moto", "boto3", "s3fs")),
    Case("dask-mse", build_dask("mse", ("p", "t"), dask_mse_setup, judged=2),
         ("4e8 float32 (1.6 GB) each, 8 shards of (rows, 8)", "1e7 in 8 shards"), needs=("distributed",), exact=True),
    Case("dask-ce", build_dask("cross-entropy", ("x", "y"), dask_ce_setup, judged=None),
         ("(4e7, 10) float32 and 4e7 int64, 8 shards", "(1e6, 10) in 8 shards"), needs=("distributed",), exact=True),
]}


# ------------------------------------------------------------------------------- in memory, in a child process


class Workload(NamedTuple):
    """What a child times: ``tools`` (name -> a call returning the loss's value; losscli first, the reference
    last) on ``arrays``; ``elements`` of the loss's input, ``nbytes`` of every array the loss reads."""

    size: str
    elements: int
    nbytes: int
    tools: dict[str, Callable[[], float]]
    arrays: tuple[Any, ...]


class Kernel(NamedTuple):
    """A loss's standard in-memory workload: ``make(shape, rng)`` gives its arrays in torch's argument order
    (numpy), for ``shape`` (``quick``: tiny); ``options`` are keywords that losscli.compute and torch both take."""

    torch_name: str
    family: str  # the losses of a family run in one child process
    make: Callable[[tuple[int, ...], Any], tuple[Any, ...]]
    shape: tuple[int, ...]
    quick: tuple[int, ...]
    options: dict[str, Any] = {}


def normal(rng: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return rng.standard_normal(shape, dtype=np.float32)


def signs(rng: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.float32)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """Log-probabilities of scores ``x`` along ``axis``, in ``x``'s dtype."""
    import numpy as np

    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def sigmoid(x: Any) -> Any:
    import numpy as np

    return (1 / (1 + np.exp(-x))).astype(np.float32)


def ones_zeros(rng: Any, shape: tuple[int, ...], share: float = 0.5) -> Any:
    import numpy as np

    return (rng.random(shape) < share).astype(np.float32)


def label_lists(rng: Any, shape: tuple[int, ...]) -> Any:
    """multilabel-margin targets: each row 1-5 distinct class indices, then -1."""
    import numpy as np

    rows, classes = shape
    order = np.argsort(rng.random(shape), axis=1)
    keep = np.arange(classes) < rng.integers(1, min(5, classes) + 1, rows)[:, None]
    return np.where(keep, order, -1).astype(np.int64)


def ctc_inputs(shape: tuple[int, ...], rng: Any) -> tuple[Any, ...]:
    """(T, N, C) log-probabilities (class 0 the blank), (N, S) padded targets, input lengths in [0.75 T, T],
    target lengths in [0.4 S, S]."""
    frames, n, classes, longest = shape
    targets = rng.integers(1, classes, (n, longest))
    return (log_softmax(normal(rng, (frames, n, classes))), targets,
            rng.integers(frames * 3 // 4, frames + 1, n), rng.integers(max(1, longest * 2 // 5), longest + 1, n))


def linear_inputs(shape: tuple[int, ...], rng: Any) -> tuple[Any, ...]:
    """(N, H) hidden states, a (V, H) vocabulary projection, (N,) next tokens."""
    import numpy as np

    n, hidden, vocab = shape
    return normal(rng, (n, hidden)), normal(rng, (vocab, hidden)) / np.float32(np.sqrt(hidden)), \
        rng.integers(0, vocab, n)


def softmax(x: Any) -> Any:
    import numpy as np

    return np.exp(log_softmax(x))


def poisson(rng: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Log-rates around 0 and counts drawn from them (poisson-nll's log_input=True)."""
    import numpy as np

    log_rate = normal(rng, shape) * np.float32(0.5)
    return log_rate, rng.poisson(np.exp(log_rate)).astype(np.float32)


def pair(shape: tuple[int, ...], rng: Any) -> tuple[Any, ...]:
    return normal(rng, shape), normal(rng, shape)


# Standard sizes: element-wise losses 1e7 float32 elements, class losses (1e5, 1000), class scores (1e5, 100),
# embeddings (1e5, 128), ctc (T, N, C) = (200, 32, 40) with targets up to 50 labels, linear-cross-entropy
# (N, H, V) = (2048, 256, 8192). In catalog order (as `losscli list` shows them).
ELEMENTS, FEW = (10**7,), (1000,)
KERNELS: dict[str, Kernel] = {
    "mse": Kernel("mse_loss", "regression", pair, ELEMENTS, FEW),
    "l1": Kernel("l1_loss", "regression", pair, ELEMENTS, FEW),
    "smooth-l1": Kernel("smooth_l1_loss", "regression", pair, ELEMENTS, FEW),
    "huber": Kernel("huber_loss", "regression", pair, ELEMENTS, FEW),
    "nll": Kernel("nll_loss", "classes", lambda s, r: (log_softmax(normal(r, s)), r.integers(0, s[1], s[0])),
                  (10**5, 1000), (100, 10)),
    "cross-entropy": Kernel("cross_entropy", "classes", lambda s, r: (normal(r, s), r.integers(0, s[1], s[0])),
                            (10**5, 1000), (100, 10)),
    "bce": Kernel("binary_cross_entropy", "binary", lambda s, r: (sigmoid(normal(r, s)), ones_zeros(r, s)),
                  ELEMENTS, FEW),
    "bce-with-logits": Kernel("binary_cross_entropy_with_logits", "binary",
                              lambda s, r: (normal(r, s), ones_zeros(r, s)), ELEMENTS, FEW),
    "kl-div": Kernel("kl_div", "divergence", lambda s, r: (log_softmax(normal(r, s)), softmax(normal(r, s))),
                     (10**5, 100), (100, 10), {"reduction": "batchmean"}),
    "poisson-nll": Kernel("poisson_nll_loss", "divergence", lambda s, r: poisson(r, s), ELEMENTS, FEW),
    "gaussian-nll": Kernel("gaussian_nll_loss", "divergence",
                           lambda s, r: (*pair(s, r), (0.5 + r.random(s)).astype("float32")), ELEMENTS, FEW),
    "margin-ranking": Kernel("margin_ranking_loss", "margin", lambda s, r: (*pair(s, r), signs(r, s)), ELEMENTS, FEW),
    "hinge-embedding": Kernel("hinge_embedding_loss", "margin", lambda s, r: (abs(normal(r, s)), signs(r, s)),
                              ELEMENTS, FEW),
    "soft-margin": Kernel("soft_margin_loss", "margin", lambda s, r: (normal(r, s), signs(r, s)), ELEMENTS, FEW),
    "multilabel-soft-margin": Kernel("multilabel_soft_margin_loss", "class scores",
                                     lambda s, r: (normal(r, s), ones_zeros(r, s, 0.05)), (10**5, 100), (100, 10)),
    "multilabel-margin": Kernel("multilabel_margin_loss", "class scores",
                                lambda s, r: (normal(r, s), label_lists(r, s)), (10**5, 100), (100, 10)),
    "multi-margin": Kernel("multi_margin_loss", "class scores",
                           lambda s, r: (normal(r, s), r.integers(0, s[1], s[0])), (10**5, 100), (100, 10)),
    "cosine-embedding": Kernel("cosine_embedding_loss", "embeddings",
                               lambda s, r: (*pair(s, r), signs(r, s[:1])), (10**5, 128), (100, 8)),
    "triplet-margin": Kernel("triplet_margin_loss", "embeddings", lambda s, r: (*pair(s, r), normal(r, s)),
                             (10**5, 128), (100, 8)),
    "triplet-margin-with-distance": Kernel("triplet_margin_with_distance_loss", "embeddings",
                                           lambda s, r: (*pair(s, r), normal(r, s)), (10**5, 128), (100, 8)),
    "ctc": Kernel("ctc_loss", "sequence", ctc_inputs, (200, 32, 40, 50), (20, 4, 6, 5)),
    "linear-cross-entropy": Kernel("linear_cross_entropy", "sequence", linear_inputs, (2048, 256, 8192), (16, 8, 32)),
}


def short(n: int) -> str:
    """10000000 -> '1e7', 50000000 -> '5e7'; numbers under 10^4, or not of that form, as they are."""
    digits = str(n)
    return f"{digits[0]}e{len(digits) - 1}" if n >= 10**4 and digits[1:] == "0" * (len(digits) - 1) else digits


def describe(arrays: tuple[Any, ...]) -> str:
    """'2 x (1e7,) float32', or each array's shape and dtype: '(1e5, 1000) float32, (1e5,) int64'."""
    shown = [f"({', '.join(short(d) for d in a.shape)}{',' if a.ndim == 1 else ''}) {a.dtype}" for a in arrays]
    return f"{len(shown)} x {shown[0]}" if len(set(shown)) == 1 and len(shown) > 1 else ", ".join(shown)


def kernel_workload(loss: str, shape: tuple[int, ...]) -> Workload:
    """``loss`` on its kernel's arrays of ``shape``: ``losscli.compute`` (numpy backend) and the
    ``torch.nn.functional`` function on tensors that share the arrays' memory."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    import losscli as lc

    kernel = KERNELS[loss]
    arrays = kernel.make(shape, np.random.default_rng(0))
    tensors = [torch.from_numpy(a) for a in arrays]
    function = getattr(F, kernel.torch_name)
    return Workload(describe(arrays), arrays[0].size, sum(a.nbytes for a in arrays), {
        "losscli": lambda: float(lc.compute(loss, *arrays, **kernel.options).item()),
        "torch": lambda: float(function(*tensors, **kernel.options).item())}, arrays)


def mse_memory(quick: bool) -> Workload:
    """MSE over two float32 vectors of 5e7 in memory: losscli, the numpy one-liner, F.mse_loss on 2 threads."""
    import numpy as np

    work = kernel_workload("mse", (10**6,) if quick else (5 * 10**7,))
    a, b = work.arrays
    return work._replace(tools={"losscli.compute('mse', a, b)": work.tools["losscli"],
                                "np.mean((a - b)**2)": lambda: float(np.mean((a - b) ** 2)),
                                "F.mse_loss(a, b), 2 threads": work.tools["torch"]})


def cross_entropy_memory(shape: tuple[int, int], quick_shape: tuple[int, int]) -> Callable[[bool], Workload]:
    """Cross-entropy's kernel workload at ``shape`` (logits, int64 labels): losscli against F.cross_entropy."""
    def build(quick: bool) -> Workload:
        work = kernel_workload("cross-entropy", quick_shape if quick else shape)
        return work._replace(tools={"losscli.compute('cross-entropy', x, y)": work.tools["losscli"],
                                    "F.cross_entropy(x, y), 2 threads": work.tools["torch"]})
    return build


class MemoryCase(NamedTuple):
    """Tools timed in memory, in one child process; ``target``: losscli's (the first tool's)."""

    name: str
    build: Callable[[bool], Workload]
    target: Target


MEMORY = {case.name: case for case in [
    MemoryCase("mse-memory", mse_memory, Target(gbps=10)),
    MemoryCase("ce-1000", cross_entropy_memory((10**5, 1000), (100, 1000)), Target(time=1.0)),
    MemoryCase("ce-10", cross_entropy_memory((10**6, 10), (1000, 10)), Target(time=0.5)),
]}


class Call(NamedTuple):
    seconds: float
    value: float
    others: float  # share of the machine's CPU that other processes took during the call and the rest before it


def alternate(count: int, rounds: int, once: Callable[[int], Any],
              busy: float | None) -> tuple[list[list[Any]], list[int]]:
    """``rounds`` rounds of ``count`` tools, each round in an order rotated by one: ``runs[tool][round]``, each
    ``once(tool)``'s answer (with ``.others``). ``busy``: a run during which other processes took more than this
    share of the machine's CPU is run again (at most :data:`TRIES` times; the last try counts). Also returns how
    many runs of each tool were run again."""
    runs: list[list[Any]] = [[] for _ in range(count)]
    retried = [0] * count
    for r in range(rounds):
        for tool in [*range(r % count, count), *range(r % count)]:
            for attempt in range(TRIES):
                run = once(tool)
                if busy is None or run.others <= busy:
                    break
                retried[tool] += attempt < TRIES - 1
            runs[tool].append(run)
    return runs, retried


def time_call(call: Callable[[], float]) -> Call:
    """One call timed, after :data:`PAUSE` of rest. Other processes' share of the CPU is measured over the rest
    and the call together: /proc/stat counts in ticks of 10 ms, too coarse for a short call alone."""
    busy, own, rest = cpu_busy(), time.process_time(), time.perf_counter()
    time.sleep(PAUSE)
    start = time.perf_counter()
    value = call()
    end = time.perf_counter()
    others = max(0.0, cpu_busy() - busy - (time.process_time() - own)) / ((end - rest) * CPUS)
    return Call(end - start, value, others)


def child(job: dict[str, Any]) -> None:
    """In a child process: each workload of ``job["names"]`` (a MemoryCase's or a loss's) timed
    (:func:`time_workload`), one JSON line per workload on stdout."""
    import warnings

    import torch

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")  # torch's and losscli's warnings about the inputs are not what is measured
    for name in job["names"]:
        try:
            out = time_workload(name, job["quick"], job["rounds"], job["busy"])
        except Exception as e:  # noqa: BLE001 - a loss that fails is a row of the table that says why
            out = {"name": name, "error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
        print(json.dumps(out), flush=True)


def time_workload(name: str, quick: bool, rounds: int, busy: float | None) -> dict[str, Any]:
    """The workload made, each tool called once untimed (unless quick), then timed in alternating rounds."""
    work = (MEMORY[name].build(quick) if name in MEMORY
            else kernel_workload(name, KERNELS[name].quick if quick else KERNELS[name].shape))
    calls = list(work.tools.values())
    if not quick:
        for call in calls:
            call()
    runs, retried = alternate(len(calls), rounds, lambda i: time_call(calls[i]), busy)
    return {"name": name, "size": work.size, "elements": work.elements, "nbytes": work.nbytes,
            "tools": [{"name": tool, "times": [c.seconds for c in done], "others": [c.others for c in done],
                       "value": done[-1].value, "retried": again}
                      for tool, done, again in zip(work.tools, runs, retried)]}


class Timed(NamedTuple):
    """In memory: a workload's measures (``error``: why it has none)."""

    name: str
    size: str = ""
    elements: int = 0
    nbytes: int = 0
    tools: tuple[Tool, ...] = ()
    error: str = ""


def run_child(names: list[str], env: dict[str, str], folder: Path, rounds: int, quick: bool,
              busy: float | None) -> list[Timed]:
    """The workloads ``names`` timed in one child process (this script with ``--child``)."""
    job = json.dumps({"names": names, "quick": quick, "rounds": rounds, "busy": busy})
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", job], env=env, cwd=folder,
                          capture_output=True, text=True)
    found = {}
    for line in proc.stdout.splitlines():
        got = json.loads(line)
        tools = tuple(Tool(t["name"], times=t["times"], others=t["others"], output=repr(t["value"]),
                           retried=t["retried"]) for t in got.get("tools", ()))
        found[got["name"]] = Timed(got["name"], got.get("size", ""), got.get("elements", 0), got.get("nbytes", 0),
                                   tools, got.get("error", ""))
    died = f"the child process exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return [found.get(name, Timed(name, error=died)) for name in names]


# ------------------------------------------------------------------------------------- whole processes


def child_env(folder: Path) -> dict[str, str]:
    """Bytecode cached (under the temporary folder, not in the tree), the working tree importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_setup(code: str, env: dict[str, str], folder: Path) -> str:
    """The inputs are written by a child, so that this process stays small: the kernel counts a child's
    peak RSS from before its exec, when it is a copy of this process, so a big parent would show in it."""
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


def cpu_busy() -> float:
    """Seconds of CPU the whole machine has spent busy since boot, all cores (``/proc/stat``; steal left out)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """Seconds of CPU (user and system) that the processes ``pids`` have taken."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Run(NamedTuple):
    seconds: float
    peak: int  # bytes
    output: str
    worker_peak: int | None  # bytes
    others: float  # share of the machine's CPU that other processes took during the run


def run_once(tool: Tool, env: dict[str, str], folder: Path, background: list[int] = ()) -> Run:
    """One run of ``tool``; ``background``: the benchmark's own processes that outlive it (running clusters),
    counted as its own, not as others', in the machine's CPU during the run."""
    out = folder / "stdout.txt"
    with open(out, "wb") as stdout, open(folder / "stderr.txt", "wb") as stderr:
        busy, ours = cpu_busy(), cpu_of(background) + time.process_time()
        start = time.perf_counter()
        proc = subprocess.Popen(tool.argv, stdout=stdout, stderr=stderr, env=env, cwd=folder)
        workers = Peaks(tool.workers, proc.pid) if tool.workers is not None else None
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        worker_peak = workers.stop() if workers is not None else None
        ours = cpu_of(background) + time.process_time() - ours + usage.ru_utime + usage.ru_stime
        others = max(0.0, cpu_busy() - busy - ours) / (elapsed * CPUS)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tool.name} exited with {proc.returncode}:\n{(folder / 'stderr.txt').read_text()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss * 1024, out.read_text().strip(), worker_peak, others)  # KiB on Linux


def measure(tools: list[Tool], env: dict[str, str], folder: Path, repeat: int, warmup: bool,
            busy: float | None = None) -> None:
    """Every tool once untimed (page cache, bytecode), then ``repeat`` alternating rounds (:func:`alternate`)."""
    clusters = dict.fromkeys(tool.cluster for tool in tools if tool.cluster is not None)
    background = [proc.pid for cluster in clusters for proc in cluster.procs]
    if warmup:
        for tool in tools:
            run_once(tool, env, folder, background)
    runs, retried = alternate(len(tools), repeat, lambda i: run_once(tools[i], env, folder, background), busy)
    for tool, done, again in zip(tools, runs, retried):
        tool.times = [run.seconds for run in done]
        tool.peaks = [run.peak for run in done]
        tool.output = done[-1].output
        tool.outputs = {run.output for run in done}
        tool.worker_peaks = [run.worker_peak for run in done if run.worker_peak is not None]
        tool.others = [run.others for run in done]
        tool.retried = again


# ------------------------------------------------------------------------------------------- the report


def value(output: str) -> float | None:
    try:
        return float(output.split()[0])
    except (IndexError, ValueError):
        return None


def spread(values: list[float], scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    """'median (min–max)' of ``values`` times ``scale``; just the value when there is one."""
    m, lo, hi = (f"{v * scale:.{digits}f}" for v in (statistics.median(values), min(values), max(values)))
    return f"{m}{unit}" if len(values) == 1 else f"{m}{unit} ({lo}–{hi})"


def ratios(tool: Tool, reference: Tool) -> list[float]:
    """The tool's time over the reference's, round by round (the same round: the same conditions)."""
    return [t / r for t, r in zip(tool.times, reference.times)]


def others_note(name: str, tools: list[Tool] | tuple[Tool, ...], busiest: bool = True) -> str:
    """The share of the machine's CPU that other processes took while the tools ran, all runs together (and in
    the busiest run, where runs are long enough for /proc/stat's ticks of 10 ms to tell)."""
    shares = [(share, seconds) for tool in tools for share, seconds in zip(tool.others, tool.times)]
    mean = sum(share * seconds for share, seconds in shares) / sum(seconds for _, seconds in shares)
    retried = sum(tool.retried for tool in tools)
    return (f"{name}: other processes took {mean:.0%} of the machine's CPU while the tools ran"
            + (f" (the busiest run: {max(share for share, _ in shares):.0%})" if busiest else "")
            + (f"; {retried} run(s) were run again because the machine was busy." if retried else "."))


def process_rows(case: Case, tools: list[Tool], workers: bool) -> tuple[list[str], list[str]]:
    """A whole-process case's rows and notes."""
    rows, notes = [], []
    reference = tools[-1]
    ref_peak = statistics.median(reference.peaks)
    for tool in tools:
        m = statistics.median(tool.peaks)
        if tool is reference:
            ratio, met = "1 (reference)", ""
            work = value(tool.output.split()[-1]) if len(tool.output.split()) > 1 else None
            if work is not None:
                notes.append(f"{case.name}: of the reference's time, its work after its imports took "
                             f"{work:.3f} s (last run).")
        else:
            per_round = ratios(tool, reference)
            ratio = f"{spread(per_round, digits=2, unit='x')}, RSS {m / ref_peak:.2f}x"
            met = verdict(tool.target, dict(ratio=statistics.median(per_round), peak=m, peak_ratio=m / ref_peak),
                          dict(ratio=min(per_round), peak=min(tool.peaks), peak_ratio=min(tool.peaks) / ref_peak))
            a, b = value(tool.output), value(reference.output)
            if a is not None and b is not None and not abs(a - b) <= 1e-5 * (1 + abs(b)):
                notes.append(f"{case.name}: values differ: {tool.name} printed {a!r}, the reference {b!r}.")
        held = (f" {statistics.median(tool.worker_peaks) / 2**20:.0f} MiB |" if tool.worker_peaks else " - |"
                ) if workers else ""
        rows.append(f"| {case.name} | `{tool.name}` | {spread(tool.times, unit=' s')} | {m / 2**20:.0f} MiB |{held} "
                    f"{ratio} | {tool.target or ''} | {met} |")
    return rows, notes


def process_table(cases: list[tuple[Case, list[Tool], str]]) -> tuple[str, bool]:
    """The whole-process table and its notes; and whether every ``exact`` case's tools printed the same.
    ``cases``: each case, its tools, and what its ``agree`` code printed."""
    workers = any(tool.worker_peaks for _, tools, _ in cases for tool in tools)  # a column only where there are
    rows = ["| case | tool | time: median (min–max) | peak RSS |" + (" workers' peak RSS |" if workers else "")
            + " ratio to the reference: median (min–max) | target | met? |",
            "|---|---|---|---|" + ("---|" if workers else "") + "---|---|---|"]
    notes, same = [], True
    for case, tools, agreed in cases:
        more, extra = process_rows(case, tools, workers)
        rows += more
        notes += extra + ([f"{case.name}: {agreed}"] if agreed else [])
        notes.append(others_note(case.name, tools))
        if case.exact:
            reference = tools[-1]
            differ = [tool for tool in tools if tool.outputs != reference.outputs or len(tool.outputs) != 1]
            same = same and not differ
            notes += [f"{case.name}: values differ: {tool.name} printed {sorted(tool.outputs)}, the reference "
                      f"{sorted(reference.outputs)} (expected the same digits in every run)." for tool in differ]
            if not differ:
                notes.append(f"{case.name}: every tool printed {reference.output} in every run.")
    if workers:
        notes.append("workers' peak RSS: each dask worker's peak (VmHWM) in a run, summed over the workers (for the "
                     "local cluster: every process the run started), median over the runs; a client's peak RSS "
                     "(os.wait4) counts the processes it started and waited for by their largest, not their sum.")
    return "\n".join(rows + [""] + [f"- {note}" for note in notes]), same


def agrees(tool: Tool, reference: Tool) -> bool:
    a, b = float(tool.output), float(reference.output)
    return abs(a - b) <= AGREE * abs(b) or a == b


def memory_table(timed: list[tuple[MemoryCase, Timed]]) -> str:
    """The in-memory cases: each tool's time and throughput (GB/s over every input's bytes), the ratio to the
    reference (the last tool), losscli's target."""
    rows = ["| case | size | tool | time: median (min–max) | GB/s (median) | ratio to the reference: median "
            "(min–max) | target | met? |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for case, done in timed:
        if done.error:
            notes.append(f"{case.name}: failed: {done.error}")
            continue
        reference = done.tools[-1]
        for i, tool in enumerate(done.tools):
            t = statistics.median(tool.times)
            per_round = ratios(tool, reference)
            target = case.target if i == 0 else None
            met = verdict(target, dict(ratio=statistics.median(per_round), gbps=done.nbytes / t / 1e9),
                          dict(ratio=min(per_round), gbps=done.nbytes / min(tool.times) / 1e9))
            ratio = "1 (reference)" if tool is reference else spread(per_round, digits=2, unit="x")
            rows.append(f"| {case.name} | {done.size} | `{tool.name}` | {spread(tool.times, 1e3, 1, ' ms')} | "
                        f"{done.nbytes / t / 1e9:.1f} | {ratio} | {target or ''} | {met} |")
            if tool is not reference and not agrees(tool, reference):
                notes.append(f"{case.name}: values differ: {tool.name} gave {tool.output}, the reference "
                             f"{reference.output} (more than {AGREE:g} relative).")
        notes.append(others_note(case.name, done.tools, busiest=False))
    return "\n".join(rows + [""] + [f"- {note}" for note in notes])


def kernel_table(timed: list[Timed]) -> str:
    """One row per loss: losscli.compute against its torch.nn.functional function, in memory; met when losscli's
    median time is at most 2x torch's. Below: the losses that are not, and values that do not agree."""
    rows = ["| loss | size | losscli ms: median (min–max) | torch ms: median (min–max) | ratio: median "
            "(min–max) | losscli elements/s | met? (≤ 2x torch) |", "|---|---|---|---|---|---|---|"]
    errors, slow, differ = [], [], []
    for done in timed:
        if done.error:
            rows.append(f"| {done.name} | | | | | | **error** |")
            errors.append(f"{done.name}: failed: {done.error}")
            continue
        mine, torch = done.tools
        per_round = ratios(mine, torch)
        t, ratio = statistics.median(mine.times), statistics.median(per_round)
        met = verdict(Target(time=2.0), dict(ratio=ratio), dict(ratio=min(per_round)))
        rows.append(f"| {done.name} | {done.size} | {spread(mine.times, 1e3, 1)} | {spread(torch.times, 1e3, 1)} | "
                    f"{spread(per_round, digits=2, unit='x')} | {done.elements / t:.3g} | {met} |")
        slow += [f"{done.name} {ratio:.1f}x"] if ratio > 2.0 else []
        differ += [] if agrees(mine, torch) else [f"{done.name} (losscli {mine.output}, torch {torch.output})"]
    measured = [done for done in timed if not done.error]
    notes = [f"More than 2x slower than torch (median): {', '.join(slow) if slow else 'none'}.",
             f"Values that differ from torch's by more than {AGREE:g} relative: {', '.join(differ)}." if differ
             else f"Every loss's value agrees with torch's to {AGREE:g} relative.", *errors]
    if measured:
        notes.append(others_note("kernels", [tool for done in measured for tool in done.tools], busiest=False))
    return "\n".join(rows + [""] + [f"- {note}" for note in notes])


def version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"no {package}"


def commit() -> str:
    """losscli's git commit, and whether losscli/ has changes not committed."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "losscli"], capture_output=True, text=True).stdout
    return f"losscli {head or 'unknown commit'}" + (" with uncommitted changes in losscli/" if dirty.strip() else "")


def machine() -> str:
    """The CPU, cores and memory; the versions that matter; the load when the benchmark started."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    versions = ", ".join([f"Python {platform.python_version()}"] + [version(p) for p in (
        "numpy", "torch", "pyarrow", "typer", "rich", "distributed")])
    return f"Machine: {cpu}, {CPUS} cores{memory}. Versions: {versions}; {commit()}."


def load() -> str:
    with contextlib.suppress(OSError), open("/proc/loadavg") as f:
        return f.read().split()[0]
    return "?"


SELECTIONS = {"issue": ["startup", "mse-memory", "mse-files", "ce-1000", "ce-10", "csv", "none-out", "kernels"],
              "all": ["startup", "mse-memory", "mse-files", "ce-1000", "ce-10", "csv", "none-out", "parquet", "remote",
                      "dask-mse", "dask-ce", "kernels"]}
EVERY = SELECTIONS["all"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="issue",
                        help=f"comma-separated, of: {', '.join(EVERY)}; or 'issue' (the default: "
                             f"{', '.join(SELECTIONS['issue'])}) or 'all'")
    parser.add_argument("--losses", default=None, help="kernels: only these losses (comma-separated)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds of each tool (default 7; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny inputs, no warm-up, one round: to see that it works; its times mean nothing")
    parser.add_argument("--busy", type=float, default=None, metavar="SHARE",
                        help=f"run a run again (up to {TRIES} tries) when other processes took more than SHARE "
                             "(0-1) of the machine's CPU during it")
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                        help="startup: also time losscli from this checkout (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n.strip() for part in args.cases.split(",") for n in SELECTIONS.get(part.strip(), [part.strip()])
             if n.strip()]
    unknown = [name for name in names if name not in EVERY]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(EVERY)}")
    losses = [n.strip() for n in (args.losses or "").split(",") if n.strip()] or list(KERNELS)
    unknown = [name for name in losses if name not in KERNELS]
    if unknown:
        parser.error(f"unknown loss(es) {', '.join(unknown)}; the losses are {', '.join(KERNELS)}")
    args.names, args.loss_names = list(dict.fromkeys(names)), [loss for loss in KERNELS if loss in losses]
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 7)
    return args


def missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def run_processes(name: str, args: argparse.Namespace, env: dict[str, str], folder: Path) -> tuple[list[Tool], str]:
    """A whole-process case: its inputs written, its tools run in alternating rounds; what its check said."""
    case = CASES[name]
    setup, tools = case.build(args.quick, args.also) if name == "startup" else case.build(args.quick)
    with contextlib.ExitStack() as around:
        if name == "remote":
            around.enter_context(s3_server(env))
        around.enter_context(running(list(dict.fromkeys(t.cluster for t in tools if t.cluster)), env, folder))
        run_setup(setup, env, folder)
        rounds = args.repeat * case.rounds
        print(f"{name}: {len(tools)} tools x {rounds} rounds ...", file=sys.stderr, flush=True)
        measure(tools, env, folder, rounds, warmup=not args.quick, busy=args.busy)
        agreed = run_setup(case.agree, env, folder) if case.agree else ""
    for path in [*folder.glob("*.npy"), *folder.glob("*.csv"), *folder.glob("*.parquet")]:  # keep the disk small
        path.unlink()
    return tools, agreed


def run_kernels(args: argparse.Namespace, env: dict[str, str], folder: Path) -> list[Timed]:
    """The kernel table's losses, one child process per family, in catalog order."""
    families = dict.fromkeys(KERNELS[loss].family for loss in args.loss_names)
    found: dict[str, Timed] = {}
    for family in families:
        losses = [loss for loss in args.loss_names if KERNELS[loss].family == family]
        print(f"kernels, {family}: {', '.join(losses)} x {args.repeat} rounds ...", file=sys.stderr, flush=True)
        found |= {done.name: done for done in run_child(losses, env, folder, args.repeat, args.quick, args.busy)}
    return [found[loss] for loss in args.loss_names]


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.child:
        child(json.loads(args.child))
        return
    started = load()
    processes, memory, kernels, skipped = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="losscli-bench-") as tmp:
        folder = Path(tmp)
        env = child_env(folder)
        write_scripts(folder, args.also)
        for name in args.names:
            needs = CASES[name].needs if name in CASES else ("torch",)
            if missing(needs):
                skipped.append(f"{name} (no {', '.join(missing(needs))})")
            elif name in CASES:
                processes.append((CASES[name], *run_processes(name, args, env, folder)))
            elif name in MEMORY:
                print(f"{name}: in memory, {args.repeat} rounds ...", file=sys.stderr, flush=True)
                memory += [(MEMORY[name], *run_child([name], env, folder, args.repeat, args.quick, args.busy))]
            else:
                kernels = run_kernels(args, env, folder)
    report(args, argv, started, processes, memory, kernels, skipped)


def report(args: argparse.Namespace, argv: list[str] | None, started: str, processes: list, memory: list,
           kernels: list[Timed], skipped: list[str]) -> None:
    """The machine, the command, and each table with its notes, in markdown."""
    command = " ".join(["python benchmarks/bench.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    more = "".join(f", {case.name}: {args.repeat * case.rounds}" for case, _, _ in processes if case.rounds > 1)
    print(f"{machine()}\n\nCommand: `{command}`. Median of {args.repeat} round(s){more}, the tools taking turns, each "
          f"round in a rotated order; spread: min–max over the rounds. Load average (1 min): {started} at the "
          f"start, {load()} at the end." + (f" Skipped: {'; '.join(skipped)}." if skipped else ""))
    same = True
    if processes:
        sizes = "; ".join(f"{case.name}: {case.size[args.quick]}" for case, _, _ in processes)
        printed, same = process_table(processes)
        print(f"\n### Whole processes\n\nSizes: {sizes}. Time from start to exit; peak RSS: the kernel's (median).\n")
        print(printed)
    if memory:
        print("\n### In memory\n\nOne child process per case: inputs made and everything imported first, then "
              "each call timed; torch with 2 threads. GB/s: the bytes of every input over the median time.\n")
        print(memory_table(memory))
    if kernels:
        print("\n### Every loss against its torch.nn.functional kernel\n\n`losscli.compute` (numpy backend) and "
              "the `torch.nn.functional` function (2 threads) on the same arrays, in memory, one child process per "
              "family; ratio: losscli's time over torch's, round by round; elements/s: of the loss's first input.\n")
        print(kernel_table(kernels))
    if not same:
        raise SystemExit("the tools of an exact case printed different values")


if __name__ == "__main__":
    main()
