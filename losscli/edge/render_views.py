"""The views of :mod:`losscli.engine.accumulators` (per sample, top K, histogram) in each format.

``table`` and ``json`` show every view asked for. ``plain`` and ``csv`` print one table of numbers, so they
print one view: the top K if asked for, else the histogram, else the per-sample values (asking for the top
K and the histogram together there is an error, see :func:`check_format`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rich.table import Table
from rich.text import Text

from ..result import LossResult
from .cells import array_csv, cell, grid, json_number, json_value, shape_text

if TYPE_CHECKING:
    from ..engine.accumulators import Hist, Top
    from ..engine.bootstrap import Interval
    from ..engine.groups import Group

BAR = 32  # characters of the longest histogram bar
EIGHTHS = " ▏▎▍▌▋▊▉"


def _unit(result: LossResult, top_or_hist: Top | Hist) -> str:
    return f"samples ({result.reduction.value} per sample)" if top_or_hist.by_sample else "elements"


def _index(top: Top, i: int) -> list[int]:
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
            index = _index(top, i)
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
    return header, [[*map(str, _index(top, i)), str(top.value[i])] for i in range(top.value.size)]


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


# -- table ------------------------------------------------------------------------------------------------


def view_parts(result: LossResult, top_groups: int | None = None) -> list[Any]:
    """Renderables for the table format, each view under a title (the first ``top_groups`` groups)."""
    parts: list[Any] = []
    if result.per_sample is not None:
        ps = result.per_sample
        title = f"loss per sample ({result.reduction.value} of each row), {shape_text(ps.shape)} {ps.dtype}"
        parts += [Text(), Text(title, style="bold"), grid(ps), _sample_summary(ps)]
    if result.top is not None:
        parts += [Text(), Text(f"top {result.top.value.size} {_unit(result, result.top)} by loss", style="bold"),
                  _top_table(result.top)]
    if result.hist is not None:
        h = result.hist
        title = f"histogram of {int(h.counts.sum()) + h.nan + h.inf} {_unit(result, h)}"
        parts += [Text(), Text(title, style="bold"), _hist_table(h),
                  Text(f"NaN {h.nan} · ±inf {h.inf} (not in the bins)", style="dim")]
    if result.groups is not None:
        parts += _group_parts(result, top_groups)
    return parts


def _group_parts(result: LossResult, top_groups: int | None) -> list[Any]:
    """The groups, worst (largest loss) first, NaN first of all; ``top_groups`` of them."""
    ordered = sorted(result.groups, key=lambda g: (g.value == g.value, -g.value if g.value == g.value else 0))
    shown = ordered if top_groups is None else ordered[:top_groups]
    table = Table(box=None, pad_edge=False, header_style="bold dim")
    table.add_column("group")
    table.add_column("count", justify="right")
    table.add_column(result.reduction.value, justify="right")
    interval = any(g.ci is not None for g in shown)
    if interval:
        table.add_column(f"{shown[0].ci.level * 100:g}% CI" if shown else "CI", justify="right")
    for g in shown:
        row: list[Any] = [Text(g.name), str(g.count), in_dtype(g.value, result)]
        if interval:
            row.append(Text(f"[{in_dtype(g.ci.low, result)}, {in_dtype(g.ci.high, result)}]"))
        table.add_row(*row)
    left = len(ordered) - len(shown)
    title = f"loss by group ({len(ordered)} groups, worst first)"
    return [Text(), Text(title, style="bold"), table] + ([Text(f"{left} more (--top-groups)", style="dim")]
                                                        if left else [])


def in_dtype(x: float, result: LossResult) -> str:
    """A number of the result (an interval's end, a group's value) as its value prints: in the loss's dtype."""
    return str(np.asarray(x).astype(result.value.dtype)[()])


def _sample_summary(values: np.ndarray) -> Text:
    v = values.astype(np.float64)
    nan = int(np.count_nonzero(np.isnan(v)))
    parts = [f"{v.size} samples"]
    if v.size > nan:
        parts += [f"mean {np.nanmean(v):.6g}", f"min {np.nanmin(v):.6g}", f"max {np.nanmax(v):.6g}"]
    if nan:
        parts.append(f"{nan} NaN (left out of mean, min, max; nothing selected in a row gives NaN)")
    return Text(" · ".join(parts), style="dim")


def _top_table(top: Top) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold dim")
    table.add_column("rank", justify="right", style="dim")
    table.add_column("index", justify="right")
    table.add_column("loss", justify="right")
    for i in range(top.value.size):
        index = _index(top, i)
        table.add_row(str(i + 1), str(index[0]) if top.by_sample else str(tuple(index)), cell(top.value[i]))
    return table


def _bar(count: int, most: int) -> str:
    eighths = round(count / most * BAR * 8) if most else 0
    eighths = max(eighths, 1) if count else 0  # a bin that holds anything shows
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8].strip()


def _hist_table(h: Hist) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold dim")
    table.add_column("bin", justify="right", style="dim")
    table.add_column("count", justify="right")
    table.add_column("", style="cyan")
    most = int(h.counts.max()) if h.counts.size else 0
    point = h.edges.size == 2 and h.edges[0] == h.edges[1]
    for i, count in enumerate(h.counts):
        low, high = cell(h.edges[i]), cell(h.edges[i + 1])
        table.add_row(f"[{low}, {high}]" if point else f"[{low}, {high})", str(count), _bar(int(count), most))
    return table
