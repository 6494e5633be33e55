"""The command line (the edge): ``losscli LOSS ...`` for each loss of the catalog (from
:mod:`losscli.edge.commands`), ``losscli check``, ``losscli list``, ``losscli reductions`` and ``losscli compare``.
Each command is built when first looked up, so that a run builds (and imports) what its command needs. Thin: it
parses, calls the core, hands what it prints to the render layer and what it writes to the one writer."""

from __future__ import annotations

import enum
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..errors import LossCliError, LossCliWarning
from ..losses import CATALOG, LossSpec
from ..api import Engine
from .commands import cluster, help_text, loss_command
from .render import metrics_text
from .console import EXIT_BAD_INPUT, exit_on_error, say, stdout, tell, terminal_errors, usage_errors
from .writer import check_targets, write_text


HELP = {"help_option_names": ["-h", "--help"]}


class LossCliGroup(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of a usage block and a panel; stdout's failures,
    a closed pipe and interrupts as :func:`~losscli.edge.console.terminal_errors` says. Bare ``losscli``
    prints the help alone, with exit status 2 (no command was given). The commands are built when first
    looked up (see :class:`LazyCommands`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands, self.builders())

    @staticmethod
    def builders() -> dict[str, Callable[[], TyperCommand]]:
        """``losscli``'s commands, in the order --help lists them: each name with the function that builds it."""
        return {"reductions": lambda: _built("reductions", reductions), "list": lambda: _built("list", list_losses),
                "check": lambda: _built("check", check), "compare": lambda: typer.main.get_group(compare_app),
                **_per_loss(loss_command, help_text)}

    def make_context(self, *args: Any, **kwargs: Any) -> typer.Context:
        with terminal_errors(), usage_errors():
            return super().make_context(*args, **kwargs)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:
            typer.echo(ctx.get_help(), nl=False)  # rich prints the help itself and returns ""
            raise typer.Exit(EXIT_BAD_INPUT)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        with terminal_errors(), usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=LossCliGroup,
    name="losscli",
    help="Loss values from saved predictions, exactly as torch.nn.functional computes them.\n\n"
    "Example: [bold]losscli cross-entropy logits.npy labels.csv --format json[/bold]",
    rich_markup_mode="rich",
    add_completion=True,  # --install-completion / --show-completion: no measurable start-up cost (imports nothing more)
    pretty_exceptions_enable=False,
    context_settings=HELP,
)


def _version(value: bool) -> None:
    if value:
        print(f"losscli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Loss values from saved predictions, exactly as torch.nn.functional computes them."""


def reductions() -> None:
    """How the legacy [bold]--size-average[/bold] / [bold]--reduce[/bold] flags resolve (torch's
    legacy_get_string): either flag overrides --reduction; an unset one counts as True.

    Example: [bold]losscli reductions[/bold]
    """
    from .render_table import legacy_flags_table

    stdout().print(legacy_flags_table())


def list_losses() -> None:
    """Every loss: its command, the torch function it matches, its files, options and reductions.

    Example: [bold]losscli list[/bold]
    """
    from .render_table import losses_table

    stdout().print(losses_table(CATALOG.values()))


# -- quality gates --------------------------------------------------------------------------------------


class CheckFormat(str, enum.Enum):
    table = "table"
    json = "json"
    metrics = "metrics"


def check(
    gates: Annotated[str, typer.Argument(metavar="GATES", show_default=False, help=(
        "the gate file (TOML): [\\[check]] tables with a loss, files and bounds"))],  # rich markup: \[ is a [
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
        "--format", "-f", help="table and a verdict line for people; json: the report, for scripts; metrics: "
        "{\"CHECK\": value}, for dvc and mlflow")] = CheckFormat.table,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="no table and no notes: the FAIL and error lines, warnings and the verdict on "
        "stderr")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(
        "--storage-option", metavar="KEY=VALUE", help="an fsspec option for the URLs read (the gate file, the "
        "baseline and the files it names: s3://, gs://, https://, ...), e.g. anon=true; repeatable")] = None,
    plots: Annotated[Optional[str], typer.Option(
        "--plots", metavar="DIR", help="draw a plot of each check into DIR (created if missing): the histogram "
        "of its per-sample losses with its value and bounds, as CHECK.png; --markdown links them when DIR is its "
        "folder or below it (needs pip install 'losscli\\[plot]')")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    engine: Annotated[Engine, typer.Option(
        "--engine", help="local: this process; dask: every check on a dask cluster as one graph (--scheduler, "
        "else DASK_SCHEDULER_ADDRESS, else a local cluster), with the same values")] = Engine.local,
    scheduler: Annotated[Optional[str], typer.Option(
        "--scheduler", metavar="ADDRESS", help="the dask scheduler to use with --engine dask")] = None,
) -> None:
    """Run the quality gates of a gate file: every check, each against its bounds (and a baseline).
    Exit status 0 when all pass, 1 when any failed a bound or gave NaN, 2 when the gate file or an input
    is invalid (2 wins over 1). The reports asked for are written in every case, an invalid gate file or
    baseline included (they then state the error). A gate file at a URL resolves its paths against its folder.

    Example: [bold]losscli check samples/gates.toml --junit junit.xml --markdown summary.md[/bold]
    """
    from ..io.remote import parse_options

    with exit_on_error(debug):
        options = parse_options(storage_option or ())
        targets = {"--report": report, "--junit": junit, "--markdown": markdown, "--write-baseline": write_baseline}
        checks, drawing = _before_work(gates, baseline, targets, bool(only or skip), plots, options)
        with cluster(engine, scheduler, show=format is CheckFormat.table and not quiet) as on:
            run_ = _run_gates(gates, baseline, checks, targets, format, only=only or [], skip=skip or [],
                              storage_options=options, engine=on, scheduler=scheduler, hist_bins=drawing.bins)
        document = _write_reports(run_, targets, drawing.links(run_, markdown))
        drawing.write(run_)
    _show_run(run_, document, format, quiet, write_baseline)
    raise typer.Exit(run_.exit_code)


def _before_work(gates: str, baseline: Optional[str], targets: dict[str, Optional[str]], selected: bool,
                 plots: Optional[str], options: dict[str, Any]) -> tuple[list[Any] | None, Any]:
    """The gate file's checks (None when it is invalid) and their plots (``--plots``), once every file this run
    writes is known to be none of the files it reads."""
    from .plots import CheckPlots

    if targets["--write-baseline"] and selected:
        raise LossCliError("--write-baseline: a baseline records every check, so it cannot be combined "
                           "with --only or --skip")
    checks = _checks_or_none(gates, options)
    drawing = CheckPlots(plots, checks)
    inputs = [ref.path or "" for c in checks or () for ref in c.refs]
    check_targets([*targets.items(), *drawing.targets()], [gates, baseline or "", *inputs])
    return checks, drawing


def _run_gates(gates: str, baseline: Optional[str], checks: list[Any] | None, targets: dict[str, Optional[str]],
               format: CheckFormat, **given: Any) -> Any:
    """The run of the gate file; when it stops before any check (an invalid gate file or baseline), every report
    asked for says why (like pytest's collection error), and the error goes on to the caller."""
    from ..gates import GateError
    from ..gates import check as run_gates
    from . import reports

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossCliWarning)  # the reports show each check's warnings
            return run_gates(gates, baseline=baseline, checks=checks, **given)
    except GateError as exc:
        _stopped(reports.Stopped(gates, baseline, exc.with_flags(), type(exc).__name__,
                                 _now()), targets, format)
        raise


def _now() -> Any:
    """The time a report is stamped with (UTC, whole seconds)."""
    from datetime import datetime, timezone  # a few ms of start-up that only a stopped check needs

    return datetime.now(timezone.utc).replace(microsecond=0)


def _stopped(stopped: Any, targets: dict[str, Optional[str]], format: CheckFormat) -> None:
    """A run that stopped before any check: the reports asked for (not a baseline) state the error; -f json
    prints that report, -f metrics an empty object. The caller then says the error on stderr, exit 2."""
    from . import reports

    texts = {"--report": reports.to_json_text(stopped), "--junit": reports.error_junit(stopped),
             "--markdown": reports.error_markdown(stopped)}
    for option, text in texts.items():
        if targets[option]:
            write_text(targets[option], text, option)
    if format is CheckFormat.json:
        print(texts["--report"], end="")
    elif format is CheckFormat.metrics:
        print("{}")


def _show_run(run_: Any, document: str, format: CheckFormat, quiet: bool, write_baseline: Optional[str]) -> None:
    """stdout: the table, the JSON report or the metrics; stderr: why checks failed or errored, notes (not
    with --quiet), warnings, the baseline line; the verdict last (on stdout under the table)."""
    from . import reports

    if format is CheckFormat.json:
        print(document, end="")
    elif format is CheckFormat.metrics:
        print(metrics_text(reports.to_metrics(run_)))
    elif not quiet:
        stdout().print(reports.to_check_table(run_))
    for level, line in reports.messages(run_, write_baseline):
        if not (quiet and level == "note"):
            say(level, line, reports.LEVEL_STYLE[level])
    style = ("bold green", "bold red", "bold yellow")[run_.exit_code]
    if format is CheckFormat.table and not quiet:
        stdout().print(reports.verdict(run_), style=style)
    else:
        tell(reports.verdict(run_), style)


def _write_reports(run_: Any, targets: dict[str, Optional[str]], plots: dict[str, str] | None = None) -> str:
    """Every report asked for (the baseline only when every check passed) through the one writer, the Markdown
    linking ``plots`` (check name -> link); returns the JSON report."""
    from . import reports

    document = reports.to_json_text(run_)
    texts = {"--report": document, "--junit": reports.to_junit(run_), "--markdown": reports.to_markdown(run_, plots),
             "--write-baseline": document if run_.all_passed else None}
    for option, path in targets.items():
        if path and texts[option] is not None:
            write_text(path, texts[option], option)
    return document


def _checks_or_none(gates: str, options: dict[str, Any]) -> list[Any] | None:
    """The gate file's checks, parsed once and before any work so that the files they read are never a target;
    None when it is invalid (running it then reads it again and reports the error)."""
    from ..gates import load_gates

    try:
        return load_gates(gates, options)
    except LossCliError:
        return None


class DescribedCommand(TyperCommand):
    """A command whose help text, when not its function's docstring, is written by ``describe`` when first shown:
    a loss's help escapes the texts of its definition as rich markup, which loads rich, and a run shows no help."""

    describe: Callable[[], str] | None = None

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        if self.help is None and self.describe is not None:
            self.help = self.describe()
        super().format_help(ctx, formatter)


def _built(name: str, function: Any, describe: Callable[[], str] | None = None,
           short: str | None = None) -> TyperCommand:
    """The command Typer builds from ``function``: its help the function's docstring, or ``describe()``'s."""
    one = typer.Typer(rich_markup_mode=app.rich_markup_mode, add_completion=False, pretty_exceptions_enable=False,
                      context_settings=HELP)
    one.command(name, cls=DescribedCommand, short_help=short)(function)
    command = typer.main.get_command(one)
    command.describe = describe
    return command


def _loss_command(name: str, function: Callable[[LossSpec], Any], describe: Callable[[LossSpec], str]) -> TyperCommand:
    """The command of loss ``name`` (its family's module is imported now): ``function(spec)`` is what Typer builds
    it from, ``describe(spec)`` its help."""
    spec = CATALOG[name]
    return _built(name, function(spec), functools.partial(describe, spec), spec.summary)


def _per_loss(function: Callable[[LossSpec], Any],
              describe: Callable[[LossSpec], str]) -> dict[str, Callable[[], TyperCommand]]:
    """A builder of :func:`_loss_command` for each loss of the catalog, in catalog order."""
    return {name: functools.partial(_loss_command, name, function, describe) for name in CATALOG}


class CompareGroup(LossCliGroup):
    """``losscli compare``: a command per loss."""

    @staticmethod
    def builders() -> dict[str, Callable[[], TyperCommand]]:
        from . import comparison

        return _per_loss(comparison.compare_command, comparison.help_text)


compare_app = typer.Typer(
    cls=CompareGroup, name="compare", rich_markup_mode="rich", pretty_exceptions_enable=False, context_settings=HELP,
    help="Compare two models' predictions on one loss, paired: the difference, its bootstrap interval and p-value, "
    "and a verdict (better, worse, inconclusive). Exit 1 with --fail-if-worse when it is worse.\n\n"
    "Example: [bold]losscli compare cross-entropy base.npy new.npy labels.csv --fail-if-worse[/bold]")


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands: those Typer built, then one per builder, built when first looked up, so that ``losscli
    mse`` builds the options of one loss and imports its family, not every command of the catalog (which took
    about 40 ms of every start); ``--help`` and suggestions still see every name."""

    def __init__(self, commands: Mapping[str, Any], builders: Mapping[str, Callable[[], Any]]) -> None:
        self._built = dict(commands)
        self._builders = dict(builders)
        self._names = [*commands, *(name for name in builders if name not in commands)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
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

