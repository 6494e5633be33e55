"""The cells every renderer shares: numbers as JSON, arrays as CSV (a table's cells and grids are
:mod:`losscli.edge.render_table`'s)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


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


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
