"""The terminal: the two consoles, and the one place errors become exit statuses (2: bad input, 1: a failed
threshold or cross-check, 3: a bug in losscli; a closed stdout pipe 141, SIGINT 130, SIGTERM 143).

rich is imported only to draw (a table, a progress bar, a line in colour on a terminal): a line on stderr that
no terminal shows is written as it is, which is what rich writes there, so that a run printing JSON, plain
numbers, CSV or metrics, or one line of error, never loads it (about 35 ms)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import typer

from ..errors import LossCliError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_THRESHOLD = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3
EXIT_SIGNAL = 128  # + the signal's number, as a shell reports a process killed by it
EXIT_PIPE = EXIT_SIGNAL + 13  # stdout's reader went away (SIGPIPE): quiet, as coreutils end


def stdout() -> Console:
    """A rich console on stdout, made for each use (as typer makes its own): the environment (COLUMNS) is read
    when it draws. emoji=False: a file name such as "run:smile:.csv" is printed as it is."""
    from rich.console import Console

    return Console(highlight=False, emoji=False)


def stderr() -> Console:
    """A rich console on stderr, made for each use; soft-wrapped: a long line stays one line."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def maybe_terminal(stream: IO[str] | None) -> bool:
    """False where rich would surely see no terminal on ``stream`` and so print no style there: not a tty, and
    neither FORCE_COLOR, TTY_COMPATIBLE=1 nor a notebook says otherwise. True leaves the answer to rich."""
    forced = "FORCE_COLOR" in os.environ or os.environ.get("TTY_COMPATIBLE") == "1"
    if stream is None or forced or "IPython" in sys.modules:
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed: rich sees no terminal either
        return False


def escape(text: str) -> str:
    """``text`` as it reads in rich markup (help texts are markup): rich's escape, imported only for a text it
    would change (a ``[``, or a backslash at the end)."""
    if "[" not in text and not text.endswith("\\"):
        return text
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _to_stderr(line: str, parts: tuple[Any, ...]) -> None:
    """``line`` on stderr: as it is where no terminal shows it (what rich writes there: no style, and no tab or
    control character for it to change), else through rich as ``Text.assemble(*parts)``."""
    if line.isprintable() and not maybe_terminal(sys.stderr):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    else:
        from rich.text import Text

        stderr().print(Text.assemble(*parts))


def say(level: str, line: str, style: str = "red") -> None:
    """One line on stderr: ``level: line``, the level in ``style`` on a terminal."""
    _to_stderr(f"{level}: {line}", ((f"{level}:", style), f" {line}"))


def tell(line: str, style: str) -> None:
    """One line on stderr in ``style`` on a terminal (``losscli check``'s verdict, when stdout has no table)."""
    _to_stderr(line, ((line, style),))


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
        ctx: Any = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        say("error", exc.format_message() + hint)
        raise typer.Exit(getattr(exc, "exit_code", EXIT_BAD_INPUT)) from None


class Terminated(BaseException):
    """A signal (SIGTERM) raised as an exception in the main thread, so that every ``finally`` and every sink's
    ``abandon`` run as for SIGINT's KeyboardInterrupt. A BaseException: no ``except Exception`` takes it for a
    bug."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def terminate_as_exception() -> None:
    """SIGTERM raises :class:`Terminated` (the console script installs this; tests through CliRunner do not)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def _quiet_stdout() -> None:
    """stdout onto /dev/null, so that what is still buffered can go nowhere quietly when Python exits."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def flush_stdout() -> None:
    """Everything printed reaches stdout now, so that a failure to write it surfaces inside the command."""
    sys.stdout.flush()


@contextlib.contextmanager
def terminal_errors() -> Iterator[None]:
    """Around a command: an interrupt ends it with 128 + the signal (130 SIGINT, 143 SIGTERM) and one line; a
    closed stdout pipe ends it quietly with 141, as coreutils end on SIGPIPE; any other failure to write stdout
    (a full disk, ``> /dev/full``) is one line on stderr and exit 2. Never a traceback. What is printed is
    flushed inside the block, so that its failure is seen here, not when Python exits."""
    try:
        try:
            yield
        finally:
            flush_stdout()
    except KeyboardInterrupt:
        say("interrupted", "SIGINT: stopped; files being written were left as they were")
        raise typer.Exit(EXIT_SIGNAL + signal.SIGINT) from None
    except Terminated as exc:
        say("interrupted", f"{signal.Signals(exc.signum).name}: stopped; files being written were left as they were")
        raise typer.Exit(EXIT_SIGNAL + exc.signum) from None
    except OSError as exc:
        _quiet_stdout()
        if exc.errno == errno.EPIPE:
            raise typer.Exit(EXIT_PIPE) from None
        say("error", f"stdout: expected to write the output, but got '{exc.strerror or exc}'")
        raise typer.Exit(EXIT_BAD_INPUT) from None
