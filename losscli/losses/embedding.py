"""Embedding losses: cosine-embedding, triplet-margin, triplet-margin-with-distance.

Each file holds embeddings ``(N, D)`` or one ``(D,)`` (the triplet losses also ``(..., D)``), the embedding
axis last; each sample has one loss, a mask selects samples (shape ``(N,)``, or ``()`` unbatched) and
``mean`` divides by the number selected. The distances are torch's, eps included:
``pairwise_distance(a, b) = ‖a - b + eps‖_p`` and ``cosine_similarity(a, b) = Σ a/max(‖a‖, 1e-8) ·
b/max(‖b‖, 1e-8)`` over the last axis; cosine-embedding's cosine is ``a·b / sqrt((‖a‖² + ε)(‖b‖² + ε))``
with torch's ``ε = 1e-12`` as a float32 (9.99999996e-13).
"""

from __future__ import annotations

import enum
import math
from typing import Any, Callable

import numpy as np

from ..errors import ShapeError
from ..reduction import Elements
from .base import Domain, FileArg, Layout, LossSpec, Option, float_dtype, note_unusual, numeric, shape_str
from .margin import PerSample


class Embeddings(PerSample):
    """Files of embeddings of one shape, ``(N, D)`` or ``(D,)`` (``any_rank``: ``(..., D)``), and for
    cosine-embedding a target per pair: -1 or 1 (other values: a loss of 0, as in torch, with a warning)."""

    def __init__(self, shapes: str, any_rank: bool = False):
        self.shapes, self.any_rank = shapes, any_rank

    def layout(self, spec, args, params, broadcast):
        names = self._embeddings(spec)
        lead = args[names[0]]
        shape = numeric(lead).shape
        if not 1 <= len(shape) <= (math.inf if self.any_rank else 2):
            forms = "(..., D)" if self.any_rank else "(N, D) or (D,)"
            raise ShapeError(f"{lead.label}: expected embeddings of shape {forms}, but got {shape_str(shape)}")
        for name in names[1:]:
            got = numeric(args[name]).shape
            if got != shape:
                raise ShapeError(f"{args[name].label}: expected {names[0]}'s shape {shape_str(shape)}, but got "
                                 f"{shape_str(got)}")
        loss_shape = shape[:-1]
        if "target" in args:
            t = numeric(args["target"])
            if t.shape != loss_shape:
                raise ShapeError(f"{args['target'].label}: expected one target per pair, {shape_str(loss_shape)}, "
                                 f"but got {shape_str(t.shape)}")
        return Layout(loss_shape, batch_axis=None if loss_shape else tuple(f.name for f in spec.files))

    def dtype(self, spec, args, layout):
        return float_dtype(*(args[n] for n in self._embeddings(spec)))

    def convert(self, spec, args, params, layout, dtype):
        arrays = {n: args[n].array.astype(dtype, copy=False) for n in self._embeddings(spec)}
        if "target" in args:
            t_arg = args["target"]
            t = numeric(t_arg)
            note_unusual(layout.warnings, t_arg, (t != 1) & (t != -1), "-1 or 1",
                         "torch gives such a pair a loss of 0")
            arrays["target"] = t_arg.array.astype(dtype, copy=False)
        return arrays

    @staticmethod
    def _embeddings(spec: LossSpec) -> list[str]:
        """The files of embeddings: every file but cosine-embedding's target."""
        return [f.name for f in spec.files if f.name != "target"]


# -- distances: each a value and its gradient with respect to the first argument -------------------

EPSILON = float(np.float32(1e-12))  # torch's cosine_embedding_loss adds it to each squared norm: a C++ float
COSINE_EPS = 1e-8  # torch's cosine_similarity: the smallest norm divided by


def _norm(v: np.ndarray, p: float) -> np.ndarray:
    """‖v‖_p over the last axis (``|v|`` is taken here only where the power needs it)."""
    if p == 1:
        return np.abs(v).sum(axis=-1)
    if p == 2:
        return np.sqrt((v * v).sum(axis=-1))
    return (np.abs(v) ** p).sum(axis=-1) ** (1 / p)


def pairwise(x1: np.ndarray, x2: np.ndarray, p: float, eps: float) -> np.ndarray:
    return _norm(x1 - x2 + eps, p)


def pairwise_and_grad(x1: np.ndarray, x2: np.ndarray, p: float, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The distance and its gradient with respect to x1, torch's norm backward: sign(v)·|v|^(p-1) / ‖v‖^(p-1),
    and 0 where ‖v‖ = 0 (``v = x1 - x2 + eps``, computed once for both)."""
    v = x1 - x2 + eps
    d = _norm(v, p)
    if p == 1:
        return d, np.sign(v)
    norm = d[..., None]
    if p == 2:
        g = v / norm
    else:
        g = np.where(v == 0, 0.0, np.sign(v) * np.abs(v) ** (p - 1)) / norm ** (p - 1)
    return d, np.where(norm == 0, 0.0, g)


def _norms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """‖x‖ over the last axis, and torch's clamped divisor max(‖x‖, 1e-8)."""
    r = np.sqrt((x * x).sum(axis=-1))
    return r, np.maximum(r, COSINE_EPS)


def cosine_similarity(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    n1, n2 = _norms(x1)[1][..., None], _norms(x2)[1][..., None]
    return (x1 / n1 * (x2 / n2)).sum(axis=-1)


def cosine_similarity_and_grad(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity and its gradient with respect to x1. torch clamps the norms without recording it: the
    gradient flows through ‖x1‖ unclamped (0 at 0). Computed in the order of torch's autograd through
    ``(x1 / n1) * (x2 / n2)``: ``c / n1`` (``c = x2 / n2``), less the norm's backward
    ``x1 · Σ c·((x1 / n1) / n1) / ‖x1‖``; so that two of them cancel as exactly as torch's do (a triplet's
    ``d(a, p) - d(a, n)`` at a degenerate point is 0, not an ulp of 1e8)."""
    (r1, n1), (_, n2) = _norms(x1), _norms(x2)
    r1, n1, n2 = r1[..., None], n1[..., None], n2[..., None]
    c, u = x2 / n2, x1 / n1
    through_norm = (c * (u / n1)).sum(axis=-1, keepdims=True)
    grad = c / n1 - np.where(r1 == 0, 0.0, x1 * through_norm / np.where(r1 == 0, 1.0, r1))
    return (u * c).sum(axis=-1), grad


def _cosine_embedding(a: dict[str, np.ndarray], p: dict[str, Any], grad_coef: np.ndarray | None = None):
    """torch's ``cos = x1·x2 / sqrt((‖x1‖² + ε)(‖x2‖² + ε))``; ``l = 1 - cos`` (y = 1) or
    ``max(0, cos - margin)`` (y = -1). With ``grad_coef``: d(Σ coef·l)/d(input1)."""
    x1, x2, y = a["input1"], a["input2"], a["target"]
    m1 = (x1 * x1).sum(axis=-1) + EPSILON
    denom = np.sqrt(m1 * ((x2 * x2).sum(axis=-1) + EPSILON))
    cos = (x1 * x2).sum(axis=-1) / denom
    if grad_coef is None:
        return Elements(np.where(y == 1, 1 - cos, np.where(y == -1, np.maximum(cos - p["margin"], 0), 0.0)))
    d_cos = x2 / denom[:, None] - (cos / m1)[:, None] * x1
    pushed = (y == -1) & (cos - p["margin"] >= 0)  # clamp_min: 1 at the kink
    slope = np.where(y == 1, -1.0, np.where(pushed, 1.0, 0.0))
    return (grad_coef * slope)[:, None] * d_cos


class Distance(str, enum.Enum):
    """triplet-margin-with-distance's distance function."""

    pairwise = "pairwise"  # torch's default, pairwise_distance(a, b) (p = 2, eps = 1e-6)
    cosine = "cosine"  # 1 - cosine_similarity(a, b) over the last axis


Measure = Callable[[np.ndarray, np.ndarray], np.ndarray]
MeasureAndGrad = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _distance(p: dict[str, Any]) -> tuple[Measure, MeasureAndGrad]:
    """The distance, and the distance with its gradient with respect to the first argument."""
    if p.get("distance") is Distance.cosine:
        def cosine_and_grad(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            similarity, grad = cosine_similarity_and_grad(u, v)
            return 1 - similarity, -grad

        return (lambda u, v: 1 - cosine_similarity(u, v)), cosine_and_grad
    norm, eps = p.get("p", 2.0), p.get("eps", 1e-6)
    return (lambda u, v: pairwise(u, v, norm, eps)), (lambda u, v: pairwise_and_grad(u, v, norm, eps))


def _triplet(a: dict[str, np.ndarray], p: dict[str, Any], grad_coef: np.ndarray | None = None):
    """``l = max(0, margin + d(a, p) - d(a, n))``, with --swap ``d(a, n)`` replaced by ``min(d(a, n), d(p, n))``.
    With ``grad_coef``: d(Σ coef·l)/d(anchor), the gradient passing at the kink and split at a tie of the
    minimum, as torch's clamp_min and minimum do."""
    dist, dist_and_grad = _distance(p)
    anchor, positive, negative = a["anchor"], a["positive"], a["negative"]
    if grad_coef is None:
        d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    else:
        (d_pos, g_pos), (d_neg, g_neg) = dist_and_grad(anchor, positive), dist_and_grad(anchor, negative)
    share = None  # how much of d(a, n) reaches the loss: all of it without --swap
    if p["swap"]:
        d_swap = dist(positive, negative)
        share = np.where(d_neg < d_swap, 1.0, np.where(d_neg == d_swap, 0.5, 0.0))
        d_neg = np.minimum(d_neg, d_swap)
    z = p["margin"] + d_pos - d_neg
    if grad_coef is None:
        return Elements(np.maximum(z, 0))
    active = (grad_coef * (z >= 0))[..., None]
    return active * (g_pos - (g_neg if share is None else share[..., None] * g_neg))


def _torch_distance(F: Any, p: dict[str, Any]):
    if p["distance"] is Distance.cosine:
        return lambda u, v: 1 - F.cosine_similarity(u, v, dim=-1)
    return None  # torch's default: pairwise_distance


TRIPLETS = (FileArg("anchor", "anchor embeddings"), FileArg("positive", "positive embeddings"),
            FileArg("negative", "negative embeddings"))
TRIPLET_SHAPES = "anchor, positive and negative of one shape, (N, D), (D,) or (..., D); one loss per triplet"
MARGIN = Option("margin", float, 1.0, "how much closer the positive must be than the negative (> 0)",
                Domain(0, open_low=True))
SWAP = Option("swap", bool, False, "use min(d(a, n), d(p, n)) as the negative distance (distance swap)")

COSINE_EMBEDDING = LossSpec(
    name="cosine-embedding",
    torch_name="cosine_embedding_loss",
    summary="Cosine embedding: pairs with target 1 pulled to cosine 1, with -1 pushed below the margin.",
    formula="l = 1 - cos(x1, x2) if y = 1, max(0, cos(x1, x2) - margin) if y = -1  "
    "(cos = x1·x2 / sqrt((‖x1‖² + 1e-12)(‖x2‖² + 1e-12))), 0 for any other y",
    mean_rule="N pairs (those selected)",
    family=Embeddings("input1 and input2 (N, D) or (D,); target -1 or 1 (other values: a loss of 0, as in torch, "
                      "with a warning), (N,) or (); one loss per pair"),
    files=(FileArg("input1", "first embeddings"), FileArg("input2", "second embeddings"),
           FileArg("target", "targets, -1 or 1, one per pair")),
    numpy=lambda a, p, b: _cosine_embedding(a, p),
    torch=lambda F, t, p, r: F.cosine_embedding_loss(t["input1"], t["input2"], t["target"], margin=p["margin"],
                                                     reduction=r),
    grad=lambda a, p, b, c: _cosine_embedding(a, p, c),
    options=(Option("margin", float, 0.0, "cosine below which dissimilar pairs cost nothing (-1 to 1)"),),
    example="losscli cosine-embedding samples/margin/emb1.npy samples/margin/emb2.npy "
    "samples/margin/pair_target.csv --margin 0.2",
)

TRIPLET_MARGIN = LossSpec(
    name="triplet-margin",
    torch_name="triplet_margin_loss",
    summary="Triplet loss: the anchor should be a margin closer to the positive than to the negative.",
    formula="l = max(0, margin + d(a, p) - d(a, n))  (d(u, v) = ‖u - v + eps‖_p over the last axis)",
    mean_rule="N triplets (those selected)",
    family=Embeddings(TRIPLET_SHAPES, any_rank=True),
    files=TRIPLETS,
    numpy=lambda a, p, b: _triplet(a, p),
    torch=lambda F, t, p, r: F.triplet_margin_loss(t["anchor"], t["positive"], t["negative"], margin=p["margin"],
                                                   p=p["p"], eps=p["eps"], swap=p["swap"], reduction=r),
    grad=lambda a, p, b, c: _triplet(a, p, c),
    options=(MARGIN, Option("p", float, 2.0, "degree of the norm (> 0, finite)",
                                  Domain(0, open_low=True, open_high=True)),
             Option("eps", float, 1e-6, "added to u - v before the norm, as torch does"), SWAP),
    example="losscli triplet-margin samples/margin/anchor.npy samples/margin/positive.npy "
    "samples/margin/negative.npy --swap",
)

TRIPLET_MARGIN_WITH_DISTANCE = LossSpec(
    name="triplet-margin-with-distance",
    torch_name="triplet_margin_with_distance_loss",
    summary="Triplet loss with a chosen distance: pairwise (torch's default) or cosine.",
    formula="l = max(0, margin + d(a, p) - d(a, n))  (d: pairwise_distance, or 1 - cosine_similarity over "
    "the last axis)",
    mean_rule="N triplets (those selected)",
    family=Embeddings(TRIPLET_SHAPES, any_rank=True),
    files=TRIPLETS,
    numpy=lambda a, p, b: _triplet(a, p),
    torch=lambda F, t, p, r: F.triplet_margin_with_distance_loss(
        t["anchor"], t["positive"], t["negative"], distance_function=_torch_distance(F, p), margin=p["margin"],
        swap=p["swap"], reduction=r),
    grad=lambda a, p, b, c: _triplet(a, p, c),
    options=(Option("distance", Distance, Distance.pairwise,
                    "pairwise: ‖a - b + 1e-6‖₂ (torch's default); cosine: 1 - cosine_similarity(a, b)"),
             MARGIN, SWAP),
    example="losscli triplet-margin-with-distance samples/margin/anchor.npy samples/margin/positive.npy "
    "samples/margin/negative.npy --distance cosine --margin 0.5",
)

LOSSES = (COSINE_EMBEDDING, TRIPLET_MARGIN, TRIPLET_MARGIN_WITH_DISTANCE)
