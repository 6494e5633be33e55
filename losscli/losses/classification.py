"""Classification losses: nll and cross-entropy over class scores (bce and bce-with-logits: :mod:`.binary`).

Class losses read input ``(N, C, d1, ...)`` (or ``(C,)``) and class-index targets ``(N, d1, ...)``;
cross-entropy also reads class probabilities of the input's shape. With class weights ``w`` (shape
``(C,)``) an element's loss is scaled by ``w[target]`` and ``mean`` divides by ``Σ w[target]`` over the
targets that count (not ``ignore_index``, not masked out).

cross-entropy computes each row's log-sum-exp a block at a time (:func:`logsumexp`) and never forms the
log-probabilities for index targets. nll reads one log-probability per element, at its target, as torch does:
NaN or Inf anywhere else in its input is neither warned about nor refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements
from .base import (Arg, Batch, Domain, Family, Layout, LossSpec, Option, TargetKind, as_int64, class_weight, first,
                   float_dtype, numeric, offending, report_non_finite, shape_str)

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
        outside = _outside(t, classes)
        where = first(outside & (t != ignore_index)) if outside.any() else None
        if where is not None:
            raise ValueDomainError(
                f"{t_arg.label}: expected class indices in [0, {classes}) or ignore_index {ignore_index}, "
                f"but got {offending(t, where, t_arg)}"
            )
        return t

    def work_width(self, spec, shapes, split):
        if self.probabilities:
            return super().work_width(spec, shapes, split)
        return math.prod(shapes["target"][1:])  # nll: one log-probability per element of the loss

    def batch(self, arrays, mask, layout, dtype):
        """nll's batch also holds ``picked``, the log-probability at each target (0's for a target outside the
        classes): the one gather that its check and its formula read."""
        batch = super().batch(arrays, mask, layout, dtype)
        if not self.probabilities:
            x, t = batch.arrays["input"], batch.arrays["target"]
            outside = _outside(t, x.shape[1])
            batch.arrays["picked"] = _pick(x, np.where(outside, 0, t) if outside.any() else t)
        return batch

    def non_finite(self, batch, args, nan_policy):
        """nll reads one log-probability per element, the one its target picks (torch reads no other): only
        those are checked, so that NaN elsewhere neither warns nor costs a pass over the whole input."""
        if self.probabilities:
            return super().non_finite(batch, args, nan_policy)
        x, t = batch.arrays["input"], batch.arrays["target"]
        bad = ~np.isfinite(batch.arrays["picked"])
        if bad.any():
            bad &= ~_outside(t, x.shape[1])  # an ignore_index outside the classes reads nothing
            rows, *positions = np.nonzero(bad)
            if rows.size:
                flat = np.ravel_multi_index((rows, t[bad], *positions), x.shape)
                report_non_finite(args["input"], rows.size, int(flat.min()), nan_policy, batch.warnings)
        return super().non_finite(batch, {k: v for k, v in args.items() if k != "input"}, nan_policy)

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


def _outside(t: np.ndarray, classes: int) -> np.ndarray:
    """Where int64 class indices fall outside ``[0, classes)``: one unsigned comparison (a negative index
    reads as a huge one)."""
    return t.view(np.uint64) >= classes


def _pick(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``x[i, t[i, j...], j...]``: each element's score at its class (``t`` in range), shaped like ``t``. From
    a C-contiguous ``x``, one gather of flat indices (take_along_axis is several times slower)."""
    if not x.flags.c_contiguous or not t.size:
        return np.take_along_axis(x, t[:, None], axis=1)[:, 0]
    classes, inner = x.shape[1], math.prod(x.shape[2:])
    flat = t * inner
    flat += np.arange(0, x.size, classes * inner).reshape((-1,) + (1,) * (t.ndim - 1))
    if inner > 1:
        flat += np.arange(inner).reshape(t.shape[1:])
    return x.reshape(-1)[flat]


# scores per block of the log-sum-exp, 1 MiB of float32: one block per chunk of the engine's (numpy's calls cost
# more than the cache misses of a larger buffer: 64K-score blocks 311 us per (262, 1000), 256K 217 us)
BLOCK_ELEMENTS = 1 << 18
# a row's sum of exponentials, unshifted, is used when its largest term is a normal number with this much to
# spare (in log space): its sum is at least C·tiny·exp(HEADROOM); other rows are shifted by their max
HEADROOM = 30.0


def logsumexp(x: np.ndarray) -> np.ndarray:
    """``log Σ_c exp(x[:, c, ...])`` of scores ``(N, C, d1, ...)``: shape ``(N, d1, ...)``, in float64 (a large
    shift rounded to float32 would cost the loss ``lse - x[t]`` its digits). Scores with positions (d1, ...
    not all 1) are copied class-last first."""
    if x.ndim == 2:
        return _logsumexp_rows(x)
    last = np.moveaxis(x, 1, -1)
    return _logsumexp_rows(last.reshape(-1, x.shape[1])).reshape(last.shape[:-1])


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """The log-sum-exp of each row of ``(N, C)``: exp and sum a block of :data:`BLOCK_ELEMENTS` scores at a
    time, in x's dtype, into one reused buffer while the block is in cache.

    A row is not shifted by its max first (torch's ``m + log Σ exp(x - m)``): that takes two more passes, and
    numpy reduces a short class axis several times slower than it exponentiates. Unshifted, the value is the
    same up to rounding as long as no exponential overflows and the largest stays a normal number with
    :data:`HEADROOM` to spare; the rows where that fails (in float32, a largest score below about -50 or
    above about 80; NaN, +inf, or nothing but -inf) are computed again shifted by their own max. Each row's
    result depends on that row alone, whatever the chunks and blocks it comes in."""
    n, classes = x.shape
    out = np.empty(n)
    buf = np.empty((max(1, min(n, BLOCK_ELEMENTS // classes)), classes), x.dtype)
    info = np.finfo(x.dtype)
    low, high = classes * float(info.tiny) * math.exp(HEADROOM), float(info.max)
    for r0 in range(0, n, len(buf)):
        block = x[r0:r0 + len(buf)]
        work, lse = buf[:len(block)], out[r0:r0 + len(block)]
        np.exp(block, out=work)
        sums = np.einsum("ij->i", work)  # a SIMD sum per row; add.reduce along a row is 3x slower
        np.log(sums, out=lse)
        redo = ~((sums >= low) & (sums <= high))
        if redo.any():
            lse[redo] = _logsumexp_by_row(block[redo])
    return out


def _logsumexp_by_row(x: np.ndarray) -> np.ndarray:
    """The log-sum-exp of each row of ``(N, C)``, each shifted by its own max (NaN for a row holding NaN or
    +inf, or all -inf, as torch's log_softmax gives), in float64."""
    top = x.max(axis=1)
    return top.astype(np.float64) + np.log(np.exp(x - top[:, None]).sum(axis=1), dtype=np.float64)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """``x - logsumexp(x)`` along axis 1."""
    return x - np.expand_dims(logsumexp(x), 1)


def _class_weights_along(w: np.ndarray, ndim: int) -> np.ndarray:
    """Class weights shaped to broadcast along axis 1 of an ``ndim``-dimensional array."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _from_log_probs(x: np.ndarray, lse: np.ndarray | None, a: dict[str, np.ndarray], p: dict[str, Any],
                    batch: Batch) -> Elements:
    """nll of the log-probabilities ``logp = x - lse`` (N, C, ...), with cross-entropy's label smoothing when
    asked. ``lse``: the log-sum-exp of logits ``x`` along axis 1 (cross-entropy), or None (nll: ``x`` are
    log-probabilities).

    Index targets: ``l = (1-ε)·w[t]·(-logp[t]) + ε/C·Σ_c w_c·(-logp[c])``, mean divides by ``Σ w[t]``; the
    log-probabilities are never formed: ``-logp[t] = lse - x[t]``, and
    ``-Σ_c w_c·logp[c] = lse·Σ_c w_c - Σ_c w_c·x[c]``.
    Probability targets y: ``l = -Σ_c w_c·y'_c·logp[c]`` with ``y' = (1-ε)·y + ε/C``, mean divides by n.
    """
    eps, classes, w = max(p.get("label_smoothing", 0.0), 0.0), x.shape[1], a.get("weight")  # ε < 0: 0
    if batch.target_kind is TargetKind.prob:
        logp = x if lse is None else x - np.expand_dims(lse, 1)
        y = a["target"]
        if eps:
            y = y * (1 - eps) + eps / classes
        terms = logp * y if w is None else logp * y * _class_weights_along(w, logp.ndim)
        return Elements(-terms.sum(axis=1))
    t = a["target"]
    valid = t != p["ignore_index"]
    every = bool(valid.all())
    safe = t if every else np.where(valid, t, 0)
    at_target = a["picked"] if "picked" in a else _pick(x, safe)  # nll's batch holds it (Classes.batch)
    picked = -at_target if lse is None else lse - at_target
    w_t = None if w is None else w[safe]
    values = picked if w_t is None else w_t * picked
    first = None
    if eps:  # Σ_c w_c·x[c] in float64: next to lse·Σ_c w_c, it may hold few of the digits of their difference
        smooth = -(np.einsum("ij...->i...", x, dtype=np.float64) if w is None
                   else np.einsum("ij...,j->i...", x, w, dtype=np.float64))
        if lse is not None:
            smooth += lse * (classes if w is None else float(w.sum(dtype=np.float64)))
        first = None if w_t is None else (1 - eps) * values  # torch averages the nll term apart
        values = (1 - eps) * values + eps / classes * smooth
    if every:
        return Elements(values, denom=w_t, valid=valid, first=first)
    denom = None if w_t is None else np.where(valid, w_t, 0.0)
    first = None if first is None else np.where(valid, first, 0.0)
    return Elements(np.where(valid, values, 0.0), denom=denom, valid=valid, first=first)


def _grad_log_probs(x: np.ndarray, a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch,
                    coef: np.ndarray) -> np.ndarray:
    """d(loss)/d(log-probabilities) for :func:`_from_log_probs`, each element's loss receiving ``coef``; it
    does not depend on them (``x``: the scores, for their shape and dtype)."""
    eps, classes, w = max(p.get("label_smoothing", 0.0), 0.0), x.shape[1], a.get("weight")  # ε < 0: 0
    w_along = 1.0 if w is None else _class_weights_along(w, x.ndim)
    coef = coef[:, None]
    if batch.target_kind is TargetKind.prob:
        y = a["target"]
        if eps:
            y = y * (1 - eps) + eps / classes
        return -coef * y * w_along
    t = a["target"]
    safe = np.where(t != p["ignore_index"], t, 0)[:, None]  # ignored elements have coef 0
    w_t = 1.0 if w is None else w[safe]
    grad = np.zeros_like(x) if not eps else np.broadcast_to(-coef * eps / classes * w_along, x.shape).copy()
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
    numpy=lambda a, p, b: _from_log_probs(a["input"], None, a, p, b),
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
    numpy=lambda a, p, b: _from_log_probs(a["input"], logsumexp(a["input"]), a, p, b),
    grad=lambda a, p, b, c: _grad_through_log_softmax(a["input"], _grad_log_probs(a["input"], a, p, b, c)),
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
