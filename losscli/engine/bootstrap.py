"""The Poisson bootstrap: confidence intervals of a loss's own reduction, in one streaming pass, identical
whatever the chunking, sharding or engine.

The unit of resampling is the sample (a row along the loss's first axis). Resample ``r`` gives sample ``i``
the weight ``w[r, i] ~ Poisson(1)`` (how many times it is drawn), and its statistic is the loss's reduction
over the weighted samples: for ``mean`` ``Σ w·num / Σ w·den``, numerator and denominator resampled together
(``num``: the sample's selected values, ``den``: what ``mean`` divides by for it, its count or weights), for
``sum`` ``Σ w·num``, for ``batchmean`` ``Σ w·num / Σ w``. The interval is the percentile interval of the
resampled statistics.

Why it is the same whatever the chunks. The weights are a pure function of ``(seed, i, r)`` (a SplitMix64
hash of a counter: no generator state to carry from chunk to chunk), so any process computes the same
weights for a sample. Sums are formed per **block** of :data:`BLOCK` samples aligned on sample indices, each
block summed sample after sample from zero, and blocks added in block order; a chunk (or a worker's
partition) that starts or ends inside a block keeps that block's samples until the block is complete.
Every sum is thus the same sequence of float64 additions, wherever the chunks were cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..reduction import Elements, Reduction
from .accumulators import ChunkRows, Entries

BLOCK = 1024  # samples per block of the sums (a block's weights: BLOCK x resamples bytes)
MAX_RESAMPLES = 100_000
METHOD = "poisson bootstrap, percentile"


@dataclass(frozen=True)
class Interval:
    """A confidence interval of the loss's value: ``[low, high]`` at ``level``."""

    level: float
    low: float
    high: float
    resamples: int
    seed: int
    method: str = METHOD


def check(level: float, resamples: int, seed: int) -> None:
    """The bootstrap's options, as the command line and compute() take them."""
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise OptionError(f"expected a confidence level between 0 and 1 (such as 0.95), but got {level!r}",
                          argument="ci")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or not \
            100 <= resamples <= MAX_RESAMPLES:
        raise OptionError(f"expected a number of resamples from 100 to {MAX_RESAMPLES}, but got {resamples!r}",
                          argument="resamples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise OptionError(f"expected a seed from 0 to 2**63 - 1, but got {seed!r}", argument="seed")


# -- the weights -----------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function: a bijective mix of 64-bit counters into uniform 64-bit words."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _poisson_table() -> np.ndarray:
    """Poisson(1) by the inverse of its distribution function at 2**16 evenly spaced points: a 16-bit
    uniform ``u`` draws ``k`` when ``F(k - 1) <= (u + 0.5) / 2**16 < F(k)``; each probability is within
    2**-16 of Poisson(1)'s."""
    probabilities = [math.exp(-1) / math.factorial(k) for k in range(20)]
    edges = np.cumsum(probabilities)
    return np.searchsorted(edges, (np.arange(1 << 16) + 0.5) / (1 << 16), side="right").astype(np.uint8)


_TABLE = _poisson_table()


def weights(seed: int, start: int, stop: int, resamples: int) -> np.ndarray:
    """``(stop - start, resamples)`` Poisson(1) weights of samples ``[start, stop)``: 16 bits of a hash of
    ``(seed, sample, resample)`` each, so the same for a sample whoever asks."""
    words = -(-resamples // 4)  # four 16-bit uniforms a 64-bit word
    with np.errstate(over="ignore"):
        counters = (np.arange(start, stop, dtype=np.uint64)[:, None] * np.uint64(words)
                    + np.arange(words, dtype=np.uint64)) + np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
        uniforms = _splitmix(counters).view(np.uint16)
    return _TABLE[uniforms[:, :resamples]]


# -- the accumulator ---------------------------------------------------------------------------------


class Bootstrap:
    """Resampled sums of a loss's reduction: fed chunks (any order, any cut), gives the :class:`Interval`
    (:meth:`finish`) and the resampled statistics themselves (:meth:`statistics`, for a paired comparison:
    two runs with the same seed resample the same samples). With ``groups``, one statistic per group
    (``Elements.groups``: the loss restricted to each group's elements), the samples resampled alike."""

    def __init__(self, reduction: Reduction, level: float, resamples: int = 1000, seed: int = 0,
                 groups: int | None = None) -> None:
        check(level, resamples, seed)
        self.reduction, self.level, self.resamples, self.seed = reduction, float(level), int(resamples), int(seed)
        self.groups = groups
        self.sums = np.zeros((2, groups or 1, self.resamples))  # Σ w·num, Σ w·den of the blocks before frontier
        self.frontier = 0  # the next block to add to ``sums``
        self.done: dict[int, np.ndarray] = {}  # complete blocks not yet added: block -> (2, groups, resamples)
        self.open: dict[int, dict[int, tuple[int, Entries]]] = {}  # incomplete: block -> {first row: (rows, entries)}

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        chunk = ChunkRows.of(elements, select)
        entries = Entries.of(chunk if self.groups else chunk._replace(groups=None), self.reduction)
        rows = chunk.values.shape[0]
        at = entries.row + start  # the samples' indices
        block = start // BLOCK
        while block * BLOCK < start + rows:
            low, high = max(start, block * BLOCK), min(start + rows, (block + 1) * BLOCK)
            lo, hi = np.searchsorted(at, [low, high])
            part = Entries(at[lo:hi], *(a[lo:hi] for a in entries[1:]))
            if high - low == BLOCK:
                self.done[block] = self._block(low, BLOCK, part)
            else:
                self.open.setdefault(block, {})[low] = (high - low, part)
                self._close(block, last=False)
            block += 1
        self._advance()

    def _block(self, first: int, rows: int, entries: Entries) -> np.ndarray:
        """A block's resampled sums by group: sample after sample from zero (numpy reduces axis 0 row by row)."""
        w = weights(self.seed, first, first + rows, self.resamples).astype(np.float64)
        sums = np.zeros((2, self.groups or 1, self.resamples))
        for g in np.unique(entries.group):
            mine = entries.group == g
            picked = w[entries.row[mine] - first]
            sums[0, g] = np.add.reduce(picked * entries.num[mine][:, None], axis=0)
            sums[1, g] = np.add.reduce(picked * entries.den[mine][:, None], axis=0)
        return sums

    def _close(self, block: int, *, last: bool) -> None:
        """An incomplete block whose samples are all in (``last``: the final block, however short)."""
        parts = self.open.get(block, {})
        first, rows = block * BLOCK, sum(count for count, _ in parts.values())
        if rows == BLOCK or (last and parts):
            if min(parts) != first or max(k + parts[k][0] for k in parts) != first + rows:
                raise AssertionError(f"bootstrap block {block}: samples missing")
            joined = Entries(*(np.concatenate([parts[k][1][i] for k in sorted(parts)]) for i in range(5)))
            self.done[block] = self._block(first, rows, joined)
            del self.open[block]

    def _advance(self) -> None:
        while self.frontier in self.done:
            self.sums = self.sums + self.done.pop(self.frontier)
            self.frontier += 1

    def merge(self, other: Bootstrap) -> None:
        """Take in a copy fed other samples (a dask partition): its complete blocks, and its incomplete ones'
        samples; a copy whose samples began at sample 0 has added its first blocks already, and brings them."""
        if other.frontier:
            if self.frontier:
                raise AssertionError("two bootstraps that both began at sample 0")
            self.sums, self.frontier = other.sums, other.frontier
        self.done.update(other.done)
        for block, parts in other.open.items():
            self.open.setdefault(block, {}).update(parts)
            self._close(block, last=False)
        self._advance()

    def statistics(self) -> np.ndarray:
        """The resampled values of the loss, ``(resamples,)``, or ``(groups, resamples)`` by group (NaN where
        a resample's denominator is 0: nothing of the group drawn)."""
        num, den = self._finished()
        if self.reduction is Reduction.sum:
            found = num.copy()
        else:
            with np.errstate(all="ignore"):
                found = num / den
        return found if self.groups else found[0]

    def drawn(self) -> np.ndarray:
        """The resamples that have a value, like :meth:`statistics`: those that drew any of what ``mean`` (and
        ``batchmean``) divide by. A resample that drew none of a small group's samples has no mean of it, and
        is left out of the interval (every resample of a ``sum`` has one: 0 when nothing was drawn)."""
        den = self._finished()[1]
        den = den if self.groups else den[0]
        return np.ones(den.shape, bool) if self.reduction is Reduction.sum else den != 0

    def _finished(self) -> np.ndarray:
        """The sums over every sample fed: the last block, however short, closed and added."""
        for block in sorted(self.open):
            self._close(block, last=True)
        self._advance()
        if self.done or self.open:
            raise AssertionError(f"bootstrap: blocks {sorted(self.done)} not reached from block {self.frontier}")
        return self.sums

    def finish(self) -> Interval:
        low, high = interval(self.statistics()[self.drawn()], self.level)
        return Interval(self.level, low, high, self.resamples, self.seed)


def interval(statistics: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
    statistics (of those that have a value: :meth:`Bootstrap.drawn`); NaN when any is NaN (NaN in the data)
    or there are none."""
    if not statistics.size or np.isnan(statistics).any():
        return math.nan, math.nan
    low, high = np.quantile(statistics, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
