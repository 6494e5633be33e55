"""Views by group: the loss restricted to each group's elements (``--by FILE``: a label per sample;
``--by-class``: each element's target class, or a multi-label loss's label column), with torch's own
denominators (class weights, ``ignore_index``, masks), and a bootstrap interval per group when asked.

A group's value is what torch gives for the loss on that subset: for ``mean`` the group's Σ values / Σ what
``mean`` divides by, for ``sum`` its Σ values, for ``batchmean`` its Σ values / its number of samples. Sums
are float64, merged from chunks (and dask partitions) in any order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import Elements, Reduction
from .accumulators import ChunkRows, Entries
from .bootstrap import Bootstrap, Interval, interval

MAX_GROUPS = 10_000  # groups are held as arrays of this length (and, with --ci, by resamples)


def labels_of(by: Any, loader: Any) -> tuple[list[str], np.ndarray]:
    """A label per sample (a path read whole by ``loader``, a ``Loaded``, or an array): the labels' names, sorted,
    and each sample's label as an index into them (int64)."""
    if isinstance(by, (str, os.PathLike)):
        labels = loader.labels(os.fspath(by), role="by")
    else:
        labels = np.asarray(getattr(by, "array", by))
    if labels.ndim != 1:
        raise ShapeError(f"expected one label per sample (a 1-D column), but got shape {labels.shape}",
                         argument="by")
    if labels.dtype.kind == "U" and labels.size and np.all(np.char.isdigit(np.char.lstrip(labels, "-+"))):
        labels = labels.astype(np.int64)  # a text column of integers (CSV): labels that sort as numbers
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise ValueDomainError("expected labels that are text or integers, but got fractional numbers",
                                   argument="by")
        labels = labels.astype(np.int64)
    names, codes = np.unique(labels, return_inverse=True)
    if len(names) > MAX_GROUPS:
        raise OptionError(f"expected at most {MAX_GROUPS} groups, but the labels have {len(names)}", argument="by")
    return [str(n) for n in names], codes.astype(np.int64).reshape(-1)


@dataclass(frozen=True)
class Group:
    """One group's loss: its name (the label, or the class), the elements of it that count, its value (in the
    loss's dtype) and its interval (with ``ci``)."""

    name: str
    count: int
    value: float
    ci: Interval | None = None


class Groups:
    """The loss of each group, fed chunks whose :class:`~losscli.reduction.Elements` carry ``groups``.

    Each chunk's sums by group are added to the total in row order (a chunk that comes early waits for the
    ones before it), so the values are the same sequence of float64 additions whoever computed the chunks:
    the local engine, its threads, or a dask cluster's partitions merged here."""

    def __init__(self, reduction: Reduction, names: list[str], dtype: np.dtype,
                 bootstrap: Bootstrap | None = None) -> None:
        self.reduction, self.names, self.dtype, self.bootstrap = reduction, names, np.dtype(dtype), bootstrap
        self.sums = np.zeros((3, len(names)))  # Σ num, Σ den, count of the chunks before ``frontier``
        self.frontier = 0  # the first row not yet added
        self.waiting: dict[int, tuple[int, np.ndarray]] = {}  # first row -> (rows, its sums)

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        chunk = ChunkRows.of(elements, select)
        entries = Entries.of(chunk, self.reduction)
        size = len(self.names)
        self.waiting[start] = (chunk.values.shape[0], np.stack([
            np.bincount(entries.group, weights=entries.num, minlength=size),
            np.bincount(entries.group, weights=entries.den, minlength=size),
            np.bincount(entries.group, weights=entries.n, minlength=size)]))
        self._advance()
        if self.bootstrap is not None:
            self.bootstrap.update(start, elements, select)

    def _advance(self) -> None:
        while self.frontier in self.waiting:
            rows, sums = self.waiting.pop(self.frontier)
            self.sums = self.sums + sums
            self.frontier += rows

    def merge(self, other: Groups) -> None:
        """Take in a copy fed other chunks (a dask partition); one that began at row 0 brings its sums."""
        if other.frontier:
            self.sums, self.frontier = other.sums, other.frontier
        self.waiting.update(other.waiting)
        self._advance()
        if self.bootstrap is not None:
            self.bootstrap.merge(other.bootstrap)

    def finish(self) -> list[Group]:
        """The groups that have elements, in the order of their names."""
        if self.waiting:
            raise AssertionError(f"groups: chunks from rows {sorted(self.waiting)} not reached from {self.frontier}")
        num, den, count = self.sums
        with np.errstate(all="ignore"):
            values = num if self.reduction is Reduction.sum else num / den
        b = self.bootstrap
        stats, drawn = (b.statistics(), b.drawn()) if b is not None else (None, None)
        found = []
        for g in np.flatnonzero(count):
            ci = None
            if b is not None:
                ci = Interval(b.level, *interval(stats[g][drawn[g]], b.level), b.resamples, b.seed)
            found.append(Group(self.names[g], int(count[g]), float(self.dtype.type(values[g])), ci))
        return found
