"""ctc and linear-cross-entropy, both backends, against torch.nn.functional (the ground truth).

The oracles (tests/oracle.py) call ``torch.nn.functional`` directly and never losscli:

* ctc: a mask selects samples (slicing: their column of log_probs, their targets, their lengths); ``none`` is
  torch's unmasked output with masked-out samples set to 0. torch refuses empty log_probs, so a mask that
  selects no sample is written out: sum 0, mean NaN (the mean of nothing). ctc_loss takes no legacy flags:
  the oracle resolves them with torch's own ``legacy_get_string``.
* linear-cross-entropy: class-index targets that are masked out behave as ``ignore_index``; probability
  targets select rows of input and target (with K-dimensional logits, where a row holds several elements:
  the selected elements of torch's ``none`` output, then their sum or mean).

Gradients are torch autograd on float64 copies, and central differences of the oracles without autograd.
torch's ctc gradient is the gradient with respect to the logits behind a log_softmax (see
test_ctc_gradient_is_torchs_logit_gradient_not_the_free_log_probs_derivative), so its central differences
are taken through log_softmax.
"""

from __future__ import annotations

import json
import math
import tracemalloc
from dataclasses import replace
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.errors import OptionError, ShapeError, ValueDomainError
from losscli.losses import sequence
from losscli.reduction import Elements, Partial, Reduction, partial
from tests.oracle import (
    BACKENDS,
    FLOATS,
    ROOT,
    CtcCase,
    LinearCase,
    arrays,
    central_differences,
    ctc_oracle,
    leaf_grad,
    linear_oracle,
    masks,
    reductions,
    softmax_of,
    tensor,
)

# (rtol, atol): numpy computes in float64 and rounds once; torch computes in the input's dtype (ctc: a
# recursion over the frames, so float32 gets a little more room)
CTC_TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-4), np.dtype(np.float64): (1e-10, 1e-10)}
LINEAR_TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-5), np.dtype(np.float64): (1e-10, 1e-10)}


def assert_close(got: np.ndarray, want: np.ndarray, tolerance: tuple[float, float], what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    rtol, atol = tolerance
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return torch.from_numpy(np.asarray(x, np.float64)).log_softmax(axis).numpy()


# ================================================================================================ ctc


def ctc_autograd(c: CtcCase) -> tuple[np.ndarray, np.ndarray]:
    """torch's loss and d(sum of it)/d(log_probs), float64."""
    return leaf_grad(lambda lp: ctc_oracle(c, lp), c.log_probs)


def ctc_dead(c: CtcCase, nll: np.ndarray) -> np.ndarray:
    """Entries of log_probs (the user's layout) whose gradient is 0: frames past a sample's input length,
    samples that do not count (masked out), and samples whose inf loss --zero-infinity zeroes."""
    frames = c.log_probs.shape[0]
    il = np.asarray(c.input_lengths).reshape(-1)
    dead = np.arange(frames)[:, None] >= il  # (T, N)
    if c.mask is not None:
        dead |= ~c.mask.astype(bool).reshape(1, -1)
    if c.params.get("zero_infinity"):
        dead |= np.isinf(nll).reshape(1, -1)
    dead = np.broadcast_to(dead[..., None], (frames, len(il), c.log_probs.shape[-1]))
    return dead.reshape(c.log_probs.shape)


@st.composite
def ctc_cases(draw, dtypes=FLOATS, normalized: bool | None = None, feasible: bool = False) -> CtcCase:
    """Batched or unbatched, padded (with junk padding) or concatenated targets, empty targets, repeated
    labels that need a blank between them, input lengths from 0 to T (some too short: inf), a blank
    anywhere, int32 or int64 integers."""
    dtype = draw(st.sampled_from(dtypes))
    frames, classes = draw(st.integers(1, 7)), draw(st.integers(2, 5))
    blank = draw(st.sampled_from([0, 0, classes - 1]) | st.integers(0, classes - 1))
    batched = draw(st.integers(0, 4)) > 0
    n = draw(st.integers(1, 4)) if batched else 1
    alphabet = draw(st.lists(st.sampled_from([k for k in range(classes) if k != blank]), min_size=1,
                             max_size=2, unique=True))  # few labels: repeats are common
    tl = [draw(st.integers(0, 4)) for _ in range(n)]
    seqs = [draw(st.lists(st.sampled_from(alphabet), min_size=k, max_size=k)) for k in tl]
    need = [k + sum(a == b for a, b in zip(s, s[1:])) for k, s in zip(tl, seqs)]
    if feasible:
        assume(all(k <= frames for k in need))
        il = [draw(st.integers(k, frames)) for k in need]
    else:
        il = [draw(st.integers(min(k, frames), frames) | st.integers(0, frames)) for k in need]
    int_type = draw(st.sampled_from([np.int64, np.int32]))
    if draw(st.booleans()):  # padded: junk beyond each target, which torch never reads
        width = max(tl) + draw(st.integers(0, 2))
        junk = draw(st.sampled_from([blank, -1, classes + 7]))
        targets = np.full((n, width), junk, dtype=int_type)
        for row, s in zip(targets, seqs):
            row[:len(s)] = s
    else:
        targets = np.array([x for s in seqs for x in s], dtype=int_type)
    il_arr, tl_arr = np.array(il, dtype=int_type), np.array(tl, dtype=int_type)
    if not batched:
        if draw(st.booleans()):
            il_arr, tl_arr = il_arr.reshape(()), tl_arr.reshape(())
    shape = (frames, n, classes) if batched else (frames, classes)
    scores = draw(arrays(np.float64, shape, -4.0, 4.0))
    if normalized is None:
        normalized = draw(st.integers(0, 3)) > 0  # torch also takes log_probs that do not normalize
    log_probs = (log_softmax(scores) if normalized else scores).astype(dtype)
    params: dict[str, Any] = {}
    if blank != 0 or draw(st.booleans()):
        params["blank"] = blank
    if draw(st.booleans()):
        params["zero_infinity"] = draw(st.booleans())
    return CtcCase(log_probs, targets, il_arr, tl_arr, mask=draw(masks((n,) if batched else ())),
                   params=params, **draw(reductions()))


def check_ctc(c: CtcCase) -> None:
    want = ctc_oracle(c).numpy()
    tolerance = CTC_TOLERANCE[np.dtype(c.log_probs.dtype)]
    selected = c.samples if c.mask is None else int(np.count_nonzero(c.mask))
    for backend in BACKENDS:
        result = c.compute(backend)
        assert result.reduction.value == c.resolved
        assert result.value.dtype == want.dtype == c.log_probs.dtype
        assert (result.count, result.selected) == (c.samples, selected)
        assert_close(result.value, want, tolerance, f"backend={backend}: ctc differs from torch")


def check_ctc_grad(c: CtcCase) -> None:
    c64 = replace(c, log_probs=c.log_probs.astype(np.float64))
    value, want = ctc_autograd(c64)
    nll = F.ctc_loss(tensor(c64.log_probs), tensor(c.targets).long(), tensor(c.input_lengths).long(),
                     tensor(c.target_lengths).long(), blank=c.params.get("blank", 0), reduction="none").numpy()
    dead = ctc_dead(c, nll)
    tolerance = CTC_TOLERANCE[np.dtype(c.log_probs.dtype)]
    for backend in BACKENDS:
        result = c.compute(backend, outputs=losscli.Outputs(grad=True))
        grad = result.grad
        assert grad.shape == c.log_probs.shape and grad.dtype == c.log_probs.dtype, backend
        if backend == "torch" and c.resolved == "none" and c.mask is not None:
            # torch.where's backward hands masked-out samples a 0 grad_output: -0.0, or NaN for an inf loss
            keep = ~dead
            assert_close(grad[keep], want[keep], tolerance, "backend=torch: d(ctc)/d(log_probs)")
            continue
        # the oracle agrees except where torch.where (none with a mask) gives -0.0 or 0·NaN
        expected = np.where(dead, 0.0, want)
        assert_close(grad, expected, tolerance, f"backend={backend}: d(ctc)/d(log_probs) differs from autograd")
        assert np.all(grad[dead] == 0) and not np.any(np.signbit(grad[dead])), (backend, grad[dead])


@given(case=ctc_cases())
def test_ctc_matches_torch(case):
    check_ctc(case)


@given(case=ctc_cases())
def test_ctc_gradient_matches_autograd(case):
    check_ctc_grad(case)


def ctc_loss_sum(c: CtcCase, logits: np.ndarray) -> float:
    with torch.no_grad():
        return float(ctc_oracle(c, torch.from_numpy(log_softmax(logits))).sum())


@given(case=ctc_cases(dtypes=(np.float64,), normalized=True, feasible=True), data=st.data())
def test_ctc_gradient_through_log_softmax_equals_central_differences(case, data):
    """log_probs = log_softmax(z), z = log_probs itself: the chain rule through log_softmax (g - softmax·Σ_c g)
    equals central differences of z -> torch's ctc(log_softmax(z)), no autograd involved."""
    z = case.log_probs
    f0 = ctc_loss_sum(case, z)
    assume(np.isfinite(f0))
    points = data.draw(st.lists(st.integers(0, z.size - 1), min_size=1, max_size=3, unique=True))
    differences = []
    for i in points:
        up, down = z.copy(), z.copy()
        up.flat[i] += 1e-6
        down.flat[i] -= 1e-6
        differences.append((ctc_loss_sum(case, up) - ctc_loss_sum(case, down)) / (up.flat[i] - down.flat[i]))
    for backend in BACKENDS:
        g = case.compute(backend, outputs=losscli.Outputs(grad=True)).grad
        chained = g - np.exp(z) * g.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(chained.reshape(-1)[points], differences, rtol=1e-5, atol=1e-7 * (1 + abs(f0)),
                                   err_msg=f"backend={backend}")


def test_ctc_gradient_is_torchs_logit_gradient_not_the_free_log_probs_derivative():
    """torch's ctc backward returns exp(lp) - γ (γ: the occupancy of each class at each frame), the gradient
    with respect to the logits when log_probs = log_softmax(logits); autograd hands it on unchanged as the
    gradient of log_probs. The derivative with respect to log_probs as free inputs is -γ: central
    differences give exp(lp) less than torch's gradient. losscli matches torch."""
    rng = np.random.default_rng(3)
    lp = log_softmax(rng.normal(size=(5, 2, 4)))
    c = CtcCase(lp, np.array([[1, 2], [3, 3]]), np.array([5, 4]), np.array([2, 2]), reduction="sum")
    _, autograd = ctc_autograd(c)
    free = np.zeros_like(lp)
    for i in range(lp.size):
        up, down = lp.copy(), lp.copy()
        up.flat[i] += 1e-6
        down.flat[i] -= 1e-6
        with torch.no_grad():
            free.flat[i] = float(ctc_oracle(c, torch.from_numpy(up)) - ctc_oracle(c, torch.from_numpy(down))) / 2e-6
    live = (np.arange(5)[:, None] < c.input_lengths)[..., None]
    np.testing.assert_allclose(autograd, np.where(live, free + np.exp(lp), 0.0), atol=1e-7)
    for backend in BACKENDS:
        np.testing.assert_allclose(c.compute(backend, outputs=losscli.Outputs(grad=True)).grad, autograd, rtol=1e-10, atol=1e-12)


def test_ctc_by_hand():
    """Two classes (0 the blank), probabilities written out. Target [1] over 2 frames: the alignments 11, 01
    and 10; target [1, 1] over 3 frames: only 101 (a blank must separate the repeat); over 2 frames: none."""
    p = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])  # p[t, class]
    lp = np.log(p)[:, None, :].repeat(3, axis=1)  # (T=3, N=3, C=2)
    targets = np.array([[1, 0], [1, 1], [1, 1]])
    il, tl = np.array([2, 3, 2]), np.array([1, 2, 2])
    one = 0.4 * 0.7 + 0.6 * 0.7 + 0.4 * 0.3  # 0.82
    repeat = 0.4 * 0.3 * 0.5  # 0.06
    by_hand = np.array([-math.log(one), -math.log(repeat), math.inf])
    for backend in BACKENDS:
        none = losscli.compute("ctc", lp, targets, il, tl, reduction="none", backend=backend)
        np.testing.assert_allclose(none.value, by_hand, rtol=1e-12)
        zeroed = losscli.compute("ctc", lp, targets, il, tl, reduction="mean", zero_infinity=True, backend=backend)
        # mean: each loss over its target length, then the average over the 3 samples (the inf one now 0)
        np.testing.assert_allclose(zeroed.item(), (by_hand[0] / 1 + by_hand[1] / 2 + 0.0) / 3, rtol=1e-12)
        assert losscli.compute("ctc", lp, targets, il, tl, reduction="sum", backend=backend).item() == math.inf
    want = F.ctc_loss(tensor(lp), tensor(targets), tensor(il), tensor(tl), reduction="none")
    np.testing.assert_allclose(want.numpy(), by_hand, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_mean_divides_each_sample_by_its_target_length_at_least_1(backend):
    rng = np.random.default_rng(5)
    lp = log_softmax(rng.normal(size=(6, 3, 4)))
    targets, il, tl = np.array([1, 2, 3, 3, 1]), np.array([6, 6, 5]), np.array([0, 2, 3])  # an empty target
    per_sample = losscli.compute("ctc", lp, targets, il, tl, reduction="none", backend=backend).value
    np.testing.assert_allclose(per_sample[0], -lp[:, 0, 0].sum(), rtol=1e-12)  # blank at every frame
    mean = losscli.compute("ctc", lp, targets, il, tl, backend=backend).item()
    np.testing.assert_allclose(mean, np.mean(per_sample / np.maximum(tl, 1)), rtol=1e-12)
    masked = losscli.compute("ctc", lp, targets, il, tl, mask=np.array([True, False, True]), backend=backend)
    np.testing.assert_allclose(masked.item(), (per_sample[0] / 1 + per_sample[2] / 3) / 2, rtol=1e-12)
    assert masked.selected == 2 and masked.count == 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_ctc_mask_equals_slicing(backend, layout):
    rng = np.random.default_rng(11)
    lp = log_softmax(rng.normal(size=(7, 4, 5)))
    seqs = [[1, 1, 2], [], [4, 3], [2, 2, 2]]
    tl, il = np.array([len(s) for s in seqs]), np.array([7, 3, 6, 7])
    padded = np.array([s + [0] * (3 - len(s)) for s in seqs])
    targets = padded if layout == "padded" else np.array([x for s in seqs for x in s])
    keep = np.array([True, False, True, True])
    kept = [s for s, k in zip(seqs, keep) if k]
    sliced_targets = padded[keep] if layout == "padded" else np.array([x for s in kept for x in s])
    for reduction in ("mean", "sum"):
        masked = losscli.compute("ctc", lp, targets, il, tl, mask=keep, reduction=reduction, backend=backend, outputs=losscli.Outputs(grad=True))
        sliced = losscli.compute("ctc", lp[:, keep], sliced_targets, il[keep], tl[keep], reduction=reduction,
                                 backend=backend, outputs=losscli.Outputs(grad=True))
        np.testing.assert_allclose(masked.value, sliced.value, rtol=1e-12)
        np.testing.assert_allclose(masked.grad[:, keep], sliced.grad, rtol=1e-12, atol=1e-15)
        assert np.all(masked.grad[:, ~keep] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_mask_selecting_nothing(backend):
    lp = log_softmax(np.random.default_rng(2).normal(size=(3, 2, 3)))
    args = (lp, np.array([[1], [2]]), np.array([3, 3]), np.array([1, 1]))
    mean = losscli.compute("ctc", *args, mask=np.zeros(2, bool), backend=backend, outputs=losscli.Outputs(grad=True))
    assert np.isnan(mean.item()) and np.array_equal(mean.grad, np.zeros_like(lp))
    assert any("0 selected" in w for w in mean.warnings)
    total = losscli.compute("ctc", *args, mask=np.zeros(2, bool), reduction="sum", backend=backend, outputs=losscli.Outputs(grad=True))
    assert total.item() == 0.0 and np.array_equal(total.grad, np.zeros_like(lp))


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_unbatched_layouts_agree(backend):
    rng = np.random.default_rng(4)
    lp = log_softmax(rng.normal(size=(6, 4)))
    want = F.ctc_loss(tensor(lp), torch.tensor([1, 3, 3]), torch.tensor(6), torch.tensor(3), reduction="none")
    for targets, il, tl in ((np.array([1, 3, 3]), np.array(6), np.array(3)),  # concatenated, 0-d lengths
                            (np.array([[1, 3, 3, 2]]), np.array([6]), np.array([3]))):  # padded (1, S), (1,)
        result = losscli.compute("ctc", lp, targets, il, tl, reduction="none", backend=backend, outputs=losscli.Outputs(grad=True))
        assert result.value.shape == () and result.grad.shape == (6, 4)
        np.testing.assert_allclose(result.value, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_log_probs_of_minus_inf_are_probabilities_of_0(backend):
    """-inf in log_probs is no NaN/Inf warning; torch's gradient there is NaN (exp(-inf + inf)), as here."""
    lp = log_softmax(np.random.default_rng(8).normal(size=(4, 2, 3)))
    lp[1, 0, 2] = lp[2, 1, 0] = -np.inf
    args = (lp, np.array([[1, 2], [2, 2]]), np.array([4, 4]), np.array([2, 1]))
    result = losscli.compute("ctc", *args, reduction="sum", backend=backend, outputs=losscli.Outputs(grad=True))
    assert result.warnings == []
    leaf = torch.tensor(lp, requires_grad=True)
    out = F.ctc_loss(leaf, *(tensor(a) for a in args[1:]), reduction="sum")
    out.backward()
    np.testing.assert_allclose(result.value, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(result.grad, leaf.grad.numpy(), rtol=1e-10, atol=1e-12, equal_nan=True)
    assert np.isnan(result.grad[1, 0, 2])


def test_ctc_nan_in_log_probs_warns_or_raises():
    lp = log_softmax(np.random.default_rng(8).normal(size=(4, 2, 3)))
    lp[2, 1, 1] = np.nan
    args = (lp, np.array([[1], [2]]), np.array([4, 4]), np.array([1, 1]))
    result = losscli.compute("ctc", *args)
    assert result.warnings == ["log_probs holds 1 NaN or +inf value(s) (first: nan at index (2, 1, 1)); the "
                               "result propagates them"]
    with pytest.raises(ValueDomainError, match=r"^log_probs: expected log-probabilities \(finite or -inf\) "
                                               r"\(nan_policy='raise'\), but got nan at index \(2, 1, 1\)$"):
        losscli.compute("ctc", *args, nan_policy="raise")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_target_too_long_for_its_input_warns_and_is_inf(backend, zero_infinity):
    lp = log_softmax(np.random.default_rng(1).normal(size=(5, 3, 4)))
    targets, il, tl = np.array([[1, 1, 2], [1, 2, 3], [3, 0, 0]]), np.array([3, 5, 0]), np.array([3, 3, 1])
    result = losscli.compute("ctc", lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity,
                             backend=backend)
    then = "makes it 0" if zero_infinity else "would make it 0"
    assert result.warnings == [
        f"input_lengths: 2 of 3 sample(s) cannot be aligned to their target (first: sample 0, 3 label(s) with 1 "
        f"repeat(s) need at least 4 frames, but got 3); their loss is inf, as in torch; --zero-infinity {then}, "
        "with a zero gradient"]
    want = F.ctc_loss(tensor(lp), tensor(targets), tensor(il), tensor(tl), reduction="none",
                      zero_infinity=zero_infinity)
    np.testing.assert_allclose(result.value, want.numpy(), rtol=1e-12)
    assert (np.isinf(result.value[[0, 2]]).all() and not zero_infinity) or np.all(result.value[[0, 2]] == 0)


def test_ctc_legacy_flags_resolve_and_warn():
    lp = log_softmax(np.random.default_rng(6).normal(size=(4, 2, 3)))
    args = (lp, np.array([[1], [2]]), np.array([4, 4]), np.array([1, 1]))
    result = losscli.compute("ctc", *args, size_average=False)
    assert result.reduction is Reduction.sum and result.warnings[0].startswith("size_average and reduce args")
    np.testing.assert_allclose(result.item(), float(F.ctc_loss(*(tensor(a) for a in args), reduction="sum")))


def test_ctc_mean_divisor_partials_merge_exactly():
    values, divisor = np.array([3.0, 8.0, 1.5, 6.0]), np.array([1.0, 4.0, 1.0, 3.0])
    whole = partial(Elements(values, mean_divisor=divisor))
    parts = [partial(Elements(values[i:i + 1], mean_divisor=divisor[i:i + 1])) for i in range(4)]
    merged = Partial()
    for part in parts:
        merged = merged.merge(part)
    assert merged == whole and whole.finish(Reduction.mean) == (3 + 2 + 1.5 + 2) / 4
    assert whole.finish(Reduction.sum) == 18.5


def mixed_ctc_batch(frames: int, classes: int, blank: int, seed: int) -> tuple[np.ndarray, ...]:
    """log_probs (T, N, C) and padded targets (junk past each length) of samples of every kind, with their
    lengths: empty targets (with and without frames), repeated labels that need a blank between them, a
    target that needs exactly its frames, targets too long for their frames (inf), no frames at all, and
    ordinary ones of many lengths, so that the batch's samples end at different frames."""
    rng = np.random.default_rng(seed)
    labels = [k for k in range(classes) if k != blank]
    a, b = labels[0], labels[1]
    targets = [[], [], [a, a, b], [a, a, a], [a, b] * (frames // 2), [b] * (frames // 2 + 1), [a], [a, b]]
    input_lengths = [frames, 0, frames - 1, 5, frames, frames, 0, 1]
    for _ in range(8):
        k = int(rng.integers(1, frames // 2))
        targets.append(list(rng.choice(labels, k)))
        input_lengths.append(int(rng.integers(k, frames + 1)))
    width = max(map(len, targets)) + 1
    padded = np.full((len(targets), width), classes + 3)  # junk that torch never reads
    for row, t in zip(padded, targets):
        row[:len(t)] = t
    log_probs = log_softmax(rng.normal(scale=3.0, size=(frames, len(targets), classes)))
    return log_probs, padded, np.array(input_lengths), np.array([len(t) for t in targets])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blank", [0, 2, 5])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_batch_of_every_kind_of_sample_matches_torch(dtype, blank, zero_infinity):
    """The recursions run every sample at once, each frame over the whole batch: samples that end early, have
    no frames, no labels, repeats or no alignment still get torch's values, and its gradient."""
    lp, targets, il, tl = mixed_ctc_batch(24, 6, blank, seed=blank)
    lp = lp.astype(dtype)
    kw = dict(blank=blank, zero_infinity=zero_infinity)
    want = F.ctc_loss(tensor(lp), tensor(targets), tensor(il), tensor(tl), reduction="none", **kw).numpy()
    assert np.isinf(want).any() != zero_infinity
    leaf = torch.tensor(lp.astype(np.float64), requires_grad=True)
    F.ctc_loss(leaf, tensor(targets), tensor(il), tensor(tl), reduction="sum", **kw).backward()
    tolerance = CTC_TOLERANCE[np.dtype(dtype)]
    for backend in BACKENDS:
        result = losscli.compute("ctc", lp, targets, il, tl, reduction="none", backend=backend, **kw)
        assert_close(result.value, want, tolerance, f"backend={backend}: ctc")
        grad = losscli.compute("ctc", lp, targets, il, tl, reduction="sum", backend=backend,
                               outputs=losscli.Outputs(grad=True), **kw).grad
        assert_close(grad, leaf.grad.numpy(), tolerance, f"backend={backend}: d(ctc)/d(log_probs)")


def test_ctc_samples_of_a_batch_never_reach_each_other():
    """Each sample's loss and gradient in the batch are what it gets alone; a NaN, +inf or a finite number so
    large that the recursion overflows, in one sample's log_probs, stays in that sample, as in torch."""
    lp, targets, il, tl = mixed_ctc_batch(16, 5, 0, seed=3)
    batch = losscli.compute("ctc", lp, targets, il, tl, reduction="sum", outputs=losscli.Outputs(grad=True))
    values = losscli.compute("ctc", lp, targets, il, tl, reduction="none").value
    for n in range(lp.shape[1]):
        alone = losscli.compute("ctc", lp[:, n:n + 1], targets[n:n + 1], il[n:n + 1], tl[n:n + 1],
                                reduction="sum", outputs=losscli.Outputs(grad=True))
        np.testing.assert_allclose(values[n], alone.value, rtol=1e-12)
        np.testing.assert_allclose(batch.grad[:, n:n + 1], alone.grad, rtol=1e-12, atol=1e-15)
    spoiled = lp.copy()
    spoiled[3, 2, targets[2, 0]] = np.nan
    spoiled[5, 4, 0] = spoiled[2, 6, 0] = np.inf
    spoiled[4:6, 9] = 1e308
    want = F.ctc_loss(tensor(spoiled), tensor(targets), tensor(il), tensor(tl), reduction="none").numpy()
    got = losscli.compute("ctc", spoiled, targets, il, tl, reduction="none").value
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[2]) and not np.isfinite(got[9]) and np.all(got[[0, 3, 7, 8]] == values[[0, 3, 7, 8]])


def test_ctc_a_nan_behind_a_blocked_transition_stays_out_as_in_torch():
    """torch never reads the term of a blocked transition (from two states away into a repeated label): a NaN
    in log_probs that, at the last frames, has reached only the state behind one is not in the loss."""
    lp = log_softmax(np.random.default_rng(2).normal(size=(8, 1, 5)))
    lp[5, 0, 2] = np.nan  # label 2, before the repeated 3, three frames before the end
    args = (lp, np.array([[1, 2, 3, 3]]), np.array([8]), np.array([4]))
    want = F.ctc_loss(*(tensor(a) for a in args), reduction="none").numpy()
    assert np.isfinite(want).all()
    for backend in BACKENDS:
        got = losscli.compute("ctc", *args, reduction="none", backend=backend)
        np.testing.assert_allclose(got.value, want, rtol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 30.0, 3000.0])
def test_ctc_long_sequences_match_torch_however_far_apart_the_log_probs(scale):
    """Realistic lengths (T = 120, up to 40 labels) from log_softmax of logits of growing scale: at 3000 the
    log-probabilities reach -20000 (a very confident network), and the alignments' probabilities differ by
    far more than a float's range, which only a log-space recursion with the largest term taken out per state
    keeps (as torch's). float32 and float64, values and the gradient."""
    rng = np.random.default_rng(11)
    frames, samples, classes = 120, 6, 30
    lp = log_softmax(scale * rng.normal(size=(frames, samples, classes)))
    tl = rng.integers(0, 41, samples)
    targets = rng.integers(1, classes, (samples, 40))
    il = np.maximum(rng.integers(60, frames + 1, samples), 2 * tl + 1)
    il[0] = frames
    leaf = torch.tensor(lp, requires_grad=True)
    want = F.ctc_loss(leaf, tensor(targets), tensor(il), tensor(tl), reduction="none")
    want.sum().backward()
    for dtype in (np.float32, np.float64):
        got = losscli.compute("ctc", lp.astype(dtype), targets, il, tl, reduction="none",
                              outputs=losscli.Outputs(grad=True))
        want_value = F.ctc_loss(tensor(lp.astype(dtype)), tensor(targets), tensor(il), tensor(tl),
                                reduction="none").numpy()
        assert_close(got.value, want_value, CTC_TOLERANCE[np.dtype(dtype)], f"{dtype.__name__}: ctc")
        if dtype == np.float64:
            nll = want.detach().numpy()
            assert_close(got.value, nll, (1e-12, 0.0), "float64: ctc")
            # exp(lp) - exp(log Σ αβ + nll - lp): two numbers near 1 from sums of log-probabilities as large as
            # the loss, so either side's rounding is about eps·nll
            atol = 4 * np.finfo(np.float64).eps * max(1.0, float(np.max(nll)))
            assert_close(got.grad, leaf.grad.numpy(), (1e-9, atol), "float64: d(ctc)/d(log_probs)")


LP = log_softmax(np.random.default_rng(0).normal(size=(4, 2, 5)))
GOOD = dict(log_probs=LP, targets=np.array([[1, 2], [3, 0]]), input_lengths=np.array([4, 3]),
            target_lengths=np.array([2, 1]))


@pytest.mark.parametrize("change, kw, error, message", [
    (dict(input_lengths=np.array([4, 5])), {}, ValueDomainError,
     "input_lengths: expected input lengths of at most 4 (the frames of log_probs), but got 5 at index 1"),
    (dict(input_lengths=np.array([-1, 3])), {}, ValueDomainError,
     "input_lengths: expected lengths of 0 or more, but got -1 at index 0"),
    (dict(target_lengths=np.array([2, -2])), {}, ValueDomainError,
     "target_lengths: expected lengths of 0 or more, but got -2 at index 1"),
    (dict(target_lengths=np.array([3, 1])), {}, ValueDomainError,
     "target_lengths: expected target lengths of at most 2 (the columns of the padded targets), but got 3 at index 0"),
    (dict(targets=np.array([1, 2, 3, 4])), {}, ShapeError,
     "targets: expected the target lengths' sum, 3 concatenated labels, but got 4"),
    (dict(targets=np.array([[1, 0], [3, 0]])), {}, ValueDomainError,
     "targets: expected labels in [0, 5) other than the blank 0, but got 0 at index (0, 1)"),
    (dict(targets=np.array([1, 2, 0])), {"blank": 2}, ValueDomainError,
     "targets: expected labels in [0, 5) other than the blank 2, but got 2 at index 1"),
    (dict(targets=np.array([[1, 7], [3, 0]])), {}, ValueDomainError,
     "targets: expected labels in [0, 5) other than the blank 0, but got 7 at index (0, 1)"),
    (dict(targets=np.array([[1.0, 2.0], [3.0, 0.0]])), {}, ValueDomainError,
     "targets: expected integer labels, but got float64 values; save them as integers"),
    (dict(input_lengths=np.array([4.0, 3.0])), {}, ValueDomainError,
     "input_lengths: expected integer lengths, but got float64 values; save them as integers"),
    (dict(target_lengths=np.array([2, 1, 1])), {}, ShapeError,
     "target_lengths: expected one length per sample, shape (N,) = (2,), but got (3,)"),
    (dict(targets=np.array([[1, 2]])), {}, ShapeError,
     "targets: expected padded targets with one row per sample, (2, S), but got (1, 2)"),
    (dict(targets=np.zeros((2, 2, 1), int)), {}, ShapeError,
     "targets: expected targets of shape (N, S) padded or (Σ target_lengths,) concatenated, but got (2, 2, 1)"),
    (dict(log_probs=LP[0]), {}, ShapeError, None),  # (N, C) is unbatched (T=2, C=5): lengths (2,) do not fit
    (dict(log_probs=LP[..., None]), {}, ShapeError,
     "log_probs: expected log-probabilities of shape (T, N, C) or (T, C), but got (4, 2, 5, 1)"),
    (dict(log_probs=LP[:0]), {}, ShapeError,
     "log_probs: expected at least one frame, sample and class, but got shape (0, 2, 5)"),
    (dict(log_probs=LP.astype(np.float16)), {}, ValueDomainError,
     "log_probs: expected float32 or float64 log-probabilities (torch's ctc_loss takes no other on CPU), but got "
     "float16"),
    ({}, {"blank": 5}, OptionError, "blank: expected a class index in [0, 5), but got 5"),
    ({}, {"weight": np.ones(5)}, OptionError, "weight: ctc takes no weight"),
    ({}, {"mask": np.ones(3, bool)}, ShapeError, "mask: expected the loss's shape (2,), but got (3,)"),
])
def test_ctc_bad_input_is_a_one_line_error(change, kw, error, message):
    arrays = {**GOOD, **change}
    with pytest.raises(error) as info:
        losscli.compute("ctc", *arrays.values(), **kw)
    text = str(info.value)
    assert "\n" not in text
    if message is not None:
        assert text == message


def test_ctc_unbatched_concatenated_targets_say_how_to_pad():
    with pytest.raises(ShapeError, match=r"but got 3; pad them as \(1, S\)"):
        losscli.compute("ctc", LP[:, 0], np.array([1, 2, 3]), np.array(4), np.array(2))


# =============================================================================== linear-cross-entropy


def linear_autograd(c: LinearCase) -> tuple[np.ndarray, np.ndarray]:
    c = replace(c, **{k: getattr(c, k).astype(np.float64) for k in ("input", "linear_weight", "linear_bias",
                                                                     "weight", "target")
                      if getattr(c, k) is not None and getattr(c, k).dtype.kind == "f"})
    return leaf_grad(lambda x: linear_oracle(c, x), c.input)


def linear_dead_rows(c: LinearCase) -> np.ndarray:
    """Rows of the input (the user's layout) on which no element that counts depends: a plain 0 there."""
    loss_shape = c.input.shape[:-1] + c.linear_weight.shape[1:-1]
    keep = np.ones(loss_shape, bool) if c.mask is None else c.mask.astype(bool)
    if not c.probabilities:
        keep = keep & (c.target != c.params.get("ignore_index", -100))
    if c.input.ndim == 1:
        return np.broadcast_to(~keep, c.input.shape)
    rows = ~keep.reshape(len(c.input), math.prod(loss_shape[1:])).any(axis=1)
    return np.broadcast_to(rows[:, None], c.input.shape)


@st.composite
def linear_cases(draw, dtypes=FLOATS) -> LinearCase:
    """(N, H) and (H,) inputs, K-dimensional weights, H = 0, one class, bias, class weights, index targets
    with ignore_index (sometimes a real class) or probabilities, label smoothing, masks, reductions."""
    dtype = draw(st.sampled_from(dtypes))
    features, classes = draw(st.integers(0, 4)), draw(st.integers(1, 9))
    layout = draw(st.sampled_from(["batched", "batched", "unbatched", "k-dim"]))
    n = draw(st.sampled_from([1, 2, 3, 5, 0]))
    positions = draw(st.sampled_from([(2,), (2, 1), (1, 3)])) if layout == "k-dim" else ()
    in_shape = (features,) if layout == "unbatched" else (n, features)
    x = draw(arrays(dtype, in_shape, -2.0, 2.0))
    w = draw(arrays(dtype, (classes, *positions, features), -2.0, 2.0))
    bias = draw(st.none() | arrays(dtype, (classes, *positions), -1.0, 1.0))
    logits_shape = in_shape[:-1] + (classes, *positions)
    index_shape = in_shape[:-1] + positions
    params: dict[str, Any] = {"label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0]))}
    if draw(st.booleans()):  # class probabilities of the logits' shape
        y = draw(arrays(dtype, logits_shape, 0.0, 1.0))
        if draw(st.booleans()) and y.size:
            axis = 0 if layout == "unbatched" else 1
            y = softmax_of(y, axis, dtype)
        elif not draw(st.integers(0, 3)):  # torch's whole domain: any float target of the logits' shape
            y = draw(arrays(dtype, logits_shape, -2.0, 3.0))
    else:
        ignore_index = draw(st.sampled_from([-100, -1]) | st.integers(0, classes - 1))
        labels = st.integers(0, classes - 1) | st.just(ignore_index)
        y = draw(hnp.arrays(draw(st.sampled_from([np.int64, np.int32])), index_shape, elements=labels))
        if ignore_index != -100 or draw(st.booleans()):
            params["ignore_index"] = ignore_index
    # class weights of 0 or from 1e-3 on: a weight near float32's tiniest makes mean divide by ~1e-38, and the
    # gradient (terms of ~1e36 that cancel) is then rounding noise in torch as in losscli
    weight = draw(st.none() | arrays(dtype, (classes,), 0.0, 3.0).map(lambda w: np.where(w < 1e-3, 0, w).astype(w.dtype)))
    return LinearCase(x, w, y, linear_bias=bias, weight=weight, mask=draw(masks(index_shape)), params=params,
                      **draw(reductions()))


CHUNKINGS = st.tuples(st.sampled_from([1, 2, 3, 4096]), st.sampled_from([1, 5, 64, 1 << 18]))


def chunked(class_chunk: int, chunk_elements: int):
    return mock.patch.multiple(sequence, CLASS_CHUNK=class_chunk, CHUNK_ELEMENTS=chunk_elements)


@given(case=linear_cases(), chunking=CHUNKINGS)
def test_linear_cross_entropy_matches_torch(case, chunking):
    want = linear_oracle(case).numpy()
    tolerance = LINEAR_TOLERANCE[np.dtype(case.input.dtype)]
    for backend in BACKENDS:
        with chunked(*chunking):
            result = case.compute(backend)
        assert result.reduction.value == case.resolved and result.value.dtype == want.dtype
        assert_close(result.value, want, tolerance, f"backend={backend}: linear-cross-entropy differs from torch")


@given(case=linear_cases(), chunking=CHUNKINGS)
def test_linear_cross_entropy_gradient_matches_autograd(case, chunking):
    value, want = linear_autograd(case)
    tolerance = LINEAR_TOLERANCE[np.dtype(case.input.dtype)]
    for backend in BACKENDS:
        with chunked(*chunking):
            result = case.compute(backend, outputs=losscli.Outputs(grad=True))
        assert result.grad.shape == case.input.shape and result.grad.dtype == case.input.dtype
        if backend == "torch" and case.resolved == "none" and case.mask is not None:
            continue  # torch.where's backward: -0.0 where masked out (tests/test_grad.py pins that)
        assert_close(result.grad, want, tolerance, f"backend={backend}: d/d(input) differs from autograd")
        dead = result.grad[linear_dead_rows(case)]
        assert np.all(dead == 0), (backend, dead)
        # numpy: a plain 0. torch's own linear backward multiplies a 0 grad by linear_weight: -0.0 under a
        # column of weights <= 0, for ignored rows too; the torch backend reports torch's answer
        assert backend == "torch" or not np.any(np.signbit(dead)), dead


def linear_loss_sum(c: LinearCase, x: np.ndarray) -> float:
    with torch.no_grad():
        return float(linear_oracle(c, torch.from_numpy(x)).sum())


@given(case=linear_cases(dtypes=(np.float64,)), data=st.data())
def test_linear_cross_entropy_gradient_equals_central_differences(case, data):
    f0 = linear_loss_sum(case, case.input)
    assume(np.isfinite(f0) and case.input.size)
    points = data.draw(st.lists(st.integers(0, case.input.size - 1), min_size=1, max_size=3, unique=True))
    differences = central_differences(lambda x: linear_loss_sum(case, x), case.input, points)
    with chunked(2, 5):
        grad = case.compute("numpy", outputs=losscli.Outputs(grad=True)).grad.reshape(-1)[points]
    np.testing.assert_allclose(grad, differences, rtol=1e-5, atol=1e-7 * (1 + abs(f0)))


@given(case=linear_cases(dtypes=(np.float64,)))
def test_linear_cross_entropy_does_not_depend_on_the_chunk_size(case):
    results = []
    for chunking in ((1, 1), (2, 3), (3, 7), (4096, 1 << 18)):
        with chunked(*chunking):
            results.append(case.compute("numpy", outputs=losscli.Outputs(grad=True)))
    for other in results[1:]:
        np.testing.assert_allclose(other.value, results[0].value, rtol=1e-12, atol=1e-13, equal_nan=True)
        np.testing.assert_allclose(other.grad, results[0].grad, rtol=1e-12, atol=1e-13, equal_nan=True)


def test_linear_cross_entropy_never_holds_the_logits_whole():
    """64 rows × 20000 classes of float64 logits would be 10 MB; in chunks of 1000 classes × 4 rows the
    numpy backend's value and gradient stay far below that."""
    rng = np.random.default_rng(9)
    x, w = rng.normal(size=(64, 4)), rng.normal(size=(20000, 4))
    t = rng.integers(0, 20000, size=64)
    whole = 64 * 20000 * 8
    with chunked(1000, 4000):
        tracemalloc.start()
        result = losscli.compute("linear-cross-entropy", x, w, t, label_smoothing=0.1, outputs=losscli.Outputs(grad=True))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < whole / 4, peak
    want = F.cross_entropy(tensor(x) @ tensor(w).T, tensor(t), label_smoothing=0.1)
    np.testing.assert_allclose(result.item(), want.item(), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_cross_entropy_is_cross_entropy_of_the_logits(backend):
    """The same numbers as losscli's cross-entropy on logits formed whole (ignore_index, weights, smoothing)."""
    rng = np.random.default_rng(12)
    x, w, b = rng.normal(size=(6, 3)), rng.normal(size=(7, 3)), rng.normal(size=7)
    t, cw = np.array([0, 6, -100, 3, 3, 1]), rng.uniform(0.5, 2, 7)
    options = dict(weight=cw, label_smoothing=0.2, reduction="mean", backend=backend)
    linear = losscli.compute("linear-cross-entropy", x, w, t, linear_bias=b, **options)
    plain = losscli.compute("cross-entropy", x @ w.T + b, t, **options)
    np.testing.assert_allclose(linear.value, plain.value, rtol=1e-12)
    assert [i.role for i in linear.inputs] == ["input", "linear_weight", "target", "linear_bias", "weight"]


X, W = np.ones((3, 2)), np.ones((4, 2))


@pytest.mark.parametrize("args, kw, error, message", [
    ((np.ones((2, 3, 2)), W, np.zeros((2, 3), int)), {}, ShapeError,
     "input: expected features of shape (N, H) or (H,), but got (2, 3, 2)"),
    ((X, np.ones(2), np.zeros(3, int)), {}, ShapeError,
     "linear_weight: expected a weight of shape (C, H) or (C, d1, ..., H), but got (2,)"),
    ((X, np.ones((4, 3)), np.zeros(3, int)), {}, ShapeError,
     "linear_weight: expected 2 input features in its last axis, as the input has, but got shape (4, 3)"),
    ((X, np.ones((0, 2)), np.zeros(3, int)), {}, ShapeError,
     "linear_weight: expected at least one class, but got shape (0, 2)"),
    ((np.ones(2), np.ones((4, 3, 2)), np.zeros(3, int)), {}, ShapeError,
     "input: expected batched features (N, 2) with a K-dimensional linear_weight (4, 3, 2), but got (2,)"),
    ((X, W, np.zeros(3, int)), {"linear_bias": np.ones(3)}, ShapeError,
     "linear_bias: expected one bias per logit, shape (4,), but got (3,)"),
    ((X, W, np.zeros((3, 2), int)), {}, ShapeError,
     "target: expected class indices of shape (3,) (or class probabilities of the logits' shape (3, 4)), but "
     "got (3, 2)"),
    ((X, W, np.array([0, 4, 1])), {}, ValueDomainError,
     "target: expected class indices in [0, 4) or ignore_index -100, but got 4 at index 1"),
    ((X, W, np.array([0.0, 1.0, 1.0])), {}, ValueDomainError,
     "target: expected integer class indices, but got float64 values; save them as integers (float targets are "
     "class probabilities, of the logits' shape (3, 4))"),
    ((X, W, np.zeros((3, 4), np.int32)), {}, ValueDomainError,
     "target: expected floating point class probabilities for a target of the logits' shape (3, 4), but got int32 "
     "values (torch refuses them too); save class indices with shape (3,), or probabilities as floats"),
    ((X, W, np.full((3, 4), 0.25)), {"ignore_index": 1}, OptionError,
     "ignore_index: expected the default -100 with class-probability targets (nothing is ignored there), but "
     "got 1"),
    ((X, W, np.zeros(3, int)), {"label_smoothing": 1.5}, OptionError,
     "label_smoothing: expected a value of 1 or less, but got 1.5"),
    ((X, W, np.zeros(3, int)), {"weight": np.ones(3)}, ShapeError,
     "weight: expected one weight per class, shape (4,), but got (3,)"),
    ((X, W, np.zeros(3, int)), {"broadcast": True}, OptionError,
     "broadcast: linear-cross-entropy does not broadcast (torch requires matching shapes)"),
    ((X, W, np.zeros(3, int)), {"pos_weight": np.ones(4)}, OptionError,
     "pos_weight: linear-cross-entropy takes no pos_weight"),
])
def test_linear_cross_entropy_bad_input_is_a_one_line_error(args, kw, error, message):
    with pytest.raises(error) as info:
        losscli.compute("linear-cross-entropy", *args, **kw)
    assert str(info.value) == message


def test_torch_refuses_integer_targets_of_the_logits_shape():
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class probabilities"):
        F.linear_cross_entropy(torch.tensor(X), torch.tensor(W), torch.zeros((3, 4), dtype=torch.int32))
    for backend in ("numpy", "torch"):
        with pytest.raises(ValueDomainError, match="^target: expected floating point class probabilities"):
            losscli.compute("linear-cross-entropy", X, W, np.zeros((3, 4), np.int64), backend=backend)


def test_linear_cross_entropy_refuses_ctcs_options_and_ctc_refuses_linear_bias():
    with pytest.raises(OptionError, match="blank: linear-cross-entropy takes ignore_index, label_smoothing"):
        losscli.compute("linear-cross-entropy", X, W, np.zeros(3, int), blank=1)
    with pytest.raises(OptionError, match="linear_bias: ctc takes no linear_bias"):
        losscli.compute("ctc", *GOOD.values(), linear_bias=np.ones(5))


# ================================================================================================ CLI

runner = CliRunner()
SAMPLES = ROOT / "samples" / "sequence"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def samples_ctc_torch(reduction: str = "mean", **kw) -> torch.Tensor:
    lp = torch.from_numpy(np.load(SAMPLES / "log_probs.npy"))
    targets = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 1, 0]])  # samples/sequence/targets.csv
    return F.ctc_loss(lp, targets, torch.tensor([12, 7, 10]), torch.tensor([4, 2, 3]), reduction=reduction, **kw)


@pytest.mark.parametrize("targets", ["targets.csv", "targets_concat.npy"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_ctc_json_is_torchs_value(targets, backend):
    result = invoke("ctc", SAMPLES / "log_probs.npy", SAMPLES / targets, f"{SAMPLES / 'lengths.csv'}:input",
                    f"{SAMPLES / 'lengths.csv'}:target", "--format", "json", "--backend", backend)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["loss"] == "ctc" and out["torch"] == "torch.nn.functional.ctc_loss" and out["dtype"] == "float32"
    assert out["parameters"] == {"blank": 0, "zero_infinity": False} and out["count"] == 3
    assert [i["role"] for i in out["inputs"]] == ["log_probs", "targets", "input_lengths", "target_lengths"]
    np.testing.assert_allclose(out["value"], samples_ctc_torch().item(), rtol=1e-6)


def test_cli_ctc_zero_infinity_grad_and_mask(tmp_path):
    np.savetxt(tmp_path / "mask.csv", [1, 0, 1], fmt="%d")
    np.savetxt(tmp_path / "short.csv", [12, 3, 10], fmt="%d")  # sample 1: 2 labels in 3 frames is fine
    np.savetxt(tmp_path / "shorter.csv", [3, 7, 10], fmt="%d")  # sample 0: 4 labels, a repeat, 3 frames: inf
    common = [SAMPLES / "log_probs.npy", SAMPLES / "targets.csv"]
    result = invoke("ctc", *common, tmp_path / "shorter.csv", f"{SAMPLES / 'lengths.csv'}:target", "--format",
                    "json", "--zero-infinity", "--reduction", "none", "--grad", tmp_path / "g.npy")
    assert result.exit_code == 0, result.stderr
    assert "cannot be aligned" in result.stderr and "--zero-infinity makes it 0" in result.stderr
    lp = torch.from_numpy(np.load(SAMPLES / "log_probs.npy")).requires_grad_(True)
    want = F.ctc_loss(lp, torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 1, 0]]), torch.tensor([3, 7, 10]),
                      torch.tensor([4, 2, 3]), reduction="none", zero_infinity=True)
    want.sum().backward()
    np.testing.assert_allclose(json.loads(result.stdout)["value"], want.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), lp.grad.numpy(), rtol=1e-4, atol=1e-6)
    masked = invoke("ctc", *common, tmp_path / "short.csv", f"{SAMPLES / 'lengths.csv'}:target", "--mask",
                    tmp_path / "mask.csv", "--format", "json")
    assert masked.exit_code == 0, masked.stderr
    np.testing.assert_allclose(json.loads(masked.stdout)["value"], samples_ctc_torch("none")[[0, 2]].div(
        torch.tensor([4.0, 3.0])).mean().item(), rtol=1e-6)
    assert json.loads(masked.stdout)["selected"] == 2


def test_cli_ctc_bad_lengths_is_one_line_exit_2(tmp_path):
    np.savetxt(tmp_path / "long.csv", [13, 7, 10], fmt="%d")
    result = invoke("ctc", SAMPLES / "log_probs.npy", SAMPLES / "targets.csv", tmp_path / "long.csv",
                    f"{SAMPLES / 'lengths.csv'}:target")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: input_lengths ({tmp_path / 'long.csv'}): expected input lengths of at most 12 (the "
                     "frames of log_probs), but got 13 at index 0"], result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_linear_cross_entropy_json_and_grad_are_torchs(tmp_path, backend):
    result = invoke("linear-cross-entropy", SAMPLES / "hidden.npy", SAMPLES / "vocab_weight.npy",
                    SAMPLES / "next_tokens.csv", "--linear-bias", SAMPLES / "vocab_bias.npy", "--label-smoothing",
                    "0.1", "--format", "json", "--grad", tmp_path / "g.npy", "--backend", backend)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    bias = [i for i in out["inputs"] if i["role"] == "linear_bias"]
    assert [b["shape"] for b in bias] == [[50]] and out["parameters"]["label_smoothing"] == 0.1
    x = torch.from_numpy(np.load(SAMPLES / "hidden.npy")).requires_grad_(True)
    tokens = np.loadtxt(SAMPLES / "next_tokens.csv", skiprows=1, dtype=np.int64)
    weight, bias = (torch.from_numpy(np.load(SAMPLES / name)) for name in ("vocab_weight.npy", "vocab_bias.npy"))
    want = F.linear_cross_entropy(x, weight, torch.from_numpy(tokens), linear_bias=bias, label_smoothing=0.1)
    want.backward()
    np.testing.assert_allclose(out["value"], want.item(), rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), x.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("command, flags", [("ctc", ["--blank", "--zero-infinity"]),
                                            ("linear-cross-entropy", ["--linear-bias", "--weight", "--ignore-index",
                                                                      "--label-smoothing"])])
def test_cli_help_and_list(command, flags):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.stderr
    for flag in flags:
        assert flag in result.stdout
    listing = invoke("list")
    assert listing.exit_code == 0 and command in listing.stdout


def test_cli_linear_bias_is_an_option_not_a_position():
    result = invoke("linear-cross-entropy", SAMPLES / "hidden.npy", SAMPLES / "vocab_weight.npy",
                    SAMPLES / "next_tokens.csv", SAMPLES / "vocab_bias.npy")
    assert result.exit_code == 2 and "error:" in result.stderr
