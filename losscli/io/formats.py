"""File formats by suffix: what reads a file (parsed once per path), whose ``select(selector)`` gives an array
or :class:`~losscli.io.Rows`. A format's module is imported only when a file of that format is read, so that
a run on ``.npy`` files pays for no other reader. A new format is one function here and its entry in
:data:`READERS`."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import InputError
from .remote import Store, is_http, is_url


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


def _text(delimiter: str | None, codec: str) -> Callable[[str], Parsed]:
    """The reader of CSV/TSV text compressed with ``codec``; a ``delimiter`` of None is sniffed from the text."""

    def read(path: str) -> Parsed:
        from .compressed import CODECS
        from .table import Table

        key = suffix_of(path)
        what = f"a {key} file" if key else f"{CODECS[codec]}-compressed text"
        found = delimiter
        if found is None:
            inner = sniff(_inner_head(path, codec, what))
            if inner not in (".csv", ".tsv"):
                raise InputError(f"expected CSV or TSV text inside the {CODECS[codec]} stream, but got "
                                 f"{FORMAT_NAMES.get(inner, inner)}; decompress it first")
            found = "\t" if inner == ".tsv" else ","
        return Table(path, found, codec=codec, what=what)

    return read


# compressed CSV/TSV: the compressions of losscli/io/compressed.py (its CODECS), named here so that reading the
# table imports nothing
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
READERS: dict[str, Callable[[str], Parsed]] = {".npy": _npy, ".npz": _npz, ".csv": _csv, ".tsv": _tsv}
READERS.update({text + codec: _text(delimiter, codec) for codec in COMPRESSIONS
                for text, delimiter in ((".csv", ","), (".tsv", "\t"), ("", None))})
READERS.update({suffix: _columnar(suffix) for suffix in (".parquet", ".feather", ".arrow", ".arrows")})
# tensor files (losscli/io/tensors.py)
READERS.update({".safetensors": _safetensors, ".pt": _pt, ".pth": _pt})
SUFFIXES = tuple(READERS)
_PLAIN = [suffix for suffix in SUFFIXES if not suffix.endswith(COMPRESSIONS)]
ONE_ARRAY = (".npy",)  # formats whose file is one array: they take no selector


def selector_formats() -> str:
    """The formats whose files take a selector after ``:`` (columns, a key, a tensor name): every format of
    :data:`READERS` but :data:`ONE_ARRAY`'s, compressed text named as such.

    >>> selector_formats()
    '.npz, .csv, .tsv, .parquet, .feather, .arrow, .arrows, .safetensors, .pt, .pth and compressed CSV/TSV'
    """
    return ", ".join(suffix for suffix in _PLAIN if suffix not in ONE_ARRAY) + " and compressed CSV/TSV"


# A path without a usable suffix (a pipe, /dev/stdin, <(...), a file named without one) is read by the reader
# that its first bytes name. Keys are READERS keys.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x93NUMPY", ".npy"), (b"PK\x03\x04", ".npz"), (b"PAR1", ".parquet"), (b"ARROW1", ".arrow"),
    (b"FEA1", ".feather"), (b"\x1f\x8b", ".gz"), (b"BZh", ".bz2"), (b"\xfd7zXZ\x00", ".xz"),
    (b"\x28\xb5\x2f\xfd", ".zst"),
)
FORMAT_NAMES = {".npy": "a .npy file", ".npz": "an .npz archive", ".parquet": "a Parquet file",
                ".arrow": "an Arrow IPC (Feather) file", ".feather": "a Feather v1 file",
                ".safetensors": "a safetensors file", ".pt": "a torch file (torch.save)",
                ".zst": "a zstd-compressed stream", ".csv": "CSV text", ".tsv": "TSV text",
                ".gz": "a gzip stream", ".bz2": "a bzip2 stream", ".xz": "an xz stream"}
HEAD_BYTES = 1 << 16
OVERRIDE = "@"  # csv@/dev/stdin:pred, npy@/dev/fd/63: the reader of a key, whatever the path or its bytes say


def sniff(head: bytes) -> str:
    """The key of the format that a file's first bytes name: a magic number (a zip is ``.npz``, or ``.pt`` when
    its first member is torch's ``<name>/data.pkl``), safetensors' header (its length as 8 bytes
    little-endian, then ``{"``), else text: TSV when the first line has tabs and no commas, else CSV.

    >>> sniff(b"\\x93NUMPY\\x01\\x00"), sniff(b"pred\\tlabel\\n"), sniff(b"pred,label\\n")
    ('.npy', '.tsv', '.csv')
    """
    for magic, key in MAGIC:
        if head.startswith(magic):
            return ".pt" if key == ".npz" and _torch_zip(head) else key
    if len(head) >= 10 and head[8:10] == b'{"' and 0 < int.from_bytes(head[:8], "little") < 1 << 30:
        return ".safetensors"
    first = head.split(b"\n", 1)[0]
    return ".tsv" if b"\t" in first and b"," not in first else ".csv"


def _torch_zip(head: bytes) -> bool:
    """Whether a zip's first member (its name: 2 bytes of length at offset 26, the name at 30) is a torch
    file's ``<name>/data.pkl`` rather than an ``.npz`` archive's ``<key>.npy``."""
    name = head[30:30 + int.from_bytes(head[26:28], "little")]
    return name.endswith(b"/data.pkl")


def split_override(path: str) -> tuple[str | None, str]:
    """``("." + FORMAT, rest)`` for ``FORMAT@rest`` when FORMAT is a known format (``csv``, ``npy``,
    ``csv.gz``, ...) and no file has the whole name; else ``(None, path)``.

    >>> split_override("csv@/dev/stdin"), split_override("notes@home.csv")
    (('.csv', '/dev/stdin'), (None, 'notes@home.csv'))
    """
    name, at, rest = path.partition(OVERRIDE)
    key = "." + name.lower()
    if at and rest and (key in READERS or key in FORMAT_NAMES) and not os.path.lexists(path):
        return key, rest
    return None, path


def suffix_of(path: str) -> str | None:
    """The longest registered suffix ``path`` ends with (``.csv.gz`` before ``.gz``), or None; an HTTP(S) URL's
    query is not part of its name (``https://host/p.npy?sig=...``)."""
    lower = path.lower().partition("?")[0] if is_http(path) else path.lower()
    found = [suffix for suffix in READERS if lower.endswith(suffix)]
    return max(found, key=len) if found else None


def open_file(path: str, store: Store | None = None) -> Parsed:
    """``path`` parsed by the reader of its override (``csv@...``), else of its suffix, else of the format its
    first bytes name (:func:`sniff`). A stream that cannot be read twice (a pipe) is spooled first
    (:func:`losscli.io.compressed.spool`). A URL is read through ``store`` (the caller's storage options)."""
    key, target = split_override(path)
    if store is not None and is_url(target):
        target = store.url(target)
    key = key or suffix_of(path)
    if key is None and not unnamed(path):
        known = ", ".join(_PLAIN[:-1]) + f" or {_PLAIN[-1]}"
        got = os.path.splitext(path)[1].lower() or "a name without a suffix"
        raise InputError(f"expected a {known} file (or - for CSV on stdin), but got {got}")
    release = None
    if not _seekable(target):
        from .compressed import spool

        target, release = spool(target)
    try:
        parsed = READERS[key or sniff(_head(target))](target)  # every sniffed or overriding key has a reader
    except BaseException:
        if release is not None:
            release()
        raise
    if release is not None:
        from .compressed import keep

        keep(parsed, release)
    return parsed


def unnamed(path: str) -> bool:
    """Whether ``path`` is read by the format its first bytes name: it exists and is a pipe, a terminal or a
    socket, or its name has no suffix at all (``/dev/stdin``, ``/dev/fd/63``, ``data``). A file with a suffix
    that no reader has (``p.txt``) is refused: ``csv@p.txt`` reads it as CSV. A URL is sniffed when its name has no
    suffix (``s3://bucket/preds``)."""
    if is_url(path):
        name = path.partition("?")[0] if is_http(path) else path
        return not os.path.splitext(name.rstrip("/").rsplit("/", 1)[-1])[1]
    return os.path.exists(path) and (not _seekable(path) or not os.path.splitext(os.path.basename(path))[1])


def _seekable(path: str) -> bool:
    """Whether readers may open ``path`` again, seek and map it: not a pipe, a terminal or a socket."""
    try:
        mode = os.stat(path).st_mode
        return not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode))
    except OSError:
        return True  # missing or unreadable: the reader says which


def _head(path: str) -> bytes:
    from .files import open_binary

    with open_binary(path, "a file") as f:
        return f.read(HEAD_BYTES)


def _inner_head(path: str, codec: str, what: str) -> bytes:
    """The first decompressed bytes of ``path`` (up to :data:`HEAD_BYTES`), to sniff what the stream holds."""
    from .compressed import decompressing, read_checked
    from .files import open_binary

    with open_binary(path, what) as raw, decompressing(raw, codec) as f:
        return read_checked(f, HEAD_BYTES, codec, what)
