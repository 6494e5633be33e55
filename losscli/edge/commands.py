"""One command per loss, generated from its definition (:class:`~losscli.losses.base.LossSpec`): the files,
the extra files (``spec.extras``), the loss's options and the common flags. A command loads the files, calls
:func:`losscli.compute`, writes what was asked through the one writer, renders, and judges thresholds."""

from __future__ import annotations

import enum
import inspect
import sys
import warnings
from contextlib import contextmanager
from typing import Annotated, Any, Iterator, Optional

import typer

from ..api import Engine, NanPolicy, Outputs, Streaming, compute, distributable
from ..backends import Backend
from ..errors import LossCliError, LossCliWarning, flag
from ..io import Loaded, Loader, Shards
from ..io.remote import parse_options
from ..judge import check_thresholds, judge
from ..losses import LossSpec
from ..losses.base import FileArg
from ..reduction import Reduction, resolve
from ..result import LossResult
from . import console
from .console import EXIT_THRESHOLD, escape, exit_on_error, flush_stdout, say
from .progress import ProgressBar, wants_progress
from .render import Format, check_format, pieces
from .summary import Written
from .writer import ArrayFile, check_array_path, check_targets, save_array, write_bytes

FILES = "Inputs"
LOSS = "Loss options"
REDUCE = "Reduction"
OUTPUT = "Output"
GATE = "Quality gate"
VIEWS = "Per-sample views"
STATS = "Statistics"
ENGINE = "Engine"
FORMS = "FILE.npy, FILE.npz[:key], FILE.csv[:col[,col]] or - (CSV on stdin)"


def loss_command(spec: LossSpec) -> Any:
    """The function Typer turns into the command of ``spec``: its signature is the command's options."""
    def command(**kwargs: Any) -> None:
        run(spec, **kwargs)

    params = [*file_params(spec), *option_params(spec), *common_params(spec)]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = spec.name.replace("-", "_")
    return command


def help_text(spec: LossSpec) -> str:
    """The command's help: rich markup around the definition's texts (escaped, which may load rich: the command
    makes it only when the help is shown)."""
    return (
        f"{escape(spec.summary)} Computes [bold]torch.nn.functional.{spec.torch_name}[/bold].\n\n"
        f"[bold]Per element:[/bold] {escape(spec.formula)}\n\n"
        f"[bold]Shapes:[/bold] {escape(spec.family.shapes)}\n\n"
        f"[bold]mean divides by:[/bold] {escape(spec.mean_rule)}\n\n"
        f"Example: [bold]{escape(spec.example)}[/bold]"
    )


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def opt(name: str, *flags: str, panel: str, help: str, default: Any = None, kind: Any = Optional[str],
         **kw: Any) -> inspect.Parameter:
    """A parameter of the command: an option under ``panel`` in --help."""
    return _param(name, Annotated[kind, typer.Option(*flags, rich_help_panel=panel, help=help, **kw)], default)


def file_params(spec: LossSpec) -> list[inspect.Parameter]:
    """The loss's files: positional in torch's order, then its extra files as options."""
    params = [
        _param(f.name, Annotated[str, typer.Argument(
            help=(f"{escape(f.help)}: {FORMS}" if i == 0 else f"{escape(f.help)}, same forms")
            + (", or a number" if f.number_ok else ""), show_default=False)])
        for i, f in enumerate(spec.files)
    ]
    for f in spec.extras:
        flags = (flag(f.name), f.short) if f.short else (flag(f.name),)
        params.append(opt(f.name, *flags, panel=FILES, help=escape(f.help), metavar="FILE"))
    return params


def option_params(spec: LossSpec) -> list[inspect.Parameter]:
    params = []
    for option in spec.options:
        flags = f"{option.flag}/--no-{option.flag[2:]}" if option.type is bool else option.flag
        params.append(opt(option.name, flags, panel=LOSS, help=escape(option.help), default=option.default,
                           kind=option.type))
    if spec.family.broadcasts:
        params.append(opt("broadcast", "--broadcast", panel=LOSS, default=False, kind=bool,
                           help="broadcast target against input as torch does (with torch's warning, where it gives one)"))
    return params


def _reduction_choices(spec: LossSpec) -> type[enum.Enum]:
    """The --reduction choices this loss takes (batchmean for kl-div only)."""
    return enum.Enum(f"{spec.name}-reduction", {r.value: r.value for r in spec.reductions}, type=str)


def common_params(spec: LossSpec) -> list[inspect.Parameter]:
    """Reduction, backend, gate, output and view flags, in the order --help shows them."""
    return [
        opt("reduction", "--reduction", "-r", panel=REDUCE, help="none: per element, or how to reduce",
             default=Reduction.mean.value, kind=_reduction_choices(spec)),
        opt("size_average", "--size-average/--no-size-average", panel=REDUCE, show_default=False, kind=Optional[bool],
             help="legacy torch flag; overrides --reduction (see 'losscli reductions')"),
        opt("reduce", "--reduce/--no-reduce", panel=REDUCE, show_default=False, kind=Optional[bool],
             help="legacy torch flag; overrides --reduction"),
        opt("backend", "--backend", "-b", panel=LOSS, default=Backend.numpy, kind=Backend,
             help="numpy (no torch needed) or torch (torch.nn.functional)"),
        opt("cross_check", "--cross-check", panel=GATE, default=False, kind=bool,
             help="also run the other backend; exit 1 if they differ"),
        opt("tolerance", "--tolerance", panel=GATE, default=1e-5, kind=float,
             help="cross-check passes when |a - b| <= tolerance·(1 + |b|)"),
        opt("fail_above", "--fail-above", panel=GATE, metavar="X", kind=Optional[float],
             help="exit 1 when the value is above X (NaN fails)"),
        opt("fail_below", "--fail-below", panel=GATE, metavar="X", kind=Optional[float],
             help="exit 1 when the value is below X (NaN fails)"),
        opt("nan_policy", "--nan-policy", panel=LOSS, default=NanPolicy.propagate, kind=NanPolicy,
             help="NaN/Inf in inputs: propagate (with a warning) or raise (exit 2)"),
        opt("strict", "--strict", panel=LOSS, default=False, kind=bool,
             help="refuse (exit 2) values torch computes with but the loss does not expect, such as a hinge "
                  "target other than -1 or 1 (default: torch's value, with a warning)"),
        opt("format", "--format", "-f", panel=OUTPUT, default=Format.table, kind=Format,
             help="table for people; json, plain, csv or metrics ({name: value}) for scripts"),
        opt("output", "--output", "-o", panel=OUTPUT, metavar="FILE",
             help="also write the value to FILE.npy or FILE.csv"),
        opt("grad", "--grad", panel=OUTPUT, metavar="FILE",
             help=f"write d(loss)/d({spec.files[0].name}) to FILE.npy or FILE.csv, and show it (for none: of the sum)"),
        opt("plot", "--plot", panel=OUTPUT, metavar="FILE",
             help="draw FILE.png or FILE.svg: the histogram of the per-sample losses with the value (and --ci) "
                  "marked; with --by/--by-class, the groups (needs pip install "
                  "'losscli\\[plot]')"),  # rich markup: \[ is a [
        opt("per_sample", "--per-sample", panel=VIEWS, default=False, kind=bool,
             help="the loss of each sample (row of the first axis) as torch gives it for that row alone; "
                  "--output then writes these, and --top/--hist rank and count samples"),
        opt("top", "--top", panel=VIEWS, metavar="K", kind=Optional[int],
             help="the K largest losses (elements, or samples with --per-sample) with their indices, NaN first"),
        opt("hist", "--hist", panel=VIEWS, default=False, kind=bool,
             help="a histogram of the losses (elements, or samples with --per-sample); NaN and inf counted apart"),
        *stats_params(),
        opt("quiet", "--quiet", "-q", panel=OUTPUT, default=False, kind=bool,
             help="no progress bar (it shows on a terminal for work over a second, except with --format json, plain or metrics)"),
        opt("debug", "--debug", panel=OUTPUT, default=False, kind=bool, help="show tracebacks"),
        opt("engine", "--engine", panel=ENGINE, default=Engine.local, kind=Engine,
             help="local: this process; dask: a dask cluster (--scheduler, else DASK_SCHEDULER_ADDRESS, else a "
                  "local cluster of one worker per core started for the run), with the same value to the last digit"),
        opt("scheduler", "--scheduler", panel=ENGINE, metavar="ADDRESS",
             help="the dask scheduler to use with --engine dask, e.g. tcp://10.0.0.5:8786"),
        opt("storage_option", "--storage-option", panel=FILES, kind=Optional[list[str]], metavar="KEY=VALUE",
             help="an fsspec option for the URLs read (s3://, https://, ...), e.g. anon=true; repeatable"),
    ]


def stats_params() -> list[inspect.Parameter]:
    """The statistics flags: an interval, groups, and the bootstrap's resamples and seed."""
    return [
        opt("ci", "--ci", panel=STATS, metavar="LEVEL", kind=Optional[float],
            help="a confidence interval of the value at LEVEL (0.95): Poisson bootstrap over the samples, the "
                 "loss's own reduction in each resample (docs/statistics.md)"),
        opt("by", "--by", panel=STATS, metavar="FILE[:col]",
            help="a group label per sample (text or integers, any format): the loss of each group too, with "
                 "torch's denominators (docs/statistics.md)"),
        opt("by_class", "--by-class", panel=STATS, default=False, kind=bool,
            help="the loss of each target class (of each label column for bce on (N, C))"),
        opt("top_groups", "--top-groups", panel=STATS, metavar="K", kind=Optional[int],
            help="show the K worst groups (the table; JSON lists every group)"),
        opt("resamples", "--resamples", panel=STATS, metavar="N", default=1000, kind=int,
            help="bootstrap resamples for --ci"),
        opt("seed", "--seed", panel=STATS, metavar="S", default=0, kind=int,
            help="the bootstrap's seed: the same seed gives the same interval, whatever the chunks, shards or engine"),
    ]


def run(spec: LossSpec, *, reduction: str, size_average: bool | None, reduce: bool | None, backend: Backend,
        cross_check: bool, tolerance: float, fail_above: float | None, fail_below: float | None,
        nan_policy: NanPolicy, format: Format, output: str | None, grad: str | None, debug: bool,
        broadcast: bool = False, per_sample: bool = False, top: int | None = None, hist: bool = False,
        quiet: bool = False, strict: bool = False, storage_option: list[str] | None = None,
        engine: Engine = Engine.local, scheduler: str | None = None, ci: float | None = None,
        resamples: int = 1000, seed: int = 0, by: str | None = None, by_class: bool = False,
        top_groups: int | None = None, plot: str | None = None, **given: Any) -> None:
    """One loss command: load, compute, write, render, judge. ``given`` holds the files and the loss's options."""
    with exit_on_error(debug):
        outputs = Outputs(grad is not None, per_sample, top, hist, cross_check, tolerance, ci, resamples, seed,
                          by_class)
        resolved = resolve(reduction, size_average, reduce)[0]
        _refuse_early(resolved, outputs, format, engine, backend, fail_above, fail_below, top_groups,
                      grouped=by is not None or by_class)
        drawing = Drawing.of(plot, resolved, by is not None or by_class)
        loader = Loader(storage_options=parse_options(storage_option or ()))
        arrays = [load_file(loader, given.pop(f.name), f) for f in spec.files]
        named = {f.name: loader.load(path, role=f.name) for f in spec.extras if (path := given.pop(f.name)) is not None}
        _check_outputs({"--output": output, "--grad": grad, "--plot": plot}, [*arrays, *named.values()])
        sink = ArrayFile(output) if output is not None and not per_sample else None
        bar = ProgressBar(console.stderr, spec.name) if wants_progress(
            terminal=console.maybe_terminal(sys.stderr), quiet=quiet, fmt=format.value) else None
        try:
            with warnings.catch_warnings(), cluster(engine, scheduler, show=format is Format.table and not quiet) as on:
                warnings.simplefilter("ignore", LossCliWarning)  # _show prints result.warnings itself
                result = compute(
                    spec, *arrays, **named, **given, reduction=reduction, size_average=size_average,
                    reduce=reduce, backend=backend, nan_policy=nan_policy, strict=strict, broadcast=broadcast,
                    engine=on, scheduler=scheduler, by=None if by is None else loader.labels(by, role="by"),
                    outputs=outputs,
                    streaming=Streaming(progress=bar, sink=sink, accumulators=drawing.accumulators))
        finally:
            if bar is not None:
                bar.close()
        if output is not None and (per_sample or result.reduction is not Reduction.none):
            save_array(result.per_sample if per_sample else result.value, output, "--output")
        if grad is not None:
            save_array(result.grad, grad, "--grad")
        drawing.write(result, top_groups)
    _show(result, format, Written(output, sink.summary) if sink is not None and not result.is_scalar else None,
          top_groups)
    failures = _failures(result, fail_above, fail_below)
    for reason in failures:
        say("FAIL", reason)
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)


def _refuse_early(resolved: Reduction, outputs: Outputs, format: Format, engine: Engine, backend: Backend,
                  fail_above: float | None, fail_below: float | None, top_groups: int | None,
                  grouped: bool) -> None:
    """Before any work: what needs a value that the reduction or the format does not give, and what the dask
    engine cannot do (before a cluster is reached, or started for nothing)."""
    check_thresholds(fail_above=fail_above, fail_below=fail_below, tolerance=outputs.tolerance)
    if (fail_above is not None or fail_below is not None) and resolved is Reduction.none:
        raise LossCliError("--fail-above/--fail-below: expected a reduced value (mean or sum), but the "
                           "reduction is none")
    check_format(format, outputs.top, outputs.hist, resolved)
    if top_groups is not None and top_groups < 1:
        raise LossCliError(f"--top-groups: expected a count of 1 or more, but got {top_groups}")
    if top_groups is not None and not grouped:
        raise LossCliError("--top-groups: expected groups to show (--by or --by-class), but got none")
    if engine is Engine.dask:
        distributable(backend, outputs)


@contextmanager
def cluster(engine: Engine, scheduler: str | None, *, show: bool) -> Iterator[Any]:
    """``Engine.local``, or the dask cluster of the command, connected (or started) here and closed after; with
    ``show``, stderr names its scheduler and dashboard, to follow the run there."""
    if engine is Engine.local:
        yield Engine.local
        return
    from ..engine.cluster import Cluster

    with Cluster(scheduler) as found:
        found.open()
        if show:
            dashboard = f" · dashboard {found.dashboard}" if found.dashboard else ""
            say("dask", f"scheduler {found.scheduler}{dashboard}", style="cyan")
        yield found


def load_file(loader: Loader, value: str, file: FileArg) -> Any:
    """A file argument: loaded, or a plain number where the loss takes one."""
    if file.number_ok:
        try:
            return float(value)
        except ValueError:
            pass
    return loader.load(value, role=file.name)


def _check_outputs(targets: dict[str, str | None], inputs: list[Any]) -> None:
    """Before any work: output names that the writer takes, none of them an input or another output."""
    for option in ("--output", "--grad"):
        if targets[option] is not None:
            check_array_path(targets[option], option)
    check_targets(targets, input_paths(inputs))


class Drawing:
    """``--plot FILE``: its format, checked before any work; the histogram it draws, fed as the loss runs (none
    with groups: their bars are drawn); and the plot, drawn and written through the one writer."""

    def __init__(self, path: str | None = None, fmt: str = "", accumulators: tuple[Any, ...] = ()) -> None:
        self.path, self.fmt, self.accumulators = path, fmt, accumulators

    @classmethod
    def of(cls, path: str | None, reduction: Reduction, grouped: bool) -> Drawing:
        if path is None:
            return cls()
        from . import plots  # matplotlib is imported only when a plot is drawn

        fmt = plots.plot_format(path)
        return cls(path, fmt, () if grouped else (plots.sample_histogram(reduction),))

    def write(self, result: LossResult, top_groups: int | None) -> None:
        if self.path is None:
            return
        from . import plots

        hist = self.accumulators[0].finish() if self.accumulators else None
        write_bytes(self.path, plots.loss_plot(result, hist, self.fmt, top_groups), "--plot")


def input_paths(inputs: list[Any]) -> list[str]:
    """The files behind loaded inputs (every shard of a sharded one)."""
    found = []
    for item in inputs:
        if isinstance(item, Loaded):
            found += [name for name, _ in item.rows.counts] if isinstance(item.rows, Shards) else [item.path]
    return found


def _show(result: LossResult, format: Format, written: Written | None, top_groups: int | None = None) -> None:
    """Print the result (the render layer builds it; with ``written``, a ``none`` loss's file stands for its
    values; of its groups, the ``top_groups`` worst in a table), its warnings on stderr."""
    for warning in result.warnings:
        say("warning", warning, "yellow")
    if format is Format.table:
        from .render_table import to_table  # rich is imported only to draw a table

        console.stdout().print(to_table(result, written, top_groups))
    else:
        for piece in pieces(result, format, written):
            sys.stdout.write(piece)
    flush_stdout()


def _failures(result: LossResult, fail_above: float | None, fail_below: float | None) -> list[str]:
    """Reasons the result fails its cross-check or its thresholds (empty: it passes)."""
    reasons = []
    check = result.cross_check
    if check is not None and not check.ok:
        reasons.append(f"cross-check: {result.backend.value} and {check.backend.value} differ by up to "
                       f"{check.max_abs_diff:.3g} (relative {check.max_rel_diff:.3g}), beyond --tolerance "
                       f"{check.tolerance:g}")
    bounds = {k: v for k, v in (("max", fail_above), ("min", fail_below)) if v is not None}
    if bounds:
        verdict = judge(str(result.value[()]), bounds, names={"max": "--fail-above", "min": "--fail-below"})
        reasons += [f"{result.loss} ({result.reduction.value}): {reason}" for reason in verdict.reasons]
    return reasons
