"""Domain errors. The core raises these; only ``cli.py`` turns them into exit codes.

Messages say what was expected, then what arrived, naming the argument and file:
``target (labels.csv): expected class indices in [0, 5), but got 7 at index (12,)``.
"""

from __future__ import annotations


class LossCliError(Exception):
    """Base class: bad input or options. The CLI prints the message and exits with status 2."""


class InputError(LossCliError):
    """A file could not be read or parsed, or a selector does not name anything in it."""


class ShapeError(LossCliError):
    """Arrays whose shapes do not fit together (input vs target, weight, mask)."""


class ValueDomainError(LossCliError):
    """Values outside the loss's domain: probabilities outside [0, 1], class indices out of range, NaN
    under ``--nan-policy raise``."""


class OptionError(LossCliError):
    """An option value or combination that cannot be honoured."""


class BackendUnavailable(LossCliError):
    """``--backend torch`` without torch installed."""
