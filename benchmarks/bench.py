"""losscli against the one-liners it replaces: time and peak memory, each run a process of its own.

    python benchmarks/bench.py                       # every case, 5 timed runs of each tool
    python benchmarks/bench.py --cases mse,startup --repeat 9
    python benchmarks/bench.py --quick               # small inputs, one run each: a smoke test
    python benchmarks/bench.py --cases startup --also ../old-checkout   # start-up against another checkout
    python benchmarks/bench.py --cases remote       # .npy objects on a local S3 server (moto, boto3, s3fs)

The inputs are built in a temporary folder. Each run is a child process, timed from start to exit,
and its peak RSS is what the kernel reports for it (``os.wait4``). The tools of a case take turns,
run after run, so that a machine busy with something else slows them alike; the table gives medians.
losscli runs as users run it (``python -m losscli ...`` on the working tree), with its bytecode cached
as after ``pip install``. Prints a markdown table: case, tool, median time, peak RSS, ratio to the
one-liner, the target of issue 4 and whether it is met.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tool:
    name: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)  # bytes
    output: str = ""


@dataclass
class Case:
    """Tools run on the same inputs; the last one is the one-liner the others are measured against."""

    name: str
    build: Callable[[bool], tuple[str, list[Tool]]]  # quick -> (code that writes the inputs, tools)
    target: str
    met: Callable[[float, float], bool] | None  # (time ratio, peak ratio) -> met?
    needs_torch: bool = False
    needs: tuple[str, ...] = ()  # modules without which the case is skipped


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


CASES = {case.name: case for case in [
    Case("startup", build_startup, "time <= 2x", lambda t, m: t <= 2.0),
    Case("mse", build_mse, "time <= 1x, peak RSS <= 0.25x", lambda t, m: t <= 1.0 and m <= 0.25),
    Case("ce-10", build_cross_entropy(10, 10**6, 10**4), "time <= 1x", lambda t, m: t <= 1.0, needs_torch=True),
    Case("ce-1000", build_cross_entropy(1000, 10**5, 10**3), "time <= 1x", lambda t, m: t <= 1.0, needs_torch=True),
    Case("csv", build_csv, "none (reader choice)", None),
    Case("parquet", build_parquet, "peak RSS <= 0.25x", lambda t, m: m <= 0.25),
    Case("remote", build_remote, "peak RSS <= 0.25x", lambda t, m: m <= 0.25, needs=("moto", "boto3", "s3fs")),
]}
QUICK_SIZES = ("startup: 4 elements; mse: 1e6; ce-10: (1e4, 10); ce-1000: (1e3, 1000); csv: 1e4 rows; "
               "parquet: 1e6 rows x 2; remote: 1e6")
FULL_SIZES = ("startup: 4 elements; mse: 5e7 float32; ce-10: (1e6, 10); ce-1000: (1e5, 1000); csv: 1e6 rows x 2; "
              "parquet: 5e7 rows x 2 float32; remote: 5e7 float32 (200 MB) each")


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


def run_once(tool: Tool, env: dict[str, str], folder: Path, record: bool) -> None:
    out = folder / "stdout.txt"
    with open(out, "wb") as stdout, open(folder / "stderr.txt", "wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(tool.argv, stdout=stdout, stderr=stderr, env=env, cwd=folder)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tool.name} exited with {proc.returncode}:\n{(folder / 'stderr.txt').read_text()[-2000:]}")
    if record:
        tool.times.append(elapsed)
        tool.peaks.append(usage.ru_maxrss * 1024)  # KiB on Linux
        tool.output = out.read_text().strip()


def measure(tools: list[Tool], env: dict[str, str], folder: Path, repeat: int, warmup: bool) -> None:
    """Every tool once untimed (page cache, bytecode), then ``repeat`` rounds, each in a rotated order."""
    if warmup:
        for tool in tools:
            run_once(tool, env, folder, record=False)
    for r in range(repeat):
        for tool in tools[r % len(tools):] + tools[:r % len(tools)]:
            run_once(tool, env, folder, record=True)


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
    for package in ("numpy", "torch", "pyarrow", "typer"):
        try:
            versions += f", {package} {importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            versions += f", no {package}"
    return f"{cpu}, {os.cpu_count()} cores{memory}; {versions}"


def table(cases: list[tuple[Case, list[Tool]]]) -> str:
    rows = ["| case | tool | median time | peak RSS | ratio to the one-liner (time, RSS) | target | met? |",
            "|---|---|---|---|---|---|---|"]
    notes = []
    for case, tools in cases:
        reference = tools[-1]
        ref_time, ref_peak = statistics.median(reference.times), statistics.median(reference.peaks)
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
                target = case.target
                met = "" if case.met is None else ("yes" if case.met(t / ref_time, m / ref_peak) else "**no**")
                a, b = value(tool.output), value(reference.output)
                if a is not None and b is not None and not abs(a - b) <= 1e-5 * (1 + abs(b)):
                    notes.append(f"{case.name}: values differ: {tool.name} printed {a!r}, the one-liner {b!r}.")
            rows.append(f"| {case.name} | `{tool.name}` | {t:.3f} s | {m / 2**20:.0f} MiB | {ratio} | {target} | {met} |")
    return "\n".join(rows + [""] + [f"- {note}" for note in notes])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs of each tool (default 5; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small inputs and no warm-up run, to see that it works; its times mean little ({QUICK_SIZES})")
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
            with s3_server(env) if name == "remote" else contextlib.nullcontext():
                run_setup(setup, env, folder)
                print(f"{name}: {len(tools)} tools x {repeat} runs ...", file=sys.stderr, flush=True)
                measure(tools, env, folder, repeat, warmup=not args.quick)
            results.append((case, tools))
            for path in [*folder.glob("*.npy"), *folder.glob("*.csv"), *folder.glob("*.parquet")]:  # keep the disk small
                path.unlink()
    print(f"Machine: {machine()}. Sizes: {QUICK_SIZES if args.quick else FULL_SIZES}. "
          f"Median of {repeat} run(s) each, tools alternating.\n")
    print(table(results))


if __name__ == "__main__":
    main()
