"""The shared reduction: legacy flag resolution against torch, and chunked partials that merge exactly.

Ground truth: ``torch.nn._reduction.legacy_get_string`` and ``torch.nn.functional`` for the flags; for
chunks, the whole-array reduction written out in numpy and torch's own loss over the sliced arrays.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.nn._reduction import legacy_get_string

from losscli.errors import OptionError
from losscli.losses import CATALOG
from losscli.losses import Batch, TargetKind
from losscli.reduction import Elements, Partial, Reduction, legacy_table, partial, resolve, unreduced

STATES = (None, True, False)
COMBOS = list(itertools.product(STATES, STATES))  # all nine (size_average, reduce)


# ------------------------------------------------------------------------------------ legacy flags


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("size_average, reduce", COMBOS)
def test_resolve_matches_torch(size_average, reduce, reduction):
    resolved, warning = resolve(reduction, size_average, reduce)
    if size_average is None and reduce is None:  # torch never calls legacy_get_string: reduction stands
        assert (resolved, warning) == (Reduction(reduction), None)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = legacy_get_string(size_average, reduce)
    assert resolved is Reduction(expected)
    assert warning == str(caught[0].message)  # torch's deprecation text, word for word


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("size_average, reduce", COMBOS)
def test_resolve_matches_what_torch_functional_computes(size_average, reduce, reduction):
    """F.mse_loss with the flags equals F.mse_loss with the reduction losscli resolves them to."""
    x, y = torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = F.mse_loss(x, y, size_average=size_average, reduce=reduce, reduction=reduction)
    resolved, _ = resolve(reduction, size_average, reduce)
    torch.testing.assert_close(flagged, F.mse_loss(x, y, reduction=resolved.value), rtol=0, atol=0)


@pytest.mark.parametrize("size_average, reduce", [(None, None), (False, True)])
def test_unknown_reduction_is_an_option_error(size_average, reduce):
    with pytest.raises(OptionError, match=r"^reduction: expected one of none, mean, sum, batchmean, but got 'average'"):
        resolve("average", size_average, reduce)


def test_legacy_table_lists_all_nine_combinations_as_torch_resolves_them():
    table = legacy_table()
    assert [(sa, r) for sa, r, _ in table] == COMBOS
    for size_average, reduce, resolved in table:
        assert resolved.value == legacy_get_string(size_average, reduce, emit_warning=False)


# ---------------------------------------------------------------------------------- chunked merge


def merge_all(parts: list[Partial]) -> Partial:
    merged = Partial()
    for part in parts:
        merged = merged.merge(part)
    return merged


@st.composite
def cuts(draw, n: int) -> list[tuple[int, int]]:
    """Chunk boundaries of range(n), empty chunks included."""
    points = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    edges = [0, *points, n]
    return list(zip(edges[:-1], edges[1:]))


@st.composite
def elements_cases(draw):
    n = draw(st.integers(0, 40))
    values = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 100, allow_subnormal=False)))
    denom = draw(st.none() | hnp.arrays(np.float64, n, elements=st.floats(0, 3, allow_subnormal=False)))
    valid = draw(st.none() | hnp.arrays(np.bool_, n))
    mask = draw(st.none() | hnp.arrays(np.bool_, n))
    return values, denom, valid, mask, draw(cuts(n))


def chunk(array, lo, hi):
    return None if array is None else array[lo:hi]


@given(case=elements_cases())
def test_merged_partials_equal_the_whole_array_reduction(case):
    values, denom, valid, mask, chunks = case
    parts = [partial(Elements(values[lo:hi], chunk(denom, lo, hi), chunk(valid, lo, hi)), chunk(mask, lo, hi))
             for lo, hi in chunks]
    merged = merge_all(parts)

    # the whole-array reduction, written out
    select = np.ones(values.shape, bool)
    for keep in (valid, mask):
        if keep is not None:
            select &= keep
    total = values[select].sum()
    weight = select.sum() if denom is None else denom[select].sum()
    assert merged.selected == int(select.sum())
    np.testing.assert_allclose(merged.finish(Reduction.sum), total, rtol=1e-12, atol=1e-12)
    with np.errstate(all="ignore"):  # 0/0, x/0 and overflow: as torch gives them
        mean = np.float64(total) / np.float64(weight)
    np.testing.assert_allclose(merged.finish(Reduction.mean), mean, rtol=1e-12, atol=1e-12, equal_nan=True)

    # and the one-chunk partial and the ``none`` reduction agree with it
    whole = partial(Elements(values, denom, valid), mask)
    assert whole.selected == merged.selected
    np.testing.assert_allclose(whole.finish(Reduction.mean), mean, rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(unreduced(Elements(values, denom, valid), mask), np.where(select, values, 0.0))


def test_empty_and_unselected_chunks_merge_as_nothing():
    values = np.array([1.0, 4.0, 9.0, 16.0])
    mask = np.array([True, False, False, True])
    chunks = [(0, 0), (0, 1), (1, 3), (3, 3), (3, 4), (4, 4)]  # empty, selected, nothing selected, ...
    parts = [partial(Elements(values[lo:hi]), mask[lo:hi]) for lo, hi in chunks]
    assert parts[0] == Partial(0.0, 0.0, 0) and parts[2] == Partial(0.0, 0.0, 0)
    merged = merge_all(parts)
    assert merged == Partial(1.0 + 16.0, 2.0, 2)
    assert merged.finish(Reduction.mean) == (1.0 + 16.0) / 2
    assert Partial().merge(merged) == merged == merged.merge(Partial())
    assert np.isnan(merge_all([partial(Elements(values), np.zeros(4, bool))]).finish(Reduction.mean))


def chunked(loss: str, arrays: dict[str, np.ndarray], mask: np.ndarray, chunks, params=None, kind=None) -> Partial:
    """The numpy formula of ``loss`` run chunk by chunk along axis 0, partials merged."""
    spec, params = CATALOG[loss], {**CATALOG[loss].defaults(), **(params or {})}
    parts = []
    for lo, hi in chunks:
        piece = {k: v if k == "weight" and loss == "nll" else v[lo:hi] for k, v in arrays.items()}
        batch = Batch(piece, mask[lo:hi].shape, np.dtype(np.float64), mask=mask[lo:hi], target_kind=kind)
        parts.append(partial(spec.numpy(piece, params, batch), mask[lo:hi]))
    return merge_all(parts)


@given(data=st.data())
def test_chunked_mse_equals_torch_on_the_whole_masked_array(data):
    n = data.draw(st.integers(0, 30))
    x, y = (data.draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(-10, 10))) for _ in range(2))
    w = data.draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(0, 3)))
    mask = data.draw(hnp.arrays(np.bool_, (n, 2)))
    merged = chunked("mse", {"input": x, "target": y, "weight": w}, mask, data.draw(cuts(n)))
    X, Y, W, M = (torch.from_numpy(a) for a in (x, y, w, mask))
    torch.testing.assert_close(torch.tensor(merged.finish(Reduction.sum), dtype=torch.float64),
                               F.mse_loss(X[M], Y[M], weight=W[M], reduction="sum"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.tensor(merged.finish(Reduction.mean), dtype=torch.float64),
                               F.mse_loss(X[M], Y[M], weight=W[M], reduction="mean"), rtol=1e-12, atol=1e-12,
                               equal_nan=True)


@given(data=st.data())
def test_chunked_nll_with_class_weights_equals_torch(data):
    """Chunks where every target is ignored or masked out contribute nothing, denominator included."""
    n, classes = data.draw(st.integers(0, 30)), 3
    logp = data.draw(hnp.arrays(np.float64, (n, classes), elements=st.floats(-10, 0)))
    t = data.draw(hnp.arrays(np.int64, n, elements=st.sampled_from([0, 1, 2, -100])))
    w = np.array([0.5, 2.0, 1.25])
    mask = data.draw(hnp.arrays(np.bool_, n))
    merged = chunked("nll", {"input": logp, "target": t, "weight": w}, mask, data.draw(cuts(n)),
                     kind=TargetKind.index)
    target = torch.where(torch.from_numpy(mask), torch.from_numpy(t), -100)  # masked out == ignored
    for reduction in (Reduction.sum, Reduction.mean):
        want = F.nll_loss(torch.from_numpy(logp), target, weight=torch.from_numpy(w), reduction=reduction.value)
        torch.testing.assert_close(torch.tensor(merged.finish(reduction), dtype=torch.float64), want,
                                   rtol=1e-12, atol=1e-12, equal_nan=True)
