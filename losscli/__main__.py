"""``python -m losscli``."""

from .edge.cli import entry

entry()
