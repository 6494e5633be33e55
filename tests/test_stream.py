"""Streaming: a loss computed in chunks of rows equals the in-memory computation and torch.nn.functional.

Chunk sizes are forced small (``compute(chunk_rows=...)``) so that boundaries fall everywhere: 1, 2, 3, 7 rows
and sizes that do not divide N. The in-memory path (one chunk) is itself tested against torch in
test_losses.py and the family tests; here the torch backend (``torch.nn.functional``) is the reference again,
and the in-memory value is compared too. No timings: the benchmark measures speed.
"""

from __future__ import annotations

import io
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from typer.testing import CliRunner

import losscli
from losscli.edge import progress as progress_bar
from losscli.engine import run as engine_run
from losscli.engine import sources as engine_sources
from losscli.edge.cli import app
from losscli.edge.writer import ArrayFile
from losscli.errors import ShapeError, ValueDomainError
from losscli.io import Loader
from tests import csvread
from losscli.losses import CATALOG
from losscli.reduction import Elements
from tests.oracle import ELEMENTWISE

runner = CliRunner()
CHUNKS = (1, 2, 3, 7)
N = 23  # prime: no chunk size above 1 divides it

rng = np.random.default_rng(20261123)


def normal(*shape: int) -> np.ndarray:
    return rng.normal(size=shape)


def signs(*shape: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape)


def labels(classes: int, *shape: int) -> np.ndarray:
    return rng.integers(0, classes, size=shape)


def probs(*shape: int) -> np.ndarray:
    e = np.exp(normal(*shape))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Case:
    loss: str
    arrays: tuple[Any, ...]
    kw: dict[str, Any] = field(default_factory=dict)
    reductions: tuple[str, ...] = ("none", "mean", "sum")

    def __str__(self) -> str:
        return f"{self.loss}-{'-'.join(sorted(self.kw))}"


def _cases() -> list[Case]:
    x, y = normal(N, 4), normal(N, 4)
    row_mask = rng.random((N, 4)) < 0.6
    row_mask[4:11] = False  # whole chunks with nothing selected
    ignored = labels(5, N)
    ignored[:8] = -100  # whole chunks ignored
    ignored[15] = -100
    seq = labels(4, N, 3)
    lists = np.where(rng.random((N, 4)) < 0.5, labels(4, N, 4), -1)
    lists[:, 0] = labels(4, N)
    lists = np.where(np.cumsum(lists == -1, axis=1) > 0, -1, lists)
    return [
        Case("mse", (x, y)),
        Case("mse", (x, y), {"weight": rng.random((N, 4))}),
        Case("mse", (x, y), {"weight": rng.random((1, 4)), "mask": row_mask}),  # a shared weight
        Case("mse", (x, normal(4)), {"broadcast": True}),  # a shared target
        Case("l1", (x, y), {"weight": rng.random(4)}),
        Case("smooth-l1", (x, y), {"beta": 0.5, "mask": row_mask}),
        Case("huber", (normal(N), normal(N)), {"delta": 0.7, "weight": rng.random(N)}),
        Case("bce", (rng.random((N, 3)), rng.random((N, 3))), {"weight": rng.random((N, 3))}),
        Case("bce-with-logits", (x, rng.random((N, 4))), {"pos_weight": rng.random(4) + 0.5, "mask": row_mask}),
        Case("nll", (np.log(probs(N, 5)), ignored), {"weight": rng.random(5) + 0.1}),
        Case("cross-entropy", (normal(N, 5), ignored), {"weight": rng.random(5) + 0.1, "label_smoothing": 0.1}),
        Case("cross-entropy", (normal(N, 5), labels(5, N)), {"mask": rng.random(N) < 0.5}),
        Case("cross-entropy", (normal(N, 4, 3), seq)),  # K-dim: (N, C, d1)
        Case("cross-entropy", (normal(N, 5), probs(N, 5)), {"label_smoothing": 0.2}),
        Case("kl-div", (np.log(probs(N, 4)), probs(N, 4)), {}, ("none", "sum", "batchmean")),
        Case("poisson-nll", (x, rng.poisson(2.0, (N, 4)).astype(float)), {"full": True}),
        Case("gaussian-nll", (x, y, rng.random(N) + 0.1)),  # var (N,) for input (N, 4): torch adds the axis
        Case("gaussian-nll", (x, y, rng.random((1, 4)) + 0.1)),  # a var shared by every row
        Case("gaussian-nll", (x, y, 0.5)),
        Case("margin-ranking", (normal(N), normal(N), signs(N)), {"margin": 0.2}),
        # every element-wise margin loss of two files (hinge-embedding, soft-margin, ...): scores against -1/1
        *(Case(loss, (x, signs(N, 4))) for loss in ELEMENTWISE if len(CATALOG[loss].files) == 2),
        Case("multilabel-soft-margin", (x, (rng.random((N, 4)) < 0.5).astype(float)), {"weight": rng.random(4)}),
        Case("multilabel-margin", (x, lists)),
        Case("multi-margin", (x, labels(4, N)), {"p": 2, "weight": rng.random(4)}),
        Case("cosine-embedding", (x, y, signs(N)), {"margin": 0.1}),
        Case("triplet-margin", (x, y, normal(N, 4)), {"swap": True}),
        Case("triplet-margin-with-distance", (x, y, normal(N, 4)), {"distance": "cosine"}),
        Case("linear-cross-entropy", (normal(N, 6), normal(5, 6), ignored), {"weight": rng.random(5) + 0.1}),
    ]


CASES = _cases()


def close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=1e-12,
                               equal_nan=True)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_chunked_equals_in_memory_and_torch(case):
    for reduction in case.reductions:
        whole = losscli.compute(case.loss, *case.arrays, reduction=reduction, **case.kw)
        torch_value = losscli.compute(case.loss, *case.arrays, reduction=reduction, backend="torch", **case.kw)
        close(whole.value, torch_value.value, rtol=1e-9)
        seen: list[int] = []
        losscli.compute(case.loss, *case.arrays, reduction=reduction, **case.kw, streaming=losscli.Streaming(chunk_rows=1, progress=lambda done, rows: seen.append(done)))
        assert seen == list(range(1, N + 1))  # it streamed, one row a chunk
        for rows in CHUNKS + (N - 1, N, N + 5):
            chunked = losscli.compute(case.loss, *case.arrays, reduction=reduction, **case.kw, streaming=losscli.Streaming(chunk_rows=rows))
            close(chunked.value, whole.value)
            assert chunked.value.dtype == whole.value.dtype and chunked.value.shape == whole.value.shape
            assert (chunked.count, chunked.selected, chunked.warnings) == (whole.count, whole.selected,
                                                                         whole.warnings)


@pytest.mark.parametrize("flags", [(None, False), (False, None), (True, True), (False, True)])
def test_legacy_flags_stream(flags):
    size_average, reduce = flags
    x, y = normal(N, 3), normal(N, 3)
    expected = F.mse_loss(torch.from_numpy(x), torch.from_numpy(y), size_average=size_average,
                          reduce=reduce).numpy()
    result = losscli.compute("mse", x, y, size_average=size_average, reduce=reduce, streaming=losscli.Streaming(chunk_rows=4))
    close(result.value, expected)
    assert result.warnings[0].startswith("size_average and reduce args will be deprecated")


def test_cross_entropy_chunks_equal_torch_directly():
    x, t = normal(N, 7).astype(np.float32), labels(7, N)
    t[2:9] = -100
    w = (rng.random(7) + 0.1).astype(np.float32)
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), weight=torch.from_numpy(w))
    for rows in CHUNKS:
        np.testing.assert_allclose(losscli.compute("cross-entropy", x, t, weight=w, streaming=losscli.Streaming(chunk_rows=rows)).value,
                                   expected.numpy(), rtol=1e-6)


def test_nothing_selected_anywhere_is_nan_with_the_same_warning():
    x, y = normal(N, 2), normal(N, 2)
    nothing = np.zeros((N, 2), bool)
    whole = losscli.compute("mse", x, y, mask=nothing)
    chunked = losscli.compute("mse", x, y, mask=nothing, streaming=losscli.Streaming(chunk_rows=3))
    assert np.isnan(whole.value) and np.isnan(chunked.value)
    assert chunked.warnings == whole.warnings and "mean over 0 selected elements" in chunked.warnings[-1]


def test_empty_input_streams_as_one_empty_chunk():
    x = np.zeros((0, 3))
    result = losscli.compute("mse", x, x, streaming=losscli.Streaming(chunk_rows=2))
    assert np.isnan(result.value) and result.count == 0
    assert losscli.compute("mse", x, x, reduction="none", streaming=losscli.Streaming(chunk_rows=2)).value.shape == (0, 3)


# -- which losses stream ------------------------------------------------------------------------------


def _plan(loss, *arrays, **kw):
    sources = {f.name: engine_sources.source(f.name, a) for f, a in zip(losscli.api.lookup(loss).files, arrays)}
    sources.update((k, engine_sources.source(k, v)) for k, v in kw.items())
    return engine_sources.plan(losscli.api.lookup(loss), sources, False, whole=False, chunk_rows=2)


def test_plan_splits_rows_and_shares_the_rest():
    x = normal(5, 5)  # as many classes as rows: the class weight is still shared
    plan = _plan("cross-entropy", x, labels(5, 5), weight=rng.random(5))
    assert plan.split == {"input", "target"} and plan.rows == 5
    assert _plan("mse", x, x, weight=rng.random(5)).split == {"input", "target"}  # (5,) broadcasts along axis 1
    assert _plan("mse", x, x, weight=rng.random((5, 5))).split == {"input", "target", "weight"}


IN_MEMORY = [
    ("mse", (np.float64(1.0), np.float64(2.0))),  # a 0-d loss
    ("cross-entropy", (normal(4), np.int64(1))),  # one sample
    ("ctc", (np.log(probs(6, 4)[:, None, :].repeat(2, axis=1)), np.array([[1, 2], [2, 3]]), np.array([6, 6]),
             np.array([2, 2]))),  # samples along axis 1
]


@pytest.mark.parametrize("loss, arrays", IN_MEMORY)
def test_losses_that_do_not_stream_compute_in_memory(loss, arrays):
    assert _plan(loss, *arrays) is None
    close(losscli.compute(loss, *arrays, streaming=losscli.Streaming(chunk_rows=1)).value, losscli.compute(loss, *arrays).value)


def test_every_loss_has_a_streaming_case():
    """A loss in the catalog streams in CASES above, or (ctc) is among those that compute in memory."""
    missing = set(CATALOG) - {case.loss for case in CASES} - {loss for loss, _ in IN_MEMORY}
    assert not missing, f"add a Case to tests/test_stream.py's _cases() for {sorted(missing)}"


def test_threshold_decides_without_chunk_rows(monkeypatch):
    x = normal(64, 4)
    sources = {"input": engine_sources.source("input", x), "target": engine_sources.source("target", x)}
    spec = losscli.api.lookup("mse")
    monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 256)
    assert engine_sources.plan(spec, sources, False, whole=False) is None  # 256 elements: one chunk
    monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 255)
    monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 40)
    assert engine_sources.plan(spec, sources, False, whole=False).chunk_rows == 10
    assert engine_sources.plan(spec, sources, False, whole=True) is None  # grad, cross-check, torch


def test_threads_give_the_same_sums(monkeypatch):
    x, y = normal(200, 3), normal(200, 3)
    monkeypatch.setattr(engine_run, "THREAD_BELOW", 0)  # never compute-bound: one thread
    one = losscli.compute("mse", x, y, streaming=losscli.Streaming(chunk_rows=7))
    monkeypatch.setattr(engine_run, "THREAD_BELOW", float("inf"))  # always: threads after the second chunk
    monkeypatch.setattr(engine_run, "THREADS", 2)
    two = losscli.compute("mse", x, y, streaming=losscli.Streaming(chunk_rows=7))
    assert two.value == one.value  # merged in row order: the same float64 sums
    np.testing.assert_array_equal(losscli.compute("mse", x, y, reduction="none", streaming=losscli.Streaming(chunk_rows=7)).value, (x - y) ** 2)


# -- messages: the whole array's positions and shapes, warnings merged ------------------------------


@pytest.mark.parametrize("rows", [None, 1, 4, 7])
def test_non_finite_warning_counts_every_chunk(rows):
    x, y = normal(N, 3), normal(N, 3)
    x[9, 2], x[10, 0], x[20, 1] = np.nan, np.inf, -np.inf
    result = losscli.compute("mse", x, y, streaming=losscli.Streaming(chunk_rows=rows))
    assert result.warnings == ["input holds 3 non-finite value(s) (first: nan at index (9, 2)); the result "
                               "propagates them"]


@pytest.mark.parametrize("loss, arrays, kw, message", [
    ("cross-entropy", (np.zeros((N, 3)), np.r_[np.zeros(17, int), 5, np.zeros(5, int)]), {},
     r"target: expected class indices in \[0, 3\) or ignore_index -100, but got 5 at index 17$"),
    ("mse", (np.zeros((N, 2)), np.zeros((N, 2))), {"mask": np.r_[np.ones((12, 2)), [[1, 2]], np.ones((10, 2))]},
     r"mask: expected 0/1 or true/false, but got 2.0 at index \(12, 1\)$"),
    ("bce", (np.r_[np.full((20, 2), 0.5), [[0.5, 1.5]], np.full((2, 2), 0.5)], np.zeros((N, 2))), {},
     r"input: expected probabilities in \[0, 1\], but got 1.5 at index \(20, 1\)"),
    ("mse", (np.r_[np.zeros(15), np.nan, np.zeros(7)], np.zeros(N)), {"nan_policy": "raise"},
     r"input: expected finite values \(nan_policy='raise'\), but got nan at index 15$"),
    ("hinge-embedding", (np.zeros(N), np.r_[np.ones(11), 0, np.ones(11)]), {"strict": True},
     r"\(strict=True\), but got 0.0 at index 11; "),
    ("multi-margin", (np.zeros((N, 3)), np.r_[np.zeros(19, int), 3, np.zeros(3, int)]), {},
     r"expected class indices in \[0, 3\), but got 3 at index 19$"),
    ("gaussian-nll", (np.zeros((N, 2)), np.zeros((N, 2)), np.r_[np.ones((8, 2)), [[1, -1]], np.ones((14, 2))]), {},
     r"var: expected variances of 0 or more, but got -1.0 at index \(8, 1\)$"),
])
def test_value_errors_name_the_whole_arrays_position(loss, arrays, kw, message):
    for rows in (None,) + CHUNKS:
        with pytest.raises(ValueDomainError, match=message):
            losscli.compute(loss, *arrays, **kw, streaming=losscli.Streaming(chunk_rows=rows))


def test_shape_errors_and_warnings_name_whole_shapes():
    x = normal(N, 3)
    for rows in (None, 4):
        with pytest.raises(ShapeError, match=r"^mask: expected the loss's shape \(23, 3\), but got \(23, 2\)$"):
            losscli.compute("mse", x, x, mask=np.ones((N, 2)), streaming=losscli.Streaming(chunk_rows=rows))
        result = losscli.compute("mse", x, normal(1, 3), broadcast=True, streaming=losscli.Streaming(chunk_rows=rows))
        assert result.warnings == ["Using a target size (torch.Size([1, 3])) that is different to the input size "
                                   "(torch.Size([23, 3])). This will likely lead to incorrect results due to "
                                   "broadcasting. Please ensure they have the same size."]


def test_kl_div_batchmean_divides_by_all_rows():
    x, t = np.log(probs(N, 4)), probs(N, 4)
    expected = F.kl_div(torch.from_numpy(x), torch.from_numpy(t), reduction="batchmean").numpy()
    close(losscli.compute("kl-div", x, t, reduction="batchmean", streaming=losscli.Streaming(chunk_rows=3)).value, expected)


# -- accumulators and progress ---------------------------------------------------------------------------


class Record:
    def __init__(self) -> None:
        self.calls: list[tuple[int, np.ndarray, np.ndarray | None]] = []

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        self.calls.append((start, np.broadcast_to(elements.values, np.shape(elements.values)).copy(),
                           None if select is None else select.copy()))


@pytest.mark.parametrize("rows", [None, 3])
def test_accumulators_see_every_chunk_in_row_order(rows):
    x, t = normal(N, 4), labels(4, N)
    t[5] = -100
    record = Record()
    losscli.compute("cross-entropy", x, t, streaming=losscli.Streaming(accumulators=[record], chunk_rows=rows))
    starts = [start for start, _, _ in record.calls]
    assert starts == list(range(0, N, rows or N))
    values = np.concatenate([v for _, v, _ in record.calls])
    select = np.concatenate([s for _, _, s in record.calls])
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").numpy()
    close(values[select], expected[t != -100])
    assert not select[5] and select.sum() == N - 1


def test_accumulators_with_the_torch_backend_get_one_chunk():
    record = Record()
    losscli.compute("mse", normal(N, 2), normal(N, 2), backend="torch", streaming=losscli.Streaming(accumulators=[record]))
    assert [start for start, _, _ in record.calls] == [0]


def test_progress_is_called_after_each_chunk():
    seen = []
    losscli.compute("mse", normal(10, 2), normal(10, 2), streaming=losscli.Streaming(chunk_rows=4, progress=lambda done, total: seen.append(
        (done, total))))
    assert seen == [(4, 10), (8, 10), (10, 10)]


@pytest.mark.parametrize("terminal, quiet, fmt, shown", [
    (True, False, "table", True), (True, False, "csv", True), (False, False, "table", False),
    (True, True, "table", False), (True, False, "json", False), (True, False, "plain", False),
    (True, False, "metrics", False),
])
def test_progress_bar_decision(terminal, quiet, fmt, shown):
    assert progress_bar.wants_progress(terminal=terminal, quiet=quiet, fmt=fmt) is shown


def test_progress_bar_renders_on_a_terminal_and_waits_its_delay():
    out = io.StringIO()
    bar = progress_bar.ProgressBar(Console(file=out, force_terminal=True, width=80), "mse", delay=0)
    bar(5, 10)
    bar(10, 10)
    bar.close()
    assert "mse" in out.getvalue() and "10/10" in out.getvalue()
    late = progress_bar.ProgressBar(Console(file=io.StringIO(), force_terminal=True), "mse", delay=3600)
    late(5, 10)
    assert late.bar is None


def test_no_progress_bar_in_a_pipe_or_with_quiet(tmp_path, monkeypatch):
    monkeypatch.setattr(progress_bar, "PROGRESS_DELAY", 0)
    np.save(tmp_path / "a.npy", normal(50, 2))
    for extra in ((), ("--quiet",)):
        result = runner.invoke(app, ["mse", str(tmp_path / "a.npy"), str(tmp_path / "a.npy"), *extra])
        assert result.exit_code == 0 and result.stderr == ""


# -- none, written chunk by chunk ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["npy", "csv"])
def test_none_streams_into_output(tmp_path, suffix):
    x, t = normal(N, 4), labels(4, N)
    t[3] = -100
    mask = rng.random(N) < 0.7
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").numpy() * mask
    whole, streamed = tmp_path / f"whole.{suffix}", tmp_path / f"streamed.{suffix}"
    losscli.compute("cross-entropy", x, t, mask=mask, reduction="none",
                    streaming=losscli.Streaming(sink=ArrayFile(str(whole))))
    result = losscli.compute("cross-entropy", x, t, mask=mask, reduction="none",
                             streaming=losscli.Streaming(chunk_rows=3, sink=ArrayFile(str(streamed))))
    assert streamed.read_bytes() == whole.read_bytes()
    close(result.value, expected)
    if suffix == "npy":
        close(np.load(streamed), expected)
        assert isinstance(result.value, np.memmap)  # the file, not a copy held in memory
    else:
        lines = streamed.read_text().splitlines()
        assert lines[0] == "i0,value" and len(lines) == N + 1
        close(np.array([float(line.split(",")[1]) for line in lines[1:]]), expected)


def test_none_of_a_2d_loss_streams_into_csv(tmp_path):
    x, y = normal(5, 3), normal(5, 3)
    losscli.compute("l1", x, y, reduction="none",
                    streaming=losscli.Streaming(chunk_rows=2, sink=ArrayFile(str(tmp_path / "a.csv"))))
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "i0,i1,value" and lines[1].startswith("0,0,") and lines[-1].startswith("4,2,")
    close(np.array([float(line.split(",")[2]) for line in lines[1:]]), np.abs(x - y).reshape(-1))


def test_reduced_values_are_saved_too(tmp_path):
    x, y = normal(N, 2), normal(N, 2)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    result = CliRunner().invoke(app, ["mse", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-o",
                                      str(tmp_path / "v.npy")])
    assert result.exit_code == 0, result.stderr
    close(np.load(tmp_path / "v.npy"), np.mean((x - y) ** 2))


def test_bad_output_name_is_refused_before_writing(tmp_path):
    with pytest.raises(losscli.errors.InputError, match=r"--output \(.*v.txt\): expected a .npy, .csv or .parquet file name"):
        losscli.compute("mse", normal(4, 2), normal(4, 2), reduction="none",
                        streaming=losscli.Streaming(chunk_rows=1, sink=ArrayFile(str(tmp_path / "v.txt"))))


# -- shards --------------------------------------------------------------------------------------------


def _shard(folder: Path, name: str, array: np.ndarray) -> None:
    folder.mkdir(exist_ok=True)
    np.save(folder / name, array)


def test_glob_and_directory_shards_read_as_one_array(tmp_path):
    x, t = normal(30, 5).astype(np.float32), labels(5, 30)
    bounds = [0, 7, 7, 19, 30]  # a shard of 0 rows among them
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        _shard(tmp_path / "preds", f"preds-{i:03d}.npy", x[a:b])
        _shard(tmp_path, f"targets-{i:03d}.npy", t[a:b])
    loader = Loader()
    preds = loader.load(str(tmp_path / "preds"), role="input")
    targets = loader.load(str(tmp_path / "targets-*.npy"), role="target")
    assert preds.rows.shape == (30, 5) and targets.rows.shape == (30,)
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    for rows in (None,) + CHUNKS:
        np.testing.assert_allclose(losscli.compute("cross-entropy", preds, targets, streaming=losscli.Streaming(chunk_rows=rows)).value,
                                   expected, rtol=1e-6)
    torch_result = losscli.compute("cross-entropy", preds, targets, backend="torch")  # concatenated in memory
    np.testing.assert_allclose(torch_result.value, expected, rtol=1e-6)
    assert torch_result.inputs[0].source == str(tmp_path / "preds")


def test_shards_on_the_command_line(tmp_path):
    x, y = normal(12, 2), normal(12, 2)
    for i in range(3):
        _shard(tmp_path, f"p-{i}.npy", x[4 * i:4 * i + 4])
        _shard(tmp_path, f"t-{i}.npy", y[4 * i:4 * i + 4])
    result = runner.invoke(app, ["mse", str(tmp_path / "p-*.npy"), str(tmp_path / "t-*.npy"), "--format", "plain"])
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(float(result.stdout), np.mean((x - y) ** 2), rtol=1e-6)


def test_shards_that_do_not_line_up_name_the_first_pair(tmp_path):
    for i, rows in enumerate((5, 6, 4)):
        _shard(tmp_path, f"preds-{i:03d}.npy", np.zeros((rows, 2)))
    for i, rows in enumerate((5, 4, 6)):  # the same total: only the pairs tell
        _shard(tmp_path, f"targets-{i:03d}.npy", np.zeros((rows, 2)))
    result = runner.invoke(app, ["mse", str(tmp_path / "preds-*.npy"), str(tmp_path / "targets-*.npy")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: target ({tmp_path}/targets-*.npy): expected shards that line up with input's, but got 4 rows in "
        f"{tmp_path}/targets-001.npy against 6 in {tmp_path}/preds-001.npy")
    _shard(tmp_path, "targets-003.npy", np.zeros((0, 2)))
    result = runner.invoke(app, ["mse", str(tmp_path / "preds-*.npy"), str(tmp_path / "targets-*.npy")])
    assert "expected shards that line up with input's (3 shards), but got 4 shards" in result.stderr


def test_shards_of_different_row_shapes_and_no_match(tmp_path):
    _shard(tmp_path, "a-0.npy", np.zeros((2, 3)))
    _shard(tmp_path, "a-1.npy", np.zeros((2, 4)))
    loader = Loader()
    with pytest.raises(losscli.errors.InputError, match=r"expected shards of one row shape and dtype, but got "
                                                         r"\(4,\) float64 in .*a-1.npy against \(3,\) float64"):
        loader.load(str(tmp_path / "a-*.npy"), role="input")
    with pytest.raises(losscli.errors.InputError, match=r"^input \(.*b-\*.npy\): expected .npy shards matching"):
        loader.load(str(tmp_path / "b-*.npy"), role="input")


# -- exactness and memory ----------------------------------------------------------------------------


def test_float32_mean_is_exact_to_float64_accumulation():
    n = 1_000_000
    x = (1 + rng.random(n)).astype(np.float32)  # squares of about 1 to 4: a float32 running sum drifts
    y = np.zeros(n, np.float32)
    exact = np.mean(x.astype(np.float64) ** 2)
    naive = np.cumsum(x * x, dtype=np.float32)[-1] / n  # float32 accumulation, element by element
    assert abs(naive - exact) / exact > 1e-5  # the construction is one where float32 sums are visibly off
    for rows in (None, 4096, 100_000):
        value = losscli.compute("mse", x, y, streaming=losscli.Streaming(chunk_rows=rows)).value
        assert value.dtype == np.float32 and abs(float(value) - exact) / exact <= 1e-7


def test_streaming_memory_stays_a_few_chunks(tmp_path, monkeypatch):
    n = 1_000_000  # 8 MB of float64 in each file, 200 chunks of 5000 rows
    np.save(tmp_path / "a.npy", normal(n))
    np.save(tmp_path / "b.npy", normal(n))
    loader = Loader()
    a, b = loader.load(str(tmp_path / "a.npy"), role="input"), loader.load(str(tmp_path / "b.npy"), role="target")
    monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 10_000)
    monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 5_000)
    losscli.compute("mse", a, b)  # imports done (the thread pool's among them): the peak is the stream's
    tracemalloc.start()
    try:
        result = losscli.compute("mse", a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * n * 8 / 8  # an eighth of the inputs (the in-memory path needs more than all of them)
    close(result.value, np.mean((np.load(tmp_path / "a.npy") - np.load(tmp_path / "b.npy")) ** 2))


def test_torch_backend_says_it_holds_huge_inputs_in_memory(monkeypatch):
    monkeypatch.setattr(engine_run, "TORCH_WARN_BYTES", 100)
    x = normal(10, 2)
    result = losscli.compute("mse", x, x, backend="torch")
    assert result.warnings == ["the torch backend holds every input in memory (0 MiB here); the numpy backend "
                               "streams them in bounded memory"]


# -- CSV files read a piece at a time ------------------------------------------------------------------------
# A CSV of more than one piece (losscli.io.table.PIECE_BYTES, 4 MiB; pyarrow: losscli.io.arrowcsv.WHOLE_BYTES) is
# read in blocks (losscli.io.table's pieces, pyarrow's batches); a few bytes per piece here put piece ends everywhere,
# chunk_rows puts chunk ends everywhere. The whole read is the same file loaded with the real sizes (held whole).
# Each test runs with each reader (the fixture ``reader``).
_pieces = csvread.pieces_of


def _results_csv(path: Path, n: int = N) -> dict[str, np.ndarray]:
    """Columns of a results file: float logits, int labels, probabilities, 0/1 targets, a bool keep column, and
    a target of integers with one float near the end (the whole column is float64)."""
    cols = {"l0": normal(n), "l1": normal(n), "l2": normal(n), "label": labels(3, n), "prob": rng.random(n),
            "y": rng.integers(0, 2, n), "keep": rng.random(n) < 0.7, "t": rng.integers(-5, 5, n).astype(np.float64)}
    cols["keep"][3:9] = False  # whole chunks masked out
    cols["t"][-2] = 0.5
    lines = [",".join(cols)] + [",".join(_cell(cols[c][i]) for c in cols) for i in range(n)]
    path.write_text("\r\n".join(lines) + "\r\n\r\n", encoding="utf-8")  # CRLF and a blank line at the end
    return cols


def _cell(v: Any) -> str:
    if isinstance(v, np.bool_):
        return "true" if v else "false"
    return repr(int(v)) if float(v).is_integer() and v != 0.5 else repr(float(v))


_CSV_LOSSES = [
    # loss, specs, keywords, torch's value from the columns
    ("mse", ("r.csv:l0", "r.csv:t"), {}, lambda c: F.mse_loss(torch.tensor(c["l0"]), torch.tensor(c["t"]))),
    ("cross-entropy", ("r.csv:l0,l1,l2", "r.csv:label"), {},
     lambda c: F.cross_entropy(torch.tensor(np.stack([c["l0"], c["l1"], c["l2"]], 1)), torch.tensor(c["label"]))),
    ("bce", ("r.csv:prob", "r.csv:y"), {"mask": "r.csv:keep"},
     lambda c: F.binary_cross_entropy(torch.tensor(c["prob"][c["keep"]]), torch.tensor(c["y"][c["keep"]] * 1.0))),
]


@pytest.mark.parametrize("loss,specs,kw,reference", _CSV_LOSSES, ids=[c[0] for c in _CSV_LOSSES])
def test_csv_streams_equal_the_whole_read_and_torch(tmp_path, monkeypatch, loss, specs, kw, reference, reader):
    monkeypatch.chdir(tmp_path)
    cols = _results_csv(tmp_path / "r.csv")

    def load(loader: Loader) -> tuple[list[Any], dict[str, Any]]:
        return ([loader.load(s, role=r) for s, r in zip(specs, ("input", "target"))],
                {k: loader.load(v, role=k) for k, v in kw.items()})

    whole_args, whole_kw = load(Loader())
    assert not any(csvread.streamed(a.rows) for a in whole_args)
    for piece in (16, 50, 300):
        _pieces(monkeypatch, piece)
        args, kwargs = load(Loader())
        assert all(csvread.streamed(a.rows) for a in args)
        assert [csvread.by_pyarrow(a.rows) for a in args] == [reader == "pyarrow"] * len(args), piece
        assert [(a.rows.shape, a.rows.dtype) for a in args] == [(a.array.shape, a.array.dtype) for a in whole_args]
        for rows in CHUNKS:
            for reduction in ("none", "mean", "sum"):
                streamed = losscli.compute(loss, *args, reduction=reduction, **kwargs, streaming=losscli.Streaming(chunk_rows=rows))
                whole = losscli.compute(loss, *whole_args, reduction=reduction, **whole_kw, streaming=losscli.Streaming(chunk_rows=rows))
                np.testing.assert_array_equal(streamed.value, whole.value)
                assert streamed.warnings == whole.warnings
                assert [(i.shape, i.dtype) for i in streamed.inputs] == [(i.shape, i.dtype) for i in whole.inputs]
            np.testing.assert_allclose(losscli.compute(loss, *args, **kwargs, streaming=losscli.Streaming(chunk_rows=rows)).value,
                                       reference(cols).numpy(), rtol=1e-12)


@pytest.mark.parametrize("body,spec,line", [
    ("".join(f"{i / 3},{i % 3}\n" for i in range(40)) + "x,1\n" + "0.5,1\n" * 5, "r.csv:pred", 42),
    ("".join(f"{i / 3},{i % 3}\n" for i in range(40)) + "0.5,\n" + "0.5,1\n" * 5, "r.csv:label", 42),
    ("".join(f"{i / 3},{i % 3}\n" for i in range(40)) + "0.5,1,2\n" + "0.5,1\n" * 5, "r.csv:pred", 42),
])
def test_csv_errors_in_late_rows_are_the_whole_reads(tmp_path, monkeypatch, body, spec, line, reader):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.csv").write_text("pred,label\n" + body, encoding="utf-8")
    (tmp_path / "o.csv").write_text("o\n" + "0.5\n" * 46, encoding="utf-8")
    args = ["mse", "o.csv", spec, "--format", "plain"]
    whole = runner.invoke(app, args)
    assert whole.exit_code == 2 and f"line {line}" in whole.stderr
    _pieces(monkeypatch, 24)
    monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 4)
    monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 5)
    streamed = runner.invoke(app, args)
    assert (streamed.exit_code, streamed.stderr) == (2, whole.stderr)


def test_csv_variants_read_in_any_order_equal_the_whole_read(tmp_path, monkeypatch, reader):
    x = np.round(normal(30, 2), 3)
    rows = [f"{a}\t{b}" for a, b in x.tolist()]
    variants = {
        "plain.tsv": "\n".join(rows) + "\n",  # no header
        "bom.tsv": "\ufeffa\tb\r\n" + "\r\n".join(rows),  # a byte-order mark, CRLF, no newline at the end
        "quoted.csv": 'a,"b\nsecond line"\n' + "".join(f'{a},"{b}"\n' for a, b in x.tolist()) + "\n\n",
    }
    for name, text in variants.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        whole = Loader().load(str(tmp_path / name), role="input").array
        np.testing.assert_array_equal(whole, x)
        _pieces(monkeypatch, 20)
        rows_ = Loader().load(str(tmp_path / name), role="input").rows
        assert csvread.streamed(rows_) and (rows_.shape, rows_.dtype) == (x.shape, x.dtype)
        spans = [(7, 14), (0, 7), (14, 21), (28, 30), (21, 28), (3, 5), (0, 0), (29, 30)]  # back and forth
        for start, stop in spans:
            np.testing.assert_array_equal(rows_.read(start, stop), x[start:stop])
        _pieces(monkeypatch, 1 << 22)


def test_csv_threads_read_in_order(monkeypatch, tmp_path, reader):
    monkeypatch.chdir(tmp_path)
    cols = _results_csv(tmp_path / "r.csv", n=200)
    _pieces(monkeypatch, 64)
    monkeypatch.setattr(engine_run, "THREAD_BELOW", float("inf"))  # threads from the third chunk on
    loader = Loader()
    x, t = loader.load("r.csv:l0,l1,l2", role="input"), loader.load("r.csv:label", role="target")
    logits = torch.tensor(np.stack([cols["l0"], cols["l1"], cols["l2"]], 1))
    np.testing.assert_allclose(losscli.compute("cross-entropy", x, t, streaming=losscli.Streaming(chunk_rows=3)).value,
                               F.cross_entropy(logits, torch.tensor(cols["label"])).numpy(), rtol=1e-12)


def test_csv_stream_does_not_hold_the_file(tmp_path, monkeypatch):
    n = 100_000  # 3.8 MB of text, 0.8 MB of float64 in each column
    a, b = normal(n), normal(n)
    (tmp_path / "r.csv").write_text("a,b\n" + "".join(f"{u!r},{v!r}\n" for u, v in zip(a.tolist(), b.tolist())),
                                    encoding="utf-8")
    csvread.without_pyarrow(monkeypatch)  # pyarrow's memory is not traced: see test_arrow_csv_stream_...
    _pieces(monkeypatch, 1 << 13)
    monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 10_000)
    monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 2_000)
    spec = str(tmp_path / "r.csv")
    losscli.compute("mse", *(Loader().load(f"{spec}:{c}", role=c) for c in "ab"))  # imports done
    tracemalloc.start()
    try:
        loader = Loader()
        result = losscli.compute("mse", *(loader.load(f"{spec}:{c}", role=c) for c in "ab"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * 8  # less than one column (the whole read holds both, and more while it concatenates)
    close(result.value, np.mean((a - b) ** 2))
