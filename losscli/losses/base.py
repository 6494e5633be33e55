"""What a loss is, once, and what every family of losses shares.

A :class:`LossSpec` is the one definition that drives a loss's command, its help, its docs page and both
backends. Its :class:`Family` turns the user's arrays into a :class:`Batch` (or raises a
:class:`~losscli.errors.LossCliError` naming the argument) through one template, :meth:`Family.prepare`,
whose steps the families fill in; and it knows how a mask is applied when torch does the arithmetic: by
selecting elements (element-wise losses), or by turning masked-out class targets into ``ignore_index`` so
that class weights keep torch's denominator.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from ..reduction import STANDARD, Elements, Reduction

if TYPE_CHECKING:  # torch is imported lazily, by the torch backend only
    import torch


class TargetKind(str, enum.Enum):
    """How a class loss reads its target: class indices, or class probabilities of the input's shape."""

    auto = "auto"
    index = "index"
    prob = "prob"


class Domain(NamedTuple):
    """The numbers a float option takes: from ``low`` to ``high``, each end included unless it is ``open``.
    NaN is never one of them. The default is every number, infinities included (torch checks most options
    for nothing); an option whose values torch refuses declares the ones it takes.

    >>> 0.5 in Domain(0, 1), 0 in Domain(0, open_low=True), float("nan") in Domain()
    (True, False, False)
    >>> str(Domain(0, 1)), str(Domain(0, open_low=True)), str(Domain())
    ('a value in [0, 1]', 'a value of more than 0', 'a number')
    """

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below  # False for NaN

    def __str__(self) -> str:
        low, high = _bound(self.low), _bound(self.high)
        if self.low == -math.inf and self.high == math.inf:
            return "a number"  # of any size: NaN is the one value refused
        if self.high == math.inf and not self.open_high:
            return f"a value of more than {low}" if self.open_low else f"a value of {low} or more"
        if self.low == -math.inf and not self.open_low:
            return f"a value of less than {high}" if self.open_high else f"a value of {high} or less"
        return f"a value in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Option(NamedTuple):
    """A scalar, loss-specific option such as ``--beta`` or ``--ignore-index``. A float option takes the
    numbers of its ``domain`` (every number but NaN unless it says otherwise: torch's own limits)."""

    name: str  # keyword of losscli.compute and torch.nn.functional ("ignore_index")
    type: type
    default: Any
    help: str
    domain: Domain = Domain()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Refuse a float outside the option's domain (NaN always), naming the option."""
        if self.type is float and value not in self.domain:
            raise OptionError(f"expected {self.domain}, but got {value}", argument=self.name)


@dataclass
class Batch:
    """Checked arrays ready for a backend: one dtype for the floats, and the loss's shape.

    Class losses get a batch axis added for unbatched inputs (``(C,)`` logits), so the backends see one
    layout; ``loss_shape`` is what the user's ``none`` output has.
    """

    arrays: dict[str, np.ndarray]  # "input", "target", and "weight" / "pos_weight" when given
    loss_shape: tuple[int, ...]
    dtype: np.dtype
    rows: int = 1  # the batch size that batchmean divides by
    mask: np.ndarray | None = None  # boolean, shape == loss_shape (batched like the arrays)
    target_kind: TargetKind | None = None  # class losses only
    warnings: list[str] = field(default_factory=list)
    # the non-finite check (the template's last step), left to the engine (``defer_finite``), which calls it with
    # this batch unless the chunk's sum shows every input finite (:attr:`LossSpec.propagates`). It holds no
    # reference to the batch: a cycle would keep every chunk's arrays until the garbage collector ran
    unchecked: Callable[[Batch], None] | None = None


# numpy formula: float64 arrays and option values -> per-element values (and mean's denominators).
NumpyFn = Callable[[dict[str, np.ndarray], dict[str, Any], Batch], Elements]
# torch call: torch.nn.functional, tensors, option values, reduction string -> torch's result.
TorchFn = Callable[[Any, dict[str, "torch.Tensor"], dict[str, Any], str], "torch.Tensor"]
# closed-form gradient: float64 arrays, option values, batch, and the grad_output of each element's value
# (see reduction.upstream) -> d(loss)/d(first file), shaped like that file's array in the batch.
GradFn = Callable[[dict[str, np.ndarray], dict[str, Any], Batch, np.ndarray], np.ndarray]
# extra domain check on the user's arguments, the converted arrays and the option values.
CheckFn = Callable[[dict[str, Any], dict[str, np.ndarray], dict[str, Any]], None]
# a loss's word on its reduction, once the batch is ready: (the reduction asked for, the one resolved, whether
# the legacy flags resolved it, batch) -> warnings to add; raises a LossCliError to refuse the combination.
ReductionCheckFn = Callable[[Reduction, Reduction, bool, Batch], list[str]]


class FileArg(NamedTuple):
    """A file a loss reads. Positional ones (``LossSpec.files``) come in torch's argument order, and the first
    is what --grad differentiates; named ones (``LossSpec.extras``) are keywords of compute() and options of
    the command line (``--linear-bias FILE``, ``--weight``/``-w FILE``)."""

    name: str  # compute()'s and torch's name for it: "input", "target", "var", "weight"
    help: str
    number_ok: bool = False  # the command line also takes a number here (gaussian-nll's var)
    short: str | None = None  # a named file's short option on the command line: "-w"


PREDICTIONS_AND_TARGETS = (FileArg("input", "predictions"), FileArg("target", "targets"))
# the named files that losses share; a loss's weight takes its own help (LossSpec.weight_help)
WEIGHT = FileArg("weight", "weights (FILE)", short="-w")
POS_WEIGHT = FileArg("pos_weight", "weight of positive examples (FILE), broadcast to the input")
MASK = FileArg("mask", "0/1 or boolean, the loss's shape: mean divides by what the selected elements contribute",
               short="-m")


@dataclass(frozen=True)
class LossSpec:
    """One loss. ``family`` owns the checks its losses share (a :class:`Family`, defined with the loss)."""

    name: str  # command name: "smooth-l1"
    torch_name: str  # torch.nn.functional name: "smooth_l1_loss"
    summary: str  # one line for `--help` listings
    formula: str  # per-element formula, as text
    mean_rule: str  # what `mean` divides by
    family: Family
    numpy: NumpyFn
    torch: TorchFn
    grad: GradFn
    files: tuple[FileArg, ...] = PREDICTIONS_AND_TARGETS
    # optional arrays, as ``--linear-bias FILE`` on the command line and keywords of compute()
    optional_files: tuple[FileArg, ...] = ()
    reductions: tuple[Reduction, ...] = STANDARD
    options: tuple[Option, ...] = ()
    weight_help: str | None = None  # None: the loss takes no --weight
    pos_weight: bool = False
    example: str = ""  # runnable on samples/
    check: CheckFn | None = None
    reduction_check: ReductionCheckFn | None = None  # kl-div: torch's warning for mean, batchmean's limits
    # every NaN or ±inf in a float input makes the value of an element it enters non-finite: a finite sum of
    # the values then proves every input finite, and the engine checks them only when it is not (a pass over
    # each file saved; tests/test_losses.py holds every loss that claims it to it)
    propagates: bool = False

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    @property
    def extras(self) -> tuple[FileArg, ...]:
        """The named files the loss takes, in --help order: its optional files, weight, pos_weight, mask."""
        weight = (WEIGHT._replace(help=self.weight_help),) if self.weight_help else ()
        pos_weight = (POS_WEIGHT,) if self.pos_weight else ()
        return (*self.optional_files, *weight, *pos_weight, MASK)


class Arg(NamedTuple):
    """An array with the name it goes by in messages: ``target (labels.csv)``."""

    role: str
    array: np.ndarray
    source: str | None = None
    number: bool = False  # given as a plain number, not an array (a FileArg with number_ok)
    # streaming (losscli.engine): ``array`` holds rows [offset, offset + len) of an array of shape ``whole``;
    # messages name positions and shapes in that whole array
    offset: int = 0
    whole: tuple[int, ...] | None = None
    nulls: np.ndarray | None = None  # rows (of the whole array) that held a missing value, read as 0
    locate: Callable[[int], str] | None = None  # a row of the whole array -> where it is (shards: which file)

    @property
    def label(self) -> str:
        return f"{self.role} ({self.source})" if self.source else self.role

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the whole array (``array.shape`` unless this is a chunk of rows)."""
        return self.array.shape if self.whole is None else self.whole


BROADCAST_WARNING = (
    "Using a target size ({target}) that is different to the input size ({input}). This will likely lead "
    "to incorrect results due to broadcasting. Please ensure they have the same size."
)


def torch_size(shape: tuple[int, ...]) -> str:
    """A shape as torch prints it in its warnings: ``torch.Size([3, 4])``."""
    return f"torch.Size([{', '.join(map(str, shape))}])"


def shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def position(array: np.ndarray, flat_index: int, arg: Arg | None = None) -> str:
    """Where a flat index lies in an array, for messages: ``index (3, 1)``, or ``index 4`` in 1-D; in an
    array of shards, also the shard and its row: ``index 2000777 (t-2.npy row 777)``. ``arg``: the argument
    the array is (or is computed from): a chunk of rows of a larger one starts at row ``arg.offset``."""
    offset = arg.offset if arg is not None else 0
    where = [int(i) for i in np.unravel_index(flat_index, array.shape)]
    if where:
        where[0] += offset
    shown = f"index {where[0]}" if array.ndim == 1 else f"index {tuple(where)}"
    if where and arg is not None and arg.locate is not None:
        shown += f" ({arg.locate(where[0])})"
    return shown


def offending(array: np.ndarray, flat_index: int, arg: Arg | None = None) -> str:
    """``7 at index (12,)``: a bad value in its dtype's shortest form, and where it is."""
    return f"{array.reshape(-1)[flat_index]!s} at {position(array, flat_index, arg)}"


def first(condition: np.ndarray) -> int | None:
    """Flat index of the first True, or None."""
    hits = np.flatnonzero(condition)
    return int(hits[0]) if hits.size else None


def select(condition: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.where(condition, x, 0.0)`` for a float array ``x`` that broadcasts to condition's shape, by masking
    x's bits: exact (x's own bits where the condition holds, +0.0 elsewhere whatever x holds there, inf and NaN
    included) and branch-free. numpy's where takes a branch per element, about 8 ns an element where the
    condition is unpredictable (random -1/1 targets, sparse ones), some 20 times these three passes.

    >>> select(np.array([True, False, True]), np.array([1.5, np.inf, np.nan]))
    array([1.5, 0. , nan])
    """
    x = np.asarray(x)  # 0-d arithmetic gives numpy scalars
    bits = np.dtype(f"i{x.dtype.itemsize}")
    mask = np.asarray(condition).astype(bits)
    np.negative(mask, out=mask)  # 0 or every bit set
    return np.bitwise_and(mask, x.view(bits), out=mask).view(x.dtype)


def numeric(arg: Arg) -> np.ndarray:
    if arg.array.dtype.kind not in "biuf":
        raise ValueDomainError(f"{arg.label}: expected a numeric array, but got dtype {arg.array.dtype}")
    return arg.array


def float_dtype(*args: Arg) -> np.dtype:
    """The dtype the loss is computed in: floats promote as torch promotes them; all-integer inputs give
    float32, torch's default dtype."""
    floats = [a.array.dtype for a in args if a.array.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float32)


class NonFinite(str):
    """The warning about NaN/Inf in one file; warnings of chunks of it merge (:meth:`merge`) into one."""

    def __new__(cls, label: str, count: int, where: str) -> NonFinite:
        text = f"{label} holds {count} non-finite value(s) (first: {where}); the result propagates them"
        warning = super().__new__(cls, text)
        warning.label, warning.count, warning.where = label, count, where
        return warning

    def merge(self, later: NonFinite) -> NonFinite:
        """This warning and one about later rows of the same file: the total count, the first position."""
        return NonFinite(self.label, self.count + later.count, self.where)

    def __getnewargs__(self) -> tuple[str, int, str]:  # pickled: a dask worker's chunk sends its warnings back
        return self.label, self.count, self.where


class Unusual(str):
    """A warning about values torch computes with but the loss's usual reading does not expect (a target other
    than -1 or 1, ...); under ``strict`` the template refuses them with :attr:`error`, which names the first."""

    def __new__(cls, text: str, error: str) -> Unusual:
        warning = super().__new__(cls, text)
        warning.error = error
        return warning

    def __getnewargs__(self) -> tuple[str, str]:  # pickled: a dask worker's chunk sends its warnings back
        return str(self), self.error


def note_unusual(warnings: list[str], arg: Arg, bad: np.ndarray, expected: str, torch_does: str) -> None:
    """Warn that ``arg`` holds values other than ``expected`` where ``bad``, saying what torch does with them.
    The text names no position, so that the chunks of a stream give one warning; the error under strict does."""
    where = first(bad)
    if where is None:
        return
    shown = offending(arg.array, where, arg)
    warnings.append(Unusual(f"{arg.label} holds values other than {expected}; {torch_does}",
                            f"{arg.label}: expected {expected} ({{strict=True}}), but got {shown}; {torch_does}"))


def check_nulls(args: dict[str, Arg], mask: np.ndarray | None, shared: tuple[str, ...] = ()) -> None:
    """A row that held a missing value (a null of a columnar file, read as 0) must be one the mask leaves out
    whole, where the file's rows are the loss's rows (not a file every sample shares: ``shared``); anywhere
    else it is refused."""
    for name, arg in args.items():
        if arg.nulls is None or not arg.nulls.size:
            continue
        rows = arg.nulls - arg.offset
        covered = (mask is not None and mask.ndim >= 1 and len(mask) == len(arg.array)
                   and name not in shared)
        if covered:
            kept = mask.reshape(len(mask), -1)[rows].any(axis=1)
            rows = rows[kept]
        if rows.size:
            raise ValueDomainError(f"{arg.label}: expected a number, but got a null (a missing value) in row "
                                   f"{int(rows[0]) + arg.offset}, which {{mask}} does not leave out")


def check_finite(arg: Arg, nan_policy: str, warnings: list[str]) -> None:
    """Warn about NaN/Inf (``propagate``), or refuse them (``raise``)."""
    finite = np.isfinite(arg.array)
    count = finite.size - int(np.count_nonzero(finite))
    if count:
        report_non_finite(arg, count, first(~finite), nan_policy, warnings)


def report_non_finite(arg: Arg, count: int, flat_index: int, nan_policy: str, warnings: list[str]) -> None:
    """Warn about ``count`` NaN/Inf in ``arg``, the first at ``flat_index`` of its array (``propagate``), or
    refuse them (``raise``)."""
    where = offending(arg.array, flat_index, arg)
    if nan_policy == "raise":
        raise ValueDomainError(f"{arg.label}: expected finite values ({{nan_policy=raise}}), but got {where}")
    warnings.append(NonFinite(arg.label, count, where))


def broadcast_to_loss(arg: Arg, loss_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An element weight expanded to the loss's shape, as torch expands it."""
    array = numeric(arg).astype(dtype, copy=False)
    try:
        if np.broadcast_shapes(array.shape, loss_shape) == loss_shape:
            return np.broadcast_to(array, loss_shape)
    except ValueError:
        pass
    raise ShapeError(
        f"{arg.label}: expected a shape that broadcasts to the loss's shape {shape_str(loss_shape)}, "
        f"but got {shape_str(array.shape)}"
    )


def check_mask(arg: Arg, loss_shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 or boolean mask of exactly the loss's shape, as a boolean array."""
    array = numeric(arg)
    if array.shape != loss_shape:
        raise ShapeError(
            f"{arg.label}: expected the loss's shape {shape_str(loss_shape)}, but got {shape_str(array.shape)}"
        )
    if array.dtype == bool:
        return array
    bad = (array != 0) & (array != 1)
    where = first(bad)
    if where is not None:
        raise ValueDomainError(
            f"{arg.label}: expected 0/1 or true/false, but got {offending(array, where, arg)}"
        )
    return array != 0


def shared_shape(x_arg: Arg, t_arg: Arg, broadcast: bool) -> tuple[int, ...]:
    """The shape of an element-wise loss of input and target: theirs, or with ``broadcast`` the shape they
    broadcast to, as torch broadcasts them."""
    x, t = numeric(x_arg), numeric(t_arg)
    if x.shape == t.shape:
        return x.shape
    if not broadcast:
        raise ShapeError(
            f"{t_arg.label}: expected the input's shape {shape_str(x.shape)}, but got {shape_str(t.shape)} "
            "(pass {broadcast=True} to broadcast them as torch does)"
        )
    try:
        return tuple(np.broadcast_shapes(x.shape, t.shape))
    except ValueError:
        raise ShapeError(
            f"{t_arg.label}: expected a shape that broadcasts with the input's {shape_str(x.shape)}, but got "
            f"{shape_str(t.shape)}"
        ) from None


def class_weight(arg: Arg, classes: int, dtype: np.dtype) -> np.ndarray:
    """A weight per class, shape ``(C,)``."""
    w = numeric(arg)
    if w.shape != (classes,):
        raise ShapeError(f"{arg.label}: expected one weight per class, shape ({classes},), but got "
                         f"{shape_str(w.shape)}")
    return w.astype(dtype, copy=False)


def integers(arg: Arg, what: str) -> np.ndarray:
    """Integer-valued arrays (class indices, lengths) as int64; floats are refused, not rounded."""
    t = numeric(arg)
    if t.dtype.kind not in "iu":
        raise ValueDomainError(f"{arg.label}: expected integer {what}, but got {t.dtype} values; save them as "
                               "integers")
    return as_int64(arg, t, what)


INT64_MAX = np.iinfo(np.int64).max


def as_int64(arg: Arg, array: np.ndarray, what: str) -> np.ndarray:
    """Integers as int64, torch's index type; uint64 values beyond it are refused (and shown as they are),
    not wrapped around to negative numbers."""
    if array.dtype == np.uint64:
        where = first(array > INT64_MAX)
        if where is not None:
            raise ValueDomainError(f"{arg.label}: expected {what} that fit in int64 (torch's index type), but got "
                                   f"{offending(array, where, arg)}")
    return array.astype(np.int64, copy=False)


def with_batch_axis(arrays: dict[str, np.ndarray], mask: np.ndarray | None,
                    names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """An unbatched sample given a batch axis of 1 in ``names`` and the mask, so the backends see one layout."""
    arrays = {k: v[None] if k in names else v for k, v in arrays.items()}
    return arrays, None if mask is None else mask[None]


def widest_row(shapes: dict[str, tuple[int, ...]], split: frozenset[str]) -> int:
    """Elements in a row of the widest of the files ``split`` (at least 1)."""
    return max(math.prod(shapes[name][1:]) for name in split) or 1


def element_rows(shapes: dict[str, tuple[int, ...]], broadcast: bool) -> frozenset[str] | None:
    """:meth:`Family.stream` for element-wise losses: the files of the loss's rank whose first axis is the loss's
    (a weight of lower rank or with a first axis of 1 broadcasts: every chunk shares it)."""
    x, t = shapes["input"], shapes["target"]
    try:
        loss = np.broadcast_shapes(x, t) if broadcast else x
    except ValueError:
        return None
    if not loss or (not broadcast and t != x):
        return None  # a 0-d loss has no rows; shapes that do not fit are the in-memory checks' to report
    return frozenset(name for name, shape in shapes.items() if len(shape) == len(loss) and shape[0] == loss[0])


@dataclass
class Layout:
    """What a family's shape checks found (:meth:`Family.layout`), for the later steps of the template."""

    loss_shape: tuple[int, ...]  # the shape of the user's ``none`` output
    rows: int = 1  # the batch size that batchmean divides by
    classes: int = 0  # class losses: C, the length of a class weight
    target_kind: TargetKind | None = None  # class losses only
    # an unbatched sample: the files that get a batch axis of 1 (the mask gets one too); None: batched
    batch_axis: tuple[str, ...] | None = None
    warnings: list[str] = field(default_factory=list)


class Family:
    """Base: the one template that prepares a batch (:meth:`prepare`), and what every family does with
    weights, masks and non-finite values. A family implements the template's steps, never its order."""

    broadcasts = False  # whether --broadcast means anything here
    shapes = ""  # the shapes the family takes, for --help
    # streaming (losscli.engine): the least rank of the first file at which the loss has a first axis of samples
    # (None: the family never streams), and the files that every sample shares (class weights)
    stream_rank: int | None = None
    shared_files: tuple[str, ...] = ()

    def classes(self, spec: LossSpec, batch: Batch) -> tuple[np.ndarray, int] | None:
        """Each element's class (an array that broadcasts to the batch's loss), and how many classes there
        are, for views by class (``--by-class``); None for a loss whose elements have no class of their own."""
        return None

    def stream(self, spec: LossSpec, shapes: dict[str, tuple[int, ...]], broadcast: bool) -> frozenset[str] | None:
        """The files read in chunks of rows when the loss streams: those whose first axis is the loss's first
        axis (``shapes``: every file's whole shape). The others are shared by every chunk. None: the loss
        does not stream (a 0-d loss, or a family whose samples are not along the first axis)."""
        lead = shapes[spec.files[0].name]
        if self.stream_rank is None or len(lead) < self.stream_rank:
            return None
        return frozenset(name for name, shape in shapes.items()
                         if name not in self.shared_files and shape[:1] == lead[:1])

    def work_width(self, spec: LossSpec, shapes: dict[str, tuple[int, ...]], split: frozenset[str]) -> int:
        """Elements of each row that the numpy formula goes through (its temporaries grow with them): arrays
        already in memory, which a chunk only views, stream in chunks sized by it. Default: every element
        of the widest file read in chunks (:func:`widest_row`)."""
        return widest_row(shapes, split)

    def prepare(self, spec: LossSpec, args: dict[str, Arg], params: dict[str, Any], *,
                broadcast: bool, nan_policy: str, strict: bool = False, defer_finite: bool = False) -> Batch:
        """The user's arrays, checked and converted, as a batch for the backends. Every loss goes through
        these steps in this order: shapes, dtype, the loss's own files, its named files (``spec.extras``),
        the loss's own check (``spec.check``), the batch, and the non-finite values. Values torch computes
        with but the loss does not expect are warnings (:class:`Unusual`), or with ``strict`` refused.
        ``defer_finite``: for a loss that :attr:`~LossSpec.propagates` non-finite values, the last step is left
        to the caller as ``batch.unchecked``."""
        layout = self.layout(spec, args, params, broadcast)
        dtype = self.dtype(spec, args, layout)
        arrays = self.convert(spec, args, params, layout, dtype)
        mask = self._extras(spec, args, layout, dtype, arrays)
        check_nulls(args, mask, self.shared_files)
        if spec.check is not None:
            spec.check(args, arrays, params)
        batch = self.batch(arrays, mask, layout, dtype)
        unusual = [w for w in batch.warnings if isinstance(w, Unusual)]
        if strict and unusual:
            raise ValueDomainError(unusual[0].error)
        if defer_finite and spec.propagates:
            batch.unchecked = lambda checked: self.non_finite(checked, args, nan_policy)
        else:
            self.non_finite(batch, args, nan_policy)
        return batch

    def _extras(self, spec: LossSpec, args: dict[str, Arg], layout: Layout, dtype: np.dtype,
                arrays: dict[str, np.ndarray]) -> np.ndarray | None:
        """The named files given, checked and converted into ``arrays`` in --help order; returns the mask."""
        mask = None
        for extra in spec.extras:
            arg = args.get(extra.name)
            if arg is None:
                continue
            if extra.name == MASK.name:
                mask = check_mask(arg, layout.loss_shape)
            elif extra.name == WEIGHT.name:
                arrays["weight"] = self.weight(arg, layout, dtype)
            elif extra.name == POS_WEIGHT.name:
                arrays["pos_weight"] = self.pos_weight(arg, layout, dtype)
            else:
                arrays[extra.name] = self.optional_file(arg, layout, dtype)
        return mask

    # -- the template's steps ---------------------------------------------------------------------------

    def layout(self, spec: LossSpec, args: dict[str, Arg], params: dict[str, Any], broadcast: bool) -> Layout:
        """Step 1: check the shapes of the loss's files (and what follows from them) and give the layout."""
        raise NotImplementedError

    def dtype(self, spec: LossSpec, args: dict[str, Arg], layout: Layout) -> np.dtype:
        """Step 2: the dtype the loss is computed in (torch's promotion of the input's and target's)."""
        return float_dtype(args["input"], args["target"])

    def convert(self, spec: LossSpec, args: dict[str, Arg], params: dict[str, Any], layout: Layout,
                dtype: np.dtype) -> dict[str, np.ndarray]:
        """Step 3: the loss's own files (``spec.files``), their values checked, converted for the backends."""
        raise NotImplementedError

    def weight(self, arg: Arg, layout: Layout, dtype: np.dtype) -> np.ndarray:
        """Step 4, ``weight``: an element weight, broadcast to the loss's shape (class losses: one per class)."""
        return broadcast_to_loss(arg, layout.loss_shape, dtype)

    def pos_weight(self, arg: Arg, layout: Layout, dtype: np.dtype) -> np.ndarray:
        """Step 4, ``pos_weight``: broadcast to the loss's shape."""
        return broadcast_to_loss(arg, layout.loss_shape, dtype)

    def optional_file(self, arg: Arg, layout: Layout, dtype: np.dtype) -> np.ndarray:
        """Step 4, an optional file of the loss (``spec.optional_files``; its shape checked in step 1)."""
        return numeric(arg).astype(dtype, copy=False)

    def batch(self, arrays: dict[str, np.ndarray], mask: np.ndarray | None, layout: Layout,
              dtype: np.dtype) -> Batch:
        """Step 6 (after ``spec.check``): the batch, with a batch axis of 1 for an unbatched sample."""
        if layout.batch_axis is not None:
            arrays, mask = with_batch_axis(arrays, mask, layout.batch_axis)
        return Batch(arrays, layout.loss_shape, dtype, rows=layout.rows, mask=mask, target_kind=layout.target_kind,
                     warnings=layout.warnings)

    def non_finite(self, batch: Batch, args: dict[str, Arg], nan_policy: str) -> None:
        """Step 7: warn about (or refuse) NaN/Inf in every file the loss reads as floats."""
        for name, arg in args.items():
            if name in batch.arrays and batch.arrays[name].dtype.kind == "f":
                check_finite(arg, nan_policy, batch.warnings)

    # -- masks and torch --------------------------------------------------------------------------------

    def valid(self, batch: Batch, params: dict[str, Any]) -> np.ndarray | None:
        """Elements that count before any mask (None: all)."""
        return None

    def torch_select(self, torch: Any, tensors: dict[str, torch.Tensor], mask: torch.Tensor,
                     params: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        """The masked problem as torch sees it: every tensor expanded to the loss's shape, then the
        selected elements taken (a mask equals slicing)."""
        shape = tuple(batch.loss_shape)
        return {k: v.expand(shape)[mask] for k, v in tensors.items()}
