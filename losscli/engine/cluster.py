"""The dask engine: a run's chunks computed on a ``dask.distributed`` cluster, merged here in row order.

The plan is the local engine's own (:func:`losscli.engine.sources.plan`): the same chunks of rows, grouped
into partitions of :data:`CHUNKS_PER_PARTITION` consecutive chunks. Each partition is one dask task, which
opens the files itself (a local path, made absolute, must be visible to the workers; a URL is read from the
store), computes its chunks with the local engine's code (:class:`~losscli.engine.run.Chunks`) and sends
back, per chunk, its :class:`~losscli.engine.run.Part` (the float64 sums, the count, the warnings, and for
``none`` the chunk's values) and, per partition, its copies of the accumulators. The client merges the parts
in row order, exactly as the local engine merges its chunks, so the value is the local engine's to the last
digit; the accumulators merge exactly (``Accumulator.merge``).

The client computes the first chunk itself as well: the loss's check of its first batch and the views'
set-up need it before any partition is sent, and a bad first chunk fails before the cluster is busy. What
travels: the loss's definition and options, file names, the accumulators (before and after), and the parts;
arrays only where an input is already in memory (a ``compute()`` argument, CSV text on stdin), a partition's
rows at a time, and ``none``'s values, which the client writes in row order with at most :data:`AHEAD`
partitions per worker in flight.

Several runs may share one graph (``losscli check``): runs with the same chunks (the same rows and chunk
size) share their partitions, and a file that two of them read is read once per partition.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections import deque
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import LossCliError, OptionError, ShapeError
from ..io import Loader, Rows, is_pattern, parse_spec
from ..io.formats import split_override
from ..io.remote import is_url
from .run import Chunks, Computation, Feeds, Merge, Task, keep_freed_memory, preparer, shape_error
from .sources import Plan, Source

# consecutive chunks per dask task: about 8e6 elements of the widest file, so that a task's overhead
# (a few ms on the scheduler, and opening the files) is small against its work
CHUNKS_PER_PARTITION = 32
# partitions in flight per worker thread: enough to keep every worker busy while the client merges in order
AHEAD = 2
# seconds to reach a scheduler before saying it cannot be reached
CONNECT_SECONDS = 10
GROUPS = "\x00groups"  # the key a task's group labels travel under, beside its sources


class Run(NamedTuple):
    """One loss for :meth:`Cluster.run`: the engine's task, plan and feeds, as for
    :func:`losscli.engine.run.run`."""

    task: Task
    plan: Plan | None
    feeds: Feeds


class Cluster:
    """A dask cluster for the runs of one command: the scheduler at ``address`` (``tcp://host:port``; None:
    the ``DASK_SCHEDULER_ADDRESS`` environment variable), else a ``LocalCluster`` of ``workers`` processes (one
    per core by default) started for it and shut down on ``close()``. Use it as a context manager."""

    def __init__(self, address: str | None = None, *, workers: int | None = None) -> None:
        self.given = bool(address)  # else from the environment
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self.workers = workers
        self._client: Any = None
        self._local: Any = None

    def __enter__(self) -> Cluster:
        return self  # opened when first used: a call refused before any work starts no cluster

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect to the scheduler, or start the local cluster (idempotent)."""
        if self._client is not None:
            return
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise OptionError("the dask engine needs dask.distributed: pip install 'losscli[dask]'",
                              argument="engine") from None
        if self.address is None:
            self._local = LocalCluster(n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1,
                                       processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=logging.ERROR)
            self._client = Client(self._local, set_as_default=False)
            return
        try:
            self._client = Client(self.address, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            if self.given:
                raise OptionError(f"expected a dask scheduler at {self.address}, but could not reach it: {reason}",
                                  argument="scheduler") from None
            raise OptionError(f"DASK_SCHEDULER_ADDRESS: expected a dask scheduler at {self.address}, but could not "
                              f"reach it: {reason}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._local is not None:
            self._local.close()
        self._client = self._local = None

    @property
    def scheduler(self) -> str:
        """The scheduler's address (``tcp://127.0.0.1:PORT`` for the local cluster)."""
        self.open()
        return self._client.scheduler.address

    @property
    def dashboard(self) -> str | None:
        """The dashboard's address, where the scheduler serves one."""
        self.open()
        return self._client.dashboard_link or None

    def threads(self) -> int:
        """Worker threads in the cluster now."""
        self.open()
        return sum(w["nthreads"] for w in self._client.scheduler_info()["workers"].values()) or 1

    def run(self, runs: Sequence[Run]) -> list[Computation | LossCliError]:
        """Every run's computation (or the error that stopped it; the others go on), computed as one graph."""
        self.open()
        started = [_Started.of(r) for r in runs]
        live = [s for s in started if s.error is None]
        sharing: dict[Any, list[_Started]] = {}  # runs with the same chunks share their partitions
        for s in live:
            key = None if s.run.plan is None else (s.run.plan.rows, s.run.plan.chunk_rows)
            sharing.setdefault(key if key is not None else id(s), []).append(s)
        pending: deque = deque()
        width = AHEAD * self.threads()
        for members, spans in self._partitions(sharing.values()):
            pending.append((members, self._client.submit(_partition, [m.shipped(spans) for m in members], spans,
                                                         pure=False)))
            while len(pending) >= width:
                _merge(*pending.popleft())
        while pending:
            _merge(*pending.popleft())
        return [s.finish() for s in started]

    @staticmethod
    def _partitions(sharing: Any) -> Iterator[tuple[list[_Started], list[tuple[int, int]]]]:
        """The chunks of each set of runs that share them, in partitions, one set after the other."""
        for members in sharing:
            spans = members[0].spans
            for i in range(0, len(spans), CHUNKS_PER_PARTITION):
                yield members, spans[i:i + CHUNKS_PER_PARTITION]


class _Started:
    """A run on its way: the first chunk computed here, then the parts as they come back."""

    def __init__(self, run: Run, spans: list[tuple[int, int]]) -> None:
        self.run, self.spans = run, spans
        self.error: LossCliError | None = None
        self.merge = Merge(run.task, run.plan, run.feeds)
        self.first: Any = None
        self.checked: list[str] = []
        self.fresh: list[Any] = []  # the accumulators as they are before any chunk: each partition's copies

    @classmethod
    def of(cls, run: Run) -> _Started:
        spans = run.plan.chunks() if run.plan is not None else [(0, 0)]
        started = cls(run, spans)
        try:
            started.first = started.merge.work(_first_batch(run.task, run.plan, spans), spans[0][0])
            feeds = run.feeds
            started.checked = feeds.check(started.first.batch) if feeds.check is not None else []
            started.fresh = [copy.deepcopy(a) for a in feeds.accumulators]
        except LossCliError as e:
            started.error = e
        return started

    def shipped(self, spans: list[tuple[int, int]]) -> _Shipped:
        task = self.run.task
        low, high = spans[0][0], spans[-1][1]
        split = self.run.plan.split if self.run.plan is not None else frozenset()
        sources = {name: _ship(s, name in split, low, high) for name, s in task.sources.items()}
        groups = task.groups
        if groups is not None and groups.source is not None:  # the labels' codes: the partition's rows of them
            sources[GROUPS] = _ship(groups.source, self.run.plan is not None, low, high)
        return _Shipped(task._replace(sources={}), sources, self.run.plan, copy.deepcopy(self.fresh))

    def take(self, found: _Found) -> None:
        if self.error is not None:
            return
        if found.error is not None:
            self.error = found.error
            return
        for part in found.parts:
            self.merge.take(part, self.first.batch)
        for mine, theirs in zip(self.run.feeds.accumulators, found.accumulators):
            mine.merge(theirs)

    def finish(self) -> Computation | LossCliError:
        if self.error is not None:
            if self.merge.sink is not None:
                self.merge.sink.abandon()
            return self.error
        return self.merge.finish(self.first, self.checked)


def _first_batch(task: Task, plan: Plan | None, spans: list[tuple[int, int]]) -> Any:
    """The first chunk's batch, or the whole arrays' error when its shapes do not fit (as the local engine)."""
    try:
        return preparer(task, plan)(*spans[0])
    except ShapeError:
        if len(spans) > 1:
            shape_error(task)
        raise


def _merge(members: list[_Started], future: Any) -> None:
    """A partition's results into its runs, in row order. An error of losscli's comes back per run; the
    cluster's own (a worker lost too often, an error of dask's) stops every run of the partition."""
    try:
        found = future.result()
    except Exception as e:  # noqa: BLE001 - the cluster's own failure (losscli's come back as _Found.error)
        error = OptionError(f"the dask cluster failed to compute a partition: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}".rstrip(": "), argument="engine")
        found = [_Found(error=error)] * len(members)
    for member, result in zip(members, found):
        member.take(result)


# -- what travels to a worker, and what comes back -------------------------------------------------------


class _Ship(NamedTuple):
    """One source as a worker gets it: a file to open (``spec``), or rows sent with the task."""

    role: str
    label: str | None
    number: bool
    spec: str | None  # opened by the worker: an absolute local path or a URL, with its selector
    rows: Rows | None  # sent: a partition's rows of an array in memory (or the whole of a small one)
    options: dict | None = None  # the URL's storage options


class _Shipped(NamedTuple):
    task: Task  # its sources left out: see ``sources``
    sources: dict[str, _Ship]
    plan: Plan | None
    accumulators: list[Any]


class _Found(NamedTuple):
    parts: list = []
    accumulators: list = []
    error: LossCliError | None = None


class Window:
    """Rows ``[low, low + len(array))`` of an array of ``shape``: a partition's rows of an input in memory."""

    def __init__(self, array: np.ndarray, low: int, shape: tuple[int, ...]) -> None:
        self.array, self.low, self.shape, self.dtype = array, low, tuple(shape), array.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.array[start - self.low:stop - self.low]

    def whole(self) -> np.ndarray:
        """The rows it holds: all a worker has of the array (the whole arrays' check of a chunk whose shapes
        do not fit then names the partition's shapes)."""
        return self.array


def _ship(source: Source, split: bool, low: int, high: int) -> _Ship:
    spec = _openable(source.label) if source.label is not None else None
    if spec is not None:
        return _Ship(source.role, source.label, source.number, spec, None, source.options)
    from ..io import ArrayRows

    rows = Window(source.rows.read(low, high), low, source.rows.shape) if split else ArrayRows(source.rows.whole())
    return _Ship(source.role, source.label, source.number, None, rows)


def _openable(label: str) -> str | None:
    """``label`` (a spec as the user wrote it) as a worker opens it: a URL as it is, a local file, directory or
    glob made absolute (workers may run elsewhere); None for what only this process can read (stdin, a pipe)."""
    path, selector = parse_spec(label)
    target = split_override(path)[1]
    if is_url(target):
        return label
    if not (os.path.isfile(target) or os.path.isdir(target) or is_pattern(target)):
        return None
    absolute = path[:len(path) - len(target)] + os.path.abspath(target)
    return absolute if selector is None else f"{absolute}:{selector}"


def _partition(shipped: list[_Shipped], spans: list[tuple[int, int]]) -> list[_Found]:
    """On a worker: the chunks ``spans`` of each run, span by span, each file read once per span."""
    keep_freed_memory()
    loaders, reads = _Loaders(), _Reads()
    chunks: list[Chunks | LossCliError] = []
    for s in shipped:
        try:
            sources = {name: _source(ship, loaders.of(ship.options), reads) for name, ship in s.sources.items()}
            groups = s.task.groups if GROUPS not in sources else s.task.groups._replace(source=sources.pop(GROUPS))
            chunks.append(Chunks(s.task._replace(sources=sources, groups=groups), s.plan, s.accumulators))
        except LossCliError as e:
            chunks.append(e)
    parts: list[list] = [[] for _ in shipped]
    for start, stop in spans:
        for i, runner in enumerate(chunks):
            if isinstance(runner, Chunks):
                try:
                    parts[i].append(runner.compute(start, stop))
                except LossCliError as e:
                    chunks[i] = e
        reads.forget()
    return [_Found(error=runner) if isinstance(runner, LossCliError) else _Found(found, s.accumulators)
            for runner, found, s in zip(chunks, parts, shipped)]


def _source(ship: _Ship, loader: Loader, reads: _Reads) -> Source:
    if ship.spec is None:
        return Source(ship.role, ship.rows, ship.label, ship.number)
    loaded = loader.load(ship.spec, role=ship.role, name=ship.label)
    return Source(ship.role, reads.of((ship.spec, ship.role), loaded.rows), ship.label, ship.number)


class _Loaders(dict):
    """A partition's loaders, one for each set of storage options its files are read with."""

    def of(self, options: dict | None) -> Loader:
        key = repr(sorted((options or {}).items()))
        if key not in self:
            self[key] = Loader(storage_options=options)
        return self[key]


class _Reads:
    """Rows of the files of a partition, each read once per span however many runs read it (as the same
    argument: messages name the argument)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], _Once] = {}

    def of(self, key: tuple[str, str], rows: Rows) -> Rows:
        return self.rows.setdefault(key, _Once(rows))

    def forget(self) -> None:
        for rows in self.rows.values():
            rows.last = None


class _Once:
    """Rows whose last read is kept (until :meth:`_Reads.forget`), for the next run that reads the same span."""

    def __init__(self, rows: Rows) -> None:
        self.inner, self.last = rows, None
        self.shape, self.dtype = rows.shape, rows.dtype
        self.nulls, self.locate = getattr(rows, "nulls", None), getattr(rows, "locate", None)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.last is None or self.last[0] != (start, stop):
            self.last = ((start, stop), self.inner.read(start, stop))
        return self.last[1]

    def whole(self) -> np.ndarray:
        return self.inner.whole()
