"""The command line: one command per loss, generated from the loss catalog. Thin: it loads the files,
calls :func:`losscli.compute`, renders, and maps errors to exit codes (2: bad input, 1: a failed
threshold or cross-check, 3: a bug in losscli)."""

from __future__ import annotations

import enum
import inspect
import math
import sys
import traceback
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .api import NanPolicy, compute
from .backends import Backend
from .errors import LossCliError
from .io import Loader
from .losses import CATALOG, LossSpec
from .losses.spec import FileArg
from .reduction import Reduction, legacy_table, resolve
from .render import Format, render, save

EXIT_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class LossCliGroup(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of a usage block and a panel."""

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
        flags = ["--" + f.name.replace("_", "-") for f in spec.optional_files]
        flags += [flag for flag, has in (("--weight", spec.weight_help), ("--pos-weight", spec.pos_weight)) if has]
        table.add_row(f"[bold]{spec.name}[/bold]\n[dim]{spec.torch_name}[/dim]", files,
                      " ".join(flags + [o.flag for o in spec.options]), " ".join(r.value for r in spec.reductions))
    stdout.print(table)


# -- loss commands ------------------------------------------------------------------------------------

FILES = "Inputs"
LOSS = "Loss options"
REDUCE = "Reduction"
OUTPUT = "Output"
GATE = "Quality gate"


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
    for f in spec.optional_files:
        params.append(_param(f.name, Annotated[Optional[str], _opt(
            "--" + f.name.replace("_", "-"), panel=FILES, help=escape(f.help), metavar="FILE")], None))
    if spec.weight_help:
        params.append(_param("weight", Annotated[Optional[str], _opt(
            "--weight", "-w", panel=FILES, help=escape(spec.weight_help), metavar="FILE")], None))
    if spec.pos_weight:
        params.append(_param("pos_weight", Annotated[Optional[str], _opt(
            "--pos-weight", panel=FILES, help="weight of positive examples (FILE), broadcast to the input",
            metavar="FILE")], None))
    params.append(_param("mask", Annotated[Optional[str], _opt(
        "--mask", "-m", panel=FILES, metavar="FILE",
        help="0/1 or boolean, the loss's shape: mean divides by what the selected elements contribute")], None))
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
        broadcast: bool = False, **params: Any) -> None:
    """One loss command: load, compute, render, gate. ``params`` holds the files and the loss's options."""
    try:
        if (fail_above is not None or fail_below is not None) and _resolves_to_none(reduction, size_average, reduce):
            raise LossCliError("--fail-above/--fail-below: expected a reduced value (mean or sum), but the "
                               "reduction is none")
        loader = Loader()
        arrays = [_load_file(loader, params.pop(f.name), f) for f in spec.files]
        extras = {"weight": weight, "pos_weight": pos_weight, "mask": mask}
        extras.update((f.name, params.pop(f.name)) for f in spec.optional_files)
        loaded = {role: loader.load(spec_, role=role) for role, spec_ in extras.items() if spec_ is not None}
        result = compute(
            spec, *arrays, **loaded, reduction=Reduction(reduction), size_average=size_average, reduce=reduce,
            backend=backend, broadcast=broadcast, nan_policy=nan_policy, cross_check=cross_check,
            tolerance=tolerance, grad=grad is not None, **params,
        )
        if output is not None:
            save(result.value, output, "--output")
        if grad is not None:
            save(result.grad, grad, "--grad")
    except LossCliError as exc:
        _report(debug, f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # a bug in losscli: say so in one line, the traceback with --debug
        _report(debug, f"[red]internal error:[/red] {escape(type(exc).__name__ + ': ' + str(exc))} "
                       "(a bug in losscli: rerun with --debug for the traceback, and please report it)")
        raise typer.Exit(EXIT_BUG) from None

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


for _spec in CATALOG.values():
    app.command(_spec.name, help=_help(_spec), short_help=_spec.summary)(_command(_spec))


def entry() -> None:
    """Console-script entry point."""
    app()
