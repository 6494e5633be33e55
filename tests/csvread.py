"""The CSV tests' handles on the readers: the sizes they read text in, which reader reads, and how a file's rows
are held."""

from __future__ import annotations

from typing import Any

import losscli.io.arrowcsv
import losscli.io.table
from losscli.io.arrowcsv import CsvColumns
from losscli.io.rows import BlockRows


def pieces_of(monkeypatch: Any, size: int) -> None:
    """Text read in pieces of ``size`` bytes, so that piece ends fall everywhere, by either reader; pyarrow keeps the
    columns it read only up to ``size`` bytes (a larger file is streamed: read again as the engine reads it)."""
    monkeypatch.setattr(losscli.io.table, "PIECE_BYTES", size)
    monkeypatch.setattr(losscli.io.arrowcsv, "PIECE_BYTES", size)
    monkeypatch.setattr(losscli.io.arrowcsv, "KEEP_BYTES", size)


def with_pyarrow(monkeypatch: Any) -> None:
    """CSV read by pyarrow however small the file (it reads files of 1 MiB or more, losscli.io.table the others)."""
    monkeypatch.setattr(losscli.io.arrowcsv, "SMALL_BYTES", 0)


def without_pyarrow(monkeypatch: Any) -> None:
    """CSV read as when pyarrow is not installed (losscli.io.table alone)."""
    monkeypatch.setattr(losscli.io.arrowcsv, "pyarrow_csv", lambda: None)


def streamed(rows: Any) -> bool:
    """Whether CSV rows are read a block at a time as the engine asks for them (losscli.io.table's pieces, or
    pyarrow's batches), rather than held whole; CSV columns that pyarrow reads are read here if not yet."""
    if isinstance(rows, CsvColumns):
        rows.shape  # noqa: B018 - the pass that decides
        rows = rows.inner
    return isinstance(rows, BlockRows)


def by_pyarrow(rows: Any) -> bool:
    """Whether CSV rows were read by pyarrow (rather than by losscli.io.table, pyarrow declining or missing)."""
    return isinstance(rows, CsvColumns) and not rows.declined

