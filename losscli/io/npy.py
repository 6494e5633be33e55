"""``.npy`` (memory-mapped, read-only) and ``.npz`` files. Never unpickles anything."""

from __future__ import annotations

import math
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from ..errors import InputError
from .files import open_binary, pick, pread_into, size_of
from .remote import is_url

# deflate's largest expansion (a run of 258 bytes from a 2-bit code, about 1032:1); an archive's member
# that claims more bytes than its compressed size allows is not read
DEFLATE_RATIO = 1032
# a local .npy of at most this many bytes of data is read into memory when first needed, not memory-mapped
# (mapping costs an import and more system calls than reading a small file does)
READ_BYTES = 1 << 20
_KIND_NAMES = {"c": "complex numbers", "U": "strings", "S": "bytes", "V": "records",
               "M": "datetimes", "m": "timedeltas"}


def read_header(f: BinaryIO, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, refusing corrupt headers and dtypes losscli cannot use."""
    shape, _, dtype = _header(f, what)
    return shape, dtype


def _header(f: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype, checked as :func:`read_header` says."""
    try:
        version = npy_format.read_magic(f)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except InputError:  # a remote file that could not be read: its own line
        raise
    except Exception:  # on damaged bytes numpy's parser raises ValueError, EOFError, tokenize.TokenError...
        raise InputError(f"expected {what}, but got bytes without a valid .npy header "
                         "(the file is corrupt or not a .npy file)") from None
    if dtype.hasobject:
        raise InputError("expected numbers or booleans, but got Python objects (dtype object), "
                         "which would need pickle to load")
    if not (dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8)):
        kind = _KIND_NAMES.get(dtype.kind)
        raise InputError("expected numbers or booleans (float16/32/64, int, uint, bool), but got dtype "
                         f"{dtype}" + (f" ({kind})" if kind else ""))
    return shape, fortran, dtype


class NpyFile:
    """One array, memory-mapped read-only (``array``), whose rows can also be read into memory of their own
    (``read``): chunks read that way leave nothing mapped behind, so a stream's memory stays a chunk's."""

    one_array = "a .npy file"  # it takes no selector: Loader refuses one, naming the formats that take them

    def __init__(self, path: str) -> None:
        with open_binary(path, "a .npy file") as f:
            shape, fortran, dtype = _header(f, "a .npy file")
            self.path, self.shape, self.dtype, self.offset = path, shape, dtype, f.tell()
            self.contiguous_rows, self.fortran = not fortran or len(shape) <= 1, fortran
            have = size_of(f) - f.tell()
        need = math.prod(shape) * dtype.itemsize  # Python ints: a header may claim more than int64 holds
        if have < need:
            raise InputError(f"expected {need} bytes of {dtype} data for shape {shape}, "
                             f"but got {have} (the file is truncated)")
        self._array = None if is_url(path) or need <= READ_BYTES else self._map(path)

    @staticmethod
    def _map(path: str) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"expected a readable .npy file, but numpy could not map it: {e}") from None

    @property
    def array(self) -> np.ndarray:
        """The whole array: memory-mapped, or (a remote or small file) read once into memory."""
        if self._array is None:
            data = np.empty(math.prod(self.shape) * self.dtype.itemsize, np.uint8)
            pread_into(self.path, memoryview(data), self.offset)
            self._array = np.ndarray(self.shape, self.dtype, data, order="F" if self.fortran else "C")
            self._array.flags.writeable = False  # as a mapped file's: the inputs are never written to
        return self._array

    def select(self, selector: str | None) -> NpyFile:
        if selector is not None:
            raise InputError(f"expected no selector on {self.one_array}, but got ':{selector}'")
        return self

    def whole(self) -> np.ndarray:
        return self.array

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` along axis 0, read (``pread``) into a new array."""
        if not self.contiguous_rows:  # Fortran order: a row is not one run of bytes
            return np.array(self.array[start:stop])
        out = np.empty((stop - start,) + self.shape[1:], self.dtype)
        pread_into(self.path, memoryview(out.reshape(-1).view(np.uint8)), self.offset + start * self.row_bytes)
        return out

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


class NpzFile:
    """Named arrays in a zip archive, each read (decompressed) the first time it is asked for."""

    def __init__(self, path: str) -> None:
        import zipfile  # 20+ ms to import; only .npz needs it

        self.path = path
        with open_binary(path, "a .npz file") as f:
            try:
                with zipfile.ZipFile(f) as z:
                    names = z.namelist()
            except InputError:
                raise
            except Exception:  # on damaged bytes: BadZipFile, EOFError, NotImplementedError...
                raise InputError("expected a .npz file (a zip archive), but the file is corrupt "
                                 "or not a zip archive") from None
        if not names:
            raise InputError("expected a .npz file holding arrays, but the archive is empty")
        self.members = {name.removesuffix(".npy"): name for name in names}
        self.arrays: dict[str, np.ndarray] = {}

    def select(self, key: str | None) -> np.ndarray:
        key = pick(list(self.members), key, self.path, asked="a key", items="arrays", known="the keys")
        if key not in self.arrays:
            self.arrays[key] = self._read(key)
        return self.arrays[key]

    def _read(self, key: str) -> np.ndarray:
        import zipfile

        what = f"array {key!r} of the .npz file"
        try:
            with open_binary(self.path, "a .npz file") as raw, zipfile.ZipFile(raw) as z, \
                    z.open(self.members[key]) as f:
                shape, dtype = read_header(f, what)
                _check_sizes(z.getinfo(self.members[key]), f.tell(), math.prod(shape) * dtype.itemsize,
                             size_of(raw), what)
                f.seek(0)
                return npy_format.read_array(f, allow_pickle=False)
        except InputError:
            raise
        except Exception as e:  # on damaged bytes: BadZipFile, zlib.error, EOFError, NotImplementedError...
            raise InputError(f"expected a readable {what}, but it is corrupt: {e}") from None


def _check_sizes(info: Any, header: int, data: int, archive: int, what: str) -> None:
    """Before anything is allocated: the bytes a member's .npy header claims (``header`` + ``data``) against the
    member's size in the archive's directory, and that size against what its compressed bytes can hold (a
    forged entry, or a zip bomb, claims more) and the archive's own size."""
    import zipfile

    ratio = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: DEFLATE_RATIO}.get(info.compress_type)
    if info.compress_size > archive:
        why = f"its entry claims {info.compress_size} compressed bytes, more than the archive's {archive}"
    elif ratio is not None and info.file_size > max(info.compress_size, 1) * ratio:
        why = (f"its entry claims {info.file_size} bytes, more than {ratio}x its {info.compress_size} compressed "
               "bytes (a forged entry or a zip bomb)")
    elif header + data > info.file_size:
        why = f"its header declares {data} bytes of data, but the member holds {info.file_size - header}"
    else:
        return
    raise InputError(f"expected a readable {what}, but it is corrupt: {why}")
