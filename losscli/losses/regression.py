"""Regression losses of ``d = input - target``: mse, l1, smooth-l1, huber.

Element weights broadcast to the loss's shape. ``mean`` with weights is the weighted average
``Σ w·l / Σ w`` for mse, l1 and smooth-l1, but ``Σ w·l / n`` for huber: that is what torch 2.13 computes
(``huber_loss`` takes ``weighted_loss.mean()``), and torch is the ground truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..reduction import Elements
from .base import (BROADCAST_WARNING, Domain, Family, Layout, LossSpec, Option, element_rows, shared_shape,
                   torch_size)


class Elementwise(Family):
    """Losses of ``input - target`` (mse, l1, smooth-l1, huber): weights broadcast to the loss."""

    broadcasts = True
    shapes = "input and target of one shape (with --broadcast: shapes that broadcast, as in torch)"

    def stream(self, spec, shapes, broadcast):
        return element_rows(shapes, broadcast)

    def layout(self, spec, args, params, broadcast):
        loss_shape = shared_shape(args["input"], args["target"], broadcast)
        whole_x, whole_y = args["input"].shape, args["target"].shape  # the whole arrays' shapes, chunked or not
        warnings = [] if whole_x == whole_y else [
            BROADCAST_WARNING.format(target=torch_size(whole_y), input=torch_size(whole_x))]
        return Layout(tuple(loss_shape), warnings=warnings)

    def convert(self, spec, args, params, layout, dtype):
        return {name: args[name].array.astype(dtype, copy=False) for name in ("input", "target")}


ELEMENTWISE = Elementwise()


def _weighted(loss: np.ndarray, a: dict[str, np.ndarray], *, weighted_mean: bool) -> Elements:
    """Apply the element weight; ``weighted_mean`` makes ``mean`` divide by Σ w instead of n."""
    w = a.get("weight")
    if w is None:
        return Elements(loss)
    return Elements(loss * w, denom=w if weighted_mean else None)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient of the loss's shape back to the shape of an argument that was broadcast to it."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def elementwise_grad(a: dict[str, np.ndarray], coef: np.ndarray, dl_dx: np.ndarray) -> np.ndarray:
    """d(loss)/d(input) of an element-wise loss: grad_output · w · dl/dx, summed back to the input's shape."""
    w = a.get("weight")
    grad = coef * dl_dx if w is None else coef * w * dl_dx
    return unbroadcast(np.broadcast_to(grad, np.shape(coef)), a["input"].shape)


def _pair(t: dict[str, Any]) -> tuple[Any, Any]:
    # losscli already checked (and warned about) broadcasting; torch wants equal sizes beside a weight
    import torch

    return torch.broadcast_tensors(t["input"], t["target"])


def _torch_smooth_l1(F: Any, t: dict[str, Any], p: dict[str, Any], reduction: str) -> Any:
    if "weight" not in t:
        return F.smooth_l1_loss(*_pair(t), reduction=reduction, beta=p["beta"])
    loss = F.smooth_l1_loss(*_pair(t), reduction="none", beta=p["beta"]) * t["weight"]
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / t["weight"].sum()


def _smooth_l1(d: np.ndarray, beta: float) -> np.ndarray:
    """``0.5·d²/beta`` where ``|d| < beta``, else ``|d| - 0.5·beta``, in place in ``d`` (a fresh temporary), each
    piece rounded as torch rounds it. ``beta = 1`` is huber's ``delta = 1`` (:func:`_knee`, no mask)."""
    z = np.abs(d, out=d)
    if beta == 0.0:  # torch: plain l1
        return z
    if beta == 1.0:
        return _knee(z, 1.0)
    small = z < beta
    quadratic = np.multiply(z, 0.5)
    quadratic *= z
    quadratic /= beta
    z -= 0.5 * beta
    np.copyto(z, quadratic, where=small)
    return z


def _knee(z: np.ndarray, knee: float) -> np.ndarray:
    """``m·(z - m/2)`` with ``m = min(z, knee)``, in place in ``z`` (a fresh temporary): ``0.5·z·z`` below the knee
    and ``knee·(z - 0.5·knee)`` from it on, each rounded as torch rounds it (halving and doubling are exact), with
    no branch and no mask. NaN stays NaN (``minimum`` propagates it); ``z = knee = inf`` gives NaN, as torch."""
    m = np.minimum(z, knee)
    m *= 0.5
    z -= m
    m *= 2.0
    z *= m
    return z


def _smooth_l1_grad(d: np.ndarray, beta: float) -> np.ndarray:
    if beta == 0.0:
        return np.sign(d)
    return np.where(np.abs(d) < beta, d / beta, np.sign(d))


def _huber(d: np.ndarray, delta: float) -> np.ndarray:
    """``0.5·d²`` where ``|d| < delta``, else ``delta·(|d| - 0.5·delta)``: both pieces torch's to the bit."""
    return _knee(np.abs(d, out=d), delta)


def _huber_grad(d: np.ndarray, delta: float) -> np.ndarray:
    return np.where(np.abs(d) < delta, d, delta * np.sign(d))


def _diff(a: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(a["input"] - a["target"])  # an array, 0-d ones too (for out=)


def _absolute(d: np.ndarray) -> np.ndarray:
    """``|d|`` in place (``d``: a fresh temporary)."""
    return np.abs(d, out=d)


def _squared(d: np.ndarray) -> np.ndarray:
    """``d²`` in place: ``d`` is a fresh temporary, and one array fewer stays in cache."""
    return np.multiply(d, d, out=d)


WEIGHT_HELP = "element weights (FILE), broadcast to the loss's shape"

MSE = LossSpec(
    name="mse",
    torch_name="mse_loss",
    summary="Mean squared error.",
    formula="l = (input - target)^2",
    mean_rule="n elements; with --weight, Σ w·l / Σ w",
    family=ELEMENTWISE,
    numpy=lambda a, p, b: _weighted(_squared(_diff(a)), a, weighted_mean=True),
    torch=lambda F, t, p, r: F.mse_loss(*_pair(t), reduction=r, weight=t.get("weight")),
    grad=lambda a, p, b, c: elementwise_grad(a, c, 2 * _diff(a)),
    weight_help=WEIGHT_HELP,
    propagates=True,
    example="losscli mse samples/regression/pred.npy samples/regression/target.npy",
)

L1 = LossSpec(
    name="l1",
    torch_name="l1_loss",
    summary="Mean absolute error.",
    formula="l = |input - target|",
    mean_rule="n elements; with --weight, Σ w·l / Σ w",
    family=ELEMENTWISE,
    numpy=lambda a, p, b: _weighted(_absolute(_diff(a)), a, weighted_mean=True),
    torch=lambda F, t, p, r: F.l1_loss(*_pair(t), reduction=r, weight=t.get("weight")),
    grad=lambda a, p, b, c: elementwise_grad(a, c, np.sign(_diff(a))),
    weight_help=WEIGHT_HELP,
    propagates=True,
    example="losscli l1 samples/regression/pred.csv samples/regression/target.csv",
)

SMOOTH_L1 = LossSpec(
    name="smooth-l1",
    torch_name="smooth_l1_loss",
    summary="Smooth L1: quadratic below beta, linear above.",
    formula="l = 0.5·d²/beta if |d| < beta else |d| - 0.5·beta  (d = input - target; beta = 0: |d|)",
    mean_rule="n elements; with --weight, Σ w·l / Σ w (torch's smooth_l1_loss takes no weight: losscli "
    "weights torch's per-element values the way mse_loss does)",
    family=ELEMENTWISE,
    numpy=lambda a, p, b: _weighted(_smooth_l1(_diff(a), p["beta"]), a, weighted_mean=True),
    torch=_torch_smooth_l1,
    grad=lambda a, p, b, c: elementwise_grad(a, c, _smooth_l1_grad(_diff(a), p["beta"])),
    options=(Option("beta", float, 1.0, "where the loss turns from quadratic to linear (0: plain l1)", Domain(0)),),
    weight_help=WEIGHT_HELP,
    propagates=True,
    example="losscli smooth-l1 samples/regression/pred.npy samples/regression/target.npy --beta 0.5",
)

HUBER = LossSpec(
    name="huber",
    torch_name="huber_loss",
    summary="Huber: quadratic below delta, linear (scaled by delta) above.",
    formula="l = 0.5·d² if |d| < delta else delta·(|d| - 0.5·delta)  (d = input - target)",
    mean_rule="n elements, with or without --weight (torch 2.13 divides Σ w·l by n, not by Σ w)",
    family=ELEMENTWISE,
    numpy=lambda a, p, b: _weighted(_huber(_diff(a), p["delta"]), a, weighted_mean=False),
    torch=lambda F, t, p, r: F.huber_loss(*_pair(t), reduction=r, delta=p["delta"], weight=t.get("weight")),
    grad=lambda a, p, b, c: elementwise_grad(a, c, _huber_grad(_diff(a), p["delta"])),
    options=(Option("delta", float, 1.0, "where the loss turns from quadratic to linear (> 0)",
                    Domain(0, open_low=True)),),
    weight_help=WEIGHT_HELP,
    propagates=True,
    example="losscli huber samples/regression/pred.npy samples/regression/target.npy --delta 2",
)

LOSSES = (MSE, L1, SMOOTH_L1, HUBER)
