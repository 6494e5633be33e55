"""Per-sample views (--per-sample, --top, --hist) against independent references.

* A sample's loss is torch.nn.functional on that row alone, with its weights and mask applied by slicing
  (masked-out class targets as ignore_index), for both backends.
* The top K and the histogram are checked against sorting and counting written out here.
* Chunking: the accumulators fed several chunks by hand, in any order, give exactly the one-chunk answer.
* The commands: every format, --output, and the errors (one line, exit 2).
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import losscli
from losscli.engine import accumulators as views
from losscli.edge.cli import app
from losscli.errors import OptionError
from losscli.reduction import Elements, Reduction, selection

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
runner = CliRunner()
rng = np.random.default_rng(7)


def T(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.2, 2.0, shape)


def labels(n: int, classes: int, *shape: int, ignore: int | None = None) -> np.ndarray:
    t = rng.integers(0, classes, (n, *shape))
    if ignore is not None:
        t.reshape(-1)[:: 3] = ignore
    return t


# -- per sample = torch on the row alone ---------------------------------------------------------------
# Each case: (loss, arrays, keywords for compute, reductions, torch of row i under a reduction).


def _mse_weighted_masked():
    x, y, w = normal(5, 4), normal(5, 4), positive(5, 4)
    m = rng.random((5, 4)) < 0.6
    m[3] = False  # a row with nothing selected: NaN for mean, 0 for sum
    m[0] = True

    def row(i, r):
        s = T(m[i])
        return F.mse_loss(T(x[i])[s], T(y[i])[s], weight=T(w[i])[s], reduction=r)
    return "mse", (x, y), {"weight": w, "mask": m}, ("mean", "sum"), row


def _l1_weighted():
    x, y, w = normal(4, 3, 2), normal(4, 3, 2), positive(4, 3, 2)
    return "l1", (x, y), {"weight": w}, ("mean", "sum"), \
        lambda i, r: F.l1_loss(T(x[i]), T(y[i]), weight=T(w[i]), reduction=r)


def _huber_weighted():  # torch's huber mean is Σ w·l / n, not the weighted average
    x, y, w = normal(4, 5), normal(4, 5) * 3, positive(4, 1)
    return "huber", (x, y), {"weight": w, "delta": 0.7}, ("mean", "sum"), \
        lambda i, r: F.huber_loss(T(x[i]), T(y[i]), weight=T(np.broadcast_to(w[i], (5,))), delta=0.7, reduction=r)


def _cross_entropy_class_weights_ignore():
    x, w = normal(6, 5), positive(5)
    t = labels(6, 5, ignore=-1)  # rows 0 and 3 ignored: NaN for mean, as torch
    return "cross-entropy", (x, t), {"weight": w, "ignore_index": -1}, ("mean", "sum"), \
        lambda i, r: F.cross_entropy(T(x[i:i + 1]), T(t[i:i + 1]), weight=T(w), ignore_index=-1, reduction=r)


def _cross_entropy_kdim_masked_smoothed():
    x, w = normal(3, 4, 5), positive(4)
    t = labels(3, 4, 5, ignore=-1)
    m = rng.random((3, 5)) < 0.7

    def row(i, r):  # a masked-out target counts as ignore_index: Σ w[t] over the row's selected targets
        kept = np.where(m[i:i + 1], t[i:i + 1], -1)
        return F.cross_entropy(T(x[i:i + 1]), T(kept), weight=T(w), ignore_index=-1, label_smoothing=0.1,
                               reduction=r)
    return "cross-entropy", (x, t), {"weight": w, "ignore_index": -1, "label_smoothing": 0.1, "mask": m}, \
        ("mean", "sum"), row


def _cross_entropy_probabilities():
    x, w = normal(4, 3, 2), positive(3)
    y = np.exp(normal(4, 3, 2))
    y /= y.sum(axis=1, keepdims=True)
    return "cross-entropy", (x, y), {"weight": w, "label_smoothing": 0.2}, ("mean", "sum"), \
        lambda i, r: F.cross_entropy(T(x[i:i + 1]), T(y[i:i + 1]), weight=T(w), label_smoothing=0.2, reduction=r)


def _nll_masked():
    x = np.log(np.exp(normal(5, 3)) / np.exp(normal(5, 3)).sum(axis=1, keepdims=True) + 0.1)
    t, m = labels(5, 3), np.array([1, 0, 1, 1, 0], bool)

    def row(i, r):
        return F.nll_loss(T(x[i:i + 1]), T(np.where(m[i:i + 1], t[i:i + 1], -100)), reduction=r)
    return "nll", (x, t), {"mask": m}, ("mean", "sum"), row


def _bce_with_logits_pos_weight():
    x, y = normal(4, 3) * 2, (rng.random((4, 3)) < 0.5).astype(float)
    w, p = positive(4, 1), positive(3)
    return "bce-with-logits", (x, y), {"weight": w, "pos_weight": p}, ("mean", "sum"), \
        lambda i, r: F.binary_cross_entropy_with_logits(T(x[i]), T(y[i]), weight=T(w[i]), pos_weight=T(p),
                                                        reduction=r)


def _kl_div():
    x = np.log(np.exp(normal(4, 5)) / np.exp(normal(4, 5)).sum(axis=1, keepdims=True))
    y = np.exp(normal(4, 5))
    y /= y.sum(axis=1, keepdims=True)

    def row(i, r):  # batchmean: the row is a batch of one, so its loss is the row's sum
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on 'mean'
            return F.kl_div(T(x[i:i + 1]), T(y[i:i + 1]), reduction=r)
    return "kl-div", (x, y), {}, ("mean", "sum", "batchmean"), row


def _multi_margin_weighted():
    x, t, w = normal(6, 4), labels(6, 4), positive(4)
    return "multi-margin", (x, t), {"weight": w, "margin": 0.8}, ("mean", "sum"), \
        lambda i, r: F.multi_margin_loss(T(x[i:i + 1]), T(t[i:i + 1]), weight=T(w), margin=0.8, reduction=r)


def _triplet_masked():
    a, p, n = normal(5, 3), normal(5, 3), normal(5, 3)
    m = np.array([1, 1, 0, 1, 1], bool)

    def row(i, r):
        s = T(m[i:i + 1])
        return F.triplet_margin_loss(T(a[i:i + 1])[s], T(p[i:i + 1])[s], T(n[i:i + 1])[s], margin=2.0, reduction=r)
    return "triplet-margin", (a, p, n), {"mask": m, "margin": 2.0}, ("mean", "sum"), row


def _ctc():
    frames, n, classes = 6, 3, 4
    lp = np.log(np.exp(normal(frames, n, classes)) / np.exp(normal(frames, n, classes)).sum(-1, keepdims=True))
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    tg = rng.integers(1, classes, (n, 3))
    il, tl = np.array([6, 5, 6]), np.array([3, 2, 1])

    def row(i, r):  # mean divides each sample's loss by its target length
        return F.ctc_loss(T(lp[:, i:i + 1]), T(tg[i:i + 1]), T(il[i:i + 1]), T(tl[i:i + 1]), reduction=r)
    return "ctc", (lp, tg, il, tl), {}, ("mean", "sum"), row


def _gaussian_nll():
    x, y, v = normal(4, 3), normal(4, 3), positive(4, 3)
    return "gaussian-nll", (x, y, v), {"full": True}, ("mean", "sum"), \
        lambda i, r: F.gaussian_nll_loss(T(x[i]), T(y[i]), T(v[i]), full=True, reduction=r)


CASES = [_mse_weighted_masked, _l1_weighted, _huber_weighted, _cross_entropy_class_weights_ignore,
         _cross_entropy_kdim_masked_smoothed, _cross_entropy_probabilities, _nll_masked,
         _bce_with_logits_pos_weight, _kl_div, _multi_margin_weighted, _triplet_masked, _ctc, _gaussian_nll]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__.strip("_"))
def test_per_sample_is_torch_on_the_row_alone(case, backend):
    loss, arrays, kw, reductions, row = case()
    for reduction in reductions:
        result = losscli.compute(loss, *arrays, reduction=reduction, backend=backend, **kw, outputs=losscli.Outputs(per_sample=True))
        expected = np.array([row(i, reduction).item() for i in range(result.per_sample.size)])
        assert result.per_sample.shape == (expected.size,)
        np.testing.assert_allclose(result.per_sample, expected, rtol=1e-10, atol=1e-12, equal_nan=True,
                                   err_msg=f"{loss} {reduction}")
        assert result.value.shape == ()  # the scalar is still there


def test_a_row_with_nothing_selected_is_nan_for_mean_and_zero_for_sum():
    x, y = np.array([[1.0, 2.0], [3.0, 5.0]]), np.zeros((2, 2))
    m = np.array([[1, 1], [0, 0]])
    mean = losscli.compute("mse", x, y, mask=m, outputs=losscli.Outputs(per_sample=True)).per_sample
    assert mean[0] == (1 + 4) / 2 and np.isnan(mean[1])
    total = losscli.compute("mse", x, y, mask=m, reduction="sum", outputs=losscli.Outputs(per_sample=True)).per_sample
    assert total.tolist() == [5.0, 0.0]


def test_per_sample_of_a_single_value_is_one_sample():
    value = losscli.compute("mse", np.float32(3.0), np.float32(1.0), outputs=losscli.Outputs(per_sample=True))
    assert value.per_sample.tolist() == [4.0] and value.per_sample.dtype == np.float32
    x, t = normal(4), np.int64(2)  # unbatched cross-entropy: (C,) scores, a 0-d target
    expected = F.cross_entropy(T(x), T(t)).item()
    for backend in ("numpy", "torch"):
        result = losscli.compute("cross-entropy", x, t, backend=backend, outputs=losscli.Outputs(per_sample=True))
        np.testing.assert_allclose(result.per_sample, [expected], rtol=1e-12)


def test_per_sample_keeps_the_loss_dtype():
    x, y = normal(3, 2).astype(np.float32), normal(3, 2).astype(np.float32)
    result = losscli.compute("mse", x, y, outputs=losscli.Outputs(per_sample=True))
    assert result.per_sample.dtype == np.float32
    np.testing.assert_allclose(result.per_sample, ((x - y) ** 2).mean(axis=1), rtol=1e-6)


# -- top K --------------------------------------------------------------------------------------------------


def reference_top(values: np.ndarray, select: np.ndarray | None, k: int) -> list[tuple[tuple[int, ...], float]]:
    """Sort every selected element: NaN first, then larger values, then the lower (row-major) index."""
    items = [(idx, float(values[idx])) for idx in np.ndindex(values.shape) if select is None or select[idx]]
    items.sort(key=lambda item: (not math.isnan(item[1]), -item[1] if not math.isnan(item[1]) else 0, item[0]))
    return items[:k]


def test_top_elements_are_the_largest_with_nan_first_and_ties_to_the_lower_index():
    x = np.array([[0.0, 3.0, 1.0], [2.0, np.nan, 3.0], [3.0, 0.5, 0.5]])
    m = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1]], bool)  # (2, 0) holds a 3 but is masked out
    result = losscli.compute("l1", x, np.zeros_like(x), mask=m, outputs=losscli.Outputs(top=4))
    assert result.top.index.tolist() == [[1, 1], [0, 1], [1, 2], [1, 0]]
    assert np.isnan(result.top.value[0]) and result.top.value[1:].tolist() == [3.0, 3.0, 2.0]
    assert not result.top.by_sample


def test_top_samples_use_the_per_sample_loss_and_skip_rows_with_nothing_selected():
    x = np.array([[1.0, 1.0], [3.0, 1.0], [9.0, 9.0], [1.0, 3.0]])
    m = np.array([[1, 1], [1, 1], [0, 0], [1, 1]], bool)
    result = losscli.compute("mse", x, np.zeros_like(x), mask=m, outputs=losscli.Outputs(per_sample=True, top=10))
    assert result.top.by_sample
    assert result.top.index.tolist() == [1, 3, 0]  # (9 + 1) / 2 = 5 = (1 + 9) / 2: the lower index first
    assert result.top.value.tolist() == [5.0, 5.0, 1.0]


def test_top_ignored_class_targets_never_appear():
    x, t = normal(8, 3), labels(8, 3, ignore=-100)
    result = losscli.compute("cross-entropy", x, t, reduction="none", outputs=losscli.Outputs(top=8))
    assert set(result.top.index[:, 0].tolist()) == {i for i in range(8) if t[i] != -100}


def test_top_needs_a_positive_count_and_samples():
    x = np.ones((2, 2))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(OptionError, match=r"^top: expected a count of 1 or more, but got"):
            losscli.compute("mse", x, x, outputs=losscli.Outputs(top=bad))
    with pytest.raises(OptionError, match=r"^top: expected a loss with samples to rank.*shape \(\)"):
        losscli.compute("mse", np.float64(1.0), np.float64(2.0), outputs=losscli.Outputs(top=1))
    with pytest.raises(OptionError, match="per_sample: expected a reduction .* but the reduction is none"):
        losscli.compute("mse", x, x, reduction="none", outputs=losscli.Outputs(per_sample=True))


# -- histogram ------------------------------------------------------------------------------------------


def check_histogram(hist: views.Hist, values: np.ndarray) -> None:
    """Against counting written out: the bins count each finite value once, on a power-of-two grid that is
    as fine as BINS bins (or float64's resolution) allow."""
    finite = values[np.isfinite(values)]
    assert hist.nan == int(np.isnan(values).sum()) and hist.inf == int(np.isinf(values).sum())
    assert int(hist.counts.sum()) == finite.size
    if not finite.size:
        assert hist.edges.size == 0 and hist.counts.size == 0
        return
    low, high = finite.min(), finite.max()
    if low == high:
        assert hist.edges.tolist() == [low, high] and hist.counts.tolist() == [finite.size]
        return
    edges = hist.edges
    width = edges[1] - edges[0]
    assert math.frexp(width)[0] == 0.5  # a power of two
    assert np.all(np.diff(edges) == width) and np.all(edges / width == np.round(edges / width))
    assert 1 <= hist.counts.size <= views.BINS
    assert edges[0] <= low < edges[1] and edges[-2] <= high < edges[-1]
    expected = [int(np.count_nonzero((finite >= a) & (finite < b))) for a, b in itertools.pairwise(edges)]
    assert hist.counts.tolist() == expected
    half = width / 2  # one step finer would need more than BINS bins (or be below float64's resolution)
    finer = math.floor(high / half) - math.floor(low / half) + 1
    assert finer > views.BINS or half < np.spacing(max(abs(low), abs(high))) * 2


def test_hist_of_elements_counts_selected_values_with_nan_and_inf_apart():
    x = np.array([[0.1, 0.2, np.inf], [np.nan, 1.5, 7.0], [2.0, 2.0, 100.0]])
    m = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], bool)
    hist = losscli.compute("l1", x, np.zeros_like(x), mask=m, outputs=losscli.Outputs(hist=True)).hist
    check_histogram(hist, np.array([0.1, 0.2, np.inf, np.nan, 1.5, 7.0, 2.0, 2.0]))
    assert hist.edges.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # [0.1, 7] in 8 bins of 1
    assert hist.counts.tolist() == [2, 1, 2, 0, 0, 0, 0, 1] and hist.nan == 1 and hist.inf == 1


def test_hist_of_equal_values_is_one_point_bin():
    hist = losscli.compute("l1", np.zeros((3, 2)), np.zeros((3, 2)), outputs=losscli.Outputs(hist=True)).hist
    assert hist.edges.tolist() == [0.0, 0.0] and hist.counts.tolist() == [6]


def test_hist_of_samples():
    x = np.array([[1.0, 3.0], [0.0, 0.0], [5.0, 5.0]])
    hist = losscli.compute("l1", x, np.zeros_like(x), outputs=losscli.Outputs(per_sample=True, hist=True)).hist
    assert hist.by_sample
    check_histogram(hist, np.array([2.0, 0.0, 5.0]))


# -- chunking: the accumulators fed by hand --------------------------------------------------------------


@st.composite
def chunked_elements(draw):
    """Random per-element values (with NaN, inf, ties), weights, validity, a mask, a divisor, and cuts."""
    rows, cols = draw(st.integers(0, 9)), draw(st.integers(1, 4))
    pool = st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.5, -1.0, 1e-3, 7.0, np.nan, np.inf])
    values = np.array(draw(st.lists(pool, min_size=rows * cols, max_size=rows * cols)), float).reshape(rows, cols)
    values = values + np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 1e-9]), min_size=values.size,
                                             max_size=values.size))).reshape(values.shape)
    denom = rng.uniform(0.5, 2, (rows, cols)) if draw(st.booleans()) else None
    valid = (rng.random((rows, cols)) < 0.8) if draw(st.booleans()) else None
    divisor = rng.integers(1, 4, (rows, 1)).astype(float) if draw(st.booleans()) else None
    mask = (rng.random((rows, cols)) < 0.7) if draw(st.booleans()) else None
    cuts = sorted(draw(st.lists(st.integers(0, rows), max_size=4)))
    return Elements(values, denom, valid, divisor), mask, [0, *cuts, rows]


def _chunks(e: Elements, mask, bounds, order):
    def part(a, lo, hi):
        return None if a is None else np.broadcast_to(a, e.values.shape)[lo:hi]
    for lo, hi in (bounds[i:i + 2] for i in order):
        chunk = Elements(e.values[lo:hi], part(e.denom, lo, hi), part(e.valid, lo, hi), part(e.mean_divisor, lo, hi))
        yield lo, chunk, selection(chunk.valid, part(mask, lo, hi))


def _run(make, e, mask, bounds, order):
    view = make()
    for start, chunk, select in _chunks(e, mask, bounds, order):
        view.update(start, chunk, select)
    return view.finish()


@given(chunked_elements(), st.randoms(use_true_random=False), st.integers(1, 6),
       st.sampled_from([None, Reduction.mean, Reduction.sum]))
def test_views_do_not_depend_on_chunking(drawn, random, k, by):
    e, mask, bounds = drawn
    order = list(range(len(bounds) - 1))
    random.shuffle(order)
    whole = [0, e.values.shape[0]]
    makers = {"top": lambda: views.TopK(k, by), "hist": lambda: views.Histogram(by)}
    if by is not None:
        makers["per_sample"] = lambda: views.SampleLosses(by)
    for name, make in makers.items():
        one, many = _run(make, e, mask, whole, [0]), _run(make, e, mask, bounds, order)
        if name == "per_sample":
            np.testing.assert_array_equal(one, many)
        elif name == "top":
            np.testing.assert_array_equal(one.index, many.index)
            np.testing.assert_array_equal(one.value, many.value)
        else:
            np.testing.assert_array_equal(one.edges, many.edges)
            np.testing.assert_array_equal(one.counts, many.counts)
            assert (one.nan, one.inf) == (many.nan, many.inf)


@given(chunked_elements(), st.integers(1, 6))
def test_top_and_hist_of_elements_match_sorting_and_counting(drawn, k):
    e, mask, bounds = drawn
    select = selection(e.valid, mask)
    top = _run(lambda: views.TopK(k, None), e, mask, bounds, range(len(bounds) - 1))
    expected = reference_top(e.values, select, k)
    assert [tuple(i) for i in top.index.tolist()] == [idx for idx, _ in expected]
    np.testing.assert_array_equal(top.value, [v for _, v in expected])
    hist = _run(lambda: views.Histogram(None), e, mask, bounds, range(len(bounds) - 1))
    check_histogram(hist, e.values[select] if select is not None else e.values.reshape(-1))


@given(chunked_elements())
def test_per_sample_matches_row_arithmetic(drawn):
    e, mask, bounds = drawn
    select = selection(e.valid, mask)
    got = _run(lambda: views.SampleLosses(Reduction.mean), e, mask, bounds, range(len(bounds) - 1))
    for i in range(e.values.shape[0]):
        keep = np.ones(e.values.shape[1], bool) if select is None else select[i]
        v = e.values[i][keep]
        if e.mean_divisor is not None:
            v = v / e.mean_divisor[i, 0]
        w = keep.sum() if e.denom is None else e.denom[i][keep].sum()
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(got[i], np.float64(v.sum()) / np.float64(w), rtol=1e-12, equal_nan=True)


def test_histogram_bins_merge_when_a_later_chunk_widens_the_range():
    h = views.Histogram(None)
    h.update(0, Elements(np.zeros((2, 1))), None)  # all zeros: the finest grid
    h.update(2, Elements(np.array([[0.3], [5.0]])), None)
    h.update(4, Elements(np.array([[-1e6]])), None)
    result = h.finish()
    check_histogram(result, np.array([0.0, 0.0, 0.3, 5.0, -1e6]))


# -- the commands -------------------------------------------------------------------------------------------

PRED, TARGET = SAMPLES / "regression" / "pred.npy", SAMPLES / "regression" / "target.npy"
LOGITS, LABELS = SAMPLES / "classification" / "logits.npy", SAMPLES / "classification" / "labels.csv"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def torch_rows() -> np.ndarray:
    """mse per row of the regression samples, from torch on each row."""
    x, y = np.load(PRED), np.load(TARGET)
    return np.array([F.mse_loss(T(x[i]), T(y[i])).item() for i in range(len(x))], np.float32)


def test_cli_json_has_every_view():
    result = invoke("mse", PRED, TARGET, "--per-sample", "--top", "3", "--hist", "-f", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    rows = torch_rows()
    np.testing.assert_allclose(out["per_sample"], rows, rtol=1e-6)
    order = np.argsort(-rows, kind="stable")[:3]
    assert [item["index"] for item in out["top"]] == order.tolist()
    np.testing.assert_allclose([item["value"] for item in out["top"]], rows[order], rtol=1e-6)
    assert set(out["hist"]) == {"edges", "counts", "nan", "inf"}
    assert sum(out["hist"]["counts"]) == len(rows) and out["hist"]["nan"] == 0
    np.testing.assert_allclose(out["value"], F.mse_loss(T(np.load(PRED)), T(np.load(TARGET))).item(), rtol=1e-6)


def test_cli_json_top_elements_have_multi_dimensional_indices():
    out = json.loads(invoke("mse", PRED, TARGET, "--top", "2", "-f", "json").stdout)
    sq = (np.load(PRED).astype(np.float64) - np.load(TARGET)) ** 2
    best = np.argsort(-sq.reshape(-1), kind="stable")[:2]
    assert [item["index"] for item in out["top"]] == [list(np.unravel_index(i, sq.shape)) for i in best]


def test_cli_plain_and_csv_print_one_view():
    rows = torch_rows()
    plain = invoke("mse", PRED, TARGET, "--per-sample", "-f", "plain")
    np.testing.assert_allclose([float(v) for v in plain.stdout.split()], rows, rtol=1e-6)
    top = invoke("mse", PRED, TARGET, "--per-sample", "--top", "2", "-f", "plain").stdout.splitlines()
    order = np.argsort(-rows, kind="stable")[:2]
    assert [int(line.split()[0]) for line in top] == order.tolist()
    csv = invoke("mse", PRED, TARGET, "--per-sample", "-f", "csv").stdout.splitlines()
    assert csv[0] == "i0,value" and len(csv) == 1 + len(rows)
    hist = invoke("cross-entropy", LOGITS, LABELS, "--hist", "-f", "csv").stdout.splitlines()
    assert hist[0] == "lower,upper,count" and hist[-2].startswith("nan,nan,") and hist[-1] == "inf,inf,0"
    counts = [int(line.split(",")[2]) for line in hist[1:]]
    assert sum(counts) == 12


def test_cli_table_shows_the_value_and_the_views():
    result = invoke("cross-entropy", LOGITS, LABELS, "--per-sample", "--top", "2", "--hist")
    assert result.exit_code == 0, result.stderr
    for text in ("value", "loss per sample (mean of each row)", "top 2 samples (mean per sample) by loss",
                 "histogram of 12 samples", "NaN 0 · ±inf 0", "█"):
        assert text in result.stdout, text


def test_cli_output_writes_the_per_sample_values(tmp_path):
    out = tmp_path / "rows.npy"
    assert invoke("mse", PRED, TARGET, "--per-sample", "--output", out, "-f", "plain").exit_code == 0
    np.testing.assert_allclose(np.load(out), torch_rows(), rtol=1e-6)
    out_csv = tmp_path / "rows.csv"
    assert invoke("mse", PRED, TARGET, "--per-sample", "--output", out_csv).exit_code == 0
    assert out_csv.read_text().splitlines()[0] == "i0,value"


def test_cli_torch_backend_agrees():
    got = json.loads(invoke("cross-entropy", LOGITS, LABELS, "--per-sample", "--top", "3", "-b", "torch",
                            "-f", "json").stdout)
    x, t = np.load(LOGITS), np.loadtxt(LABELS, skiprows=1, dtype=np.int64)
    rows = F.cross_entropy(T(x), T(t), reduction="none").numpy()
    np.testing.assert_allclose(got["per_sample"], rows, rtol=1e-6)
    assert [item["index"] for item in got["top"]] == np.argsort(-rows, kind="stable")[:3].tolist()


@pytest.mark.parametrize("args, fragments", [
    (("--top", "0"), ["--top: expected a count of 1 or more, but got 0"]),
    (("--top", "-2"), ["--top: expected a count of 1 or more, but got -2"]),
    (("--per-sample", "-r", "none"), ["--per-sample: expected a reduction", "the reduction is none"]),
    (("--top", "2", "--hist", "-f", "plain"), ["--format plain: expected one of --top and --hist", "got both"]),
    (("--top", "2", "--hist", "-f", "csv"), ["--format csv: expected one of --top and --hist"]),
])
def test_cli_errors_are_one_line_exit_2(args, fragments):
    result = invoke("mse", PRED, TARGET, *args)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_top_of_a_single_value_is_an_error(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.float32(1.0))
    np.save(b, np.float32(2.0))
    result = invoke("mse", a, b, "--top", "1")
    assert result.exit_code == 2 and "--top: expected a loss with samples to rank" in result.stderr


def test_cli_help_lists_the_views():
    result = invoke("mse", "--help")
    for flag in ("--per-sample", "--top", "--hist"):
        assert flag in result.stdout


# -- the streaming engine: chunks of a few rows give the in-memory views ---------------------------------


@pytest.mark.parametrize("case", [_mse_weighted_masked, _cross_entropy_kdim_masked_smoothed, _bce_with_logits_pos_weight,
                                  _kl_div, _multi_margin_weighted], ids=lambda c: c.__name__.strip("_"))
@pytest.mark.parametrize("chunk_rows", [1, 2, 4])
def test_streamed_views_equal_the_in_memory_ones(case, chunk_rows):
    loss, arrays, kw, reductions, _ = case()
    for reduction in reductions:
        for per_sample in (True, False):
            asked = dict(reduction=reduction, outputs=losscli.Outputs(per_sample=per_sample, top=3, hist=True), **kw)
            whole = losscli.compute(loss, *arrays, **asked)
            streamed = losscli.compute(loss, *arrays, **asked, streaming=losscli.Streaming(chunk_rows=chunk_rows))
            if per_sample:
                np.testing.assert_array_equal(streamed.per_sample, whole.per_sample)
            np.testing.assert_array_equal(streamed.top.index, whole.top.index)
            np.testing.assert_array_equal(streamed.top.value, whole.top.value)
            np.testing.assert_array_equal(streamed.hist.edges, whole.hist.edges)
            np.testing.assert_array_equal(streamed.hist.counts, whole.hist.counts)
