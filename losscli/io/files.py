"""Opening and reading files, with OS and decoding errors turned into one-line ``InputError``s."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from ..errors import InputError


def open_binary(path: str, what: str) -> BinaryIO:
    """Open ``path`` for reading bytes; ``what`` ("a .npy file") goes into the messages.

    Refuses a missing file, a directory, an unreadable file and an empty one (0 bytes); other
    ``OSError``s are left to ``Loader.load``."""
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


def read_text(path: str, what: str) -> str:
    """The whole of a UTF-8 text file (a byte-order mark is dropped)."""
    with open_binary(path, what) as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start]
        raise InputError(f"expected {what} in UTF-8, but got byte 0x{bad:02x} at offset {e.start}") from None
