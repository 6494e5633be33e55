"""Divergences and likelihoods: kl-div, poisson-nll, gaussian-nll.

Element-wise losses of ``input`` and ``target`` of one shape (``--broadcast`` takes shapes that broadcast:
torch broadcasts these three silently, so losscli adds no warning). None takes a weight (torch has none).
``mean`` divides by the selected element count. kl-div also reduces by ``batchmean``: the sum over the
batch size ``input.shape[0]`` (1 for a 0-d input), as torch does; a mask cannot change that denominator,
so kl-div refuses ``--mask`` with ``batchmean``. gaussian-nll's ``var`` follows torch's shape rules: the
input's shape, or one dimension fewer / one dimension of size 1 (one variance shared along it), or a number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements, Reduction
from .base import (Arg, Batch, Family, FileArg, Layout, LossSpec, Option, element_rows, first, float_dtype, numeric,
                   offending, select, shape_str, shared_shape)
from .regression import unbroadcast

# torch's kl_div warning for reduction='mean', word for word (its sentences run together)
KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


class Pointwise(Family):
    """input and target of one shape; with ``--broadcast``, shapes that broadcast (torch broadcasts these
    losses silently: no warning). With ``variance``, a third file ``var`` under gaussian_nll_loss's rules."""

    broadcasts = True

    def stream(self, spec, shapes, broadcast):
        split = element_rows({k: v for k, v in shapes.items() if k != "var"}, broadcast)
        var, x = shapes.get("var"), shapes["input"]
        if split is None or var is None:
            return split
        # var of the input's rank, or of the input's shape without its last axis (torch adds it): rows of var
        rows = "input" in split and var[:1] == x[:1] and (
            len(var) == len(x) or (len(var) == len(x) - 1 and var == x[:-1]))
        return split | {"var"} if rows else split

    def __init__(self, variance: bool = False):
        self.variance = variance
        self.shapes = "input and target of one shape (with --broadcast: shapes that broadcast, as in torch)" + (
            "; var of the input's shape, of that shape with one dimension of size 1 or without its last "
            "dimension (one variance shared along that dimension), or a number" if variance else "")

    def layout(self, spec, args, params, broadcast):
        x_shape = args["input"].shape
        # torch: batchmean divides by input.size(0), and not for a 0-d input
        return Layout(shared_shape(args["input"], args["target"], broadcast), rows=x_shape[0] if x_shape else 1)

    def dtype(self, spec, args, layout):
        var_arg = args.get("var") if self.variance else None
        if var_arg is None or var_arg.number:
            return float_dtype(args["input"], args["target"])
        return float_dtype(args["input"], args["target"], var_arg)

    def convert(self, spec, args, params, layout, dtype):
        arrays = {name: args[name].array.astype(dtype, copy=False) for name in ("input", "target")}
        if self.variance and "var" in args:
            arrays["var"] = variance(args["var"], args["input"], dtype)
        return arrays


def variance(arg: Arg, input_arg: Arg, dtype: np.dtype) -> np.ndarray:
    """gaussian_nll_loss's var, checked as torch checks it and shaped to broadcast against the input.

    A number stands for every element (torch: ``var * ones_like(input)``, in the input's dtype). An array has
    the input's shape; or the input's shape without its last dimension (torch unsqueezes it there); or the
    input's number of dimensions with exactly one dimension different, of size 1 in var.
    """
    v, x = numeric(arg), input_arg.array
    negative = first(v < 0)  # torch checks this before the shape; NaN is not negative, as in torch
    if negative is not None:
        got = f"{v[()]!s}" if arg.number else offending(v, negative, arg)
        raise ValueDomainError(f"{arg.label}: expected variances of 0 or more, but got {got}")
    if arg.number:
        return np.broadcast_to(v.astype(float_dtype(input_arg), copy=False), x.shape)
    if v.shape == x.shape:
        return v.astype(dtype, copy=False)
    if x.ndim and v.shape == x.shape[:-1]:
        return v[..., None].astype(dtype, copy=False)  # torch unsqueezes var at the end
    differ = [i for i in range(v.ndim) if v.shape[i] != x.shape[i]] if v.ndim == x.ndim else []
    if len(differ) == 1 and v.shape[differ[0]] == 1:
        return v.astype(dtype, copy=False)
    shapes = f"the input's shape {shape_str(x.shape)}"
    if x.ndim:
        shapes += (f", it with one dimension of size 1, or {shape_str(x.shape[:-1])} (one variance shared "
                   "along a dimension)")
    raise ShapeError(f"{arg.label}: expected {shapes}, but got {shape_str(v.shape)}")


def _chain(a: dict[str, np.ndarray], batch: Batch, coef: np.ndarray, dl_dx: np.ndarray) -> np.ndarray:
    """d(loss)/d(input): each element's grad_output times dl/dx, summed back to the input's shape; a plain 0
    where the mask drops the element, whatever dl/dx or mean's denominator (torch slices it away)."""
    grad = coef * dl_dx if batch.mask is None else select(batch.mask, coef * dl_dx)
    return unbroadcast(np.broadcast_to(grad, np.shape(coef)), a["input"].shape)


# -- kl-div -------------------------------------------------------------------------------------------


def _kl_div(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """torch.kl_div: ``exp(t)·(t - x)`` for log targets, else ``xlogy(t, t) - t·x`` (0·log 0 = 0)."""
    x, t = a["input"], a["target"]
    if p["log_target"]:
        return np.exp(t) * (t - x)
    return select(t != 0, t * np.log(t)) - t * x  # xlogy(t, t): NaN stays NaN, t < 0 gives NaN


def _kl_div_grad(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    return -np.exp(a["target"]) if p["log_target"] else -a["target"]


def _kl_reduction(asked: Reduction, resolved: Reduction, legacy: bool, batch: Batch) -> list[str]:
    """batchmean's denominator is the batch size; torch's warning for mean (not when legacy flags decide)."""
    if resolved is Reduction.batchmean and batch.mask is not None:
        raise OptionError(
            f"batchmean: expected no {{mask}} (batchmean divides by the batch size, input.shape[0] = {batch.rows}, "
            f"which a mask does not change; use {{reduction=sum}} and divide, or mean), but got one",
            argument="reduction",
        )
    if legacy and asked is Reduction.batchmean:
        raise OptionError(
            "batchmean: expected no {size_average}/{reduce} with it (torch would divide what those legacy flags "
            "give by the batch size as well), but got a legacy flag",
            argument="reduction",
        )
    return [KL_MEAN_WARNING] if resolved is Reduction.mean and not legacy else []


# -- poisson-nll --------------------------------------------------------------------------------------


def _poisson_nll(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """torch.poisson_nll_loss, with the Stirling term where target > 1 when ``full``."""
    x, t = a["input"], a["target"]
    loss = np.exp(x) - t * x if p["log_input"] else x - t * np.log(x + p["eps"])
    if p["full"]:
        stirling = t * np.log(t) - t + 0.5 * np.log(2 * math.pi * t)
        loss = loss + select(~(t <= 1), stirling)  # torch: masked_fill(target <= 1, 0); NaN stays NaN
    return loss


def _poisson_nll_grad(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    x, t = a["input"], a["target"]
    return np.exp(x) - t if p["log_input"] else 1 - t / (x + p["eps"])


# -- gaussian-nll -------------------------------------------------------------------------------------


def _clamped_var(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    return np.maximum(a["var"], p["eps"])  # torch clamps a copy at eps (under no_grad); NaN stays NaN


def _gaussian_nll(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    v = _clamped_var(a, p)
    loss = 0.5 * (np.log(v) + (a["input"] - a["target"]) ** 2 / v)
    return loss + 0.5 * math.log(2 * math.pi) if p["full"] else loss


def _gaussian_nll_grad(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    return (a["input"] - a["target"]) / _clamped_var(a, p)


KL_DIV = LossSpec(
    name="kl-div",
    torch_name="kl_div",
    summary="Kullback-Leibler divergence of log-probabilities from a target distribution.",
    formula="l = t·(log t - input), 0 where t = 0  (input: log-probabilities; --log-target: t given as "
    "log t, l = exp(log t)·(log t - input))",
    mean_rule="n elements (torch warns: the KL divergence is batchmean); batchmean: the batch size "
    "input.shape[0] (1 for a 0-d input), which a mask cannot change, so batchmean takes no --mask",
    family=Pointwise(),
    numpy=lambda a, p, b: Elements(_kl_div(a, p)),
    torch=lambda F, t, p, r: F.kl_div(t["input"], t["target"], reduction=r, log_target=p["log_target"]),
    grad=lambda a, p, b, c: _chain(a, b, c, _kl_div_grad(a, p)),
    files=(FileArg("input", "log-probabilities"),
           FileArg("target", "target probabilities (log-probabilities with --log-target)")),
    reductions=(Reduction.none, Reduction.mean, Reduction.sum, Reduction.batchmean),
    options=(Option("log_target", bool, False, "the target holds log-probabilities"),),
    reduction_check=_kl_reduction,
    propagates=True,
    example="losscli kl-div samples/divergence/log_probs.npy samples/divergence/target_probs.npy "
    "--reduction batchmean",
)

POISSON_NLL = LossSpec(
    name="poisson-nll",
    torch_name="poisson_nll_loss",
    summary="Negative log-likelihood of counts under a Poisson distribution.",
    formula="l = exp(input) - t·input (--log-input, the default), or input - t·log(input + eps); --full adds "
    "t·log t - t + 0.5·log(2π·t) where t > 1",
    mean_rule="n elements",
    family=Pointwise(),
    numpy=lambda a, p, b: Elements(_poisson_nll(a, p)),
    torch=lambda F, t, p, r: F.poisson_nll_loss(t["input"], t["target"], log_input=p["log_input"],
                                                full=p["full"], eps=p["eps"], reduction=r),
    grad=lambda a, p, b, c: _chain(a, b, c, _poisson_nll_grad(a, p)),
    files=(FileArg("input", "log-rates (rates with --no-log-input)"), FileArg("target", "counts")),
    options=(
        Option("log_input", bool, True, "the input is the log of the rate (else the rate itself)"),
        Option("full", bool, False, "add the Stirling approximation term t·log t - t + 0.5·log(2π·t)"),
        Option("eps", float, 1e-8, "added to the rate inside the log when --no-log-input"),
    ),
    propagates=True,
    example="losscli poisson-nll samples/divergence/counts.csv:log_rate samples/divergence/counts.csv:count "
    "--full",
)

GAUSSIAN_NLL = LossSpec(
    name="gaussian-nll",
    torch_name="gaussian_nll_loss",
    summary="Negative log-likelihood of targets under Gaussians of given means and variances.",
    formula="l = 0.5·(log v + (input - target)²/v) with v = max(var, eps); --full adds 0.5·log(2π)",
    mean_rule="n elements of the loss (var shared along a dimension still gives one loss per input element)",
    family=Pointwise(variance=True),
    numpy=lambda a, p, b: Elements(_gaussian_nll(a, p)),
    torch=lambda F, t, p, r: F.gaussian_nll_loss(t["input"], t["target"], t["var"], full=p["full"],
                                                 eps=p["eps"], reduction=r),
    grad=lambda a, p, b, c: _chain(a, b, c, _gaussian_nll_grad(a, p)),
    files=(FileArg("input", "means"), FileArg("target", "observed values"),
           FileArg("var", "variances (0 or more)", number_ok=True)),
    options=(
        Option("full", bool, False, "add the constant 0.5·log(2π)"),
        Option("eps", float, 1e-6, "variances below it count as eps (torch clamps var at eps)"),
    ),
    propagates=True,
    example="losscli gaussian-nll samples/divergence/mean.npy samples/divergence/observed.npy "
    "samples/divergence/var.npy",
)

LOSSES = (KL_DIV, POISSON_NLL, GAUSSIAN_NLL)
