"""Compressed text (gzip, bz2, xz from the standard library; zstd from ``compression.zstd`` on Python 3.14 and
later, else the ``backports.zstd`` package, the same module backported: the ``zstd`` extra), read through the
decompressor in pieces, and inputs that cannot be read twice (pipes, ``/dev/stdin``, process substitution)
spooled to a temporary file.

Memory stays bounded however far a stream inflates: the decompressor is asked for at most a piece at a
time, and a line (or a quoted cell) may not grow past :data:`MAX_LINE_BYTES` while the reader looks for its
end, so a gzip bomb is either read a piece at a time (rows of data) or refused with one line (one endless
line). Decompression errors (a corrupt or truncated stream) are one line naming the file's format. Each
decompressor is imported only when a file of its compression is read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any, BinaryIO

from ..errors import InputError

CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}  # suffix -> the compression's name in messages
ZSTD_INSTALL = "pip install 'losscli[zstd]'"
MAX_LINE_BYTES = 1 << 24  # 16 MiB: a longer line (or quoted cell) in decompressed or streamed text is refused
SPOOL_BYTES = 1 << 20  # a pipe is copied to its spool a MiB at a time


def decompressing(f: BinaryIO, codec: str) -> BinaryIO:
    """A file object giving the decompressed bytes of ``f``; its ``read(n)`` gives at most ``n`` bytes."""
    if codec == ".gz":
        import gzip

        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if codec == ".bz2":
        import bz2

        return bz2.BZ2File(f, mode="rb")  # type: ignore[return-value]
    if codec == ".zst":
        return zstd().ZstdFile(f, mode="rb")  # type: ignore[no-any-return]
    import lzma

    return lzma.LZMAFile(f, mode="rb")  # type: ignore[return-value]


def zstd() -> Any:
    """The zstd module: the standard library's ``compression.zstd`` (Python 3.14 and later), else
    ``backports.zstd`` (the same module, for older Pythons), else one line saying how to install it."""
    try:
        from compression import zstd as module  # type: ignore[import-not-found]
    except ImportError:
        try:
            from backports import zstd as module  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise InputError("expected backports.zstd (compression.zstd before Python 3.14), to read "
                             f"zstd-compressed text, but it is not installed: {ZSTD_INSTALL}") from None
    return module


def read_checked(f: BinaryIO, size: int, codec: str, what: str) -> bytes:
    """Up to ``size`` decompressed bytes of ``f``, with a corrupt or truncated stream as one line."""
    try:
        return f.read(size)
    except EOFError:
        raise InputError(f"expected {what}, but the {CODECS[codec]} stream is truncated (it ends before its "
                         "end-of-stream marker)") from None
    except _decoder_errors(codec) as e:
        if type(e) is OSError and e.errno is not None:  # a real read error: Loader names it
            raise
        detail = str(e).split(" (")[0].rstrip(".") or type(e).__name__
        raise InputError(f"expected {what}, but the {CODECS[codec]} stream is corrupt ({detail})") from None


def _decoder_errors(codec: str) -> tuple[type[Exception], ...]:
    """What each decompressor raises on bytes it cannot decode (bz2: a plain OSError without an errno)."""
    if codec == ".gz":
        import zlib

        return OSError, zlib.error  # gzip.BadGzipFile is an OSError
    if codec == ".bz2":
        return OSError, ValueError
    if codec == ".zst":
        return (zstd().ZstdError,)
    import lzma

    return (lzma.LZMAError,)


def too_long(what: str, where: str) -> InputError:
    """The refusal of a line (``where``) that goes on past :data:`MAX_LINE_BYTES` (an endless line: a bomb)."""
    return InputError(f"expected {what} of lines of at most {MAX_LINE_BYTES >> 20} MiB, but {where} goes on "
                      "past that")


def spool(path: str) -> tuple[str, Callable[[], None]]:
    """Copy the stream ``path`` (a pipe) to a temporary file, a MiB at a time; give a path that reads the copy
    and the function that releases it (:func:`keep` ties it to the parsed file).

    The copy is scratch, not an output (outputs go through ``edge/writer.py``): in the temporary folder
    (``TMPDIR``), never beside an input. On Linux it is unlinked from the start and read through
    ``/proc/self/fd/N``, so nothing is left behind even if the process is killed; elsewhere it is a named
    file, removed when released or at exit."""
    with open(path, "rb") as source:
        if source.isatty():
            raise InputError("expected a file or a pipe, but got a terminal (nothing is piped in)")
        if os.path.isdir("/proc/self/fd"):
            copy: Any = tempfile.TemporaryFile(prefix="losscli-stream-")
            name = f"/proc/self/fd/{copy.fileno()}"
        else:
            copy = tempfile.NamedTemporaryFile(prefix="losscli-stream-")
            name = copy.name
        try:
            shutil.copyfileobj(source, copy, SPOOL_BYTES)
            copy.flush()
        except BaseException:
            copy.close()
            raise
    return name, copy.close


def keep(owner: Any, release: Callable[[], None]) -> None:
    """Release the spool when ``owner`` (the parsed file reading it) is released, or at exit."""
    try:
        weakref.finalize(owner, release)
    except TypeError:  # an object that takes no weak reference
        import atexit

        atexit.register(release)
