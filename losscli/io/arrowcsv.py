"""CSV/TSV columns read by pyarrow's CSV reader, when pyarrow is installed and the text is of :data:`SMALL_BYTES` or
more: a file read once for every argument that names its columns (``results.csv:pred results.csv:label``), by the
rules and with the messages of :mod:`losscli.io.table`.

A :class:`Scan` belongs to one file of one :class:`~losscli.io.Loader`. Each argument that names columns of the
file gets :class:`CsvColumns`: rows whose shape and dtype are found when first asked. Then the columns that every
argument named until then are read together, in one pass (:class:`_Pass`): the text is read in pieces of
:data:`PIECE_BYTES` that end at the end of a row, and each piece is parsed by ``pyarrow.csv.read_csv`` (only the
named columns converted), :data:`PARSERS` pieces at once while the next is read. The pass finds the rows and each
column's dtype (a column of integers in one piece and floats in another is float64) and keeps the columns when they
fit in :data:`KEEP_BYTES` (a file of up to a few million rows: the one reading is all). Otherwise the engine's
reads read the text again, in order, a piece at a time: each piece's columns are shared by the arguments of the
pass and let go once each of them has taken them (an argument lagging more than :data:`KEEP_BYTES` behind reads
again on its own).

pyarrow's streaming reader (``pyarrow.csv.open_csv``) is not used: it reads up to 32 blocks ahead on a thread of its
own, whatever the block size (apache/arrow ARROW-12090), and parses on one thread; pieces bound what is held to a
few pieces and their columns, and parse on every core (see :class:`_Reading` for why on threads of losscli's own).

pyarrow reads a column as Python would (int64 when every cell is an integer, float64 when every cell is a number,
correctly rounded as ``float()`` rounds; bool for true/false), except for spellings that its bytes show on their way:
``0x10`` and ``nan(1)`` are numbers to pyarrow only (the text after the header holds an x, X or a parenthesis), and
``+3`` is a float to pyarrow and an integer to Python (a ``+`` in a text whose column of floats holds only integers),
and ``-0`` is the integer 0 in a piece that pyarrow reads as integers, where Python reads -0.0 in a column of floats.
Wherever pyarrow might read a file otherwise than :mod:`losscli.io.table`, the pass gives up (it *declines*) and each
of its arguments is read by :mod:`losscli.io.table`, which gives the value or the message it always gave: one of those
spellings, text that is not UTF-8, a cell that is no number nor true/false (a bad cell, an empty one: pyarrow then
reads the column as text), a column of true/false in one piece and numbers in another, a row of another length, a
header cell over several lines.
"""

from __future__ import annotations

import codecs
import functools
import io
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import InputError
from .compressed import MAX_LINE_BYTES
from .files import naming, reading, size_of_path
from .rows import ArrayRows, BlockRows, Rows
from .table import Table

PIECE_BYTES = 1 << 22  # 4 MiB of text parsed at a time (longer where a row goes on)
# pieces parsed at once: one per core this process may run on, at most 4 (each holds a piece and its columns)
PARSERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
KEEP_BYTES = 1 << 25  # columns of up to 32 MiB are kept from the one reading; past it, the rows are read again
# Text under 1 MiB is read by losscli.io.table: numpy's loader is done with it before pyarrow is imported (+50 ms,
# and some 30 ms more as the process exits), and the file is small enough to read once per argument.
SMALL_BYTES = 1 << 20

_TRUE, _FALSE = ["true", "True", "TRUE"], ["false", "False", "FALSE"]  # other spellings decline: table.py reads them
_DOUBTFUL = (b"x", b"X", b"(")  # 0x10, nan(1): numbers to pyarrow and not to Python
_TYPES = ("int64", "double", "bool")  # what pyarrow may read a column as (else the column holds text)
_MINUS_ZERO = re.compile(rb"-0+(?![0-9.eE])")  # a cell -0 (or -00): 0 as an integer, -0.0 as a float


@functools.cache
def pyarrow_csv() -> ModuleType | None:
    """pyarrow.csv, imported when a CSV/TSV file is first read (never for .npy work), or None if not installed."""
    try:
        import pyarrow.csv
    except ImportError:
        return None
    return pyarrow.csv


def scan(table: Table) -> Scan | None:
    """The reading of ``table``'s columns by pyarrow, or None for losscli.io.table's reader: pyarrow is not
    installed, or the text is under :data:`SMALL_BYTES` (a compressed file may inflate: never small)."""
    if table.text is not None:
        small = len(table.text) < SMALL_BYTES
    else:
        small = table.codec is None and size_of_path(table.path, table.what) < SMALL_BYTES
    pcsv = None if small else pyarrow_csv()
    return None if pcsv is None else Scan(table, pcsv)


class _Declined(Exception):
    """pyarrow might read the text otherwise than losscli.io.table does (or the text stopped: ``cause``)."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(cause)
        self.cause = cause


class _LetGo(Exception):
    """A member lagged too far behind the pieces its pass shares: the ones it needs are gone."""


class Scan:
    """pyarrow's reading of one CSV/TSV file for the arguments that name its columns: the columns named before the
    first of them is read are read in one pass; a column named after that, in a pass of its own."""

    def __init__(self, table: Table, pcsv: ModuleType) -> None:
        self._table, self._pcsv = table, pcsv
        self._open: _Pass | None = None

    def columns(self, indices: list[int], fallback: Callable[[], Rows], role: str, spec: str) -> CsvColumns:
        """Rows of the columns ``indices``; ``fallback()`` makes them by :mod:`losscli.io.table` if pyarrow declines."""
        if self._open is None or self._open.begun:
            self._open = _Pass(self._table, self._pcsv)
        return self._open.join(indices, fallback, role, spec)


class CsvColumns:
    """Columns of a CSV/TSV file as :class:`~losscli.io.Rows`, read by pyarrow with the columns that the file's other
    arguments name (see the module docstring): the file is read when their shape, dtype or rows are first asked for,
    and errors then name the argument (``input (results.csv:pred): line 12, ...``)."""

    def __init__(self, reading: _Pass, indices: list[int], fallback: Callable[[], Rows], role: str, spec: str,
                 number: int) -> None:
        self.indices, self.role, self.spec, self.number = indices, role, spec, number
        self._pass, self._fallback = reading, fallback
        self.inner: Rows | None = None  # set by the pass: the columns kept, read in blocks, or read by table.py

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._rows().shape)

    @property
    def dtype(self) -> np.dtype:
        return self._rows().dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._rows().read(start, stop)

    def whole(self) -> np.ndarray:
        if isinstance(self._rows(), BlockRows) and not self._pass.declined:
            with naming(self.role, self.spec):
                self._pass.keep()  # the engine holds the columns whole: read whole, for every argument of the pass
        return self._rows().whole()

    @property
    def declined(self) -> bool:
        """Whether pyarrow declined the file, which losscli.io.table reads instead (the file is read now if not yet)."""
        self._rows()
        return self._pass.declined

    def _rows(self) -> Rows:
        if self.inner is None:
            self._pass.begin()
        assert self.inner is not None
        return self.inner

    def fall_back(self) -> None:
        """Be read by :mod:`losscli.io.table` (raising its error, if it finds one)."""
        if self.inner is None:
            self.inner = self._fallback()

    def stack(self, columns: dict[int, np.ndarray]) -> np.ndarray:
        """These columns of ``columns``: one as 1-D, several as 2-D in their common dtype."""
        if len(self.indices) == 1:
            return columns[self.indices[0]]
        return np.column_stack([columns[i] for i in self.indices])


class _Pass:
    """The columns that arguments named before any of them was read, read together (see the module docstring)."""

    def __init__(self, table: Table, pcsv: ModuleType) -> None:
        self.table, self.pcsv = table, pcsv
        self.members: list[CsvColumns] = []
        self.begun = self.declined = False
        self.rows = 0
        self.types: dict[int, np.dtype] = {}  # column -> its dtype, once surveyed
        self._shared: _Shared | None = None
        self._lock = threading.RLock()

    @property
    def indices(self) -> list[int]:
        return sorted({i for member in self.members for i in member.indices})

    def join(self, indices: list[int], fallback: Callable[[], Rows], role: str, spec: str) -> CsvColumns:
        member = CsvColumns(self, indices, fallback, role, spec, len(self.members))
        self.members.append(member)
        return member

    def begin(self) -> None:
        """Read every member's columns (once), or, where pyarrow declines, have each member read by table.py in the
        order they were named, so that the first argument's error is the one raised."""
        with self._lock:
            if not self.begun:
                self.begun = True
                try:
                    self._survey()
                except (_Declined, InputError, OSError):  # table.py says what went wrong, if anything did
                    self.declined = True
            if self.declined:
                for member in self.members:
                    member.fall_back()

    def _survey(self) -> None:
        self.rows, self.types, kept = _survey(self.pcsv, self.table, [member.indices for member in self.members])
        if kept is not None:
            self._keep(kept)
            return
        for member in self.members:
            dtype = np.result_type(*(self.types[i] for i in member.indices))
            shape = (self.rows,) if len(member.indices) == 1 else (self.rows, len(member.indices))
            member.inner = BlockRows(shape, dtype, self._blocks_of(member), member.role, member.spec)

    def _keep(self, kept: dict[int, np.ndarray]) -> None:
        for member in self.members:
            member.inner = ArrayRows(member.stack(kept))

    def keep(self) -> None:
        """Read the columns of every member whole (one more reading), for an engine that holds them whole."""
        with self._lock:
            if not self.declined and all(isinstance(member.inner, BlockRows) for member in self.members):
                kept = _gathered(list(self._again(self.indices)))
                if _length(kept) != self.rows:
                    raise InputError(f"expected {self.rows} rows as when the file was first read, but got "
                                     f"{_length(kept)} (it changed while being read)")
                self._keep(kept)

    def _again(self, indices: list[int]) -> Iterator[dict[int, np.ndarray]]:
        """The columns ``indices`` read again, in the dtypes the survey found."""
        return _again(_Reading(self.pcsv, self.table, indices, {i: self.types[i] for i in indices}))

    def _blocks_of(self, member: CsvColumns) -> Callable[[], Iterator[np.ndarray]]:
        """The blocks of ``member``'s rows: the first time from the pieces the pass shares, after that (a read of
        rows let go) from a reading of the member's own."""
        shared = True

        def blocks() -> Iterator[np.ndarray]:
            nonlocal shared
            if shared:
                shared = False
                return self._shared_blocks(member)
            return _stacked(member, self._again(member.indices))

        return blocks

    def _shared_blocks(self, member: CsvColumns) -> Iterator[np.ndarray]:
        with self._lock:
            if self._shared is None:
                self._shared = _Shared(self._again(self.indices), len(self.members))
            shared = self._shared
        done = 0
        try:
            while (columns := shared.take(member.number)) is not None:
                block = member.stack(columns)
                done += len(block)
                yield block
        except _LetGo:
            yield from _skip(_stacked(member, self._again(member.indices)), done)


class _Shared:
    """The batches of one reading, for the members of a pass: a batch is held until every member has taken it, and
    while fewer than :data:`KEEP_BYTES` are held; a member that lags further is let go (it reads the file again)."""

    def __init__(self, batches: Iterator[dict[int, np.ndarray]], members: int) -> None:
        self._batches = batches
        self._held: deque[dict[int, np.ndarray]] = deque()
        self._first = self._bytes = 0  # the number of the first batch held, and the bytes held
        self._positions: list[int | None] = [0] * members  # each member's next batch (None: let go)
        self._failed: Exception | None = None
        self._lock = threading.Lock()

    def take(self, member: int) -> dict[int, np.ndarray] | None:
        """``member``'s next batch, or None after the last."""
        with self._lock:
            number = self._positions[member]
            if number is None:
                raise _LetGo
            if number == self._first + len(self._held):
                batch = self._next()
                if batch is None:
                    return None
                self._held.append(batch)
                self._bytes += sum(column.nbytes for column in batch.values())
            batch = self._held[number - self._first]
            self._positions[member] = number + 1
            self._let_go()
            return batch

    def _next(self) -> dict[int, np.ndarray] | None:
        """The next batch of the reading; what it raised (a read error, a file that changed) again for each member."""
        if self._failed is not None:
            raise self._failed
        try:
            return next(self._batches, None)
        except (InputError, OSError) as e:
            self._failed = e
            raise

    def _let_go(self) -> None:
        while self._held:
            behind = [m for m, n in enumerate(self._positions) if n is not None and n <= self._first]
            if behind and self._bytes <= KEEP_BYTES:
                return
            for m in behind:
                self._positions[m] = None
            self._bytes -= sum(column.nbytes for column in self._held.popleft().values())
            self._first += 1


def _stacked(member: CsvColumns, batches: Iterator[dict[int, np.ndarray]]) -> Iterator[np.ndarray]:
    """``member``'s blocks of ``batches``."""
    for columns in batches:
        yield member.stack(columns)


def _skip(blocks: Iterator[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """``blocks`` from row ``rows`` on."""
    for block in blocks:
        if rows < len(block):
            yield block[rows:]
        rows = max(rows - len(block), 0)


# -- reading -----------------------------------------------------------------------------------------------------------


class _Text:
    """The text of a CSV/TSV file that pyarrow reads, in pieces that end at the end of a row: after the header row,
    without the blank lines at its end (no rows: losscli.io.table drops them), checked on the way (UTF-8, no doubtful
    byte); ``plus``: whether a "+" went by."""

    def __init__(self, read: Callable[[int], bytes], header: bool) -> None:
        self._read, self._header = read, header
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._begins = True  # whether the next piece begins the text
        self.plus = False

    def pieces(self, size: int) -> Iterator[tuple[memoryview, bool]]:
        """Pieces of about ``size`` bytes (longer where a row, or a quoted cell, goes on), as views of the text read,
        and whether each holds a quote."""
        rest, data, begin = b"", self._read(size), 0
        if self._header:
            data, begin = self._after_header(data, size)
        self._begins = not self._header
        while len(data) > begin:
            self._check(data, begin)
            text = rest + data if rest else data
            cut = _rows_end(text, begin, _last_row_end(text, begin))  # blank lines at a piece's end wait for the next
            if cut > begin:
                yield self._piece(text, begin, cut)
            rest, begin = text[cut:], 0
            if len(rest) > MAX_LINE_BYTES:  # a row (or quoted cell) without end: table.py refuses it
                raise _Declined
            data = self._read(size)
        self._utf8.decode(b"", final=True)  # a character cut short is not UTF-8
        cut = _rows_end(rest, 0, len(rest))
        if cut:
            yield self._piece(rest, 0, cut)

    def _piece(self, text: bytes, begin: int, cut: int) -> tuple[memoryview, bool]:
        """``text[begin:cut]``; a byte-order mark that begins it declines unless it begins the text too (pyarrow drops
        it wherever a piece begins, losscli.io.table only there)."""
        if text.startswith(codecs.BOM_UTF8, begin) and not self._begins:
            raise _Declined
        self._begins = False
        return memoryview(text)[begin:cut], text.find(b'"', begin, cut) >= 0

    def _check(self, data: bytes, begin: int) -> None:
        """UTF-8 (the header before ``begin`` too: it is), and no doubtful byte after ``begin``."""
        if not data.isascii() or self._utf8.getstate()[0]:
            self._utf8.decode(data)  # UnicodeDecodeError: losscli.io.table names the byte
        if any(data.find(byte, begin) >= 0 for byte in _DOUBTFUL):
            raise _Declined
        self.plus = self.plus or data.find(b"+", begin) >= 0

    def _after_header(self, data: bytes, size: int) -> tuple[bytes, int]:
        """``data`` (read on until the header row ends) and where the rows begin: after the header, its first line."""
        while (end := _line_end(data, 0)) < 0 or end + 1 == len(data):
            more = self._read(size)
            if not more:
                break
            data += more
            if len(data) > MAX_LINE_BYTES:
                raise _Declined
        if end < 0 or data[:end].count(b'"') % 2:  # a header and no row, or a header cell over several lines
            raise _Declined
        return data, end + (2 if data[end:end + 2] == b"\r\n" else 1)


def _line_end(data: bytes, start: int) -> int:
    """Where the first line end (LF, CR) at or after ``start`` is, or -1."""
    ends = [i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i >= 0]
    return min(ends) if ends else -1


def _last_row_end(text: bytes, begin: int) -> int:
    """Where the last row that ends in ``text`` (after ``begin``) ends: after its line end, where no quoted cell is
    open (``begin``: none). A CR at the very end is left for the next read, which may begin with its LF."""
    end = len(text) - 1 if text.endswith(b"\r") else len(text)
    lf = text.rfind(b"\n", begin, end)
    cut = max(lf, text.rfind(b"\r", max(lf, begin), end)) + 1
    if cut <= begin or (text.find(b'"', begin, cut) >= 0 and text.count(b'"', begin, cut) % 2):
        return begin  # no row ends, or a quoted cell goes on past the last line end: read on
    return cut


def _rows_end(text: bytes, begin: int, stop: int) -> int:
    """Where the rows of ``text[begin:stop]`` end: after the line end that follows its last cell (``begin``: no
    cell, only blank lines)."""
    last = stop
    while last > begin:
        start = max(last - 256, begin)
        kept = len(text[start:last].rstrip())
        if kept:
            last = start + kept
            break
        last = start
    if last <= begin:
        return begin
    ends = [i for i in (text.find(b"\n", last, stop), text.find(b"\r", last, stop)) if i >= 0]
    if not ends:
        return stop
    end = min(ends)
    return end + (2 if text[end:end + 2] == b"\r\n" else 1)


@contextmanager
def _opened(table: Table) -> Iterator[Callable[[int], bytes]]:
    """``read(size)`` of the bytes of ``table``'s text: its file (through its decompressor), or stdin's text (which
    losscli.io.table reads with its byte-order mark as a character: pyarrow would drop it)."""
    if table.text is None:
        with reading(table.path, table.what, table.codec) as read:
            yield read
        return
    try:
        data = table.text.encode()
    except UnicodeEncodeError as e:  # stdin decoded with surrogateescape: no UTF-8
        raise _Declined(e) from e
    if data.startswith(codecs.BOM_UTF8):
        raise _Declined
    yield io.BytesIO(data).read


class _Reading:
    """One reading of the columns ``indices`` of ``table``'s text by pyarrow, a piece at a time, :data:`PARSERS`
    pieces parsed at once (``pyarrow.csv.read_csv`` lets go of the GIL): each piece's columns, by index, of the
    ``types`` given (a reading after the survey) or of the types pyarrow finds in the piece. Afterwards ``plus``
    says whether a "+" went by. Raises _Declined where pyarrow might read the text otherwise than losscli.io.table.

    Each piece is parsed on the thread that parses it, not on pyarrow's thread pool: pyarrow's pool can abort the
    process as it exits, after the work is done (``terminate called without an active exception``,
    apache/arrow#34314; once in about 500 runs here), and its own threads are the ones that do."""

    def __init__(self, pcsv: ModuleType, table: Table, indices: list[int], types: dict[int, np.dtype] | None) -> None:
        self.pcsv, self.table, self.indices, self.types = pcsv, table, indices, types
        self.plus = False
        self.minus_zero: set[int] = set()  # columns read as integers in a piece that may hold a -0

    def __iter__(self) -> Iterator[dict[int, np.ndarray]]:
        with _opened(self.table) as read:
            text = _Text(read, self.table.names is not None)
            parsing: deque[_Parsing] = deque()
            try:
                for piece, quoted in text.pieces(PIECE_BYTES):
                    parsing.append(_Parsing(self._parse, piece, quoted))
                    if len(parsing) == PARSERS:
                        yield parsing.popleft().columns()
                while parsing:
                    yield parsing.popleft().columns()
            except ValueError as e:  # pyarrow.ArrowInvalid (a bad row, ...), UnicodeDecodeError
                raise _Declined(e) from e
            finally:
                for thread in parsing:  # an error, or a reader that stopped early: the pieces begun end first
                    thread.join()
            self.plus = text.plus

    def _parse(self, piece: memoryview, quoted: bool) -> dict[int, np.ndarray]:
        """A piece's columns; a column read as text (a bad cell, an empty one, a spelling of true of its own)
        declines."""
        import pyarrow as pa

        found = self.pcsv.read_csv(pa.BufferReader(pa.py_buffer(piece)), **self._options(len(piece), quoted))
        if any(str(found.schema.field(f"f{i}").type) not in _TYPES for i in self.indices):
            raise _Declined
        columns = {i: found.column(f"f{i}").to_numpy() for i in self.indices}
        zeros = [i for i, column in columns.items() if column.dtype.kind == "i" and not column.all()]
        if zeros and _MINUS_ZERO.search(piece):
            self.minus_zero.update(zeros)
        return columns

    def _options(self, size: int, quoted: bool) -> dict[str, Any]:
        """pyarrow's options for a piece of ``size`` bytes, parsed as one block (its columns then are one array
        each); ``quoted``: a quoted cell may span lines."""
        import pyarrow as pa

        names = [f"f{i}" for i in range(self.table.ncols)]
        types = {names[i]: pa.from_numpy_dtype(t) for i, t in (self.types or {}).items()}
        return {
            "read_options": self.pcsv.ReadOptions(use_threads=False, block_size=size + 1, column_names=names),
            "parse_options": self.pcsv.ParseOptions(delimiter=self.table.delimiter, newlines_in_values=quoted,
                                                    ignore_empty_lines=False),
            "convert_options": self.pcsv.ConvertOptions(
                include_columns=[names[i] for i in self.indices], column_types=types, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False, true_values=_TRUE,
                false_values=_FALSE, timestamp_parsers=[]),
        }


class _Parsing(threading.Thread):
    """A piece parsed on a thread of its own (started when made); :meth:`columns` waits for it."""

    def __init__(self, parse: Callable[[memoryview, bool], dict[int, np.ndarray]], piece: memoryview,
                 quoted: bool) -> None:
        super().__init__(name="losscli-csv")
        self._parse, self._piece, self._quoted = parse, piece, quoted
        self._columns: dict[int, np.ndarray] | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._columns = self._parse(self._piece, self._quoted)
        except BaseException as e:  # noqa: BLE001 - raised again by columns(), on the reading's thread
            self._error = e

    def columns(self) -> dict[int, np.ndarray]:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._columns is not None
        return self._columns


def _survey(pcsv: ModuleType, table: Table, groups: list[list[int]]) -> tuple[int, dict[int, np.dtype], dict | None]:
    """The rows, the dtypes and (when they fit in :data:`KEEP_BYTES`, or the text is stdin's, held already) the
    columns of ``groups`` (each argument's columns), read once: a column of integers in one piece and floats in
    another is float64, as Python reads it."""
    indices = sorted({i for group in groups for i in group})
    reading = _Reading(pcsv, table, indices, None)
    rows, size = 0, 0
    kept: list[dict[int, np.ndarray]] | None = []
    types: dict[int, np.dtype] = {}
    integral = dict.fromkeys(indices, True)  # a column of integers, or of floats that are integers
    for columns in reading:
        for i, column in columns.items():
            types[i] = _merged(types.get(i), column.dtype)
            integral[i] = integral[i] and (column.dtype.kind == "i" or _integers(column))
        rows += _length(columns)
        size += sum(column.nbytes for column in columns.values())
        if kept is not None:
            kept.append(columns)
            kept = None if size > KEEP_BYTES and table.text is None else kept
    if not rows or (reading.plus and any(integral[i] and types[i].kind == "f" for i in indices)):
        raise _Declined  # no rows (the file changed); or floats written +3, which Python reads as integers
    floats = {i for group in groups if any(types[i].kind == "f" for i in group) for i in group}
    if reading.minus_zero & floats:  # a column read as floats (or with them) whose -0 pyarrow read as the integer 0
        raise _Declined
    return rows, types, None if kept is None else _gathered(kept)


def _merged(was: np.dtype | None, now: np.dtype) -> np.dtype:
    """A column's dtype from two pieces: integers and floats are floats; true/false and numbers decline."""
    if was is None or was == now:
        return now
    if {was.kind, now.kind} == {"i", "f"}:
        return np.dtype(np.float64)
    raise _Declined


def _integers(column: np.ndarray) -> bool:
    """Whether a column of floats holds integers only."""
    return column.dtype.kind == "f" and bool(np.all(column == np.trunc(column)))


def _again(reading: _Reading) -> Iterator[dict[int, np.ndarray]]:
    """A reading after the survey, whose types are known: what declines now is a file that changed."""
    try:
        yield from reading
    except _Declined as e:
        if isinstance(e.cause, (InputError, OSError)):  # the read failed: its own message
            raise e.cause from None
        raise InputError("expected the text of the file as when it was first read, but it changed while being "
                         "read") from None


def _length(columns: dict[int, np.ndarray]) -> int:
    return len(next(iter(columns.values())))


def _gathered(parts: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """The columns of consecutive pieces, whole (integers of one piece and floats of another: floats)."""
    if len(parts) == 1:
        return parts[0]
    return {i: np.concatenate([part[i] for part in parts]) for i in parts[0]}
