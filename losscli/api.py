"""The one entry point: ``compute(loss, input, target, ...) -> LossResult``.

The CLI, the tests and Python users all call it. It checks and converts the arrays (the loss's family),
runs a backend, and returns the value with everything needed to report and reproduce it.
"""

from __future__ import annotations

import enum
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import stream, views
from .backends import Backend, runner
from .errors import OptionError
from .losses import CATALOG, LossSpec
from .losses import Batch
from .reduction import Reduction, resolve
from .stream import Accumulator, Progress, source

class NanPolicy(str, enum.Enum):
    """NaN/Inf in the inputs: let them through with a warning, or refuse them."""

    propagate = "propagate"
    raise_ = "raise"


@dataclass(frozen=True)
class InputInfo:
    role: str
    source: str | None
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class CrossCheck:
    """The other backend's answer and how far it is from the first."""

    backend: Backend
    value: np.ndarray
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    ok: bool


@dataclass
class LossResult:
    loss: str
    torch_name: str
    reduction: Reduction  # resolved (legacy flags applied)
    backend: Backend
    value: np.ndarray  # 0-d for mean/sum; the loss's shape for none
    params: dict[str, Any]
    inputs: list[InputInfo]
    count: int  # elements of the loss
    selected: int  # elements that count: not masked out, not ignored
    warnings: list[str] = field(default_factory=list)
    cross_check: CrossCheck | None = None
    grad: np.ndarray | None = None  # d(loss)/d(first file), that file's shape; with compute(grad=True)
    per_sample: np.ndarray | None = None  # (N,) the loss of each sample; with compute(per_sample=True)
    top: views.Top | None = None  # the largest losses; with compute(top=K)
    hist: views.Hist | None = None  # a histogram of the losses; with compute(hist=True)

    @property
    def is_scalar(self) -> bool:
        return self.value.ndim == 0

    def item(self) -> float:
        return float(self.value)

    @property
    def versions(self) -> dict[str, str]:
        from . import __version__

        found = {"losscli": __version__, "numpy": np.__version__}
        if Backend.torch in (self.backend, self.cross_check and self.cross_check.backend):
            found["torch"] = sys.modules["torch"].__version__  # imported by the torch backend
        return found


def lookup(loss: str | LossSpec) -> LossSpec:
    if isinstance(loss, LossSpec):
        return loss
    try:
        return CATALOG[loss]
    except KeyError:
        raise OptionError(f"loss: expected one of {', '.join(CATALOG)}, but got {loss!r}") from None


def _params(spec: LossSpec, given: dict[str, Any]) -> dict[str, Any]:
    unknown = set(given) - set(spec.defaults())
    if unknown:
        takes = ", ".join(spec.defaults()) or "no options"
        raise OptionError(f"{sorted(unknown)[0]}: {spec.name} takes {takes}")
    params = {**spec.defaults(), **given}
    for option in spec.options:  # str -> enum, int -> float, as a CLI or a Python caller may pass them
        params[option.name] = _convert(option.flag, option.type, params[option.name])
    return params


def _convert(flag: str, kind: type, value: Any) -> Any:
    """``kind(value)``, or an OptionError naming the flag and what it takes."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        expected = (f"one of {', '.join(m.value for m in kind)}" if isinstance(kind, type) and
                    issubclass(kind, enum.Enum) else f"a value of type {kind.__name__}")
        raise OptionError(f"{flag}: expected {expected}, but got {value!r}") from None


def compute(
    loss: str | LossSpec,
    *arrays: Any,
    weight: Any = None,
    pos_weight: Any = None,
    mask: Any = None,
    reduction: Reduction | str = Reduction.mean,
    size_average: bool | None = None,
    reduce: bool | None = None,
    backend: Backend | str = Backend.numpy,
    broadcast: bool = False,
    nan_policy: NanPolicy | str = NanPolicy.propagate,
    cross_check: bool = False,
    tolerance: float = 1e-5,
    grad: bool = False,
    per_sample: bool = False,
    top: int | None = None,
    hist: bool = False,
    output: str | None = None,
    accumulators: Sequence[Accumulator] = (),
    progress: Progress | None = None,
    chunk_rows: int | None = None,
    **params: Any,
) -> LossResult:
    """Compute ``loss`` as ``torch.nn.functional.<torch_name>`` would.

    ``arrays`` are the loss's files in torch's argument order (``input, target`` for most). They, and
    ``weight``, ``pos_weight`` and ``mask``, are arrays (or ``losscli.io.Loaded``, whose file names then
    appear in messages, and whose rows are read chunk by chunk when the loss streams); a file that takes a
    number (gaussian-nll's ``var``) may also be a float. ``mask``
    selects elements of the loss: ``mean`` divides by
    what the selected elements contribute (their count, or their weights where torch divides by weights).
    ``cross_check`` also runs the other backend and records the largest difference; it is ``ok`` when
    every element satisfies ``|a - b| <= tolerance * (1 + |b|)``, gradients included. ``grad`` also
    computes d(loss)/d(first array) (for ``none``: of the sum, as ``backward(ones_like(loss))``).
    A loss's optional files (``spec.optional_files``: linear-cross-entropy's ``linear_bias``) are keywords.

    ``per_sample``, ``top`` and ``hist`` ask for the views of :mod:`losscli.views` (the result's
    ``per_sample``, ``top`` and ``hist``).

    Large inputs stream (numpy backend; see :mod:`losscli.stream`): ``output`` (.npy or .csv) receives the
    value (or with ``per_sample`` the per-sample values), for a streamed ``none`` chunk by chunk, and the
    result's value is then that file mapped read-only.
    ``accumulators`` (:class:`losscli.stream.Accumulator`) are fed every chunk's per-element values, in row
    order (one chunk starting at row 0 in memory); ``progress(rows_done, rows)`` is called after each
    chunk of a stream. ``chunk_rows`` forces streaming in chunks of that many rows.
    Raises ``LossCliError`` on bad input.
    """
    spec = lookup(loss)
    backend = _convert("--backend", Backend, backend)
    nan_policy = _convert("--nan-policy", NanPolicy, nan_policy)
    resolved, legacy_warning = resolve(reduction, size_average, reduce)
    if resolved not in spec.reductions:
        raise OptionError(f"--reduction: {spec.name} takes {', '.join(r.value for r in spec.reductions)}, "
                          f"but got {resolved.value}")
    optional = {f.name: params.pop(f.name) for f in spec.optional_files if f.name in params}
    params = _params(spec, params)
    names = [f.name for f in spec.files]
    if len(arrays) != len(names):
        raise OptionError(f"{spec.name}: expected {len(names)} arrays ({', '.join(names)}), but got {len(arrays)}")
    sources = {name: source(name, value) for name, value in zip(names, arrays)}
    sources.update((name, source(name, value)) for name, value in optional.items() if value is not None)
    taken = {f.name for f in spec.extras}
    for role, value in (("weight", weight), ("pos_weight", pos_weight), ("mask", mask)):
        if value is None:
            continue
        if role not in taken:
            raise OptionError(f"--{role.replace('_', '-')}: {spec.name} takes no {role}")
        sources[role] = source(role, value)
    if broadcast and not spec.family.broadcasts:
        raise OptionError(f"--broadcast: {spec.name} does not broadcast (torch requires matching shapes)")

    feeds, asked = list(accumulators), {}

    def check(batch: Batch) -> list[str]:
        """Once the first chunk is prepared: the views (fed from then on), and the loss's word on its reduction."""
        asked.update(views.accumulators(per_sample, top, hist, resolved, batch.loss_shape, batch.dtype))
        feeds.extend(asked.values())
        if spec.reduction_check is None:
            return []
        return spec.reduction_check(Reduction(reduction), resolved, legacy_warning is not None, batch)

    chunks = stream.plan(spec, sources, broadcast, whole=grad or cross_check or backend is not Backend.numpy,
                         chunk_rows=chunk_rows)
    done = stream.run(spec, sources, params, resolved, chunks=chunks, backend=backend, broadcast=broadcast,
                      nan_policy=nan_policy.value, grad=grad, output=None if per_sample else output,
                      accumulators=feeds, progress=progress, check=check)
    batch, warnings = done.batch, ([legacy_warning] if legacy_warning else []) + done.warnings
    first_shape = tuple(sources[names[0]].rows.shape)
    value, gradient = done.value, _grad(done.grad, first_shape, batch)
    if resolved is Reduction.mean and done.selected == 0:
        warnings.append("mean over 0 selected elements (all masked out or ignored) is NaN, as in torch")
    found = {name: view.finish() for name, view in asked.items()}
    if output is not None and (per_sample or not (chunks is not None and resolved is Reduction.none)):
        from .render import save  # the render package imports this module

        save(found["per_sample"] if per_sample else value, output, "--output")

    check_result = None
    if cross_check:
        other_backend = Backend.torch if backend is Backend.numpy else Backend.numpy
        other = runner(other_backend)(spec, batch, params, resolved, grad)
        check_result = _compare(other_backend, (value, gradient), (other.value.astype(batch.dtype),
                                                                   _grad(other.grad, first_shape, batch)), tolerance)

    inputs = [InputInfo(s.role, s.label, tuple(s.rows.shape), str(s.rows.dtype)) for s in sources.values()]
    return LossResult(
        loss=spec.name, torch_name=spec.torch_name, reduction=resolved, backend=backend, value=value,
        params=params, inputs=inputs, count=math.prod(done.loss_shape), selected=done.selected,
        warnings=list(dict.fromkeys(warnings)), cross_check=check_result, grad=gradient, **found,
    )


def _grad(grad: np.ndarray | None, shape: tuple[int, ...], batch: Batch) -> np.ndarray | None:
    """A backend's gradient in the user's layout: the first array's shape, the loss's dtype."""
    return None if grad is None else grad.reshape(shape).astype(batch.dtype)


def _compare(backend: Backend, ours: tuple[np.ndarray, np.ndarray | None],
             theirs: tuple[np.ndarray, np.ndarray | None], tolerance: float) -> CrossCheck:
    """Largest differences between two backends' values (and gradients, when computed)."""
    a = np.concatenate([np.ravel(x).astype(np.float64) for x in ours if x is not None])
    b = np.concatenate([np.ravel(x).astype(np.float64) for x in theirs if x is not None])
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(both_nan | (a == b), 0.0, np.abs(a - b))
        rel = np.where(diff == 0, 0.0, diff / np.abs(b))
    ok = bool(np.all(diff <= tolerance * (1 + np.abs(b))))  # NaN against a number fails
    max_abs = float(np.max(diff)) if diff.size else 0.0
    max_rel = float(np.max(rel)) if rel.size else 0.0
    return CrossCheck(backend, theirs[0], max_abs, max_rel, tolerance, ok)
