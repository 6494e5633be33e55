"""Classification losses: nll and cross-entropy over class scores, bce and bce-with-logits per element.

Class losses read input ``(N, C, d1, ...)`` (or ``(C,)``) and class-index targets ``(N, d1, ...)``;
cross-entropy also reads class probabilities of the input's shape. With class weights ``w`` (shape
``(C,)``) an element's loss is scaled by ``w[target]`` and ``mean`` divides by ``Σ w[target]`` over the
targets that count (not ``ignore_index``, not masked out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..reduction import Elements
from .families import Binary, Classes, check_probabilities
from .regression import _weighted, elementwise_grad
from .spec import Batch, LossSpec, Option, TargetKind

CLASS_WEIGHT_HELP = "class weights (FILE), shape (C,)"
ELEMENT_WEIGHT_HELP = "element weights (FILE), broadcast to the input's shape"
IGNORE_INDEX = Option("ignore_index", int, -100, "class index whose targets count for nothing")


FEW_CLASSES = 32  # up to this many, log_softmax works class-major


def log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis``, shifted by the max for stability. Few classes are computed
    class-major (a copy with the class axis first): numpy reduces a short innermost axis several times
    slower than it adds whole rows."""
    if x.ndim > 1 and x.shape[axis] <= FEW_CLASSES:
        major = np.moveaxis(x, axis, 0).copy()
        major -= major.max(axis=0)
        major -= np.log(np.exp(major).sum(axis=0))
        return np.moveaxis(major, 0, axis)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log σ(x) = min(x, 0) - log1p(exp(-|x|)), without overflow for either sign."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(log_sigmoid(x))


def _class_weights_along(w: np.ndarray, ndim: int) -> np.ndarray:
    """Class weights shaped to broadcast along axis 1 of an ``ndim``-dimensional array."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _from_log_probs(logp: np.ndarray, a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch) -> Elements:
    """nll of log-probabilities (N, C, ...), with cross-entropy's label smoothing when asked.

    Index targets: ``l = (1-ε)·w[t]·(-logp[t]) + ε/C·Σ_c w_c·(-logp[c])``, mean divides by ``Σ w[t]``.
    Probability targets y: ``l = -Σ_c w_c·y'_c·logp[c]`` with ``y' = (1-ε)·y + ε/C``, mean divides by n.
    """
    eps, classes, w = p.get("label_smoothing", 0.0), logp.shape[1], a.get("weight")
    w_along = None if w is None else _class_weights_along(w, logp.ndim)
    if batch.target_kind is TargetKind.prob:
        y = a["target"]
        if eps:
            y = y * (1 - eps) + eps / classes
        terms = logp * y if w_along is None else logp * y * w_along
        return Elements(-terms.sum(axis=1))
    t = a["target"]
    valid = t != p["ignore_index"]
    safe = np.where(valid, t, 0)
    picked = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    w_t = None if w is None else w[safe]
    values = picked if w_t is None else w_t * picked
    if eps:
        smooth = -(logp if w_along is None else logp * w_along).sum(axis=1)
        values = (1 - eps) * values + eps / classes * smooth
    denom = None if w_t is None else np.where(valid, w_t, 0.0)
    return Elements(np.where(valid, values, 0.0), denom=denom, valid=valid)


def _grad_log_probs(logp: np.ndarray, a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch,
                    coef: np.ndarray) -> np.ndarray:
    """d(loss)/d(log-probabilities) for :func:`_from_log_probs`, each element's loss receiving ``coef``."""
    eps, classes, w = p.get("label_smoothing", 0.0), logp.shape[1], a.get("weight")
    w_along = 1.0 if w is None else _class_weights_along(w, logp.ndim)
    coef = coef[:, None]
    if batch.target_kind is TargetKind.prob:
        y = a["target"]
        if eps:
            y = y * (1 - eps) + eps / classes
        return -coef * y * w_along
    t = a["target"]
    safe = np.where(t != p["ignore_index"], t, 0)[:, None]  # ignored elements have coef 0
    w_t = 1.0 if w is None else w[safe]
    grad = np.zeros_like(logp) if not eps else np.broadcast_to(-coef * eps / classes * w_along, logp.shape).copy()
    picked = np.take_along_axis(grad, safe, axis=1) - coef * (1 - eps) * w_t
    np.put_along_axis(grad, safe, picked, axis=1)
    return grad


def _grad_through_log_softmax(x: np.ndarray, grad_logp: np.ndarray) -> np.ndarray:
    """The chain rule through log_softmax along axis 1: g - softmax(x)·Σ_c g_c."""
    return grad_logp - np.exp(log_softmax(x)) * grad_logp.sum(axis=1, keepdims=True)


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


NLL = LossSpec(
    name="nll",
    torch_name="nll_loss",
    summary="Negative log-likelihood of log-probabilities.",
    formula="l = -w[t]·input[t]  (input: log-probabilities (N, C, d1, ...); t: class indices (N, d1, ...))",
    mean_rule="Σ w[t] over targets that count (n of them without --weight)",
    family=Classes(probabilities=False),
    numpy=lambda a, p, b: _from_log_probs(a["input"], a, p, b),
    grad=lambda a, p, b, c: _grad_log_probs(a["input"], a, p, b, c),
    torch=lambda F, t, p, r: F.nll_loss(t["input"], t["target"], weight=t.get("weight"),
                                        ignore_index=p["ignore_index"], reduction=r),
    options=(IGNORE_INDEX,),
    weight_help=CLASS_WEIGHT_HELP,
    example="losscli nll samples/classification/log_probs.npy samples/classification/labels.csv",
)

CROSS_ENTROPY = LossSpec(
    name="cross-entropy",
    torch_name="cross_entropy",
    summary="Cross-entropy of logits against class indices or class probabilities.",
    formula="l = -Σ_c w_c·y_c·log_softmax(input)_c  (y: one-hot of t, or probabilities; smoothed by ε)",
    mean_rule="index targets: Σ w[t] over targets that count; probability targets: n samples",
    family=Classes(probabilities=True),
    numpy=lambda a, p, b: _from_log_probs(log_softmax(a["input"]), a, p, b),
    grad=lambda a, p, b, c: _grad_through_log_softmax(
        a["input"], _grad_log_probs(log_softmax(a["input"]), a, p, b, c)),
    torch=lambda F, t, p, r: F.cross_entropy(t["input"], t["target"], weight=t.get("weight"),
                                             ignore_index=p["ignore_index"], reduction=r,
                                             label_smoothing=p["label_smoothing"]),
    options=(
        IGNORE_INDEX,
        Option("label_smoothing", float, 0.0, "ε in [0, 1]: mix the target with the uniform distribution"),
        Option("target_kind", TargetKind, TargetKind.auto,
               "auto: probabilities when target and input shapes match (torch's rule), else indices"),
    ),
    weight_help=CLASS_WEIGHT_HELP,
    example="losscli cross-entropy samples/classification/logits.npy samples/classification/labels.csv",
)

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

LOSSES = (NLL, CROSS_ENTROPY, BCE, BCE_WITH_LOGITS)
