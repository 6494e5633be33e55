"""File formats by suffix: what reads a file (parsed once per path), whose ``select(selector)`` gives an array
or :class:`~losscli.io.Rows`. A format's module is imported only when a file of that format is read, so that
a run on ``.npy`` files pays for no other reader. A new format is one function here and its entry in
:data:`READERS`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import InputError


class Parsed(Protocol):
    def select(self, selector: str | None) -> Any:
        """The array (or rows) that ``selector`` names: a column, a key, or the whole file (None)."""


def _npy(path: str) -> Parsed:
    from .npy import NpyFile

    return NpyFile(path)


def _npz(path: str) -> Parsed:
    from .npy import NpzFile

    return NpzFile(path)


def _csv(path: str) -> Parsed:
    from .table import Table

    return Table(path, ",")


def _tsv(path: str) -> Parsed:
    from .table import Table

    return Table(path, "\t")


def _safetensors(path: str) -> Parsed:
    from .tensors import SafetensorsFile

    return SafetensorsFile(path)


def _pt(path: str) -> Parsed:
    from .tensors import PtFile

    return PtFile(path)


def _columnar(suffix: str) -> Callable[[str], Parsed]:
    """Parquet, Arrow IPC file (.arrow, .feather) and stream (.arrows): pyarrow, imported when one is read."""

    def read(path: str) -> Parsed:
        from .columnar import ColumnarFile

        return ColumnarFile(path, suffix)

    return read


READERS: dict[str, Callable[[str], Parsed]] = {".npy": _npy, ".npz": _npz, ".csv": _csv, ".tsv": _tsv}
READERS.update({suffix: _columnar(suffix) for suffix in (".parquet", ".feather", ".arrow", ".arrows")})
# tensor files (losscli/io/tensors.py)
READERS.update({".safetensors": _safetensors, ".pt": _pt, ".pth": _pt})
SUFFIXES = tuple(READERS)


def suffix_of(path: str) -> str | None:
    """The longest registered suffix ``path`` ends with (``.csv.gz`` before ``.gz``), or None."""
    lower = path.lower()
    found = [suffix for suffix in READERS if lower.endswith(suffix)]
    return max(found, key=len) if found else None


def open_file(path: str) -> Parsed:
    """``path`` parsed by the reader of its suffix."""
    suffix = suffix_of(path)
    if suffix is None:
        known = ", ".join(SUFFIXES[:-1]) + f" or {SUFFIXES[-1]}"
        got = os.path.splitext(path)[1].lower() or "a name without a suffix"
        raise InputError(f"expected a {known} file (or - for CSV on stdin), but got {got}")
    return READERS[suffix](path)
