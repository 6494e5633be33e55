"""Columnar inputs (.parquet, .feather, .arrow, .arrows) written by pyarrow, and Parquet output: values against
torch.nn.functional on the same arrays, streaming by row groups, gate files, --grad, and hostile files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.edge.writer import ArrayFile
from tests.oracle import one_line_error

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
import pyarrow.feather as feather  # noqa: E402
import pyarrow.ipc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
rng = np.random.default_rng(11)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def value(*args) -> float:
    result = invoke(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["value"]



def fixed(array: np.ndarray):
    """A (rows, width) array as a column of fixed-size lists."""
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def lists(array: np.ndarray):
    """A (rows, width) array as a column of variable-length lists (all of one length)."""
    return pa.array(list(array))


def write(path: Path, columns: dict, **options) -> Path:
    """``columns`` in the format of ``path``'s suffix, as pyarrow writes it."""
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path, **options)
    elif path.suffix == ".feather":
        feather.write_feather(table, path, **options)
    elif path.suffix == ".arrow":
        with pa.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=options.get("batch", 5)):
                writer.write_batch(batch)
    else:
        with pa.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=options.get("batch", 5)):
                writer.write_batch(batch)
    return path


def close(got: float, want: torch.Tensor) -> None:
    assert got == pytest.approx(float(want), rel=1e-5, abs=1e-6)


T = torch.from_numpy

# -- every loss family reads a columnar file -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".feather", ".arrow", ".arrows"])
def test_regression_mse_from_columns(tmp_path, suffix):
    pred, target = rng.normal(size=(2, 13)).astype(np.float32)
    f = write(tmp_path / f"r{suffix}", {"id": np.arange(13), "pred": pred, "label": target})
    close(value("mse", f"{f}:pred", f"{f}:label"), F.mse_loss(T(pred), T(target)))
    both = np.stack([pred, target], axis=1)
    close(value("mse", f"{f}:1,2", f"{f}:label,pred"), F.mse_loss(T(both), T(both[:, ::-1].copy())))


@pytest.mark.parametrize("suffix", [".parquet", ".feather", ".arrows"])
@pytest.mark.parametrize("as_lists", [fixed, lists])
def test_classification_cross_entropy_from_lists(tmp_path, suffix, as_lists):
    logits = rng.normal(size=(11, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 11)
    f = write(tmp_path / f"c{suffix}", {"logits": as_lists(logits), "label": labels})
    close(value("cross-entropy", f"{f}:logits", f"{f}:label"), F.cross_entropy(T(logits), T(labels)))


def test_binary_bce_with_logits_from_arrow_file(tmp_path):
    logits = rng.normal(size=(9, 3)).astype(np.float32)
    targets = (rng.random((9, 3)) > 0.5).astype(np.float32)
    f = write(tmp_path / "b.arrow", {"logits": fixed(logits), "targets": fixed(targets)}, batch=4)
    close(value("bce-with-logits", f"{f}:logits", f"{f}:targets"),
          F.binary_cross_entropy_with_logits(T(logits), T(targets)))


def test_divergence_kl_div_from_parquet(tmp_path):
    log_probs = torch.log_softmax(torch.randn(8, 4), dim=1).numpy()
    target = torch.softmax(torch.randn(8, 4), dim=1).numpy()
    f = write(tmp_path / "d.parquet", {"input": lists(log_probs), "target": lists(target)}, row_group_size=3)
    close(value("kl-div", f"{f}:input", f"{f}:target", "--reduction", "batchmean"),
          F.kl_div(T(log_probs), T(target), reduction="batchmean"))


def test_margin_ranking_from_stream(tmp_path):
    s1, s2 = rng.normal(size=(2, 10)).astype(np.float32)
    y = np.where(rng.random(10) > 0.5, 1.0, -1.0).astype(np.float32)
    f = write(tmp_path / "m.arrows", {"s1": s1, "s2": s2, "y": y}, batch=3)
    close(value("margin-ranking", f"{f}:s1", f"{f}:s2", f"{f}:y", "--margin", "0.1"),
          F.margin_ranking_loss(T(s1), T(s2), T(y), margin=0.1))


def test_embedding_cosine_from_parquet(tmp_path):
    e1, e2 = rng.normal(size=(2, 7, 6)).astype(np.float32)
    y = np.where(rng.random(7) > 0.5, 1, -1).astype(np.int64)
    f = write(tmp_path / "e.parquet", {"e1": lists(e1), "e2": fixed(e2), "y": y})
    close(value("cosine-embedding", f"{f}:e1", f"{f}:e2", f"{f}:y", "--margin", "0.2"),
          F.cosine_embedding_loss(T(e1), T(e2), T(y), margin=0.2))


def test_sequence_linear_cross_entropy_from_parquet(tmp_path):
    hidden = rng.normal(size=(6, 4)).astype(np.float32)
    weight = rng.normal(size=(5, 4)).astype(np.float32)
    tokens = rng.integers(0, 5, 6)
    f = write(tmp_path / "s.parquet", {"hidden": fixed(hidden), "next": tokens})
    w = write(tmp_path / "w.feather", {"w": fixed(weight)})
    close(value("linear-cross-entropy", f"{f}:hidden", f"{w}:w", f"{f}:next"),
          F.cross_entropy(T(hidden) @ T(weight).T, T(tokens)))


def test_a_column_of_booleans_is_a_mask(tmp_path):
    pred, target = rng.normal(size=(2, 10)).astype(np.float32)
    keep = rng.random(10) > 0.3
    f = write(tmp_path / "k.parquet", {"pred": pred, "target": target, "keep": keep})
    close(value("mse", f"{f}:pred", f"{f}:target", "--mask", f"{f}:keep"), F.mse_loss(T(pred[keep]), T(target[keep])))


def test_feather_v1_by_its_suffix_and_by_its_first_bytes(tmp_path):
    pred, target = rng.normal(size=(2, 12))
    labels = rng.integers(0, 3, 12)
    table = pa.table({"pred": pred, "target": target, "label": labels, "x": pa.array([1.0] * 11 + [None]),
                      "keep": [True] * 11 + [False]})
    with warnings.catch_warnings():  # pyarrow 25 deprecated writing v1; files of it are still about
        warnings.simplefilter("ignore", DeprecationWarning)
        feather.write_feather(table, tmp_path / "v1.feather", version=1)
    assert (tmp_path / "v1.feather").read_bytes()[:4] == b"FEA1"
    (tmp_path / "v1").write_bytes((tmp_path / "v1.feather").read_bytes())  # no suffix: sniffed
    want = F.mse_loss(T(pred), T(target))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # read without pyarrow's warning
        for f in (tmp_path / "v1.feather", tmp_path / "v1"):
            close(value("mse", f"{f}:pred", f"{f}:target"), want)
            both = np.stack([pred, target], axis=1)
            close(value("mse", f"{f}:0,1", f"{f}:target,pred"), F.mse_loss(T(both), T(both[:, ::-1].copy())))
            close(value("l1", f"{f}:0", f"{f}:x", "--mask", f"{f}:keep"),  # a null in a row the mask leaves out
                  F.l1_loss(T(pred[:11]), torch.ones(11, dtype=torch.float64)))
    one_line_error(invoke("mse", f"{tmp_path}/v1:x", f"{tmp_path}/v1:x"), "in row 11, which --mask does not leave out")


# -- streaming by row groups -----------------------------------------------------------------------------------


def test_many_row_groups_stream_as_in_memory(tmp_path):
    logits = rng.normal(size=(103, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 103)
    f = write(tmp_path / "g.parquet", {"logits": fixed(logits), "label": labels}, row_group_size=10)
    assert pq.ParquetFile(f).metadata.num_row_groups == 11
    want = F.cross_entropy(T(logits), T(labels), reduction="none").numpy()
    whole = losscli.compute("cross-entropy", logits, labels, reduction="none")
    for chunk_rows in (1, 3, 10, 17, 200):
        out = tmp_path / f"o{chunk_rows}.parquet"
        streamed = losscli.compute("cross-entropy", f"{f}:logits", f"{f}:label", reduction="none", streaming=
                                   losscli.Streaming(chunk_rows=chunk_rows, sink=ArrayFile(str(out))))
        np.testing.assert_array_equal(np.asarray(streamed.value), np.asarray(whole.value))
        back = pq.read_table(out)
        assert back.column_names == ["i0", "value"]
        np.testing.assert_array_equal(back.column("i0").to_numpy(), np.arange(103))
        np.testing.assert_allclose(back.column("value").to_numpy(), want, rtol=1e-6)
        mean = losscli.compute("cross-entropy", f"{f}:logits", f"{f}:label",
                               streaming=losscli.Streaming(chunk_rows=chunk_rows))
        assert float(mean.value) == pytest.approx(float(want.mean()), rel=1e-6)


def test_reads_only_the_row_groups_a_chunk_needs(tmp_path):
    x = np.arange(40, dtype=np.float64)
    f = write(tmp_path / "x.parquet", {"x": x, "y": -x}, row_group_size=8)
    rows = losscli.io.Loader().load(f"{f}:x", role="input").rows
    assert rows.shape == (40,) and rows.dtype == np.float64
    read = []
    original = rows.file.parts.part
    rows.file.parts.part = lambda i, names: read.append((i, tuple(names))) or original(i, names)
    np.testing.assert_array_equal(rows.read(9, 12), x[9:12])
    np.testing.assert_array_equal(rows.read(12, 17), x[12:17])  # the same row group: kept, not read again
    np.testing.assert_array_equal(rows.read(30, 34), x[30:34])
    assert read == [(1, ("x",)), (2, ("x",)), (3, ("x",)), (4, ("x",))]  # only the overlapping groups, once each


def test_peak_memory_stays_below_the_file_size(tmp_path):
    """~3e7 float32 values (120 MB) in row groups of 2**20 rows: the run's memory grows by far less."""
    f = tmp_path / "big.parquet"
    rows, group = 15 * 2**20, 2**20
    schema = pa.schema([("pred", pa.float32()), ("target", pa.float32())])
    total = 0.0
    with pq.ParquetWriter(f, schema, compression="none") as writer:
        for start in range(0, rows, group):
            pred = np.arange(start, start + group, dtype=np.float32) % 7
            target = pred[::-1].copy()
            total += float(np.sum((pred.astype(np.float64) - target) ** 2))
            writer.write_table(pa.table({"pred": pred, "target": target}, schema=schema), row_group_size=group)
    size = f.stat().st_size
    script = textwrap.dedent(f"""
        import json, resource, losscli, pyarrow.parquet, numpy
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = losscli.compute("mse", {str(f) + ':pred'!r}, {str(f) + ':target'!r})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps([float(r.value), (after - before) * 1024]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    got, grown = json.loads(out.stdout)
    assert got == pytest.approx(total / rows, rel=1e-5)
    assert grown < size / 4, (grown, size)


# -- output, --grad, check -------------------------------------------------------------------------------------


def test_per_sample_and_grad_to_parquet_from_a_parquet_input(tmp_path):
    pred, target = rng.normal(size=(2, 6, 3)).astype(np.float32)
    f = write(tmp_path / "p.parquet", {"pred": fixed(pred), "target": lists(target)})
    per_sample, grad = tmp_path / "s.parquet", tmp_path / "g.parquet"
    result = invoke("mse", f"{f}:pred", f"{f}:target", "--per-sample", "-o", per_sample, "--grad", grad)
    assert result.exit_code == 0, result.stderr
    x = T(pred).requires_grad_()
    F.mse_loss(x, T(target)).backward()
    back = pq.read_table(grad)
    assert back.column_names == ["i0", "i1", "value"]
    np.testing.assert_allclose(back.column("value").to_numpy().reshape(6, 3), x.grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(back.column("i1").to_numpy(), np.tile(np.arange(3), 6))
    samples = pq.read_table(per_sample)
    np.testing.assert_allclose(samples.column("value").to_numpy(),
                               F.mse_loss(T(pred), T(target), reduction="none").mean(dim=1).numpy(), rtol=1e-6)
    mean = tmp_path / "m.parquet"
    assert invoke("mse", f"{f}:pred", f"{f}:target", "-o", mean).exit_code == 0
    assert pq.read_table(mean).to_pydict() == {"value": [pytest.approx(float(F.mse_loss(T(pred), T(target))))]}


def test_check_with_parquet_columns(tmp_path):
    logits = rng.normal(size=(12, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 12)
    write(tmp_path / "eval.parquet", {"logits": fixed(logits), "label": labels}, row_group_size=5)
    want = float(F.cross_entropy(T(logits), T(labels)))
    (tmp_path / "gates.toml").write_text(textwrap.dedent(f"""
        [[check]]
        name = "classifier"
        loss = "cross-entropy"
        input = "eval.parquet:logits"
        target = "eval.parquet:label"
        max = {want + 0.01}

        [[check]]
        name = "too strict"
        loss = "cross-entropy"
        input = "eval.parquet:logits"
        target = "eval.parquet:1"
        max = {want - 0.01}
    """))
    result = invoke("check", tmp_path / "gates.toml", "-f", "json")
    assert result.exit_code == 1, result.stderr
    checks = json.loads(result.stdout)["checks"]
    assert [c["status"] for c in checks] == ["pass", "fail"]
    assert checks[0]["value"] == pytest.approx(want, rel=1e-5)


# -- hostile files ---------------------------------------------------------------------------------------------


def test_hostile_files_are_one_line_errors(tmp_path):
    good = write(tmp_path / "good.parquet", {"x": np.arange(100.0), "y": np.arange(100.0)}, row_group_size=10)
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(good.read_bytes()[:-30])
    one_line_error(invoke("mse", f"{truncated}:x", f"{truncated}:y"), "input (", "cut.parquet:x",
                   "expected a Parquet file, but pyarrow could not read it")
    fake = tmp_path / "fake.parquet"
    fake.write_text("id,pred\n1,2\n")
    one_line_error(invoke("mse", f"{fake}:pred", f"{fake}:pred"), "fake.parquet:pred", "expected a Parquet file")
    fake_arrow = tmp_path / "fake.arrow"
    fake_arrow.write_bytes(b"PAR1" + bytes(100))
    one_line_error(invoke("mse", fake_arrow, fake_arrow), "expected an Arrow IPC file, but pyarrow could not read it")
    one_line_error(invoke("mse", f"{good}:x", f"{good}:z"), "target (", "good.parquet:z",
                   "expected a column name or index, but got 'z'; the columns are 'x', 'y' (indices 0..1)")
    one_line_error(invoke("mse", f"{good}:x", f"{good}:5"), "the columns are 'x', 'y'")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    one_line_error(invoke("mse", empty, empty), "the file is empty")


def test_nulls_name_the_row_unless_the_mask_leaves_it_out(tmp_path):
    f = write(tmp_path / "n.parquet", {"x": pa.array([1.0, 2.0, None, 4.0, None]), "y": np.arange(5.0),
                                       "l": pa.array([[1.0, 2.0], [3.0, None], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0]]),
                                       "keep": [True, True, False, True, False],
                                       "keep_l": [True, False, True, True, True]},
              row_group_size=2)
    one_line_error(invoke("mse", f"{f}:x", f"{f}:y"), "input (", "n.parquet:x",
                   "expected a number, but got a null (a missing value) in row 2, which --mask does not leave out")
    one_line_error(invoke("mse", f"{f}:y", f"{f}:x"), "target (", "in row 2")
    one_line_error(invoke("mse", f"{f}:l", f"{f}:l"), "input (", "null (a missing value) in row 1")
    one_line_error(invoke("mse", f"{f}:x", f"{f}:y", "--mask", f"{f}:keep_l"), "in row 2")  # row 2 kept
    streamed = losscli.Streaming(chunk_rows=1)  # found when the stream reaches the row, with the same words
    with pytest.raises(losscli.errors.ValueDomainError, match=r"^input \(.*n.parquet:x\): expected a number, but "
                       r"got a null \(a missing value\) in row 2, which mask does not leave out$"):
        losscli.compute("mse", f"{f}:x", f"{f}:y", streaming=streamed)
    # rows the mask leaves out may hold nulls: the loss is torch's over the rows it keeps
    x, y = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    want = F.mse_loss(x, y).item()
    for chunk_rows in (None, 1, 2):
        got = losscli.compute("mse", f"{f}:x", f"{f}:y", mask=f"{f}:keep",
                              streaming=losscli.Streaming(chunk_rows=chunk_rows))
        assert got.item() == want and got.selected == 3
    lists = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    got = losscli.compute("cross-entropy", f"{f}:l", np.array([0, 1, 1, 0, 1]), mask=f"{f}:keep_l")
    assert got.item() == pytest.approx(F.cross_entropy(lists, torch.tensor([0, 1, 0, 1])).item(), rel=1e-12)


def test_a_null_in_a_file_every_sample_shares_is_refused_whatever_the_mask(tmp_path):
    f = write(tmp_path / "w.parquet", {"w": pa.array([1.0, None, 2.0])})
    with pytest.raises(losscli.errors.ValueDomainError, match=r"^weight \(.*w.parquet:w\): expected a number, but "
                       r"got a null \(a missing value\) in row 1"):
        losscli.compute("cross-entropy", np.zeros((3, 3)), np.array([0, 2, 1]), weight=f"{f}:w",
                        mask=np.array([True, False, True]))


@pytest.mark.parametrize("kind", ["lists", "fixed"])
def test_a_null_list_is_a_missing_row_that_the_mask_may_leave_out(tmp_path, kind):
    logits = rng.normal(size=(10, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 10)
    keep = np.ones(10, bool)
    keep[[0, 4, 7]] = False  # rows whose logits are missing: row 0 among them (the lists' width is row 1's)
    if kind == "lists":
        column = pa.array([list(row) if k else None for row, k in zip(logits, keep)], pa.list_(pa.float32()))
    else:
        column = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), 4, mask=pa.array(~keep))
    assert column.null_count == 3
    some = keep.copy()
    some[0] = True  # leaves out rows 4 and 7, not row 0
    f = write(tmp_path / "c.parquet", {"logits": column, "label": labels, "keep": keep, "some": some},
              row_group_size=3)
    want = F.cross_entropy(T(logits[keep]), T(labels[keep])).item()
    for chunk_rows in (None, 1, 4):
        got = losscli.compute("cross-entropy", f"{f}:logits", f"{f}:label", mask=f"{f}:keep",
                              streaming=losscli.Streaming(chunk_rows=chunk_rows))
        assert got.item() == pytest.approx(want, rel=1e-6) and got.selected == 7
    read = losscli.io.Loader().load(f"{f}:logits", role="input").array  # zeros of the lists' width
    assert read.shape == (10, 4) and read.dtype == np.float32
    np.testing.assert_array_equal(read[~keep], np.zeros((3, 4), np.float32))
    np.testing.assert_array_equal(read[keep], logits[keep])
    one_line_error(invoke("cross-entropy", f"{f}:logits", f"{f}:label"), "error: input (", "c.parquet:logits): ",
                   "expected a number, but got a null (a missing value) in row 0, which --mask does not leave out")
    one_line_error(invoke("cross-entropy", f"{f}:logits", f"{f}:label", "--mask", f"{f}:some"), "c.parquet:logits",
                   "in row 0, which --mask does not leave out")


def test_lists_after_a_null_one_have_the_first_lists_length(tmp_path):
    f = write(tmp_path / "n.parquet", {"l": pa.array([None, [1.0, 2.0], [3.0]], pa.list_(pa.float64()))})
    one_line_error(invoke("mse", f"{f}:l", f"{f}:l"), "column 'l', row 2: expected a list of 2 values like row 1, "
                   "but got 1")


def test_ragged_lists_name_the_column_and_row(tmp_path):
    f = write(tmp_path / "r.parquet", {"l": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0], [1.0, 2.0, 3.0]]),
                                       "x": np.zeros(4), "s": pa.array(["a", "b", "c", "d"])}, row_group_size=3)
    one_line_error(invoke("mse", f"{f}:l", f"{f}:l"), "input (", "r.parquet:l",
                   "column 'l', row 2: expected a list of 2 values like row 0, but got 1")
    one_line_error(invoke("mse", f"{f}:l,x", f"{f}:l,x"), "expected columns of numbers to stack, but column 'l' "
                   "holds lists")
    one_line_error(invoke("mse", f"{f}:s", f"{f}:x"), "column 's': expected numbers or booleans (or lists of them), "
                   "but got string")


def test_an_unwritable_parquet_output_leaves_no_debris(tmp_path):
    x = np.zeros((5, 2), np.float32)
    out = tmp_path / "o.parquet"
    out.write_bytes(b"old")
    bad = np.zeros(5, np.int64)
    bad[-1] = 9
    with pytest.raises(losscli.errors.ValueDomainError):
        losscli.compute("cross-entropy", x, bad, reduction="none",
                        streaming=losscli.Streaming(chunk_rows=2, sink=ArrayFile(str(out))))
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]


def test_without_pyarrow_one_line_says_how_to_install(tmp_path):
    f = write(tmp_path / "p.parquet", {"x": np.arange(3.0)})
    script = ("import sys; sys.modules['pyarrow'] = None; sys.argv = ['losscli', 'mse', sys.argv[1], sys.argv[1]]; "
              "from losscli.edge.main import entry; entry()")
    for args in ([f"{f}:x"], ["samples/regression/pred.npy", "-o", str(tmp_path / "o.parquet")]):
        script_args = [sys.executable, "-c", script.replace("sys.argv[1], sys.argv[1]", ", ".join(
            repr(a) for a in ([args[0], args[0]] + args[1:])))]
        out = subprocess.run(script_args, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "pip install 'losscli[arrow]'" in lines[0], out.stderr
