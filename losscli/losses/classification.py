"""Classification losses: nll and cross-entropy over class scores (bce and bce-with-logits: :mod:`.binary`).

Class losses read input ``(N, C, d1, ...)`` (or ``(C,)``) and class-index targets ``(N, d1, ...)``;
cross-entropy also reads class probabilities of the input's shape. With class weights ``w`` (shape
``(C,)``) an element's loss is scaled by ``w[target]`` and ``mean`` divides by ``Σ w[target]`` over the
targets that count (not ``ignore_index``, not masked out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements
from .base import (Arg, Batch, Domain, Family, Layout, LossSpec, Option, TargetKind, as_int64, class_weight, first,
                   float_dtype, numeric, offending, shape_str)

CLASS_WEIGHT_HELP = "class weights (FILE), shape (C,)"
IGNORE_INDEX = Option("ignore_index", int, -100, "class index whose targets count for nothing")


class Classes(Family):
    """nll and cross-entropy: input ``(N, C, d1, ...)`` or ``(C,)``; target class indices of shape
    ``(N, d1, ...)`` (or ``()``), or for cross-entropy class probabilities of the input's shape."""

    stream_rank = 2  # (N, C, ...): rows are samples; a (C,) input is one sample
    shared_files = ("weight",)

    def __init__(self, probabilities: bool):
        self.probabilities = probabilities
        self.shapes = "input (N, C), (N, C, d1, ...) or (C,); target class indices (N,), (N, d1, ...) or ()" + (
            ", or class probabilities of the input's shape" if probabilities else "")

    def layout(self, spec, args, params, broadcast):
        self._check_no_broadcast(spec, broadcast)
        x_arg, t_arg = args["input"], args["target"]
        x, t = numeric(x_arg), numeric(t_arg)
        if x.ndim == 0:
            raise ShapeError(f"{x_arg.label}: expected scores of shape (N, C, ...) or (C,), but got a scalar")
        classes = x.shape[1] if x.ndim > 1 else x.shape[0]
        if classes == 0:
            raise ShapeError(f"{x_arg.label}: expected at least one class, but got shape {shape_str(x.shape)}")
        index_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        kind = self._kind(spec, params.get("target_kind", TargetKind.auto), x, t_arg)
        if kind is TargetKind.prob:
            self._check_probabilities(t_arg, x_arg.shape, "the input's")
            self._check_nothing_ignored(spec, params)
        elif t.shape != index_shape:
            raise ShapeError(
                f"{t_arg.label}: expected class indices of shape {shape_str(index_shape)} for input "
                f"{shape_str(x.shape)}, but got {shape_str(t.shape)}"
            )
        return Layout(index_shape, classes=classes, target_kind=kind,
                      batch_axis=("input", "target") if x.ndim == 1 else None)

    def dtype(self, spec, args, layout):
        if layout.target_kind is TargetKind.prob:
            return float_dtype(args["input"], args["target"])
        return float_dtype(args["input"])

    def convert(self, spec, args, params, layout, dtype):
        t_arg = args["target"]
        if layout.target_kind is TargetKind.prob:
            target = t_arg.array.astype(dtype, copy=False)
        else:
            integral_floats = params.get("target_kind") is TargetKind.index  # asked for, not inferred
            target = self._indices(t_arg, layout.classes, params["ignore_index"], integral_floats)
        return {"input": args["input"].array.astype(dtype, copy=False), "target": target}

    def weight(self, arg, layout, dtype):
        return class_weight(arg, layout.classes, dtype)

    @staticmethod
    def _check_no_broadcast(spec: LossSpec, broadcast: bool) -> None:
        if broadcast:
            raise OptionError(f"{spec.name} has no broadcasting; its target's shape follows from the input's",
                              argument="broadcast")

    @staticmethod
    def _check_nothing_ignored(spec: LossSpec, params: dict[str, Any]) -> None:
        """Probability targets: torch refuses any ignore_index but its default."""
        default = spec.defaults()["ignore_index"]
        if params["ignore_index"] != default:
            raise OptionError(f"expected the default {default} with class-probability targets (nothing is "
                              f"ignored there), but got {params['ignore_index']}", argument="ignore_index")

    @staticmethod
    def _check_probabilities(t_arg: Arg, shape: tuple[int, ...], of: str) -> None:
        """A target of the input's (logits') whole ``shape`` holds class probabilities: torch decides by the
        shapes, then refuses integer ones ("Expected floating point type for target with class probabilities")."""
        dtype = t_arg.array.dtype
        if dtype.kind != "f":
            index_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
            raise ValueDomainError(
                f"{t_arg.label}: expected floating point class probabilities for a target of {of} shape "
                f"{shape_str(shape)}, but got {dtype} values (torch refuses them too); save class indices with "
                f"shape {shape_str(index_shape)}, or probabilities as floats")

    def _kind(self, spec: LossSpec, asked: TargetKind, x: np.ndarray, t_arg: Arg) -> TargetKind:
        if not self.probabilities:
            return TargetKind.index
        if asked is TargetKind.auto:  # torch: probabilities exactly when the shapes match
            return TargetKind.prob if t_arg.array.shape == x.shape else TargetKind.index
        if asked is TargetKind.prob and t_arg.array.shape != x.shape:
            raise ShapeError(f"{t_arg.label}: expected class probabilities of the input's shape "
                             f"{shape_str(x.shape)}, but got {shape_str(t_arg.array.shape)}")
        return asked

    def _indices(self, t_arg: Arg, classes: int, ignore_index: int, integral_floats: bool) -> np.ndarray:
        t = t_arg.array
        if t.dtype.kind == "f":
            integral = bool(np.all(np.isfinite(t) & (t == np.round(t))))
            if not (integral_floats and integral):
                hint = ("; pass {target_kind=index} to read integral floats as indices" if self.probabilities
                        else "; save them as integers")
                raise ValueDomainError(
                    f"{t_arg.label}: expected integer class indices, but got {t.dtype} values{hint}"
                )
        elif t.dtype.kind not in "iu":
            raise ValueDomainError(f"{t_arg.label}: expected integer class indices, but got {t.dtype} values")
        t = as_int64(t_arg, t, "class indices")
        bad = ((t < 0) | (t >= classes)) & (t != ignore_index)
        where = first(bad)
        if where is not None:
            raise ValueDomainError(
                f"{t_arg.label}: expected class indices in [0, {classes}) or ignore_index {ignore_index}, "
                f"but got {offending(t, where, t_arg)}"
            )
        return t

    def classes(self, spec, batch):
        if batch.target_kind is not TargetKind.index:
            return None  # probabilities: every element is a mix of classes
        return batch.arrays["target"], batch.arrays["input"].shape[1]

    def valid(self, batch, params):
        if batch.target_kind is TargetKind.index:
            return batch.arrays["target"] != params["ignore_index"]
        return None

    def torch_select(self, torch, tensors, mask, params, batch):
        if batch.target_kind is TargetKind.index:  # masked out == ignored: class weights keep torch's mean
            ignored = torch.full_like(tensors["target"], params["ignore_index"])
            return {**tensors, "target": torch.where(mask, tensors["target"], ignored)}
        # probabilities: take the selected rows, class axis last, as (M, C)
        picked = {k: tensors[k].movedim(1, -1)[mask] for k in ("input", "target")}
        return {**tensors, **picked}


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


def _class_weights_along(w: np.ndarray, ndim: int) -> np.ndarray:
    """Class weights shaped to broadcast along axis 1 of an ``ndim``-dimensional array."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _from_log_probs(logp: np.ndarray, a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch) -> Elements:
    """nll of log-probabilities (N, C, ...), with cross-entropy's label smoothing when asked.

    Index targets: ``l = (1-ε)·w[t]·(-logp[t]) + ε/C·Σ_c w_c·(-logp[c])``, mean divides by ``Σ w[t]``.
    Probability targets y: ``l = -Σ_c w_c·y'_c·logp[c]`` with ``y' = (1-ε)·y + ε/C``, mean divides by n.
    """
    eps, classes, w = max(p.get("label_smoothing", 0.0), 0.0), logp.shape[1], a.get("weight")  # ε < 0: 0
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
    eps, classes, w = max(p.get("label_smoothing", 0.0), 0.0), logp.shape[1], a.get("weight")  # ε < 0: 0
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
        Option("label_smoothing", float, 0.0, "ε of 1 or less (a negative ε is 0, as in torch): mix the target "
               "with the uniform distribution", Domain(high=1)),
        Option("target_kind", TargetKind, TargetKind.auto,
               "auto: probabilities when target and input shapes match (torch's rule), else indices"),
    ),
    weight_help=CLASS_WEIGHT_HELP,
    example="losscli cross-entropy samples/classification/logits.npy samples/classification/labels.csv",
)

LOSSES = (NLL, CROSS_ENTROPY)
