"""Opening and reading files, with OS and decoding errors turned into one-line ``InputError``s."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..errors import InputError
from .remote import is_url


@contextmanager
def naming(role: str, spec: str) -> Iterator[None]:
    """Errors while loading or reading ``spec`` as one line that names the argument:
    ``input (results.csv:pred): ...``."""
    try:
        yield
    except InputError as e:
        raise InputError(f"{role} ({spec}): {e}") from e
    except OSError as e:  # the common ones get their own words in open_binary
        raise InputError(f"{role} ({spec}): cannot read the file: {e.strerror or e}") from e


def open_binary(path: str, what: str) -> BinaryIO:
    """Open ``path`` for reading bytes; ``what`` ("a .npy file") goes into the messages.

    Refuses a missing file, a directory, an unreadable file and an empty one (0 bytes); other
    ``OSError``s are left to ``Loader.load``. A URL (``s3://...``, ``https://...``) is opened by
    :func:`losscli.io.remote.open_url`: a buffered file whose reads are ranged requests."""
    if is_url(path):
        from .remote import open_url

        return open_url(path, what)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"expected {what}, but there is no such file") from None
    except IsADirectoryError:
        raise InputError(f"expected {what}, but got a directory") from None
    except PermissionError:
        raise InputError("expected a readable file, but permission was denied") from None
    st = os.fstat(f.fileno())
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        f.close()
        raise InputError(f"expected {what}, but the file is empty (0 bytes)")
    return f


def size_of(f: BinaryIO) -> int:
    """The size in bytes of an open file (local or remote), its position left where it was."""
    position = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(position)
    return end


def size_of_path(path: str, what: str) -> int:
    """The size in bytes of the file or object at ``path``."""
    if is_url(path):
        from .remote import size

        return size(path, what)
    return os.path.getsize(path)


def pread_into(path: str, view: memoryview, position: int) -> None:
    """Fill ``view`` with the bytes of ``path`` from ``position`` on (``pread``; a URL: by ranged requests)."""
    if is_url(path):
        from .remote import read_rows

        return read_rows(path, view, position)
    with open(path, "rb", buffering=0) as f:
        while view.nbytes:
            got = os.preadv(f.fileno(), [view], position)
            if not got:
                raise InputError(f"{path}: expected {view.nbytes} more bytes, but the file ended "
                                 "(it changed while being read)")
            view, position = view[got:], position + got


def read_text(path: str, what: str) -> str:
    """The whole of a UTF-8 text file (a byte-order mark is dropped)."""
    with open_binary(path, what) as f:
        return _decode(f.read(), what, 0)


@contextmanager
def reading(path: str, what: str, codec: str | None = None) -> Iterator[Callable[[int], bytes]]:
    """``read(size)``: the bytes of ``path``, at most ``size`` at a time (all that is left for -1), through its
    decompressor when ``codec`` (``.gz``, ``.bz2``, ``.xz``, ``.zst``) says it is compressed, with a corrupt or
    truncated stream as one line (:func:`~losscli.io.compressed.read_checked`)."""
    with open_binary(path, what) as raw:
        if codec is None:
            yield raw.read
            return
        from .compressed import decompressing, read_checked

        with decompressing(raw, codec) as f:
            yield lambda size: read_checked(f, size, codec, what)


def read_pieces(path: str, what: str, size: int, codec: str | None = None) -> Iterator[str]:
    """A UTF-8 text file in pieces of about ``size`` bytes, each ending at a line end (the last one: at
    the end of the file), so that a reader holds one piece at a time. A byte-order mark is dropped;
    the first piece is read (and the file's refusals raised) on the first ``next()``.

    ``codec`` (``.gz``, ``.bz2``, ``.xz``): the file is compressed, and read through its decompressor a piece
    at a time; a line longer than :data:`~losscli.io.compressed.MAX_LINE_BYTES` is then refused, so that no
    stream, however far it inflates, is held in memory whole."""
    limit = None
    if codec is not None:
        from .compressed import MAX_LINE_BYTES as limit
    with reading(path, what, codec) as read:
        yield from _pieces(read, what, size, limit)


def _pieces(read: Callable[[int], bytes], what: str, size: int, limit: int | None) -> Iterator[str]:
    """The pieces of :func:`read_pieces` from ``read(size)``; ``limit``: the longest line let be held, if any."""
    offset, rest = 0, b""
    while data := read(size):
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut:
            yield _decode(data[:cut], what, offset)
            offset += cut
        rest = data[cut:]
        if limit is not None and len(rest) > limit:
            from .compressed import too_long

            raise too_long(what, f"the line at byte {offset} of the decompressed text")
    if rest:
        yield _decode(rest, what, offset)


def _decode(data: bytes, what: str, offset: int) -> str:
    """``data`` from ``offset`` bytes into the file as text; at offset 0 a byte-order mark is dropped."""
    if offset == 0 and data.startswith(codecs.BOM_UTF8):
        data, offset = data[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"expected {what} in UTF-8, but got byte 0x{data[e.start]:02x} at offset "
                         f"{offset + e.start}") from None


def pick(names: list[str], name: str | None, path: str, *, asked: str, items: str, known: str) -> str:
    """The one of ``names`` (an archive's arrays, a file's tensors) that a selector names, or the only one when
    it names none: ``expected a key to pick one of its 2 arrays ('a', 'b'), as in x.npz:a, but got none``."""
    listed = ", ".join(map(repr, names))
    if name is None:
        if len(names) > 1:
            raise InputError(f"expected {asked} to pick one of its {len(names)} {items} ({listed}), as in "
                             f"{path}:{names[0]}, but got none")
        return names[0]
    if name not in names:
        raise InputError(f"expected one of {known} {listed}, but got {name!r}")
    return name
