"""CSV/TSV text -> numpy columns.

The text is split into cells once (``str.split`` when nothing is quoted, the ``csv`` module when
something is); the cells selected are converted by numpy each time they are asked for: int64 when
every cell is an integer, else float64 when every cell is a number (as Python's ``int``/``float``
read them), else bool when every cell is true/false. Only when that fails are the cells walked in
Python, to report the first bad one with its line number.
"""

from __future__ import annotations

import csv
from itertools import repeat

import numpy as np

from ..errors import InputError

_BOOLS = ("true", "false")
_NAMES_SHOWN = 20


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_name(cell: str) -> bool:
    """A cell that only a header has: not blank, not a number, not true/false."""
    word = cell.strip().lower()
    return bool(word) and word not in _BOOLS and not _is_number(word)


def _ragged(line: int, ncols: int, got: int) -> InputError:
    cells = "1 cell" if ncols == 1 else f"{ncols} cells"
    return InputError(f"line {line}: expected {cells} like line 1, but got {got}")


def _split_plain(lines: list[str], delimiter: str) -> tuple[list[str], int, range]:
    """Cells of unquoted text; every line is one row."""
    ncols = lines[0].count(delimiter) + 1
    counts = list(map(str.count, lines, repeat(delimiter)))
    if counts.count(ncols - 1) != len(counts):
        i = next(i for i, n in enumerate(counts) if n != ncols - 1)
        raise _ragged(i + 1, ncols, counts[i] + 1)
    return delimiter.join(lines).split(delimiter), ncols, range(1, len(lines) + 1)


def _split_quoted(lines: list[str], delimiter: str) -> tuple[list[str], int, list[int]]:
    """Cells of text with quotes, where a quoted cell may span lines; rows keep their first line."""
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, skipinitialspace=True)
    cells: list[str] = []
    starts: list[int] = []
    ncols, start = 0, 1
    try:
        for row in reader:
            row = row or [""]  # a blank line is one empty cell, as in _split_plain
            ncols = ncols or len(row)
            if len(row) != ncols:
                raise _ragged(start, ncols, len(row))
            cells.extend(row)
            starts.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"line {start}: expected well-formed CSV, but got an error: {e}") from None
    return cells, ncols, starts


def _as_numbers(cells: np.ndarray) -> np.ndarray | None:
    """int64 when every cell is an integer, else float64 when every cell is a number, else None."""
    for dtype in (np.int64, np.float64):
        try:
            return cells.astype(dtype)
        except (ValueError, OverflowError):
            pass
    return None


class Table:
    """A parsed CSV/TSV text: header names (or None), the cells as a (rows, columns) object array of
    str, and the line each data row starts on."""

    def __init__(self, text: str, delimiter: str) -> None:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise InputError("expected rows of data, but got only blank lines")
        split = _split_quoted if '"' in text else _split_plain
        flat, ncols, self.lines = split(lines, delimiter)
        self.cells = np.array(flat, dtype=object).reshape(-1, ncols)
        first = self.cells[0]
        self.names = [name.strip() for name in first] if any(map(_is_name, first)) else None
        if self.names is not None:
            self.cells, self.lines = self.cells[1:], self.lines[1:]
            if not len(self.cells):
                raise InputError("expected data rows after the header on line 1, but got none")

    def select(self, selector: str | None) -> np.ndarray:
        """Columns by name or 0-based index (``"pred"``, ``"0,2"``): one gives 1-D, several 2-D.

        Several columns are converted together, row by row, which is the order the cells lie in
        memory (column by column is 2-3x slower on wide files); only if that fails is each column
        converted on its own, to find the bad cell or to promote a bool column."""
        ncols = self.cells.shape[1]
        if selector is None:
            indices = list(range(ncols))
        else:
            indices = [self._index(token.strip()) for token in selector.split(",")]
        if len(indices) == 1:
            return self._column(indices[0])
        block = _as_numbers(self.cells if indices == list(range(ncols)) else self.cells[:, indices])
        if block is None:
            block = np.stack([self._column(i) for i in indices], axis=1)
        return block

    def _index(self, token: str) -> int:
        ncols = self.cells.shape[1]
        if self.names is not None and token in self.names:
            return self.names.index(token)
        if token.isdecimal() and int(token) < ncols:
            return int(token)
        indices = "index 0" if ncols == 1 else f"indices 0..{ncols - 1}"
        if self.names is None:
            count = "is 1 column" if ncols == 1 else f"are {ncols} columns"
            raise InputError(f"expected a column index (the file has no header row), but got {token!r}; "
                             f"there {count}, {indices}")
        shown = ", ".join(map(repr, self.names[:_NAMES_SHOWN]))
        more = f", ... ({ncols} in all)" if ncols > _NAMES_SHOWN else ""
        raise InputError(f"expected a column name or index, but got {token!r}; "
                         f"the columns are {shown}{more} ({indices})")

    def _column(self, i: int) -> np.ndarray:
        cells = self.cells[:, i]
        numbers = _as_numbers(cells)
        if numbers is not None:
            return numbers
        words = [cell.strip().lower() for cell in cells]
        if words[0] in _BOOLS:
            if set(words) <= set(_BOOLS):
                return np.array(words) == "true"
            row, expected = next(r for r, w in enumerate(words) if w not in _BOOLS), "true or false"
        else:
            row, expected = next(r for r, c in enumerate(cells) if not _is_number(c)), "a number"
        cell = cells[row].strip()
        got = repr(cell) if cell else "an empty cell"
        column = repr(self.names[i]) if self.names is not None else i
        raise InputError(f"line {self.lines[row]}, column {column}: expected {expected}, but got {got}")
