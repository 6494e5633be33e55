"""Rows: an array read along axis 0, its shape and dtype known up front and its rows read on demand, as the engine
reads every input; and the kinds of rows that more than one reader shares (an array in memory, rows read in order
from consecutive blocks)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InputError
from .files import naming


class Rows(Protocol):
    """An array read along axis 0: its shape and dtype known up front, rows read on demand. Rows whose file
    holds another dtype than they give (bfloat16, given as float32) say so in a ``stored_dtype`` attribute
    (``"bfloat16"``), which the table of a result shows."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``, in memory of their own."""
        ...

    def whole(self) -> np.ndarray:
        """The whole array (memory-mapped where it can be)."""
        ...


@dataclass(frozen=True)
class ArrayRows:
    """An array already in memory (or mapped), as :class:`Rows`."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.array[start:stop]

    def whole(self) -> np.ndarray:
        return self.array


class BlockRows:
    """Rows read in order from consecutive blocks (a text file's pieces, a CSV reader's batches), in bounded memory:
    ``blocks()`` gives the blocks from the first row on, each a 2-D (or, for one column, 1-D) array of ``dtype``;
    the blocks still needed are held in memory.

    Reads are serialised by a lock and may come a few chunks out of order (the engine's threads): a block is let go
    once every row of it has been read. A read of rows already let go calls ``blocks()`` again, reading from the
    first row. Errors name the argument (``input (results.csv:pred): line 12, ...``); an error of the blocks (a bad
    cell) is raised again by every read that needs rows past it, so that the engine, which reports the error of the
    first chunk in row order, reports it whichever thread met it first."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, blocks: Callable[[], Iterator[np.ndarray]],
                 role: str, spec: str) -> None:
        self.shape, self.dtype = shape, dtype
        self._blocks, self._role, self._spec = blocks, role, spec
        self._lock = threading.Lock()
        self._rewind(0)

    def _rewind(self, low: int) -> None:
        """Read the blocks from the first again, keeping only rows from ``low`` on."""
        self._pieces = self._blocks()
        self._held: deque[np.ndarray] = deque()
        self._first = self._end = 0  # rows [first, end) are held
        self._low = low  # rows before it are read and let go
        self._read: dict[int, int] = {}  # start -> stop of reads at or after low
        self._failed: InputError | None = None  # what the blocks raised: they end there

    def read(self, start: int, stop: int) -> np.ndarray:
        with self._lock, naming(self._role, self._spec):
            if start < self._low:
                self._rewind(start)
            while self._end < stop:
                block = self._next()
                if block is None:
                    raise InputError(f"expected {self.shape[0]} rows as when the file was first read, but it "
                                     f"ends after {self._end} (it changed while being read)")
                self._held.append(block)
                self._end += len(block)
                self._let_go()
            rows = gather(((len(b), lambda span, b=b: b[span].copy()) for b in self._held), self._first, start, stop,
                          self)
            self._read[start] = stop
            while self._low in self._read:
                self._low = self._read.pop(self._low)
            self._let_go()
            return rows

    def _next(self) -> np.ndarray | None:
        if self._failed is not None:
            raise self._failed
        try:
            return next(self._pieces, None)
        except InputError as e:
            self._failed = e
            raise

    def _let_go(self) -> None:
        while self._held and self._first + len(self._held[0]) <= self._low:
            self._first += len(self._held.popleft())

    def whole(self) -> np.ndarray:
        """All the rows, read from the first block on."""
        return self.read(0, self.shape[0])


def gather(parts: Iterable[tuple[int, Callable[[slice], np.ndarray]]], first: int, start: int, stop: int,
           rows: Rows) -> np.ndarray:
    """Rows ``[start, stop)`` of ``rows`` from consecutive ``parts`` (their number of rows, and a function from a
    slice of their rows to an array) of which the first begins at row ``first``, in memory of their own."""
    pieces = []
    for count, take in parts:
        lo, hi = max(start - first, 0), min(stop - first, count)
        if lo < hi:
            pieces.append(take(slice(lo, hi)))
        first += count
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate(pieces) if pieces else np.empty((0,) + tuple(rows.shape[1:]), rows.dtype)
