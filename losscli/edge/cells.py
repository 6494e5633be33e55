"""The cells every renderer shares: numbers as JSON and as table cells, arrays as CSV and as a grid."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from rich.table import Table

def json_number(value: np.floating) -> float | str:
    """A JSON number, or "NaN" / "Infinity" / "-Infinity" (JSON has no non-finite numbers)."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(str(value))  # float32 0.6666667 stays 0.6666667, not 0.6666666865348816


def json_value(value: np.ndarray) -> Any:
    if value.ndim == 0:
        return json_number(value[()])
    return [json_value(v) for v in value]


def array_csv(value: np.ndarray) -> str:
    return "\n".join([csv_header(value.ndim), *csv_rows(value)])


def csv_header(ndim: int) -> str:
    return ",".join([f"i{d}" for d in range(ndim)] + ["value"])


def csv_rows(value: np.ndarray, start: int = 0):
    """One CSV line per element; ``start``: the first index along axis 0 (``value`` is rows of a larger array)."""
    for index in itertools.product(*(range(n) for n in value.shape)):
        yield ",".join([str(index[0] + start), *map(str, index[1:]), str(value[index])] if index else
                       [str(value[index])])


HEAD = 6  # rows (and columns) shown at each end of a large per-element output


def cell(value: np.floating) -> str:
    return f"{float(value):.6g}"


def _cut(n: int, keep: int = HEAD) -> list[int | None]:
    """Indices to show along an axis of length n: all, or head, a gap (None), tail."""
    if n <= 2 * keep + 1:
        return list(range(n))
    return [*range(keep), None, *range(n - keep, n)]


def grid(value: np.ndarray, label: str = "loss") -> Table:
    grid = Table(box=None, pad_edge=False, header_style="bold dim")
    if value.ndim == 1:
        grid.add_column("index", justify="right", style="dim")
        grid.add_column(label, justify="right")
        for i in _cut(len(value)):
            grid.add_row(*(("…", "…") if i is None else (str(i), cell(value[i]))))
    elif value.ndim == 2:
        cols = _cut(value.shape[1])
        grid.add_column("", justify="right", style="dim")
        for j in cols:
            grid.add_column("…" if j is None else str(j), justify="right")
        for i in _cut(value.shape[0]):
            if i is None:
                grid.add_row("…", *("…" for _ in cols))
            else:
                grid.add_row(str(i), *("…" if j is None else cell(value[i, j]) for j in cols))
    else:
        grid.add_column("index", justify="right", style="dim")
        grid.add_column(label, justify="right")
        flat = value.reshape(-1)
        for k in _cut(flat.size):
            if k is None:
                grid.add_row("…", "…")
            else:
                grid.add_row(str(tuple(int(i) for i in np.unravel_index(k, value.shape))), cell(flat[k]))
    return grid


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
