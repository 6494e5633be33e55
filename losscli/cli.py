"""The command line: one command per loss, generated from the loss catalog. Thin: it loads the files,
calls :func:`losscli.compute`, renders, and maps errors to exit codes (2: bad input, 1: a failed
threshold or cross-check, 3: a bug in losscli)."""

from __future__ import annotations

import contextlib
import enum
import inspect
import math
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click import Command
from typer.core import TyperGroup

from . import __version__
from .api import NanPolicy, compute
from .backends import Backend
from .errors import LossCliError
from .io import Loader
from .losses import CATALOG, LossSpec
from .losses import FileArg
from .reduction import Reduction, legacy_table, resolve
from .stream import ProgressBar, wants_progress
from .render import Format, check_format, render, save

EXIT_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3

# emoji=False: a file name such as "run:smile:.csv" is printed as it is (and rich's emoji table, ~3 ms, is not loaded)
stdout = Console(highlight=False, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class LossCliGroup(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of a usage block and a panel. The loss
    commands are built when first looked up (see :class:`LossCommands`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LossCommands(self.commands)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            stderr.print("aborted")
            code = EXIT_THRESHOLD
        except typer._click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            stderr.print(f"[red]error:[/red] {escape(exc.format_message())}{hint}")
            code = exc.exit_code
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=LossCliGroup,
    name="losscli",
    help="Loss values from saved predictions, exactly as torch.nn.functional computes them.\n\n"
    "Example: [bold]losscli cross-entropy logits.npy labels.csv --format json[/bold]",
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"losscli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Loss values from saved predictions, exactly as torch.nn.functional computes them."""


@app.command()
def reductions() -> None:
    """How the legacy [bold]--size-average[/bold] / [bold]--reduce[/bold] flags resolve (torch's
    legacy_get_string): either flag overrides --reduction; an unset one counts as True.

    Example: [bold]losscli reductions[/bold]
    """
    table = Table(title="legacy flags → reduction", title_style="bold")
    table.add_column("--size-average")
    table.add_column("--reduce")
    table.add_column("reduction", style="bold cyan")
    shown = {None: "[dim]unset[/dim]", True: "True", False: "False"}
    for size_average, reduce, resolved in legacy_table():
        unset = size_average is None and reduce is None
        table.add_row(shown[size_average], shown[reduce],
                      "--reduction applies (default mean)" if unset else resolved.value)
    stdout.print(table)


@app.command("list")
def list_losses() -> None:
    """Every loss: its command, the torch function it matches, its files, options and reductions.

    Example: [bold]losscli list[/bold]
    """
    table = Table(title="losses", title_style="bold", box=box.SIMPLE_HEAD, show_lines=True, show_edge=False,
                  padding=(0, 1, 0, 0),
                  caption="every loss also takes --mask, --reduction and the options of 'losscli LOSS --help'")
    table.add_column("command\n[dim]torch.nn.functional[/dim]", no_wrap=True)  # fits 80 columns
    table.add_column("files", max_width=14)  # widths that fit 80 columns with no option cut
    table.add_column("options")
    table.add_column("reduction", max_width=9)
    for spec in CATALOG.values():
        files = " ".join(f.name.upper() for f in spec.files)
        flags = ["--" + f.name.replace("_", "-") for f in spec.extras if f.name != "mask"]  # mask: the caption
        table.add_row(f"[bold]{spec.name}[/bold]\n[dim]{spec.torch_name}[/dim]", files,
                      " ".join(flags + [o.flag for o in spec.options]), " ".join(r.value for r in spec.reductions))
    stdout.print(table)


# -- quality gates --------------------------------------------------------------------------------------


class CheckFormat(str, enum.Enum):
    table = "table"
    json = "json"


@app.command()
def check(
    gates: Annotated[str, typer.Argument(metavar="GATES", show_default=False, help=escape(
        "the gate file (TOML): [[check]] tables with a loss, files and bounds"))],
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", metavar="REPORT.json", help="the report of an earlier run, for max_increase(_pct)")] = None,
    write_baseline: Annotated[Optional[str], typer.Option(
        "--write-baseline", metavar="PATH", help="write this run's report to PATH as the next baseline, only "
        "when every check passes")] = None,
    report: Annotated[Optional[str], typer.Option(
        "--report", metavar="FILE.json", help="write the JSON report (schema: losscli/report.schema.json)")] = None,
    junit: Annotated[Optional[str], typer.Option(
        "--junit", metavar="FILE.xml", help="write JUnit XML, a testcase per check")] = None,
    markdown: Annotated[Optional[str], typer.Option(
        "--markdown", metavar="FILE.md", help="write a Markdown summary (for $GITHUB_STEP_SUMMARY)")] = None,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", metavar="NAME", help="run only this check (repeatable)")] = None,
    skip: Annotated[Optional[list[str]], typer.Option(
        "--skip", metavar="NAME", help="leave this check out (repeatable)")] = None,
    format: Annotated[CheckFormat, typer.Option(
        "--format", "-f", help="table and a verdict line for people; json: the report, for scripts")] = CheckFormat.table,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    """Run the quality gates of a gate file: every check, each against its bounds (and a baseline).
    Exit status 0 when all pass, 1 when any failed a bound or gave NaN, 2 when the gate file or an input
    is invalid (2 wins over 1).

    Example: [bold]losscli check samples/gates.toml --junit junit.xml --markdown summary.md[/bold]
    """
    from .gates import run_gate_file
    from .render import reports

    with _exit_on_error(debug):
        if write_baseline and (only or skip):
            raise LossCliError("--write-baseline: a baseline records every check, so it cannot be combined "
                               "with --only or --skip")
        run_ = run_gate_file(gates, baseline=baseline, only=only or [], skip=skip or [])
        document = reports.to_json_text(run_)
        outputs = {"--report": (report, document), "--junit": (junit, reports.to_junit(run_)),
                   "--markdown": (markdown, reports.to_markdown(run_)),
                   "--write-baseline": (write_baseline if run_.all_passed else None, document)}
        for option, (path, text) in outputs.items():
            if path:
                reports.write(path, text, option)
    if format is CheckFormat.json:
        print(document, end="")
    else:
        stdout.print(reports.to_check_table(run_))
    for level, line in reports.messages(run_, write_baseline):
        stderr.print(f"[{reports.LEVEL_STYLE[level]}]{level}:[/] {escape(line)}")
    (stdout if format is CheckFormat.table else stderr).print(
        reports.verdict(run_), style=("bold green", "bold red", "bold yellow")[run_.exit_code])
    raise typer.Exit(run_.exit_code)


# -- loss commands ------------------------------------------------------------------------------------

FILES = "Inputs"
LOSS = "Loss options"
REDUCE = "Reduction"
OUTPUT = "Output"
GATE = "Quality gate"
VIEWS = "Per-sample views"


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _opt(*flags: str, panel: str, help: str, **kw: Any) -> Any:
    return typer.Option(*flags, rich_help_panel=panel, help=help, **kw)


def _reduction_choices(spec: LossSpec) -> type[enum.Enum]:
    """The --reduction choices this loss takes (batchmean for kl-div only)."""
    return enum.Enum(f"{spec.name}-reduction", {r.value: r.value for r in spec.reductions}, type=str)


def _signature(spec: LossSpec) -> list[inspect.Parameter]:
    """The command's parameters, in the order --help shows them."""
    forms = "FILE.npy, FILE.npz[:key], FILE.csv[:col[,col]] or - (CSV on stdin)"
    params = [
        _param(f.name, Annotated[str, typer.Argument(
            help=(f"{escape(f.help)}: {forms}" if i == 0 else f"{escape(f.help)}, same forms")
            + (", or a number" if f.number_ok else ""), show_default=False)])
        for i, f in enumerate(spec.files)
    ]
    for f in spec.extras:
        names = ("--" + f.name.replace("_", "-"),) + ((f.short,) if f.short else ())
        params.append(_param(f.name, Annotated[Optional[str], _opt(
            *names, panel=FILES, help=escape(f.help), metavar="FILE")], None))
    for option in spec.options:
        flag = f"{option.flag}/--no-{option.flag[2:]}" if option.type is bool else option.flag
        params.append(_param(option.name, Annotated[option.type, _opt(
            flag, panel=LOSS, help=escape(option.help))], option.default))
    if spec.family.broadcasts:
        params.append(_param("broadcast", Annotated[bool, _opt(
            "--broadcast", panel=LOSS,
            help="broadcast target against input as torch does (with torch's warning, where it gives one)")],
            False))
    params += [
        _param("reduction", Annotated[_reduction_choices(spec), _opt(
            "--reduction", "-r", panel=REDUCE, help="none: per element, or how to reduce")], Reduction.mean.value),
        _param("size_average", Annotated[Optional[bool], _opt(
            "--size-average/--no-size-average", panel=REDUCE, show_default=False,
            help="legacy torch flag; overrides --reduction (see 'losscli reductions')")], None),
        _param("reduce", Annotated[Optional[bool], _opt(
            "--reduce/--no-reduce", panel=REDUCE, show_default=False,
            help="legacy torch flag; overrides --reduction")], None),
        _param("backend", Annotated[Backend, _opt(
            "--backend", "-b", panel=LOSS, help="numpy (no torch needed) or torch (torch.nn.functional)")],
            Backend.numpy),
        _param("cross_check", Annotated[bool, _opt(
            "--cross-check", panel=GATE, help="also run the other backend; exit 1 if they differ")], False),
        _param("tolerance", Annotated[float, _opt(
            "--tolerance", panel=GATE, help="cross-check passes when |a - b| <= tolerance·(1 + |b|)")], 1e-5),
        _param("fail_above", Annotated[Optional[float], _opt(
            "--fail-above", panel=GATE, metavar="X", help="exit 1 when the value is above X (NaN fails)")], None),
        _param("fail_below", Annotated[Optional[float], _opt(
            "--fail-below", panel=GATE, metavar="X", help="exit 1 when the value is below X (NaN fails)")], None),
        _param("nan_policy", Annotated[NanPolicy, _opt(
            "--nan-policy", panel=LOSS, help="NaN/Inf in inputs: propagate (with a warning) or raise (exit 2)")],
            NanPolicy.propagate),
        _param("format", Annotated[Format, _opt(
            "--format", "-f", panel=OUTPUT, help="table for people; json, plain or csv for scripts")], Format.table),
        _param("output", Annotated[Optional[str], _opt(
            "--output", "-o", panel=OUTPUT, metavar="FILE", help="also write the value to FILE.npy or FILE.csv")],
            None),
        _param("grad", Annotated[Optional[str], _opt(
            "--grad", panel=OUTPUT, metavar="FILE",
            help=f"write d(loss)/d({spec.files[0].name}) to FILE.npy or FILE.csv, and show it (for none: of "
                 "the sum)")], None),
        _param("per_sample", Annotated[bool, _opt(
            "--per-sample", panel=VIEWS,
            help="the loss of each sample (row of the first axis) as torch gives it for that row alone; "
                 "--output then writes these, and --top/--hist rank and count samples")], False),
        _param("top", Annotated[Optional[int], _opt(
            "--top", panel=VIEWS, metavar="K",
            help="the K largest losses (elements, or samples with --per-sample) with their indices, NaN first")],
            None),
        _param("hist", Annotated[bool, _opt(
            "--hist", panel=VIEWS,
            help="a histogram of the losses (elements, or samples with --per-sample); NaN and inf counted apart")],
            False),
        _param("quiet", Annotated[bool, _opt(
            "--quiet", "-q", panel=OUTPUT, help="no progress bar (it shows on a terminal for work over a second, "
            "except with --format json or plain)")], False),
        _param("debug", Annotated[bool, _opt("--debug", panel=OUTPUT, help="show tracebacks")], False),
    ]
    return params


def _help(spec: LossSpec) -> str:
    return (
        f"{escape(spec.summary)} Computes [bold]torch.nn.functional.{spec.torch_name}[/bold].\n\n"
        f"[bold]Per element:[/bold] {escape(spec.formula)}\n\n"
        f"[bold]Shapes:[/bold] {escape(spec.family.shapes)}\n\n"
        f"[bold]mean divides by:[/bold] {escape(spec.mean_rule)}\n\n"
        f"Example: [bold]{escape(spec.example)}[/bold]"
    )


def run(spec: LossSpec, *, weight: str | None = None, pos_weight: str | None = None, mask: str | None = None,
        reduction: str, size_average: bool | None, reduce: bool | None, backend: Backend,
        cross_check: bool, tolerance: float, fail_above: float | None, fail_below: float | None,
        nan_policy: NanPolicy, format: Format, output: str | None, grad: str | None, debug: bool,
        broadcast: bool = False, per_sample: bool = False, top: int | None = None, hist: bool = False,
        quiet: bool = False, **params: Any) -> None:
    """One loss command: load, compute, render, gate. ``params`` holds the files and the loss's options."""
    with _exit_on_error(debug):
        if (fail_above is not None or fail_below is not None) and _resolves_to_none(reduction, size_average, reduce):
            raise LossCliError("--fail-above/--fail-below: expected a reduced value (mean or sum), but the "
                               "reduction is none")
        check_format(format, top, hist)
        loader = Loader()
        arrays = [_load_file(loader, params.pop(f.name), f) for f in spec.files]
        extras = {"weight": weight, "pos_weight": pos_weight, "mask": mask}
        extras.update((f.name, params.pop(f.name)) for f in spec.optional_files)
        loaded = {role: loader.load(spec_, role=role) for role, spec_ in extras.items() if spec_ is not None}
        bar = ProgressBar(stderr, spec.name) if wants_progress(
            terminal=stderr.is_terminal, quiet=quiet, fmt=format.value) else None
        try:
            result = compute(
                spec, *arrays, **loaded, reduction=Reduction(reduction), size_average=size_average, reduce=reduce,
                backend=backend, broadcast=broadcast, nan_policy=nan_policy, cross_check=cross_check,
                tolerance=tolerance, grad=grad is not None, per_sample=per_sample, top=top, hist=hist,
                output=output, progress=bar, **params,
            )
        finally:
            if bar is not None:
                bar.close()
        if grad is not None:
            save(result.grad, grad, "--grad")

    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    rendered = render(result, format)
    if format is Format.table:
        stdout.print(rendered)
    else:
        print(rendered)
    failures = _gate(result, fail_above, fail_below)
    for reason in failures:
        stderr.print(f"[red]FAIL:[/red] {escape(reason)}")
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)


def _load_file(loader: Loader, value: str, file: FileArg) -> Any:
    """A file argument: loaded, or a plain number where the loss takes one."""
    if file.number_ok:
        try:
            return float(value)
        except ValueError:
            pass
    return loader.load(value, role=file.name)


def _report(debug: bool, line: str) -> None:
    if debug:
        traceback.print_exc()
    stderr.print(line)


@contextlib.contextmanager
def _exit_on_error(debug: bool) -> Iterator[None]:
    """A LossCliError: one red line, exit 2. Anything else is a bug in losscli: one line, exit 3. (--debug:
    with the traceback.) Raise typer.Exit outside the block: it is an Exception too."""
    try:
        yield
    except LossCliError as exc:
        _report(debug, f"[red]error:[/red] {escape(exc.with_flags())}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # a bug in losscli: say so in one line, the traceback with --debug
        _report(debug, f"[red]internal error:[/red] {escape(type(exc).__name__ + ': ' + str(exc))} "
                       "(a bug in losscli: rerun with --debug for the traceback, and please report it)")
        raise typer.Exit(EXIT_BUG) from None


def _resolves_to_none(reduction: str, size_average: bool | None, reduce: bool | None) -> bool:
    return resolve(reduction, size_average, reduce)[0] is Reduction.none


def _gate(result, fail_above: float | None, fail_below: float | None) -> list[str]:
    """Reasons the result fails its thresholds or its cross-check (empty: it passes)."""
    reasons = []
    check = result.cross_check
    if check is not None and not check.ok:
        reasons.append(f"cross-check: {result.backend.value} and {check.backend.value} differ by up to "
                       f"{check.max_abs_diff:.3g} (relative {check.max_rel_diff:.3g}), beyond --tolerance "
                       f"{check.tolerance:g}")
    if fail_above is None and fail_below is None:
        return reasons
    value = result.item()
    name = f"{result.loss} ({result.reduction.value})"
    if math.isnan(value):
        reasons.append(f"{name} is NaN; NaN never passes a threshold")
    if fail_above is not None and value > fail_above:
        reasons.append(f"{name} = {result.value[()]!s} is above --fail-above {fail_above:g}")
    if fail_below is not None and value < fail_below:
        reasons.append(f"{name} = {result.value[()]!s} is below --fail-below {fail_below:g}")
    return reasons


def _command(spec: LossSpec):
    def command(**kwargs: Any) -> None:
        run(spec, **kwargs)

    params = _signature(spec)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = spec.name.replace("-", "_")
    return command


def _loss_command(spec: LossSpec) -> Command:
    """The Click command Typer builds for one loss."""
    one = typer.Typer(rich_markup_mode=app.rich_markup_mode, add_completion=False, pretty_exceptions_enable=False)
    one.command(spec.name, help=_help(spec), short_help=spec.summary)(_command(spec))
    return typer.main.get_command(one)


class LossCommands(MutableMapping[str, Command]):
    """The group's commands, with one per loss of the catalog after the others. A loss command is built
    when first looked up, so that ``losscli mse`` builds the options of one loss, not of the whole
    catalog (which took about 40 ms of every start); ``--help`` and suggestions still see every name."""

    def __init__(self, commands: MutableMapping[str, Command]) -> None:
        self._built = dict(commands)
        self._names = [*commands, *(name for name in CATALOG if name not in commands)]

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = _loss_command(CATALOG[name])  # the names not built yet are losses
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def entry() -> None:
    """Console-script entry point."""
    app()
