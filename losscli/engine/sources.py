"""What the engine reads: each argument of a loss as :class:`Source` rows, and the :class:`Plan` of chunks to
read them in.

A loss whose family streams (:meth:`~losscli.losses.base.Family.stream`) is computed in chunks of rows
along the loss's first axis. The files whose first axis is that axis are read chunk by chunk (``.npy`` files
and shards with ``pread``; CSV files of several pieces in order: :class:`~losscli.io.CsvRows`); the others
(class weights, a weight that broadcasts, linear_weight) are shared by every chunk.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ShapeError
from ..io import ArrayRows, Loaded, Rows, Shards
from ..losses.base import Arg, LossSpec, widest_row

# elements (of the widest file read in chunks) per chunk: inside L2, where numpy runs fastest
CHUNK_ELEMENTS = 1 << 18
# a loss streams when its widest file holds more elements than this; below, one chunk is faster
STREAM_ELEMENTS = 1 << 21


class Source(NamedTuple):
    """One argument of the loss: its rows, and the names messages use."""

    role: str
    rows: Rows
    label: str | None = None  # the file as the user wrote it
    number: bool = False  # a plain number (gaussian-nll's var)
    options: dict | None = None  # the storage options its URL is read with (a dask worker opens it again)

    def arg(self) -> Arg:
        """The whole array."""
        array = self.rows.whole()
        return Arg(self.role, array, self.label, self.number, nulls=self._nulls(0, len(array) if array.ndim else 0),
                   locate=getattr(self.rows, "locate", None))

    def chunk(self, start: int, stop: int) -> Arg:
        """Rows ``[start, stop)``, whose messages name positions in the whole array."""
        return Arg(self.role, self.rows.read(start, stop), self.label, self.number, offset=start,
                   whole=tuple(self.rows.shape), nulls=self._nulls(start, stop),
                   locate=getattr(self.rows, "locate", None))

    def _nulls(self, start: int, stop: int) -> np.ndarray | None:
        """Rows that held a null (a columnar file's missing values, read as 0), for the mask to leave out."""
        nulls = getattr(self.rows, "nulls", None)
        return None if nulls is None else nulls(start, stop)


def source(role: str, value: Any) -> Source:
    """An argument of :func:`losscli.compute`: a ``losscli.io.Loaded`` (its rows are read on demand), an
    array, or a number."""
    if isinstance(value, Loaded):
        return Source(role, value.rows, value.spec, options=value.options or None)
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    return Source(role, ArrayRows(np.asarray(value)), number=number)


class Plan(NamedTuple):
    """How a loss streams: its rows (the loss's first axis), the files read in chunks, rows per chunk."""

    rows: int
    split: frozenset[str]
    chunk_rows: int

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each chunk; one empty chunk for a loss of no rows (its checks still run)."""
        return [(start, min(start + self.chunk_rows, self.rows)) for start in range(0, max(self.rows, 1),
                                                                                    self.chunk_rows)]


def plan(spec: LossSpec, sources: dict[str, Source], broadcast: bool, *, whole: bool,
         chunk_rows: int | None = None) -> Plan | None:
    """The chunks to compute ``spec`` in, or None for one chunk of the whole arrays (in memory).

    ``whole`` asks for one chunk. ``chunk_rows`` forces chunks of that many rows (tests); otherwise the loss
    streams when its widest file holds more than :data:`STREAM_ELEMENTS` elements, in chunks of about
    :data:`CHUNK_ELEMENTS` elements. Arrays already in memory count the elements the loss's formula goes
    through instead (:meth:`~losscli.losses.base.Family.work_width`: nll picks one per row of the loss)."""
    check_shards(sources)
    shapes = {name: tuple(s.rows.shape) for name, s in sources.items()}
    split = None if whole else spec.family.stream(spec, shapes, broadcast)
    if not split:
        return None
    rows = shapes[next(iter(split))][0]
    in_memory = all(isinstance(sources[name].rows, ArrayRows) for name in split)  # a chunk is a view
    width = spec.family.work_width(spec, shapes, split) if in_memory else widest_row(shapes, split)
    if chunk_rows is None:
        if rows * width <= STREAM_ELEMENTS:
            return None
        chunk_rows = max(1, CHUNK_ELEMENTS // width)
    return Plan(rows, split, max(1, int(chunk_rows)))


def check_shards(sources: dict[str, Source]) -> None:
    """Sharded files must line up with the first sharded one: as many shards, and the same rows in each pair
    (shards are samples written together; a shard that differs means a missing or misordered one)."""
    sharded = [s for s in sources.values() if isinstance(s.rows, Shards)]
    for other in sharded[1:]:
        first, theirs, ours = sharded[0], sharded[0].rows.counts, other.rows.counts
        name = f"{other.role} ({other.label})" if other.label else other.role
        if len(ours) != len(theirs):
            raise ShapeError(f"{name}: expected shards that line up with {first.role}'s ({len(theirs)} shards), "
                             f"but got {len(ours)} shards")
        for (their_file, their_rows), (our_file, our_rows) in zip(theirs, ours):
            if our_rows != their_rows:
                raise ShapeError(f"{name}: expected shards that line up with {first.role}'s, but got {our_rows} "
                                 f"rows in {our_file} against {their_rows} in {their_file}")


