"""Tensor files: ``.safetensors`` (parsed here, without the safetensors package: rows read by ``pread``) and
``.pt``/``.pth`` (``torch.load(weights_only=True)`` only: never an arbitrary unpickle; memory-mapped where the
file allows it). No math.

bfloat16 tensors are read as their 16 bits and upcast exactly to float32 (the bits shifted left by 16): numpy
has no bfloat16. Booleans are stored one byte each and read as ``byte != 0``."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..errors import InputError
from .files import open_binary, pick, pread_into, size_of
from .remote import is_url

# the safetensors library's own limit on the JSON header (100 MB); a header claiming more is not read
HEADER_LIMIT = 100_000_000
# safetensors dtype -> the stored little-endian numpy dtype; BF16 and BOOL are converted when read
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "u1"}
_ACCEPTED = ", ".join(DTYPES)


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values given as their uint16 bits, as float32 (exact: bfloat16 is float32's upper half).

    >>> bf16_to_float32(np.array([0x3F80, 0xC040, 0x7F80], dtype=np.uint16))
    array([ 1., -3., inf], dtype=float32)
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _convert(raw: np.ndarray, stored: str) -> np.ndarray:
    if stored == "BF16":
        return bf16_to_float32(raw)
    if stored == "BOOL":
        return raw != 0
    return raw.astype(raw.dtype.newbyteorder("="), copy=False)


class TensorRows:
    """One tensor of a .safetensors file as :class:`~losscli.io.Rows`: shape and dtype from the header, rows
    ``[start, stop)`` read (``pread``) into memory of their own; ``whole()`` maps the file where no conversion
    is needed (bfloat16 and booleans are converted, in memory)."""

    def __init__(self, path: str, stored: str, shape: tuple[int, ...], offset: int) -> None:
        self.path, self.stored, self.shape, self.offset = path, stored, shape, offset
        self.raw = np.dtype(DTYPES[stored])
        self.stored_dtype = "bfloat16" if stored == "BF16" else None  # what the file holds, when it is not dtype
        self.dtype = np.dtype(np.float32 if stored == "BF16" else bool if stored == "BOOL" else self.raw.str[1:])

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.raw.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` along axis 0 (a 0-d tensor: the whole of it)."""
        if not self.shape:
            return self.whole()
        raw = np.empty((stop - start,) + self.shape[1:], self.raw)
        _pread_into(self.path, raw, self.offset + start * self.row_bytes)
        return _convert(raw, self.stored)

    def whole(self) -> np.ndarray:
        if self.stored in ("BF16", "BOOL") or math.prod(self.shape) == 0 or is_url(self.path):
            raw = np.empty(self.shape, self.raw)
            _pread_into(self.path, raw, self.offset)
            return _convert(raw, self.stored)
        return _convert(np.memmap(self.path, self.raw, "r", self.offset, self.shape), self.stored)


def _pread_into(path: str, out: np.ndarray, position: int) -> None:
    pread_into(path, memoryview(out.reshape(-1).view(np.uint8)), position)


class SafetensorsFile:
    """The tensors of a .safetensors file: an 8-byte little-endian header length, a JSON header
    ``{name: {dtype, shape, data_offsets}}`` (and an optional ``__metadata__``), then the data. Every entry is
    checked against the file's size when the file is opened, before anything is allocated."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open_binary(path, "a .safetensors file") as f:
            size = size_of(f)
            header = _read_header(f, size)
        data_start, data_size = 8 + header[0], size - 8 - header[0]
        self.tensors = {name: _entry(name, value, data_size) for name, value in header[1].items()
                        if name != "__metadata__"}
        if not self.tensors:
            raise InputError("expected a .safetensors file holding tensors, but its header names none")
        _check_overlaps(self.tensors)
        self.rows = {name: TensorRows(path, stored, shape, data_start + begin)
                     for name, (stored, shape, begin, _) in self.tensors.items()}

    def select(self, name: str | None) -> TensorRows:
        name = pick(list(self.rows), name, self.path, asked="a tensor name", items="tensors", known="the tensors")
        return self.rows[name]


def _read_header(f: Any, size: int) -> tuple[int, dict]:
    """The header's length and its JSON object, refused when it cannot be one."""
    if size < 8:
        raise InputError(f"expected a .safetensors file (an 8-byte header length first), but got {size} bytes")
    length = int.from_bytes(f.read(8), "little")
    if length > size - 8 or length > HEADER_LIMIT:
        raise InputError(f"expected a .safetensors header that fits in the file ({size - 8} bytes after the "
                         f"length, at most {HEADER_LIMIT}), but its length says {length} bytes")
    try:
        header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError("expected a .safetensors header of JSON text, but got bytes that are not JSON "
                         "(the file is corrupt or not a .safetensors file)") from None
    if not isinstance(header, dict):
        raise InputError(f"expected a .safetensors header that is a JSON object, but got a {type(header).__name__}")
    return length, header


def _entry(name: str, value: Any, data_size: int) -> tuple[str, tuple[int, ...], int, int]:
    """A header entry as (dtype, shape, begin, end), its sizes checked against each other and the file."""
    if not isinstance(value, dict) or not {"dtype", "shape", "data_offsets"} <= value.keys():
        raise InputError(f"expected tensor {name!r} to have a dtype, a shape and data_offsets in the header, "
                         f"but got {json.dumps(value)[:80]}")
    stored, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if stored not in DTYPES:
        raise InputError(f"expected tensor {name!r} of a dtype losscli reads ({_ACCEPTED}), but got {stored}")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise InputError(f"expected tensor {name!r} to have a shape of non-negative integers, but got {shape}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise InputError(f"expected tensor {name!r} to have data_offsets [begin, end] with 0 <= begin <= end, "
                         f"but got {offsets}")
    begin, end = offsets
    need = math.prod(shape) * np.dtype(DTYPES[stored]).itemsize  # Python ints: a shape may claim anything
    if end - begin != need:
        raise InputError(f"expected tensor {name!r} ({stored}, shape {tuple(shape)}) to take {need} bytes, "
                         f"but its data_offsets {offsets} span {end - begin}")
    if end > data_size:
        raise InputError(f"expected tensor {name!r}'s data_offsets {offsets} inside the file's {data_size} bytes "
                         "of data, but they end beyond it (the file is truncated or corrupt)")
    return stored, tuple(shape), begin, end


def _check_overlaps(tensors: dict[str, tuple[str, tuple[int, ...], int, int]]) -> None:
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in tensors.items() if end > begin)
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise InputError(f"expected tensors whose data do not overlap, but {second!r} begins at {begin}, "
                             f"inside {first!r} (which ends at {end})")


# torch dtypes losscli reads from .pt files (bfloat16 is upcast to float32, as in .safetensors files)
_TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6 is a zip archive; the legacy format is a pickle


class PtRows:
    """One tensor of a .pt file as :class:`~losscli.io.Rows`: rows ``[start, stop)`` sliced from the tensor and
    converted into memory of their own, so that a memory-mapped tensor (:class:`PtFile`) is read a chunk at a
    time; ``whole()`` converts it all (a view of the map where no conversion is needed), read-only."""

    def __init__(self, tensor: Any, name: str) -> None:
        self.tensor = tensor.detach()
        self.shape: tuple[int, ...] = tuple(tensor.shape)
        self.stored_dtype = name if name == "bfloat16" else None  # what the file holds, when it is not dtype
        self.dtype = np.dtype(np.float32 if name == "bfloat16" else name)
        self._whole: np.ndarray | None = None

    def _numpy(self, tensor: Any) -> np.ndarray:
        return (tensor.float() if self.stored_dtype else tensor).contiguous().numpy()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` along axis 0 (a 0-d tensor: the whole of it)."""
        if not self.shape:
            return self.whole()
        rows = self._numpy(self.tensor[start:stop])
        return rows if self.stored_dtype else rows.copy()

    def whole(self) -> np.ndarray:
        if self._whole is None:
            self._whole = self._numpy(self.tensor)
            self._whole.flags.writeable = False
        return self._whole


class PtFile:
    """A ``torch.save`` file read with ``torch.load(weights_only=True, map_location="cpu")``, memory-mapped
    (``mmap=True``) when it is in torch's zip format (the default since torch 1.6) on a local disk: a tensor, or
    dicts, lists and tuples of tensors, nested, whose entries a selector names by a path of keys and indices
    joined by dots (``outputs.logits``, ``0.logits``; a key that has a dot itself is named whole: the exact key
    wins). A legacy (non-zip) file or a URL is read whole. torch is imported here only."""

    def __init__(self, path: str) -> None:
        try:
            import torch
        except ImportError:
            raise InputError("expected torch, to read a .pt/.pth file, but it is not installed: "
                             "pip install 'losscli[torch]'") from None
        with open_binary(path, "a .pt/.pth file") as f:  # the missing, empty and unreadable files' own messages
            zipped = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
        self.path, self.torch = path, torch
        self.content = _torch_load(torch, path, mmap=zipped and not is_url(path))
        if not isinstance(self.content, (torch.Tensor, dict, list, tuple)):
            raise InputError("expected a tensor, or a dict, list or tuple of tensors, but the file holds a "
                             f"{type(self.content).__name__}")

    def select(self, key: str | None) -> PtRows:
        content = self.content
        if isinstance(content, self.torch.Tensor):
            if key is not None:
                raise InputError(f"expected no key (the file holds one tensor), but got ':{key}'")
            return self._rows(content, None)
        if key is None:
            keys = list(_entries(content))
            if len(keys) != 1:
                what = "key" if isinstance(content, dict) else "index"
                listed = ", ".join(map(repr, keys)) if keys else "none"
                raise InputError(f"expected a {what} to pick one of its {len(keys)} entries ({listed}), "
                                 f"as in {self.path}:{keys[0] if keys else 0}, but got none")
            key = keys[0]
        return self._rows(*_find(content, key))

    def _rows(self, value: Any, found: str | None) -> PtRows:
        """The tensor ``value`` (at the path ``found``; None: the file's one tensor) as rows, or one line."""
        torch, what = self.torch, "the tensor" if found is None else repr(found)
        if isinstance(value, (dict, list, tuple)):
            keys = list(_entries(value))
            inside = f" ({', '.join(map(repr, keys[:8]))}{', ...' if len(keys) > 8 else ''})" if keys else ""
            example = f"; name an entry inside it, as in {self.path}:{found}.{keys[0]}" if keys else ""
            raise InputError(f"expected {what} to be a tensor, but got a {type(value).__name__}{inside}{example}")
        if not isinstance(value, torch.Tensor):
            raise InputError(f"expected {what} to be a tensor, but got a {type(value).__name__}")
        name = str(value.dtype).removeprefix("torch.")
        if name not in _TORCH_DTYPES or value.layout != torch.strided:
            raise InputError(f"expected {what} to be a dense tensor of {', '.join(_TORCH_DTYPES)}, but got "
                             f"{name}" + ("" if value.layout == torch.strided else f" ({value.layout})"))
        return PtRows(value, name)


def _entries(container: dict | list | tuple) -> dict[str, Any]:
    """A dict's entries by their keys as text, a list's or tuple's by their indices."""
    if isinstance(container, dict):
        return {str(k): v for k, v in container.items()}
    return {str(i): v for i, v in enumerate(container)}


def _find(container: dict | list | tuple, key: str, where: str = "") -> tuple[Any, str]:
    """The entry that the path ``key`` names in ``container``, and its whole path: the entry whose key is all
    of ``key`` if there is one, else (the longest first) a key before a dot whose entry is a container, with
    the rest of the path looked up inside it."""
    entries = _entries(container)
    if key in entries:
        return entries[key], where + key
    dots = [i for i, c in enumerate(key) if c == "."]
    for cut in reversed(dots):
        head = key[:cut]
        if isinstance(entries.get(head), (dict, list, tuple)):
            return _find(entries[head], key[cut + 1:], f"{where}{head}.")
    listed = ", ".join(map(repr, entries)) if entries else "none"
    inside = f" in {where[:-1]!r}" if where else ""
    raise InputError(f"expected one of the keys {listed}{inside}, but got {key!r}")


def _torch_load(torch: Any, path: str, mmap: bool) -> Any:
    """``torch.load(weights_only=True)`` of ``path``, its tensors memory-mapped (``mmap``: a local zip-format
    file) or read whole; a refusal or damaged bytes as one line."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says what matters
            warnings.simplefilter("ignore", UserWarning)
            if is_url(path):  # read whole, through ranged requests
                with open_binary(path, "a .pt/.pth file") as f:
                    return torch.load(f, weights_only=True, map_location="cpu")
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
    except InputError:  # a remote file that could not be read: its own line
        raise
    except pickle.UnpicklingError as e:
        raise InputError("expected tensors that torch.load(weights_only=True) reads, but its unpickler refuses "
                         f"the file ({_first_reason(str(e))}); losscli never unpickles arbitrary objects") from None
    except Exception as e:  # on damaged bytes: RuntimeError, KeyError (a bad magic number), EOFError, ...
        raise InputError(f"expected a file that torch.load reads, but it is corrupt or not a torch file "
                         f"({type(e).__name__}: {_first_reason(str(e))})") from None


def _first_reason(text: str) -> str:
    """The reason in torch's multi-paragraph weights_only message: ``Unsupported global: GLOBAL io.open was not
    an allowed global by default``."""
    after = text.partition("WeightsUnpickler error:")[2] or text
    line = next((part.strip() for part in after.splitlines() if part.strip()), "no reason given")
    return line.split(". ")[0].rstrip(".")[:160]
