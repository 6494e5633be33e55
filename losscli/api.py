"""The one entry point: ``compute(loss, *arrays, ...) -> LossResult``.

The CLI, ``losscli check``, the tests and Python users all call it. It checks the arguments, plans the chunks,
runs the engine, and returns the value with everything needed to report and reproduce it. It imports
neither rich, typer nor torch (torch only when the torch backend is asked for).
"""

from __future__ import annotations

import enum
import math
import os
import warnings as python_warnings
from dataclasses import dataclass
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from .backends import Backend
from .engine.run import Computation, Feeds, Progress, Task, compute_batch, run
from .engine.sinks import Sink
from .engine.sources import Source, plan, source
from .errors import InputError, LossCliError, LossCliWarning, OptionError, ShapeError
from .io import ArrayRows, Loader
from .io.remote import check_options
from .judge import check_thresholds
from .losses import CATALOG, Batch, LossSpec
from .reduction import Reduction, resolve
from .result import CrossCheck, InputInfo, LossResult

if TYPE_CHECKING:
    from .engine.accumulators import Accumulator
    from .engine.cluster import Cluster


class NanPolicy(str, enum.Enum):
    """NaN/Inf in the inputs: let them through with a warning, or refuse them."""

    propagate = "propagate"
    raise_ = "raise"


class Engine(str, enum.Enum):
    """Where the chunks are computed: in this process (threads), or on a dask cluster."""

    local = "local"
    dask = "dask"


@dataclass(frozen=True)
class Outputs:
    """What to compute besides the value.

    ``grad``: d(loss)/d(first array) (for ``none``: of the sum, as ``backward(ones_like(loss))``).
    ``per_sample``, ``top`` (K) and ``hist``: the views of :mod:`losscli.engine.accumulators`.
    ``cross_check``: also run the other backend; it is ``ok`` when every element (gradients included)
    satisfies ``|a - b| <= tolerance * (1 + |b|)``.
    ``ci``: a confidence interval of the value at this level (0.95), by a Poisson bootstrap over the samples
    with ``resamples`` resamples and ``seed`` (:mod:`losscli.engine.bootstrap`); the same interval whatever the
    chunks, shards or engine (and one per group, with groups).
    ``by_class``: the loss of each target class (a multi-label loss: of each label column), as
    :func:`compute`'s ``by`` gives it for groups of samples (:mod:`losscli.engine.groups`).
    """

    grad: bool = False
    per_sample: bool = False
    top: int | None = None
    hist: bool = False
    cross_check: bool = False
    tolerance: float = 1e-5
    ci: float | None = None
    resamples: int = 1000
    seed: int = 0
    by_class: bool = False


@dataclass(frozen=True)
class Streaming:
    """How the engine runs: ``chunk_rows`` forces chunks of that many rows (else a loss streams when it is
    large); ``progress(rows_done, rows)`` is called after each chunk of a stream; ``sink`` receives a ``none``
    reduction's values chunk by chunk (the result's value is then what its ``close()`` returns);
    ``accumulators`` are fed every chunk's per-element values, in row order."""

    chunk_rows: int | None = None
    progress: Progress | None = None
    sink: Sink | None = None
    accumulators: Sequence[Accumulator] = ()


def compute(loss: str | LossSpec, *arrays: Any, reduction: Reduction | str = Reduction.mean,
            size_average: bool | None = None, reduce: bool | None = None, backend: Backend | str = Backend.numpy,
            nan_policy: NanPolicy | str = NanPolicy.propagate, strict: bool = False, broadcast: bool = False,
            engine: Engine | str | Cluster = Engine.local, scheduler: str | None = None, outputs: Outputs = Outputs(),
            streaming: Streaming = Streaming(), storage_options: Mapping[str, Any] | None = None,
            by: Any = None, **named: Any) -> LossResult:
    """Compute ``loss`` as ``torch.nn.functional.<torch_name>`` would.

    ``arrays`` are the loss's files in torch's argument order (``input, target`` for most): arrays, or paths
    in the forms the command line reads (``"preds.npy"``, ``"results.csv:pred"``, shards; their names then
    appear in messages, and their rows are read chunk by chunk when the loss streams), or
    ``losscli.io.Loaded``; a file that takes a number (gaussian-nll's ``var``) may also be a float.
    ``named`` holds the loss's other files (``spec.extras``: weight, pos_weight, mask, linear_bias) and its
    options (``spec.options``: beta, ignore_index, ...). A ``mask`` selects elements of the loss: ``mean``
    divides by what the selected elements contribute (their count, or their weights where torch divides by
    weights). Values that torch computes with but the loss does not expect (a hinge target other than -1 or 1,
    ...) give torch's value and a warning saying what torch does with them; ``strict=True`` refuses them.
    ``engine="dask"`` computes the chunks on a dask cluster (the scheduler at ``scheduler``, else
    ``DASK_SCHEDULER_ADDRESS``, else a local cluster started for the call); a
    :class:`~losscli.engine.cluster.Cluster` already open is used as it is. The value is the local engine's,
    digit for digit. ``by``: a group label per sample (a path such as ``"meta.csv:language"``, strings or
    integers; or an array): the result's ``groups`` give the loss of each group. ``storage_options``: fsspec
    options for the paths that are URLs (``{"anon": True}``, ``{"endpoint_url": "http://127.0.0.1:9000"}``;
    the command line's ``--storage-option key=value``), on top of each store's own configuration, for this
    call alone.
    Raises ``LossCliError`` on bad input, naming the argument.
    """
    with _session(engine, scheduler) as cluster:
        call = _Call.of(loss, arrays, named, reduction=reduction, size_average=size_average, reduce=reduce,
                        backend=backend, nan_policy=nan_policy, strict=strict, broadcast=broadcast,
                        outputs=outputs, streaming=streaming, storage_options=storage_options, by=by,
                        distributed=cluster is not None)
        done = run(call.task, call.plan, call.backend, call.feeds) if cluster is None else cluster.run([call.run])[0]
    if isinstance(done, LossCliError):
        raise done
    return call.result(done)


def compute_each(calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], *,
                 engine: Engine | str | Cluster = Engine.local,
                 scheduler: str | None = None) -> list[LossResult | LossCliError]:
    """``compute(*args, **kwargs)`` of each call, or the error it raised (the others still run). With the dask
    engine the calls run as one graph, and a file that several of them read is read once per partition."""
    with _session(engine, scheduler) as cluster:
        if cluster is None:
            return [_attempt(lambda a=args, k=kwargs: compute(*a, **k)) for args, kwargs in calls]
        prepared = [_attempt(lambda a=args, k=kwargs: _Call.of(a[0], a[1:], _loss_keywords(k), distributed=True,
                                                               **{n: k[n] for n in _COMMON if n in k}))
                    for args, kwargs in calls]
        computed = iter(cluster.run([p.run for p in prepared if isinstance(p, _Call)]))
    results: list[LossResult | LossCliError] = []
    for p in prepared:
        done = next(computed) if isinstance(p, _Call) else p
        results.append(done if isinstance(done, LossCliError) else _attempt(lambda c=p, d=done: c.result(d)))
    return results


_COMMON = ("reduction", "size_average", "reduce", "backend", "nan_policy", "strict", "broadcast", "outputs",
           "streaming", "storage_options", "by")


def _loss_keywords(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of compute() that are the loss's own (its files and options)."""
    return {k: v for k, v in kwargs.items() if k not in _COMMON}


def _attempt(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except LossCliError as e:
        return e


@contextmanager
def _session(engine: Engine | str | Cluster, scheduler: str | None) -> Iterator[Cluster | None]:
    """None for the local engine; for the dask engine, the caller's cluster, or one for this call (opened when
    first used, closed after)."""
    if not isinstance(engine, str):
        yield engine
        return
    if _convert("engine", Engine, engine) is Engine.local:
        if scheduler is not None:
            raise OptionError("a scheduler is for the dask engine: add {engine=dask}", argument="scheduler")
        yield None
        return
    from .engine.cluster import Cluster  # dask is imported only when the dask engine runs

    with Cluster(scheduler) as cluster:
        yield cluster


class _Call:
    """A compute() call checked and planned: its engine task, plan and feeds, and how to make its result."""

    def __init__(self, spec: LossSpec, task: Task, plan: Any, backend: Backend, feeds: Feeds, outputs: Outputs,
                 legacy_warning: str | None, asked: dict[str, Any]) -> None:
        self.spec, self.task, self.plan, self.backend, self.feeds = spec, task, plan, backend, feeds
        self.outputs, self.legacy_warning, self.asked = outputs, legacy_warning, asked

    @property
    def run(self) -> Any:
        from .engine.cluster import Run

        return Run(self.task, self.plan, self.feeds)

    @classmethod
    def of(cls, loss: str | LossSpec, arrays: tuple[Any, ...], named: dict[str, Any], *,
           reduction: Reduction | str = Reduction.mean, size_average: bool | None = None,
           reduce: bool | None = None, backend: Backend | str = Backend.numpy,
           nan_policy: NanPolicy | str = NanPolicy.propagate, strict: bool = False, broadcast: bool = False,
           outputs: Outputs = Outputs(), streaming: Streaming = Streaming(),
           storage_options: Mapping[str, Any] | None = None, by: Any = None, distributed: bool = False) -> _Call:
        spec = lookup(loss)
        backend = _convert("backend", Backend, backend)
        nan_policy = _convert("nan_policy", NanPolicy, nan_policy)
        resolved, legacy_warning = resolve(reduction, size_average, reduce)
        if resolved not in spec.reductions:
            raise OptionError(f"{spec.name} takes {', '.join(r.value for r in spec.reductions)}, but got "
                              f"{resolved.value}", argument="reduction")
        if broadcast and not spec.family.broadcasts:
            raise OptionError(f"{spec.name} does not broadcast (torch requires matching shapes)", argument="broadcast")
        check_thresholds(tolerance=outputs.tolerance)
        if outputs.ci is not None:
            _check_ci(resolved, outputs)
        if distributed:
            distributable(backend, outputs)
        options = check_options(storage_options)
        sources = _sources(spec, arrays, named, options)
        groups, names = _grouping(by, outputs.by_class, resolved, options)
        task = Task(spec, sources, _params(spec, named), resolved, broadcast, nan_policy.value, outputs.grad,
                    strict=strict, groups=groups)
        whole = outputs.grad or outputs.cross_check or backend is not Backend.numpy
        planned = plan(spec, sources, broadcast, whole=whole, chunk_rows=streaming.chunk_rows)
        if planned is not None and names is not None:  # a stream: the labels counted before its first chunk
            _count_labels(planned.rows, groups.source)
        asked: dict[str, Any] = {}
        feeds = Feeds(streaming.sink, list(streaming.accumulators), streaming.progress)
        feeds.check = _first_batch(task, outputs, Reduction(reduction), legacy_warning is not None, asked, feeds,
                                   Views(names, planned.rows if planned is not None else None))
        return cls(spec, task, planned, backend, feeds, outputs, legacy_warning, asked)

    def result(self, done: Computation) -> LossResult:
        spec, task, outputs = self.spec, self.task, self.outputs
        warnings = ([self.legacy_warning] if self.legacy_warning else []) + done.warnings
        if task.reduction is Reduction.mean and done.selected == 0:
            warnings.append("mean over 0 selected elements (all masked out or ignored) is NaN, as in torch")
        result = LossResult(
            loss=spec.name, torch_name=spec.torch_name, reduction=task.reduction, backend=self.backend,
            value=done.value, params=task.params, inputs=[_info(s) for s in task.sources.values()],
            count=math.prod(done.loss_shape), selected=done.selected, warnings=list(dict.fromkeys(warnings)),
            grad=_grad(task, done),
            cross_check=_cross_check(task, done, self.backend, outputs) if outputs.cross_check else None,
            **{name: view.finish() for name, view in self.asked.items()},
        )
        _warn(result.warnings)
        return result


def _check_ci(reduction: Reduction, outputs: Outputs) -> None:
    """A confidence interval is of a reduced value, with the bootstrap's options in their ranges."""
    from .engine.bootstrap import check

    if reduction is Reduction.none:
        raise OptionError("expected a reduction to give an interval of (mean, sum, batchmean), but the reduction "
                          "is none", argument="ci")
    check(outputs.ci, outputs.resamples, outputs.seed)


def distributable(backend: Backend, outputs: Outputs) -> None:
    """What the dask engine cannot do: what needs the whole batch in one process (refused before a cluster is
    reached: the command line checks it before it connects)."""
    for asked, what in ((backend is not Backend.numpy, f"the {backend.value} backend"),
                        (outputs.grad, "a gradient"), (outputs.cross_check, "a cross-check")):
        if asked:
            raise OptionError(f"{what} needs the whole batch in one process, but the dask engine computes it in "
                              "partitions: use the local engine {engine=local}", argument="engine")


def _warn(messages: list[str]) -> None:
    """The result's warnings, also through Python's :mod:`warnings` (as from compute()'s caller)."""
    for message in messages:
        python_warnings.warn(str(message), LossCliWarning, stacklevel=4)


def lookup(loss: str | LossSpec) -> LossSpec:
    if isinstance(loss, LossSpec):
        return loss
    try:
        return CATALOG[loss]
    except KeyError:
        raise OptionError(f"expected one of {', '.join(CATALOG)}, but got {loss!r}", argument="loss") from None


def _sources(spec: LossSpec, arrays: tuple[Any, ...], named: dict[str, Any],
             storage_options: dict[str, Any]) -> dict[str, Source]:
    """The loss's files (positional, then the named ones given), as the engine reads them; paths that are URLs
    through this call's ``storage_options``."""
    names = [f.name for f in spec.files]
    if len(arrays) != len(names):
        raise OptionError(f"expected {len(names)} arrays ({', '.join(names)}), but got {len(arrays)}",
                          argument=spec.name)
    given = dict(zip(names, arrays))
    given.update((f.name, named[f.name]) for f in spec.extras if named.get(f.name) is not None)
    loader = Loader(storage_options=storage_options)  # a file that two arguments name is read once
    return {name: source(name, loader.load(os.fspath(value), role=name) if isinstance(value, (str, os.PathLike))
                         else _untracked(name, value)) for name, value in given.items()}


def _untracked(name: str, value: Any) -> Any:
    """A torch tensor as a numpy array, detached from autograd and moved to the CPU (duck-typed on ``detach``
    and ``numpy``, so that torch is never imported here); anything else as given."""
    if not (hasattr(value, "detach") and hasattr(value, "numpy")):
        return value
    try:
        value = value.detach()
        return (value.cpu() if hasattr(value, "cpu") else value).numpy()
    except (TypeError, RuntimeError) as e:  # bfloat16 and other dtypes numpy has not
        raise InputError(f"{name}: expected a tensor that converts to a numpy array, but got one that does not "
                         f"({e})") from None


def _params(spec: LossSpec, named: dict[str, Any]) -> dict[str, Any]:
    """The loss's options: the defaults, with those given converted (str -> enum, int -> float) and checked
    against their domains (the one check of option values: the command line and gate files come here too)."""
    files = {f.name for f in spec.extras}
    for name in sorted(set(named) - files - set(spec.defaults())):
        if name in {f.name for other in CATALOG.values() for f in other.extras}:  # a file this loss takes not
            if named[name] is None:
                continue
            raise OptionError(f"{spec.name} takes no {name}", argument=name)
        raise OptionError(f"{spec.name} takes {', '.join(spec.defaults()) or 'no options'}", argument=name)
    params = {**spec.defaults(), **{k: v for k, v in named.items() if k in spec.defaults()}}
    for option in spec.options:
        params[option.name] = _convert(option.name, option.type, params[option.name])
        option.check(params[option.name])
    return params


def _convert(argument: str, kind: type, value: Any) -> Any:
    """``kind(value)``, or an OptionError naming the argument and what it takes."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        expected = (f"one of {', '.join(m.value for m in kind)}" if isinstance(kind, type) and
                    issubclass(kind, enum.Enum) else f"a value of type {kind.__name__}")
        raise OptionError(f"expected {expected}, but got {value!r}", argument=argument) from None


class Views(NamedTuple):
    """What the views by group need to know before the first batch: the labels' names (``by``), and the loss's
    rows when it streams (else the first batch has them all)."""

    names: list[str] | None
    rows: int | None


def _first_batch(task: Task, outputs: Outputs, reduction: Reduction, legacy: bool, asked: dict[str, Any],
                 feeds: Feeds, views: Views) -> Callable[[Batch], list[str]]:
    """The engine's check of the first prepared batch: the views asked for (into ``asked``, and fed from then
    on), and the loss's word on its reduction."""
    def check(batch: Batch) -> list[str]:
        if outputs.per_sample or outputs.top is not None or outputs.hist or outputs.ci is not None or task.groups:
            from .engine.accumulators import accumulators  # loaded only when a view is asked for

            asked.update(accumulators(outputs.per_sample, outputs.top, outputs.hist, task.reduction,
                                      batch.loss_shape, batch.dtype))
            if outputs.ci is not None:
                from .engine.bootstrap import Bootstrap

                asked["ci"] = Bootstrap(task.reduction, outputs.ci, outputs.resamples, outputs.seed)
            if task.groups is not None:
                asked["groups"] = _groups(task, batch, outputs, views)
            feeds.accumulators = [*feeds.accumulators, *asked.values()]
        word = task.spec.reduction_check
        return [] if word is None else word(reduction, task.reduction, legacy, batch)

    return check


def _grouping(by: Any, by_class: bool, reduction: Reduction, options: dict[str, Any]) -> tuple[Any, list[str] | None]:
    """The task's :class:`~losscli.engine.run.Grouping` (None without groups), and the names of ``by``'s groups:
    its labels, sorted, read whole and numbered from 0."""
    if by is None and not by_class:
        return None, None
    argument = "by" if by is not None else "by_class"
    if by is not None and by_class:
        raise OptionError("expected groups of samples ({by}) or of classes ({by_class=True}), not both", argument="by")
    if reduction is Reduction.none:
        raise OptionError("expected a reduction to give each group's value (mean, sum, batchmean), but the "
                          "reduction is none", argument=argument)
    from .engine.groups import labels_of
    from .engine.run import Grouping

    if by is None:
        return Grouping(), None
    names, codes = labels_of(by, Loader(storage_options=options))
    return Grouping(Source("by", ArrayRows(codes))), names


def _groups(task: Task, batch: Batch, outputs: Outputs, views: Views) -> Any:
    """The :class:`~losscli.engine.groups.Groups` view, once the first batch tells the classes or the rows."""
    from .engine.bootstrap import Bootstrap
    from .engine.groups import Groups

    names = views.names
    if names is None:  # by class: the batch's codes were checked to exist (Grouping.codes)
        names = [str(c) for c in range(task.spec.family.classes(task.spec, batch)[1])]
    else:
        _count_labels(views.rows if views.rows is not None else batch.loss_shape[0], task.groups.source)
    boot = None if outputs.ci is None else Bootstrap(task.reduction, outputs.ci, outputs.resamples, outputs.seed,
                                                      groups=len(names))
    return Groups(task.reduction, names, batch.dtype, boot)


def _count_labels(rows: int, labels: Source) -> None:
    """A label for each of the loss's ``rows`` samples."""
    if rows != labels.rows.shape[0]:
        raise ShapeError(f"expected a label for each of the loss's {rows} samples, but got {labels.rows.shape[0]} "
                         "labels", argument="by")


def _grad(task: Task, done: Computation) -> np.ndarray | None:
    """The gradient in the user's layout: the first array's shape, the loss's dtype."""
    if done.grad is None:
        return None
    first = task.sources[task.spec.files[0].name]
    return done.grad.reshape(tuple(first.rows.shape)).astype(done.batch.dtype)


def _info(s: Source) -> InputInfo:
    number = float(s.rows.whole()) if s.number else None
    return InputInfo(s.role, s.label, tuple(s.rows.shape), str(s.rows.dtype), number,
                     getattr(s.rows, "stored_dtype", None))


def _cross_check(task: Task, done: Computation, backend: Backend, outputs: Outputs) -> CrossCheck:
    """The other backend over the same batch; the largest differences of values (and gradients)."""
    other = Backend.torch if backend is Backend.numpy else Backend.numpy
    theirs = compute_batch(task, done.batch, other)
    ours = [done.value, _grad(task, done)]
    found = [theirs.value.astype(done.batch.dtype), _grad(task, done._replace(grad=theirs.grad))]
    a = np.concatenate([np.ravel(x).astype(np.float64) for x in ours if x is not None])
    b = np.concatenate([np.ravel(x).astype(np.float64) for x in found if x is not None])
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(both_nan | (a == b), 0.0, np.abs(a - b))
        rel = np.where(diff == 0, 0.0, diff / np.abs(b))
    ok = bool(np.all(diff <= outputs.tolerance * (1 + np.abs(b))))  # NaN against a number fails
    return CrossCheck(other, found[0], float(np.max(diff)) if diff.size else 0.0,
                      float(np.max(rel)) if rel.size else 0.0, outputs.tolerance, ok)
