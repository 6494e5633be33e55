"""Views by group: the loss restricted to each group's elements (``--by FILE``: a label per sample;
``--by-class``: each element's target class, or a multi-label loss's label column), with torch's own
denominators (class weights, ``ignore_index``, masks), and a bootstrap interval per group when asked.

A group's value is what torch gives for the loss on that subset: for ``mean`` the group's Σ values / Σ what
``mean`` divides by, for ``sum`` its Σ values, for ``batchmean`` its Σ values / its number of samples. Sums
are float64, merged from chunks (and dask partitions) in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..reduction import Elements, Reduction
from .accumulators import ChunkRows, Entries
from .bootstrap import Bootstrap, Interval, interval

MAX_GROUPS = 10_000  # groups are held as arrays of this length (and, with --ci, by resamples)


@dataclass(frozen=True)
class Group:
    """One group's loss: its name (the label, or the class), the elements of it that count, its value (in the
    loss's dtype) and its interval (with ``ci``)."""

    name: str
    count: int
    value: float
    ci: Interval | None = None


class Groups:
    """The loss of each group, fed chunks whose :class:`~losscli.reduction.Elements` carry ``groups``."""

    def __init__(self, reduction: Reduction, names: list[str], dtype: np.dtype,
                 bootstrap: Bootstrap | None = None) -> None:
        self.reduction, self.names, self.dtype, self.bootstrap = reduction, names, np.dtype(dtype), bootstrap
        size = len(names)
        self.num, self.den, self.count = np.zeros(size), np.zeros(size), np.zeros(size, np.int64)

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        entries = Entries.of(ChunkRows.of(elements, select), self.reduction)
        size = len(self.names)
        self.num += np.bincount(entries.group, weights=entries.num, minlength=size)
        self.den += np.bincount(entries.group, weights=entries.den, minlength=size)
        self.count += np.bincount(entries.group, weights=entries.n, minlength=size).astype(np.int64)
        if self.bootstrap is not None:
            self.bootstrap.update(start, elements, select)

    def merge(self, other: Groups) -> None:
        self.num, self.den, self.count = self.num + other.num, self.den + other.den, self.count + other.count
        if self.bootstrap is not None:
            self.bootstrap.merge(other.bootstrap)

    def finish(self) -> list[Group]:
        """The groups that have elements, in the order of their names."""
        with np.errstate(all="ignore"):
            values = self.num if self.reduction is Reduction.sum else self.num / self.den
        stats = self.bootstrap.statistics() if self.bootstrap is not None else None
        found = []
        for g in np.flatnonzero(self.den > 0) if self.reduction is not Reduction.sum else np.flatnonzero(self.count):
            ci = None
            if stats is not None:
                b = self.bootstrap
                ci = Interval(b.level, *interval(stats[g], b.level), b.resamples, b.seed)
            found.append(Group(self.names[g], int(self.count[g]), float(self.dtype.type(values[g])), ci))
        return found
