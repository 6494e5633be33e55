"""Columnar files -> numpy, read with pyarrow (imported only when such a file is read): Parquet (``.parquet``),
the Arrow IPC file format (``.arrow``, Feather v2 ``.feather``), Feather v1 (``.feather`` whose first bytes are
``FEA1``) and the Arrow IPC stream format (``.arrows``).

A file is a list of *parts*, each a run of rows: Parquet's row groups, IPC record batches. Columns are selected
as in a CSV file (``preds.parquet:logits``, ``:0,2``; none: all of them): one column of numbers or booleans is a
1-D array, several are stacked as ``(rows, columns)`` in numpy's common type, and one column of fixed-size lists
(or of lists of equal length) is ``(rows, width)``. A null (a value, or a whole list: a missing row) is read as 0
and noted (:meth:`ColumnRows.nulls`), for the loss's mask to leave out; a list of another length than the first
one's is an error naming the column and the (0-based) row.

:class:`ColumnRows` is :class:`~losscli.io.Rows`: its shape and dtype come from the file's metadata (and, for
a column of variable-length lists, the first row's length), and ``read(start, stop)`` reads only the parts
overlapping the rows, only the selected columns, keeping the last two parts read so that the engine's chunks
(smaller than a part) cost one read per part.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import InputError
from .files import open_binary
from .remote import is_url
from .table import column_index

_KEPT = 2  # parts held after a read: a chunk spanning two parts, and threads reading a little out of order
INSTALL = "pip install 'losscli[arrow]'"


def pyarrow() -> ModuleType:
    """pyarrow with its ipc, parquet and compute modules loaded, or one line saying how to install it."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise InputError(f"expected pyarrow to read columnar files, but it is not installed: {INSTALL}") from None
    return pyarrow


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _source(pa: ModuleType, path: str, what: str, mapped: bool = True) -> Any:
    """What pyarrow reads ``path`` from: the path (``mapped``: its memory map), or a remote file read by ranges."""
    if is_url(path):
        return open_binary(path, what)
    return pa.memory_map(path) if mapped else path


class _Parquet:
    """A Parquet file's row groups."""

    def __init__(self, pa: ModuleType, path: str) -> None:
        self.file = pa.parquet.ParquetFile(_source(pa, path, "a Parquet file", mapped=False))
        self.schema = self.file.schema_arrow
        meta = self.file.metadata
        self.counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    def part(self, i: int, names: list[str]) -> Any:
        return self.file.read_row_group(i, columns=names)


class _IpcFile:
    """An Arrow IPC file's record batches, memory-mapped (counting them decompresses a compressed file's once)."""

    def __init__(self, pa: ModuleType, path: str) -> None:
        self.reader = pa.ipc.open_file(_source(pa, path, "an Arrow IPC file"))
        self.schema = self.reader.schema
        self.counts = [self.reader.get_batch(i).num_rows for i in range(self.reader.num_record_batches)]

    def part(self, i: int, names: list[str]) -> Any:
        return self.reader.get_batch(i).select(names)


class _IpcStream:
    """An Arrow IPC stream's record batches: counted in one pass, then read in order (an earlier batch
    reads the stream again from its start)."""

    def __init__(self, pa: ModuleType, path: str) -> None:
        self.pa, self.path = pa, path
        reader = self._open()
        self.schema = reader.schema
        self.counts = [batch.num_rows for batch in reader]
        self.reader, self.next = reader, len(self.counts)

    def _open(self) -> Any:
        return self.pa.ipc.open_stream(_source(self.pa, self.path, "an Arrow IPC stream file"))

    def part(self, i: int, names: list[str]) -> Any:
        if i < self.next:
            self.reader, self.next = self._open(), 0
        while True:
            batch, self.next = self.reader.read_next_batch(), self.next + 1
            if self.next > i:
                return batch.select(names)


class _FeatherV1:
    """A Feather v1 file (``FEA1``, before Arrow IPC became Feather v2): one part, all its rows, memory-mapped
    (pyarrow reads v1 whole, deprecated since pyarrow 25, without a warning here: the file is what it is)."""

    def __init__(self, pa: ModuleType, path: str) -> None:
        import warnings

        import pyarrow.feather

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.table = pyarrow.feather.read_table(_source(pa, path, "a Feather v1 file", mapped=False),
                                                    memory_map=not is_url(path))
        self.schema = self.table.schema
        self.counts = [self.table.num_rows]

    def part(self, i: int, names: list[str]) -> Any:
        return self.table.select(names)


KINDS: dict[str, Callable[[ModuleType, str], Any]] = {
    ".parquet": _Parquet, ".feather": _IpcFile, ".arrow": _IpcFile, ".arrows": _IpcStream}
FORMATS = {".parquet": "a Parquet file", ".feather": "a Feather (Arrow IPC) file", ".arrow": "an Arrow IPC file",
           ".arrows": "an Arrow IPC stream file"}
FEATHER_V1 = b"FEA1"  # the first bytes of a Feather v1 file (v2 is an Arrow IPC file: ARROW1)


class ColumnarFile:
    """A columnar file whose metadata is read when made; :meth:`select` gives columns as :class:`ColumnRows`."""

    def __init__(self, path: str, suffix: str) -> None:
        self.what = FORMATS[suffix]
        with open_binary(path, self.what) as f:  # the usual refusals: no such file, a directory, 0 bytes
            v1 = suffix in (".feather", ".arrow") and f.read(len(FEATHER_V1)) == FEATHER_V1
        self.pa = pa = pyarrow()
        try:
            self.parts = (_FeatherV1 if v1 else KINDS[suffix])(pa, path)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"expected {self.what}, but pyarrow could not read it: {_first_line(e)}") from None
        self.names: list[str] = list(self.parts.schema.names)
        self.lock = threading.Lock()

    def select(self, selector: str | None) -> ColumnRows:
        """Columns by name or 0-based index (``"pred"``, ``"0,2"``; None: all)."""
        if selector is None:
            indices = list(range(len(self.names)))
        else:
            indices = [self._index(token.strip()) for token in selector.split(",")]
        if not indices:
            raise InputError("expected a file with at least one column, but it has none")
        return ColumnRows(self, [self.names[i] for i in indices])

    def _index(self, token: str) -> int:
        return column_index(token, self.names, len(self.names))

    def labels(self, selector: str | None) -> np.ndarray:
        """One column's values, whole, as numbers or as text (group labels: ``--by``); a null is an error."""
        names = self.names if selector is None else [self.names[self._index(t.strip())] for t in selector.split(",")]
        if len(names) != 1:
            raise InputError(f"expected one column of labels, but got {len(names)} columns; select one with :name")
        pa = self.pa
        column = pa.chunked_array([self.part(i, names).column(0) for i in range(len(self.parts.counts))],
                                  type=self.parts.schema.field(names[0]).type)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"column {names[0]!r}: expected a label in every row, but row {row} is null")
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
            return np.asarray(column.cast(pa.string()).to_pylist(), dtype=str)
        return column.to_numpy()

    def part(self, i: int, names: list[str]) -> Any:
        """Part ``i``'s columns ``names`` (a pyarrow Table or RecordBatch)."""
        with self.lock:
            try:
                return self.parts.part(i, names)
            except (self.pa.ArrowException, OSError) as e:
                raise InputError(f"expected {self.what}, but pyarrow could not read rows "
                                 f"{sum(self.parts.counts[:i])}.. of it: {_first_line(e)}") from None


def _element_dtype(pa: ModuleType, name: str, kind: Any) -> tuple[np.dtype, int | None]:
    """The numpy dtype of column ``name`` of arrow type ``kind``, and whether it holds lists: None for
    scalars, the list size for fixed-size lists, -1 for lists of any length."""
    width = None
    if pa.types.is_fixed_size_list(kind):
        width, kind = kind.list_size, kind.value_type
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        width, kind = -1, kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return np.dtype(kind.to_pandas_dtype()), width
    lists = "" if width is None else " in its lists"
    raise InputError(f"column {name!r}: expected numbers or booleans (or lists of them), but got {kind}{lists}")


class ColumnRows:
    """Columns of a :class:`ColumnarFile` as :class:`~losscli.io.Rows` (see the module docstring)."""

    def __init__(self, file: ColumnarFile, names: list[str]) -> None:
        self.file, self.names, self.label = file, names, None
        self.first_row = 0  # the row whose list's length every list must have
        pa, schema = file.pa, file.parts.schema
        kinds = [_element_dtype(pa, name, schema.field(name).type) for name in names]
        self.list_width = kinds[0][1]
        if len(names) > 1 and any(width is not None for _, width in kinds):
            name = next(n for n, (_, width) in zip(names, kinds) if width is not None)
            raise InputError(f"expected columns of numbers to stack, but column {name!r} holds lists; "
                             "select a column of lists alone")
        self.dtype = np.result_type(*(dtype for dtype, _ in kinds))
        self.counts = file.parts.counts
        self.starts = np.cumsum([0] + self.counts)
        rows = int(self.starts[-1])
        if self.list_width == -1:
            self.list_width = self._first_length()
        if self.list_width is not None:
            self.shape: tuple[int, ...] = (rows, self.list_width)
        else:
            self.shape = (rows,) if len(names) == 1 else (rows, len(names))
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()
        self._nulls: dict[int, np.ndarray] = {}  # part -> its rows (in the part) that hold a null, filled with 0
        self._whole: np.ndarray | None = None
        self._lock = threading.Lock()

    def named(self, role: str, spec: str) -> ColumnRows:
        """These rows, whose errors when read name the argument (``input (p.parquet:logits): ...``)."""
        self.label = f"{role} ({spec})"
        return self

    def _first_length(self) -> int:
        """The length of the first list (that is not null) of a column of variable-length lists, noting its row
        in :attr:`first_row` (0 when the file has no such list)."""
        for i, count in enumerate(self.counts):
            if count:
                column = self.file.part(i, self.names).column(0)
                lengths = self.file.pa.compute.list_value_length(column).to_numpy(zero_copy_only=False)
                found = np.flatnonzero(~column.is_null().to_numpy(zero_copy_only=False))
                if found.size:
                    self.first_row = int(self.starts[i] + found[0])
                    return int(lengths[found[0]])
        return 0

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``, in memory of their own."""
        with self._lock, self._naming():
            first = int(np.searchsorted(self.starts, start, side="right")) - 1
            pieces = []
            for i in range(max(first, 0), len(self.counts)):
                if self.starts[i] >= stop:
                    break
                lo, hi = max(start - self.starts[i], 0), min(stop - self.starts[i], self.counts[i])
                if lo < hi:
                    pieces.append(self._part(i)[lo:hi])
            if not pieces:
                return np.empty((0,) + self.shape[1:], self.dtype)
            return pieces[0].copy() if len(pieces) == 1 else np.concatenate(pieces)

    def nulls(self, start: int, stop: int) -> np.ndarray:
        """The rows in ``[start, stop)`` (of the whole array) that held a null, read already by :meth:`read` or
        :meth:`whole`: their values are 0, and the loss's mask must leave them out."""
        found = [self.starts[i] + rows for i, rows in sorted(self._nulls.items())]
        rows = np.concatenate(found) if found else np.empty(0, np.int64)
        return rows[(rows >= start) & (rows < stop)]

    def whole(self) -> np.ndarray:
        """The whole array, read once (in memory)."""
        if self._whole is None:
            with self._naming():
                parts = [self._convert(i) for i in range(len(self.counts))]
            self._whole = (np.concatenate(parts) if parts else np.empty((0,) + self.shape[1:], self.dtype))
        return self._whole

    def _part(self, i: int) -> np.ndarray:
        if i not in self._kept:
            self._kept[i] = self._convert(i)
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return self._kept[i]

    @contextmanager
    def _naming(self) -> Iterator[None]:
        try:
            yield
        except InputError as e:
            if self.label is None:
                raise
            raise InputError(f"{self.label}: {e}") from e

    def _convert(self, i: int) -> np.ndarray:
        """Part ``i``'s selected columns as one array of :attr:`dtype`."""
        table, offset = self.file.part(i, self.names), int(self.starts[i])
        if table.num_rows != self.counts[i]:
            raise InputError(f"expected {self.counts[i]} rows from row {offset} as when the file was first read, "
                             f"but got {table.num_rows} (it changed while being read)")
        columns, nulls = [], np.zeros(table.num_rows, bool)
        for name in self.names:
            values, null = self._column(name, table.column(name), offset)
            columns.append(values)
            nulls |= null
        if nulls.any():
            self._nulls[i] = np.flatnonzero(nulls)
        return columns[0] if len(columns) == 1 else np.column_stack(columns)

    def _column(self, name: str, column: Any, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """One column of a part as numbers, nulls filled with 0, and which of its rows held one."""
        array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        if self.list_width is not None:
            return self._lists(name, array, offset)
        null = array.is_null().to_numpy(zero_copy_only=False)
        array = _filled(self.file.pa, array) if null.any() else array
        return array.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False), null

    def _lists(self, name: str, array: Any, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """A column of lists as ``(rows, width)``, each of :attr:`list_width` values, and which rows held a null:
        a null inside a list (filled with 0), or a null list (a missing row: :attr:`list_width` zeros)."""
        pa, width = self.file.pa, self.list_width
        missing = np.array(array.is_null().to_numpy(zero_copy_only=False), bool)
        present = np.flatnonzero(~missing)
        if present.size < len(missing):
            array = array.filter(pa.array(~missing))
        if not pa.types.is_fixed_size_list(array.type):
            lengths = pa.compute.list_value_length(array).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(lengths != width)
            if bad.size:
                raise InputError(f"column {name!r}, row {offset + int(present[bad[0]])}: expected a list of {width} "
                                 f"values like row {self.first_row}, but got {lengths[bad[0]]}")
        values = array.flatten()
        inner = values.is_null().to_numpy(zero_copy_only=False).reshape(present.size, width).any(axis=1)
        values = _filled(pa, values) if inner.any() else values
        rows = values.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False).reshape(present.size, width)
        if present.size == len(missing):
            return rows, inner
        whole = np.zeros((len(missing), width), self.dtype)
        whole[present] = rows
        missing[present] = inner
        return whole, missing


def _filled(pa: Any, array: Any) -> Any:
    """``array`` with its nulls replaced by 0 (False for booleans)."""
    return array.fill_null(pa.scalar(False if pa.types.is_boolean(array.type) else 0, array.type))
