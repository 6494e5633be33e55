"""``python -m losscli``."""

from .cli import entry

entry()
