"""losscli against the one-liners it replaces: time and peak memory, each run a process of its own.

    python benchmarks/bench.py                       # every case, 5 timed runs of each tool
    python benchmarks/bench.py --cases mse,startup --repeat 9
    python benchmarks/bench.py --quick               # small inputs, one run each: a smoke test
    python benchmarks/bench.py --cases startup --also ../old-checkout   # start-up against another checkout
    python benchmarks/bench.py --cases remote       # .npy objects on a local S3 server (moto, boto3, s3fs)
    python benchmarks/bench.py --cases dask-mse,dask-ce --busy 0.1   # --engine dask against the local engine

The inputs are built in a temporary folder. Each run is a child process, timed from start to exit,
and its peak RSS is what the kernel reports for it (``os.wait4``). The tools of a case take turns,
run after run, so that a machine busy with something else slows them alike; the table gives medians.
losscli runs as users run it (``python -m losscli ...`` on the working tree), with its bytecode cached
as after ``pip install``. Prints a markdown table: case, tool, median time, peak RSS, ratio to the
one-liner, the target of issue 4 and whether it is met.

The dask cases (``dask-*``) measure ``--engine dask`` against the local engine (their "one-liner") on
sharded ``.npy`` files: with the local cluster a run starts itself, and against clusters of 1 and 2 workers
that the benchmark starts before the runs (``dask scheduler``, ``dask worker``) and stops after them. The
workers' RSS is not in a client's peak: the table adds their peak (each worker's ``VmHWM`` over a run,
summed over the workers), and every tool must print the very same digits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TRIES = 5  # runs of a tool at most, for one timed run, on a busy machine (--busy)


@dataclass
class Tool:
    name: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)  # bytes
    output: str = ""
    outputs: set[str] = field(default_factory=set)  # of every timed run
    judged: bool = True  # the case's target applies to it
    cluster: Running | None = None  # a dask cluster started before the case's runs, that this tool uses
    workers: Callable[[int], list[int]] | None = None  # (the run's pid) -> pids of the dask workers it uses
    worker_peaks: list[int] = field(default_factory=list)  # bytes: each worker's peak RSS in a run, summed
    others: list[float] = field(default_factory=list)  # share of the machine's CPU that other processes took
    retried: int = 0  # runs run again because the machine was busy (--busy)


@dataclass
class Case:
    """Tools run on the same inputs; the last one is the one-liner the others are measured against."""

    name: str
    build: Callable[[bool], tuple[str, list[Tool]]]  # quick -> (code that writes the inputs, tools)
    target: str
    met: Callable[[float, float], bool] | None  # (time ratio, peak ratio) -> met?
    needs_torch: bool = False
    needs: tuple[str, ...] = ()  # modules without which the case is skipped
    exact: bool = False  # every tool must print the reference's output, digit for digit


def losscli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losscli", *args]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# Each case gives the code that writes its inputs (run in a child: see run_setup) and its tools, all run in
# the temporary folder.
SETUP = "import numpy as np\nrng = np.random.default_rng(0)\n"


def build_startup(quick: bool, also: list[Path] = ()) -> tuple[str, list[Tool]]:
    """losscli on tiny files, against importing numpy; ``also``: the same command from other checkouts (an
    earlier commit, to compare start-up across a change), each with its bytecode cached like this one's."""
    others = [Tool(f"losscli mse tiny.npy tiny.npy ({tree})",
                   python(f"import runpy, sys; sys.path.insert(0, {str(tree)!r}); "
                          "sys.argv = ['losscli', 'mse', 'tiny.npy', 'tiny.npy']; "
                          "runpy.run_module('losscli', run_name='__main__')")) for tree in also]
    return SETUP + "np.save('tiny.npy', np.arange(4, dtype=np.float32))", [
        Tool("losscli mse tiny.npy tiny.npy", losscli("mse", "tiny.npy", "tiny.npy")), *others,
        Tool('python -c "import numpy"', python("import numpy"))]


def build_mse(quick: bool) -> tuple[str, list[Tool]]:
    n = 10**6 if quick else 5 * 10**7
    setup = SETUP + f"for name in ('a.npy', 'b.npy'):\n    np.save(name, rng.standard_normal({n}, dtype=np.float32))"
    code = ("import time\nimport numpy as np\nt = time.perf_counter()\n"
            "print(np.mean((np.load('a.npy') - np.load('b.npy'))**2), time.perf_counter() - t)")
    return setup, [Tool("losscli mse a.npy b.npy (numpy backend)", losscli("mse", "a.npy", "b.npy", "--format", "plain")),
                   Tool("np.mean((np.load(a) - np.load(b))**2)", python(code))]


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
    return setup, [Tool("losscli mse data.parquet:pred data.parquet:target",
                        losscli("mse", "data.parquet:pred", "data.parquet:target", "--format", "plain")),
                   Tool("pq.read_table(data.parquet) + np.mean", python(code))]


def build_cross_entropy(classes: int, rows: int, quick_rows: int) -> Callable[[bool], tuple[str, list[Tool]]]:
    def build(quick: bool) -> tuple[str, list[Tool]]:
        n = quick_rows if quick else rows
        setup = SETUP + (f"np.save('logits.npy', rng.standard_normal(({n}, {classes}), dtype=np.float32))\n"
                         f"np.save('labels.npy', rng.integers(0, {classes}, {n}))")
        code = ("import time\nimport numpy as np, torch, torch.nn.functional as F\nt = time.perf_counter()\n"
                "print(F.cross_entropy(torch.from_numpy(np.load('logits.npy')), "
                "torch.from_numpy(np.load('labels.npy'))).item(), time.perf_counter() - t)")
        return setup, [Tool("losscli cross-entropy logits.npy labels.npy (numpy backend)",
                            losscli("cross-entropy", "logits.npy", "labels.npy", "--format", "plain")),
                       Tool("F.cross_entropy(torch.from_numpy(np.load(x)), torch.from_numpy(np.load(y)))",
                            python(code))]
    return build


def build_csv(quick: bool) -> tuple[str, list[Tool]]:
    n = 10**4 if quick else 10**6
    setup = SETUP + (f"np.savetxt('data.csv', rng.random(({n}, 2)), fmt='%.8g', delimiter=',', "
                     "header='pred,target', comments='')")
    code = ("import time\nimport numpy as np\nt = time.perf_counter()\n"
            "d = np.loadtxt('data.csv', delimiter=',', skiprows=1)\n"
            "print(np.mean((d[:, 0] - d[:, 1])**2), time.perf_counter() - t)")
    return setup, [Tool("losscli mse data.csv:pred data.csv:target",
                        losscli("mse", "data.csv:pred", "data.csv:target", "--format", "plain")),
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
    return setup, [Tool("losscli mse s3://bench/a.npy s3://bench/b.npy",
                        losscli("mse", "s3://bench/a.npy", "s3://bench/b.npy", "--format", "plain")),
                   Tool("boto3 get_object (whole) + np.load + np.mean", python(code))]


@contextlib.contextmanager
def s3_server(env: dict[str, str]) -> Iterator[None]:
    """moto's S3 server on a free port of 127.0.0.1, in a process of its own; ``env`` points children at it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
    reference). ``judged``: the size of the running cluster that the case's target is about."""
    def build(quick: bool) -> tuple[str, list[Tool]]:
        files = [f"{name}-*.npy" for name in inputs]
        command = [loss, *files, "--format", "plain"]
        shown = f"losscli {loss} {' '.join(repr(f) for f in files)}"
        two, one = Running(2), Running(1)
        tools = [Tool(f"{shown} --engine dask (local cluster of {os.cpu_count()}, started by the run)",
                      losscli(*command, "--engine", "dask"), judged=False, workers=descendants)]
        for cluster in (two, one):
            tools.append(Tool(f"{shown} --engine dask --scheduler (running, {cluster.size} worker"
                              f"{'s' if cluster.size > 1 else ''})",
                              losscli(*command, "--engine", "dask", "--scheduler", cluster.address),
                              judged=judged == cluster.size, cluster=cluster, workers=cluster.pids))
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
    Case("startup", build_startup, "time <= 2x", lambda t, m: t <= 2.0),
    Case("mse", build_mse, "time <= 1x, peak RSS <= 0.25x", lambda t, m: t <= 1.0 and m <= 0.25),
    Case("ce-10", build_cross_entropy(10, 10**6, 10**4), "time <= 1x", lambda t, m: t <= 1.0, needs_torch=True),
    Case("ce-1000", build_cross_entropy(1000, 10**5, 10**3), "time <= 1x", lambda t, m: t <= 1.0, needs_torch=True),
    Case("csv", build_csv, "none (reader choice)", None),
    Case("parquet", build_parquet, "peak RSS <= 0.25x", lambda t, m: m <= 0.25),
    Case("remote", build_remote, "peak RSS <= 0.25x", lambda t, m: m <= 0.25, needs=("moto", "boto3", "s3fs")),
    Case("dask-mse", build_dask("mse", ("p", "t"), dask_mse_setup, judged=2), "time <= 1.3x (running, 2 workers)",
         lambda t, m: t <= 1.3, needs=("distributed",), exact=True),
    Case("dask-ce", build_dask("cross-entropy", ("x", "y"), dask_ce_setup, judged=None), "none (the overhead shown)",
         None, needs=("distributed",), exact=True),
]}
QUICK_SIZES = {"startup": "4 elements", "mse": "1e6", "ce-10": "(1e4, 10)", "ce-1000": "(1e3, 1000)", "csv": "1e4 rows",
               "parquet": "1e6 rows x 2", "remote": "1e6", "dask-mse": "1e7 in 8 shards",
               "dask-ce": "(1e6, 10) in 8 shards"}
FULL_SIZES = {"startup": "4 elements", "mse": "5e7 float32", "ce-10": "(1e6, 10)", "ce-1000": "(1e5, 1000)",
              "csv": "1e6 rows x 2", "parquet": "5e7 rows x 2 float32", "remote": "5e7 float32 (200 MB) each",
              "dask-mse": "4e8 float32 (1.6 GB) each, 8 shards of (rows, 8)",
              "dask-ce": "(4e7, 10) float32 and 4e7 int64, 8 shards"}


def sizes(names: list[str], quick: bool) -> str:
    return "; ".join(f"{name}: {(QUICK_SIZES if quick else FULL_SIZES)[name]}" for name in names)


def child_env(folder: Path) -> dict[str, str]:
    """Bytecode cached (under the temporary folder, not in the tree), the working tree importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_setup(code: str, env: dict[str, str], folder: Path) -> None:
    """The inputs are written by a child, so that this process stays small: the kernel counts a child's
    peak RSS from before its exec, when it is a copy of this process, so a big parent would show in it."""
    subprocess.run([sys.executable, "-c", code], env=env, cwd=folder, check=True)


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


class Timed(NamedTuple):
    seconds: float
    peak: int  # bytes
    output: str
    worker_peak: int | None  # bytes
    others: float  # share of the machine's CPU that other processes took during the run


def run_once(tool: Tool, env: dict[str, str], folder: Path, background: list[int] = ()) -> Timed:
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
        others = max(0.0, cpu_busy() - busy - ours) / (elapsed * (os.cpu_count() or 1))
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tool.name} exited with {proc.returncode}:\n{(folder / 'stderr.txt').read_text()[-2000:]}")
    return Timed(elapsed, usage.ru_maxrss * 1024, out.read_text().strip(), worker_peak, others)  # KiB on Linux


def measure(tools: list[Tool], env: dict[str, str], folder: Path, repeat: int, warmup: bool,
            busy: float | None = None) -> None:
    """Every tool once untimed (page cache, bytecode), then ``repeat`` rounds, each in a rotated order. ``busy``:
    a run during which other processes took more than this share of the machine's CPU is run again (at most
    :data:`TRIES` times in all; the last try counts)."""
    clusters = dict.fromkeys(tool.cluster for tool in tools if tool.cluster is not None)
    background = [proc.pid for cluster in clusters for proc in cluster.procs]
    if warmup:
        for tool in tools:
            run_once(tool, env, folder, background)
    for r in range(repeat):
        for tool in tools[r % len(tools):] + tools[:r % len(tools)]:
            for attempt in range(TRIES):
                timed = run_once(tool, env, folder, background)
                if busy is None or timed.others <= busy:
                    break
                tool.retried += attempt < TRIES - 1
            tool.times.append(timed.seconds)
            tool.peaks.append(timed.peak)
            tool.output = timed.output
            tool.outputs.add(timed.output)
            if timed.worker_peak is not None:
                tool.worker_peaks.append(timed.worker_peak)
            tool.others.append(timed.others)


def value(output: str) -> float | None:
    try:
        return float(output.split()[0])
    except (IndexError, ValueError):
        return None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    versions = f"Python {platform.python_version()}"
    for package in ("numpy", "torch", "pyarrow", "typer", "distributed"):
        try:
            versions += f", {package} {importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            versions += f", no {package}"
    return f"{cpu}, {os.cpu_count()} cores{memory}; {versions}"


def table(cases: list[tuple[Case, list[Tool]]]) -> tuple[str, bool]:
    """The markdown table and the notes below it; and whether an ``exact`` case's tools all printed the same."""
    workers = any(tool.worker_peaks for _, tools in cases for tool in tools)  # a column only where there are some
    rows = ["| case | tool | median time | peak RSS |" + (" workers' peak RSS |" if workers else "")
            + " ratio to the one-liner (time, RSS) | target | met? |",
            "|---|---|---|---|" + ("---|" if workers else "") + "---|---|---|"]
    notes, same = [], True
    for case, tools in cases:
        reference = tools[-1]
        ref_time, ref_peak = statistics.median(reference.times), statistics.median(reference.peaks)
        differ = [tool for tool in tools if len(tool.outputs) != 1 or tool.outputs != reference.outputs]
        for tool in tools:
            t, m = statistics.median(tool.times), statistics.median(tool.peaks)
            if tool is reference:
                ratio, target, met = "1 (reference)", "", ""
                work = value(tool.output.split()[-1]) if len(tool.output.split()) > 1 else None
                if work is not None:
                    notes.append(f"{case.name}: of the one-liner's time, its work after its imports took "
                                 f"{work:.3f} s (last run).")
            else:
                ratio = f"{t / ref_time:.2f}x, {m / ref_peak:.2f}x"
                target = case.target if tool.judged else ""
                met = "" if case.met is None or not tool.judged else (
                    "yes" if case.met(t / ref_time, m / ref_peak) else "**no**")
                a, b = value(tool.output), value(reference.output)
                if a is not None and b is not None and not abs(a - b) <= 1e-5 * (1 + abs(b)):
                    notes.append(f"{case.name}: values differ: {tool.name} printed {a!r}, the one-liner {b!r}.")
            if case.exact and tool in differ:
                notes.append(f"{case.name}: values differ: {tool.name} printed {sorted(tool.outputs)}, the reference "
                             f"{sorted(reference.outputs)} (expected the same digits in every run).")
            held = (f" {statistics.median(tool.worker_peaks) / 2**20:.0f} MiB |" if tool.worker_peaks else " - |"
                    ) if workers else ""
            rows.append(f"| {case.name} | `{tool.name}` | {t:.3f} s | {m / 2**20:.0f} MiB |{held} {ratio} | {target} "
                        f"| {met} |")
        others = [share for tool in tools for share in tool.others]
        retried = sum(tool.retried for tool in tools)
        notes.append(f"{case.name}: other processes took {statistics.median(others):.0%} of the machine's CPU during "
                     f"a run (median; at most {max(others):.0%})" + (f"; {retried} run(s) were run again because "
                                                                     "the machine was busy." if retried else "."))
        if case.exact:
            same = same and not differ
            if not differ:
                notes.append(f"{case.name}: every tool printed {reference.output} in every run.")
    if workers:
        notes.append("workers' peak RSS: each dask worker's peak (VmHWM) in a run, summed over the workers (for the "
                     "local cluster: every process the run started), median over the runs; a client's peak RSS "
                     "(os.wait4) counts the processes it started and waited for by their largest, not their sum.")
    return "\n".join(rows + [""] + [f"- {note}" for note in notes]), same


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs of each tool (default 5; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="small inputs and no warm-up run, to see that it works; its times mean little "
                             f"({sizes(list(CASES), True)})")
    parser.add_argument("--busy", type=float, default=None, metavar="SHARE",
                        help=f"run a run again (up to {TRIES} tries) when other processes took more than SHARE "
                             "(0-1) of the machine's CPU during it")
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                        help="startup: also time losscli from this checkout (repeatable)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    results = []
    with tempfile.TemporaryDirectory(prefix="losscli-bench-") as tmp:
        folder = Path(tmp)
        env = child_env(folder)
        for name in names:
            case = CASES[name]
            missing = [m for m in ("torch",) * case.needs_torch + case.needs if importlib.util.find_spec(m) is None]
            if missing:
                print(f"{name}: skipped, {', '.join(missing)} not installed", file=sys.stderr)
                continue
            setup, tools = case.build(args.quick, args.also) if name == "startup" else case.build(args.quick)
            with contextlib.ExitStack() as around:
                if name == "remote":
                    around.enter_context(s3_server(env))
                around.enter_context(running(list(dict.fromkeys(t.cluster for t in tools if t.cluster)), env, folder))
                run_setup(setup, env, folder)
                print(f"{name}: {len(tools)} tools x {repeat} runs ...", file=sys.stderr, flush=True)
                measure(tools, env, folder, repeat, warmup=not args.quick, busy=args.busy)
            results.append((case, tools))
            for path in [*folder.glob("*.npy"), *folder.glob("*.csv"), *folder.glob("*.parquet")]:  # keep the disk small
                path.unlink()
    print(f"Machine: {machine()}. Sizes: {sizes([case.name for case, _ in results], args.quick)}. "
          f"Median of {repeat} run(s) each, tools alternating.\n")
    printed, same = table(results)
    print(printed)
    if not same:
        raise SystemExit("the tools of an exact case printed different values")


if __name__ == "__main__":
    main()
