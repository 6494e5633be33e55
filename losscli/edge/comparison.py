"""``losscli compare LOSS BASE NEW REST...``: one command per loss, built from the loss command's parameters
with its first file split in two (the base model's and the new model's), and the comparison's options."""

from __future__ import annotations

import enum
import inspect
import json
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..compare import Comparison, Verdict, compare
from ..errors import LossCliWarning
from ..io import Loader
from ..io.remote import parse_options
from ..api import Engine
from ..losses import LossSpec
from .cells import json_number
from .commands import (GATE, STATS, cluster, common_params, file_params, input_paths, load_file, opt,
                       option_params)
from .console import EXIT_THRESHOLD, exit_on_error, flush_stdout, say, stdout

if TYPE_CHECKING:
    from rich.table import Table
from .writer import check_targets, write_bytes

SCHEMA_VERSION = 1
# the loss command's common flags that a comparison takes (the others: views, gradients, outputs, thresholds)
KEPT = ("reduction", "size_average", "reduce", "nan_policy", "strict", "resamples", "seed", "quiet", "debug",
        "engine", "scheduler", "storage_option")
# a loss's own option named as an option of the comparison's (margin-ranking's --margin) is --loss-margin here
RENAMED = {"margin": "loss_margin"}


class CompareFormat(str, enum.Enum):
    table = "table"
    json = "json"


def compare_command(spec: LossSpec) -> Any:
    """The function Typer turns into ``losscli compare LOSS``: its signature is the command's options."""
    def command(**kwargs: Any) -> None:
        run(spec, **kwargs)

    first, *rest = file_params(spec)
    files = [first.replace(name="base", annotation=_model("base", spec)),
             first.replace(name="new", annotation=_model("new", spec)), *rest]
    common = [p for p in common_params(spec) if p.name in KEPT]
    options = tuple(o._replace(name=RENAMED.get(o.name, o.name)) for o in spec.options)
    params = [*files, *option_params(replace(spec, options=options)), *common, *_compare_params()]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = spec.name.replace("-", "_")
    return command


def help_text(spec: LossSpec) -> str:
    first = spec.files[0].name
    return (f"Compare two models on [bold]{spec.name}[/bold]: the loss of BASE and of NEW (two versions of "
            f"the {first}, for the same targets), the difference new - base with a paired bootstrap interval "
            "and p-value, and a verdict: better, worse or inconclusive at --alpha.\n\n"
            f"Example: [bold]losscli compare {spec.example.split(' ', 1)[0]} BASE NEW ...[/bold] "
            "(the files after NEW as for the loss command)")


def _model(which: str, spec: LossSpec) -> Any:
    return Annotated[str, typer.Argument(help=f"the {which} model's {spec.files[0].name}: the forms the loss command "
                                              "reads", show_default=False)]


def _compare_params() -> list[inspect.Parameter]:
    return [
        opt("alpha", "--alpha", panel=STATS, default=0.05, kind=float,
             help="significance level: the interval of new - base is at 1 - alpha"),
        opt("margin", "--margin", panel=GATE, default=0.0, kind=float, metavar="X",
             help="worse only when the increase is significantly larger than X (the whole interval above X)"),
        opt("fail_if_worse", "--fail-if-worse", panel=GATE, default=False, kind=bool,
             help="exit 1 when the verdict is worse"),
        opt("format", "--format", "-f", panel="Output", default=CompareFormat.table, kind=CompareFormat,
             help="table for people; json for scripts"),
        opt("plot", "--plot", panel="Output", metavar="FILE",
             help="draw FILE.png or FILE.svg: the differences new - base of the paired resamples with 0, the "
                  "margin and the interval marked, and of each sample (up to a million samples; needs pip install "
                  "'losscli\\[plot]')"),  # rich markup: \[ is a [
    ]


def run(spec: LossSpec, *, base: str, new: str, alpha: float, margin: float, fail_if_worse: bool,
        format: CompareFormat, debug: bool, quiet: bool, storage_option: list[str] | None = None,
        engine: Engine = Engine.local, scheduler: str | None = None, plot: str | None = None, **given: Any) -> None:
    """Load both models' files and the rest, compare, show, and judge ``--fail-if-worse``."""
    with exit_on_error(debug):
        fmt = _plot_format(plot)
        loader = Loader(storage_options=parse_options(storage_option or ()))
        first = spec.files[0]
        models = [load_file(loader, path, first) for path in (base, new)]
        rest = [load_file(loader, given.pop(f.name), f) for f in spec.files[1:]]
        named = {f.name: loader.load(path, role=f.name) for f in spec.extras if (path := given.pop(f.name)) is not None}
        check_targets({"--plot": plot}, input_paths([*models, *rest, *named.values()]))
        with warnings.catch_warnings(), cluster(engine, scheduler, show=format is CompareFormat.table and not quiet) as on:
            warnings.simplefilter("ignore", LossCliWarning)  # printed below, once each
            found = compare(spec, *models, *rest, **named, **given, alpha=alpha, margin=margin, engine=on,
                            scheduler=scheduler, per_sample=plot is not None)
        if plot is not None:
            from . import plots

            write_bytes(plot, plots.comparison_plot(found, fmt), "--plot")
    for warning in dict.fromkeys(found.base.warnings + found.new.warnings):
        say("warning", warning, "yellow")
    if format is CompareFormat.json:
        print(json.dumps(to_json(found, base, new), indent=2, allow_nan=False))
    else:
        stdout().print(to_table(found, base, new))
    flush_stdout()
    if fail_if_worse and found.verdict is Verdict.worse:
        say("FAIL", f"{spec.name}: new is worse than base: {_difference(found)}")
        raise typer.Exit(EXIT_THRESHOLD)


def _plot_format(plot: str | None) -> str:
    """Before any work: the format of ``--plot`` (and matplotlib there to draw it)."""
    if plot is None:
        return ""
    from . import plots  # matplotlib is imported only when a plot is drawn

    return plots.plot_format(plot)


def _difference(found: Comparison) -> str:
    pct = "" if found.relative != found.relative else f" ({found.relative * 100:+.3g}%)"
    return (f"{found.difference:+.6g}{pct}, {found.level * 100:g}% CI [{found.low:.6g}, {found.high:.6g}], "
            f"p = {found.p_value:.3g}")


def to_json(found: Comparison, base: str, new: str) -> dict[str, Any]:
    b = found.base
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "losscli", "version": __version__},
        "loss": b.loss,
        "torch": f"torch.nn.functional.{b.torch_name}",
        "reduction": b.reduction.value,
        "files": {"base": base, "new": new},
        "base": json_number(b.value),
        "new": json_number(found.new.value),
        "difference": json_number(found.difference),
        "relative": json_number(found.relative),
        "ci": {"level": found.level, "low": json_number(found.low), "high": json_number(found.high),
               "method": found.method, "resamples": found.resamples, "seed": found.seed},
        "p_value": json_number(found.p_value),
        "verdict": found.verdict.value,
        "alpha": found.alpha,
        "margin": found.margin,
        "count": b.count,
        "selected": b.selected,
        "warnings": list(dict.fromkeys(b.warnings + found.new.warnings)),
    }


def to_table(found: Comparison, base: str, new: str) -> Table:
    """The comparison for people (rich is imported only to draw it)."""
    from rich.table import Table
    from rich.text import Text

    b = found.base
    table = Table(show_header=False, title=f"{b.loss}: new vs base", title_style="bold", box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("loss", f"{b.loss}  [dim](torch.nn.functional.{b.torch_name})[/dim]")
    table.add_row("reduction", b.reduction.value)
    table.add_row("base", Text(f"{str(b.value[()])}  {base}"))
    table.add_row("new", Text(f"{str(found.new.value[()])}  {new}"))
    table.add_row("difference", Text(_difference(found), style="bold"))
    style = {Verdict.better: "bold green", Verdict.worse: "bold red", Verdict.inconclusive: "bold yellow"}
    margin = f" than the margin {found.margin:g}" if found.margin and found.verdict is Verdict.worse else ""
    table.add_row("verdict", Text(f"{found.verdict.value}{margin} (alpha {found.alpha:g}, {found.resamples} "
                                  f"paired resamples, seed {found.seed})", style=style[found.verdict]))
    return table
