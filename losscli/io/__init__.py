"""Loaders: ``.npy``/``.npz``/``.csv``/``.tsv`` files and stdin -> numpy arrays, keeping the names
that messages need. No math.

A spec is what the user typed for one argument::

    pred.npy            memory-mapped, read-only
    arrays.npz:logits   one array of an archive (the key may be left out when there is only one)
    results.csv:pred    columns by header name or 0-based index: ``:pred``, ``:0,2``; none means all
    scores.tsv          tab-delimited
    -:pred,label        CSV text on stdin

``Loader`` parses each file once, however many specs name it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from ..errors import InputError
from .files import read_text
from .npy import NpyFile, NpzFile
from .table import Table

__all__ = ["Loaded", "Loader", "parse_spec"]

SUFFIXES = (".npy", ".npz", ".csv", ".tsv")


@dataclass(frozen=True)
class Loaded:
    array: np.ndarray  # .npy files come memory-mapped (read-only)
    spec: str  # the argument as the user wrote it, "results.csv:pred"
    path: str  # the file part, "results.csv" ("-" for stdin)
    selector: str | None  # "pred", "0,2", an .npz key, or None


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"file:selector"`` at the last ``:`` when the part before it is ``-`` or ends in a
    supported suffix; otherwise the whole spec is the path.

    >>> parse_spec("results.csv:pred"), parse_spec("C:/data/pred.npy"), parse_spec("-")
    (('results.csv', 'pred'), ('C:/data/pred.npy', None), ('-', None))
    """
    head, colon, tail = spec.rpartition(":")
    if colon and (head == "-" or head.lower().endswith(SUFFIXES)):
        return head, tail
    return spec, None


class Loader:
    """Loads specs into arrays, parsing each file (and stdin) once."""

    def __init__(self, stdin: TextIO | None = None) -> None:
        self._stdin = stdin  # None: sys.stdin, looked up when "-" is first loaded
        self._parsed: dict[str, NpyFile | NpzFile | Table] = {}

    def load(self, spec: str, *, role: str) -> Loaded:
        """``role`` names the argument in messages: ``input (results.csv:pred): ...``."""
        path, selector = parse_spec(spec)
        try:
            if selector == "":
                raise InputError("expected a column or key after ':', but got nothing")
            if path not in self._parsed:
                self._parsed[path] = self._parse(path)
            array = self._parsed[path].select(selector)
        except InputError as e:
            raise InputError(f"{role} ({spec}): {e}") from e
        except OSError as e:  # the common ones get their own words in open_binary
            raise InputError(f"{role} ({spec}): cannot read the file: {e.strerror or e}") from e
        return Loaded(array=array, spec=spec, path=path, selector=selector)

    def _parse(self, path: str) -> NpyFile | NpzFile | Table:
        if path == "-":
            return Table(self._read_stdin(), ",")
        suffix = os.path.splitext(path)[1].lower()
        if suffix == ".npy":
            return NpyFile(path)
        if suffix == ".npz":
            return NpzFile(path)
        if suffix in (".csv", ".tsv"):
            return Table(read_text(path, f"a {suffix} file"), "," if suffix == ".csv" else "\t")
        raise InputError("expected a .npy, .npz, .csv or .tsv file (or - for CSV on stdin), "
                         f"but got {suffix or 'a name without a suffix'}")

    def _read_stdin(self) -> str:
        stdin = self._stdin if self._stdin is not None else sys.stdin
        if stdin is None or stdin.isatty():
            raise InputError("expected CSV text piped to stdin, but nothing is piped in")
        try:
            text = stdin.read()
        except UnicodeDecodeError as e:  # a text stdin decodes as it reads
            raise InputError(f"expected CSV text on stdin in UTF-8, but got: {e.reason}") from None
        if not text.strip():
            raise InputError("expected CSV text on stdin, but got nothing")
        return text
