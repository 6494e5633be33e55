"""Loaders: ``.npy``/``.npz``/``.csv``/``.tsv`` files and stdin -> numpy arrays, keeping the names
that messages need. No math.

A spec is what the user typed for one argument::

    pred.npy            memory-mapped, read-only
    arrays.npz:logits   one array of an archive (the key may be left out when there is only one)
    results.csv:pred    columns by header name or 0-based index: ``:pred``, ``:0,2``; none means all
    scores.tsv          tab-delimited
    -:pred,label        CSV text on stdin (tsv@- for TSV)
    x.csv.gz:pred       gzip/bz2/xz-compressed CSV/TSV (.csv.gz, .tsv.bz2, .csv.xz, ...), read in pieces
    /dev/stdin:pred     a path without a suffix (a pipe, <(...), a file): the format sniffed from its first
                        bytes; a pipe is spooled to a temporary file first (see losscli.io.compressed)
    csv@/dev/fd/63      a format override: FORMAT@path reads path as FORMAT (csv, tsv, npy, npz, csv.gz, ...)
    'preds-*.npy'       shards: the .npy files that a glob matches (or a directory's .npy files),
    preds/              concatenated along axis 0 in sorted name order, read chunk by chunk when streaming;
                        a name with *, ? or [ that an existing file has is that file, not a pattern
    s3://b/p.npy        a URL (s3://, gs://, az://, https://, any fsspec URL; see losscli.io.remote): read by
    s3://b/r.csv:pred   ranged requests, in any of the forms above; a folder URL (s3://b/run-7/) is read as
                        a directory is; over HTTP(S), ? starts the query, and globs and folders read the
                        folder's page (a server's directory listing)

``Loader`` parses each file once, however many specs name it. A loaded argument keeps its :class:`Rows`: the
whole shape and dtype without reading anything, rows read on demand, and the whole array (``Loaded.array``).
CSV/TSV columns of a file of 1 MiB or more, with pyarrow installed, are :class:`~losscli.io.arrowcsv.CsvColumns`:
the columns that the arguments name are read when the first of them is needed, in one pass over the file for all
of them. Otherwise (losscli.io.table's reader) a CSV/TSV file of more than one piece
(:data:`~losscli.io.table.PIECE_BYTES`) is :class:`CsvRows`: surveyed once (rows, dtype) when loaded, then read a
piece at a time; smaller ones and stdin are read whole.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ..errors import InputError, LossCliError
from .files import naming
from .formats import SUFFIXES, Parsed, open_file, selector_formats, split_override, unnamed
from .npy import NpyFile
from .remote import Store, is_folder, is_http, is_url, listing
from .remote import glob as remote_glob
from .rows import ArrayRows, BlockRows, Rows, gather
from .table import Table

if TYPE_CHECKING:
    from .arrowcsv import CsvColumns, Scan

__all__ = ["ArrayRows", "CsvRows", "Loaded", "Loader", "Rows", "Shards", "is_pattern", "parse_spec"]

GLOB = "*?["


class CsvRows(BlockRows):
    """Columns of a CSV/TSV file as :class:`Rows`, read by :mod:`losscli.io.table` in bounded memory: shape and dtype
    from one pass over the file (:meth:`Table.survey`: the dtype is the whole read's), rows read in order from its
    pieces (:meth:`Table.blocks`). Errors name the argument (``input (results.csv:pred): line 12, ...``)."""

    def __init__(self, table: Table, selector: str | None, role: str, spec: str) -> None:
        self._table, self._selector = table, selector
        with naming(role, spec):
            shape, dtype = table.survey(selector)
        super().__init__(shape, dtype, lambda: table.blocks(selector, dtype), role, spec)

    def whole(self) -> np.ndarray:
        with naming(self._role, self._spec):
            return self._table.select(self._selector)


@dataclass(frozen=True)
class Loaded:
    rows: Rows  # .npy files: memory-mapped, rows read on demand; shards: their concatenation; large CSV: CsvRows
    spec: str  # the argument as the user wrote it, "results.csv:pred"
    path: str  # the file part, "results.csv" ("-" for stdin)
    selector: str | None  # "pred", "0,2", an .npz key, or None
    options: dict | None = None  # a URL's storage options (the loader's: another process opens it with them)

    @property
    def array(self) -> np.ndarray:
        """The whole array: .npy files memory-mapped, shards concatenated (in memory, once)."""
        return self.rows.whole()


@dataclass
class Shards:
    """.npy files of one dtype and row shape, read as their concatenation along axis 0 (``parts`` in order)."""

    parts: list[tuple[str, NpyFile]]  # (file name for messages, file)
    shape: tuple[int, ...] = field(init=False)
    dtype: np.dtype = field(init=False)
    _whole: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        name, lead = self.parts[0]
        for other_name, other in self.parts:
            if not other.shape:
                raise InputError(f"expected shards of at least one dimension, to concatenate along axis 0, but "
                                 f"{other_name} holds a single number")
            if (other.shape[1:], other.dtype) != (lead.shape[1:], lead.dtype):
                raise InputError(f"expected shards of one row shape and dtype, but got {other.shape[1:]} "
                                 f"{other.dtype} in {other_name} against {lead.shape[1:]} {lead.dtype} in {name}")
        self.shape = (sum(f.shape[0] for _, f in self.parts),) + lead.shape[1:]
        self.dtype = lead.dtype

    @property
    def counts(self) -> list[tuple[str, int]]:
        """Each shard's name and number of rows."""
        return [(name, f.shape[0]) for name, f in self.parts]

    def read(self, start: int, stop: int) -> np.ndarray:
        return gather(((f.shape[0], lambda span, f=f: f.read(span.start, span.stop)) for _, f in self.parts), 0,
                      start, stop, self)

    def locate(self, row: int) -> str:
        """Which shard holds ``row`` (by its name, without the folder), and its row there: ``t-2.npy row 777``."""
        for name, f in self.parts:
            if row < f.shape[0]:
                return f"{name.rstrip('/').rsplit('/', 1)[-1].rsplit(os.sep, 1)[-1]} row {row}"
            row -= f.shape[0]
        raise IndexError(row)

    def whole(self) -> np.ndarray:
        if self._whole is None:
            self._whole = np.concatenate([f.array for _, f in self.parts])
        return self._whole


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"file:selector"`` at the last ``:`` when the part before it is ``-``, ends in a supported
    suffix (``.csv``, ``.csv.gz``, ...), has a format override (``csv@/dev/stdin``), or is a path whose format
    is sniffed (:func:`~losscli.io.formats.unnamed`: ``/dev/fd/63``, a pipe) while the whole spec names no
    file; otherwise the whole spec is the path.

    >>> parse_spec("results.csv:pred"), parse_spec("C:/data/pred.npy"), parse_spec("-")
    (('results.csv', 'pred'), ('C:/data/pred.npy', None), ('-', None))
    >>> parse_spec("x.csv.gz:pred"), parse_spec("tsv@-:label")
    (('x.csv.gz', 'pred'), ('tsv@-', 'label'))

    A URL's ``scheme:`` and ``host:port`` are not selectors; a URL without a suffix takes one without a ``/``:

    >>> parse_spec("s3://b/p.npy"), parse_spec("s3://b/r.csv:pred"), parse_spec("http://h:80/p"), parse_spec("s3://b/p:x")
    (('s3://b/p.npy', None), ('s3://b/r.csv', 'pred'), ('http://h:80/p', None), ('s3://b/p', 'x'))
    """
    head, colon, tail = spec.rpartition(":")
    if is_url(spec) and not is_url(head):  # the only ':' is the scheme's
        return spec, None
    sniffed = ("/" not in tail) if is_url(head) else not os.path.isdir(head) and not os.path.lexists(spec)
    if colon and (head == "-" or head.lower().endswith(SUFFIXES) or split_override(head)[0] is not None
                  or (unnamed(head) and sniffed)):
        return head, tail
    return spec, None


class Loader:
    """Loads specs into arrays, parsing each file (and stdin) once. ``storage_options``: fsspec options for every
    URL it loads (``--storage-option key=value``), on top of the store's own configuration; they are this
    loader's alone (its :class:`~losscli.io.remote.Store`, which its URLs carry to every later read)."""

    def __init__(self, stdin: TextIO | None = None, storage_options: Mapping[str, Any] | None = None) -> None:
        self._stdin = stdin  # None: sys.stdin, looked up when "-" is first loaded
        self._store = Store(storage_options)
        self._parsed: dict[str, Parsed | _ShardSet] = {}
        self._scans: dict[str, Scan | None] = {}  # CSV/TSV files: their reading by pyarrow (None: not installed)
        self._unread: list[CsvColumns] = []  # CSV/TSV columns loaded, read when first needed

    def load(self, spec: str, *, role: str, name: str | None = None) -> Loaded:
        """``role`` names the argument in messages: ``input (results.csv:pred): ...``; ``name``: the spec as
        messages show it, when it is not ``spec`` (a dask worker opens the user's relative path made absolute).

        An error here is raised after those of the CSV/TSV columns loaded before and not read yet (which are read
        now), so that the first argument's error is the one reported, as when every argument is read as loaded."""
        path, selector = parse_spec(spec)
        shown = spec if name is None else name
        try:
            with naming(role, shown):
                parsed = self._parsed_file(path, selector)
                selected = None if isinstance(parsed, Table) else parsed.select(selector)
            rows = self._columns(path, parsed, selector, role, shown) if isinstance(parsed, Table) else (
                _named(selected, role, shown))
        except LossCliError:
            for pending in self._unread:
                pending.shape  # noqa: B018 - reads them: raises the first error among them
            raise
        return Loaded(rows=rows, spec=shown, path=path, selector=selector,
                      options=self._store.options if is_url(split_override(path)[1]) else None)

    def _columns(self, path: str, table: Table, selector: str | None, role: str, spec: str) -> Rows:
        """Columns of a CSV/TSV file. With pyarrow (and 1 MiB of text or more), read when first needed, in one pass
        with the columns that other arguments name in the file (:mod:`losscli.io.arrowcsv`); else by
        :mod:`losscli.io.table`: now when the file is of one piece, else surveyed now and read a piece at a time
        (:class:`CsvRows`)."""
        with naming(role, spec):
            indices = table.indices(selector)  # a column that the file lacks is refused now

        def by_table() -> Rows:
            with naming(role, spec):
                if not table.large:
                    return ArrayRows(table.select(selector))
            return CsvRows(table, selector, role, spec)  # it names the argument itself

        if path not in self._scans:
            from .arrowcsv import scan

            with naming(role, spec):
                self._scans[path] = scan(table)
        found = self._scans[path]
        if found is None:
            return by_table()
        columns = found.columns(indices, by_table, role, spec)
        self._unread.append(columns)
        return columns

    def labels(self, spec: str, *, role: str) -> np.ndarray:
        """One label per sample, whole (``--by``): a column of text (CSV/TSV, a Parquet/Arrow column of
        strings) or of integers, from any format."""
        path, selector = parse_spec(spec)
        with naming(role, spec):
            parsed = self._parsed_file(path, selector)
            reader = getattr(parsed, "labels", None)
            if reader is not None:
                return reader(selector)
        return self.load(spec, role=role).array

    def _parsed_file(self, path: str, selector: str | None) -> Parsed | _ShardSet:
        if selector == "":
            raise InputError("expected a column or key after ':', but got nothing")
        if path not in self._parsed:
            self._parsed[path] = self._parse(path)
        parsed = self._parsed[path]
        one = getattr(parsed, "one_array", None)
        if selector is not None and one is not None:
            raise InputError(f"selectors apply to {selector_formats()} files, but got ':{selector}' on {one}")
        return parsed

    def _parse(self, path: str) -> Parsed | _ShardSet:
        if is_pattern(path) or is_folder(path) or (os.path.isdir(path) and not path.lower().endswith(SUFFIXES)):
            return _ShardSet(shards(path, self._store))
        key, target = split_override(path)
        if target == "-":
            if key not in (None, ".csv", ".tsv"):
                raise InputError(f"expected csv@- or tsv@- (text on stdin; for other formats, /dev/stdin), but "
                                 f"got {path}")
            return Table("-", "\t" if key == ".tsv" else ",", self._read_stdin())
        return open_file(path, self._store)

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


def is_pattern(path: str) -> bool:
    """Whether ``path`` is a glob of shards: it has ``*``, ``?`` or ``[`` and no file has that very name (an
    existing file is always that file: ``p[1].npy`` is ``p[1].npy`` when it exists, else a pattern matching
    ``p1.npy``). A URL is a pattern when it has one of them; over HTTP(S), ``?`` starts the query, so only ``*``
    and ``[`` before it count.

    >>> is_pattern("s3://b/p-*.npy"), is_pattern("https://h/p.npy?sig=a*b"), is_pattern("https://h/p-*.npy")
    (True, False, True)
    """
    if is_http(path):
        return any(c in path.partition("?")[0] for c in "*[")
    if is_url(path):
        return any(c in path for c in GLOB)
    return any(c in path for c in GLOB) and not os.path.lexists(path)


def shards(path: str, store: Store | None = None) -> Shards:
    """The .npy files a glob matches, or a directory's (a folder URL's) .npy files, in sorted name order; the
    URLs among them read through ``store`` (the caller's storage options)."""
    if store is not None and is_url(path):
        path = store.url(path)
    if os.path.isdir(path) or is_folder(path):
        names = _folder(path)
        if not names:
            raise InputError(f"expected a {'folder' if is_url(path) else 'directory'} of .npy shards, but it holds "
                             "no .npy file")
    else:
        names = _matches(path)
        if not names:
            raise InputError("expected .npy shards matching the pattern, but no file matches it")
        other = next((n for n in names if not n.lower().endswith(".npy")), None)
        if other is not None:
            raise InputError(f"expected .npy shards, but the pattern also matches {other}")
    parts = []
    for name in names:
        try:
            parts.append((name, NpyFile(name)))
        except InputError as e:
            raise InputError(f"{name}: {e}") from e
    return Shards(parts)


def _folder(path: str) -> list[str]:
    """The .npy files directly in a directory or a folder URL, sorted."""
    if is_url(path):
        found = listing(path, "a folder of .npy shards")
        return [url for url in found if url.partition("?")[0].lower().endswith(".npy")]
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(".npy"))


def _matches(path: str) -> list[str]:
    """What a glob matches, sorted; over HTTP(S), read from the folder's page, which a query cannot have."""
    import glob  # only shards need it

    if not is_url(path):
        return sorted(glob.glob(path))
    if is_http(path) and "?" in path:
        raise InputError("expected a glob over HTTP(S) without a query (?...): the glob reads the folder's page "
                         "for its links, which a query does not select")
    return list(remote_glob(path))


def _named(selected: Any, role: str, spec: str) -> Rows:
    """What a reader selected, as rows: an array, or rows that the reader reads later (columnar files), which
    name the argument in their errors."""
    if isinstance(selected, np.ndarray):
        return ArrayRows(selected)
    named = getattr(selected, "named", None)
    return selected if named is None else named(role, spec)


@dataclass(frozen=True)
class _ShardSet:
    shards: Shards
    one_array = ".npy shards"  # they take no selector (Loader says which formats do)

    def select(self, selector: str | None) -> Shards:
        if selector is not None:
            raise InputError(f"expected no selector on {self.one_array}, but got ':{selector}'")
        return self.shards
