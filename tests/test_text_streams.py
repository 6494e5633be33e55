"""Compressed CSV/TSV (gzip, bz2, xz), paths without a suffix (pipes, /dev/stdin, process substitution, files
named without one) sniffed by their first bytes, and the FORMAT@path override."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import threading
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losscli.io.compressed
import losscli.io.table
from losscli.edge.cli import app
from losscli.errors import InputError
from losscli.io import Loader, parse_spec
from losscli.io.compressed import MAX_LINE_BYTES, ZSTD_INSTALL
from losscli.io.files import read_pieces
from losscli.io.formats import COMPRESSIONS, MAGIC, READERS, SUFFIXES, sniff, split_override
from tests.csvread import by_pyarrow, pieces_of, streamed, without_pyarrow

# the readable formats that messages list, in READERS' order (compressed text is named as such)
PLAIN = [suffix for suffix in SUFFIXES if not suffix.endswith(COMPRESSIONS)]
A_FILE_OF = "a " + ", ".join(PLAIN[:-1]) + f" or {PLAIN[-1]} file"

ROOT = Path(__file__).resolve().parents[1]
try:  # the standard library's on Python 3.14 and later, else the backport (losscli's zstd extra)
    from compression import zstd
except ImportError:
    from backports import zstd

COMPRESS = {"gz": lambda b: gzip.compress(b, mtime=0), "bz2": bz2.compress, "xz": lzma.compress,
            "zst": zstd.compress}
runner = CliRunner()


def csv_text(columns: dict[str, np.ndarray], delimiter: str = ",") -> bytes:
    cells = [[repr(float(v)) if column.dtype.kind == "f" else str(v) for v in column] for column in columns.values()]
    rows = [delimiter.join(columns)] + [delimiter.join(row) for row in zip(*cells)]
    return ("\n".join(rows) + "\n").encode()


def value(*args: str) -> float:
    result = runner.invoke(app, [*map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["value"]


def error(*args: str) -> str:
    result = runner.invoke(app, [*map(str, args), "--format", "plain"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The command line in a process of its own (pipes, /dev/stdin)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "losscli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


@pytest.fixture
def regression(tmp_path):
    rng = np.random.default_rng(11)
    pred, label = rng.normal(size=50), rng.normal(size=50)
    expected = F.mse_loss(torch.from_numpy(pred), torch.from_numpy(label)).item()
    return tmp_path, csv_text({"pred": pred, "label": label}), expected


# --- compressed text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESS)
@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_compressed_regression_equals_torch(regression, codec, delimiter, reader):
    folder, _, _ = regression
    rng = np.random.default_rng(12)
    pred, label = rng.normal(size=40), rng.normal(size=40)
    name = folder / f"r.{'csv' if delimiter == ',' else 'tsv'}.{codec}"
    name.write_bytes(COMPRESS[codec](csv_text({"pred": pred, "label": label}, delimiter)))
    expected = F.mse_loss(torch.from_numpy(pred), torch.from_numpy(label)).item()
    assert value("mse", f"{name}:pred", f"{name}:label") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("codec", COMPRESS)
def test_compressed_classification_equals_torch(tmp_path, codec, reader):
    rng = np.random.default_rng(13)
    logits, labels = rng.normal(size=(30, 4)), rng.integers(0, 4, size=30)
    columns = {f"c{j}": logits[:, j] for j in range(4)}
    (tmp_path / f"logits.csv.{codec}").write_bytes(COMPRESS[codec](csv_text(columns)))
    (tmp_path / f"labels.csv.{codec}").write_bytes(COMPRESS[codec](csv_text({"label": labels})))
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    got = value("cross-entropy", f"{tmp_path}/logits.csv.{codec}:c0,c1,c2,c3", f"{tmp_path}/labels.csv.{codec}")
    assert got == pytest.approx(expected, rel=1e-12)


def test_bare_gz_suffix_sniffs_the_delimiter_inside(tmp_path, reader):
    (tmp_path / "r.gz").write_bytes(gzip.compress(b"a\tb\n1\t2\n3\t5\n"))
    assert value("mse", f"{tmp_path}/r.gz:a", f"{tmp_path}/r.gz:b") == 2.5
    (tmp_path / "n.gz").write_bytes(gzip.compress(b"\x93NUMPY\x01\x00rest"))
    assert error("mse", tmp_path / "n.gz", tmp_path / "n.gz").endswith(
        "expected CSV or TSV text inside the gzip stream, but got a .npy file; decompress it first")


@pytest.mark.parametrize("pyarrow", [True, False], ids=["pyarrow", "numpy"])
def test_compressed_csv_streams_in_pieces_equal_to_the_whole(tmp_path, monkeypatch, pyarrow):
    """A compressed file is always surveyed and read a piece at a time (its size on disk says nothing)."""
    pieces_of(monkeypatch, 64)
    if not pyarrow:
        without_pyarrow(monkeypatch)
    values = np.arange(500) / 7
    (tmp_path / "v.csv.gz").write_bytes(gzip.compress(csv_text({"v": values})))
    loaded = Loader().load(f"{tmp_path}/v.csv.gz:v", role="input")
    assert streamed(loaded.rows) and by_pyarrow(loaded.rows) == pyarrow
    assert loaded.rows.shape == (500,)
    got = np.concatenate([loaded.rows.read(i, min(i + 37, 500)) for i in range(0, 500, 37)])
    np.testing.assert_array_equal(got, values)


def test_pieces_of_a_compressed_stream_stay_bounded(tmp_path):
    """The decompressor is asked for a piece at a time: no piece is longer than a piece plus a line."""
    (tmp_path / "ones.csv.gz").write_bytes(gzip.compress(b"1\n" * 2_000_000))
    sizes = [len(p) for p in read_pieces(str(tmp_path / "ones.csv.gz"), "a .csv.gz file", 1 << 16, ".gz")]
    assert sum(sizes) == 4_000_000 and max(sizes) <= 1 << 16


def test_truncated_and_corrupt_streams_are_one_line(regression, reader):
    folder, text, _ = regression
    data = gzip.compress(text * 200)
    (folder / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    assert error("mse", f"{folder}/cut.csv.gz:pred", f"{folder}/cut.csv.gz:label") == (
        f"error: input ({folder}/cut.csv.gz:pred): expected a .csv.gz file, but the gzip stream is truncated "
        "(it ends before its end-of-stream marker)")
    bad = bytearray(data)
    bad[-8] ^= 0xFF  # the CRC of the uncompressed bytes
    (folder / "bad.csv.gz").write_bytes(bytes(bad))
    line = error("mse", f"{folder}/bad.csv.gz:pred", f"{folder}/bad.csv.gz:label")
    assert "expected a .csv.gz file, but the gzip stream is corrupt (" in line
    (folder / "plain.csv.xz").write_bytes(text)
    assert "expected a .csv.xz file, but the xz stream is corrupt (" in error("mse", f"{folder}/plain.csv.xz:pred",
                                                                           f"{folder}/plain.csv.xz:label")


# --- zstd ------------------------------------------------------------------------------------------------------


def test_bare_zst_sniffs_the_delimiter_and_takes_concatenated_frames(tmp_path):
    (tmp_path / "r.zst").write_bytes(zstd.compress(b"a\tb\n1\t2\n") + zstd.compress(b"3\t5\n"))
    assert value("mse", f"{tmp_path}/r.zst:a", f"{tmp_path}/r.zst:b") == (1 ** 2 + 2 ** 2) / 2


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command line tool is not installed")
def test_a_file_written_by_the_zstd_tool_equals_torch(tmp_path):
    rng = np.random.default_rng(14)
    logits, labels = rng.normal(size=(25, 3)), rng.integers(0, 3, size=25)
    (tmp_path / "e.csv").write_bytes(csv_text({"c0": logits[:, 0], "c1": logits[:, 1], "c2": logits[:, 2],
                                               "label": labels}))
    subprocess.run(["zstd", "-q", "-19", str(tmp_path / "e.csv")], check=True)  # writes e.csv.zst, with a checksum
    f = tmp_path / "e.csv.zst"
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    assert value("cross-entropy", f"{f}:c0,c1,c2", f"{f}:label") == pytest.approx(expected, rel=1e-12)


def test_truncated_and_corrupt_zstd_streams_are_one_line(regression):
    folder, text, _ = regression
    data = zstd.compress(text * 200, options={zstd.CompressionParameter.checksum_flag: 1})
    (folder / "cut.csv.zst").write_bytes(data[: len(data) // 2])
    assert error("mse", f"{folder}/cut.csv.zst:pred", f"{folder}/cut.csv.zst:label") == (
        f"error: input ({folder}/cut.csv.zst:pred): expected a .csv.zst file, but the zstd stream is truncated "
        "(it ends before its end-of-stream marker)")
    (folder / "cut.zst").write_bytes(data[:4])  # the magic number alone: sniffed, then truncated
    assert error("mse", f"{folder}/cut.zst:pred", f"{folder}/cut.zst:label") == (
        f"error: input ({folder}/cut.zst:pred): expected a .zst file, but the zstd stream is truncated "
        "(it ends before its end-of-stream marker)")
    bad = bytearray(data)
    bad[-2] ^= 0xFF  # the frame's checksum of the decompressed bytes
    (folder / "bad.csv.zst").write_bytes(bytes(bad))
    line = error("mse", f"{folder}/bad.csv.zst:pred", f"{folder}/bad.csv.zst:label")
    assert line.startswith(f"error: input ({folder}/bad.csv.zst:pred): expected a .csv.zst file, but the zstd "
                           "stream is corrupt ("), line
    (folder / "plain.csv.zst").write_bytes(text)
    assert "expected a .csv.zst file, but the zstd stream is corrupt (" in error(
        "mse", f"{folder}/plain.csv.zst:pred", f"{folder}/plain.csv.zst:label")


def test_a_zstd_window_beyond_the_default_limit_is_refused(tmp_path):
    """A frame that asks the decompressor for a 256 MiB window (zstd --long=28) is refused, not allocated."""
    squeeze = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 28})
    with open(tmp_path / "wide.csv.zst", "wb") as f:
        f.write(squeeze.compress(b"pred,label\n"))
        for _ in range(130):
            f.write(squeeze.compress(b"1,2\n" * (1 << 18)))
        f.write(squeeze.flush())
    assert zstd.get_frame_info((tmp_path / "wide.csv.zst").read_bytes()[:32]).decompressed_size is None
    assert error("mse", f"{tmp_path}/wide.csv.zst:pred", f"{tmp_path}/wide.csv.zst:label") == (
        f"error: input ({tmp_path}/wide.csv.zst:pred): expected a .csv.zst file, but the zstd stream is corrupt "
        "(Unable to decompress Zstandard data: Frame requires too much memory for decoding)")


def test_zstd_without_its_package_says_how_to_install_it(tmp_path):
    (tmp_path / "r.csv.zst").write_bytes(zstd.compress(b"pred,label\n1,2\n"))
    (tmp_path / "r").write_bytes(zstd.compress(b"pred,label\n1,2\n"))
    code = ("import sys; sys.modules['compression.zstd'] = None; sys.modules['backports.zstd'] = None\n"
            "from losscli.edge.main import entry\n"
            "sys.argv = ['losscli', 'mse', sys.argv[1] + ':pred', sys.argv[1] + ':label']\n"
            "entry()\n")
    for name in ("r.csv.zst", "r"):
        done = subprocess.run([sys.executable, "-c", code, name], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (
            f"error: input ({name}:pred): expected backports.zstd (compression.zstd before Python 3.14), to read "
            f"zstd-compressed text, but it is not installed: {ZSTD_INSTALL}")
    assert ZSTD_INSTALL == "pip install 'losscli[zstd]'"


def test_a_csv_run_imports_no_zstd(tmp_path):
    (tmp_path / "r.csv.gz").write_bytes(gzip.compress(b"pred,label\n1,2\n"))
    code = ("import sys, losscli\n"
            "assert losscli.compute('mse', 'r.csv.gz:pred', 'r.csv.gz:label').item() == 1.0\n"
            "loaded = sorted(m for m in sys.modules if m.endswith('zstd') or m.startswith('backports'))\n"
            "assert loaded == [], loaded\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr


def _bomb(path: Path, gib: int = 1) -> None:
    """``gib`` GiB of one endless line of zeros, compressed (by the suffix: gzip, or zstd) to about a MiB."""
    squeeze = zstd.ZstdCompressor() if path.suffix == ".zst" else zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(gib << 10):
            f.write(squeeze.compress(zeros))
        f.write(squeeze.flush())


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from /proc")
@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst"])
def test_bomb_is_refused_in_bounded_memory(tmp_path, suffix):
    bomb = tmp_path / f"bomb{suffix}"
    _bomb(bomb)
    assert bomb.stat().st_size < 8 << 20
    # the peak as /proc says (VmHWM starts afresh at exec, where ru_maxrss keeps the forking pytest's)
    script = ("import re, runpy, sys\n"
              "sys.argv = ['losscli', 'mse', sys.argv[1], sys.argv[1]]\n"
              "try:\n    runpy.run_module('losscli', run_name='__main__')\n"
              "except SystemExit as e:\n"
              "    status = open('/proc/self/status').read()\n"
              "    print(e.code, re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, env=env,
                          timeout=120)
    code, peak_kib = map(int, done.stdout.split())
    assert code == 2
    assert done.stderr.strip().splitlines() == [
        f"error: input ({bomb}): expected a {suffix} file of lines of at most "
        f"{MAX_LINE_BYTES >> 20} MiB, but the line at byte 0 of the decompressed text goes on past that"]
    assert peak_kib < 200 << 10  # 1 GiB inflated: memory holds a line's limit and a piece, not the stream


def test_bomb_of_an_open_quote_is_refused(tmp_path, monkeypatch, reader):
    monkeypatch.setattr(losscli.io.compressed, "MAX_LINE_BYTES", 1000)
    (tmp_path / "q.csv.gz").write_bytes(gzip.compress(b'a\n"' + b"1\n" * 5000))
    monkeypatch.setattr(losscli.io.table, "PIECE_BYTES", 256)
    with pytest.raises(InputError, match="of lines of at most 0 MiB, but a quoted cell goes on past that$"):
        Loader().load(f"{tmp_path}/q.csv.gz", role="input").array


def test_selectors_after_compressed_suffixes_and_overrides():
    assert parse_spec("x.csv.gz:pred") == ("x.csv.gz", "pred")
    assert parse_spec("x.TSV.BZ2:0,1") == ("x.TSV.BZ2", "0,1")
    assert parse_spec("csv@/no/such/pipe:pred") == ("csv@/no/such/pipe", "pred")
    assert parse_spec("/dev/stdin:pred") == ("/dev/stdin", "pred")
    assert parse_spec("nothing-here:pred") == ("nothing-here:pred", None)


# --- sniffing --------------------------------------------------------------------------------------------------


def test_magic_table():
    assert dict((key, magic) for magic, key in MAGIC) == {
        ".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04", ".parquet": b"PAR1", ".arrow": b"ARROW1", ".feather": b"FEA1",
        ".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ\x00", ".zst": b"\x28\xb5\x2f\xfd"}
    header = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    assert sniff(len(header).to_bytes(8, "little") + header) == ".safetensors"
    assert [sniff(b"a\tb\n1\t2\n"), sniff(b"a,b\tc\n"), sniff(b"1\n2\n")] == [".tsv", ".csv", ".csv"]


def test_a_torch_zip_is_told_from_an_npz(tmp_path):
    torch.save({"pred": torch.ones(2)}, tmp_path / "t.pt")
    np.savez_compressed(tmp_path / "a.npz", pred=np.ones(2))
    assert sniff((tmp_path / "t.pt").read_bytes()[:1024]) == ".pt"
    assert sniff((tmp_path / "a.npz").read_bytes()[:1024]) == ".npz"


@pytest.fixture
def unnamed(tmp_path):
    """Files without a suffix, one per format this branch reads, all holding pred = [1, 3], label = [2, 5]."""
    pred, label = np.array([1.0, 3.0]), np.array([2.0, 5.0])
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "l.npy", label)
    np.savez(tmp_path / "a.npz", pred=pred, label=label)
    text = b"pred,label\n1,2\n3,5\n"
    files = {"npy": (tmp_path / "p.npy").read_bytes(), "npz": (tmp_path / "a.npz").read_bytes(), "csv": text,
             "tsv": text.replace(b",", b"\t"), "gz": gzip.compress(text), "bz2": bz2.compress(text),
             "xz": lzma.compress(text), "zst": zstd.compress(text)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("name", ["csv", "tsv", "gz", "bz2", "xz", "zst", "npz"])
def test_sniffed_files_without_a_suffix(unnamed, name):
    assert value("mse", f"{unnamed / name}:pred", f"{unnamed / name}:label") == 2.5


def test_sniffed_npy_without_a_suffix(unnamed):
    os.rename(unnamed / "l.npy", unnamed / "label")
    assert value("mse", unnamed / "npy", unnamed / "label") == 2.5


@pytest.mark.parametrize("head", [
    b"PAR1\x15\x04", b"ARROW1\x00\x00", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", b"\x28\xb5\x2f\xfd\x00",
    b"PK\x03\x04" + bytes(22) + b"\x0a\x00\x00\x00x/data.pkl"])
def test_damaged_sniffed_formats_are_read_by_their_reader_and_refused_in_one_line(tmp_path, head):
    assert sniff(head) in READERS  # every format sniffed has a reader
    (tmp_path / "data").write_bytes(head + b"\x00" * 64)
    line = error("mse", tmp_path / "data", tmp_path / "data")
    assert line.startswith(f"error: input ({tmp_path}/data): ") and "cannot read" not in line


def test_a_file_with_a_suffix_no_reader_has_is_refused_unless_overridden(tmp_path):
    (tmp_path / "p.txt").write_bytes(b"pred,label\n1,2\n3,5\n")
    assert error("mse", f"{tmp_path}/p.txt:pred", f"{tmp_path}/p.txt:label") == (
        f"error: input ({tmp_path}/p.txt:pred): expected {A_FILE_OF} (or - for CSV on stdin), but got .txt:pred")
    assert value("mse", f"csv@{tmp_path}/p.txt:pred", f"csv@{tmp_path}/p.txt:label") == 2.5


def test_a_missing_name_without_a_suffix_keeps_its_message(tmp_path):
    assert error("mse", tmp_path / "nothing", tmp_path / "nothing") == (
        f"error: input ({tmp_path}/nothing): expected {A_FILE_OF} (or - for CSV on stdin), but got a name "
        "without a suffix")


# --- pipes -----------------------------------------------------------------------------------------------------


def _feed(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name", ["csv", "gz", "zst", "npy"])
def test_named_pipes_like_process_substitution(unnamed, name):
    """``losscli mse <(...) <(...)``: each argument a pipe without a suffix, read once, spooled, sniffed."""
    first, second = unnamed / "fifo1", unnamed / "fifo2"
    os.mkfifo(first)
    os.mkfifo(second)
    if name == "npy":
        feeders = [_feed(first, (unnamed / "p.npy").read_bytes()), _feed(second, (unnamed / "l.npy").read_bytes())]
        args = [first, second]
    else:
        data = (unnamed / name).read_bytes()
        feeders = [_feed(first, data), _feed(second, data)]
        args = [f"{first}:pred", f"{second}:label"]
    done = run_cli("mse", "-f", "plain", *args)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2.5\n", "")
    for feeder in feeders:
        feeder.join(5)


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="process substitution needs bash")
def test_process_substitution(unnamed):
    command = (f"{sys.executable} -m losscli mse -f plain <(gzip -dc < {unnamed}/gz):pred <(cat {unnamed}/csv):label"
               f" && {sys.executable} -m losscli mse -f plain <(cat {unnamed}/p.npy) {unnamed}/l.npy")
    done = subprocess.run(["/bin/bash", "-c", command], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2.5\n2.5\n", "")


@pytest.mark.parametrize("name", ["csv", "tsv", "xz", "zst", "npz"])
def test_dev_stdin_piped(unnamed, name):
    """One pipe named twice (two columns) is read once."""
    done = subprocess.run(
        f"cat {unnamed / name} | {sys.executable} -m losscli mse -f plain /dev/stdin:pred /dev/stdin:label",
        shell=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2.5\n", "")


def test_dev_stdin_redirected_from_a_file_is_read_in_place(unnamed):
    with open(unnamed / "csv", "rb") as f:
        done = run_cli("mse", "-f", "plain", "/dev/stdin:pred", "/dev/stdin:label", stdin=f)
    assert (done.returncode, done.stdout, done.stderr) == (0, "2.5\n", "")


def test_an_empty_pipe_is_one_line(tmp_path):
    done = subprocess.run(f"true | {sys.executable} -m losscli mse /dev/stdin /dev/stdin", shell=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: input (/dev/stdin): expected a file, but the file is empty (0 bytes)"


# --- the override ----------------------------------------------------------------------------------------------


def test_override_syntax():
    assert split_override("csv@/dev/stdin") == (".csv", "/dev/stdin")
    assert split_override("CSV.GZ@x") == (".csv.gz", "x")
    assert split_override("parquet@x") == (".parquet", "x")
    assert split_override("user@host.csv") == (None, "user@host.csv")
    assert split_override("csv@") == (None, "csv@")


def test_override_reads_a_file_as_the_format_named(unnamed, reader):
    (unnamed / "tabs.csv").write_bytes(b"pred\tlabel\n1\t2\n3\t5\n")  # a suffix that lies
    assert value("mse", f"tsv@{unnamed}/tabs.csv:pred", f"tsv@{unnamed}/tabs.csv:label") == 2.5
    assert value("mse", f"npy@{unnamed}/npy", f"npy@{unnamed}/p.npy") == 0.0
    assert value("mse", f"gz@{unnamed}/gz:pred", f"csv.gz@{unnamed}/gz:label") == 2.5


def test_override_reads_whatever_the_bytes_say(unnamed):
    """zst@ on plain text: the zstd reader reads it, and refuses it in one line."""
    assert error("mse", f"zst@{unnamed}/csv:pred", f"{unnamed}/csv:label") == (
        f"error: input (zst@{unnamed}/csv:pred): expected zstd-compressed text, but the zstd stream is corrupt "
        "(Unable to decompress Zstandard data: Unknown frame descriptor)")
    assert value("mse", f"zst@{unnamed}/zst:pred", f"csv.zst@{unnamed}/zst:label") == 2.5


def test_a_file_whose_name_has_an_at_is_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("csv@x").write_bytes(b"1\n3\n")
    Path("y.csv").write_bytes(b"2\n5\n")
    assert value("mse", "csv@x", "y.csv") == 2.5


def test_override_on_stdin_dash(reader):
    result = runner.invoke(app, ["mse", "--format", "plain", "--", "tsv@-:a", "tsv@-:b"], input="a\tb\n1\t2\n3\t5\n")
    assert (result.exit_code, result.stdout) == (0, "2.5\n")
    result = runner.invoke(app, ["mse", "--format", "plain", "--", "npy@-", "npy@-"], input="x")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: input (npy@-): expected csv@- or tsv@- (text on stdin; for other "
                                     "formats, /dev/stdin), but got npy@-")
