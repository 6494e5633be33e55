"""The compute engine: a loss over its rows in chunks, merging the reduction's sums, in bounded memory.

Each chunk (:mod:`losscli.engine.sources`) goes through the family's ``prepare`` (every check, with positions
named in the whole array: ``Arg.offset``) and the numpy backend's formula, and its
:class:`~losscli.reduction.Partial` sums (float64) merge in row order, so the result is the same float64
accumulation whatever the chunk size. ``none`` goes chunk by chunk into a :class:`~losscli.engine.sinks.Sink`
(in memory unless the caller hands in another), and every chunk's per-element values feed the
:class:`~losscli.engine.accumulators.Accumulator` s. The engine writes no file and draws nothing: sinks,
accumulators and the ``progress`` callback are the caller's.

The in-memory path is the same code with one chunk: the whole arrays, start 0. It is taken for small inputs
(:data:`~losscli.engine.sources.STREAM_ELEMENTS`), for the torch backend, for gradients and cross-checks (they
need the whole batch), and for losses that do not stream: ctc (its samples are axis 1 of log_probs, and
concatenated targets have no row per sample) and any loss whose shape is 0-d.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ..backends import Backend, Computed, numpy_backend
from ..errors import OptionError, ShapeError
from ..io import ArrayRows
from ..losses.base import Batch, LossSpec, NonFinite
from ..reduction import Elements, Partial, Reduction, partial, selection, unreduced
from .sinks import InMemory, Sink
from .sources import STREAM_ELEMENTS, Plan, Source

if TYPE_CHECKING:
    from .accumulators import Accumulator

# worker threads over chunks (numpy releases the GIL), for compute-bound losses only: those that get through
# fewer bytes of input a second than THREAD_BELOW (memory-bound ones lose to contention; see docs/performance.md)
THREADS = 2
THREAD_BELOW = 1.5e9
# the torch backend holds every input in memory: above this many bytes of inputs, it says so
TORCH_WARN_BYTES = 1 << 30

# glibc malloc while a loss streams: arrays up to MMAP_BYTES come from the heap, and up to TRIM_BYTES freed at its
# top stay there (see keep_freed_memory)
MMAP_BYTES = 8 << 20
TRIM_BYTES = 32 << 20

Progress = Callable[[int, int], None]  # (rows done, rows in all)
Check = Callable[[Batch], list[str]]  # the first batch -> warnings (a loss's word on its reduction)


class Grouping(NamedTuple):
    """Views by group: each sample's group read from ``source`` (integer codes from 0: ``--by``), or, with no
    source, each element's class as the loss's family gives it (``--by-class``)."""

    source: Source | None = None

    def codes(self, task: Task, batch: Batch, start: int, whole: bool) -> np.ndarray:
        """The groups of a batch's elements (broadcasting to its loss), the batch being rows ``[start, ...)``
        of the loss, or all of it (``whole``)."""
        if self.source is None:
            classes = task.spec.family.classes(task.spec, batch)
            if classes is None:
                raise OptionError(f"expected a loss whose elements each have a class (nll, cross-entropy with class "
                                  "indices, multi-margin, linear-cross-entropy) or a label column (bce, "
                                  f"bce-with-logits on (N, C, ...)), but {task.spec.name} has none here; group "
                                  "samples with {by}", argument="by_class")
            return classes[0]
        if not batch.loss_shape:
            raise ShapeError("expected a loss with samples to group, but this loss is a single value (shape ())",
                             argument="by")
        rows = batch.loss_shape[0]
        codes = self.source.arg().array if whole else self.source.chunk(start, start + rows).array
        if len(codes) != rows:
            given = self.source.rows.shape[0]
            raise ShapeError(f"expected a label for each of the loss's {rows} samples, but got {given} labels" if whole
                             else f"expected a label for each of the loss's samples, but got {given} labels, and "
                             "the loss has more samples than that", argument="by")
        return codes.reshape(codes.shape + (1,) * (len(batch.loss_shape) - 1))


class Task(NamedTuple):
    """One loss over its sources: what the engine computes."""

    spec: LossSpec
    sources: dict[str, Source]
    params: dict[str, Any]
    reduction: Reduction
    broadcast: bool = False
    nan_policy: str = "propagate"
    grad: bool = False
    strict: bool = False  # values torch computes with but the loss does not expect: refused, not warned about
    groups: Grouping | None = None  # the views' groups (their accumulators read Elements.groups)

    def prepare(self, args: dict[str, Any], defer_finite: bool = False) -> Batch:
        return self.spec.family.prepare(self.spec, args, self.params, broadcast=self.broadcast,
                                        nan_policy=self.nan_policy, strict=self.strict, defer_finite=defer_finite)


class Feeds:
    """Where the engine's results go besides the value: per-element values of ``none`` (``sink``), every
    chunk's elements (``accumulators``), progress, and the loss's check of the first batch."""

    def __init__(self, sink: Sink | None = None, accumulators: Sequence[Accumulator] = (),
                 progress: Progress | None = None, check: Check | None = None) -> None:
        self.sink, self.accumulators, self.progress, self.check = sink, accumulators, progress, check


class Computation(NamedTuple):
    """What the engine hands back to :func:`losscli.compute`."""

    value: np.ndarray  # the loss's dtype; for none: what the sink's close() gave
    grad: np.ndarray | None
    batch: Batch  # the first chunk's (the whole batch in memory)
    loss_shape: tuple[int, ...]  # the whole loss's
    selected: int  # elements that count
    warnings: list[str]


class Part(NamedTuple):
    """What one chunk adds to the result, in row order: small, so that a chunk computed elsewhere (a dask
    worker: :mod:`losscli.engine.cluster`) merges exactly as one computed here."""

    start: int
    totals: Partial | None  # mean, sum, batchmean
    values: np.ndarray | None  # none: the chunk's loss, in the loss's dtype
    selected: int
    warnings: list


class _Chunk(NamedTuple):
    start: int
    batch: Batch
    arrays: dict[str, np.ndarray] | None  # as computed (float64 with a gradient), kept for the gradient
    elements: Elements  # for the gradient and the accumulators
    select: np.ndarray | None
    totals: Partial | None  # mean, sum, batchmean
    values: np.ndarray | None  # none: the chunk's loss, in the loss's dtype
    selected: int

    def part(self) -> Part:
        return Part(self.start, self.totals, self.values, self.selected, list(self.batch.warnings))

    def slim(self) -> _Chunk:
        """What :meth:`Merge.finish` keeps of a stream's first chunk: its batch's shapes, dtype and rows, not its
        arrays (a gradient, which needs them, is computed over one chunk)."""
        batch = replace(self.batch, arrays={}, mask=None, warnings=[])
        return self._replace(batch=batch, arrays=None, elements=None, select=None, values=None)


def run(task: Task, plan: Plan | None, backend: Backend = Backend.numpy, feeds: Feeds | None = None) -> Computation:
    """Compute ``task`` over the chunks of ``plan`` (None: one chunk of the whole arrays) with ``backend``."""
    feeds = feeds or Feeds()
    if backend is not Backend.numpy:
        return _whole_other(task, task.prepare({name: s.arg() for name, s in task.sources.items()}), backend, feeds)
    return Merge(task, plan, feeds).run(preparer(task, plan), lambda: shape_error(task))


def preparer(task: Task, plan: Plan | None) -> Callable[[int, int], Batch]:
    """The prepared batch of rows ``[start, stop)`` for :meth:`Merge.work`: the files of ``plan.split`` read chunk
    by chunk, the others read once (whole); the non-finite check left to ``work`` where the loss allows."""
    split = plan.split if plan is not None else frozenset()
    shared = {name: s.arg() for name, s in task.sources.items() if name not in split}

    def prepare(start: int, stop: int) -> Batch:
        return task.prepare({name: source.chunk(start, stop) if name in split else shared[name]
                             for name, source in task.sources.items()}, defer_finite=True)

    return prepare


def shape_error(task: Task) -> None:
    """A chunk's shapes did not fit: the whole arrays' check raises the error, naming the whole shapes."""
    task.prepare({name: s.arg() for name, s in task.sources.items()})


class Chunks:
    """One task's chunks computed one at a time, each as its :class:`Part` (the accumulators fed): a
    partition of a run, computed where its files are read (a dask worker: :mod:`losscli.engine.cluster`)."""

    def __init__(self, task: Task, plan: Plan | None, accumulators: Sequence[Accumulator]) -> None:
        self.merge, self.prepare = Merge(task, plan, Feeds(accumulators=accumulators)), preparer(task, plan)
        self.task, self.several = task, plan is not None and plan.rows > plan.chunk_rows

    def compute(self, start: int, stop: int) -> Part:
        try:
            chunk = self.merge.work(self.prepare(start, stop), start)
        except ShapeError:
            if self.several:
                shape_error(self.task)
            raise
        self.merge.feed(chunk)
        return chunk.part()


_kept = False


def keep_freed_memory() -> None:
    """Once per process (glibc only), when a loss streams or a large one is held whole: a chunk's arrays reuse
    the memory that the last chunk's (or the last run's) freed.

    A chunk's arrays (its rows, the loss's temporaries: 1-2 MiB each) are all freed when the chunk is done, and
    glibc's defaults give them back to the kernel: an array over its mmap threshold (128 KiB, raised on the fly
    to the largest array freed so far, unless ``MALLOC_TRIM_THRESHOLD_`` is set, as a dask nanny sets it) is an
    ``mmap`` of its own, and a free top of the heap over twice that threshold is trimmed. Every chunk's arrays
    then start as fresh pages that the kernel zeroes one fault at a time: 4 KiB per fault, a chunk's work
    several times over (docs/performance.md). With the thresholds raised the process keeps up to
    :data:`TRIM_BYTES` of freed memory for the next chunk; no value changes. A chunk read by one thread (the
    reader, or a pool's) and freed by another stays in one heap: glibc's default of an arena per thread kept
    another 13-17 MiB on a stream of two .npy files."""
    global _kept
    if _kept or not sys.platform.startswith("linux"):
        return
    _kept = True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, MMAP_BYTES)  # M_MMAP_THRESHOLD
    mallopt(-1, TRIM_BYTES)  # M_TRIM_THRESHOLD
    mallopt(-8, 1)  # M_ARENA_MAX: one heap for every thread, not one more (with its own kept memory) per thread


def compute_batch(task: Task, batch: Batch, backend: Backend) -> Computed:
    """``backend`` over one prepared batch: the value (and the gradient when the task asks for it)."""
    if backend is Backend.torch:
        from ..backends import torch_backend

        return torch_backend.run(task.spec, batch, task.params, task.reduction, task.grad)
    done = Merge(task, None, Feeds()).run(lambda start, stop: batch, None)
    return Computed(done.value, done.grad)


class Merge:
    """The numpy backend over a plan's chunks, merging their sums, values and accumulators in row order."""

    def __init__(self, task: Task, plan: Plan | None, feeds: Feeds) -> None:
        self.task, self.plan, self.feeds = task, plan, feeds
        self.totals, self.selected, self.warnings = Partial(), 0, _Warnings()
        self.sink: Sink | None = None

    def run(self, prepare: Callable[[int, int], Batch], shape_error: Callable[[], None] | None) -> Computation:
        spans = self.plan.chunks() if self.plan is not None else [(0, 0)]
        if len(spans) > 1 or _elements(self.task) > STREAM_ELEMENTS:  # a stream, or a large batch held whole
            keep_freed_memory()
        first, checked = None, []
        try:
            for chunk in _in_order(prepare, self.work, spans, shape_error, self._from_files()):
                if first is None:
                    checked = self.feeds.check(chunk.batch) if self.feeds.check is not None else []
                    first = chunk if len(spans) == 1 else chunk.slim()
                self.add(chunk)
        except BaseException:
            if self.sink is not None:
                self.sink.abandon()
            raise
        return self.finish(first, checked)

    def _from_files(self) -> bool:
        """Whether chunks are read from files (not rows of arrays in memory)."""
        split = self.plan.split if self.plan is not None else ()
        return any(not isinstance(self.task.sources[name].rows, ArrayRows) for name in split)

    def work(self, batch: Batch, start: int) -> _Chunk:
        task = self.task
        arrays, found = numpy_backend.elements(task.spec, batch, task.params, exact=task.grad)
        if task.groups is not None:
            found = found._replace(groups=task.groups.codes(task, batch, start, whole=self.plan is None))
        select = selection(found.valid, batch.mask)
        count = math.prod(batch.loss_shape) if select is None else int(np.count_nonzero(select))
        with np.errstate(all="ignore"):
            totals = values = None
            if task.reduction is Reduction.none:
                values = unreduced(found, batch.mask).reshape(batch.loss_shape).astype(batch.dtype, copy=False)
            else:
                totals = partial(found, batch.mask, in_dtype=self.plan is not None)
            if batch.unchecked is not None:
                _check_unless_finite(batch, found, totals if select is None else None)
        return _Chunk(start, batch, arrays if task.grad else None, found, select, totals, values, count)

    def add(self, chunk: _Chunk) -> None:
        self.feed(chunk)
        self.take(chunk.part(), chunk.batch)

    def feed(self, chunk: _Chunk) -> None:
        for accumulator in self.feeds.accumulators:
            accumulator.update(chunk.start, chunk.elements, chunk.select)

    def take(self, part: Part, first: Batch) -> None:
        """One chunk's part, in row order (``first``: the first chunk's batch, for the sink's shape)."""
        if part.values is not None:
            if self.sink is None:
                self.sink = self.feeds.sink or InMemory()
                self.sink.open(_whole_loss_shape(first, self.plan), first.dtype)
            self.sink.write(part.start, part.values)
        self.warnings.add(part.warnings)
        self.selected += part.selected
        if part.totals is not None:
            self.totals = self.totals.merge(part.totals)
        if self.feeds.progress is not None and self.plan is not None:
            self.feeds.progress(min(part.start + self.plan.chunk_rows, self.plan.rows), self.plan.rows)

    def finish(self, first: _Chunk, checked: list[str]) -> Computation:
        task, rows = self.task, first.batch.rows
        if task.reduction is Reduction.none:
            value = self.sink.close()
        else:
            with np.errstate(over="ignore"):  # a float64 total beyond float32's range is inf, as torch's
                value = np.asarray(self.totals.finish(task.reduction, rows)).astype(first.batch.dtype)
        gradient = None
        if task.grad:  # one chunk: a gradient needs the whole batch
            totals = None if task.reduction is Reduction.none else self.totals
            gradient = numpy_backend.gradient(task.spec, first.batch, task.params, first.arrays, first.elements,
                                              task.reduction, totals, rows)
        return Computation(value, gradient, first.batch, _whole_loss_shape(first.batch, self.plan), self.selected,
                           self.warnings.merged() + checked)


def _check_unless_finite(batch: Batch, found: Elements, totals: Partial | None) -> None:
    """The batch's deferred non-finite check, run only when the sum of every element's value (``totals``, when
    they cover every element) is not finite: a loss that propagates NaN and ±inf then proves its inputs finite."""
    whole = totals.total if totals is not None else float(np.sum(found.values))
    if not math.isfinite(whole):
        batch.unchecked(batch)


def _whole_other(task: Task, batch: Batch, backend: Backend, feeds: Feeds) -> Computation:
    """Another backend (torch) over the whole batch, as one chunk for the accumulators (fed that backend's
    values: :func:`_elements_of`)."""
    prepared = [str(w) for w in dict.fromkeys(batch.warnings)]
    checked = feeds.check(batch) if feeds.check is not None else []
    size = sum(s.rows.dtype.itemsize * math.prod(s.rows.shape) for s in task.sources.values())
    if size > TORCH_WARN_BYTES:
        prepared.append(f"the {backend.value} backend holds every input in memory ({size / 2**20:.0f} MiB here); "
                        "the numpy backend streams them in bounded memory")
    before = len(batch.warnings)
    computed = compute_batch(task, batch, backend)
    if feeds.accumulators:
        found = _elements_of(task, batch, backend)
        select = selection(found.valid, batch.mask)
        for accumulator in feeds.accumulators:
            accumulator.update(0, found, select)
    value = computed.value.astype(batch.dtype)
    if task.reduction is Reduction.none:
        sink = feeds.sink or InMemory()
        sink.open(value.shape, value.dtype)
        sink.write(0, value)
        value = sink.close()
    select = selection(task.spec.family.valid(batch, task.params), batch.mask)
    count = math.prod(batch.loss_shape) if select is None else int(np.count_nonzero(select))
    return Computation(value, computed.grad, batch, batch.loss_shape, count,
                       prepared + checked + batch.warnings[before:])


def _elements_of(task: Task, batch: Batch, backend: Backend) -> Elements:
    """The whole batch's per-element values as ``backend`` computes them (``reduction='none'``). What ``mean``
    divides by comes from the inputs alone (weights, ignored targets, lengths), never from predictions, so it
    is the same for both backends and is taken from the loss's numpy definition."""
    found = numpy_backend.elements(task.spec, batch, task.params)[1]
    unmasked = replace(batch, mask=None, warnings=[])  # the views select; the backend's warnings were reported
    values = compute_batch(task._replace(reduction=Reduction.none, grad=False), unmasked, backend).value
    groups = None if task.groups is None else task.groups.codes(task, batch, 0, whole=True)
    return found._replace(values=values.astype(np.float64).reshape(np.shape(found.values)), groups=groups)


def _elements(task: Task) -> int:
    """Elements of every input of ``task``."""
    return sum(math.prod(s.rows.shape) for s in task.sources.values())


def _whole_loss_shape(batch: Batch, plan: Plan | None) -> tuple[int, ...]:
    return tuple(batch.loss_shape) if plan is None else (plan.rows,) + tuple(batch.loss_shape[1:])


def _in_order(read: Callable[[int, int], Batch], compute: Callable[[Batch, int], _Chunk],
              spans: list[tuple[int, int]], shape_error: Callable[[], None] | None,
              files: bool = False) -> Iterator[_Chunk]:
    """Every span's batch ``read`` and ``compute`` d, results in span order.

    The first chunks run here; when the second shows the work compute-bound (fewer than
    :data:`THREAD_BELOW` bytes of its arrays a second: exp and log, not a subtraction), the rest run on
    :data:`THREADS` threads, a few chunks ahead. Otherwise, where chunks are read from ``files``, a thread
    reads the next chunk while this one computes. A chunk whose shapes do not fit raises the whole arrays'
    error (``shape_error``), so that messages name whole shapes."""
    try:
        threads = 1
        for i, (start, stop) in enumerate(spans):
            if threads > 1:
                yield from _pooled(lambda first, last: compute(read(first, last), first), spans[i:], threads)
                return
            if i == 2 and files:
                yield from _read_ahead(read, compute, spans[i:])
                return
            began = time.perf_counter()
            chunk = compute(read(start, stop), start)
            if i == 1 and len(spans) > 4:  # the first chunk pays for warming up
                seconds = time.perf_counter() - began
                rate = sum(a.nbytes for a in chunk.batch.arrays.values()) / max(seconds, 1e-9)
                threads = min(THREADS, os.cpu_count() or 1) if rate < THREAD_BELOW else 1
            yield chunk
    except ShapeError:
        if len(spans) > 1 and shape_error is not None:
            shape_error()
        raise


def _read_ahead(read: Callable[[int, int], Batch], compute: Callable[[Batch, int], _Chunk],
                spans: list[tuple[int, int]]) -> Iterator[_Chunk]:
    """Each span computed here while a thread reads the next one (``pread`` and numpy release the GIL): the
    time of a memory-bound stream from files is about the larger of reading and computing, not their sum."""
    from concurrent.futures import ThreadPoolExecutor  # 10+ ms to import: only for a long stream

    with ThreadPoolExecutor(1, thread_name_prefix="losscli-read") as reader:
        upcoming = iter(spans)
        span = next(upcoming)
        pending = reader.submit(read, *span)
        try:
            while pending is not None:
                batch, start = pending.result(), span[0]
                span = next(upcoming, None)
                pending = None if span is None else reader.submit(read, *span)
                yield compute(batch, start)
        finally:
            if pending is not None:
                pending.cancel()


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


