"""Accumulators: views of a loss beyond its one number (the loss per sample, the K largest losses, a
histogram), fed chunk by chunk by the engine.

Each view is an :class:`Accumulator`. ``update(start, elements, select)`` takes one chunk of rows: ``start`` is the
index of its first row along the loss's first axis, ``elements`` its per-element values and mean denominators
(:class:`~losscli.reduction.Elements`), ``select`` the elements that count (``reduction.selection``; None:
all). Chunks may come in any order; ``finish()`` gives the view. The in-memory path feeds one chunk, the
streaming engine many, and no result depends on where the rows were cut: per-sample values are computed
row by row, the top K keep at most K candidates per chunk and merge them, and the histogram's bins lie on
a fixed grid whose counts merge exactly (see :class:`Histogram`).

What counts is what the reduction counts: masked-out and ignored elements never appear in a view. A sample
(a row along the loss's first axis) reduces as torch reduces that row alone: ``sum`` is the row's Σ values,
``mean`` its Σ values / Σ denom (weights where torch divides by weights, ctc's target lengths), and
``batchmean`` (kl-div) treats the row as a batch of one: its sum. A 0-d loss is one sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import NamedTuple, Protocol

import numpy as np

from ..errors import OptionError
from ..reduction import Elements, Reduction

FLOAT64 = np.dtype(np.float64)
MAX_TOP = 1_000_000  # --top K keeps up to K candidates in memory and sorts them: 16 MB each of values and indices
BINS = 12  # at most this many histogram bins (at least about half as many when the values spread)


class Accumulator(Protocol):
    """Something fed every chunk of a loss (the views below, or a caller's own).

    The dask engine (:mod:`losscli.engine.cluster`) sends a copy of each accumulator, as it is before the first
    chunk, to every partition, and merges the copies that come back into the one given (``merge``)."""

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        """``start``: the chunk's first row along the loss's first axis; ``elements``: its per-element values
        (arrays broadcastable to the chunk's loss shape; float32 for a float32 loss, which computes in float32,
        else float64); ``select``: the elements that count (``reduction.selection(valid, mask)``; None: all)."""

    def merge(self, other: Accumulator) -> None:
        """Take in what ``other`` (a copy fed other chunks) has seen, as if it had been fed here."""


@dataclass(frozen=True)
class Top:
    """The largest losses, largest first: NaN above everything, ties to the lower index."""

    index: np.ndarray  # (K,) sample indices, or (K, ndim) element indices in the loss's shape
    value: np.ndarray  # (K,)
    by_sample: bool


@dataclass(frozen=True)
class Hist:
    """Counts of the finite values in bins ``[edges[i], edges[i + 1])``; NaN and ±inf counted apart.

    All finite values equal: one bin, ``edges == [v, v]``."""

    edges: np.ndarray  # (bins + 1,) float64
    counts: np.ndarray  # (bins,) int64
    nan: int
    inf: int  # +inf and -inf
    by_sample: bool


def accumulators(per_sample: bool, top: int | None, hist: bool, reduction: Reduction,
                 loss_shape: tuple[int, ...], dtype: np.dtype) -> dict:
    """The views asked for, checked, as ``{"per_sample": SampleLosses, "top": TopK, "hist": Histogram}``
    (only those asked for); ``loss_shape`` and ``dtype`` are the (first chunk's) loss's. ``per_sample`` also
    makes top and hist rank and count samples, not elements."""
    if per_sample and reduction is Reduction.none:
        raise OptionError("expected a reduction to apply to each sample (mean, sum), but the reduction is none "
                          "(its output is the per-element values already)", argument="per_sample")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise OptionError(f"expected a count of 1 or more, but got {top!r}", argument="top")
        if top > MAX_TOP:
            raise OptionError(f"expected a count of at most {MAX_TOP} (the K largest are held in memory and "
                              f"sorted), but got {top}; to rank more, write every value (reduction none) to a "
                              "file and sort it there", argument="top")
        if not loss_shape:
            raise OptionError("expected a loss with samples to rank, but this loss is a single value (shape ())",
                              argument="top")
    by = reduction if per_sample else None
    found: dict = {}
    if per_sample:
        found["per_sample"] = SampleLosses(reduction, dtype)
    if top is not None:
        found["top"] = TopK(int(top), by, dtype)
    if hist:
        found["hist"] = Histogram(by)
    return found


# -- rows of a chunk -------------------------------------------------------------------------------------


class ChunkRows(NamedTuple):
    """A chunk as (rows, elements per row) float64 arrays; a 0-d chunk is one row of one element."""

    values: np.ndarray
    select: np.ndarray | None  # bool; None: all
    denom: np.ndarray | None
    divisor: np.ndarray | None
    shape: tuple[int, ...]  # the chunk's loss shape (at least 1-d)
    groups: np.ndarray | None = None  # int64: each element's group (Elements.groups)
    row_groups: bool = False  # the groups are one per row (--by), not one per element

    @classmethod
    def of(cls, e: Elements, select: np.ndarray | None) -> ChunkRows:
        parts = [e.values, e.denom, e.valid, e.mean_divisor, select]
        shape = np.broadcast_shapes(*(np.shape(p) for p in parts if p is not None)) or (1,)

        def flat(a, dtype=np.float64):
            if a is None:
                return None
            return np.broadcast_to(np.asarray(a, dtype=dtype), shape).reshape(shape[0], math.prod(shape[1:]))

        # a group per row (--by's (rows, 1, ...)), not one per label column ((1, C), even where C == rows)
        per_row = e.groups is not None and np.shape(e.groups)[:1] == shape[:1] and np.size(e.groups) == shape[0]
        return cls(flat(e.values), flat(select, bool), flat(e.denom), flat(e.mean_divisor), tuple(shape),
                   flat(e.groups, np.int64), per_row)

    def picked(self) -> np.ndarray:
        """The selected values, flat, in index order."""
        return self.values.reshape(-1) if self.select is None else self.values[self.select]


def sample_values(chunk: ChunkRows, reduction: Reduction) -> tuple[np.ndarray, np.ndarray]:
    """Each row's loss as torch gives it for that row alone, and whether any of its elements counts.

    A row with nothing selected is NaN for ``mean`` (0/0, as torch) and 0 for ``sum``.
    """
    counted = np.full(chunk.values.shape[0], chunk.values.shape[1] > 0) if chunk.select is None else \
        chunk.select.any(axis=1)
    num, den = sample_sums(chunk, reduction)
    if reduction is not Reduction.mean:  # sum; batchmean: the row is a batch of one
        return num, counted
    with np.errstate(all="ignore"):
        return num / den, counted


def sample_sums(chunk: ChunkRows, reduction: Reduction) -> tuple[np.ndarray, np.ndarray]:
    """Each row's numerator and denominator of ``reduction``: for ``mean`` its selected values (divided by
    the mean divisor: ctc) and their count or their ``denom``; for ``sum`` and ``batchmean`` its values, and 1
    (a row is one sample of the batch)."""
    where = True if chunk.select is None else chunk.select
    with np.errstate(all="ignore"):
        scaled = chunk.values if chunk.divisor is None or reduction is not Reduction.mean else \
            chunk.values / chunk.divisor
        num = np.sum(scaled, axis=1, where=where)
    if reduction is not Reduction.mean:
        return num, np.ones(len(num))
    if chunk.denom is None:
        return num, np.count_nonzero(np.broadcast_to(where, chunk.values.shape), axis=1).astype(np.float64)
    return num, np.sum(chunk.denom, axis=1, where=where)


class Entries(NamedTuple):
    """A chunk's sums by sample and group: one entry per (row, group) that the row has elements of, in row
    order; ``num`` and ``den`` as :func:`sample_sums` gives them for the row's elements of that group, ``n``
    how many of them count."""

    row: np.ndarray  # int64, the row in the chunk
    group: np.ndarray  # int64
    num: np.ndarray
    den: np.ndarray
    n: np.ndarray  # int64

    @classmethod
    def of(cls, chunk: ChunkRows, reduction: Reduction) -> Entries:
        """By group (``chunk.groups``); without groups, one entry per row, in group 0."""
        rows = chunk.values.shape[0]
        counted = (np.full(rows, chunk.values.shape[1], np.int64) if chunk.select is None
                   else np.count_nonzero(chunk.select, axis=1))
        if chunk.groups is None or chunk.row_groups:
            num, den = sample_sums(chunk, reduction)
            # a row with nothing that counts adds nothing; its group may be no group (an ignored target), and a
            # row of no elements (a loss of shape (N, 0)) has none to read
            group = np.zeros(rows, np.int64) if chunk.groups is None or not chunk.groups.size else \
                np.where(counted > 0, chunk.groups[:, 0], 0)
            return cls(np.arange(rows), group, num, den, counted)
        where = np.ones(chunk.values.shape, bool) if chunk.select is None else chunk.select
        count = int(chunk.groups.max(initial=0)) + 1
        key = (np.arange(rows)[:, None] * count + np.where(where, chunk.groups, 0))[where]
        scaled = chunk.values if chunk.divisor is None or reduction is not Reduction.mean else \
            chunk.values / chunk.divisor
        with np.errstate(all="ignore"):
            num = np.bincount(key, weights=scaled[where], minlength=rows * count)
        n = np.bincount(key, minlength=rows * count)
        if reduction is not Reduction.mean:
            den = (n > 0).astype(np.float64)
        else:
            den = n.astype(np.float64) if chunk.denom is None else \
                np.bincount(key, weights=chunk.denom[where], minlength=rows * count)
        present = np.flatnonzero(n)
        return cls(present // count, present % count, num[present], den[present], n[present])


# -- the views -------------------------------------------------------------------------------------------


class SampleLosses:
    """The loss of each sample (row along the loss's first axis), in the loss's dtype (summed in float64).

    ``limit``: keep at most this many samples; past it the values are let go (memory stays bounded) and
    :meth:`finish` gives None."""

    def __init__(self, reduction: Reduction, dtype: np.dtype = FLOAT64, limit: int | None = None):
        self.reduction, self.dtype, self.limit = reduction, dtype, limit
        self.parts: list[tuple[int, np.ndarray]] = []
        self.rows, self.over = 0, False

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        if not self.over:
            self._keep([(start, sample_values(ChunkRows.of(elements, select), self.reduction)[0])], False)

    def merge(self, other: SampleLosses) -> None:
        self._keep(other.parts, other.over)

    def _keep(self, parts: list[tuple[int, np.ndarray]], over: bool) -> None:
        self.parts.extend(parts)
        self.rows += sum(values.size for _, values in parts)
        if over or self.over or (self.limit is not None and self.rows > self.limit):
            self.parts, self.over = [], True

    def finish(self) -> np.ndarray | None:
        if self.over:
            return None
        parts = [values for _, values in sorted(self.parts, key=lambda part: part[0])]
        return np.concatenate(parts).astype(self.dtype) if parts else np.empty(0, self.dtype)


class TopK:
    """The ``k`` largest losses of samples (``by`` a reduction) or of elements (``by`` None), with their
    indices. Keeps at most ``k`` candidates: each chunk's best are merged with the best so far."""

    def __init__(self, k: int, by: Reduction | None, dtype: np.dtype = FLOAT64):
        self.k, self.by, self.dtype = k, by, dtype
        self.values = np.empty(0)
        self.index = np.empty(0, np.int64)  # sample index, or flat element index in the whole loss
        self.rows, self.row_shape = 0, ()

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        chunk = ChunkRows.of(elements, select)
        rows, per_row = chunk.values.shape
        self.rows, self.row_shape = max(self.rows, start + rows), chunk.shape[1:]
        if self.by is not None:
            values, counted = sample_values(chunk, self.by)
            index = np.arange(start, start + rows, dtype=np.int64)
        else:
            values, counted = chunk.values.reshape(-1), None if chunk.select is None else chunk.select.reshape(-1)
            index = np.arange(start * per_row, (start + rows) * per_row, dtype=np.int64)
        if counted is not None:
            values, index = values[counted], index[counted]
        self._take(*largest(values, index, self.k))

    def merge(self, other: TopK) -> None:
        self.rows, self.row_shape = max(self.rows, other.rows), other.row_shape if other.rows else self.row_shape
        self._take(other.values, other.index)

    def _take(self, values: np.ndarray, index: np.ndarray) -> None:
        self.values, self.index = largest(np.concatenate([self.values, values]),
                                          np.concatenate([self.index, index]), self.k)

    def finish(self) -> Top:
        index = self.index
        if self.by is None:
            index = np.stack(np.unravel_index(index, (self.rows, *self.row_shape)), axis=1)
        return Top(index, self.values.astype(self.dtype), self.by is not None)


def largest(values: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values with their indices, largest first: NaN above everything (ordered by
    index), ties broken by the lower index. Partitions first, so a large chunk costs no full sort."""
    if values.size > k:
        nan = np.isnan(values)
        nans = np.flatnonzero(nan)
        if nans.size >= k:
            pick = nans[np.argsort(index[nans], kind="stable")[:k]]
        else:
            rest = k - nans.size
            numbers = np.flatnonzero(~nan)
            cut = np.partition(values[numbers], numbers.size - rest)[numbers.size - rest]  # the rest-th largest
            above, tied = numbers[values[numbers] > cut], numbers[values[numbers] == cut]
            tied = tied[np.argsort(index[tied], kind="stable")[:rest - above.size]]
            pick = np.concatenate([nans, above, tied])
        values, index = values[pick], index[pick]
    nan = np.isnan(values)
    order = np.lexsort((index, -np.where(nan, 0.0, values), ~nan))
    return values[order], index[order]


class Histogram:
    """Counts of the selected losses (of samples with ``by`` a reduction, else of elements) in at most
    ``bins`` bins (:data:`BINS`: the command line's ``--hist``; plots ask for more), NaN and ±inf apart.

    One pass, exact, and independent of chunking: bins are ``[j·2**e, (j+1)·2**e)`` on a grid of powers of
    two, with ``e`` the smallest exponent that covers the finite values' range ``[min, max]`` in at most
    ``bins`` bins (and no finer than float64 resolves). When a chunk widens the range, ``e`` grows and
    neighbouring bins merge exactly (``j >> (e' - e)``), so the final bins are a function of the final
    range alone, as if counted in one go.
    """

    def __init__(self, by: Reduction | None, bins: int = BINS):
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise OptionError(f"expected a count of 2 or more, but got {bins!r}", argument="bins")
        self.by, self.bins = by, int(bins)
        self.low, self.high = math.inf, -math.inf
        self.exp = -1074
        self.first = 0  # grid index of counts[0]
        self.counts = np.zeros(0, np.int64)
        self.nan = self.inf = 0

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        chunk = ChunkRows.of(elements, select)
        if self.by is None:
            values = chunk.picked()
        else:
            values, counted = sample_values(chunk, self.by)
            values = values[counted]
        finite = np.isfinite(values)
        self.nan += int(np.count_nonzero(np.isnan(values)))
        self.inf += int(np.count_nonzero(np.isinf(values)))
        values = values[finite]
        if not values.size:
            return
        counts = self._regrid(float(values.min()), float(values.max()))
        counts += np.bincount(np.floor(np.ldexp(values, -self.exp)).astype(np.int64) - self.first,
                              minlength=counts.size)

    def merge(self, other: Histogram) -> None:
        self.nan, self.inf = self.nan + other.nan, self.inf + other.inf
        if other.counts.size:
            counts = self._regrid(other.low, other.high)
            self._add(counts, other.first, other.exp, other.counts)

    def _regrid(self, low: float, high: float) -> np.ndarray:
        """Widen the range to take in ``[low, high]``: the bins so far moved onto the (possibly coarser) grid
        of the new range, which ``self.counts`` then holds (and is returned, to add to)."""
        old = (self.first, self.exp, self.counts)
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.exp = grid_exponent(self.low, self.high, self.bins)
        self.first = math.floor(math.ldexp(self.low, -self.exp))
        self.counts = np.zeros(math.floor(math.ldexp(self.high, -self.exp)) - self.first + 1, np.int64)
        self._add(self.counts, *old)
        return self.counts

    def _add(self, counts: np.ndarray, first: int, exp: int, theirs: np.ndarray) -> None:
        """Bins ``theirs`` (grid ``exp``, from index ``first``) added onto ``counts`` of this grid (as coarse
        or coarser: ``j >> s`` is floor(j / 2**s); any ``|j| < 2**63`` shifted by 63 or more is 0 or -1, as
        floor gives)."""
        if theirs.size:
            at = (first + np.arange(theirs.size, dtype=np.int64)) >> min(self.exp - exp, 63)
            np.add.at(counts, at - self.first, theirs)

    def finish(self) -> Hist:
        if not self.counts.size:
            edges = np.empty(0)
        elif self.low == self.high:
            edges = np.array([self.low, self.high])
        else:
            with np.errstate(over="ignore"):
                edges = np.ldexp(np.arange(self.first, self.first + self.counts.size + 1, dtype=np.float64),
                                 self.exp)
        counts = self.counts if self.counts.size else np.zeros(0, np.int64)
        return Hist(edges, counts, self.nan, self.inf, self.by is not None)


def grid_exponent(low: float, high: float, bins: int = BINS) -> int:
    """The smallest ``e`` whose grid ``j·2**e`` covers ``[low, high]`` in at most ``bins`` bins, no finer
    than float64's resolution at the larger magnitude (so that the bin of a value is exact)."""
    magnitude = max(abs(low), abs(high))
    exp = max(math.frexp(magnitude)[1] - 53, -1074) if magnitude else -1074
    span = high / 2 - low / 2  # no overflow
    if span > 0:
        exp = max(exp, math.floor(math.log2(span) + 1 - math.log2(bins)) - 1)
    while math.floor(math.ldexp(high, -exp)) - math.floor(math.ldexp(low, -exp)) + 1 > bins:
        exp += 1
    return exp
