"""Binary cross-entropies: bce (of probabilities) and bce-with-logits.

Element-wise losses of input and target of one shape (torch refuses others, so there is no --broadcast).
Element weights and bce-with-logits' ``pos_weight`` broadcast to the loss's shape; ``mean`` divides by the
element count whatever the weights, as torch does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError, ValueDomainError
from .base import Arg, LossSpec, first, offending, shape_str
from .regression import Elementwise, _weighted, elementwise_grad

ELEMENT_WEIGHT_HELP = "element weights (FILE), broadcast to the input's shape"


class Binary(Elementwise):
    """Binary cross-entropies: target and input of one shape (torch refuses otherwise), weight and
    pos_weight broadcast to it, ``mean`` divides by the element count whatever the weights."""

    broadcasts = False
    shapes = "input and target of one shape"

    def layout(self, spec, args, params, broadcast):
        x, y = args["input"].array, args["target"].array
        if x.shape != y.shape:
            raise ShapeError(
                f"{args['target'].label}: expected the input's shape {shape_str(x.shape)}, but got "
                f"{shape_str(y.shape)} ({spec.name} never broadcasts: torch requires equal sizes)"
            )
        return super().layout(spec, args, params, broadcast=False)

    def classes(self, spec, batch):
        x = batch.arrays["input"]
        if x.ndim < 2:
            return None  # one label per sample: no label columns
        return np.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2)), x.shape[1]


def check_probabilities(args: dict[str, Arg], arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
    """bce's input: probabilities in [0, 1] (torch rejects anything else, NaN included)."""
    x = arrays["input"]
    bad = ~((x >= 0) & (x <= 1))
    where = first(bad)
    if where is not None:
        raise ValueDomainError(
            f"{args['input'].label}: expected probabilities in [0, 1], but got "
            f"{offending(x, where, args['input'])} (use bce-with-logits for logits)"
        )


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log σ(x) = min(x, 0) - log1p(exp(-|x|)), without overflow for either sign."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(log_sigmoid(x))


def _bce(a: dict[str, np.ndarray]) -> np.ndarray:
    x, y = a["input"], a["target"]
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped at -100 as torch does
        return (y - 1) * np.maximum(np.log1p(-x), -100.0) - y * np.maximum(np.log(x), -100.0)


BCE_GRAD_EPSILON = float(np.float32(1e-12))  # 9.999999960041972e-13


def _bce_grad(a: dict[str, np.ndarray]) -> np.ndarray:
    x, y = a["input"], a["target"]
    # torch's binary_cross_entropy_backward clamps at EPSILON = 1e-12 as a float32 constant, also for float64
    return (x - y) / np.maximum((1 - x) * x, BCE_GRAD_EPSILON)


def _log_weight(a: dict[str, np.ndarray]) -> np.ndarray | float:
    """``1 + (pos_weight - 1)·y``: how much a positive target's term counts."""
    pw = a.get("pos_weight")
    return 1.0 if pw is None else 1 + (pw - 1) * a["target"]


def _bce_with_logits_grad(a: dict[str, np.ndarray]) -> np.ndarray:
    x, y = a["input"], a["target"]
    return (1 - y) - _log_weight(a) * (1 - sigmoid(x))


def _bce_with_logits(a: dict[str, np.ndarray]) -> np.ndarray:
    x, y = a["input"], a["target"]
    return (1 - y) * x - _log_weight(a) * log_sigmoid(x)


BCE = LossSpec(
    name="bce",
    torch_name="binary_cross_entropy",
    summary="Binary cross-entropy of probabilities.",
    formula="l = -w·(y·max(log x, -100) + (1-y)·max(log(1-x), -100))  (x: probabilities in [0, 1])",
    mean_rule="n elements, with or without --weight",
    family=Binary(),
    numpy=lambda a, p, b: _weighted(_bce(a), a, weighted_mean=False),
    grad=lambda a, p, b, c: elementwise_grad(a, c, _bce_grad(a)),
    torch=lambda F, t, p, r: F.binary_cross_entropy(t["input"], t["target"], weight=t.get("weight"),
                                                    reduction=r),
    weight_help=ELEMENT_WEIGHT_HELP,
    check=check_probabilities,
    example="losscli bce samples/binary/probs.npy samples/binary/targets.npy",
)

BCE_WITH_LOGITS = LossSpec(
    name="bce-with-logits",
    torch_name="binary_cross_entropy_with_logits",
    summary="Binary cross-entropy of logits (sigmoid built in, numerically stable).",
    formula="l = -w·(p·y·log σ(x) + (1-y)·log(1-σ(x)))  (p: --pos-weight, 1 by default)",
    mean_rule="n elements, with or without --weight",
    family=Binary(),
    numpy=lambda a, p, b: _weighted(_bce_with_logits(a), a, weighted_mean=False),
    grad=lambda a, p, b, c: elementwise_grad(a, c, _bce_with_logits_grad(a)),
    torch=lambda F, t, p, r: F.binary_cross_entropy_with_logits(
        t["input"], t["target"], weight=t.get("weight"), pos_weight=t.get("pos_weight"), reduction=r),
    weight_help=ELEMENT_WEIGHT_HELP,
    pos_weight=True,
    example="losscli bce-with-logits samples/binary/logits.npy samples/binary/targets.npy "
    "--pos-weight samples/binary/pos_weight.npy",
)

LOSSES = (BCE, BCE_WITH_LOGITS)
