"""Small examples with the arithmetic written out by hand; torch must agree with the hand numbers too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losscli
from losscli.errors import ShapeError

BACKENDS = ("numpy", "torch")


def t(array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array))


def value(*args, backend: str, **kwargs) -> float:
    return losscli.compute(*args, backend=backend, **kwargs).item()


# 1. A mask selects: mean divides by what is selected, not by the array's size -----------------------

INPUTS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
TARGETS = np.array([[2.0, 3.0, 4.0], [3.0, 4.0, 5.0]])
MASK = np.array([[1, 0, 1], [0, 1, 1]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_mse_divides_by_the_selected_count(backend):
    # differences: [[-1, -1, -1], [1, 1, 1]], all squares 1; four of them are selected
    masked_mean = (1 + 1 + 1 + 1) / 4
    assert masked_mean == 1.0
    # the "tutorial" way: multiply both by the mask, then a plain mean over all six entries
    tutorial = np.mean((INPUTS * MASK - TARGETS * MASK) ** 2)
    assert tutorial == pytest.approx(4 / 6) and tutorial == pytest.approx(0.6667, abs=1e-4)

    m = t(MASK.astype(bool))
    assert F.mse_loss(t(INPUTS)[m], t(TARGETS)[m]).item() == masked_mean  # torch: a mask is slicing
    assert F.mse_loss(t(INPUTS * MASK), t(TARGETS * MASK)).item() == pytest.approx(tutorial)

    assert value("mse", INPUTS, TARGETS, mask=MASK, backend=backend) == masked_mean
    assert value("mse", INPUTS, TARGETS, mask=MASK, reduction="sum", backend=backend) == 4.0
    none = losscli.compute("mse", INPUTS, TARGETS, mask=MASK, reduction="none", backend=backend).value
    np.testing.assert_array_equal(none, [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


# 2. Sum and mean of squares over a 3-d array ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_of_zeros_against_1_to_9_and_11_to_19(backend):
    inputs = np.zeros((2, 3, 3))
    targets = np.array([list(range(1, 10)), list(range(11, 20))], dtype=np.float64).reshape(2, 3, 3)
    first = 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64 + 81  # Σ k², k = 1..9
    second = 121 + 144 + 169 + 196 + 225 + 256 + 289 + 324 + 361  # Σ k², k = 11..19
    assert (first, second) == (285, 2085)
    total = first + second
    assert total == 2370

    assert F.mse_loss(t(inputs), t(targets), reduction="sum").item() == total
    assert F.mse_loss(t(inputs), t(targets)).item() == pytest.approx(total / 18, rel=1e-15)

    assert value("mse", inputs, targets, reduction="sum", backend=backend) == total
    assert value("mse", inputs, targets, backend=backend) == pytest.approx(total / 18, rel=1e-15)
    assert value("mse", inputs, targets, backend=backend) == pytest.approx(131.6667, abs=1e-4)


# 3. A 3x3 matrix against the identity -----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_against_the_identity(backend):
    inputs = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0], [3.0, 1.0, 2.0]])
    identity = np.eye(3)
    # differences [[0, 2, 3], [2, 0, 3], [3, 1, 1]]; squares (0+4+9) + (4+0+9) + (9+1+1)
    total = (0 + 4 + 9) + (4 + 0 + 9) + (9 + 1 + 1)
    assert total == 37

    assert F.mse_loss(t(inputs), t(identity), reduction="sum").item() == total
    assert F.mse_loss(t(inputs), t(identity)).item() == pytest.approx(37 / 9, rel=1e-15)

    assert value("mse", inputs, identity, reduction="sum", backend=backend) == total
    assert value("mse", inputs, identity, backend=backend) == pytest.approx(37 / 9, rel=1e-15)


# 4. BCE weights broadcast to the input, as torch broadcasts them ----------------------------------------

BCE_X = np.linspace(0.05, 0.95, 20).reshape(4, 5)
BCE_Y = np.array([[1.0, 0.0, 1.0, 0.0, 1.0]] * 4)


def bce_by_hand(weight: np.ndarray) -> np.ndarray:
    """l = -w·(y·log x + (1-y)·log(1-x)), the weight expanded to (4, 5)."""
    w = np.broadcast_to(weight, (4, 5))
    return -w * (BCE_Y * np.log(BCE_X) + (1 - BCE_Y) * np.log(1 - BCE_X))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(4, 1), (5,), (1, 5), (4, 5)])
def test_bce_weights_that_broadcast(shape, backend):
    weight = np.arange(1, math.prod(shape) + 1, dtype=np.float64).reshape(shape) / 4
    by_hand = bce_by_hand(weight)
    for reduction, expected in (("none", by_hand), ("sum", by_hand.sum()), ("mean", by_hand.sum() / 20)):
        torch_says = F.binary_cross_entropy(t(BCE_X), t(BCE_Y), weight=t(weight), reduction=reduction)
        np.testing.assert_allclose(torch_says.numpy(), expected, rtol=1e-12)
        got = losscli.compute("bce", BCE_X, BCE_Y, weight=weight, reduction=reduction, backend=backend).value
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bce_weight_of_shape_4_does_not_broadcast_to_4_by_5():
    with pytest.raises(RuntimeError):  # (4,) lines up with the 5 columns: torch refuses it too
        F.binary_cross_entropy(t(BCE_X), t(BCE_Y), weight=t(np.ones(4)))
    with pytest.raises(ShapeError, match=r"^weight: .*\(4, 5\), but got \(4,\)"):
        losscli.compute("bce", BCE_X, BCE_Y, weight=np.ones(4))


# 5. Cross-entropy with class weights: mean = Σ w[t]·l / Σ w[t]; ignore_index counts for nothing ---------

LN3 = math.log(3)
# softmax([0, 0]) = [1/2, 1/2]; softmax([ln 3, 0]) = [3/4, 1/4]
LOGITS = np.array([[0.0, 0.0], [LN3, 0.0], [LN3, 0.0], [0.0, 0.0]])
CLASS_WEIGHTS = np.array([1.0, 3.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_class_weights_and_an_ignored_row(backend):
    labels = np.array([0, 1, 0, -100])  # the last row is ignored (ignore_index -100)
    losses = [math.log(2), math.log(4), math.log(4 / 3)]  # -log p[t] of the first three rows
    w_t = [1.0, 3.0, 1.0]  # CLASS_WEIGHTS[labels]
    total = sum(w * l for w, l in zip(w_t, losses))  # = 9·ln 2 - ln 3
    assert total == pytest.approx(9 * math.log(2) - LN3, rel=1e-15)
    mean = total / sum(w_t)  # / 5, not / 3 and not / 4

    def torch_ce(reduction):
        return F.cross_entropy(t(LOGITS), t(labels), weight=t(CLASS_WEIGHTS), reduction=reduction)

    assert torch_ce("mean").item() == pytest.approx(mean, rel=1e-14)
    assert torch_ce("sum").item() == pytest.approx(total, rel=1e-14)
    np.testing.assert_allclose(torch_ce("none").numpy(), [w * l for w, l in zip(w_t, losses)] + [0.0], rtol=1e-14)

    kw = dict(weight=CLASS_WEIGHTS, backend=backend)
    assert value("cross-entropy", LOGITS, labels, **kw) == pytest.approx(mean, rel=1e-14)
    assert value("cross-entropy", LOGITS, labels, reduction="sum", **kw) == pytest.approx(total, rel=1e-14)
    none = losscli.compute("cross-entropy", LOGITS, labels, reduction="none", **kw).value
    np.testing.assert_allclose(none, [w * l for w, l in zip(w_t, losses)] + [0.0], rtol=1e-14)

    # a mask over the same rows does what ignore_index does: masking out row 1 leaves (ln 2 + ln 4/3) / 2
    masked = value("cross-entropy", LOGITS, labels, mask=[1, 0, 1, 1], **kw)
    assert masked == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-14)
    # nll of log-probabilities is the same arithmetic
    log_probs = np.log(np.array([[0.5, 0.5], [0.75, 0.25], [0.75, 0.25], [0.5, 0.5]]))
    assert value("nll", log_probs, labels, **kw) == pytest.approx(mean, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_an_ignore_index_that_is_a_class(backend):
    labels = np.array([0, 1, 0, 0])  # ignore_index=1: row 1 counts for nothing
    losses = [math.log(2), math.log(4 / 3), math.log(2)]  # rows 0, 2, 3
    assert F.cross_entropy(t(LOGITS), t(labels), ignore_index=1).item() == pytest.approx(sum(losses) / 3)
    got = value("cross-entropy", LOGITS, labels, ignore_index=1, backend=backend)
    assert got == pytest.approx(sum(losses) / 3, rel=1e-14)
    # with class weights w[0] = 1 for every row that counts, the weighted mean is the same number
    assert value("cross-entropy", LOGITS, labels, ignore_index=1, weight=CLASS_WEIGHTS,
                 backend=backend) == pytest.approx(sum(losses) / 3, rel=1e-14)
