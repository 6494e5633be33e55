"""Sequence losses: ctc over frame-wise log-probabilities, and linear-cross-entropy, the cross-entropy of a
linear layer's logits computed a chunk of classes at a time.

**ctc** reads log_probs ``(T, N, C)`` (or unbatched ``(T, C)``), targets padded ``(N, S)`` or concatenated
``(Σ target_lengths,)``, and input_lengths, target_lengths ``(N,)``. A sample's loss is the negative log of
the total probability of every alignment of its target to its first ``input_lengths[n]`` frames (Graves
et al. 2006, eq. 6-8: the forward recursion in log space). ``mean`` divides each sample's loss by its
target length (at least 1) and then averages over the samples, as torch does; a mask selects samples.

**linear-cross-entropy** reads input ``(N, H)`` (or ``(H,)``), linear_weight ``(C, H)`` (or
``(C, d1, ..., dK, H)``: K-dimensional logits, batched input only), and a target as cross-entropy takes it
for the logits ``input @ linear_weight.T + linear_bias``: class indices ``(N, d1, ...)`` or probabilities of
the logits' shape. The formulas are cross-entropy's (label smoothing, class weights, ignore_index); the
numpy backend never holds the ``(N, C, ...)`` logits whole: it walks blocks of rows and chunks of classes
(:data:`CLASS_CHUNK`, :data:`CHUNK_ELEMENTS`) with an online log-sum-exp, and its gradient walks them again.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, NamedTuple

import numpy as np

from ..blas import single_threaded
from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements
from .base import (Arg, Batch, Family, FileArg, Layout, LossSpec, Option, TargetKind, first, float_dtype, integers,
                   numeric, offending, shape_str)
from .classification import CLASS_WEIGHT_HELP, CROSS_ENTROPY, IGNORE_INDEX, Classes, logsumexp

NEG_INF = -np.inf

# ------------------------------------------------------------------------------------------------ ctc


def _non_finite_log_probs(arg: Arg, nan_policy: str, warnings: list[str]) -> None:
    """log_probs may hold -inf (a probability of 0); NaN and +inf are what --nan-policy is about. The maximum
    finds both in one pass (it is NaN or inf exactly when one is there); they are counted only then."""
    x = arg.array
    if not x.size or x.max() < np.inf:
        return
    bad = np.isnan(x) | (x == np.inf)
    count = int(np.count_nonzero(bad))
    if not count:
        return
    where = offending(x, first(bad))
    if nan_policy == "raise":
        raise ValueDomainError(f"{arg.label}: expected log-probabilities (finite or -inf) ({{nan_policy=raise}}), "
                               f"but got {where}")
    warnings.append(f"{arg.label} holds {count} NaN or +inf value(s) (first: {where}); the result "
                    "propagates them")


def _padded(targets: np.ndarray, target_lengths: np.ndarray, fill: int) -> np.ndarray:
    """Targets as ``(N, max target length)``, the unused tail of each row set to ``fill``."""
    width = int(target_lengths.max(initial=0))
    j = np.arange(width)
    used = j < target_lengths[:, None]
    if targets.ndim == 2:
        return np.where(used, targets[:, :width], fill)
    starts = np.cumsum(target_lengths) - target_lengths
    index = np.clip(starts[:, None] + j, 0, max(targets.size - 1, 0))
    return np.where(used, targets[index] if targets.size else fill, fill)


class Alignments(Family):
    """ctc: log_probs ``(T, N, C)`` or ``(T, C)``; targets ``(N, S)`` padded or ``(Σ target_lengths,)``
    concatenated; input_lengths and target_lengths ``(N,)`` (``()`` or ``(1,)`` unbatched). The loss has one
    element per sample, shape ``(N,)`` (``()`` unbatched); the backends see the batched layout."""

    shapes = ("log_probs (T, N, C) or (T, C); targets (N, S) padded or (Σ target_lengths,) concatenated; "
              "input_lengths and target_lengths (N,); the loss: one value per sample")
    # no streaming (losscli.engine): the samples are axis 1 of log_probs, and concatenated targets have no row
    # per sample, so ctc computes in memory
    stream_rank = None

    def layout(self, spec, args, params, broadcast):
        lp_arg = args["log_probs"]
        lp = numeric(lp_arg)
        if lp.ndim not in (2, 3):
            raise ShapeError(f"{lp_arg.label}: expected log-probabilities of shape (T, N, C) or (T, C), but got "
                             f"{shape_str(lp.shape)}")
        if lp.size == 0:  # torch: "log_probs tensor must not be empty"
            raise ShapeError(f"{lp_arg.label}: expected at least one frame, sample and class, but got shape "
                             f"{shape_str(lp.shape)}")
        batched = lp.ndim == 3
        samples = lp.shape[1] if batched else 1
        # unbatched: the mask gets the batch axis; the files get theirs in convert
        return Layout((samples,) if batched else (), rows=samples, classes=lp.shape[-1],
                      batch_axis=None if batched else ())

    def dtype(self, spec, args, layout):
        dtype = float_dtype(args["log_probs"])
        if dtype not in (np.float32, np.float64):
            raise ValueDomainError(f"{args['log_probs'].label}: expected float32 or float64 log-probabilities "
                                   f"(torch's ctc_loss takes no other on CPU), but got {dtype}")
        return dtype

    def convert(self, spec, args, params, layout, dtype):
        lp_arg, tg_arg, il_arg, tl_arg = (args[f.name] for f in spec.files)
        lp, classes, samples, batched = lp_arg.array, layout.classes, layout.rows, layout.batch_axis is None
        blank = params["blank"]
        if not 0 <= blank < classes:
            raise OptionError(f"expected a class index in [0, {classes}), but got {blank}", argument="blank")
        il = self._lengths(il_arg, samples, batched)
        tl = self._lengths(tl_arg, samples, batched)
        too_long = il > lp.shape[0]
        if np.any(too_long):
            raise ValueDomainError(f"{il_arg.label}: expected input lengths of at most {lp.shape[0]} (the frames "
                                   f"of log_probs), but got {offending(il, first(too_long))}")
        targets = integers(tg_arg, "labels")
        self._check_target_layout(tg_arg, targets, tl_arg, tl, samples, batched)
        labels = _padded(targets, tl, blank)
        self._check_labels(tg_arg, targets, labels, tl, classes, blank)
        self._warn_unalignable(il_arg, labels, il, tl, params["zero_infinity"], layout.warnings)
        return {"log_probs": (lp if batched else lp[:, None]).astype(dtype, copy=False), "targets": targets,
                "input_lengths": il, "target_lengths": tl}

    def non_finite(self, batch, args, nan_policy):
        _non_finite_log_probs(args["log_probs"], nan_policy, batch.warnings)

    @staticmethod
    def _check_labels(tg_arg: Arg, targets: np.ndarray, labels: np.ndarray, tl: np.ndarray, classes: int,
                      blank: int) -> None:
        """Every label a target length uses: a class index other than the blank."""
        used = np.arange(labels.shape[1]) < tl[:, None]
        bad = used & ((labels < 0) | (labels >= classes) | (labels == blank))
        where = first(bad)
        if where is not None:
            n, j = np.unravel_index(where, labels.shape)
            at = f"index ({n}, {j})" if targets.ndim == 2 else f"index {int(tl[:n].sum()) + j}"
            raise ValueDomainError(f"{tg_arg.label}: expected labels in [0, {classes}) other than the blank "
                                   f"{blank}, but got {labels[n, j]} at {at}")

    @staticmethod
    def _lengths(arg: Arg, samples: int, batched: bool) -> np.ndarray:
        lengths = integers(arg, "lengths")
        if lengths.shape != (samples,) and (batched or lengths.shape != ()):
            expected = f"(N,) = ({samples},)" if batched else "() or (1,)"
            raise ShapeError(f"{arg.label}: expected one length per sample, shape {expected}, but got "
                             f"{shape_str(lengths.shape)}")
        negative = lengths < 0
        if np.any(negative):
            raise ValueDomainError(f"{arg.label}: expected lengths of 0 or more, but got "
                                   f"{offending(lengths, first(negative))}")
        return lengths.reshape(samples)

    @staticmethod
    def _check_target_layout(tg_arg: Arg, targets: np.ndarray, tl_arg: Arg, tl: np.ndarray, samples: int,
                             batched: bool) -> None:
        if targets.ndim == 2:
            if targets.shape[0] != samples:
                raise ShapeError(f"{tg_arg.label}: expected padded targets with one row per sample, ({samples}, S), "
                                 f"but got {shape_str(targets.shape)}")
            longer = tl > targets.shape[1]
            if np.any(longer):
                raise ValueDomainError(f"{tl_arg.label}: expected target lengths of at most {targets.shape[1]} (the "
                                       f"columns of the padded targets), but got "
                                       f"{offending(tl, first(longer))}")
        elif targets.ndim == 1:
            total = int(tl.sum())
            if targets.size != total:
                hint = "" if batched else "; pad them as (1, S) to give more labels than target_lengths uses"
                raise ShapeError(f"{tg_arg.label}: expected the target lengths' sum, {total} concatenated labels, "
                                 f"but got {targets.size}{hint}")
        else:
            raise ShapeError(f"{tg_arg.label}: expected targets of shape (N, S) padded or (Σ target_lengths,) "
                             f"concatenated, but got {shape_str(targets.shape)}")

    @staticmethod
    def _warn_unalignable(il_arg: Arg, labels: np.ndarray, il: np.ndarray, tl: np.ndarray, zero_infinity: bool,
                          warnings: list[str]) -> None:
        """A target needs one frame per label plus one blank between repeated labels; fewer frames give an
        infinite loss (torch returns inf, not an error)."""
        j = np.arange(1, labels.shape[1])
        repeats = ((labels[:, 1:] == labels[:, :-1]) & (j < tl[:, None])).sum(axis=1)
        short = il < tl + repeats
        if not np.any(short):
            return
        n = int(np.flatnonzero(short)[0])
        then = ("--zero-infinity makes it 0, with a zero gradient" if zero_infinity else
                "--zero-infinity would make it 0, with a zero gradient")
        warnings.append(
            f"{il_arg.label}: {int(short.sum())} of {len(il)} sample(s) cannot be aligned to their target (first: "
            f"sample {n}, {tl[n]} label(s) with {repeats[n]} repeat(s) need at least {tl[n] + repeats[n]} "
            f"frames, but got {il[n]}); their loss is inf, as in torch; {then}"
        )

    def torch_select(self, torch, tensors, mask, params, batch):
        """The selected samples only: their frames' column of log_probs, their targets and lengths."""
        lengths = tensors["target_lengths"]
        targets = tensors["targets"]
        targets = targets[mask] if targets.dim() == 2 else targets[mask.repeat_interleave(lengths)]
        return {"log_probs": tensors["log_probs"][:, mask], "targets": targets,
                "input_lengths": tensors["input_lengths"][mask], "target_lengths": lengths[mask]}


class _Skip(NamedTuple):
    """The transitions from two states away in one direction (alpha: from the frame before; beta: from the one
    after), over a flat row's computed part ``[2, N·width)``. ``add`` holds 0 where a transition is allowed
    and -inf where it is blocked, and is added to that term: exact while the terms are finite or -inf. Where
    log_probs hold NaN or +inf, or numbers so large that the recursion may overflow, a term can be NaN or +inf,
    which adding -inf does not hide (torch never reads a blocked term): ``blocked`` then lists the positions
    to set to -inf as well."""

    add: np.ndarray
    blocked: np.ndarray | None


def _skips(ext: np.ndarray, dtype: np.dtype, exact: bool) -> dict[int, _Skip]:
    """The :class:`_Skip` of each direction (by = -1: alpha, 1: beta) from each sample's extended target after
    two padding columns, ``(N, width)``: into a label unlike the one before it (going back: out of one)."""
    blocked = np.ones(ext.shape, dtype=bool)
    blocked[:, 4:] = ext[:, 4:] == ext[:, 2:-2]
    blocked_up = np.ones_like(blocked)
    blocked_up[:, 2:-2] = blocked[:, 4:]

    def skip(where: np.ndarray) -> _Skip:
        flat = where.reshape(-1)[2:]
        return _Skip(np.where(flat, NEG_INF, 0).astype(dtype), np.flatnonzero(flat) if exact else None)

    return {-1: skip(blocked), 1: skip(blocked_up)}


def _lse_step(a: np.ndarray, b: np.ndarray, c: np.ndarray, skip: _Skip, emit: np.ndarray, out: np.ndarray,
              work: tuple[np.ndarray, np.ndarray]) -> None:
    """One frame of the recursion, every sample and state at once (contiguous 1-D arrays of one length):
    ``out = log(e^a + e^b + e^c) + emit``, c taken as -inf where ``skip`` blocks it.

    In log space with the largest of the three terms taken out, as torch's ctc does, so that no term
    underflows however far apart they lie; where all three are -inf the largest is replaced by the dtype's
    lowest number (torch: by 0), which gives the same -inf. ``work``: scratch arrays of ``out``'s dtype and
    shapes ``(L,)`` and ``(3, L)``, reused frame after frame; the terms are summed left to right, as torch's."""
    m, e = work
    np.add(c, skip.add, out=e[2])
    if skip.blocked is not None:
        e[2][skip.blocked] = NEG_INF
    np.maximum(a, b, out=m)
    np.maximum(m, e[2], out=m)
    np.maximum(m, np.finfo(m.dtype).min, out=m)
    np.subtract(a, m, out=e[0])
    np.subtract(b, m, out=e[1])
    np.subtract(e[2], m, out=e[2])
    np.exp(e, out=e)
    np.add.reduce(e, axis=0, out=out)
    np.log(out, out=out)
    out += m
    out += emit


def _last_frames(il: np.ndarray) -> dict[int, np.ndarray]:
    """The samples whose last frame is t, for each t that ends one (samples with no frames end none)."""
    order = np.argsort(il, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(il[order])) + 1)
    return {int(il[g[0]]) - 1: g for g in groups if g.size and il[g[0]] > 0}


class _Trellis:
    """The forward (alpha) and, for the gradient, backward (beta) variables of every sample, in log space and
    in log_probs' dtype (float32 for float32 inputs, as torch computes them; float64 for gradients).

    States ``s`` run over the extended target ``l'`` (blank, l1, blank, l2, ..., blank: ``2·S + 1`` of them);
    ``alpha[t, n, s]`` is the log-probability of the alignments of frames ``0..t`` that end in state ``s``.
    The frames run up to the longest input, each one whole-batch array work (:func:`_lse_step`) on one flat
    row per frame: every sample's states after two -inf ones (``width = states + 2`` per sample), and two
    more -inf at the end, so that the states ``s - 1``, ``s - 2`` (``s + 1``, ``s + 2`` for beta) of every
    sample are contiguous views of that row, a sample's neighbours being -inf. States past a sample's own
    target (``2·target_length``) are computed and never read: alpha only moves up the states, and beta and
    the occupancy mask them.
    """

    def __init__(self, a: dict[str, np.ndarray], p: dict[str, Any], every: bool = False):
        self.lp = lp = a["log_probs"]  # (T, N, C)
        self.il, self.tl = a["input_lengths"], a["target_lengths"]
        labels = _padded(a["targets"], self.tl, p["blank"])  # (N, S)
        samples, states = len(self.il), 2 * labels.shape[1] + 1
        self.width = states + 2
        ext = np.full((samples, self.width), p["blank"], dtype=np.int64)  # the padding's: any class
        ext[:, 3::2] = labels
        self.ext = ext[:, 2:]
        self.live = np.arange(states) <= 2 * self.tl[:, None]  # states of each sample's own target
        # log-probabilities below this bound (normalised ones are 0 or less) keep every alpha and beta finite or
        # -inf, and adding -inf blocks a transition exactly (NaN's max is NaN: not below it)
        plain = lp.size == 0 or lp.max() < np.finfo(lp.dtype).max / (4 * lp.shape[0] + 4)
        self.skip = _skips(ext, lp.dtype, exact=not plain)
        self.frames = int(self.il.max(initial=0))
        self.index = ((np.arange(samples) * lp.shape[2])[:, None] + ext).reshape(-1)  # a frame's N·C -> flat row
        # every frame's emissions as flat rows, and as (frames, N, states), when the gradient needs them all
        self.emit = self.lp_ext = None
        if every:
            self.emit = np.take(lp[:self.frames].reshape(self.frames, samples * lp.shape[2]), self.index, axis=1)
            self.lp_ext = self.states(self.emit)
        self.alpha, last = self._forward()
        self.nll = self._nll(last)

    def states(self, rows: np.ndarray) -> np.ndarray:
        """The states of flat rows ``(..., N·width [+ 2])`` as ``(..., N, states)`` (a view)."""
        flat = rows[..., :len(self.il) * self.width]
        return flat.reshape(flat.shape[:-1] + (len(self.il), self.width))[..., 2:]

    def _frame(self, rows: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``rows`` flat rows of -inf, and the scratch arrays of :func:`_lse_step`."""
        span = len(self.il) * self.width
        return (np.full((rows, span + 2), NEG_INF, self.lp.dtype),
                (np.empty(span - 2, self.lp.dtype), np.empty((3, span - 2), self.lp.dtype)))

    def _step(self, source: np.ndarray, by: int, emit: np.ndarray, out: np.ndarray,
              work: tuple[np.ndarray, np.ndarray]) -> None:
        """A frame from the frame before (``by = -1``: alpha) or after (``by = 1``: beta) and the frame's
        emissions (a flat row), into the flat row ``out``; the -inf before each sample's states are written
        over, and restored."""
        span = len(self.il) * self.width
        near, far = source[2 + by:span + by], source[2 + 2 * by:span + 2 * by]
        _lse_step(source[2:span], near, far, self.skip[by], emit[2:], out[2:span], work)
        out[:span].reshape(len(self.il), self.width)[:, :2] = NEG_INF

    def _forward(self) -> tuple[np.ndarray | None, np.ndarray]:
        """alpha at every frame when the gradient needs them (else None: two frames are kept, and each frame's
        emissions gathered as it comes), and each sample's alpha at its last frame, (N, states)."""
        every = self.emit is not None
        rows, work = self._frame(self.frames if every else 2)
        emit = None if every else np.empty(rows.shape[1] - 2, self.lp.dtype)
        last = np.full((len(self.il), self.width - 2), NEG_INF, self.lp.dtype)
        ends = _last_frames(self.il)
        for t in range(self.frames):
            cur = rows[t if every else t % 2]
            emit = self.emit[t] if every else np.take(self.lp[t].reshape(-1), self.index, out=emit)
            if t:
                self._step(rows[(t - 1) if every else (t - 1) % 2], -1, emit, cur, work)
            else:
                self.states(cur)[:, :2] = self.states(emit)[:, :2]  # the first blank or the first label
            if t in ends:
                last[ends[t]] = self.states(cur)[ends[t]]
        return (self.states(rows) if every else None), last

    def _nll(self, last: np.ndarray) -> np.ndarray:
        """-log p(target): the last two states at the last frame (the last state alone for an empty target)."""
        rows = np.arange(len(self.il))
        l1 = last[rows, 2 * self.tl]
        l2 = last[rows, np.maximum(2 * self.tl - 1, 0)]
        m = np.maximum(l1, l2)
        m = np.where(m == NEG_INF, 0.0, m)
        likelihood = np.where(self.tl == 0, l1, np.log(np.exp(l1 - m) + np.exp(l2 - m)) + m)
        likelihood = np.where(self.il == 0, np.where(self.tl == 0, 0.0, NEG_INF), likelihood)  # no frames
        return -likelihood

    def _backward(self) -> np.ndarray:
        """beta at every frame, (frames, N, states): the log-probability of frames ``t..il-1`` from state s at
        frame t, its emission at t included (as torch's); -inf past a sample's last frame and own states."""
        frames, samples, states = self.lp_ext.shape
        s = np.arange(states)
        final = (s == 2 * self.tl[:, None]) | (s == 2 * self.tl[:, None] - 1)  # where a sample may end
        # no emission past a sample's last frame nor in the states past its target: beta stays -inf there
        alive = (np.arange(frames)[:, None] < self.il)[..., None] & np.pad(self.live, ((0, 0), (2, 0)))
        emit = np.where(alive, self.emit.reshape(alive.shape), NEG_INF).reshape(self.emit.shape)
        rows, work = self._frame(frames)
        for t in range(frames - 1, -1, -1):
            if t < frames - 1:
                self._step(rows[t + 1], 1, emit[t], rows[t], work)
            np.copyto(self.states(rows[t]), np.where(final, self.lp_ext[t], NEG_INF), where=(t == self.il - 1)[:, None])
        return self.states(rows)

    def occupancy(self) -> np.ndarray:
        """``γ[t, n, c] = exp(log Σ_{s: l'_s = c} alpha·beta + nll - lp)`` for the frames before the longest
        input, (frames, N, C): the share of the target's alignments that pass through class c at frame t.

        Each state's share ``exp(alpha + beta - lp + nll)`` is at most 1, so it needs no shift; the shares are
        summed into their classes by one ``bincount``. A class that no state has gets torch's value, ``exp(-inf
        + nll - lp)``: 0, or NaN where nll is inf (no alignment) or lp is -inf."""
        frames, samples, _ = self.lp_ext.shape
        classes = self.lp.shape[2]
        inside = (np.arange(frames)[:, None] < self.il)[..., None] & self.live
        shares = np.exp(np.where(inside, self.alpha + self._backward() - self.lp_ext, NEG_INF) + self.nll[:, None])
        bins = (np.arange(frames)[:, None, None] * samples + np.arange(samples)[:, None]) * classes + self.ext
        gamma = np.bincount(bins.reshape(-1), shares.reshape(-1), minlength=frames * samples * classes)
        return gamma.reshape(frames, samples, classes) + np.exp(NEG_INF + self.nll[:, None] - self.lp[:frames])


def _ctc(a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch) -> Elements:
    nll = _Trellis(a, p).nll
    if p["zero_infinity"]:
        nll = np.where(nll == np.inf, 0.0, nll)
    return Elements(nll, mean_divisor=np.maximum(a["target_lengths"], 1).astype(np.float64))


def _ctc_grad(a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch, coef: np.ndarray) -> np.ndarray:
    """torch's ctc backward: ``coef_n·(exp(lp) - exp(log Σ_s αβ + nll - lp))`` for ``t < input_lengths[n]``.

    With ``γ[t, c] = Σ_{s: l'_s = c} αβ / (exp(lp)·P(target))``, the share of the target's alignments that
    pass through class c at frame t, that is ``coef_n·(exp(lp) - γ)``: the gradient with respect to the logits
    when log_probs = log_softmax(logits) (softmax minus occupancy). torch's ctc backward returns it as the
    gradient of log_probs, and autograd hands it on unchanged, so it is torch's gradient with respect to
    log_probs; the derivative with respect to log_probs taken as free inputs is ``-coef_n·γ`` alone. 0 beyond
    a sample's frames, for a sample whose inf loss --zero-infinity zeroed, and for samples that do not count.
    """
    trellis = _Trellis(a, p, every=True)
    lp, nll = trellis.lp, trellis.nll
    frames = trellis.frames
    counts = coef != 0
    if batch.mask is not None:
        counts &= batch.mask
    if p["zero_infinity"]:
        counts &= nll != np.inf
    dead = (np.arange(frames)[:, None] >= trellis.il) | ~counts
    grad = np.zeros(lp.shape)
    inside = (np.exp(lp[:frames]) - trellis.occupancy()) * coef[None, :, None]
    grad[:frames] = np.where(dead[..., None], 0.0, inside)
    return grad


def _torch_ctc(F: Any, t: dict[str, Any], p: dict[str, Any], reduction: str) -> Any:
    log_probs = t["log_probs"]
    if log_probs.shape[1] == 0:  # a mask that selects no sample; torch refuses empty log_probs
        nothing = log_probs.sum() * 0.0
        return nothing if reduction == "sum" else nothing + float("nan")  # mean over nothing: NaN
    return F.ctc_loss(log_probs, t["targets"], t["input_lengths"], t["target_lengths"], blank=p["blank"],
                      reduction=reduction, zero_infinity=p["zero_infinity"])


CTC = LossSpec(
    name="ctc",
    torch_name="ctc_loss",
    summary="Connectionist temporal classification: -log of the probability of every alignment of the target.",
    formula="l_n = -log Σ_{π: B(π) = y_n} Π_{t < input_lengths[n]} exp(log_probs[t, n, π_t])  (B: merge "
            "repeats, then drop blanks)",
    mean_rule="each sample's loss over its target length (at least 1), then the average over the samples "
              "(the selected ones with --mask)",
    family=Alignments(),
    numpy=_ctc,
    torch=_torch_ctc,
    grad=_ctc_grad,
    files=(
        FileArg("log_probs", "log-probabilities (T, N, C) or (T, C), e.g. log_softmax over C"),
        FileArg("targets", "integer labels: padded (N, S), or concatenated (Σ target_lengths,)"),
        FileArg("input_lengths", "frames used per sample, (N,) integers"),
        FileArg("target_lengths", "labels per sample, (N,) integers"),
    ),
    options=(
        Option("blank", int, 0, "class index of the blank label"),
        Option("zero_infinity", bool, False,
               "make infinite losses (targets too long for their inputs) 0, and their gradients 0"),
    ),
    example="losscli ctc samples/sequence/log_probs.npy samples/sequence/targets.csv "
            "samples/sequence/lengths.csv:input samples/sequence/lengths.csv:target",
)


# ------------------------------------------------------------------------------- linear-cross-entropy

CLASS_CHUNK = 4096  # classes whose logits are computed at once
# a batch of at least this many blocks of rows (one the engine computes whole, having not streamed it) runs them
# on THREADS threads, each product on one BLAS thread
POOL_BLOCKS = 4
THREADS = 2
# logits per block (rows × classes × positions), 4 MiB of float32: 256 rows at CLASS_CHUNK classes, enough that
# BLAS's packing of the weight (once per product) is paid back (2048 x 256 x 8192: 256K logits 348 ms, 1M 228 ms)
CHUNK_ELEMENTS = 1 << 20


class LinearClasses(Classes):
    """linear-cross-entropy: cross-entropy's checks for the logits ``input @ linear_weight.T + bias``,
    whose shape ``(N, C, d1, ...)`` follows from input and linear_weight without being formed."""

    shared_files = ("weight", "linear_weight", "linear_bias")

    def __init__(self) -> None:
        super().__init__(probabilities=True)
        self.shapes = ("input (N, H) or (H,); linear_weight (C, H), or (C, d1, ..., H) with batched input; "
                       "target class indices (N,), (N, d1, ...) or (), or class probabilities of the logits' "
                       "shape (N, C, d1, ...); --linear-bias (C,) or (C, d1, ...)")

    def classes(self, spec, batch):
        found = super().classes(spec, batch)
        return None if found is None else (found[0], batch.arrays["linear_weight"].shape[0])

    def layout(self, spec, args, params, broadcast):
        self._check_no_broadcast(spec, broadcast)
        x_arg, w_arg, t_arg = args["input"], args["linear_weight"], args["target"]
        x, w, t = numeric(x_arg), numeric(w_arg), numeric(t_arg)
        if x.ndim not in (1, 2):
            raise ShapeError(f"{x_arg.label}: expected features of shape (N, H) or (H,), but got "
                             f"{shape_str(x.shape)}")
        if w.ndim < 2:
            raise ShapeError(f"{w_arg.label}: expected a weight of shape (C, H) or (C, d1, ..., H), but got "
                             f"{shape_str(w.shape)}")
        features = x.shape[-1]
        if w.shape[-1] != features:
            raise ShapeError(f"{w_arg.label}: expected {features} input features in its last axis, as the "
                             f"input has, but got shape {shape_str(w.shape)}")
        classes, positions = w.shape[0], w.shape[1:-1]
        if classes == 0:
            raise ShapeError(f"{w_arg.label}: expected at least one class, but got shape {shape_str(w.shape)}")
        if positions and x.ndim == 1:
            raise ShapeError(f"{x_arg.label}: expected batched features (N, {features}) with a K-dimensional "
                             f"linear_weight {shape_str(w.shape)}, but got {shape_str(x.shape)}")
        if "linear_bias" in args:
            b_arg = args["linear_bias"]
            if numeric(b_arg).shape != (classes,) + positions:
                raise ShapeError(f"{b_arg.label}: expected one bias per logit, shape "
                                 f"{shape_str((classes,) + positions)}, but got {shape_str(b_arg.array.shape)}")
        logits_shape = x.shape[:-1] + (classes,) + positions
        index_shape = x.shape[:-1] + positions
        kind = TargetKind.prob if t.shape == logits_shape else TargetKind.index  # torch's rule
        if kind is TargetKind.prob:
            self._check_probabilities(t_arg, x_arg.shape[:-1] + w.shape[:1] + w.shape[1:-1], "the logits'")
            self._check_nothing_ignored(spec, params)
        elif t.shape != index_shape:
            raise ShapeError(
                f"{t_arg.label}: expected class indices of shape {shape_str(index_shape)} (or class "
                f"probabilities of the logits' shape {shape_str(logits_shape)}), but got {shape_str(t.shape)}"
            )
        return Layout(index_shape, rows=x.shape[0] if x.ndim == 2 else 1, classes=classes, target_kind=kind,
                      batch_axis=("input", "target") if x.ndim == 1 else None)

    def dtype(self, spec, args, layout):
        floats = [args["input"], args["linear_weight"]] + ([args["linear_bias"]] if "linear_bias" in args else [])
        if layout.target_kind is TargetKind.prob:
            floats.append(args["target"])
        return float_dtype(*floats)

    def convert(self, spec, args, params, layout, dtype):
        x_arg, w_arg, t_arg = args["input"], args["linear_weight"], args["target"]
        if layout.target_kind is TargetKind.prob:
            target = t_arg.array.astype(dtype, copy=False)
        elif t_arg.array.dtype.kind == "f":
            whole = x_arg.shape[:-1] + w_arg.shape[:1] + w_arg.shape[1:-1]  # the whole logits' shape, when streaming
            raise ValueDomainError(f"{t_arg.label}: expected integer class indices, but got {t_arg.array.dtype} "
                                   "values; save them as integers (float targets are class probabilities, of the "
                                   f"logits' shape {shape_str(whole)})")
        else:
            target = self._indices(t_arg, layout.classes, params["ignore_index"], integral_floats=False)
        return {"input": x_arg.array.astype(dtype, copy=False), "linear_weight": w_arg.array.astype(dtype, copy=False),
                "target": target}

    def torch_select(self, torch, tensors, mask, params, batch):
        if batch.target_kind is TargetKind.index:  # masked out == ignored, as for cross-entropy
            return super().torch_select(torch, tensors, mask, params, batch)
        return {**tensors, "mask": mask}  # probabilities: the torch call reduces the selected elements


def _blocks(rows: int, classes: int, positions: int) -> tuple[int, int]:
    """(rows, classes) per block: CLASS_CHUNK classes at most, CHUNK_ELEMENTS logits at most (one row at least)."""
    k = max(1, min(classes, CLASS_CHUNK))
    return max(1, min(rows, CHUNK_ELEMENTS // max(1, k * positions))), k


class _Sums(NamedTuple):
    """Pass 1 over a block of rows, per (row, position): the log-sum-exp of the logits and what the loss needs
    besides: the target's logit ``z_t``; with smoothing ``Σ_c w_c·z_c``; for probabilities ``Σ_c w_c·y'_c·z_c``
    and ``Σ_c w_c·y'_c``."""

    lse: np.ndarray
    picked: np.ndarray
    weighted: np.ndarray
    yz: np.ndarray
    ysum: np.ndarray

    def softmax(self, z: np.ndarray) -> np.ndarray:
        """``exp(log_softmax(z))`` of a chunk of classes."""
        return np.exp(z - self.lse[:, None])


class _LinearCE:
    """Cross-entropy of ``z = x @ W.T + b`` (logits ``(N, C, D)``, D the K positions flattened), a block of
    rows and a chunk of classes at a time.

    Pass 1 over the chunks (:meth:`sums`) keeps, per (row, position), the online log-sum-exp (each chunk's,
    from classification's :func:`~losscli.losses.classification.logsumexp`, added with ``logaddexp``) and the
    :class:`_Sums`. Then, with ``lse`` known, the loss is
    cross-entropy's (:func:`losscli.losses.classification._from_log_probs`, ``logp = z - lse``):

    * index targets: ``(1-ε)·w_t·(lse - z_t) + ε/C·(lse·Σ_c w_c - Σ_c w_c·z_c)``;
    * probabilities: ``lse·Σ_c w_c·y'_c - Σ_c w_c·y'_c·z_c`` with ``y' = (1-ε)·y + ε/C``.

    For the gradient, pass 2 (:meth:`gradient`) walks the chunks again for d(loss)/dz (classification's
    ``_grad_log_probs`` through log_softmax, ``g - softmax·Σ_c g_c``) and accumulates ``dz @ W`` into
    d(loss)/d(input).
    """

    def __init__(self, a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch):
        self.x, weight = a["input"], a["linear_weight"]
        self.n, self.features = self.x.shape
        self.classes = classes = weight.shape[0]
        self.positions = positions = math.prod(weight.shape[1:-1])
        self.w_flat = weight.reshape(classes, positions, self.features)
        bias = a.get("linear_bias")
        self.bias = None if bias is None else bias.reshape(classes, positions)
        self.cw = cw = a.get("weight")
        self.eps = max(p["label_smoothing"], 0.0)  # torch reads a negative ε as 0
        self.prob = batch.target_kind is TargetKind.prob
        self.mask = batch.mask
        if self.prob:
            self.y_all = a["target"].reshape(self.n, classes, positions)
        else:
            t = a["target"].reshape(self.n, positions)
            self.valid = t != p["ignore_index"]
            self.t = np.where(self.valid, t, 0)
            self.w_t = np.ones(t.shape) if cw is None else cw[self.t]
        self.cw_sum = float(classes if cw is None else cw.sum())
        self.rows_per_block, self.k = _blocks(self.n, classes, positions)

    def row_blocks(self) -> Iterator[slice]:
        for r0 in range(0, self.n, self.rows_per_block):
            yield slice(r0, min(self.n, r0 + self.rows_per_block))

    def class_chunks(self) -> Iterator[tuple[int, int]]:
        for c0 in range(0, self.classes, self.k):
            yield c0, min(self.classes, c0 + self.k)

    def chunk_weight(self, c0: int, c1: int) -> np.ndarray:
        return self.w_flat[c0:c1].reshape((c1 - c0) * self.positions, self.features)

    def logits(self, rows: slice, c0: int, c1: int) -> np.ndarray:
        z = (self.x[rows] @ self.chunk_weight(c0, c1).T).reshape(rows.stop - rows.start, c1 - c0, self.positions)
        return z if self.bias is None else z + self.bias[c0:c1]

    def targets_chunk(self, rows: slice, c0: int, c1: int) -> np.ndarray:
        """y' (smoothed, class-weighted) of the chunk."""
        y = self.y_all[rows, c0:c1]
        if self.eps:
            y = y * (1 - self.eps) + self.eps / self.classes
        return y if self.cw is None else y * self.cw[c0:c1, None]

    def picked_index(self, rows: slice, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        here = (self.t[rows] >= c0) & (self.t[rows] < c1)
        return here, np.clip(self.t[rows] - c0, 0, c1 - c0 - 1)[:, None, :]

    def counted(self, coef: np.ndarray) -> np.ndarray:
        """Each element's grad_output, 0 where it does not count (also where mean over nothing made it NaN)."""
        shape = (self.n, self.positions)
        counts = np.ones(shape, bool) if self.mask is None else self.mask.reshape(shape)
        return np.where(counts if self.prob else counts & self.valid, coef.reshape(shape), 0.0)

    def sums(self, rows: slice) -> _Sums:
        """Pass 1 over the class chunks of a block of rows: each chunk's log-sum-exp (classification's kernel)
        added to the running one."""
        shape = (rows.stop - rows.start, self.positions)
        lse = np.full(shape, NEG_INF, self.x.dtype)
        picked, weighted, yz, ysum = (np.zeros(shape) for _ in range(4))
        for c0, c1 in self.class_chunks():
            z = self.logits(rows, c0, c1)
            lse = np.logaddexp(lse, logsumexp(z))  # of -inf and a chunk's: exactly the chunk's
            if self.prob:
                y = self.targets_chunk(rows, c0, c1)
                yz += (y * z).sum(axis=1)
                ysum += y.sum(axis=1)
                continue
            here, idx = self.picked_index(rows, c0, c1)
            picked = np.where(here, np.take_along_axis(z, idx, axis=1)[:, 0], picked)
            if self.eps:
                weighted += (z if self.cw is None else z * self.cw[c0:c1, None]).sum(axis=1)
        return _Sums(lse, picked, weighted, yz, ysum)

    def values(self, rows: slice, s: _Sums) -> np.ndarray:
        """Each element's loss in a block of rows, (rows, D)."""
        if self.prob:
            return s.lse * s.ysum - s.yz
        v = self.w_t[rows] * (s.lse - s.picked)
        if self.eps:
            v = (1 - self.eps) * v + self.eps / self.classes * (s.lse * self.cw_sum - s.weighted)
        return np.where(self.valid[rows], v, 0.0)

    def gradient(self, rows: slice, s: _Sums, c: np.ndarray) -> np.ndarray:
        """Pass 2: d(Σ c·loss)/d(input) of a block of rows, (rows, H); ``c``: the block's :meth:`counted` coef."""
        eps, classes = self.eps, self.classes
        grad = np.zeros((rows.stop - rows.start, self.features))
        # dz = softmax·S - (what the loss puts on each logit), S = Σ of the latter over the classes, each term
        # scaled by c before the sum as torch's log_softmax backward does (g - softmax·Σ g): with a huge c
        # (mean over tiny weights) the terms then cancel as torch's do
        spread = c * s.ysum if self.prob else c * (1 - eps) * self.w_t[rows] + c * (eps / classes) * self.cw_sum
        for c0, c1 in self.class_chunks():
            z = self.logits(rows, c0, c1)
            dz = s.softmax(z) * spread[:, None]
            if self.prob:
                dz -= c[:, None] * self.targets_chunk(rows, c0, c1)
            else:
                if eps:
                    dz -= c[:, None] * (eps / classes) * (1.0 if self.cw is None else self.cw[c0:c1, None])
                here, idx = self.picked_index(rows, c0, c1)
                at_target = np.take_along_axis(dz, idx, axis=1)[:, 0]
                at_target = np.where(here, at_target - c * (1 - eps) * self.w_t[rows], at_target)
                np.put_along_axis(dz, idx, at_target[:, None], axis=1)
            grad += dz.reshape(dz.shape[0], (c1 - c0) * self.positions) @ self.chunk_weight(c0, c1)
        return grad


def _linear_ce(a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch,
               coef: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """linear-cross-entropy block by block (:class:`_LinearCE`); with ``coef`` (each element's grad_output),
    also its gradient. Returns (values (N, D), index targets' w_t (N, D) or None, gradient (N, H) or None)."""
    ce = _LinearCE(a, p, batch)
    values = np.zeros((ce.n, ce.positions))
    grad = None if coef is None else np.zeros((ce.n, ce.features))
    counted = None if coef is None else ce.counted(coef)

    def block(rows: slice) -> None:
        with np.errstate(all="ignore"):  # the caller's, on a thread of the pool too (numpy's state is per thread)
            sums = ce.sums(rows)
            values[rows] = ce.values(rows, sums)
            if grad is not None:
                grad[rows] = ce.gradient(rows, sums, counted[rows])

    blocks = list(ce.row_blocks())
    threads = min(THREADS, os.cpu_count() or 1) if len(blocks) >= POOL_BLOCKS else 1
    with single_threaded():  # the logits' products: threads that wait without spinning, not BLAS's
        if threads == 1:
            for rows in blocks:
                block(rows)
        else:
            from concurrent.futures import ThreadPoolExecutor  # 10+ ms to import: only for a large batch

            with ThreadPoolExecutor(threads, thread_name_prefix="losscli") as pool:
                list(pool.map(block, blocks))
    return values, None if ce.prob else ce.w_t, grad


def _linear_ce_values(a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch) -> Elements:
    values, w_t, _ = _linear_ce(a, p, batch)
    shape = (a["input"].shape[0],) + a["linear_weight"].shape[1:-1]  # the loss's shape, batched
    values = values.reshape(shape)
    if batch.target_kind is TargetKind.prob:
        return Elements(values)
    valid = (a["target"] != p["ignore_index"]).reshape(shape)
    denom = None if "weight" not in a else np.where(valid, w_t.reshape(shape), 0.0)
    return Elements(values, denom=denom, valid=valid)


def _linear_ce_grad(a: dict[str, np.ndarray], p: dict[str, Any], batch: Batch, coef: np.ndarray) -> np.ndarray:
    return _linear_ce(a, p, batch, coef)[2]


def _torch_linear_ce(F: Any, t: dict[str, Any], p: dict[str, Any], reduction: str) -> Any:
    prob = t["target"].is_floating_point()
    options = dict(linear_bias=t.get("linear_bias"), weight=t.get("weight"),
                   ignore_index=None if prob else p["ignore_index"], label_smoothing=p["label_smoothing"])
    if "mask" not in t:
        return F.linear_cross_entropy(t["input"], t["linear_weight"], t["target"], reduction=reduction, **options)
    # probabilities with a mask: the rows that hold a selected element (the others stay out of the graph,
    # so their gradient is a plain 0), then the selected elements of torch's none
    mask = t["mask"]
    rows = mask if mask.dim() == 1 else mask.flatten(1).any(dim=1)
    selected = F.linear_cross_entropy(t["input"][rows], t["linear_weight"], t["target"][rows], reduction="none",
                                      **options)[mask[rows]]
    return selected.sum() if reduction == "sum" else selected.mean()


LABEL_SMOOTHING = next(o for o in CROSS_ENTROPY.options if o.name == "label_smoothing")

LINEAR_CROSS_ENTROPY = LossSpec(
    name="linear-cross-entropy",
    torch_name="linear_cross_entropy",
    summary="Cross-entropy of a linear layer's logits (input @ linear_weight.T + bias), never formed whole.",
    formula="l = -Σ_c w_c·y_c·log_softmax(z)_c,  z = input @ linear_weight.T + linear_bias  (y: one-hot of t, "
            "or probabilities; smoothed by ε)",
    mean_rule="index targets: Σ w[t] over targets that count; probability targets: n elements",
    family=LinearClasses(),
    numpy=_linear_ce_values,
    torch=_torch_linear_ce,
    grad=_linear_ce_grad,
    files=(
        FileArg("input", "features (N, H) or (H,)"),
        FileArg("linear_weight", "the linear layer's weight (C, H), or (C, d1, ..., H)"),
        FileArg("target", "class indices (N,), or class probabilities (N, C)"),
    ),
    optional_files=(FileArg("linear_bias", "the linear layer's bias (FILE), shape (C,) or (C, d1, ...)"),),
    options=(IGNORE_INDEX, LABEL_SMOOTHING),
    weight_help=CLASS_WEIGHT_HELP,
    example="losscli linear-cross-entropy samples/sequence/hidden.npy samples/sequence/vocab_weight.npy "
            "samples/sequence/next_tokens.csv --linear-bias samples/sequence/vocab_bias.npy",
)

LOSSES = (CTC, LINEAR_CROSS_ENTROPY)
