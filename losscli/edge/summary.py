"""The summary of a per-element output (count, mean, min, max, NaN count), accumulated chunk by chunk, so that
it never needs the whole array at once: the one writer feeds it every chunk it writes (see
:class:`~losscli.edge.writer.ArrayFile`), and an array already in memory is fed in slices (:meth:`Summary.of`).

NaN values are counted apart; mean, min and max are of the other values (NaN when there are none). The mean
is Σ / count in float64, each slice's sum pairwise.

>>> s = Summary.of(np.array([1.0, np.nan, 3.0], np.float32))
>>> (s.count, s.nan, s.mean, s.min, s.max)
(3, 1, 2.0, 1.0, 3.0)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .cells import json_number

SLICE = 1 << 20  # elements summarised at a time (8 MiB of float64)
PIECE = 1 << 16  # elements rendered at a time when per-element values are printed


class Summary:
    """count, mean, min, max and NaN count of the values :meth:`add`-ed so far, in any chunks."""

    def __init__(self, dtype: np.dtype = np.dtype(np.float64)) -> None:
        self.dtype = np.dtype(dtype)
        self.count = self.nan = 0
        self.total = 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        flat = np.asarray(values).reshape(-1)
        if flat.dtype.kind != "f" or flat.dtype.itemsize < 4:
            flat = flat.astype(np.float64)
        for begin in range(0, flat.size, SLICE):
            self._add(flat[begin:begin + SLICE])  # in its own dtype: min and max are exact

    def _add(self, part: np.ndarray) -> None:
        with np.errstate(all="ignore"):
            summed = float(np.sum(part, dtype=np.float64))
            found = 0
            if not np.isfinite(summed):  # NaN among them (or ±inf): counted apart
                nan = np.isnan(part)
                found = int(np.count_nonzero(nan))
                part = part[~nan] if found else part
                summed = float(np.sum(part, dtype=np.float64))
        self.count, self.nan = self.count + part.size + found, self.nan + found
        if part.size:
            self.total += summed
            self.low, self.high = min(self.low, float(part.min())), max(self.high, float(part.max()))

    @classmethod
    def of(cls, array: np.ndarray) -> Summary:
        summary = cls(array.dtype)
        summary.add(array)
        return summary

    @property
    def mean(self) -> float:
        numbers = self.count - self.nan
        return self.total / numbers if numbers else float("nan")

    @property
    def min(self) -> float:
        return self.low if self.count > self.nan else float("nan")

    @property
    def max(self) -> float:
        return self.high if self.count > self.nan else float("nan")

    def fields(self) -> dict[str, Any]:
        """``count``, ``mean``, ``min``, ``max``, ``nan`` as JSON values (min and max in the values' dtype, so
        a float32 0.1 reads 0.1; non-finite numbers as "NaN", "Infinity", "-Infinity")."""
        exact = self.dtype if self.dtype.kind == "f" else np.dtype(np.float64)
        return {"count": self.count, "mean": json_number(np.float64(self.mean)),
                "min": json_number(exact.type(self.min)), "max": json_number(exact.type(self.max)), "nan": self.nan}

    def text(self) -> str:
        """The table's summary line: ``N values · mean m · min a · max b`` (and ``· K NaN`` when there are)."""
        parts = [f"{self.count} values"]
        if self.count > self.nan:
            parts += [f"mean {self.mean:.6g}", f"min {self.min:.6g}", f"max {self.max:.6g}"]
        if self.nan:
            parts.append(f"{self.nan} NaN")
        return " · ".join(parts)


class Written(NamedTuple):
    """Where ``--output`` put a ``none`` loss's values, and their summary: what stdout shows instead of them."""

    path: str
    summary: Summary
