"""CSV/TSV text -> numpy columns, read in blocks of rows so that memory stays bounded.

A file is read in pieces of about :data:`PIECE_BYTES`, each ending at the end of a row (a quoted cell
may span lines). :meth:`Table.select` gives whole columns (the pieces concatenated); :meth:`Table.blocks`
gives them a piece at a time, in the dtype that :meth:`Table.survey` finds for the whole columns.

The rule for a column: int64 when every cell is an integer, else float64 when every cell is a number
(as Python's ``int``/``float`` read them, spaces around them allowed), else bool when every cell is
true/false; several columns together take numpy's common type. A piece's selected cells are converted
by the fastest reader that applies, each handing over to the next when it cannot be sure:

1. numpy's C reader (``np.loadtxt``) on the piece's lines, when nothing is quoted;
2. Python, cell by cell (quoted cells, true/false columns, ``1_000``), which alone reports a bad cell,
   with its line number.

This is the reader without pyarrow, and the one that pyarrow's reader (:mod:`losscli.io.arrowcsv`) hands a file
to wherever it cannot be sure to read it as this module does: every message about a file's cells comes from here.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat

import numpy as np

from ..errors import InputError
from .files import read_pieces, size_of_path

PIECE_BYTES = 1 << 22  # 4 MiB of text: about 200,000 rows of two numbers
HEAD_BYTES = 1 << 16  # the first piece, read when the file is opened for its header (or first row)

_BOOLS = ("true", "false")
_NAMES_SHOWN = 20


def _reads_as(kind: type, cell: str) -> bool:
    """Whether Python's ``kind`` (int or float) reads ``cell``."""
    try:
        kind(cell)
    except ValueError:
        return False
    return True


_is_number = functools.partial(_reads_as, float)
_is_integer = functools.partial(_reads_as, int)


def _is_name(cell: str) -> bool:
    """A cell that only a header has: not blank, not a number, not true/false."""
    word = cell.strip().lower()
    return bool(word) and word not in _BOOLS and not _is_number(word)


# Integer cells are made of these bytes (signs, blanks, either delimiter); a cell of them is no float. Twenty
# digits may overflow int64 (then the cell is a float), and "_" may join digits: those pieces are converted.
_INTEGER_BYTES = b"0123456789+- \t,\n"
_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def _integers_only(text: str | None) -> bool:
    """Whether unquoted ``text`` surely holds no float: only integer bytes, no run of 19 digits (at GB/s)."""
    if text is None or not text.isascii():
        return False
    data = text.encode("ascii")
    return not data.translate(None, _INTEGER_BYTES) and b"0" * 19 not in data.translate(_DIGITS)


def _ragged(line: int, ncols: int, got: int) -> InputError:
    cells = "1 cell" if ncols == 1 else f"{ncols} cells"
    return InputError(f"line {line}: expected {cells} like line 1, but got {got}")


def _as_numbers(cells: np.ndarray) -> np.ndarray | None:
    """int64 when every cell (a str) is an integer, else float64 when every cell is a number, else None."""
    for dtype in (np.int64, np.float64):
        try:
            return cells.astype(dtype)
        except (ValueError, OverflowError):
            pass
    return None


def _read_numbers(lines: list[str], indices: list[int], delimiter: str) -> np.ndarray | None:
    """The columns ``indices`` of unquoted lines by numpy's C reader: int64 when every cell is an
    integer, else float64 when every cell is a number, else None (then the cells are walked in Python)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns of blank lines, which the row count below catches
        for dtype in (np.int64, np.float64):
            try:
                block = np.loadtxt(lines, dtype=dtype, delimiter=delimiter, comments=None, usecols=indices, ndmin=2)
            except (ValueError, OverflowError):
                continue
            return block if len(block) == len(lines) else None  # numpy skips blank lines; here they are cells
    return None


class _Rows:
    """Rows of one piece. Unquoted: its ``text``, one row a line, every line ending in a newline, split
    into lines (and checked to have ``ncols`` cells) when first asked; quoted: the ``cells`` that the csv
    module split. ``starts``: the line each row starts on."""

    def __init__(self, starts: Sequence[int], text: str | None = None, cells: np.ndarray | None = None) -> None:
        self.starts, self.text, self._cells = starts, text, cells
        self._lines: list[str] | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def lines(self, delimiter: str, ncols: int) -> list[str]:
        if self._lines is None:
            assert self.text is not None
            lines = self.text[:-1].split("\n")
            counts = list(map(str.count, lines, repeat(delimiter)))
            if counts.count(ncols - 1) != len(counts):
                i = next(i for i, n in enumerate(counts) if n != ncols - 1)
                raise _ragged(self.starts[i], ncols, counts[i] + 1)
            self._lines = lines
        return self._lines

    def cells(self, delimiter: str, ncols: int) -> np.ndarray:
        """(rows, columns) object array of str."""
        if self._cells is None:
            lines = self.lines(delimiter, ncols)
            self._cells = np.array(delimiter.join(lines).split(delimiter), dtype=object).reshape(-1, ncols)
        return self._cells

    def without_first(self) -> _Rows:
        if self.text is not None:
            return _Rows(self.starts[1:], text=self.text[self.text.index("\n") + 1:])
        assert self._cells is not None
        return _Rows(self.starts[1:], cells=self._cells[1:])


def _plain(first: int, text: str) -> _Rows:
    """Unquoted text, a row a line; ``first``: the number of its first line."""
    return _Rows(range(first, first + text.count("\n")), text=text)


def _split_quoted(first: int, text: str, delimiter: str, ncols: int) -> _Rows:
    """Text with quotes, where a quoted cell may span lines; rows keep their first line."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    cells: list[str] = []
    starts: list[int] = []
    start = first
    try:
        for row in reader:
            row = row or [""]  # a blank line is one empty cell, as unquoted
            if len(row) != ncols:
                raise _ragged(start, ncols, len(row))
            cells.extend(row)
            starts.append(start)
            start = first + reader.line_num
    except csv.Error as e:
        raise InputError(f"line {start}: expected well-formed CSV, but got an error: {e}") from None
    return _Rows(starts, cells=np.array(cells, dtype=object).reshape(-1, ncols))


def _first_row(text: str, delimiter: str, quoted: bool) -> list[str]:
    if not quoted:
        return text[:text.index("\n")].split(delimiter)
    try:
        row = next(csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True), [])
    except csv.Error as e:
        raise InputError(f"line 1: expected well-formed CSV, but got an error: {e}") from None
    return row or [""]


class Table:
    """A CSV/TSV file (or stdin's text): its header names (or None) and number of columns, read when
    made; its rows, read from the file again for each :meth:`select` or :meth:`blocks`, a piece at a time."""

    def __init__(self, path: str, delimiter: str, text: str | None = None, codec: str | None = None,
                 what: str | None = None) -> None:
        """``path``: the file (``-`` for stdin, whose ``text`` is given whole); ``codec``: its compression
        (``.gz``, ``.bz2``, ``.xz``; see :mod:`losscli.io.compressed`), if any; ``what``: the file in messages
        (``a .csv.gz file``; by default ``a .csv file`` by the name's suffix, or ``CSV text``)."""
        self.path, self.delimiter, self.text, self.codec = path, delimiter, text, codec
        suffix = os.path.splitext(path)[1].lower()
        named = f"a {suffix} file" if suffix in (".csv", ".tsv") else ("CSV" if delimiter == "," else "TSV") + " text"
        self.what = what or named
        pieces = self._pieces(min(HEAD_BYTES, PIECE_BYTES))
        try:
            first = next(pieces, None)
            if first is None:
                raise InputError("expected rows of data, but got only blank lines")
            number, text, quoted = first
            row = _first_row(text, delimiter, quoted)
            self.ncols = len(row)
            self.names = [name.strip() for name in row] if any(map(_is_name, row)) else None
            rows = _split_quoted(number, text, delimiter, self.ncols) if quoted else _plain(number, text)
            if self.names is not None and len(rows) == 1 and next(pieces, None) is None:
                raise InputError("expected data rows after the header on line 1, but got none")
        finally:
            pieces.close()

    # -- reading -------------------------------------------------------------------------------------

    def _pieces(self, size: int | None = None) -> Iterator[tuple[int, str, bool]]:
        """(number of the first line, text, whether anything is quoted) in pieces of about ``size`` bytes (by
        default :data:`PIECE_BYTES`) that end at the end of a row, each line ending in a newline, without the blank
        lines that end the whole text."""
        if self.text is not None:
            texts: Iterator[str] = iter([self.text])
        else:
            texts = read_pieces(self.path, self.what, size or PIECE_BYTES, self.codec)
        number, blank, held = 1, "", ""
        for text in chain(texts, [None]):
            if text is not None:
                text = held + text
                if text.count('"') % 2:  # a quoted cell goes on in the next piece
                    held = text
                    self._bound(held)
                    continue
            elif held:
                text = held  # unbalanced quotes at the end: the csv module says where
            else:
                break
            held = ""
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            text = blank + (text if text.endswith("\n") else text + "\n")
            body = text.rstrip()
            end = text.index("\n", len(body)) + 1 if body else 0
            blank = text[end:]  # blank lines inside the text are rows; at its end they are dropped
            if end:
                yield number, text[:end], '"' in text
            number += text.count("\n", 0, end)

    def _bound(self, held: str) -> None:
        """Compressed text may not hold a quoted cell open for longer than a line may be (a bomb of quotes)."""
        if self.codec is not None:
            from .compressed import MAX_LINE_BYTES, too_long

            if len(held) > MAX_LINE_BYTES:
                raise too_long(self.what, "a quoted cell")

    def _rows(self) -> Iterator[_Rows]:
        """The data rows, a piece at a time."""
        header = self.names is not None
        for first, text, quoted in self._pieces():
            rows = _split_quoted(first, text, self.delimiter, self.ncols) if quoted else _plain(first, text)
            if header:
                rows, header = rows.without_first(), False
            if len(rows):
                yield rows

    # -- selecting -----------------------------------------------------------------------------------

    def select(self, selector: str | None) -> np.ndarray:
        """Columns by name or 0-based index (``"pred"``, ``"0,2"``; None: all): one gives 1-D, several 2-D."""
        indices = self.indices(selector)
        parts = [block for block, _ in self._converted(indices)]
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return whole[:, 0] if len(indices) == 1 else whole

    def labels(self, selector: str | None) -> np.ndarray:
        """One column's cells as text, whole (group labels: ``--by``), without the spaces around them."""
        indices = self.indices(selector)
        if len(indices) != 1:
            raise InputError(f"expected one column of labels, but got {len(indices)} columns; select one with :name")
        parts = [np.char.strip(rows.cells(self.delimiter, self.ncols)[:, indices[0]].astype(str))
                 for rows in self._rows()]
        return np.concatenate(parts) if parts else np.empty(0, str)

    @property
    def large(self) -> bool:
        """Whether the file is read in more than one piece (stdin's text is held whole already; compressed text
        may inflate to any size, so it is always surveyed and streamed)."""
        return self.text is None and (self.codec is not None or size_of_path(self.path, self.what) > PIECE_BYTES)

    def survey(self, selector: str | None) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype that :meth:`select` gives, found in one pass over the file that converts
        as little as it can: rows are counted (quoted pieces split by the csv module, as when reading);
        the first piece is converted, and after an integer one, only the pieces that may hold a float
        (:func:`_integers_only`), until one does. An error on the way is the one :meth:`select` raises
        (the first in the file), found by converting every piece up to it."""
        indices = self.indices(selector)
        count, dtype = 0, None
        try:
            for rows in self._rows():
                count += len(rows)
                if dtype is None or (dtype.kind == "i" and not _integers_only(rows.text)):
                    block, _ = self._convert(rows, indices)
                    dtype = block.dtype if dtype is None else np.result_type(dtype, block.dtype)
        except InputError:
            for _ in self._converted(indices):  # raises the first error of the file, as select() does
                pass
            raise
        return ((count,) if len(indices) == 1 else (count, len(indices))), dtype

    def blocks(self, selector: str | None, dtype: np.dtype) -> Iterator[np.ndarray]:
        """The columns of :meth:`select` a piece of the file at a time, each as ``dtype``: the whole
        columns' (:meth:`survey`), so that a column of integers with a float further on is float64 in
        every block, as :meth:`select` makes it."""
        indices = self.indices(selector)
        for block, part in self._converted(indices):
            if not np.can_cast(block.dtype, dtype):
                raise InputError(f"line {part.starts[0]}: expected {dtype} cells as when the file was first "
                                 f"read, but got {block.dtype} (it changed while being read)")
            block = block.astype(dtype, copy=False)
            yield block[:, 0] if len(indices) == 1 else block

    def _converted(self, indices: list[int]) -> Iterator[tuple[np.ndarray, _Rows]]:
        """Each piece's columns ``indices`` as a 2-D array, with the rows they came from. A column must
        be bools in every piece or numbers in every piece."""
        kinds = None
        for rows in self._rows():
            block, bools = self._convert(rows, indices)
            if kinds is None:
                kinds = bools
            for j, (was, now) in enumerate(zip(kinds, bools)):
                if was != now:  # raises, naming the first cell that is not of the kind of the rows before
                    self._column(rows, indices[j], bools=was)
            yield block, rows

    def _convert(self, rows: _Rows, indices: list[int]) -> tuple[np.ndarray, list[bool]]:
        """The columns ``indices`` of ``rows`` as one 2-D array, and which of them are bools.

        Several columns are converted together, row by row, which is the order the cells lie in
        memory (column by column is 2-3x slower on wide files); only if that fails is each column
        converted on its own, to find the bad cell or to promote a bool column."""
        numbers = [False] * len(indices)
        if rows.text is not None:
            block = _read_numbers(rows.lines(self.delimiter, self.ncols), indices, self.delimiter)
            if block is not None:
                return block, numbers
        cells = rows.cells(self.delimiter, self.ncols)
        block = _as_numbers(cells if indices == list(range(self.ncols)) else cells[:, indices])
        if block is not None:
            return block, numbers
        columns = [self._column(rows, i) for i in indices]
        return np.stack(columns, axis=1), [column.dtype == np.bool_ for column in columns]

    def indices(self, selector: str | None) -> list[int]:
        """The 0-based columns that ``selector`` names (None: all), refusing a name or index the file lacks."""
        if selector is None:
            return list(range(self.ncols))
        return [self._index(token.strip()) for token in selector.split(",")]

    def _index(self, token: str) -> int:
        return column_index(token, self.names, self.ncols)

    def _column(self, rows: _Rows, i: int, bools: bool | None = None) -> np.ndarray:
        """Column ``i`` of ``rows``: numbers, else bools when every cell is true/false. ``bools`` says
        which the column is in the rows before (None: these are the first, and its first cell says)."""
        cells = rows.cells(self.delimiter, self.ncols)[:, i]
        if not bools:
            numbers = _as_numbers(cells)
            if numbers is not None:
                return numbers
        words = [cell.strip().lower() for cell in cells]
        if bools is None:
            bools = words[0] in _BOOLS
        if not bools:
            raise self._first_bad(rows, [i], _is_number, "a number")
        if set(words) <= set(_BOOLS):
            return np.array(words) == "true"
        raise self._first_bad(rows, [i], lambda cell: cell.strip().lower() in _BOOLS, "true or false")

    def _first_bad(self, rows: _Rows, indices: list[int], ok: Callable[[str], bool], expected: str) -> InputError:
        """The error for the first cell (row by row, then column by column) of ``indices`` that is not ``ok``."""
        cells = rows.cells(self.delimiter, self.ncols)
        row, i = next((r, i) for r in range(len(cells)) for i in indices if not ok(cells[r, i]))
        cell = cells[row, i].strip()
        got = repr(cell) if cell else "an empty cell"
        column = repr(self.names[i]) if self.names is not None else i
        return InputError(f"line {rows.starts[row]}, column {column}: expected {expected}, but got {got}")


def column_index(token: str, names: list[str] | None, ncols: int) -> int:
    """The 0-based index of the column ``token`` names: a header name (naming one column only) or an index;
    ``names`` None: a file without a header, whose columns go by index alone. Shared by the columnar files."""
    if names is not None and token in names:
        same = [i for i, name in enumerate(names) if name == token]
        if len(same) > 1:
            raise InputError(f"expected a column name that names one column, but {token!r} names columns "
                             f"{', '.join(map(str, same))} (0-based); pick one by index, as in :{same[0]}")
        return same[0]
    if token.isdecimal() and int(token) < ncols:
        return int(token)
    indices = "index 0" if ncols == 1 else f"indices 0..{ncols - 1}"
    if names is None:
        count = "is 1 column" if ncols == 1 else f"are {ncols} columns"
        raise InputError(f"expected a column index (the file has no header row), but got {token!r}; "
                         f"there {count}, {indices}")
    shown = ", ".join(map(repr, names[:_NAMES_SHOWN]))
    more = f", ... ({ncols} in all)" if ncols > _NAMES_SHOWN else ""
    raise InputError(f"expected a column name or index, but got {token!r}; the columns are {shown}{more} ({indices})")
