"""Domain errors. The core raises these; only the edge (:mod:`losscli.edge`) turns them into exit codes.

Messages say what was expected, then what arrived, naming the argument and file:
``target (labels.csv): expected class indices in [0, 5), but got 7 at index (12,)``.

The core speaks Python: an error about an option names the :func:`losscli.compute` argument
(``argument="label_smoothing"``), and a message may point at another argument as ``{broadcast=True}`` or
``{mask}``. ``str(error)`` shows those in Python terms (``label_smoothing: ...``, ``broadcast=True``); the
command line shows the same error with its flags (:meth:`LossCliError.with_flags`: ``--label-smoothing: ...``,
``--broadcast``).
"""

from __future__ import annotations

import re

_REFERENCE = re.compile(r"\{([a-z_]+)(?:=([^{}]*))?\}")


def flag(argument: str) -> str:
    """The command-line flag of a compute() argument: ``label_smoothing`` -> ``--label-smoothing``."""
    return "--" + argument.replace("_", "-")


def _python(match: re.Match[str]) -> str:
    name, value = match.groups()
    if value is None:
        return name
    return f"{name}={value if value in ('True', 'False') or _number(value) else repr(value)}"


def _cli(match: re.Match[str]) -> str:
    name, value = match.groups()
    if value is None or value == "True":
        return flag(name)
    if value == "False":
        return "--no-" + flag(name)[2:]
    return f"{flag(name)} {value}"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class LossCliError(Exception):
    """Base class: bad input or options. The CLI prints the message and exits with status 2.

    ``argument``: the compute() argument the error is about (an option such as ``"reduction"``), shown
    before the message; None when the message names its subject itself (``target (labels.csv): ...``).
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.message, self.argument = message, argument

    def __str__(self) -> str:
        text = _REFERENCE.sub(_python, self.message)
        return f"{self.argument}: {text}" if self.argument else text

    def with_flags(self) -> str:
        """The message as the command line shows it: arguments as their flags."""
        text = _REFERENCE.sub(_cli, self.message)
        return f"{flag(self.argument)}: {text}" if self.argument else text


class InputError(LossCliError):
    """A file could not be read or parsed, or a selector does not name anything in it."""


class ShapeError(LossCliError):
    """Arrays whose shapes do not fit together (input vs target, weight, mask)."""


class ValueDomainError(LossCliError):
    """Values outside the loss's domain: probabilities outside [0, 1], class indices out of range, NaN
    under ``nan_policy="raise"``."""


class OptionError(LossCliError):
    """An option value or combination that cannot be honoured."""


class BackendUnavailable(LossCliError):
    """``backend="torch"`` without torch installed."""


class LossCliWarning(UserWarning):
    """A warning of a result (``LossResult.warnings``: torch's own warnings, NaN in the inputs, ...), which
    :func:`losscli.compute` also emits through Python's :mod:`warnings`. The command line prints a result's
    warnings itself and silences these."""
