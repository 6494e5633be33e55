"""Plots, for people who would rather look than read: ``--plot FILE.png|.svg`` on a loss command and on
``losscli compare``, ``losscli check --plots DIR``.

Each plot is a matplotlib :class:`~matplotlib.figure.Figure` built here and returned as the file's bytes; the
one writer writes them. No pyplot: no global figure, no window, no display needed (PNG is drawn by Agg, SVG by
matplotlib's SVG backend), whatever ``MPLBACKEND`` says. matplotlib is the ``plot`` extra, imported only when a
plot is drawn. The same input gives the same bytes: neither format carries a date, and the SVG's ids come from
a fixed salt.

- A loss: the histogram of the per-sample losses (of the elements for ``none``), the value and its interval
  (``--ci``) marked. The histogram is the engine's (:class:`~losscli.engine.accumulators.Histogram`), fed as
  the loss runs: memory stays bounded whatever the input's size.
- Groups (``--by``/``--by-class``): a bar per group, worst first, with its interval.
- A comparison: the differences new - base of the paired resamples, with 0, the margin and the interval; and
  the per-sample differences when the comparison kept them.
- A gate's check: the histogram of its per-sample losses, with the value and the bounds.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from ..errors import LossCliError
from ..reduction import Reduction
from ..result import LossResult
from .writer import check_folder, make_folder, write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..compare import Comparison
    from ..engine.accumulators import Hist, Histogram
    from ..gates import Outcome, Run

INSTALL = "pip install 'losscli[plot]'"
FORMATS = {".png": "png", ".svg": "svg"}
BINS = 40  # at most this many bins in a plotted histogram (at least about half as many)
GROUPS = 30  # groups drawn when --top-groups does not say
WIDTH = 7.0  # inches; 100 dots an inch
STYLE = {
    "svg.hashsalt": "losscli",  # the SVG's ids (clip paths) from a fixed salt, not a random one: the same bytes
    "svg.fonttype": "none",  # text as <text>, not glyph paths: smaller, and searchable
    "text.parse_math": False,  # a label or check name with $ in it shows as typed, not as TeX
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same PNG on every machine
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
METADATA = {"png": {"Software": None}, "svg": {"Date": None}}  # no date, no version: the same bytes
BAR, MARK, BAND = "#4c72b0", "#c44e52", "#dd8452"


def plot_format(path: str, option: str = "--plot") -> str:
    """Before any work: the format of ``path`` by its suffix (png or svg), and matplotlib there to draw it."""
    found = FORMATS.get(os.path.splitext(path)[1].lower())
    if found is None:
        raise LossCliError(f"{option} ({path}): expected a .png or .svg file name, but got another extension")
    require(f"{option} ({path})")
    return found


def require(where: str) -> None:
    """matplotlib is installed (the ``plot`` extra), or one line saying how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LossCliError(f"{where}: expected matplotlib to draw plots, but it is not installed: {INSTALL}") from None


def sample_histogram(reduction: Reduction) -> Histogram:
    """The accumulator a loss's plot draws: its per-sample losses (its elements for ``none``)."""
    from ..engine.accumulators import Histogram

    return Histogram(None if reduction is Reduction.none else reduction, BINS)


def file_names(names: Iterable[str], fmt: str) -> list[str]:
    """A file name for each check: its name with anything but ASCII letters, digits, ``.``, ``-`` and ``_`` as ``-``,
    and ``-2``, ``-3``... where two would be one file (on a case-insensitive file system too)."""
    found, taken = [], set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:100] or "check"
        unique, n = stem, 1
        while unique.lower() in taken:
            n += 1
            unique = f"{stem}-{n}"
        taken.add(unique.lower())
        found.append(f"{unique}.{fmt}")
    return found


class CheckPlots:
    """``losscli check --plots DIR``: a PNG per check in ``DIR``, named after the check (:func:`file_names`).
    Checked before any work: matplotlib is there, ``DIR`` is a folder or nothing yet, and no plot's file is an
    input or another target (:meth:`targets`). Drawn for each check that gave a value; linked from the Markdown
    summary when ``DIR`` is the summary's folder or below it (:meth:`links`)."""

    FORMAT = "png"

    def __init__(self, folder: str | None, checks: list[Any] | None) -> None:
        self.folder, self.paths = folder, {}
        if folder is not None:
            require(f"--plots ({folder})")
            check_folder(folder, "--plots")
            names = [c.name for c in checks or ()]
            self.paths = {name: os.path.join(folder, file)
                          for name, file in zip(names, file_names(names, self.FORMAT))}

    @property
    def bins(self) -> int | None:
        """The bins of the histograms the checks feed (None: no plots, no histograms)."""
        return None if self.folder is None else BINS

    def targets(self) -> list[tuple[str, str]]:
        return [("--plots", path) for path in self.paths.values()]

    def drawn(self, run: Run) -> list[Outcome]:
        """The checks that have a plot: those that gave a value (not those that errored or were left out)."""
        return [o for o in run.outcomes if o.hist is not None and o.value is not None and o.check.name in self.paths]

    def links(self, run: Run, markdown: str | None) -> dict[str, str]:
        """Each plot's link from the Markdown summary (check name -> relative URL), when it is written in the
        summary's folder or below it; else none."""
        if self.folder is None or markdown is None:
            return {}
        here = os.path.dirname(os.path.abspath(markdown))
        if os.path.relpath(os.path.abspath(self.folder), here).split(os.sep)[0] == os.pardir:
            return {}
        return {o.check.name: quote(os.path.relpath(os.path.abspath(self.paths[o.check.name]), here)
                                    .replace(os.sep, "/")) for o in self.drawn(run)}

    def write(self, run: Run) -> None:
        """Every plot, through the one writer (``DIR`` made first, where missing)."""
        if self.folder is None:
            return
        make_folder(self.folder, "--plots")
        for outcome in self.drawn(run):
            write_bytes(self.paths[outcome.check.name], check_plot(outcome, self.FORMAT), "--plots")


# -- what each plot draws ------------------------------------------------------------------------------------


def loss_plot(result: LossResult, hist: Hist | None, fmt: str, top_groups: int | None = None) -> bytes:
    """A loss command's plot: its groups when it has them, else the histogram ``hist`` with the value and its
    interval marked."""
    if result.groups is not None:
        return _drawn(lambda fig: _groups(fig, result, top_groups), fmt, 1.4 + 0.26 * _shown(result, top_groups))
    assert hist is not None

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _histogram(ax, hist, _unit(result, hist))
        ax.set_title(f"{result.loss} ({result.reduction.value}): {_count(hist)} {_unit(result, hist, short=True)}",
                     loc="left", gid="title")
        if result.is_scalar:
            if result.ci is not None:
                _band(ax, result.ci.low, result.ci.high, f"{result.ci.level * 100:g}% CI")
            _line(ax, float(result.value), f"{result.reduction.value} {str(result.value[()])}", "value")
        _legend(ax)

    return _drawn(draw, fmt)


def comparison_plot(found: Comparison, fmt: str) -> bytes:
    """``losscli compare``'s plot: the resampled differences (with 0, the margin and the interval), and each
    sample's difference when the comparison kept them."""
    b = found.base
    panels = 2 if found.per_sample is not None else 1

    def draw(fig: Figure) -> None:
        axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
        _values(axes[0], found.differences, "new - base, in each paired resample")
        axes[0].set_title(f"{b.loss} ({b.reduction.value}): new - base {found.difference:+.6g}, {found.verdict.value}",
                          loc="left", gid="title")
        _band(axes[0], found.low, found.high, f"{found.level * 100:g}% CI")
        _line(axes[0], 0.0, "0: no difference", "zero", color="black")
        if found.margin:
            _line(axes[0], found.margin, f"margin {found.margin:g}", "margin", style="--", color="0.35")
        _line(axes[0], found.difference, f"new - base {found.difference:+.6g}", "difference")
        _legend(axes[0])
        if panels == 2:
            _values(axes[1], found.per_sample, f"new - base of each sample ({b.reduction.value} of each row)")
            _line(axes[1], 0.0, "0: no difference", "sample-zero", color="black")
            _legend(axes[1])

    return _drawn(draw, fmt, 3.6 * panels)


def check_plot(outcome: Outcome, fmt: str) -> bytes:
    """A gate's check: the histogram of its per-sample losses, its value and its bounds."""
    hist, check = outcome.hist, outcome.check
    assert hist is not None and outcome.value is not None

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _histogram(ax, hist, f"loss per sample ({check.reduction.value} of each row)")
        ax.set_title(f"{check.name}: {check.loss.name} {outcome.printed} ({outcome.status.value})", loc="left",
                     gid="title")
        _line(ax, outcome.value, f"{check.reduction.value} {outcome.printed}", "value")
        for bound in ("max", "min"):
            if bound in check.bounds:
                _line(ax, check.bounds[bound], f"{bound} {check.bounds[bound]:g}", f"bound-{bound}",
                      style="--" if bound == "max" else "-.",
                      color="0.35")
        if outcome.baseline is not None:
            _line(ax, outcome.baseline, f"baseline {outcome.baseline:g}", "baseline", style=":", color="0.35")
        _legend(ax)

    return _drawn(draw, fmt)


def _groups(fig: Figure, result: LossResult, top_groups: int | None) -> None:
    """A horizontal bar per group, worst (largest loss) first and NaN first of all, as the table orders them;
    the interval of each with ``--ci``, the whole loss's value as a line."""
    assert result.groups is not None
    ordered = sorted(result.groups, key=lambda g: (g.value == g.value, -g.value if g.value == g.value else 0))
    shown = ordered[:top_groups or GROUPS]
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    values = np.array([g.value for g in shown], dtype=np.float64)
    bars = ax.barh(y, np.nan_to_num(values, nan=0.0), height=0.7, color=BAR)
    for i, (bar, group) in enumerate(zip(bars, shown)):
        bar.set_gid(f"group-{i}")
        if group.value != group.value:
            ax.text(0, i, " NaN", va="center", color=MARK)
    lows = [g.ci.low for g in shown if g.ci is not None]
    if lows:
        highs = [g.ci.high for g in shown if g.ci is not None]
        at = [i for i, g in enumerate(shown) if g.ci is not None]
        ax.hlines(at, lows, highs, color="black", linewidth=1.2, gid="intervals",
                  label=f"{shown[0].ci.level * 100:g}% CI" if shown[0].ci is not None else "CI")
        ax.plot(lows + highs, at + at, "|", color="black", markersize=6)
    ax.set_yticks(y, labels=[_short(g.name) for g in shown])
    ax.invert_yaxis()
    ax.set_xlabel(f"loss of each group ({result.reduction.value})")
    more = f" (the worst {len(shown)})" if len(shown) < len(ordered) else ""
    ax.set_title(f"{result.loss} ({result.reduction.value}) by group: {len(ordered)} groups{more}, worst first",
                 loc="left", gid="title")
    _line(ax, float(result.value), f"all samples {str(result.value[()])}", "value")
    _legend(ax)


def _shown(result: LossResult, top_groups: int | None) -> int:
    return min(len(result.groups or ()), top_groups or GROUPS)


# -- pieces ---------------------------------------------------------------------------------------------------


def _drawn(draw: Callable[[Figure], None], fmt: str, height: float = 4.0) -> bytes:
    """The bytes of a figure ``draw`` fills, in ``fmt``, drawn under losscli's style (not matplotlib's global
    one: a Python caller's settings are left as they were)."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, max(height, 2.5)), dpi=100, layout="constrained")
        draw(fig)
        out = io.BytesIO()
        fig.savefig(out, format=fmt, metadata=METADATA[fmt])
    return out.getvalue()


def _histogram(ax: Axes, hist: Hist, label: str) -> None:
    """The engine's histogram as bars (a bar per bin; one narrow bar when every value is equal), the NaN and
    infinite values that no bin holds noted."""
    edges, counts = hist.edges, hist.counts
    if counts.size and np.all(np.isfinite(edges)):
        if edges[0] == edges[-1]:  # every finite value equal: the one bin [v, v]
            width = abs(edges[0]) / 50 or 0.02
            lefts, widths = np.array([edges[0] - width / 2]), np.array([width])
        else:
            lefts, widths = edges[:-1], np.diff(edges)
        for i, bar in enumerate(ax.bar(lefts, counts, width=widths, align="edge", color=BAR, edgecolor="white",
                                       linewidth=0.5)):
            bar.set_gid(f"bin-{i}")
    else:
        ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center")
    note = f"NaN {hist.nan} · ±inf {hist.inf} (not in the bins)" if hist.nan or hist.inf else None
    _labels(ax, label, note)


def _values(ax: Axes, values: np.ndarray | None, label: str) -> None:
    """A histogram of an array held in memory (a comparison's differences), its non-finite values noted."""
    values = np.asarray(values if values is not None else [], dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size:
        counts, edges = np.histogram(finite, bins=BINS)
        for i, bar in enumerate(ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BAR,
                                       edgecolor="white", linewidth=0.5)):
            bar.set_gid(f"bin-{i}")
    else:
        ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center")
    left = values.size - finite.size
    _labels(ax, label, f"{left} not finite (NaN: nothing selected in a row), not drawn" if left else None)


def _line(ax: Axes, x: float, label: str, gid: str, style: str = "-", color: str = MARK) -> None:
    """A vertical line at ``x`` (none at NaN or ±inf), in the legend as ``label``."""
    if np.isfinite(x):
        ax.axvline(x, color=color, linestyle=style, linewidth=1.5, label=label, gid=gid)


def _band(ax: Axes, low: float, high: float, label: str) -> None:
    """An interval, shaded (none when it is NaN: NaN in the data)."""
    if np.isfinite(low) and np.isfinite(high):
        ax.axvspan(low, high, color=BAND, alpha=0.25, linewidth=0, label=f"{label} [{low:.6g}, {high:.6g}]", gid="ci",
                   zorder=0)


def _labels(ax: Axes, x: str, note: str | None) -> None:
    """The axes' labels; a ``note`` (what the bins leave out) on a line under the x axis's."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(x if note is None else f"{x}\n{note}")
    ax.set_ylabel("count")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small", framealpha=0.85, edgecolor="none")


def _count(hist: Hist) -> int:
    return int(hist.counts.sum()) + hist.nan + hist.inf


def _unit(result: LossResult, hist: Hist, short: bool = False) -> str:
    if not hist.by_sample:
        return "elements" if short else "loss per element"
    return "samples" if short else f"loss per sample ({result.reduction.value} of each row)"


def _short(name: str, most: int = 30) -> str:
    return name if len(name) <= most else name[:most - 1] + "…"


__all__ = ["BINS", "INSTALL", "check_plot", "comparison_plot", "file_names", "loss_plot", "plot_format", "require",
           "sample_histogram"]
