"""The tests' one reference: cases, the torch.nn.functional oracle, tolerances and shared strategies.

Not a test module: the test files import it (``from tests.oracle import ...``; tests/conftest.py puts the
checkout's root on ``sys.path``). Nothing here calls losscli except ``Case.compute`` (the thing under test);
every expected value comes from ``torch.nn.functional`` on tensors built from the case's arrays:

* a mask is slicing: element-wise losses see ``input[mask]``, ``target[mask]``, ``weight[mask]`` (weights
  expanded to the loss's shape first); per-sample losses see the selected rows of every file (an unbatched
  sample is given a batch axis of 1 first); ``none`` is torch's unmasked output with masked-out entries 0;
* class-index targets that are masked out behave as ``ignore_index``; probability targets select rows
  (class axis moved last);
* smooth-l1 with a weight (torch has no weight there) is ``Σ w·l / Σ w`` over torch's per-element values;
* torch functions without the legacy ``size_average``/``reduce`` flags (huber, gaussian-nll,
  triplet-margin-with-distance, ctc, linear-cross-entropy) get them resolved first, as torch's own
  ``legacy_get_string`` does;
* torch 2.13's multi_margin_loss and multilabel_margin_loss reduce no samples to uninitialised memory; the
  oracle reduces their ``none`` output with torch there (mean NaN, sum 0, as for every other loss);
* ctc: a mask selects samples; torch refuses empty log_probs, so a mask that selects no sample is written
  out: sum 0, mean NaN. linear-cross-entropy with probability targets and K-dimensional logits: the
  selected elements of torch's ``none`` output, then their sum or mean.

Gradients (``autograd``) are torch autograd on float64 copies with the input a leaf,
``out.backward(torch.ones_like(out))``; ``central_differences`` differences a function without autograd.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.nn._reduction import legacy_get_string

import losscli

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("numpy", "torch")

REGRESSION = ("mse", "l1", "smooth-l1", "huber")
CLASSES = ("nll", "cross-entropy")
BINARY = ("bce", "bce-with-logits")
ALL_LOSSES = REGRESSION + CLASSES + BINARY
DIVERGENCE = ("kl-div", "poisson-nll", "gaussian-nll")
ELEMENTWISE = ("margin-ranking", "hinge-embedding", "soft-margin")
CLASS_SCORES = ("multilabel-soft-margin", "multilabel-margin", "multi-margin")
EMBEDDINGS = ("cosine-embedding", "triplet-margin", "triplet-margin-with-distance")
MARGIN_LOSSES = ELEMENTWISE + CLASS_SCORES + EMBEDDINGS
EMPTY_REDUCTION_IS_GARBAGE_IN_TORCH = ("multilabel-margin", "multi-margin")

FLOATS = (np.float32, np.float64)
# (rtol, atol): numpy computes in float64 and rounds once; torch computes in the input's dtype.
TOLERANCE = {
    np.dtype(np.float16): (1e-2, 1e-2),
    np.dtype(np.float32): (1e-5, 1e-5),
    np.dtype(np.float64): (1e-10, 1e-10),
}


# ----------------------------------------------------------------------------------------- cases


def resolved_of(reduction: str, size_average: bool | None, reduce: bool | None) -> str:
    """The reduction torch uses: the legacy flags, when given, win (torch's own resolution)."""
    if size_average is None and reduce is None:
        return reduction
    return legacy_get_string(size_average, reduce, emit_warning=False)


@dataclass(kw_only=True)
class Common:
    """What every case carries, by keyword: the mask, the reduction with torch's legacy flags, options."""

    mask: np.ndarray | None = None
    reduction: str = "mean"
    size_average: bool | None = None
    reduce: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved(self) -> str:
        return resolved_of(self.reduction, self.size_average, self.reduce)

    @property
    def legacy(self) -> dict[str, Any]:
        """Reduction keywords exactly as a torch user passes them."""
        return dict(size_average=self.size_average, reduce=self.reduce, reduction=self.reduction)


@dataclass
class Case(Common):
    """One call of a loss: its positional arrays are ``input``, ``target``, ``var`` (gaussian-nll) and
    ``more`` (a margin loss's third file); the keyword arrays and options follow."""

    loss: str
    input: np.ndarray
    target: np.ndarray
    var: np.ndarray | float | None = None  # gaussian-nll only
    more: tuple[np.ndarray, ...] = ()
    weight: np.ndarray | None = None
    pos_weight: np.ndarray | None = None
    broadcast: bool = False

    @classmethod
    def of(cls, loss: str, files: tuple[np.ndarray, ...], **kw: Any) -> Case:
        """A case from the loss's positional files (the margin losses take two or three)."""
        return cls(loss, files[0], files[1], more=tuple(files[2:]), **kw)

    @property
    def files(self) -> tuple[Any, ...]:
        """The positional arrays, in torch's order."""
        return (self.input, self.target) + (() if self.var is None else (self.var,)) + self.more

    arrays = files

    def with_files(self, files: tuple[np.ndarray, ...]) -> Case:
        return replace(self, input=files[0], target=files[1], more=tuple(files[2:]))

    @property
    def loss_shape(self) -> tuple[int, ...]:
        if self.loss in CLASSES:
            return class_layout(self.input)[1]
        if self.loss == "multi-margin":  # torch: the target's shape, (N,), () or (1,)
            return self.target.shape
        if self.loss == "multilabel-margin":
            return self.input.shape[:1] if self.input.ndim == 2 else ()
        if self.loss in CLASS_SCORES + EMBEDDINGS:
            return self.input.shape[:-1]
        return np.broadcast_shapes(self.input.shape, self.target.shape)

    def compute(self, backend: str, **extra: Any) -> losscli.LossResult:
        return losscli.compute(
            self.loss, *self.files, weight=self.weight, pos_weight=self.pos_weight, mask=self.mask,
            reduction=self.reduction, size_average=self.size_average, reduce=self.reduce,
            broadcast=self.broadcast, backend=backend, **self.params, **extra,
        )


def class_layout(x: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """Number of classes and the loss's (= index target's) shape."""
    if x.ndim == 1:
        return x.shape[0], ()
    return x.shape[1], x.shape[:1] + x.shape[2:]


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array))  # a copy, same dtype and shape (0-d included)


def zero_unselected(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, out, torch.zeros((), dtype=out.dtype))


def as_float64(c: Any) -> Any:
    """The case with its float arrays in float64 (class indices, labels, signs and numbers stay)."""

    def up(a: Any) -> Any:
        return a if not isinstance(a, np.ndarray) or a.dtype.kind != "f" else a.astype(np.float64)

    return replace(c, **{k: up(getattr(c, k)) for k in ("input", "target", "var", "weight", "pos_weight")},
                   more=tuple(up(a) for a in c.more))


# --------------------------------------------------------------------------------------- oracles


def regression_oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    x, y = tensor(c.input) if x is None else x, tensor(c.target)
    shape = torch.broadcast_shapes(x.shape, y.shape)
    w = None if c.weight is None else tensor(c.weight).expand(shape)  # torch wants an input-sized weight
    if w is not None:
        x, y = x.expand(shape), y.expand(shape)  # and so an input of the loss's shape
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is not None and c.resolved != "none":
        x, y = x.expand(shape)[mask], y.expand(shape)[mask]
        w = None if w is None else w[mask]
    if c.loss == "mse":
        out = F.mse_loss(x, y, weight=w, **c.legacy)
    elif c.loss == "l1":
        out = F.l1_loss(x, y, weight=w, **c.legacy)
    elif c.loss == "huber":  # huber_loss takes no legacy flags: resolve them first
        out = F.huber_loss(x, y, reduction=c.resolved, delta=c.params.get("delta", 1.0), weight=w)
    elif w is None:
        out = F.smooth_l1_loss(x, y, beta=c.params.get("beta", 1.0), **c.legacy)
    else:  # torch's smooth_l1_loss has no weight: Σ w·l / Σ w over its per-element values
        weighted = F.smooth_l1_loss(x, y, reduction="none", beta=c.params.get("beta", 1.0)) * w
        out = {"none": weighted, "sum": weighted.sum(), "mean": weighted.sum() / w.sum()}[c.resolved]
    if mask is not None and c.resolved == "none":
        out = zero_unselected(out, mask)
    return out


def class_oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    x, t = tensor(c.input) if x is None else x, tensor(c.target)
    probabilities = c.loss == "cross-entropy" and c.target.shape == c.input.shape  # torch's rule
    if not probabilities:
        t = t.long()
    ignore_index = c.params.get("ignore_index", -100)
    kw = dict(weight=None if c.weight is None else tensor(c.weight), ignore_index=ignore_index, **c.legacy)
    if c.loss == "cross-entropy":
        kw["label_smoothing"] = c.params.get("label_smoothing", 0.0)
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is not None and c.resolved != "none":
        if not probabilities:  # masked out == ignore_index
            t = torch.where(mask, t, ignore_index)
        else:  # select rows, class axis last
            if x.ndim == 1:
                x, t, mask = x[None], t[None], mask[None]
            x, t = x.movedim(1, -1)[mask], t.movedim(1, -1)[mask]
    out = (F.cross_entropy if c.loss == "cross-entropy" else F.nll_loss)(x, t, **kw)
    if mask is not None and c.resolved == "none":
        out = zero_unselected(out, mask)
    return out


def binary_oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    x, y = tensor(c.input) if x is None else x, tensor(c.target)
    w = None if c.weight is None else tensor(c.weight)
    pw = None if c.pos_weight is None else tensor(c.pos_weight)
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is not None and c.resolved != "none":
        x, y = x[mask], y[mask]
        w = None if w is None else w.expand(c.input.shape)[mask]
        pw = None if pw is None else pw.expand(c.input.shape)[mask]
    if c.loss == "bce":
        out = F.binary_cross_entropy(x, y, weight=w, **c.legacy)
    else:
        out = F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, **c.legacy)
    if mask is not None and c.resolved == "none":
        out = zero_unselected(out, mask)
    return out


def torch_var(var: np.ndarray | float, x: torch.Tensor) -> torch.Tensor | float:
    """var as gaussian_nll_loss broadcasts it against the input: unsqueezed when one dimension short."""
    if isinstance(var, float):
        return var
    v = tensor(var)
    return v.unsqueeze(-1) if v.shape != x.shape and v.shape == x.shape[:-1] else v


def divergence_oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    x = tensor(c.input) if x is None else x
    y = tensor(c.target)
    var = None if c.var is None else torch_var(c.var, x)
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is not None and c.resolved != "none":
        shape = torch.broadcast_shapes(x.shape, y.shape)
        x, y = x.expand(shape)[mask], y.expand(shape)[mask]
        if isinstance(var, torch.Tensor):
            var = var.expand(shape)[mask]
    if c.loss == "kl-div":
        out = F.kl_div(x, y, log_target=c.params.get("log_target", False), **c.legacy)
    elif c.loss == "poisson-nll":
        out = F.poisson_nll_loss(x, y, log_input=c.params.get("log_input", True),
                                 full=c.params.get("full", False), eps=c.params.get("eps", 1e-8), **c.legacy)
    else:
        out = F.gaussian_nll_loss(x, y, var, full=c.params.get("full", False), eps=c.params.get("eps", 1e-6),
                                  reduction=c.resolved)
    if mask is not None and c.resolved == "none":
        out = zero_unselected(out, mask)
    return out


def margin_call(c: Case, ts: list[torch.Tensor], w: torch.Tensor | None, reduction: dict[str, Any]) -> torch.Tensor:
    """``torch.nn.functional`` on tensors, with ``reduction`` as keywords (legacy flags included)."""
    p = c.params
    if c.loss == "margin-ranking":
        return F.margin_ranking_loss(*ts, margin=p.get("margin", 0.0), **reduction)
    if c.loss == "hinge-embedding":
        return F.hinge_embedding_loss(*ts, margin=p.get("margin", 1.0), **reduction)
    if c.loss == "soft-margin":
        return F.soft_margin_loss(*ts, **reduction)
    if c.loss == "multilabel-soft-margin":
        return F.multilabel_soft_margin_loss(*ts, weight=w, **reduction)
    if c.loss == "multilabel-margin":
        return F.multilabel_margin_loss(ts[0], ts[1].long(), **reduction)
    if c.loss == "multi-margin":  # torch wants the weight in the input's dtype
        w = None if w is None else w.to(ts[0].dtype)
        return F.multi_margin_loss(ts[0], ts[1].long(), p=p.get("p", 1), margin=p.get("margin", 1.0), weight=w,
                                   **reduction)
    if c.loss == "cosine-embedding":
        return F.cosine_embedding_loss(*ts, margin=p.get("margin", 0.0), **reduction)
    if c.loss == "triplet-margin":
        return F.triplet_margin_loss(*ts, margin=p.get("margin", 1.0), p=p.get("p", 2.0), eps=p.get("eps", 1e-6),
                                     swap=p.get("swap", False), **reduction)
    distance = (lambda u, v: 1 - F.cosine_similarity(u, v, dim=-1)) if p.get("distance") == "cosine" else None
    return F.triplet_margin_with_distance_loss(*ts, distance_function=distance, margin=p.get("margin", 1.0),
                                               swap=p.get("swap", False), reduction=c.resolved)


def margin_oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    ts = [x if x is not None and i == 0 else tensor(a) for i, a in enumerate(c.files)]
    w = None if c.weight is None else tensor(c.weight)
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is not None and c.resolved != "none":
        if c.loss in ELEMENTWISE:
            ts = [t[mask] for t in ts]
        elif c.loss in ("multi-margin", "multilabel-margin"):  # torch's forms of one sample: a batch of one
            rows, classes = (ts[0].shape if ts[0].ndim == 2 else (1, max(ts[0].numel(), 1)))
            target = ts[1].reshape(rows, classes) if c.loss == "multilabel-margin" else ts[1].reshape(rows)
            keep = mask.reshape(rows)
            ts = [ts[0].reshape(rows, classes)[keep], target[keep]]
        else:
            if w is not None and w.ndim > 1:  # a weight of the input's rank: its rows are selected too
                ts.append(w.expand(ts[0].shape))
            if mask.ndim == 0:  # an unbatched sample: slice it as a batch of one
                ts, mask = [t[None] for t in ts], mask[None]
            ts = [t[mask] for t in ts]
            if w is not None and w.ndim > 1:
                w = ts.pop()
    if c.loss in EMPTY_REDUCTION_IS_GARBAGE_IN_TORCH and c.resolved != "none" and ts[0].ndim == 2 \
            and ts[0].shape[0] == 0:
        return getattr(margin_call(c, ts, w, dict(reduction="none")), c.resolved)()
    out = margin_call(c, ts, w, c.legacy)
    if mask is not None and c.resolved == "none":
        out = zero_unselected(out, mask)
    return out


def oracle(c: Case, x: torch.Tensor | None = None) -> torch.Tensor:
    """torch.nn.functional's answer for ``c``; ``x`` replaces the input tensor (a leaf for autograd)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation, broadcast and kl_div warnings; tested apart
        if c.loss in REGRESSION:
            return regression_oracle(c, x)
        if c.loss in CLASSES:
            return class_oracle(c, x)
        if c.loss in BINARY:
            return binary_oracle(c, x)
        if c.loss in DIVERGENCE:
            return divergence_oracle(c, x)
        if c.loss in MARGIN_LOSSES:
            return margin_oracle(c, x)
    raise ValueError(f"no oracle for {c.loss}")


def leaf_grad(f: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(leaf)`` and d(sum of it)/d(leaf), leaf a float64 copy of ``x`` that requires grad
    (``backward(ones_like(out))``); a gradient of zeros where ``f`` does not use the leaf."""
    leaf = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = f(leaf)
    out.backward(torch.ones_like(out))
    grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
    return out.detach().numpy(), grad.numpy()


def autograd(c: Case) -> tuple[np.ndarray, np.ndarray]:
    """torch's loss and d(sum of it)/d(input), on float64 copies: the oracle with the input a leaf."""
    c = as_float64(c)
    return leaf_grad(lambda leaf: oracle(c, leaf), c.input)


def loss_sum(c: Case, x: np.ndarray) -> float:
    """The scalar that the gradient differentiates, from torch.nn.functional without autograd."""
    with torch.no_grad():
        return float(oracle(replace(c, input=x)).sum())


def central_differences(f: Callable[[np.ndarray], float], x: np.ndarray, points: list[int],
                        eps: float = 1e-6) -> list[float]:
    """(f(x + h) - f(x - h)) / 2h at each flat index in ``points``, h = eps · max(1, |x_i|)."""
    differences = []
    for i in points:
        up, down = x.copy(), x.copy()
        h = eps * max(1.0, abs(float(x.flat[i])))
        up.flat[i] += h
        down.flat[i] -= h
        differences.append((f(up) - f(down)) / (up.flat[i] - down.flat[i]))
    return differences


# -------------------------------------------------------------------------------- ctc, linear-ce


@dataclass
class CtcCase(Common):
    log_probs: np.ndarray
    targets: np.ndarray
    input_lengths: np.ndarray
    target_lengths: np.ndarray

    @property
    def samples(self) -> int:
        return self.log_probs.shape[1] if self.log_probs.ndim == 3 else 1

    def compute(self, backend: str, **kw: Any) -> losscli.LossResult:
        return losscli.compute("ctc", self.log_probs, self.targets, self.input_lengths, self.target_lengths,
                               mask=self.mask, reduction=self.reduction, size_average=self.size_average,
                               reduce=self.reduce, backend=backend, **self.params, **kw)


def ctc_oracle(c: CtcCase, log_probs: torch.Tensor | None = None) -> torch.Tensor:
    lp = tensor(c.log_probs) if log_probs is None else log_probs
    tg, il, tl = tensor(c.targets).long(), tensor(c.input_lengths).long(), tensor(c.target_lengths).long()
    kw = dict(blank=c.params.get("blank", 0), zero_infinity=c.params.get("zero_infinity", False))
    reduction = c.resolved
    mask = None if c.mask is None else c.mask.astype(bool).reshape(-1)
    if mask is None or reduction == "none":
        out = F.ctc_loss(lp, tg, il, tl, reduction=reduction, **kw)
        if mask is not None:
            out = zero_unselected(out, torch.from_numpy(mask.reshape(c.mask.shape)))
        return out
    if c.log_probs.ndim == 2:  # unbatched: the one sample is selected or not (targets as given fit N = 1)
        lp, il, tl = lp[:, None], il.reshape(1), tl.reshape(1)
    keep = torch.from_numpy(mask)
    if not keep.any():  # torch refuses empty log_probs: the sum of nothing, and its mean (NaN)
        nothing = lp.sum() * 0.0
        return nothing if reduction == "sum" else nothing + float("nan")
    if tg.dim() == 2:
        tg = tg[keep]
    else:
        pieces = torch.split(tg, tl.tolist())
        tg = torch.cat([p for p, k in zip(pieces, mask) if k])
    return F.ctc_loss(lp[:, keep], tg, il[keep], tl[keep], reduction=reduction, **kw)


@dataclass
class LinearCase(Common):
    input: np.ndarray
    linear_weight: np.ndarray
    target: np.ndarray
    linear_bias: np.ndarray | None = None
    weight: np.ndarray | None = None

    @property
    def logits_shape(self) -> tuple[int, ...]:
        return self.input.shape[:-1] + self.linear_weight.shape[:-1]

    @property
    def probabilities(self) -> bool:
        return self.target.shape == self.logits_shape  # torch's rule

    def compute(self, backend: str, **kw: Any) -> losscli.LossResult:
        return losscli.compute("linear-cross-entropy", self.input, self.linear_weight, self.target,
                               linear_bias=self.linear_bias, weight=self.weight, mask=self.mask,
                               reduction=self.reduction, size_average=self.size_average, reduce=self.reduce,
                               backend=backend, **self.params, **kw)


def linear_oracle(c: LinearCase, x: torch.Tensor | None = None) -> torch.Tensor:
    x = tensor(c.input) if x is None else x
    w, t = tensor(c.linear_weight), tensor(c.target)
    prob = c.probabilities
    ignore_index = c.params.get("ignore_index", -100)
    kw = dict(linear_bias=None if c.linear_bias is None else tensor(c.linear_bias),
              weight=None if c.weight is None else tensor(c.weight),
              label_smoothing=c.params.get("label_smoothing", 0.0), ignore_index=None if prob else ignore_index)
    t = t if prob else t.long()
    reduction = c.resolved
    mask = None if c.mask is None else tensor(c.mask.astype(bool))
    if mask is None or reduction == "none":
        out = F.linear_cross_entropy(x, w, t, reduction=reduction, **kw)
        return out if mask is None else zero_unselected(out, mask)
    if not prob:  # masked out == ignore_index
        return F.linear_cross_entropy(x, w, torch.where(mask, t, ignore_index), reduction=reduction, **kw)
    if w.dim() == 2:  # probabilities: select rows of input and target
        if x.dim() == 1:
            x, t, mask = x[None], t[None], mask[None]
        return F.linear_cross_entropy(x[mask], w, t[mask], reduction=reduction, **kw)
    picked = F.linear_cross_entropy(x, w, t, reduction="none", **kw)[mask]  # K-dim: elements of none
    return picked.sum() if reduction == "sum" else picked.mean()


# ------------------------------------------------------------------------------------- checks


def tolerance_of(*arrays: Any) -> tuple[float, float]:
    """The least precise float array's (rtol, atol): torch may compute parts in it before promoting."""
    floats = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return max((TOLERANCE[np.dtype(d)] for d in floats), default=TOLERANCE[np.dtype(np.float32)])


def assert_matches(got: np.ndarray, want: torch.Tensor | np.ndarray, tolerance: tuple[float, float],
                   what: str = "") -> None:
    """The same dtype and shape as torch's, and values within ``tolerance`` (NaN where torch has NaN)."""
    expected = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    prefix = f"{what}: " if what else ""
    assert got.dtype == expected.dtype, f"{prefix}dtype {got.dtype}, torch gives {expected.dtype}"
    assert got.shape == expected.shape, f"{prefix}shape {got.shape}, torch gives {expected.shape}"
    rtol, atol = tolerance
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def counted(c: Case) -> int:
    """Elements (or samples) that count: selected by the mask and, for class indices, not ignore_index."""
    keep = np.ones(c.loss_shape, bool)
    if c.loss in CLASSES and c.target.shape != c.input.shape:
        keep &= c.target != c.params.get("ignore_index", -100)
    return int(np.count_nonzero(keep if c.mask is None else keep & c.mask.astype(bool)))


def check(c: Case, tolerance: tuple[float, float] | None = None) -> None:
    """Both backends equal the torch oracle: value, shape, dtype, the reduction and the count they report.
    ``tolerance``: the input's dtype's unless given."""
    want = oracle(c)
    tolerance = tolerance or TOLERANCE[np.dtype(c.input.dtype)]
    for backend in BACKENDS:
        result = c.compute(backend)
        assert result.reduction.value == c.resolved, backend
        assert result.selected == counted(c), backend
        assert_matches(result.value, want, tolerance, f"backend={backend}")


def unused_inputs(c: Case) -> np.ndarray:
    """Input elements that no counted loss element depends on (masked out or ignore_index), input-shaped."""
    if c.loss in CLASSES:
        keep = np.ones(c.loss_shape, bool)
        if c.target.shape != c.input.shape:  # class indices
            keep &= c.target != c.params.get("ignore_index", -100)
        if c.mask is not None:
            keep &= c.mask.astype(bool)
        keep = keep if c.input.ndim == 1 else np.expand_dims(keep, 1)  # every class of a dead row
        return ~np.broadcast_to(keep, c.input.shape)
    keep = np.ones(c.loss_shape, bool) if c.mask is None else c.mask.astype(bool)
    # an input element broadcast over several loss elements is dead only if all of them are
    keep = keep.any(axis=tuple(range(keep.ndim - c.input.ndim)))
    spread = tuple(i for i, n in enumerate(c.input.shape) if n == 1 and keep.shape[i] != 1)
    return ~keep.any(axis=spread, keepdims=True) if spread else ~keep


# ------------------------------------------------------------------------------------ strategies


def numbers(dtype, lo: float, hi: float) -> st.SearchStrategy[float]:
    width = np.dtype(dtype).itemsize * 8
    return st.floats(lo, hi, width=width, allow_nan=False, allow_subnormal=False)


def arrays(dtype, shape, lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=numbers(dtype, lo, hi))


@st.composite
def broadcast_shapes_to(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape``: some leading axes dropped, some axes of size 1."""
    drop = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else n for n in shape[drop:])


@st.composite
def broadcasting_pairs(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    return draw(broadcast_shapes_to(shape)), draw(broadcast_shapes_to(shape))


@st.composite
def masks(draw, shape: tuple[int, ...]) -> np.ndarray | None:
    """None, or a mask of ``shape``: booleans or 0/1 integers."""
    if draw(st.booleans()):
        return None
    mask = draw(hnp.arrays(np.bool_, shape))
    return mask.astype(np.int8) if draw(st.booleans()) else mask


@st.composite
def reductions(draw, loss: str | None = None) -> dict[str, Any]:
    """none, mean or sum (and batchmean for kl-div), with the legacy flags mostly unset; losscli refuses
    batchmean with the legacy flags (tested apart), so batchmean comes without them."""
    reduction = draw(st.sampled_from(["none", "mean", "sum"] + (["batchmean"] if loss == "kl-div" else [])))
    flag = st.sampled_from([None, None, True, False])  # mostly unset
    size_average, reduce = draw(flag), draw(flag)
    if reduction == "batchmean":
        size_average = reduce = None
    return dict(reduction=reduction, size_average=size_average, reduce=reduce)


@st.composite
def element_shapes(draw, max_side: int = 4) -> tuple[int, ...]:
    min_side = draw(st.sampled_from([1, 1, 1, 0]))  # empty arrays now and then
    return draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=min_side, max_side=max_side))


@st.composite
def regression_params(draw, loss: str) -> dict[str, Any]:
    params = {}
    if loss == "smooth-l1":
        params["beta"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.5]))
    if loss == "huber":
        params["delta"] = draw(st.sampled_from([0.5, 1.0, 3.0]))
    return params


@st.composite
def regression_cases(draw, loss: str, dtypes=FLOATS, bound: float = 10.0, max_side: int = 4) -> Case:
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(element_shapes(max_side))
    x, y = draw(arrays(dtype, shape, -bound, bound)), draw(arrays(dtype, shape, -bound, bound))
    weight = None
    if draw(st.booleans()):
        weight = draw(arrays(dtype, draw(broadcast_shapes_to(shape)), 0.0, 3.0))
    params = draw(regression_params(loss))
    return Case(loss, x, y, weight=weight, mask=draw(masks(shape)), params=params, **draw(reductions()))


@st.composite
def regression_broadcast_cases(draw, loss: str) -> Case:
    """Regression with --broadcast: input and target of different shapes, either one the smaller."""
    in_shape, t_shape = draw(broadcasting_pairs())
    dtype = draw(st.sampled_from(FLOATS))
    x, y = draw(arrays(dtype, in_shape, -10, 10)), draw(arrays(dtype, t_shape, -10, 10))
    loss_shape = np.broadcast_shapes(in_shape, t_shape)
    weight = None
    if draw(st.booleans()):
        weight = draw(arrays(dtype, draw(broadcast_shapes_to(loss_shape)), 0.0, 3.0))
    params = draw(regression_params(loss))
    return Case(loss, x, y, weight=weight, mask=draw(masks(loss_shape)), broadcast=True, params=params,
                **draw(reductions()))


@st.composite
def class_inputs(draw, loss: str, dtype) -> np.ndarray:
    classes = draw(st.integers(1, 4))
    if draw(st.integers(0, 4)) == 0:
        shape = (classes,)  # unbatched
    else:
        n = draw(st.sampled_from([1, 2, 3, 0]))
        shape = (n, classes, *draw(st.lists(st.integers(1, 3), max_size=2)))
    lo, hi = (-10.0, 0.0) if loss == "nll" else (-8.0, 8.0)  # nll reads log-probabilities
    return draw(arrays(dtype, shape, lo, hi))


@st.composite
def class_cases(draw, loss: str, dtypes=FLOATS) -> Case:
    """Class-index targets, with ignore_index (sometimes a real class) and class weights."""
    dtype = draw(st.sampled_from(dtypes))
    x = draw(class_inputs(loss, dtype))
    classes, loss_shape = class_layout(x)
    ignore_index = draw(st.sampled_from([-100, -1]) | st.integers(0, classes - 1))
    labels = st.integers(0, classes - 1) | st.just(ignore_index)
    t = draw(hnp.arrays(draw(st.sampled_from([np.int64, np.int32])), loss_shape, elements=labels))
    weight = draw(st.none() | arrays(dtype, (classes,), 0.0, 3.0))
    params: dict[str, Any] = {}
    if ignore_index != -100 or draw(st.booleans()):
        params["ignore_index"] = ignore_index
    if loss == "cross-entropy":
        params["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0]))
    return Case(loss, x, t, weight=weight, mask=draw(masks(loss_shape)), params=params, **draw(reductions()))


def softmax_of(y: np.ndarray, axis: int, dtype) -> np.ndarray:
    """Scores in [0, 1] made proper distributions along ``axis`` (+1e-3 so that no row is all zeros)."""
    return (tensor(y).double() + 1e-3).softmax(dim=axis).numpy().astype(dtype)


@st.composite
def probability_cases(draw, dtypes=FLOATS) -> Case:
    """cross-entropy against class probabilities of the input's shape (torch's rule picks them)."""
    dtype = draw(st.sampled_from(dtypes))
    x = draw(class_inputs("cross-entropy", dtype))
    classes, loss_shape = class_layout(x)
    y = draw(arrays(dtype, x.shape, 0.0, 1.0))
    if draw(st.booleans()) and y.size:  # proper distributions, or any non-negative scores (torch allows)
        y = softmax_of(y, 0 if y.ndim == 1 else 1, dtype)
    elif not draw(st.integers(0, 3)):  # torch's whole domain: it computes -Σ w_c·y_c·log_softmax(x)_c with any y
        y = draw(arrays(dtype, x.shape, -2.0, 3.0))
    weight = draw(st.none() | arrays(dtype, (classes,), 0.0, 3.0))
    params = {"label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))}
    return Case("cross-entropy", x, y, weight=weight, mask=draw(masks(loss_shape)), params=params,
                **draw(reductions()))


@st.composite
def binary_cases(draw, loss: str, dtypes=FLOATS, bound: float = 10.0, max_side: int = 4) -> Case:
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(element_shapes(max_side))
    x = draw(arrays(dtype, shape, 0.0, 1.0) if loss == "bce" else arrays(dtype, shape, -bound, bound))
    y = draw(arrays(dtype, shape, 0.0, 1.0))
    weight = pos_weight = None
    if draw(st.booleans()):
        weight = draw(arrays(dtype, draw(broadcast_shapes_to(shape)), 0.0, 3.0))
    if loss == "bce-with-logits" and draw(st.booleans()):
        pos_weight = draw(arrays(dtype, draw(broadcast_shapes_to(shape)), 0.0, 5.0))
    return Case(loss, x, y, weight=weight, pos_weight=pos_weight, mask=draw(masks(shape)),
                **draw(reductions()))


# -- the command line's one-line errors ------------------------------------------------------------------


def one_line_error(result: Any, *fragments: str) -> str:
    """A CliRunner result that failed as bad input does: exit status 2 and one line on stderr, ``error: ...``,
    holding every fragment, and no traceback anywhere. Returns the line."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
