"""LossResult -> the table format (``--format table``, the default), and the tables of ``losscli list`` and
``losscli reductions``: rich renderables, which the command prints once. rich is imported with this module,
that is only when a table is drawn; the formats for scripts are :mod:`losscli.edge.render`'s."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..errors import flag
from ..losses import LossSpec
from ..reduction import legacy_table
from ..result import LossResult
from .cells import shape_text
from .render import ci_text
from .render_views import in_dtype, top_index
from .summary import Summary, Written

if TYPE_CHECKING:
    from ..engine.accumulators import Hist, Top

BAR = 32  # characters of the longest histogram bar
EIGHTHS = " ▏▎▍▌▋▊▉"


def _summary(summary: Summary, note: str = "") -> Text:
    """count, mean, min, max (and NaN count), accumulated in slices: never a float64 copy of the whole array."""
    return Text(" · ".join([summary.text()] + ([note] if note else [])), style="dim")


def to_table(result: LossResult, written: Written | None = None, top_groups: int | None = None) -> Group:
    """A summary table (loss, reduction, backend, inputs, counts, value); for ``none`` also the values (head
    and tail) and their summary, or with ``written`` (``--output``) where they went and their summary; the
    views asked for (of the groups, the ``top_groups`` worst)."""
    table = Table(show_header=False, title=f"{result.loss}", title_style="bold", box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("loss", f"{result.loss}  [dim](torch.nn.functional.{result.torch_name})[/dim]")
    table.add_row("reduction", result.reduction.value)
    table.add_row("backend", result.backend.value)
    for info in result.inputs:
        source = f"{info.source}  " if info.source else ""
        dtype = f"{info.stored_dtype} (read as {info.dtype})" if info.stored_dtype else info.dtype
        table.add_row(info.role, Text(f"{source}{shape_text(info.shape)} {dtype}"))
    shown = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in result.params.items()}
    if shown:
        table.add_row("options", Text(", ".join(f"{k}={v}" for k, v in shown.items())))
    selected = "" if result.selected == result.count else f" ({result.selected} selected)"
    table.add_row("elements", f"{result.count}{selected}")
    if result.is_scalar:
        value = Text(str(result.value[()]), style="bold cyan")
        table.add_row("value", value.append(ci_text(result), style="cyan") if result.ci is not None else value)
    elif written is not None:
        table.add_row("value", Text(f"{shape_text(result.value.shape)} {result.value.dtype}, written to {written.path}"))
    else:
        table.add_row("value", f"{shape_text(result.value.shape)} {result.value.dtype}, below")
    check = result.cross_check
    if check is not None:
        verdict = "[green]ok[/green]" if check.ok else "[red]FAILED[/red]"
        other = str(check.value[()]) if check.value.ndim == 0 else "per element"
        table.add_row("cross-check", f"{check.backend.value}: {other} · max |Δ| {check.max_abs_diff:.3g} · "
                                     f"{verdict} (tolerance {check.tolerance:g})")
    parts: list[Any] = [table]
    if not result.is_scalar:
        masked = result.count - result.selected
        note = f"{masked} masked out or ignored ({'written' if written else 'shown'} as 0)" if masked else ""
        shown = [] if written is not None else [grid(result.value)]
        parts += [Text(), *shown, _summary(written.summary if written else Summary.of(result.value), note)]
    if result.grad is not None:
        title = f"d(loss)/d({result.inputs[0].role}), {shape_text(result.grad.shape)} {result.grad.dtype}"
        parts += [Text(), Text(title, style="bold")]
        parts += [Text(str(result.grad[()]))] if result.grad.ndim == 0 else [grid(result.grad, "grad"),
                                                                              _summary(Summary.of(result.grad))]
    return Group(*parts, *view_parts(result, top_groups))


def legacy_flags_table() -> Table:
    """``losscli reductions``: the nine (size_average, reduce) combinations and what they resolve to."""
    table = Table(title="legacy flags → reduction", title_style="bold")
    table.add_column("--size-average")
    table.add_column("--reduce")
    table.add_column("reduction", style="bold cyan")
    shown = {None: "[dim]unset[/dim]", True: "True", False: "False"}
    for size_average, reduce, resolved in legacy_table():
        unset = size_average is None and reduce is None
        table.add_row(shown[size_average], shown[reduce],
                      "--reduction applies (default mean)" if unset else resolved.value)
    return table


def losses_table(specs: Iterable[LossSpec]) -> Table:
    """``losscli list``: each loss's command, torch function, files, options and reductions, in 80 columns."""
    table = Table(title="losses", title_style="bold", box=box.SIMPLE_HEAD, show_lines=True, show_edge=False,
                  padding=(0, 1, 0, 0),
                  caption="every loss also takes --mask, --reduction and the options of 'losscli LOSS --help'")
    table.add_column("command\n[dim]torch.nn.functional[/dim]", no_wrap=True)  # fits 80 columns
    table.add_column("files", max_width=14)  # widths that fit 80 columns with no option cut
    table.add_column("options")
    table.add_column("reduction", max_width=9)
    for spec in specs:
        files = " ".join(f.name.upper() for f in spec.files)
        flags = [flag(f.name) for f in spec.extras if f.name != "mask"]
        table.add_row(f"[bold]{spec.name}[/bold]\n[dim]{spec.torch_name}[/dim]", files,
                      " ".join(flags + [o.flag for o in spec.options]), " ".join(r.value for r in spec.reductions))
    return table


# -- per-element values and views ----------------------------------------------------------------------

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


def _unit(result: LossResult, top_or_hist: Top | Hist) -> str:
    return f"samples ({result.reduction.value} per sample)" if top_or_hist.by_sample else "elements"


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
        index = top_index(top, i)
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
