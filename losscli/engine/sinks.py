"""Sinks: where a ``none`` reduction's per-element values go, chunk by chunk.

The engine opens the sink once it knows the whole loss's shape and dtype, writes each chunk's rows (in row
order), and closes it when every chunk is done (``abandon`` when the run fails). :class:`InMemory` is the
default; the edge hands in a file sink (:mod:`losscli.edge.writer`) to stream ``none`` to disk.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Sink(Protocol):
    def open(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Before the first chunk: the whole loss's shape and dtype."""

    def write(self, start: int, values: np.ndarray) -> None:
        """Rows ``[start, start + len(values))`` along the loss's first axis (the whole loss for a 0-d one)."""

    def close(self) -> np.ndarray:
        """Every row written: the whole values (a file sink may return the file, mapped read-only)."""

    def abandon(self) -> None:
        """The run failed: drop what was written."""


class InMemory:
    """The values in one array."""

    def __init__(self) -> None:
        self.values = np.empty(0)

    def open(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.values = np.empty(shape, dtype)

    def write(self, start: int, values: np.ndarray) -> None:
        if self.values.ndim == 0:
            self.values[()] = values
        else:
            self.values[start:start + len(values)] = values

    def close(self) -> np.ndarray:
        return self.values

    def abandon(self) -> None:
        self.values = np.empty(0)
