"""The one writer: every file losscli writes (``--output``, ``--grad``, reports, baselines, plots) goes through here.

A file is written whole or not at all: into a temporary file in the target's directory, flushed to disk and
renamed over the target only when everything succeeded, so an error, an interrupt or a full disk leaves the
old file (if any) untouched and no debris; of two runs writing one path, the last complete one wins, whole.
A target is never one of the run's inputs, nor another target of the same run (:func:`check_targets`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import numpy as np

from ..errors import InputError
from .cells import array_csv, csv_header, csv_rows
from .summary import Summary

ARRAY_SUFFIXES = (".npy", ".csv", ".parquet")


def check_targets(targets: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
                  inputs: Iterable[str]) -> None:
    """Before any work: every target (option -> path, or (option, path) pairs where an option writes several
    files) names a file that is not an input and not another target (compared as resolved paths, and as files
    where they exist: symlinks, ``./``, hard links)."""
    seen: list[tuple[str, str]] = [("input", path) for path in inputs if path and path != "-"]
    for option, path in (targets.items() if isinstance(targets, Mapping) else targets):
        if not path:
            continue
        for other, earlier in seen:
            if _same(path, earlier):
                what = "one of the inputs" if other == "input" else f"the file of {other}"
                raise InputError(f"{option} ({path}): expected a file to write, but got {what} ({earlier}); "
                                 "losscli never writes over its inputs")
        seen.append((option, path))


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def check_array_path(path: str, option: str) -> None:
    if not path.lower().endswith(ARRAY_SUFFIXES):
        raise InputError(f"{option} ({path}): expected a .npy, .csv or .parquet file name, but got another extension")
    if _is_parquet(path):
        from ..io.columnar import INSTALL

        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise InputError(f"{option} ({path}): expected pyarrow to write a .parquet file, but it is not "
                             f"installed: {INSTALL}") from None


@contextlib.contextmanager
def _unwritable(path: str, option: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise InputError(f"{option} ({path}): expected a writable path, but got "
                         f"'{exc.strerror or exc}'") from None


class _Staged:
    """A temporary file beside ``path`` that becomes ``path`` on :meth:`commit`, or vanishes on :meth:`discard`.

    Its name is chosen before the file is made (:meth:`create`): an interrupt can land anywhere, between the
    file's creation and the stage holding its descriptor too, and whoever holds the stage still removes it."""

    def __init__(self, path: str, suffix: str = ".tmp") -> None:
        folder, self.name = os.path.split(os.path.abspath(path))
        self.path, self.suffix, self.file = path, suffix, None
        self.temp = self._pick(folder)

    def _pick(self, folder: str) -> str:
        return os.path.join(folder, f".{self.name}.{os.urandom(6).hex()}{self.suffix}")

    def create(self) -> IO[bytes]:
        """Make the file (never one that exists) with the target's permissions, open for writing."""
        while True:
            try:
                fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                self.temp = self._pick(os.path.dirname(self.temp))
        self.file = os.fdopen(fd, "w+b")
        os.fchmod(fd, _mode(self.path))
        return self.file

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


def _write_behind(fd: int, position: int, size: int) -> None:
    """Ask the kernel to write what was written before ``position`` (the last ``size`` bytes) to disk now, and to
    drop those pages from its cache once written (Linux starts writeback of dirty pages on POSIX_FADV_DONTNEED):
    the commit's fsync then waits for the last chunk only, not for a whole stream's dirty pages at once, and a
    long output does not crowd the page cache (or stall in the kernel's dirty-page throttling)."""
    if position > size and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, position - size, size, os.POSIX_FADV_DONTNEED)


def _mode(path: str) -> int:
    """The target's permissions if it exists, else what a new file gets under the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def staged(path: str, option: str) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: in place only when the block ends without an error."""
    stage = _Staged(path)
    try:
        with _unwritable(path, option):
            yield stage.create()
            stage.commit()
    except BaseException:
        stage.discard()
        raise


def write_text(path: str, text: str, option: str) -> None:
    """A text file (a report, a baseline), whole or not at all."""
    write_bytes(path, text.encode("utf-8"), option)


def write_bytes(path: str, data: bytes, option: str) -> None:
    """A file of these bytes (a plot), whole or not at all."""
    with staged(path, option) as f:
        f.write(data)


def check_folder(path: str, option: str) -> None:
    """Before any work: ``path`` is a folder, or nothing yet (:func:`make_folder` makes it)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{option} ({path}): expected a folder to write into, but got a file")


def make_folder(path: str, option: str) -> None:
    """The folder ``path`` and those above it, where missing (a folder of plots)."""
    check_folder(path, option)
    with _unwritable(path, option):
        os.makedirs(path, exist_ok=True)


def _is_parquet(path: str) -> bool:
    return path.lower().endswith(".parquet")


def _parquet_table(values: np.ndarray, start: int = 0, ndim: int | None = None) -> Any:
    """``values`` (rows ``start``.. of an array of ``ndim`` dimensions) as a pyarrow Table in the CSV output's
    layout: int64 index columns ``i0``, ``i1``, ... (none for a single number), then ``value``."""
    from ..io.columnar import pyarrow

    pa = pyarrow()
    ndim = values.ndim if ndim is None else ndim
    index = np.indices(values.shape, dtype=np.int64).reshape(ndim, -1) if ndim else np.empty((0, 1), np.int64)
    columns = {f"i{d}": index[d] + (start if d == 0 else 0) for d in range(ndim)}
    columns["value"] = np.ascontiguousarray(values).reshape(-1)
    return pa.table(columns)


def _parquet_writer(file: IO[bytes], table: Any) -> Any:
    """A ParquetWriter of ``table``'s schema onto ``file`` (uncompressed: the values are floats)."""
    from ..io.columnar import pyarrow

    return pyarrow().parquet.ParquetWriter(file, table.schema, compression="none")


def save_array(array: np.ndarray, path: str, option: str) -> None:
    """An array (a value, per-sample values, a gradient) as ``.npy``, or as ``.csv`` or ``.parquet`` (index
    columns, then value)."""
    check_array_path(path, option)
    table = _parquet_table(np.asarray(array)) if _is_parquet(path) else None
    with staged(path, option) as f:
        if table is not None:
            with _parquet_writer(f, table) as writer:
                writer.write_table(table)
        elif path.lower().endswith(".npy"):
            np.save(f, array)
        else:
            f.write((array_csv(array) + "\n").encode("utf-8"))


class ArrayFile:
    """A :class:`~losscli.engine.sinks.Sink` that streams a ``none`` loss into ``.npy`` (rows written with
    ``pwrite``, so no page stays mapped), ``.csv`` (rows in order) or ``.parquet`` (a row group per chunk, in
    order, through ``pyarrow.parquet.ParquetWriter``); for the last two the values are also kept in a temporary
    ``.npy`` beside it that the result maps. Renamed into place when the engine closes it. ``summary``: the
    :class:`~losscli.edge.summary.Summary` of every value written, so that showing it never reads the file."""

    def __init__(self, path: str, option: str = "--output") -> None:
        check_array_path(path, option)
        self.path, self.option = path, option
        self.csv = path.lower().endswith(".csv")
        self.parquet = _is_parquet(path)
        self.stages: list[_Staged] = []
        self.writer: Any = None

    def open(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        with _unwritable(self.path, self.option):
            self.values = self._stage(".npy")
            if self.csv or self.parquet:
                self.text = self._stage(".tmp")
            if self.csv:
                self.text.file.write((csv_header(len(shape)) + "\n").encode("utf-8"))
            header = np.lib.format.open_memmap(self.values.temp, mode="w+", dtype=dtype, shape=shape)
            self.dtype, self.offset, self.row_bytes = dtype, header.offset, math.prod(shape[1:]) * dtype.itemsize
            self.ndim = len(shape)
            del header
            self.summary = Summary(dtype)

    def _stage(self, suffix: str) -> _Staged:
        """A stage, held (for :meth:`abandon`) before its file exists."""
        stage = _Staged(self.path, suffix)
        self.stages.append(stage)
        stage.create()
        return stage

    def write(self, start: int, values: np.ndarray) -> None:
        self.summary.add(values)
        data = memoryview(np.ascontiguousarray(values, self.dtype).reshape(-1).view(np.uint8))
        position = self.offset + start * self.row_bytes
        with _unwritable(self.path, self.option):
            fd = self.values.file.fileno()
            _write_behind(fd, position, data.nbytes)  # the chunk before this one's: already on its way to disk
            while data.nbytes:
                written = os.pwrite(fd, data, position)
                data, position = data[written:], position + written
            if self.csv:
                self.text.file.write("".join(line + "\n" for line in csv_rows(values, start)).encode("utf-8"))
            elif self.parquet:
                self._write_parquet(start, values)

    def _write_parquet(self, start: int, values: np.ndarray) -> None:
        table = _parquet_table(np.asarray(values, self.dtype), start, self.ndim)
        if self.writer is None:
            self.writer = _parquet_writer(self.text.file, table)
        self.writer.write_table(table)

    def close(self) -> np.ndarray:
        try:
            with _unwritable(self.path, self.option):
                if not (self.csv or self.parquet):
                    self.values.commit()
                    return np.load(self.path, mmap_mode="r")
                if self.parquet:
                    self._close_parquet()
                self.text.commit()
                mapped = np.load(self.values.temp, mmap_mode="r")
                self.values.discard()  # the mapping keeps the data until the result is gone
                return mapped
        except BaseException:
            self.abandon()
            raise

    def _close_parquet(self) -> None:
        """Writes the footer (and, for a loss of no rows, the file of no row group)."""
        if self.writer is None:
            empty = np.empty((0,) * max(self.ndim, 1), self.dtype)
            self.writer = _parquet_writer(self.text.file, _parquet_table(empty, 0, self.ndim))
        writer, self.writer = self.writer, None
        writer.close()

    def abandon(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        for stage in self.stages:
            stage.discard()
