"""pyarrow's CSV reader (losscli.io.arrowcsv) against Python's own ``float()``/``int()`` and losscli.io.table's
reader: numbers read to the same bits, a file read once for every argument that names its columns, memory bounded
when it streams, and the same results where pyarrow is not installed. (Messages and the reading rules are checked
with both readers in tests/test_io.py, tests/test_stream.py and tests/test_text_streams.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import losscli
import losscli.io.arrowcsv as arrowcsv
from losscli.edge.cli import app
from losscli.engine import sources as engine_sources
from losscli.io import Loader
from tests.csvread import by_pyarrow, pieces_of, streamed, with_pyarrow, without_pyarrow

pytest.importorskip("pyarrow.csv")


@pytest.fixture(autouse=True)
def _pyarrow_for_small_files(monkeypatch):
    """These files are small: pyarrow reads them all the same (as it reads files of 1 MiB or more)."""
    with_pyarrow(monkeypatch)

ROOT = Path(__file__).resolve().parents[1]
_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])

# Float text: what programs write (repr, %.17e, %.25g), and digit strings of any length with any exponent, which
# a reader that is not correctly rounded gets wrong in the last bit (halfway cases, 40 digits, subnormals).
_DIGITS = st.text("0123456789", max_size=40)
_WRITTEN = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.17e}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.25g}"),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: f"{v:.9g}"),
)
_EXPONENTS = st.one_of(st.just(""), st.builds(lambda e, sign, n: f"{e}{sign}{n}", st.sampled_from("eE"),
                                             st.sampled_from(["", "+", "-"]), st.integers(0, 400)))
_DIGIT_STRINGS = st.builds(lambda sign, whole, frac, exp: f"{sign}{whole}.{frac}{exp}", st.sampled_from(["", "-", "+"]),
                           _DIGITS, _DIGITS, _EXPONENTS).filter(lambda s: any(c.isdigit() for c in s.split("e")[0]
                                                                               .split("E")[0]))
_FLOAT_TEXT = st.one_of(_WRITTEN, _DIGIT_STRINGS, st.sampled_from([
    "inf", "-Infinity", "+INF", "1e-400", "-0.0", "4.9e-324", "2.4703282292062328e-324", "1.7976931348623157e308"]))


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, np.float64).view(np.uint64)


@pytest.mark.parametrize("mode", ["whole", "streamed"])
@_SETTINGS
@given(cells=st.lists(_FLOAT_TEXT, min_size=1, max_size=30))
def test_pyarrow_reads_float_text_to_the_bits_of_float(tmp_path, monkeypatch, mode, cells):
    """Every float64 as Python's float() reads the text, bit for bit, by pyarrow itself (not handed back)."""
    if mode == "streamed":
        pieces_of(monkeypatch, 200)
    cells = [*cells, "0.5"]  # a float that is no integer: a "+" in the text does not make the column doubtful
    (tmp_path / "f.csv").write_text("x,n\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cells)), encoding="utf-8")
    rows = Loader().load(str(tmp_path / "f.csv:x"), role="input").rows
    assert by_pyarrow(rows)
    got = np.concatenate([rows.read(i, min(i + 7, len(cells))) for i in range(0, len(cells), 7)])
    np.testing.assert_array_equal(_bits(got), _bits(np.array([float(c) for c in cells])))


@pytest.mark.parametrize("mode", ["whole", "streamed"])
@_SETTINGS
@given(values=st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=30),
       pad=st.sampled_from(["{}", " {} ", "{}\t", "00{}"]))
def test_pyarrow_reads_integers_as_int_does(tmp_path, monkeypatch, mode, values, pad):
    if mode == "streamed":
        pieces_of(monkeypatch, 200)
    cells = [pad.format(v) if v >= 0 else str(v) for v in values]
    (tmp_path / "i.csv").write_text("label,n\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cells)), encoding="utf-8")
    rows = Loader().load(str(tmp_path / "i.csv:label"), role="input").rows
    assert by_pyarrow(rows) and rows.dtype == np.int64
    np.testing.assert_array_equal(rows.whole(), np.array([int(c) for c in cells], np.int64))


@pytest.mark.parametrize("text,selector,dtype,by_arrow", [
    ("y\n1\n2\n+3\n", "y", np.int64, False),  # +3: a float to pyarrow, an integer to Python
    ("y\n1.0\n+2.0\n", "y", np.float64, False),  # (any + with floats that are integers: handed over)
    ("y\n1.5\n+2.0\n", "y", np.float64, True),
    ("y\n16\n0x10\n", "y", None, False),  # a number to pyarrow only
    ("y\n1\nnan(1)\n", "y", None, False),
    ("id,y\nx1,1\nx2,2.5\n", "y", np.float64, False),  # an x in another column: handed over, read the same
    ("a,y\n1.5,-0\n2.5,1\n", "a,y", np.float64, False),  # -0 among floats: -0.0, which pyarrow's integer 0 is not
    ("a,y\n1.5,-0\n2.5,1\n", "y", np.int64, True),  # -0 as an integer: 0 by either
])
def test_spellings_pyarrow_reads_otherwise_are_read_as_python_does(tmp_path, text, selector, dtype, by_arrow):
    (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    rows = Loader().load(str(tmp_path / f"s.csv:{selector}"), role="input").rows
    if dtype is None:
        with pytest.raises(losscli.InputError, match=r"^input \(.*s.csv:y\): line 3, column 'y': expected a number"):
            rows.whole()
        return
    assert by_pyarrow(rows) == by_arrow and rows.dtype == dtype
    if "," in selector:  # floats as float() reads each cell: -0 is -0.0
        expected = np.array([[float(c) for c in line.split(",")] for line in text.splitlines()[1:]])
        np.testing.assert_array_equal(rows.whole(), expected)
        np.testing.assert_array_equal(np.signbit(rows.whole()), np.signbit(expected))


# --- a file read once --------------------------------------------------------------------------------------------


@contextmanager
def _counting(monkeypatch):
    """The number of times pyarrow's reader opens a file's text."""
    opened = []
    real = arrowcsv._opened

    @contextmanager
    def counted(table):
        opened.append(table.path)
        with real(table) as read:
            yield read

    monkeypatch.setattr(arrowcsv, "_opened", counted)
    yield opened


def _two_columns(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=n), rng.normal(size=n)
    path.write_text("pred,target\n" + "".join(f"{u!r},{v!r}\n" for u, v in zip(a.tolist(), b.tolist())),
                    encoding="utf-8")
    return a, b


@pytest.mark.parametrize("mode,readings", [
    ("whole", 1),  # one piece, kept
    ("in pieces, kept", 1),  # the columns fit in KEEP_BYTES
    ("streamed", 2),  # the survey, then the engine's chunks from one reading shared by both arguments
])
def test_two_columns_of_one_file_are_read_in_one_pass(tmp_path, monkeypatch, mode, readings):
    a, b = _two_columns(tmp_path / "r.csv", 3000)
    if mode != "whole":
        monkeypatch.setattr(arrowcsv, "PIECE_BYTES", 1 << 12)
    if mode == "streamed":  # the columns (48 KB) are not kept; chunks (2 KB a column) are shared, a few ahead
        monkeypatch.setattr(arrowcsv, "KEEP_BYTES", 1 << 14)
        monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 1000)
        monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 256)
    with _counting(monkeypatch) as opened:
        result = losscli.compute("mse", f"{tmp_path}/r.csv:pred", f"{tmp_path}/r.csv:target")
    assert len(opened) == readings
    assert result.item() == pytest.approx(F.mse_loss(torch.tensor(a), torch.tensor(b)).item(), rel=1e-12)


def test_the_command_line_reads_the_file_once(tmp_path, monkeypatch):
    a, b = _two_columns(tmp_path / "r.csv", 500)
    with _counting(monkeypatch) as opened:
        done = CliRunner().invoke(app, ["mse", f"{tmp_path}/r.csv:pred", f"{tmp_path}/r.csv:target", "-f", "json"])
    assert done.exit_code == 0, done.stderr
    assert len(opened) == 1
    assert json.loads(done.stdout)["value"] == pytest.approx(float(np.mean((a - b) ** 2)), rel=1e-12)


def test_a_column_named_after_the_first_read_gets_a_pass_of_its_own(tmp_path, monkeypatch):
    a, b = _two_columns(tmp_path / "r.csv", 50)
    loader = Loader()
    with _counting(monkeypatch) as opened:
        pred = loader.load(f"{tmp_path}/r.csv:pred", role="input")
        np.testing.assert_array_equal(pred.array, a)
        target = loader.load(f"{tmp_path}/r.csv:target,pred", role="target")
        np.testing.assert_array_equal(target.array, np.stack([b, a], axis=1))
    assert len(opened) == 2


def test_an_engine_that_holds_the_columns_whole_reads_them_once_more(tmp_path, monkeypatch):
    """A file too large to keep from its survey, for a run in memory (--grad): one more reading, for both."""
    a, b = _two_columns(tmp_path / "r.csv", 400)
    monkeypatch.setattr(arrowcsv, "KEEP_BYTES", 1 << 10)
    monkeypatch.setattr(arrowcsv, "PIECE_BYTES", 1 << 11)
    with _counting(monkeypatch) as opened:
        result = losscli.compute("mse", f"{tmp_path}/r.csv:pred", f"{tmp_path}/r.csv:target",
                                 outputs=losscli.Outputs(grad=True))
    assert len(opened) == 2
    np.testing.assert_allclose(result.grad, 2 * (a - b) / len(a), rtol=1e-12)


def test_an_argument_that_lags_is_let_go_and_reads_again(tmp_path, monkeypatch):
    """Shared batches are not held for an argument that has not read them past KEEP_BYTES: it reads again, from
    where it was."""
    a, b = _two_columns(tmp_path / "r.csv", 2000)
    pieces_of(monkeypatch, 1 << 11)
    loader = Loader()
    pred = loader.load(f"{tmp_path}/r.csv:pred", role="input").rows
    target = loader.load(f"{tmp_path}/r.csv:target", role="target").rows
    assert streamed(pred) and streamed(target)
    np.testing.assert_array_equal(pred.read(0, 1500), a[:1500])  # target lags 1500 rows behind
    np.testing.assert_array_equal(np.concatenate([target.read(i, min(i + 300, 2000)) for i in range(0, 2000, 300)]), b)
    np.testing.assert_array_equal(pred.read(1500, 2000), a[1500:])


# --- memory ------------------------------------------------------------------------------------------------------

_MEMORY = """
import sys, tracemalloc
import numpy as np, pyarrow as pa
import losscli, losscli.io.arrowcsv as arrowcsv
from losscli.engine import sources
arrowcsv.PIECE_BYTES, arrowcsv.KEEP_BYTES = 1 << 16, 1 << 16
sources.STREAM_ELEMENTS, sources.CHUNK_ELEMENTS = 10_000, 1 << 12
losscli.compute("mse", sys.argv[2] + ":pred", sys.argv[2] + ":target")  # imports done
tracemalloc.start()
result = losscli.compute("mse", sys.argv[1] + ":pred", sys.argv[1] + ":target")
print(result.item(), tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory())
"""


def test_a_streamed_file_is_held_a_few_blocks_at_a_time(tmp_path):
    """400,000 rows (16 MB of text, 3.2 MB in each column) in pieces of 64 KiB: pyarrow's memory and Python's stay a
    fraction of a column (in a process of its own: pyarrow's peak is its pool's since it started)."""
    a, b = _two_columns(tmp_path / "r.csv", 400_000)
    _two_columns(tmp_path / "small.csv", 20_000)
    done = subprocess.run([sys.executable, "-c", _MEMORY, str(tmp_path / "r.csv"), str(tmp_path / "small.csv")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    value, python_peak, arrow_peak = (float(x) for x in done.stdout.split())
    assert value == pytest.approx(float(np.mean((a - b) ** 2)), rel=1e-12)
    column = 400_000 * 8
    assert arrow_peak < column / 4 and python_peak < column / 2, (arrow_peak, python_peak)


# --- without pyarrow ---------------------------------------------------------------------------------------------

_NO_PYARROW = ("import sys; sys.modules['pyarrow'] = None; sys.argv = ['losscli', *sys.argv[1:]]; "
               "from losscli.edge.main import entry; entry()")


def test_without_pyarrow_importable_the_command_gives_the_same_digits(tmp_path):
    """A file over 1 MiB (read by pyarrow where it is installed), and one with a bad cell near its end."""
    _two_columns(tmp_path / "r.csv", 30_000)
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    (tmp_path / "bad.csv").write_text(text + "3,oops\n", encoding="utf-8")
    assert (tmp_path / "r.csv").stat().st_size > arrowcsv.SMALL_BYTES
    runs = {}
    for hidden in (False, True):
        for spec in ("r.csv", "bad.csv"):
            command = [sys.executable, "-c", _NO_PYARROW] if hidden else [sys.executable, "-m", "losscli"]
            done = subprocess.run([*command, "mse", f"{spec}:pred", f"{spec}:target", "-f", "plain"],
                                  capture_output=True, text=True, cwd=tmp_path, timeout=120,
                                  env={"PYTHONPATH": str(ROOT), "PATH": ""})
            runs[hidden, spec] = (done.returncode, done.stdout, done.stderr)
    assert runs[False, "r.csv"] == runs[True, "r.csv"] and runs[False, "r.csv"][0] == 0
    assert runs[False, "bad.csv"] == runs[True, "bad.csv"] == (
        2, "", "error: target (bad.csv:target): line 30002, column 'target': expected a number, but got 'oops'\n")


_IMPORTS_PYARROW = ("import sys, losscli; losscli.compute('mse', sys.argv[1] + ':pred', sys.argv[1] + ':target'); "
                    "print('pyarrow' in sys.modules)")


def test_a_small_file_is_read_without_importing_pyarrow(tmp_path):
    """Under 1 MiB of text, losscli.io.table reads it before pyarrow would be imported; from 1 MiB, pyarrow."""
    _two_columns(tmp_path / "small.csv", 1000)
    _two_columns(tmp_path / "large.csv", 30_000)
    imports = [subprocess.run([sys.executable, "-c", _IMPORTS_PYARROW, str(tmp_path / name)], capture_output=True,
                              text=True, cwd=ROOT, timeout=120).stdout.strip() for name in ("small.csv", "large.csv")]
    assert imports == ["False", "True"]


def test_without_pyarrow_columns_are_read_by_table(tmp_path, monkeypatch):
    without_pyarrow(monkeypatch)
    a, _ = _two_columns(tmp_path / "r.csv", 10)
    rows = Loader().load(f"{tmp_path}/r.csv:pred", role="input").rows
    assert not by_pyarrow(rows)
    np.testing.assert_array_equal(rows.whole(), a)


# --- the two readers agree on any text ---------------------------------------------------------------------------

_COLUMN_CELLS = {
    "floats": st.one_of(_FLOAT_TEXT, st.integers(-2**64, 2**64).map(str)),
    "ints": st.one_of(st.integers(-2**63, 2**63 - 1).map(str), st.sampled_from([" 7 ", "\t8", "-0", "007", '"2"'])),
    "bools": st.sampled_from(["true", "false", "True", "FALSE"]),
}
# a cell of another kind: bad anywhere, or good to Python and not to pyarrow (" true", 1_000), or doubtful (+3, 0x10)
_ODD = st.sampled_from(["", " ", "x", "0x10", "+3", "1_000", "nan(1)", "-nan", '"1.5"', '"a,b"', ' "3"', '"4"5',
                        "\ufeff1", "\u00e91", "\u00a02", "1.5\u00a0", "\u0663", "2024-01-01", "12:30:00", "1,5",
                        "true", " true", "tRue", "1", "inf", '"x\ny"'])


@st.composite
def _tables(draw: st.DrawFn) -> list[list[str]]:
    """Rows of 1-3 columns, each of floats, integers or true/false, and at times one cell of another kind."""
    kinds = draw(st.lists(st.sampled_from(sorted(_COLUMN_CELLS)), min_size=1, max_size=3))
    n = draw(st.integers(1, 12))
    columns = [draw(st.lists(_COLUMN_CELLS[kind], min_size=n, max_size=n)) for kind in kinds]
    rows = [list(row) for row in zip(*columns)]
    if draw(st.booleans()):
        rows[draw(st.integers(0, n - 1))][draw(st.integers(0, len(kinds) - 1))] = draw(_ODD)
    return rows


@settings(max_examples=300, deadline=None,
          suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])
@given(rows=_tables(), header=st.booleans(), crlf=st.booleans(), tab=st.booleans(), bom=st.booleans(),
       tail=st.sampled_from(["", "\n", "\n\n", " \n", "\n \n\t\n"]), ragged=st.booleans(),
       piece=st.sampled_from([16, 64, 1 << 22]))
def test_the_readers_give_the_same_values_and_messages(tmp_path, monkeypatch, rows, header, crlf, tab, bom, tail,
                                                        ragged, piece):
    """Random text, good and bad (bad cells, ragged rows, quotes, a byte-order mark, blank lines): pyarrow's reader
    and losscli.io.table's give the same arrays (dtype, shape, values; NaN as NaN) or the same message."""
    delimiter, end = ("\t" if tab else ","), ("\r\n" if crlf else "\n")
    if ragged and len(rows) > 1:
        rows[-1] = rows[-1] + ["1"]
    lines = ([delimiter.join(f"c{j}" for j in range(len(rows[0])))] if header else []) + [
        delimiter.join(row) for row in rows]
    text = ("\ufeff" if bom else "") + end.join(lines) + end + tail.replace("\n", end)
    (tmp_path / "t.csv").write_bytes(text.encode("utf-8"))
    specs = [str(tmp_path / "t.csv")] + [f"{tmp_path / 't.csv'}:{j}" for j in range(len(rows[0]))]
    with monkeypatch.context() as patch:  # (hypothesis runs every example with the one monkeypatch)
        pieces_of(patch, piece)
        with_pyarrow(patch)
        by_arrow = [_outcome(spec) for spec in specs]
        event("an error" if by_arrow[0][0] == "error" else
              "read by pyarrow" if by_pyarrow(Loader().load(specs[0], role="input").rows) else "read by table.py")
    with monkeypatch.context() as patch:
        pieces_of(patch, piece)
        without_pyarrow(patch)
        assert by_arrow == [_outcome(spec) for spec in specs]


def _outcome(spec: str) -> tuple:
    """What loading ``spec`` and reading it whole gives: its dtype, shape and values (NaN compared as NaN, the sign
    of zero kept), or its message."""
    try:
        array = Loader().load(spec, role="input").rows.whole()
    except losscli.InputError as e:
        return ("error", str(e))
    values = array.astype(np.float64) if array.dtype.kind == "f" else array
    nan = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    signs = np.signbit(values) & ~nan if values.dtype.kind == "f" else nan
    return (array.dtype.str, array.shape, np.where(nan, 0, values).tobytes(), nan.tobytes(), signs.tobytes())
