"""The terminal: the two consoles, and the one place errors become exit statuses (2: bad input, 1: a failed
threshold or cross-check, 3: a bug in losscli)."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import LossCliError

EXIT_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3

# emoji=False: a file name such as "run:smile:.csv" is printed as it is (and rich's emoji table, ~3 ms, is not loaded)
stdout = Console(highlight=False, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def say(level: str, line: str, style: str = "red") -> None:
    """One line on stderr: ``level: line``."""
    stderr.print(f"[{style}]{level}:[/] {escape(line)}")


def _report(debug: bool, level: str, line: str) -> None:
    if debug:
        traceback.print_exc()
    say(level, line)


@contextlib.contextmanager
def exit_on_error(debug: bool) -> Iterator[None]:
    """A LossCliError: one red line (its arguments shown as flags), exit 2. Anything else is a bug in losscli:
    one line, exit 3. (``debug``: with the traceback.) Raise typer.Exit outside the block: it is an Exception
    too."""
    try:
        yield
    except LossCliError as exc:
        _report(debug, "error", exc.with_flags())
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # a bug in losscli: say so in one line, the traceback with --debug
        _report(debug, "internal error", f"{type(exc).__name__}: {exc} (a bug in losscli: rerun with --debug for "
                                         "the traceback, and please report it)")
        raise typer.Exit(EXIT_BUG) from None


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """A command-line usage error (click's, which derive from typer.TyperException) as one line on stderr with
    a pointer to the command's --help, instead of a usage block and a panel."""
    try:
        yield
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        stderr.print(f"[red]error:[/red] {escape(exc.format_message())}{hint}")
        raise typer.Exit(getattr(exc, "exit_code", EXIT_BAD_INPUT)) from None
