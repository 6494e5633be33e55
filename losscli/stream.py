"""The compute engine: a loss over its rows in chunks, merging the reduction's sums, in bounded memory.

A loss whose family streams (:meth:`~losscli.losses.base.Family.stream`) is computed in chunks of rows
along the loss's first axis. The files whose first axis is that axis are read chunk by chunk (``.npy`` files
and shards with ``pread``, so nothing stays mapped; CSV files of several pieces in order, a piece at a time:
:class:`~losscli.io.CsvRows`); the others (class weights, a weight that broadcasts, linear_weight) are shared
by every chunk. Each chunk goes through the family's ``prepare`` (every check,
with positions named in the whole array: ``Arg.offset``) and the numpy backend's formula, and its
:class:`~losscli.reduction.Partial` sums (float64) merge in row order, so the result is the same float64
accumulation whatever the chunk size. ``none`` is written chunk by chunk into ``--output`` when one is given.

The in-memory path is the same code with one chunk: the whole arrays, start 0. It is taken for small inputs
(:data:`STREAM_ELEMENTS`), for the torch backend, for ``--grad`` and ``--cross-check`` (they need the whole
batch), and for losses that do not stream: ctc (its samples are axis 1 of log_probs, and concatenated targets
have no row per sample) and any loss whose shape is 0-d.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np

from .backends import Backend, Computed, numpy_backend, runner
from .errors import InputError, ShapeError
from .io import ArrayRows, Loaded, Rows, Shards
from .losses.base import Arg, NonFinite
from .losses.base import Batch, LossSpec
from .reduction import Elements, Partial, Reduction, partial, selection, unreduced

# elements (of the widest file read in chunks) per chunk: inside L2, where numpy runs fastest
CHUNK_ELEMENTS = 1 << 18
# compute() streams a loss whose widest file holds more elements than this; below, one chunk is faster
STREAM_ELEMENTS = 1 << 21
# worker threads over chunks (numpy releases the GIL), for compute-bound losses only: those that get through
# fewer bytes of input a second than THREAD_BELOW (memory-bound ones lose to contention; see the README)
THREADS = 2
THREAD_BELOW = 1.5e9
# the torch backend holds every input in memory: above this many bytes of inputs, it says so
TORCH_WARN_BYTES = 1 << 30
PROGRESS_DELAY = 1.0  # seconds of work before a progress bar appears


class Accumulator(Protocol):
    """Something fed every chunk of a loss (the views: per-sample values, top K, histogram)."""

    def update(self, start: int, elements: Elements, select: np.ndarray | None) -> None:
        """``start``: the chunk's first row along the loss's first axis; ``elements``: its per-element values
        (arrays broadcastable to the chunk's loss shape; float32 for a float32 loss, which computes in float32,
        else float64); ``select``: the elements that count (``reduction.selection(valid, mask)``; None: all)."""


Progress = Callable[[int, int], None]  # (rows done, rows in all)


@dataclass(frozen=True)
class Source:
    """One argument of the loss: its rows, and the names messages use."""

    role: str
    rows: Rows
    label: str | None = None  # the file as the user wrote it
    number: bool = False  # a plain number (gaussian-nll's var)

    def arg(self) -> Arg:
        """The whole array."""
        return Arg(self.role, self.rows.whole(), self.label, self.number)

    def chunk(self, start: int, stop: int) -> Arg:
        """Rows ``[start, stop)``, whose messages name positions in the whole array."""
        return Arg(self.role, self.rows.read(start, stop), self.label, self.number, offset=start,
                   whole=tuple(self.rows.shape))


def source(role: str, value: Any) -> Source:
    """An argument of :func:`losscli.compute`: a ``losscli.io.Loaded`` (its rows are read on demand), an
    array, or a number."""
    if isinstance(value, Loaded):
        return Source(role, value.rows, value.spec)
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    return Source(role, ArrayRows(np.asarray(value)), number=number)


@dataclass(frozen=True)
class Plan:
    """How a loss streams: its rows (the loss's first axis), the files read in chunks, rows per chunk."""

    rows: int
    split: frozenset[str]
    chunk_rows: int

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each chunk; one empty chunk for a loss of no rows (its checks still run)."""
        return [(start, min(start + self.chunk_rows, self.rows)) for start in range(0, max(self.rows, 1),
                                                                                    self.chunk_rows)]


def plan(spec: LossSpec, sources: dict[str, Source], broadcast: bool, *, whole: bool,
         chunk_rows: int | None = None) -> Plan | None:
    """The chunks to compute ``spec`` in, or None for one chunk of the whole arrays (in memory).

    ``whole`` asks for one chunk. ``chunk_rows`` forces chunks of that many rows (tests); otherwise the loss
    streams when its widest file holds more than :data:`STREAM_ELEMENTS` elements, in chunks of about
    :data:`CHUNK_ELEMENTS` elements."""
    check_shards(sources)
    shapes = {name: tuple(s.rows.shape) for name, s in sources.items()}
    split = None if whole else spec.family.stream(spec, shapes, broadcast)
    if not split:
        return None
    rows = shapes[next(iter(split))][0]
    width = max(math.prod(shapes[name][1:]) for name in split) or 1
    if chunk_rows is None:
        if rows * width <= STREAM_ELEMENTS:
            return None
        chunk_rows = max(1, CHUNK_ELEMENTS // width)
    return Plan(rows, split, max(1, int(chunk_rows)))


def check_shards(sources: dict[str, Source]) -> None:
    """Sharded files must line up with the first sharded one: as many shards, and the same rows in each pair
    (shards are samples written together; a shard that differs means a missing or misordered one)."""
    sharded = [s for s in sources.values() if isinstance(s.rows, Shards)]
    for other in sharded[1:]:
        first, theirs, ours = sharded[0], sharded[0].rows.counts, other.rows.counts
        name = f"{other.role} ({other.label})" if other.label else other.role
        if len(ours) != len(theirs):
            raise ShapeError(f"{name}: expected shards that line up with {first.role}'s ({len(theirs)} shards), "
                             f"but got {len(ours)} shards")
        for (their_file, their_rows), (our_file, our_rows) in zip(theirs, ours):
            if our_rows != their_rows:
                raise ShapeError(f"{name}: expected shards that line up with {first.role}'s, but got {our_rows} "
                                 f"rows in {our_file} against {their_rows} in {their_file}")


class Outcome(NamedTuple):
    """What the engine hands back to :func:`losscli.compute`."""

    value: np.ndarray  # the loss's dtype; for a streamed none with an output: that file, mapped read-only
    grad: np.ndarray | None
    batch: Batch  # the first chunk's (the whole batch in memory)
    loss_shape: tuple[int, ...]  # the whole loss's
    selected: int  # elements that count
    warnings: list[str]


class _Chunk(NamedTuple):
    start: int
    batch: Batch
    arrays: dict[str, np.ndarray] | None  # as computed (float64 with a gradient), kept for the gradient
    elements: Elements  # for the gradient and the accumulators
    select: np.ndarray | None
    totals: Partial | None  # mean, sum, batchmean
    values: np.ndarray | None  # none: the chunk's loss, in the loss's dtype
    selected: int


def run(spec: LossSpec, sources: dict[str, Source], params: dict[str, Any], reduction: Reduction, *,
        chunks: Plan | None, backend: Backend = Backend.numpy, broadcast: bool = False,
        nan_policy: str = "propagate", grad: bool = False, output: str | None = None,
        accumulators: Sequence[Accumulator] = (),
        progress: Progress | None = None, check: Callable[[Batch], list[str]] | None = None) -> Outcome:
    """Compute ``spec`` over ``chunks`` (None: one chunk of the whole arrays).

    ``check`` sees the first chunk's batch before anything is computed (the loss's word on its reduction) and
    returns warnings. ``output`` is where a streamed ``none`` is written (the caller saves anything else).
    """
    split = chunks.split if chunks is not None else frozenset()
    shared = {name: s.arg() for name, s in sources.items() if name not in split}

    def prepare(start: int, stop: int) -> Batch:
        args = {name: sources[name].chunk(start, stop) if name in split else shared[name] for name in sources}
        return spec.family.prepare(spec, args, params, broadcast=broadcast, nan_policy=nan_policy)

    if backend is not Backend.numpy:
        return _whole_other(spec, prepare(0, 0), params, reduction, backend, grad, accumulators, check, sources)

    def shape_error() -> None:  # a chunk's shapes did not fit: the whole arrays' check names the whole shapes
        spec.family.prepare(spec, {name: s.arg() for name, s in sources.items()}, params, broadcast=broadcast,
                            nan_policy=nan_policy)

    return _engine(spec, prepare, params, reduction, chunks, grad=grad, output=output, accumulators=accumulators,
                   progress=progress, check=check, shape_error=shape_error)


def run_batch(spec: LossSpec, batch: Batch, params: dict[str, Any], reduction: Reduction, grad: bool) -> Computed:
    """The numpy backend's :data:`~losscli.backends.RunFn`: the engine over one prepared batch."""
    outcome = _engine(spec, lambda start, stop: batch, params, reduction, None, grad=grad)
    return Computed(outcome.value, outcome.grad)


def _engine(spec: LossSpec, prepare: Callable[[int, int], Batch], params: dict[str, Any], reduction: Reduction,
            chunks: Plan | None, *, grad: bool = False, output: str | None = None,
            accumulators: Sequence[Accumulator] = (), progress: Progress | None = None,
            check: Callable[[Batch], list[str]] | None = None,
            shape_error: Callable[[], None] | None = None) -> Outcome:
    """The numpy backend over ``chunks`` of prepared batches (None: one chunk, rows ``[0, 0)`` standing for all)."""
    def work(start: int, stop: int) -> _Chunk:
        batch = prepare(start, stop)
        arrays, found = numpy_backend.elements(spec, batch, params, exact=grad)
        select = selection(found.valid, batch.mask)
        count = math.prod(batch.loss_shape) if select is None else int(np.count_nonzero(select))
        with np.errstate(all="ignore"):
            totals = values = None
            if reduction is Reduction.none:
                values = unreduced(found, batch.mask).reshape(batch.loss_shape).astype(batch.dtype)
            else:
                totals = partial(found, batch.mask)
        return _Chunk(start, batch, arrays if grad else None, found, select, totals, values, count)

    spans = chunks.chunks() if chunks is not None else [(0, 0)]
    warnings = _Warnings()
    checked: list[str] = []
    totals, selected, first, sink, collected = Partial(), 0, None, None, None
    try:
        for chunk in _in_order(work, spans, shape_error):
            batch = chunk.batch
            if first is None:
                first = chunk
                checked = check(batch) if check is not None else []
                loss_shape = _whole_loss_shape(batch, chunks)
                if chunks is not None and reduction is Reduction.none:
                    sink = _sink(output, loss_shape, batch.dtype) if output is not None else None
                    collected = None if sink is not None else np.empty(loss_shape, batch.dtype)
            warnings.add(batch.warnings)
            selected += chunk.selected
            if chunk.totals is not None:
                totals = totals.merge(chunk.totals)
            if chunk.values is not None and chunks is not None:
                (sink.write if sink is not None else _into(collected))(chunk.start, chunk.values)
            for accumulator in accumulators:
                accumulator.update(chunk.start, chunk.elements, chunk.select)
            if progress is not None and chunks is not None:
                progress(min(chunk.start + chunks.chunk_rows, chunks.rows), chunks.rows)
    except BaseException:
        if sink is not None:
            sink.abandon()
        raise
    rows = first.batch.rows
    if reduction is Reduction.none:
        value = first.values if chunks is None else (sink.close() if sink is not None else collected)
    else:
        value = np.asarray(totals.finish(reduction, rows)).astype(first.batch.dtype)
    gradient = None
    if grad:  # one chunk: grad forces the whole batch
        gradient = numpy_backend.gradient(spec, first.batch, params, first.arrays, first.elements, reduction,
                                          None if reduction is Reduction.none else totals, rows)
    return Outcome(value, gradient, first.batch, loss_shape, selected, warnings.merged() + checked)


def _whole_other(spec: LossSpec, batch: Batch, params: dict[str, Any], reduction: Reduction, backend: Backend,
                 grad: bool, accumulators: Sequence[Accumulator], check: Callable[[Batch], list[str]] | None,
                 sources: dict[str, Source]) -> Outcome:
    """Another backend (torch) over the whole batch, as one chunk for the accumulators (``views.elements``: that
    backend's values)."""
    prepared = [str(w) for w in dict.fromkeys(batch.warnings)]
    checked = check(batch) if check is not None else []
    size = sum(s.rows.dtype.itemsize * math.prod(s.rows.shape) for s in sources.values())
    if size > TORCH_WARN_BYTES:
        prepared.append(f"--backend {backend.value} holds every input in memory ({size / 2**20:.0f} MiB here); the "
                        "numpy backend streams them in bounded memory")
    before = len(batch.warnings)
    computed = runner(backend)(spec, batch, params, reduction, grad)
    if accumulators:
        from .views import elements, feed

        feed(accumulators, elements(spec, batch, params, backend), batch.mask)
    value = computed.value.astype(batch.dtype)
    count = _count(spec, batch, params)
    return Outcome(value, computed.grad, batch, batch.loss_shape, count, prepared + checked + batch.warnings[before:])


def _count(spec: LossSpec, batch: Batch, params: dict[str, Any]) -> int:
    select = selection(spec.family.valid(batch, params), batch.mask)
    return math.prod(batch.loss_shape) if select is None else int(np.count_nonzero(select))


def _whole_loss_shape(batch: Batch, chunks: Plan | None) -> tuple[int, ...]:
    return tuple(batch.loss_shape) if chunks is None else (chunks.rows,) + tuple(batch.loss_shape[1:])


def _into(collected: np.ndarray) -> Callable[[int, np.ndarray], None]:
    def write(start: int, values: np.ndarray) -> None:
        collected[start:start + len(values)] = values

    return write


def _in_order(work: Callable[[int, int], _Chunk], spans: list[tuple[int, int]],
              shape_error: Callable[[], None] | None) -> Iterator[_Chunk]:
    """``work`` over every span, results in span order.

    The first chunks run here; when the second shows the work compute-bound (fewer than
    :data:`THREAD_BELOW` bytes of its arrays a second: exp and log, not a subtraction), the rest run on
    :data:`THREADS` threads, a few chunks ahead. A chunk whose shapes do not fit raises the whole arrays'
    error (``shape_error``), so that messages name whole shapes."""
    try:
        threads = 1
        for i, (start, stop) in enumerate(spans):
            if threads > 1:
                yield from _pooled(work, spans[i:], threads)
                return
            began = time.perf_counter()
            chunk = work(start, stop)
            if i == 1 and len(spans) > 4:  # the first chunk pays for warming up
                seconds = time.perf_counter() - began
                rate = sum(a.nbytes for a in chunk.batch.arrays.values()) / max(seconds, 1e-9)
                threads = min(THREADS, os.cpu_count() or 1) if rate < THREAD_BELOW else 1
            yield chunk
    except ShapeError:
        if len(spans) > 1 and shape_error is not None:
            shape_error()
        raise


def _pooled(work: Callable[[int, int], _Chunk], spans: list[tuple[int, int]], threads: int) -> Iterator[_Chunk]:
    from concurrent.futures import ThreadPoolExecutor  # 10+ ms to import: only for a long stream

    with ThreadPoolExecutor(threads, thread_name_prefix="losscli") as pool:
        pending: deque = deque()
        upcoming = iter(spans)
        try:
            for span in upcoming:
                pending.append(pool.submit(work, *span))
                if len(pending) >= 2 * threads:
                    break
            while pending:
                result = pending.popleft().result()
                span = next(upcoming, None)
                if span is not None:
                    pending.append(pool.submit(work, *span))
                yield result
        finally:
            for future in pending:
                future.cancel()


class _Warnings:
    """Warnings of every chunk, once each; a file's non-finite counts summed into one warning."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def add(self, warnings: Iterable[str]) -> None:
        for warning in warnings:
            key = f"non-finite {warning.label}" if isinstance(warning, NonFinite) else warning
            earlier = self.seen.get(key)
            if isinstance(warning, NonFinite) and isinstance(earlier, NonFinite):
                self.seen[key] = earlier.merge(warning)
            elif earlier is None:
                self.seen[key] = warning

    def merged(self) -> list[str]:
        return [str(w) for w in self.seen.values()]


# -- none, written chunk by chunk -------------------------------------------------------------------------


class _NpySink:
    """A .npy file of the loss's shape, its header written by ``open_memmap`` and its rows by ``pwrite`` (written
    pages are not held mapped)."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype, option: str = "--output") -> None:
        self.path, self.dtype = path, dtype
        try:
            header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            self.offset, self.row_bytes = header.offset, math.prod(shape[1:]) * dtype.itemsize
            del header
            self.fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise InputError(f"{option} ({path}): expected a writable path, but got '{exc.strerror}'") from None

    def write(self, start: int, values: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(values, self.dtype).reshape(-1).view(np.uint8))
        position = self.offset + start * self.row_bytes
        while data.nbytes:
            written = os.pwrite(self.fd, data, position)
            data, position = data[written:], position + written

    def close(self) -> np.ndarray:
        os.close(self.fd)
        return np.load(self.path, mmap_mode="r")

    def abandon(self) -> None:
        os.close(self.fd)


class _CsvSink:
    """A .csv file (render's layout: index columns, then value) written in row order, with the values also in
    an unlinked temporary .npy that the result maps."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        import tempfile

        from .render import csv_header

        try:
            self.file = open(path, "w", encoding="utf-8")
            self.file.write(csv_header(len(shape)) + "\n")
        except OSError as exc:
            raise InputError(f"--output ({path}): expected a writable path, but got '{exc.strerror}'") from None
        scratch, self.scratch = tempfile.mkstemp(suffix=".npy")
        os.close(scratch)
        self.values = _NpySink(self.scratch, shape, dtype)

    def write(self, start: int, values: np.ndarray) -> None:
        from .render import csv_rows

        self.file.write("".join(line + "\n" for line in csv_rows(values, start)))
        self.values.write(start, values)

    def close(self) -> np.ndarray:
        self.file.close()
        mapped = self.values.close()
        os.unlink(self.scratch)  # the mapping keeps the data until the result is gone
        return mapped

    def abandon(self) -> None:
        self.file.close()
        self.values.abandon()
        os.unlink(self.scratch)


def _sink(path: str, shape: tuple[int, ...], dtype: np.dtype) -> _NpySink | _CsvSink:
    lower = path.lower()
    if lower.endswith(".npy"):
        return _NpySink(path, shape, dtype)
    if lower.endswith(".csv"):
        return _CsvSink(path, shape, dtype)
    raise InputError(f"--output ({path}): expected a .npy or .csv file name, but got another extension")


# -- progress ------------------------------------------------------------------------------------------------


def wants_progress(*, terminal: bool, quiet: bool, fmt: str) -> bool:
    """A progress bar on stderr: only on a terminal, not with --quiet, not with --format json or plain (scripts
    read those)."""
    return terminal and not quiet and fmt not in ("json", "plain")


class ProgressBar:
    """A :data:`Progress` callback that draws a rich bar on ``console`` once the work has run ``delay`` seconds
    (rich.progress is imported only then). ``close()`` removes it."""

    def __init__(self, console: Any, description: str, delay: float = PROGRESS_DELAY) -> None:
        self.console, self.description, self.delay = console, description, delay
        self.started = time.monotonic()
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.delay:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total, completed=done)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
