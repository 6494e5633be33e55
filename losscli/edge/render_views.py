"""The views of :mod:`losscli.engine.accumulators` (per sample, top K, histogram) in json, plain and csv (their
tables are :mod:`losscli.edge.render_table`'s).

``table`` and ``json`` show every view asked for. ``plain`` and ``csv`` print one table of numbers, so they
print one view: the top K if asked for, else the histogram, else the per-sample values (asking for the top
K and the histogram together there is an error, see :func:`check_format`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..result import LossResult
from .cells import array_csv, json_number, json_value

if TYPE_CHECKING:
    from ..engine.accumulators import Hist, Top
    from ..engine.bootstrap import Interval
    from ..engine.groups import Group

def top_index(top: Top, i: int) -> list[int]:
    """The index of the top view's ``i``-th entry: a sample's, or an element's (one number per axis)."""
    return [int(top.index[i])] if top.by_sample else [int(j) for j in top.index[i]]


# -- json -------------------------------------------------------------------------------------------------


def view_json(result: LossResult) -> dict[str, Any]:
    """``per_sample`` (a list), ``top`` (``[{index, value}]``, largest first; a sample's index is a number,
    an element's a list) and ``hist`` (``{edges, counts, nan, inf}``), for the views asked for."""
    out: dict[str, Any] = {}
    if result.per_sample is not None:
        out["per_sample"] = json_value(result.per_sample)
    if result.top is not None:
        top = result.top
        out["top"] = []
        for i in range(top.value.size):
            index = top_index(top, i)
            out["top"].append({"index": index[0] if top.by_sample else index, "value": json_number(top.value[i])})
    if result.hist is not None:
        h = result.hist
        out["hist"] = {"edges": [json_number(e) for e in h.edges], "counts": [int(c) for c in h.counts],
                       "nan": h.nan, "inf": h.inf}
    if result.groups is not None:
        out["groups"] = [_group_json(g, result) for g in result.groups]
    return out


def _group_json(group: Group, result: LossResult) -> dict[str, Any]:
    found: dict[str, Any] = {"group": group.name, "count": group.count, "value": _as_value(group.value, result)}
    if group.ci is not None:
        found["ci"] = interval_json(group.ci, result)
    return found


def interval_json(ci: Interval, result: LossResult) -> dict[str, Any]:
    """An interval as the JSON vocabulary writes it, its ends in the loss's dtype (as its value)."""
    return {"level": ci.level, "low": _as_value(ci.low, result), "high": _as_value(ci.high, result),
            "method": ci.method, "resamples": ci.resamples, "seed": ci.seed}


def _as_value(x: float, result: LossResult) -> Any:
    return json_value(np.asarray(x).astype(result.value.dtype))


# -- plain and csv ---------------------------------------------------------------------------------------


def _top_rows(top: Top) -> tuple[list[str], list[list[str]]]:
    width = 1 if top.by_sample else top.index.shape[1]
    header = [f"i{d}" for d in range(width)] + ["value"]
    return header, [[*map(str, top_index(top, i)), str(top.value[i])] for i in range(top.value.size)]


def _hist_rows(h: Hist) -> tuple[list[str], list[list[str]]]:
    """One row per bin, then ``nan,nan,N`` and ``inf,inf,N``: every column still reads as numbers."""
    rows = [[str(h.edges[i]), str(h.edges[i + 1]), str(c)] for i, c in enumerate(h.counts)]
    return ["lower", "upper", "count"], rows + [["nan", "nan", str(h.nan)], ["inf", "inf", str(h.inf)]]


def _rows(result: LossResult) -> tuple[list[str], list[list[str]]] | None:
    if result.top is not None:
        return _top_rows(result.top)
    if result.hist is not None:
        return _hist_rows(result.hist)
    return None


def view_plain(result: LossResult) -> str | None:
    """The view's numbers, a row a line, separated by spaces (per sample: one value a line); None: no view."""
    found = _rows(result)
    if found is not None:
        return "\n".join(" ".join(row) for row in found[1])
    if result.per_sample is not None:
        return "\n".join(str(v) for v in result.per_sample)
    return None


def view_csv(result: LossResult) -> str | None:
    """The view as CSV with a header row; None: no view."""
    found = _rows(result)
    if found is not None:
        return "\n".join(",".join(row) for row in [found[0], *found[1]])
    if result.per_sample is not None:
        return array_csv(result.per_sample)
    return None


def in_dtype(x: float, result: LossResult) -> str:
    """A number of the result (an interval's end, a group's value) as its value prints: in the loss's dtype."""
    return str(np.asarray(x).astype(result.value.dtype)[()])
