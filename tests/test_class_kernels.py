"""The class losses' kernels against torch.nn.functional: cross-entropy's blocked log-sum-exp on the rows it
computes unshifted and on those it computes again shifted (large, tiny and non-finite scores), the same digits
whatever the chunks, nll's check of the log-probabilities it reads (and only those), how nll plans its chunks
of arrays in memory, and BLAS held to one thread around linear-cross-entropy's products."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losscli
from losscli import blas
from losscli.engine import sources
from losscli.errors import ValueDomainError
from losscli.io import ArrayRows
from losscli.losses import CATALOG, sequence
from tests.oracle import FLOATS, LinearCase, assert_matches, linear_oracle, tensor, tolerance_of

rng = np.random.default_rng(14)


def hard_rows(classes: int, dtype) -> np.ndarray:
    """Rows of scores: ordinary ones, shifted far up and down (past exp's range unshifted), spread across that
    range, and with -inf, +inf and NaN in them."""
    base = rng.normal(size=(14, classes))
    offsets = np.array([0, 0, 40, 80, 100, 1000, -40, -60, -100, -1e4, 0, 0, 0, 0])[:, None]
    x = base + offsets
    x[10, 0] = 90.0  # one score far above the rest of its row
    x[11, ::2] = -np.inf  # some classes impossible (a 1-class row: every class)
    x[12, -1] = np.inf
    x[13, 0] = np.nan
    if dtype == np.float64:
        x[4:6] += 700  # past float64's exp too
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("classes", [1, 3, 10, 1000])
def test_cross_entropy_of_hard_rows_is_torchs(dtype, classes):
    x = hard_rows(classes, dtype)
    x = np.concatenate([x, rng.normal(size=(50, classes)).astype(dtype)])  # blocks mixing both kinds of rows
    t = rng.integers(0, classes, len(x))
    for options in ({}, {"label_smoothing": 0.2, "weight": rng.uniform(0.1, 2, classes).astype(dtype)}):
        kw = {k: tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        want = F.cross_entropy(tensor(x), tensor(t), reduction="none", **kw)
        got = losscli.compute("cross-entropy", x, t, reduction="none", **options).value
        assert_matches(got, want, tolerance_of(x), f"{options}")


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_with_positions_and_probabilities_is_torchs(dtype):
    x = hard_rows(6, dtype).reshape(7, 2, 6).transpose(0, 2, 1).copy()  # (N, C, d1): rows hard across C
    t = rng.integers(0, 6, (7, 2))
    y = rng.dirichlet(np.ones(6), (7, 2)).transpose(0, 2, 1).astype(dtype)
    for target in (t, y):
        want = F.cross_entropy(tensor(x), tensor(target), reduction="none")
        assert_matches(losscli.compute("cross-entropy", x, target, reduction="none").value, want, tolerance_of(x))


def test_each_row_has_the_same_digits_whatever_the_chunks():
    x = np.concatenate([hard_rows(8, np.float32), rng.normal(size=(300, 8)).astype(np.float32) * 30])
    x = rng.permutation(x)
    t = rng.integers(0, 8, len(x))
    whole = losscli.compute("cross-entropy", x, t, reduction="none").value
    for rows in (1, 7, 64):
        chunked = losscli.compute("cross-entropy", x, t, reduction="none",
                                  streaming=losscli.Streaming(chunk_rows=rows)).value
        assert np.array_equal(chunked, whole, equal_nan=True), rows


def test_linear_cross_entropy_of_large_logits_is_torchs():
    x = rng.normal(size=(40, 6)).astype(np.float32) * 40  # logits of a few hundred: shifted rows
    case = LinearCase(x, rng.normal(size=(5, 6)).astype(np.float32), rng.integers(0, 5, 40),
                      linear_bias=rng.normal(size=5).astype(np.float32), reduction="none")
    assert_matches(case.compute("numpy").value, linear_oracle(case), tolerance_of(x))


# -- nll reads one log-probability per element ----------------------------------------------------------


def test_nll_warns_of_the_log_probabilities_it_reads_only():
    x = np.log(np.full((4, 3), 1 / 3))
    x[0, 1] = np.nan  # picked by row 0
    x[1, 2] = np.inf  # not picked
    x[3, 0] = -np.inf  # picked by row 3
    t = np.array([1, 0, 2, 0])
    result = losscli.compute("nll", x, t, reduction="none")
    assert result.warnings == ["input holds 2 non-finite value(s) (first: nan at index (0, 1)); the result "
                               "propagates them"]
    assert_matches(result.value, F.nll_loss(tensor(x), tensor(t), reduction="none"), tolerance_of(x))
    assert losscli.compute("nll", x, np.array([0, 0, 2, 1])).warnings == []  # none of them read
    with pytest.raises(ValueDomainError, match=r"^input: expected finite values \(nan_policy='raise'\), but got "
                                               r"-inf at index \(3, 0\)$"):
        losscli.compute("nll", x, np.array([0, 0, 2, 0]), nan_policy="raise")


def test_nll_names_the_first_in_the_whole_input_when_it_streams():
    x = np.zeros((9, 2, 3))  # (N, C, d1)
    x[6, 1, 2] = np.nan
    x[6, 0, 0] = np.nan  # before it in the input, not read
    t = np.zeros((9, 3), np.int64)
    t[6] = [1, 0, 1]  # reads x[6, 1, 0], x[6, 0, 1] and x[6, 1, 2]
    t[7, 1] = -100  # ignored: reads nothing
    for rows in (None, 2):
        streaming = losscli.Streaming(chunk_rows=rows) if rows else losscli.Streaming()
        result = losscli.compute("nll", x, t, streaming=streaming)
        assert result.warnings == ["input holds 1 non-finite value(s) (first: nan at index (6, 1, 2)); the "
                                   "result propagates them"], rows


def test_nll_of_an_array_in_memory_is_planned_by_its_elements_not_its_classes():
    shapes = {"input": (5000, 1000), "target": (5000,)}
    nll, ce = CATALOG["nll"], CATALOG["cross-entropy"]
    in_memory = {name: sources.Source(name, ArrayRows(np.zeros(shape, np.int64 if name == "target" else np.float32)))
                 for name, shape in shapes.items()}
    assert sources.plan(nll, in_memory, False, whole=False) is None  # 5000 elements: one chunk
    assert sources.plan(ce, in_memory, False, whole=False).chunk_rows == sources.CHUNK_ELEMENTS // 1000


def test_nll_from_a_file_streams_in_chunks_of_its_rows(tmp_path):
    x = np.log(rng.dirichlet(np.ones(1000), 3000)).astype(np.float32)
    t = rng.integers(0, 1000, 3000)
    np.save(tmp_path / "x.npy", x)
    loaded = losscli.io.Loader().load(str(tmp_path / "x.npy"), role="input")
    planned = sources.plan(CATALOG["nll"], {"input": sources.source("input", loaded),
                                            "target": sources.source("target", t)}, False, whole=False)
    assert planned.chunk_rows == sources.CHUNK_ELEMENTS // 1000  # bytes read: the file's whole rows
    got = losscli.compute("nll", str(tmp_path / "x.npy"), t).value
    assert_matches(got, F.nll_loss(tensor(x), tensor(t)), tolerance_of(x))


# -- BLAS on one thread around linear-cross-entropy ------------------------------------------------------


def test_blas_is_single_threaded_while_held_and_restored_after():
    if not blas._loaded():
        pytest.skip("numpy's BLAS here is not OpenBLAS")
    before = [b.get() for b in blas._loaded()]
    inside, release = threading.Event(), threading.Event()

    def hold():
        with blas.single_threaded():
            inside.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    inside.wait(10)
    with blas.single_threaded():
        assert [b.get() for b in blas._loaded()] == [1] * len(before)
    assert [b.get() for b in blas._loaded()] == [1] * len(before)  # the other thread still holds it
    release.set()
    other.join(10)
    assert [b.get() for b in blas._loaded()] == before


def test_linear_cross_entropy_on_its_own_threads_has_the_digits_of_one(monkeypatch):
    """Blocks of rows computed on the pool's threads (a batch the engine computes whole) or one after another:
    the same values and gradient, digit for digit."""
    x, w = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    t = rng.integers(0, 50, 300)
    monkeypatch.setattr(sequence, "CHUNK_ELEMENTS", 50 * 16)  # 19 blocks of 16 rows

    def run(pool_blocks: int) -> tuple[np.ndarray, np.ndarray]:
        monkeypatch.setattr(sequence, "POOL_BLOCKS", pool_blocks)
        values = losscli.compute("linear-cross-entropy", x, w, t, reduction="none").value
        grad = losscli.compute("linear-cross-entropy", x, w, t, label_smoothing=0.1,
                               outputs=losscli.Outputs(grad=True)).grad
        return values, grad

    pooled, alone = run(4), run(10**9)
    assert all(np.array_equal(p, a) for p, a in zip(pooled, alone))
