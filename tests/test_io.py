"""losscli.io: every spec form, and every refusal with the words a user reads.

Expected arrays are written out by hand or come from numpy's own writers (np.save, np.savez,
np.savetxt), never from losscli.
"""

from __future__ import annotations

import io
import os
import re
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import losscli.io
from losscli.errors import InputError
from losscli.io import Loaded, Loader, parse_spec
from losscli.io.npy import READ_BYTES
from tests.csvread import pieces_of, streamed


def load(spec: str, role: str = "input", stdin: str | None = None) -> np.ndarray:
    return Loader(stdin=None if stdin is None else io.StringIO(stdin)).load(spec, role=role).array


def error(spec: str, role: str = "input", stdin: str | None = None) -> str:
    return error_from(Loader(stdin=None if stdin is None else io.StringIO(stdin)), spec, role)


def error_from(loader: Loader, spec: str, role: str = "input") -> str:
    """The error of loading ``spec``, or of reading its rows as a stream does (CSV columns are read when first
    needed; a CSV file of several pieces without pyarrow, a piece at a time)."""
    with pytest.raises(InputError) as info:
        rows = loader.load(spec, role=role).rows
        rows.read(0, rows.shape[0])
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run in tmp_path, so that specs and messages read as a user would type them."""
    monkeypatch.chdir(tmp_path)


# --- specs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("results.csv:pred", ("results.csv", "pred")),
        ("results.CSV:0,2", ("results.CSV", "0,2")),
        ("arrays.npz:logits", ("arrays.npz", "logits")),
        ("scores.tsv", ("scores.tsv", None)),
        ("pred.npy", ("pred.npy", None)),
        ("-", ("-", None)),
        ("-:pred,label", ("-", "pred,label")),
        ("C:/data/pred.npy", ("C:/data/pred.npy", None)),  # a drive letter is not a file part
        ("run:3/pred.npy", ("run:3/pred.npy", None)),
        ("run:3/out.csv:pred", ("run:3/out.csv", "pred")),  # split at the last ':' only
        ("notes.txt:pred", ("notes.txt:pred", None)),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


def test_loaded_keeps_the_names(tmp_path):
    write(tmp_path / "results.csv", "pred,label\n0.5,1\n")
    loaded = Loader().load("results.csv:pred", role="input")
    assert isinstance(loaded, Loaded)
    assert (loaded.spec, loaded.path, loaded.selector) == ("results.csv:pred", "results.csv", "pred")
    np.testing.assert_array_equal(loaded.array, [0.5])


# --- .npy --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [3, READ_BYTES // 16 + 1])
def test_npy_is_read_only_and_memory_mapped_when_large(rows):
    expected = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    np.save("pred.npy", expected)
    array = load("pred.npy")
    assert isinstance(array, np.memmap) == (expected.nbytes > READ_BYTES)  # a small file is read, not mapped
    assert not array.flags.writeable
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize("expected", [np.float64(2.5), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)])
def test_npy_zero_d_and_zero_size(expected):
    np.save("a.npy", expected)
    array = load("a.npy")
    assert array.shape == np.shape(expected) and array.dtype == expected.dtype
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize(
    "dtype",
    ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
     "uint8", "uint16", "uint32", "uint64", "bool"],
)
def test_npy_accepts_numeric_dtypes(dtype):
    expected = np.array([0, 1, 1, 0], dtype=dtype)
    np.save("a.npy", expected)
    array = load("a.npy")
    assert array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize(
    ("array", "got"),
    [
        (np.array(["ab", "c"]), "but got dtype <U2 (strings)"),
        (np.array([1 + 2j]), "but got dtype complex128 (complex numbers)"),
        (np.zeros(2, dtype=[("x", "f4"), ("y", "i4")]), "(records)"),
        (np.array(["2024-01-01"], dtype="datetime64[D]"), "but got dtype datetime64[D] (datetimes)"),
    ],
)
def test_npy_refuses_other_dtypes(array, got):
    np.save("a.npy", array)
    message = error("a.npy", role="target")
    assert message.startswith("target (a.npy): expected numbers or booleans (float16/32/64, int, uint, bool)")
    assert got in message


def test_npy_refuses_pickled_objects():
    np.save("objects.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    assert error("objects.npy") == (
        "input (objects.npy): expected numbers or booleans, but got Python objects (dtype object), "
        "which would need pickle to load"
    )


def test_npy_refuses_a_selector():
    np.save("pred.npy", np.zeros(3))
    assert error("pred.npy:pred") == (
        "input (pred.npy:pred): selectors apply to .npz, .csv, .tsv, .parquet, .feather, .arrow, .arrows, "
        ".safetensors, .pt, .pth and compressed CSV/TSV files, but got ':pred' on a .npy file"
    )


def test_the_formats_that_take_selectors_come_from_the_format_table(monkeypatch):
    np.save("p1.npy", np.zeros(3))
    monkeypatch.setitem(losscli.io.formats.READERS, ".new", losscli.io.formats.READERS[".csv"])
    monkeypatch.setattr(losscli.io.formats, "_PLAIN", [*losscli.io.formats._PLAIN, ".new"])
    assert error("p*.npy:0") == (
        "input (p*.npy:0): selectors apply to .npz, .csv, .tsv, .parquet, .feather, .arrow, .arrows, .safetensors, "
        ".pt, .pth, .new and compressed CSV/TSV files, but got ':0' on .npy shards")


def test_npy_random_bytes():
    with open("junk.npy", "wb") as f:
        f.write(bytes(range(256)) * 4)
    assert error("junk.npy") == (
        "input (junk.npy): expected a .npy file, but got bytes without a valid .npy header "
        "(the file is corrupt or not a .npy file)"
    )


def test_npy_truncated_data():
    np.save("full.npy", np.arange(1000.0))
    data = open("full.npy", "rb").read()
    open("cut.npy", "wb").write(data[:3000])
    header = len(data) - 8000
    assert error("cut.npy") == (
        f"input (cut.npy): expected 8000 bytes of float64 data for shape (1000,), "
        f"but got {3000 - header} (the file is truncated)"
    )


def test_npy_truncated_header():
    np.save("full.npy", np.arange(10.0))
    open("cut.npy", "wb").write(open("full.npy", "rb").read()[:30])
    assert "expected a .npy file, but got bytes without a valid .npy header" in error("cut.npy")


# --- files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.npy", "a.npz", "a.csv", "a.tsv"])
def test_empty_file(name):
    open(name, "wb").close()
    suffix = name[1:]
    assert error(name) == f"input ({name}): expected a {suffix} file, but the file is empty (0 bytes)"


@pytest.mark.parametrize("name", ["missing.npy", "missing.npz", "missing.csv", "missing.tsv"])
def test_missing_file(name):
    assert error(name, role="weight") == (
        f"weight ({name}): expected a {name[7:]} file, but there is no such file"
    )


def test_missing_file_with_selector():
    assert error("missing.csv:pred") == "input (missing.csv:pred): expected a .csv file, but there is no such file"


def test_directory():
    os.mkdir("runs.csv")
    assert error("runs.csv") == "input (runs.csv): expected a .csv file, but got a directory"


def test_permission_denied(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(losscli.io.files, "open", refuse, raising=False)
    assert error("secret.npy") == "input (secret.npy): expected a readable file, but permission was denied"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real():
    np.save("secret.npy", np.zeros(2))
    os.chmod("secret.npy", 0)
    assert error("secret.npy") == "input (secret.npy): expected a readable file, but permission was denied"


def test_other_os_errors_are_wrapped(monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(losscli.io.files, "open", fail, raising=False)
    assert error("pred.csv") == "input (pred.csv): cannot read the file: Input/output error"


@pytest.mark.parametrize(
    ("spec", "got"),
    [("data.txt", "but got .txt"), ("data.txt:pred", "but got .txt:pred"), ("data", "but got a name without a suffix")],
)
def test_unsupported_suffix(spec, got):
    assert error(spec) == (
        f"input ({spec}): expected a .npy, .npz, .csv, .tsv, .parquet, .feather, .arrow, .arrows, .safetensors, .pt "
        f"or .pth file (or - for CSV on stdin), {got}"
    )


# --- .npz --------------------------------------------------------------------------------------------


def test_npz_single_array_needs_no_key():
    np.savez("one.npz", logits=np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(load("one.npz"), [[1.0, 2.0]])
    np.testing.assert_array_equal(load("one.npz:logits"), [[1.0, 2.0]])


def test_npz_several_arrays_by_key_compressed_or_not():
    np.savez("plain.npz", pred=np.array([0.5, 0.25]), label=np.array([1, 0]))
    np.savez_compressed("packed.npz", pred=np.array([0.5, 0.25]), label=np.array([1, 0]))
    for name in ("plain.npz", "packed.npz"):
        loader = Loader()
        label = loader.load(f"{name}:label", role="target").array
        assert label.dtype == np.int64
        np.testing.assert_array_equal(label, [1, 0])
        np.testing.assert_array_equal(loader.load(f"{name}:pred", role="input").array, [0.5, 0.25])


def test_npz_several_arrays_and_no_key():
    np.savez("both.npz", pred=np.zeros(2), label=np.zeros(2))
    assert error("both.npz") == (
        "input (both.npz): expected a key to pick one of its 2 arrays ('pred', 'label'), "
        "as in both.npz:pred, but got none"
    )


def test_npz_unknown_key():
    np.savez("both.npz", pred=np.zeros(2), label=np.zeros(2))
    assert error("both.npz:logits", role="input") == (
        "input (both.npz:logits): expected one of the keys 'pred', 'label', but got 'logits'"
    )


def test_npz_empty_archive():
    np.savez("nothing.npz")
    assert error("nothing.npz") == "input (nothing.npz): expected a .npz file holding arrays, but the archive is empty"


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, b"PK\x03\x04" + bytes(100)])
def test_npz_corrupt(data):
    open("junk.npz", "wb").write(data)
    assert error("junk.npz") == (
        "input (junk.npz): expected a .npz file (a zip archive), but the file is corrupt or not a zip archive"
    )


def test_npz_truncated():
    np.savez_compressed("full.npz", a=np.arange(1000.0), b=np.arange(10))
    data = open("full.npz", "rb").read()
    open("cut.npz", "wb").write(data[: len(data) // 2])
    assert "expected a .npz file (a zip archive), but the file is corrupt" in error("cut.npz:a")


def test_npz_member_that_is_not_an_array():
    with zipfile.ZipFile("odd.npz", "w") as z:
        z.writestr("a.npy", b"not an array at all")
    assert error("odd.npz:a") == (
        "input (odd.npz:a): expected array 'a' of the .npz file, but got bytes without a valid .npy header "
        "(the file is corrupt or not a .npy file)"
    )


def test_npz_member_truncated():
    body = io.BytesIO()
    np.save(body, np.arange(100.0))
    with zipfile.ZipFile("cut.npz", "w") as z:
        z.writestr("a.npy", body.getvalue()[:-80])
    message = error("cut.npz")
    assert message.startswith("input (cut.npz): expected a readable array 'a' of the .npz file, but it is corrupt")


def test_npz_refuses_pickled_objects():
    np.savez("objects.npz", a=np.array([None, 1], dtype=object))
    assert error("objects.npz:a") == (
        "input (objects.npz:a): expected numbers or booleans, but got Python objects (dtype object), "
        "which would need pickle to load"
    )


# --- CSV and TSV: values -----------------------------------------------------------------------------


def test_csv_header_names_and_indices(tmp_path):
    write(tmp_path / "results.csv", "id,pred,label\na,0.5,1\nb,0.25,0\n")
    np.testing.assert_array_equal(load("results.csv:pred"), [0.5, 0.25])
    np.testing.assert_array_equal(load("results.csv:2"), [1, 0])
    assert load("results.csv:label").dtype == np.int64
    assert load("results.csv:pred").dtype == np.float64


def test_csv_without_header(tmp_path):
    write(tmp_path / "plain.csv", "0.5,1\n0.25,0\n")
    np.testing.assert_array_equal(load("plain.csv:0"), [0.5, 0.25])
    np.testing.assert_array_equal(load("plain.csv:1"), [1, 0])
    np.testing.assert_array_equal(load("plain.csv"), [[0.5, 1.0], [0.25, 0.0]])


def test_csv_several_columns_give_rows_by_columns(tmp_path):
    write(tmp_path / "r.csv", "a,b,c\n1,2,3\n4,5,6\n")
    both = load("r.csv:c,a")
    assert both.shape == (2, 2) and both.dtype == np.int64
    np.testing.assert_array_equal(both, [[3, 1], [6, 4]])
    np.testing.assert_array_equal(load("r.csv: a , 1"), [[1, 2], [4, 5]])  # spaces around a selector
    np.testing.assert_array_equal(load("r.csv"), [[1, 2, 3], [4, 5, 6]])


def test_csv_one_column_file_is_one_dimensional(tmp_path):
    write(tmp_path / "y.csv", "label\n1\n0\n1\n")
    assert load("y.csv").shape == (3,)
    write(tmp_path / "z.csv", "1\n0\n")
    np.testing.assert_array_equal(load("z.csv"), [1, 0])


def test_csv_name_wins_over_index(tmp_path):
    write(tmp_path / "odd.csv", "x,0\n10,20\n")
    np.testing.assert_array_equal(load("odd.csv:0"), [20])
    np.testing.assert_array_equal(load("odd.csv:1"), [20])
    np.testing.assert_array_equal(load("odd.csv:x"), [10])


def test_csv_numbers_of_every_spelling(tmp_path):
    write(tmp_path / "f.csv", "x\nnan\ninf\n-inf\n1e-3\n-2\n+.5\n")
    array = load("f.csv")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [np.nan, np.inf, -np.inf, 0.001, -2.0, 0.5])


def test_csv_int_column_and_float_column_together_are_float(tmp_path):
    write(tmp_path / "m.csv", "i,f\n1,0.5\n2,1.5\n")
    array = load("m.csv")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1.0, 0.5], [2.0, 1.5]])


def test_csv_huge_integer_falls_back_to_float(tmp_path):
    write(tmp_path / "big.csv", "99999999999999999999\n1\n")
    array = load("big.csv")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [1e20, 1.0])


def test_csv_bool_column(tmp_path):
    write(tmp_path / "mask.csv", "keep,w\nTrue,0.5\nfalse,1\n FALSE ,2\n")
    mask = load("mask.csv:keep")
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, [True, False, False])
    both = load("mask.csv")  # a bool and a float column: numpy promotes to float64
    assert both.dtype == np.float64
    np.testing.assert_array_equal(both, [[1.0, 0.5], [0.0, 1.0], [0.0, 2.0]])


def test_csv_bool_first_row_is_data_not_header(tmp_path):
    write(tmp_path / "mask.csv", "true\nfalse\n")
    np.testing.assert_array_equal(load("mask.csv"), [True, False])


def test_csv_blank_cell_does_not_make_a_header(tmp_path):
    write(tmp_path / "r.csv", "1,,3\n4,5,6\n")
    assert error("r.csv") == "input (r.csv): line 1, column 1: expected a number, but got an empty cell"
    write(tmp_path / "index.csv", ",pred\n0,0.5\n1,0.25\n")  # pandas' to_csv leaves the index unnamed
    np.testing.assert_array_equal(load("index.csv:pred"), [0.5, 0.25])
    np.testing.assert_array_equal(load("index.csv:0"), [0, 1])


def test_csv_whitespace_blank_tail_crlf_and_bom(tmp_path):
    (tmp_path / "w.csv").write_bytes(b"\xef\xbb\xbf pred , label \r\n 0.5 , 1\r\n0.25,\t0\r\n\r\n  \n\n")
    np.testing.assert_array_equal(load("w.csv:pred"), [0.5, 0.25])
    np.testing.assert_array_equal(load("w.csv:label"), [1, 0])


def test_csv_quoted_cells(tmp_path):
    write(tmp_path / "q.csv", '"pred","a,b"\n"0.5", 1\n0.25,"0"\n')
    np.testing.assert_array_equal(load("q.csv:pred"), [0.5, 0.25])
    np.testing.assert_array_equal(load("q.csv:1"), [1, 0])


def test_csv_unselected_text_columns_are_fine(tmp_path):
    write(tmp_path / "r.csv", "id,pred\nalpha,0.5\n,0.25\n")
    np.testing.assert_array_equal(load("r.csv:pred"), [0.5, 0.25])


def test_tsv(tmp_path):
    write(tmp_path / "s.tsv", "pred\tlabel\n0.5\t1\n0.25\t0\n")
    np.testing.assert_array_equal(load("s.tsv:label,pred"), [[1.0, 0.5], [0.0, 0.25]])
    write(tmp_path / "c.tsv", "a,b\n1,2\n")  # commas are not a TSV's delimiter
    assert error("c.tsv") == "input (c.tsv): line 2, column 'a,b': expected a number, but got '1,2'"


def test_csv_file_parsed_once(tmp_path, monkeypatch):
    write(tmp_path / "results.csv", "pred,label\n0.5,1\n0.25,0\n")
    parsed = []
    read_csv = losscli.io.formats.READERS[".csv"]

    def counting(path):
        parsed.append(path)
        return read_csv(path)

    monkeypatch.setitem(losscli.io.formats.READERS, ".csv", counting)
    loader = Loader()
    pred = loader.load("results.csv:pred", role="input").array
    label = loader.load("results.csv:label", role="target").array
    assert len(parsed) == 1
    np.testing.assert_array_equal(pred, [0.5, 0.25])
    np.testing.assert_array_equal(label, [1, 0])


def test_npz_array_read_once():
    np.savez("both.npz", pred=np.zeros(2), label=np.ones(2))
    loader = Loader()
    first = loader.load("both.npz:pred", role="input").array
    assert loader.load("both.npz:pred", role="weight").array is first


# --- CSV and TSV: refusals ---------------------------------------------------------------------------


def test_csv_ragged_row(tmp_path):
    write(tmp_path / "r.csv", "pred,label\n0.5,1\n0.25,0,7\n")
    assert error("r.csv:pred") == "input (r.csv:pred): line 3: expected 2 cells like line 1, but got 3"
    write(tmp_path / "s.csv", "pred,label\n0.5,1\n\n0.25,0\n")  # a blank line inside is a short row
    assert error("s.csv") == "input (s.csv): line 3: expected 2 cells like line 1, but got 1"
    write(tmp_path / "q.csv", '"pred",label\n0.5\n')
    assert error("q.csv") == "input (q.csv): line 2: expected 2 cells like line 1, but got 1"


def test_csv_bad_cell_line_twelve(tmp_path):
    rows = [f"{i / 10},{i % 2}" for i in range(10)] + ["abc,1"]
    write(tmp_path / "results.csv", "pred,label\n" + "\n".join(rows) + "\n")
    assert error("results.csv:pred") == (
        "input (results.csv:pred): line 12, column 'pred': expected a number, but got 'abc'"
    )
    np.testing.assert_array_equal(load("results.csv:label"), [i % 2 for i in range(10)] + [1])


def test_csv_bad_cell_in_several_columns(tmp_path):
    write(tmp_path / "r.csv", "1,2\n3,x\n")
    assert error("r.csv") == "input (r.csv): line 2, column 1: expected a number, but got 'x'"


def test_csv_empty_cell(tmp_path):
    write(tmp_path / "r.csv", "pred,label\n0.5,1\n ,0\n")
    assert error("r.csv:pred", role="input") == (
        "input (r.csv:pred): line 3, column 'pred': expected a number, but got an empty cell"
    )


def test_csv_bool_column_with_a_stray(tmp_path):
    write(tmp_path / "m.csv", "keep\ntrue\nfalse\nmaybe\n")
    assert error("m.csv", role="mask") == "mask (m.csv): line 4, column 'keep': expected true or false, but got 'maybe'"


def test_csv_line_numbers_count_lines_inside_quotes(tmp_path):
    write(tmp_path / "q.csv", '"pred\nscore",label\n0.5,1\noops,0\n')
    assert error("q.csv:0") == "input (q.csv:0): line 4, column 'pred\\nscore': expected a number, but got 'oops'"


def test_csv_unknown_column_name(tmp_path):
    write(tmp_path / "r.csv", "pred,label\n0.5,1\n")
    assert error("r.csv:prob", role="input") == (
        "input (r.csv:prob): expected a column name or index, but got 'prob'; "
        "the columns are 'pred', 'label' (indices 0..1)"
    )
    assert error("r.csv:pred,") == (
        "input (r.csv:pred,): expected a column name or index, but got ''; "
        "the columns are 'pred', 'label' (indices 0..1)"
    )


def test_csv_many_columns_listed_in_part(tmp_path):
    names = [f"c{i}" for i in range(30)]
    write(tmp_path / "wide.csv", ",".join(names) + "\n" + ",".join(["1"] * 30) + "\n")
    message = error("wide.csv:c99")
    assert "'c0', 'c1'" in message and "'c19', ... (30 in all) (indices 0..29)" in message
    assert "'c20'" not in message


def test_csv_index_out_of_range(tmp_path):
    write(tmp_path / "r.csv", "0.5,1\n0.25,0\n")
    assert error("r.csv:2", role="target") == (
        "target (r.csv:2): expected a column index (the file has no header row), but got '2'; "
        "there are 2 columns, indices 0..1"
    )
    assert error("r.csv:pred") == (
        "input (r.csv:pred): expected a column index (the file has no header row), but got 'pred'; "
        "there are 2 columns, indices 0..1"
    )
    write(tmp_path / "one.csv", "1\n")
    assert error("one.csv:-1").endswith("but got '-1'; there is 1 column, index 0")


def test_csv_empty_selector(tmp_path):
    write(tmp_path / "r.csv", "1\n")
    assert error("r.csv:") == "input (r.csv:): expected a column or key after ':', but got nothing"


def test_csv_header_without_rows(tmp_path):
    write(tmp_path / "h.csv", "pred,label\n\n")
    assert error("h.csv:pred") == "input (h.csv:pred): expected data rows after the header on line 1, but got none"


def test_csv_only_blank_lines(tmp_path):
    write(tmp_path / "b.csv", "\n  \n\n")
    assert error("b.csv") == "input (b.csv): expected rows of data, but got only blank lines"


def test_csv_not_utf8(tmp_path):
    (tmp_path / "latin.csv").write_bytes(b"pr\xe9d\n1\n")
    assert error("latin.csv") == "input (latin.csv): expected a .csv file in UTF-8, but got byte 0xe9 at offset 2"


# --- stdin -------------------------------------------------------------------------------------------


def test_stdin_read_once_for_several_arguments():
    reads = []

    class Stdin(io.StringIO):
        def read(self, *args):
            reads.append(args)
            return super().read(*args)

    loader = Loader(stdin=Stdin("pred,label\n0.5,1\n0.25,0\n"))
    np.testing.assert_array_equal(loader.load("-:pred", role="input").array, [0.5, 0.25])
    np.testing.assert_array_equal(loader.load("-:label", role="target").array, [1, 0])
    loaded = loader.load("-", role="weight")
    assert (loaded.path, loaded.selector) == ("-", None)
    np.testing.assert_array_equal(loaded.array, [[0.5, 1.0], [0.25, 0.0]])
    assert len(reads) == 1


def test_stdin_defaults_to_sys_stdin_read_lazily(monkeypatch):
    loader = Loader()
    monkeypatch.setattr(sys, "stdin", io.StringIO("3\n4\n"))
    np.testing.assert_array_equal(loader.load("-", role="input").array, [3, 4])


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_stdin_empty(text):
    assert error("-:pred", stdin=text) == "input (-:pred): expected CSV text on stdin, but got nothing"


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stdin", [Terminal("1\n"), None])
def test_stdin_terminal_or_none(monkeypatch, stdin):
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(InputError, match=r"^input \(-\): expected CSV text piped to stdin, but nothing is piped in$"):
        Loader().load("-", role="input")


def test_stdin_not_utf8():
    class Latin(io.StringIO):
        def read(self, *args):
            raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte")

    assert error_from(Loader(stdin=Latin()), "-") == (
        "input (-): expected CSV text on stdin in UTF-8, but got: invalid continuation byte"
    )


def test_stdin_crlf():
    np.testing.assert_array_equal(load("-:b", stdin="a,b\r\n1,2\r\n3,4\r\n"), [2, 4])


def test_stdin_errors_name_stdin():
    assert error("-:label", role="target", stdin="pred\n0.5\n") == (
        "target (-:label): expected a column name or index, but got 'label'; the columns are 'pred' (index 0)"
    )


# --- round trips through numpy's own writers ---------------------------------------------------------

_SHAPES = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6)
_SETTINGS = settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])


def one_column_is_1d(array: np.ndarray) -> np.ndarray:
    return array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array


@_SETTINGS
@given(hnp.arrays(np.float64, _SHAPES, elements=st.floats(allow_subnormal=True)))
def test_float_csv_round_trip(tmp_path, array):
    np.savetxt(tmp_path / "a.csv", array, delimiter=",")  # %.18e: every float64 exactly
    loaded = load(str(tmp_path / "a.csv"))
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, one_column_is_1d(array))


@_SETTINGS
@given(hnp.arrays(np.int64, _SHAPES), st.sampled_from([",", "\t"]))
def test_int_csv_tsv_round_trip(tmp_path, array, delimiter):
    path = tmp_path / ("a.csv" if delimiter == "," else "a.tsv")
    names = delimiter.join(f"c{i}" for i in range(array.shape[1])) if array.ndim == 2 else "c0"
    np.savetxt(path, array, fmt="%d", delimiter=delimiter, header=names, comments="")
    loaded = load(str(path))
    assert loaded.dtype == np.int64
    np.testing.assert_array_equal(loaded, one_column_is_1d(array))


@_SETTINGS
@given(hnp.arrays(st.sampled_from(["f2", "f4", "f8", "i1", "i8", "u2", "u8", "?"]).map(np.dtype),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
def test_npy_round_trip(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    loaded = load(str(tmp_path / "a.npy"))
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def _valid_files() -> dict[str, bytes]:
    files = {}
    for suffix, save in ((".npy", np.save), (".npz", np.savez), (".npz", np.savez_compressed)):
        body = io.BytesIO()
        save(body, np.arange(50.0).reshape(5, 10)) if suffix == ".npy" else save(body, a=np.arange(50.0), b=np.ones(3))
        files[f"{save.__name__}{suffix}"] = body.getvalue()
    files["table.csv"] = b'"pred",label\n0.5,1\n0.25,0\n'
    return files


_VALID = _valid_files()


@_SETTINGS
@given(st.sampled_from(sorted(_VALID)), st.data())
def test_damaged_files_give_an_array_or_an_input_error(tmp_path, name, data):
    """Cut short, or with bytes overwritten: never a numpy, zip or OS exception."""
    good = bytearray(_VALID[name])
    cut = data.draw(st.integers(0, len(good)), label="cut")
    damaged = good[:cut]
    if damaged and data.draw(st.booleans(), label="overwrite"):
        at = data.draw(st.integers(0, len(damaged) - 1), label="at")
        damaged[at] = data.draw(st.integers(0, 255), label="byte")
    path = tmp_path / ("x" + name[name.index("."):])
    path.write_bytes(bytes(damaged))
    try:
        Loader().load(f"{path}:a" if name.endswith(".npz") else str(path), role="input")
    except InputError as e:
        assert "\n" not in str(e)


# --- CSV read in pieces and in blocks ----------------------------------------------------------------
# The file is read in pieces of PIECE_BYTES (4 MiB); a few bytes here put the piece ends everywhere:
# inside quoted cells, between CR and LF, among blank lines. Expected arrays are numpy's or written out.


def blocks(spec: str, rows: int, stdin: str | None = None) -> list[np.ndarray]:
    """The argument read as the streaming engine reads it: ``rows`` rows at a time."""
    loaded = Loader(stdin=None if stdin is None else io.StringIO(stdin)).load(spec, role="input")
    n = loaded.rows.shape[0]
    return [loaded.rows.read(start, min(start + rows, n)) for start in range(0, n, rows)]


def test_csv_blocks_hold_rows_of_the_selected_columns(tmp_path, monkeypatch, reader):
    pieces_of(monkeypatch, 16)
    rows = [(i, i / 4, i % 3) for i in range(23)]
    write(tmp_path / "r.csv", "id,pred,label\n" + "".join(f"{i},{p},{y}\n" for i, p, y in rows))
    assert streamed(Loader().load("r.csv:pred", role="input").rows)  # a file of more than one piece
    parts = blocks("r.csv:label,pred", rows=5)
    assert [len(b) for b in parts] == [5, 5, 5, 5, 3]
    assert all(b.dtype == np.float64 and b.shape[1:] == (2,) for b in parts)
    np.testing.assert_array_equal(np.concatenate(parts), [[y, p] for _, p, y in rows])
    labels = blocks("r.csv:label", rows=10)
    assert [b.shape for b in labels] == [(10,), (10,), (3,)] and labels[0].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate(labels), [y for *_, y in rows])
    np.testing.assert_array_equal(load("r.csv:pred"), [p for _, p, _ in rows])


_PIECE_SETTINGS = settings(_SETTINGS, max_examples=60, deadline=None)


@_PIECE_SETTINGS
@given(
    array=hnp.arrays(st.sampled_from([np.int64, np.float64]), hnp.array_shapes(min_dims=2, max_dims=2, max_side=9)),
    piece=st.integers(1, 64), rows=st.integers(1, 7), header=st.booleans(), crlf=st.booleans(),
    quoted=st.booleans(), blank_tail=st.booleans(),
)
def test_csv_pieces_and_blocks_give_the_array(tmp_path, monkeypatch, reader, array, piece, rows, header, crlf,
                                               quoted, blank_tail):
    pieces_of(monkeypatch, piece)
    end = "\r\n" if crlf else "\n"
    cell = (lambda v: f'"{v!r}"') if quoted else repr
    lines = [",".join(f"c{j}" for j in range(array.shape[1]))] if header else []
    lines += [",".join(cell(v) for v in row.tolist()) for row in array]
    write(tmp_path / "a.csv", end.join(lines) + end + (f"{end} {end}" if blank_tail else ""))
    expected = one_column_is_1d(array)
    np.testing.assert_array_equal(load(str(tmp_path / "a.csv")), expected)
    parts = blocks(str(tmp_path / "a.csv"), rows)
    assert [len(b) for b in parts[:-1]] == [rows] * (len(parts) - 1) and 0 < len(parts[-1]) <= rows
    assert all(b.dtype == array.dtype for b in parts)
    np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_csv_quoted_cell_across_pieces_keeps_line_numbers(tmp_path, monkeypatch, reader):
    pieces_of(monkeypatch, 8)
    write(tmp_path / "q.csv", '"pred\nscore",label\n0.5,1\n"0.25",0\n1,"1"\noops,0\n')
    assert error("q.csv:0") == "input (q.csv:0): line 6, column 'pred\\nscore': expected a number, but got 'oops'"
    np.testing.assert_array_equal(load("q.csv:label"), [1, 0, 1, 0])


def test_csv_errors_in_later_pieces_name_their_line(tmp_path, monkeypatch, reader):
    pieces_of(monkeypatch, 10)
    body = "".join(f"{i},{i % 2}\n" for i in range(30))
    write(tmp_path / "bad.csv", "pred,label\n" + body + "x,1\n")
    assert error("bad.csv:pred") == "input (bad.csv:pred): line 32, column 'pred': expected a number, but got 'x'"
    write(tmp_path / "ragged.csv", "pred,label\n" + body + "1,2,3\n")
    assert error("ragged.csv:label") == "input (ragged.csv:label): line 32: expected 2 cells like line 1, but got 3"
    write(tmp_path / "blank.csv", "pred,label\n" + body + "\n\n" + body)
    assert error("blank.csv") == "input (blank.csv): line 32: expected 2 cells like line 1, but got 1"
    (tmp_path / "latin.csv").write_bytes(b"pred\n" + b"1\n" * 20 + b"pr\xe9d\n")
    assert error("latin.csv") == "input (latin.csv): expected a .csv file in UTF-8, but got byte 0xe9 at offset 47"


def test_csv_bom_is_not_counted_into_offsets(tmp_path, reader):
    (tmp_path / "b.csv").write_bytes(b"\xef\xbb\xbfpred\n1\n\xff\n")
    assert error("b.csv") == "input (b.csv): expected a .csv file in UTF-8, but got byte 0xff at offset 10"


def test_csv_column_kind_is_that_of_every_piece(tmp_path, monkeypatch, reader):
    pieces_of(monkeypatch, 8)
    write(tmp_path / "m.csv", "y\n" + "1\n" * 10 + "0.5\n")
    whole = load("m.csv")
    assert whole.dtype == np.float64  # integers, then a float: the whole column is float64
    np.testing.assert_array_equal(whole, [1.0] * 10 + [0.5])
    parts = blocks("m.csv", rows=4)  # read a piece at a time, in the whole column's dtype
    assert [b.dtype for b in parts] == [np.float64] * 3
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    write(tmp_path / "f.csv", "y\n0.5\n" + "1\n" * 10)
    assert [b.dtype for b in blocks("f.csv", rows=4)] == [np.float64] * 3
    write(tmp_path / "k.csv", "keep\n" + "true\n" * 10 + "1\n")
    assert error("k.csv") == "input (k.csv): line 12, column 'keep': expected true or false, but got '1'"
    write(tmp_path / "n.csv", "w\n" + "1\n" * 10 + "false\n")
    assert error("n.csv") == "input (n.csv): line 12, column 'w': expected a number, but got 'false'"


def test_csv_numbers_numpy_does_not_read_are_read_as_python_does(tmp_path, reader):
    write(tmp_path / "u.csv", "a,b\n1_000,\u0663\n2,4\n")  # Python's int() reads both; numpy's reader does not
    both = load("u.csv")
    assert both.dtype == np.int64
    np.testing.assert_array_equal(both, [[1000, 3], [2, 4]])


def test_csv_one_column_blank_line_inside_is_an_empty_cell(tmp_path, reader):
    write(tmp_path / "y.csv", "1\n\n2\n")  # numpy's reader would skip the blank line
    assert error("y.csv") == "input (y.csv): line 2, column 0: expected a number, but got an empty cell"


def test_stdin_is_read_whole_and_in_blocks(monkeypatch, reader):
    pieces_of(monkeypatch, 4)  # stdin is text already: never streamed
    loaded = Loader(stdin=io.StringIO("pred,label\n0.5,1\n0.25,0\n1.5,1\n")).load("-:label", role="input")
    assert not streamed(loaded.rows)
    parts = blocks("-:label", rows=2, stdin="pred,label\n0.5,1\n0.25,0\n1.5,1\n")
    assert [len(b) for b in parts] == [2, 1]
    np.testing.assert_array_equal(np.concatenate(parts), [1, 0, 1])


def test_large_csv_errors_name_the_argument(tmp_path, monkeypatch, reader):
    pieces_of(monkeypatch, 4)
    write(tmp_path / "r.csv", "pred\n0.5\n0.25\n")
    with pytest.raises(InputError, match=r"^target \(r.csv:label\): expected a column name or index, but got 'label'"):
        Loader().load("r.csv:label", role="target")


def python_reads(cells: list[str]) -> np.ndarray | None:
    """The column as the rule says, with Python's own int() and float(): None when a cell is neither."""
    for kind, dtype in ((int, np.int64), (float, np.float64)):
        try:
            values = [kind(cell) for cell in cells]
        except ValueError:
            continue
        if dtype is np.int64 and not all(-2**63 <= v < 2**63 for v in values):
            continue
        return np.array(values, dtype=dtype)
    return None


_SPELLINGS = st.one_of(
    st.integers(-2**64, 2**64).map(str),
    st.floats(width=64).map(repr),
    st.floats(width=32).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["+3", "-0", "00012", " 7 ", "\t8", "+.5", "1.", ".5", "1e5", "1E+05", "+1e+05", "Infinity",
                     "-inf", "NaN", "-nan", "0x10", "nan(1)", "1_000", "\u0663", "1d5", "", " ", "--1", "1e", "x"]),
)


@_PIECE_SETTINGS
@given(columns=st.lists(st.lists(_SPELLINGS, min_size=1, max_size=5), min_size=1, max_size=3).filter(
    lambda cols: len({len(c) for c in cols}) == 1), piece=st.sampled_from([7, 64, 1 << 22]))
def test_every_reader_reads_numbers_as_python_does(tmp_path, monkeypatch, reader, columns, piece):
    pieces_of(monkeypatch, piece)
    rows = list(zip(range(len(columns[0])), *columns))  # a first column of row numbers: no line is blank
    write(tmp_path / "n.csv", "i," + ",".join(f"c{j}" for j in range(len(columns))) + "\n"
          + "".join(",".join(map(str, row)) + "\n" for row in rows))
    expected = [python_reads(list(column)) for column in columns]
    for j, want in enumerate(expected):
        if want is None:
            assert re.match(rf"^input \(n.csv:c{j}\): line \d+, column 'c{j}': expected a number", error(f"n.csv:c{j}"))
        else:
            got = load(f"n.csv:c{j}")
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
