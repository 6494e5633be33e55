"""Margin losses: margin-ranking, hinge-embedding, soft-margin (element-wise, targets usually -1 or 1), and
multilabel-soft-margin, multilabel-margin, multi-margin (one loss per sample over its class scores).

Element-wise losses take files of one shape, and a mask selects elements. Class-score losses take input
``(N, C)`` or ``(C,)`` (multilabel-soft-margin: ``(..., C)``, the class axis last, as torch reads it; multi-margin
and multilabel-margin also a 0-d input, one class) and give one loss per sample, averaged over the ``C`` classes
inside the sample as torch does; a mask selects samples (the loss's shape: ``(N,)``, or ``()`` unbatched), and
``mean`` divides by the number of samples selected, whatever the class weights (torch divides by ``N``).

Targets torch computes with but the loss does not expect (a hinge target of 0 or 2, a multi-hot target of
-1, class indices after a row's first -1) give torch's value and a warning saying what torch does with them
(:func:`~.base.note_unusual`); ``strict`` refuses them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements
from .base import (Arg, Family, FileArg, Layout, LossSpec, Option, class_weight, first, float_dtype, integers,
                   note_unusual, numeric, offending, select, shape_str)
from .binary import log_sigmoid, sigmoid
from .classification import CLASS_WEIGHT_HELP

# -- families --------------------------------------------------------------------------------------


class SameShape(Family):
    """Element-wise losses of files of one shape; the target usually holds -1 or 1 (torch takes any number)."""

    shapes = "every file of one shape; target -1 or 1 (other values: torch's value, with a warning)"
    stream_rank = 1

    def __init__(self, dtype_from: tuple[str, ...], torch_does: str, negates: bool = False):
        self.dtype_from = dtype_from  # the files whose float dtypes torch promotes into the result's
        self.torch_does = torch_does  # what torch does with a target other than -1 or 1
        self.negates = negates  # torch negates the target: it refuses a boolean one

    def layout(self, spec, args, params, broadcast):
        names = [f.name for f in spec.files]
        shape = numeric(args[names[0]]).shape
        for name in names[1:]:
            got = numeric(args[name]).shape
            if got != shape:
                raise ShapeError(f"{args[name].label}: expected {names[0]}'s shape {shape_str(shape)}, but got "
                                 f"{shape_str(got)}")
        return Layout(shape)

    def dtype(self, spec, args, layout):
        return float_dtype(*(args[n] for n in self.dtype_from))

    def convert(self, spec, args, params, layout, dtype):
        t_arg = args["target"]
        t = numeric(t_arg)
        if self.negates and t.dtype == bool:
            raise ValueDomainError(f"{t_arg.label}: expected numbers, but got bool values (torch cannot negate a "
                                   "boolean target); save them as -1 and 1")
        note_unusual(layout.warnings, t_arg, (t != 1) & (t != -1), "-1 or 1", self.torch_does)
        return {f.name: args[f.name].array.astype(dtype, copy=False) for f in spec.files}


class PerSample(Family):
    """Losses with one value per sample: the backends see a batch axis (added for unbatched inputs), and a
    mask selects rows of every file but the class weights."""

    stream_rank = 2  # (N, C) or (N, D): rows are samples; a (C,) or (D,) input is one sample
    shared_files = ("weight",)

    def torch_select(self, torch, tensors, mask, params, batch):
        return {k: v if k == "weight" else v[mask] for k, v in tensors.items()}


class ClassScores(PerSample):
    """Class scores ``(N, C)``, ``(C,)`` or ``()`` (``any_rank``: ``(..., C)``) and one loss per sample.
    ``target``: ``multi_hot`` (0/1 of the input's shape), ``lists`` (class indices of the input's shape, padded
    with -1) or ``labels`` (one class index per sample). The backends see ``(N, C)`` (``(..., C)``)."""

    def __init__(self, target: str, shapes: str, any_rank: bool = False):
        self.target, self.shapes, self.any_rank = target, shapes, any_rank

    def stream(self, spec, shapes, broadcast):
        split = super().stream(spec, shapes, broadcast)
        if split is None or (self.target == "labels" and len(shapes["target"]) != 1):
            return None  # a (1, C) input with a 0-d target: one sample
        w, x = shapes.get("weight", ()), shapes["input"]
        if self.target == "multi_hot" and len(w) == len(x) and w[:1] == x[:1]:
            return split | {"weight"}  # a weight of the input's rows (it broadcasts to the input)
        return split

    def layout(self, spec, args, params, broadcast):
        x_arg, t_arg = args["input"], args["target"]
        x, t = numeric(x_arg), numeric(t_arg)
        if (x.ndim == 0 and self.any_rank) or (x.ndim > 2 and not self.any_rank):
            forms = "(..., C)" if self.any_rank else "(N, C), (C,) or ()"
            raise ShapeError(f"{x_arg.label}: expected class scores of shape {forms}, but got {shape_str(x.shape)}")
        if x.ndim and x.shape[-1] == 0:
            raise ShapeError(f"{x_arg.label}: expected at least one class, but got shape {shape_str(x.shape)}")
        classes = x.shape[-1] if x.ndim else 1
        if self.any_rank:
            self._check_target_shape(t_arg, x.shape, t.shape == x.shape, "the input's shape")
            return Layout(x.shape[:-1], classes=classes,
                          batch_axis=None if x.ndim > 1 else ("input", "target", "weight"))
        if self.target == "labels":  # torch: one index per sample, in <= 1 dimension; the loss has its shape
            rows = x.shape[0] if x.ndim == 2 else 1
            self._check_target_shape(t_arg, x.shape[:1] if x.ndim == 2 else (), t.ndim <= 1 and t.size == rows,
                                     "one class index per sample")
            return Layout(t.shape, classes=classes)
        # lists: the input's shape; unbatched, torch takes any target of <= 1 dimension with C entries
        fits = t.shape == x.shape if x.ndim == 2 else t.ndim <= 1 and t.size == classes
        self._check_target_shape(t_arg, x.shape, fits, "the input's shape")
        return Layout(x.shape[:1] if x.ndim == 2 else (), classes=classes)

    @staticmethod
    def _check_target_shape(t_arg: Arg, want: tuple[int, ...], fits: bool, what: str) -> None:
        if not fits:
            raise ShapeError(f"{t_arg.label}: expected {what}, {shape_str(want)}, but got "
                             f"{shape_str(t_arg.array.shape)}")

    def dtype(self, spec, args, layout):
        if self.target == "multi_hot":
            return float_dtype(args["input"], args["target"], *([args["weight"]] if "weight" in args else []))
        return float_dtype(args["input"])

    def convert(self, spec, args, params, layout, dtype):
        t_arg = args["target"]
        x = args["input"].array.astype(dtype, copy=False)
        if self.target == "multi_hot":
            target = numeric(t_arg)
            if target.dtype == bool:
                raise ValueDomainError(f"{t_arg.label}: expected numbers, but got bool values (torch cannot "
                                       "subtract a boolean target from 1); save them as 0 and 1")
            note_unusual(layout.warnings, t_arg, ~((target >= 0) & (target <= 1)),
                         "0 or 1 (or probabilities in [0, 1])",
                         "torch computes -(y·log σ(x) + (1 - y)·log σ(-x)) with them as they are")
            return {"input": x, "target": target.astype(dtype, copy=False)}
        target = integers(t_arg, "class indices")
        if self.target == "lists":
            self._check_lists(t_arg, target, layout.classes, layout.warnings)
        else:
            self._check_labels(t_arg, target, layout.classes)
        x = x.reshape(-1, layout.classes)  # (N, C): a (C,) or 0-d input is one sample
        return {"input": x, "target": target.reshape(x.shape if self.target == "lists" else x.shape[:1])}

    def weight(self, arg, layout, dtype):
        if self.target != "multi_hot":
            return class_weight(arg, layout.classes, dtype)
        shape = tuple(layout.loss_shape) + (layout.classes,)
        w = numeric(arg)
        try:
            fits = np.broadcast_shapes(w.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:  # torch broadcasts any weight with the input: one that grows the loss's shape is refused here
            raise ShapeError(f"{arg.label}: expected one weight per class, shape ({layout.classes},), or a shape "
                             f"that broadcasts to the input's {shape_str(shape)}, but got {shape_str(w.shape)}")
        return np.broadcast_to(w.astype(dtype, copy=False), shape)

    def classes(self, spec, batch):
        if self.target != "labels":
            return None  # multi-hot or lists of labels: a sample's loss is over several classes
        return batch.arrays["target"], batch.arrays["input"].shape[-1]

    def batch(self, arrays, mask, layout, dtype):
        if mask is not None and not self.any_rank:
            mask = mask.reshape(arrays["input"].shape[:1])  # the loss's shape () or (1,): one sample
        return super().batch(arrays, mask, layout, dtype)

    def torch_select(self, torch, tensors, mask, params, batch):
        if self.target == "multi_hot":  # the weight has the input's shape (broadcast): its rows are selected too
            return {k: v[mask] for k, v in tensors.items()}
        return super().torch_select(torch, tensors, mask, params, batch)

    @staticmethod
    def _check_labels(arg: Arg, t: np.ndarray, classes: int) -> None:
        where = first((t < 0) | (t >= classes))
        if where is not None:
            raise ValueDomainError(f"{arg.label}: expected class indices in [0, {classes}), but got "
                                   f"{offending(t, where, arg)}")

    @staticmethod
    def _check_lists(arg: Arg, t: np.ndarray, classes: int, warnings: list[str]) -> None:
        """Class indices padded with -1; a class after a row's first -1 is noted. The whole (N, C) masks are
        built only when the cheap tests (the extremes; each row's -1s against its length) find something."""
        if t.size and (t.min() < -1 or t.max() >= classes):
            where = first((t < -1) | (t >= classes))
            raise ValueDomainError(f"{arg.label}: expected class indices in [0, {classes}) padded with -1, but "
                                   f"got {offending(t, where, arg)}")
        pad = t.reshape(-1, classes) == -1
        lengths = _list_lengths(pad)
        if np.any(np.count_nonzero(pad, axis=1) < classes - lengths):
            after = np.arange(classes) >= lengths[:, None]  # at or after each row's first -1
            note_unusual(warnings, arg, (after & ~pad).reshape(t.shape), "-1 after a row's first -1",
                         "torch ignores the rest of such a row")


# -- math -------------------------------------------------------------------------------------------


def _ranking(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    return -a["target"] * (a["input1"] - a["input2"]) + p["margin"]


def _hinge(a: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """torch's sum of both terms: ``x`` where the target is not -1, ``max(0, margin - x)`` where it is not 1
    (so a target of 0, 2 or NaN adds both)."""
    x, y = a["input"], a["target"]
    return select(y != -1, x) + select(y != 1, np.maximum(p["margin"] - x, 0))


def _hinge_grad(a: dict[str, np.ndarray], p: dict[str, Any], coef: np.ndarray) -> np.ndarray:
    # torch's clamp_min passes the gradient at the kink (margin - x == 0)
    x, y = a["input"], a["target"]
    return coef * np.subtract(y != -1, (y != 1) & (p["margin"] - x >= 0), dtype=np.float64)


def _soft(a: dict[str, np.ndarray]) -> np.ndarray:
    return -log_sigmoid(a["input"] * a["target"])  # log(1 + exp(-y·x)), without overflow


def _multilabel_soft(a: dict[str, np.ndarray]) -> Elements:
    x, y, w = a["input"], a["target"], a.get("weight")
    terms = -(y * log_sigmoid(x) + (1 - y) * log_sigmoid(-x))
    terms = terms if w is None else terms * w
    return Elements(terms.sum(axis=-1) / x.shape[-1])


def _multilabel_soft_grad(a: dict[str, np.ndarray], coef: np.ndarray) -> np.ndarray:
    x, w = a["input"], a.get("weight", 1.0)
    return coef[..., None] * w * (sigmoid(x) - a["target"]) / x.shape[-1]


def _list_lengths(pad: np.ndarray) -> np.ndarray:
    """How many classes each row of -1-padded class lists (N, C) lists, from where they hold -1 (``pad``):
    the position of the row's first -1, else C."""
    return np.where(pad.any(axis=1), pad.argmax(axis=1), pad.shape[1])


def _label_lists(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For -1-padded class lists (N, C), up to the longest list's length W: which positions hold a class
    (before the row's first -1) and those classes (0 where none), (N, W) each."""
    lengths = _list_lengths(t == -1)
    listed = np.arange(lengths.max(initial=0)) < lengths[:, None]
    return listed, np.where(listed, t[:, :listed.shape[1]], 0)


def _multilabel_margin(a: dict[str, np.ndarray], grad_coef: np.ndarray | None = None):
    """Per sample ``Σ_j Σ_{i not listed} max(0, 1 - (x[y_j] - x[i])) / C``, j over the listed classes
    (a class listed twice counts twice, as in torch); with ``grad_coef``, d(Σ coef·loss)/d(input) instead
    (no gradient where 1 - (x[y_j] - x[i]) is exactly 0: torch's kink).

    One whole-batch pass per list position k: ``z = (1 - x[y_k]) + x`` (torch's order), with the listed
    classes' scores made -inf first, and ``1 - x[y_k]`` made -inf in rows whose list is shorter, so that those
    z are -inf or NaN, which ``fmax(z, 0)`` and ``z > 0`` drop as torch skips them; a NaN z adds nothing either
    way, as torch's ``if z > 0``. The gradient counts, per element, the positions whose hinge is active (each
    adds ``coef / C`` there, and takes as much from ``x[y_k]``)."""
    x, (listed, ys) = a["input"], _label_lists(a["target"])
    n, c = x.shape
    rows, others = np.arange(n), x.copy()
    others[np.broadcast_to(rows[:, None], listed.shape)[listed], ys[listed]] = -np.inf
    z, loss = np.empty_like(x), np.zeros(n)
    if grad_coef is not None:
        above, active, pulls = np.empty(x.shape, bool), np.zeros(x.shape, np.int32), np.zeros(ys.shape, np.int64)
    for k in range(listed.shape[1]):  # position k of every row's list
        np.add(others, np.where(listed[:, k], 1 - x[rows, ys[:, k]], -np.inf)[:, None], out=z)
        if grad_coef is None:
            loss += np.fmax(z, 0, out=z).sum(axis=1)
        else:
            active += np.greater(z, 0, out=above)
            pulls[:, k] = np.count_nonzero(above, axis=1)
    if grad_coef is None:
        return Elements(loss / c)
    scale = grad_coef / c
    grad = active * scale[:, None]
    for k in range(listed.shape[1]):  # one y_k per row: no index repeats within a position
        grad[rows, ys[:, k]] -= pulls[:, k] * scale
    return grad


def _multi_margin_z(a: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``z = (margin - x[y]) + x[i]`` for every class (N, C), in torch's order; the row indices; and ``w[y]``."""
    x, y, w = a["input"], a["target"], a.get("weight")
    rows = np.arange(x.shape[0])
    z = x + (p["margin"] - x[rows, y])[:, None]
    return z, rows, (np.ones(x.shape[0]) if w is None else w[y])


def _multi_margin(a: dict[str, np.ndarray], p: dict[str, Any]) -> Elements:
    """``fmax`` keeps torch's ``if z > 0`` (a NaN z adds nothing); the target's own term is then dropped."""
    z, rows, w_y = _multi_margin_z(a, p)
    terms = np.fmax(z, 0, out=z)
    if p["p"] == 2:
        terms *= terms
    terms[rows, a["target"]] = 0
    return Elements(w_y * terms.sum(axis=1) / z.shape[1])


def _multi_margin_grad(a: dict[str, np.ndarray], p: dict[str, Any], coef: np.ndarray) -> np.ndarray:
    z, rows, w_y = _multi_margin_z(a, p)
    scale = (coef * w_y / z.shape[1])[:, None]
    active = z > 0  # torch: a term only there (not at the kink, nor for a NaN z), a 0 elsewhere whatever the scale
    h = select(active, scale if p["p"] == 1 else np.multiply(z, 2 * scale, out=z))
    h[rows, a["target"]] = 0
    h[rows, a["target"]] = -h.sum(axis=1)
    return h


def _torch_empty_mean(call, t: dict[str, Any], r: str):
    """torch 2.13's multi_margin_loss and multilabel_margin_loss reduce no samples to uninitialised memory
    (mean and sum alike); losscli gives what every other loss gives there: NaN for mean, 0 for sum."""
    if r != "none" and t["input"].shape[0] == 0:
        return getattr(call("none"), r)()
    return call(r)


def _check_multi_margin(args: dict[str, Any], arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
    if params["p"] not in (1, 2):
        raise OptionError(f"expected 1 or 2 (the only powers torch supports), but got {params['p']}", argument="p")


# -- specs ------------------------------------------------------------------------------------------

PER_SAMPLE_MEAN = "N samples (those selected), with or without --weight"

MARGIN_RANKING = LossSpec(
    name="margin-ranking",
    torch_name="margin_ranking_loss",
    summary="Ranking hinge: input1 should rank above input2 where the target is 1, below where it is -1.",
    formula="l = max(0, -y·(x1 - x2) + margin)  (y: -1 or 1; torch takes any number, with a warning)",
    mean_rule="n elements",
    family=SameShape(("input1", "input2", "target"),
                     "torch scales the ranking term by them: max(0, -y·(x1 - x2) + margin)", negates=True),
    files=(FileArg("input1", "first scores"), FileArg("input2", "second scores"),
           FileArg("target", "targets, -1 or 1")),
    numpy=lambda a, p, b: Elements(np.maximum(_ranking(a, p), 0)),
    torch=lambda F, t, p, r: F.margin_ranking_loss(t["input1"], t["input2"], t["target"], margin=p["margin"],
                                                   reduction=r),
    grad=lambda a, p, b, c: c * -a["target"] * (_ranking(a, p) >= 0),  # clamp_min: gradient at the kink
    options=(Option("margin", float, 0.0, "how far input1 must rank above input2"),),
    example="losscli margin-ranking samples/margin/scores1.npy samples/margin/scores2.npy "
    "samples/margin/rank_target.csv",
)

HINGE_EMBEDDING = LossSpec(
    name="hinge-embedding",
    torch_name="hinge_embedding_loss",
    summary="Hinge embedding: distances of similar pairs (target 1) pulled down, of dissimilar (-1) pushed "
    "past the margin.",
    formula="l = x if y = 1, max(0, margin - x) if y = -1, their sum for any other y (as torch; with a warning)"
    "  (x: typically a distance)",
    mean_rule="n elements",
    family=SameShape(("input",), "torch adds both terms for them: x + max(0, margin - x)"),
    files=(FileArg("input", "distances (or other scores)"), FileArg("target", "targets, -1 or 1")),
    numpy=lambda a, p, b: Elements(_hinge(a, p)),
    torch=lambda F, t, p, r: F.hinge_embedding_loss(t["input"], t["target"], margin=p["margin"], reduction=r),
    grad=lambda a, p, b, c: _hinge_grad(a, p, c),
    options=(Option("margin", float, 1.0, "how far dissimilar pairs must be"),),
    example="losscli hinge-embedding samples/margin/distances.npy samples/margin/pair_target.npy --margin 2",
)

SOFT_MARGIN = LossSpec(
    name="soft-margin",
    torch_name="soft_margin_loss",
    summary="Two-class logistic loss of scores against -1/1 targets.",
    formula="l = log(1 + exp(-y·x))  (y: -1 or 1; torch takes any number, with a warning)",
    mean_rule="n elements",
    family=SameShape(("input",), "torch scales the input by them: log(1 + exp(-y·x))"),
    numpy=lambda a, p, b: Elements(_soft(a)),
    torch=lambda F, t, p, r: F.soft_margin_loss(t["input"], t["target"], reduction=r),
    grad=lambda a, p, b, c: c * -a["target"] * sigmoid(-a["input"] * a["target"]),
    example="losscli soft-margin samples/margin/scores1.npy samples/margin/rank_target.csv",
)

MULTILABEL_SOFT_MARGIN = LossSpec(
    name="multilabel-soft-margin",
    torch_name="multilabel_soft_margin_loss",
    summary="Multi-label logistic loss: per-class binary cross-entropy of logits, averaged over the classes.",
    formula="l = -1/C·Σ_c w_c·(y_c·log σ(x_c) + (1 - y_c)·log σ(-x_c))  (one value per sample)",
    mean_rule=PER_SAMPLE_MEAN,
    family=ClassScores("multi_hot", "input (N, C), (C,) or (..., C), the class axis last; target 0/1 of the "
                       "input's shape; --weight (C,) or broadcasting to the input; one loss per sample",
                       any_rank=True),
    numpy=lambda a, p, b: _multilabel_soft(a),
    torch=lambda F, t, p, r: F.multilabel_soft_margin_loss(t["input"], t["target"], weight=t.get("weight"),
                                                           reduction=r),
    grad=lambda a, p, b, c: _multilabel_soft_grad(a, c),
    weight_help=CLASS_WEIGHT_HELP,
    example="losscli multilabel-soft-margin samples/margin/class_scores.npy samples/margin/multi_hot.npy "
    "--weight samples/margin/class_weight.npy",
)

MULTILABEL_MARGIN = LossSpec(
    name="multilabel-margin",
    torch_name="multilabel_margin_loss",
    summary="Multi-label hinge: every listed class should score 1 above every unlisted one.",
    formula="l = Σ_j Σ_{i not listed} max(0, 1 - (x[y_j] - x[i])) / C  (y: class indices, padded with -1)",
    mean_rule="N samples (those selected)",
    family=ClassScores("lists", "input (N, C), (C,) or (); target of the input's shape: each row's class "
                       "indices, then -1 padding; one loss per sample"),
    numpy=lambda a, p, b: _multilabel_margin(a),
    torch=lambda F, t, p, r: _torch_empty_mean(
        lambda red: F.multilabel_margin_loss(t["input"], t["target"], reduction=red), t, r),
    grad=lambda a, p, b, c: _multilabel_margin(a, c),
    example="losscli multilabel-margin samples/margin/class_scores.npy samples/margin/label_lists.npy",
)

MULTI_MARGIN = LossSpec(
    name="multi-margin",
    torch_name="multi_margin_loss",
    summary="Multi-class hinge: the target class should score a margin above every other class.",
    formula="l = w[y]·Σ_{i != y} max(0, margin - x[y] + x[i])^p / C  (y: a class index per sample)",
    mean_rule=PER_SAMPLE_MEAN,
    family=ClassScores("labels", "input (N, C), (C,) or (); target class indices (N,), or () or (1,) for one "
                       "sample; one loss per sample, of the target's shape"),
    numpy=lambda a, p, b: _multi_margin(a, p),
    torch=lambda F, t, p, r: _torch_empty_mean(
        lambda red: F.multi_margin_loss(t["input"], t["target"], p=p["p"], margin=p["margin"],
                                        weight=t.get("weight"), reduction=red), t, r),
    grad=lambda a, p, b, c: _multi_margin_grad(a, p, c),
    options=(Option("p", int, 1, "1 or 2: the power of each hinge term"),
             Option("margin", float, 1.0, "how far above the other classes the target class must score")),
    weight_help=CLASS_WEIGHT_HELP + ": the target class's weight scales its sample's loss",
    check=_check_multi_margin,
    example="losscli multi-margin samples/margin/class_scores.npy samples/margin/labels.csv --p 2",
)

LOSSES = (MARGIN_RANKING, HINGE_EMBEDDING, SOFT_MARGIN, MULTILABEL_SOFT_MARGIN, MULTILABEL_MARGIN, MULTI_MARGIN)
