"""Checks and layouts shared by a family of losses, the same for both backends.

A family turns the user's arrays into a :class:`~losscli.losses.spec.Batch` (or raises a
:class:`~losscli.errors.LossCliError` naming the argument), and knows how a mask is applied when torch
does the arithmetic: by selecting elements (element-wise losses), or by turning masked-out class
targets into ``ignore_index`` so that class weights keep torch's denominator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OptionError, ShapeError, ValueDomainError
from .spec import Batch, LossSpec, TargetKind

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Arg:
    """An array with the name it goes by in messages: ``target (labels.csv)``."""

    role: str
    array: np.ndarray
    source: str | None = None
    number: bool = False  # given as a plain number, not an array (a FileArg with number_ok)
    # streaming (losscli.stream): ``array`` holds rows [offset, offset + len) of an array of shape ``whole``;
    # messages name positions and shapes in that whole array
    offset: int = 0
    whole: tuple[int, ...] | None = None

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


def position(array: np.ndarray, flat_index: int, offset: int = 0) -> str:
    """Where a flat index lies in an array, for messages: ``index (3, 1)``, or ``index 4`` in 1-D.
    ``offset``: the array is a chunk of rows of a larger one, starting at that row (``Arg.offset``)."""
    if array.ndim == 1:
        return f"index {flat_index + offset}"
    where = [int(i) for i in np.unravel_index(flat_index, array.shape)]
    if where:
        where[0] += offset
    return f"index {tuple(where)}"


def offending(array: np.ndarray, flat_index: int, offset: int = 0) -> str:
    """``7 at index (12,)``: a bad value in its dtype's shortest form, and where it is."""
    return f"{array.reshape(-1)[flat_index]!s} at {position(array, flat_index, offset)}"


def first(condition: np.ndarray) -> int | None:
    """Flat index of the first True, or None."""
    hits = np.flatnonzero(condition)
    return int(hits[0]) if hits.size else None


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


def check_finite(arg: Arg, nan_policy: str, warnings: list[str]) -> None:
    """Warn about NaN/Inf (``propagate``), or refuse them (``raise``)."""
    finite = np.isfinite(arg.array)
    count = finite.size - int(np.count_nonzero(finite))
    if not count:
        return
    where = offending(arg.array, first(~finite), arg.offset)
    if nan_policy == "raise":
        raise ValueDomainError(f"{arg.label}: expected finite values (--nan-policy raise), but got {where}")
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
            f"{arg.label}: expected 0/1 or true/false, but got {offending(array, where, arg.offset)}"
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
            "(pass --broadcast to broadcast them as torch does)"
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
    return t.astype(np.int64, copy=False)


def with_batch_axis(arrays: dict[str, np.ndarray], mask: np.ndarray | None,
                    names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """An unbatched sample given a batch axis of 1 in ``names`` and the mask, so the backends see one layout."""
    arrays = {k: v[None] if k in names else v for k, v in arrays.items()}
    return arrays, None if mask is None else mask[None]


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


class Family:
    """Base: what every family does with weights, masks and non-finite values."""

    broadcasts = False  # whether --broadcast means anything here
    shapes = ""  # the shapes the family takes, for --help
    # streaming (losscli.stream): the least rank of the first file at which the loss has a first axis of samples
    # (None: the family never streams), and the files that every sample shares (class weights)
    stream_rank: int | None = None
    shared_files: tuple[str, ...] = ()

    def stream(self, spec: LossSpec, shapes: dict[str, tuple[int, ...]], broadcast: bool) -> frozenset[str] | None:
        """The files read in chunks of rows when the loss streams: those whose first axis is the loss's first
        axis (``shapes``: every file's whole shape). The others are shared by every chunk. None: the loss
        does not stream (a 0-d loss, or a family whose samples are not along the first axis)."""
        lead = shapes[spec.files[0].name]
        if self.stream_rank is None or len(lead) < self.stream_rank:
            return None
        return frozenset(name for name, shape in shapes.items()
                         if name not in self.shared_files and shape[:1] == lead[:1])

    def prepare(self, spec: LossSpec, args: dict[str, Arg], params: dict[str, Any], *,
                broadcast: bool, nan_policy: str) -> Batch:
        raise NotImplementedError

    def valid(self, batch: Batch, params: dict[str, Any]) -> np.ndarray | None:
        """Elements that count before any mask (None: all)."""
        return None

    def torch_select(self, torch: Any, tensors: dict[str, torch.Tensor], mask: torch.Tensor,
                     params: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        """The masked problem as torch sees it: every tensor expanded to the loss's shape, then the
        selected elements taken (a mask equals slicing)."""
        shape = tuple(batch.loss_shape)
        return {k: v.expand(shape)[mask] for k, v in tensors.items()}

    @staticmethod
    def _finish(batch: Batch, args: dict[str, Arg], nan_policy: str) -> Batch:
        """Warn about (or refuse) NaN/Inf in every file the loss reads as floats."""
        for name, arg in args.items():
            if name in batch.arrays and batch.arrays[name].dtype.kind == "f":
                check_finite(arg, nan_policy, batch.warnings)
        return batch


class Elementwise(Family):
    """Losses of ``input - target`` (mse, l1, smooth-l1, huber): weights broadcast to the loss."""

    broadcasts = True
    shapes = "input and target of one shape (with --broadcast: shapes that broadcast, as in torch)"

    def stream(self, spec, shapes, broadcast):
        return element_rows(shapes, broadcast)

    def prepare(self, spec, args, params, *, broadcast, nan_policy):
        x, y = args["input"].array, args["target"].array
        loss_shape = shared_shape(args["input"], args["target"], broadcast)
        whole_x, whole_y = args["input"].shape, args["target"].shape  # the whole arrays' shapes, chunked or not
        warnings = [] if whole_x == whole_y else [
            BROADCAST_WARNING.format(target=torch_size(whole_y), input=torch_size(whole_x))]
        dtype = float_dtype(args["input"], args["target"])
        arrays = {"input": x.astype(dtype, copy=False), "target": y.astype(dtype, copy=False)}
        if "weight" in args:
            arrays["weight"] = broadcast_to_loss(args["weight"], loss_shape, dtype)
        if "pos_weight" in args:
            arrays["pos_weight"] = broadcast_to_loss(args["pos_weight"], loss_shape, dtype)
        mask = check_mask(args["mask"], loss_shape) if "mask" in args else None
        if spec.check is not None:
            spec.check(args, arrays, params)
        batch = Batch(arrays, tuple(loss_shape), dtype, mask=mask, warnings=warnings)
        return self._finish(batch, args, nan_policy)


class Binary(Elementwise):
    """Binary cross-entropies: target and input of one shape (torch refuses otherwise), weight and
    pos_weight broadcast to it, ``mean`` divides by the element count whatever the weights."""

    broadcasts = False
    shapes = "input and target of one shape"

    def prepare(self, spec, args, params, *, broadcast, nan_policy):
        x, y = args["input"].array, args["target"].array
        if x.shape != y.shape:
            raise ShapeError(
                f"{args['target'].label}: expected the input's shape {shape_str(x.shape)}, but got "
                f"{shape_str(y.shape)} ({spec.name} never broadcasts: torch requires equal sizes)"
            )
        return super().prepare(spec, args, params, broadcast=False, nan_policy=nan_policy)


def check_probabilities(args: dict[str, Arg], arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
    """bce's input: probabilities in [0, 1] (torch rejects anything else, NaN included)."""
    x = arrays["input"]
    bad = ~((x >= 0) & (x <= 1))
    where = first(bad)
    if where is not None:
        raise ValueDomainError(
            f"{args['input'].label}: expected probabilities in [0, 1], but got "
            f"{offending(x, where, args['input'].offset)} (use bce-with-logits for logits)"
        )


class Classes(Family):
    """nll and cross-entropy: input ``(N, C, d1, ...)`` or ``(C,)``; target class indices of shape
    ``(N, d1, ...)`` (or ``()``), or for cross-entropy class probabilities of the input's shape."""

    stream_rank = 2  # (N, C, ...): rows are samples; a (C,) input is one sample
    shared_files = ("weight",)

    def __init__(self, probabilities: bool):
        self.probabilities = probabilities
        self.shapes = "input (N, C), (N, C, d1, ...) or (C,); target class indices (N,), (N, d1, ...) or ()" + (
            ", or class probabilities of the input's shape" if probabilities else "")

    def prepare(self, spec, args, params, *, broadcast, nan_policy):
        if broadcast:
            raise OptionError(f"--broadcast: {spec.name} has no broadcasting; its target's shape follows "
                              "from the input's")
        x_arg, t_arg = args["input"], args["target"]
        x, t = numeric(x_arg), numeric(t_arg)
        if x.ndim == 0:
            raise ShapeError(f"{x_arg.label}: expected scores of shape (N, C, ...) or (C,), but got a scalar")
        classes = x.shape[1] if x.ndim > 1 else x.shape[0]
        if classes == 0:
            raise ShapeError(f"{x_arg.label}: expected at least one class, but got shape {shape_str(x.shape)}")
        index_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        kind = self._kind(spec, params.get("target_kind", TargetKind.auto), x, t_arg)
        if kind is TargetKind.prob:
            self._check_nothing_ignored(spec, params)
            dtype = float_dtype(x_arg, t_arg)
            target = t.astype(dtype, copy=False)
            loss_shape = index_shape
        else:
            dtype = float_dtype(x_arg)
            if t.shape != index_shape:
                raise ShapeError(
                    f"{t_arg.label}: expected class indices of shape {shape_str(index_shape)} for input "
                    f"{shape_str(x.shape)}, but got {shape_str(t.shape)}"
                )
            integral_floats = params.get("target_kind") is TargetKind.index  # asked for, not inferred
            target = self._indices(t_arg, classes, params["ignore_index"], integral_floats)
            loss_shape = index_shape
        self._check_smoothing(params)
        arrays = {"input": x.astype(dtype, copy=False), "target": target}
        if "weight" in args:
            arrays["weight"] = class_weight(args["weight"], classes, dtype)
        mask = check_mask(args["mask"], loss_shape) if "mask" in args else None
        if x.ndim == 1:
            arrays, mask = with_batch_axis(arrays, mask, ("input", "target"))
        batch = Batch(arrays, tuple(loss_shape), dtype, mask=mask, target_kind=kind)
        return self._finish(batch, args, nan_policy)

    @staticmethod
    def _check_nothing_ignored(spec: LossSpec, params: dict[str, Any]) -> None:
        """Probability targets: torch refuses any ignore_index but its default."""
        default = spec.defaults()["ignore_index"]
        if params["ignore_index"] != default:
            raise OptionError(f"--ignore-index: expected the default {default} with class-probability targets "
                              f"(nothing is ignored there), but got {params['ignore_index']}")

    @staticmethod
    def _check_smoothing(params: dict[str, Any]) -> None:
        smoothing = params.get("label_smoothing", 0.0)
        if not 0.0 <= smoothing <= 1.0:
            raise OptionError(f"--label-smoothing: expected a value in [0, 1], but got {smoothing}")

    def _kind(self, spec: LossSpec, asked: TargetKind, x: np.ndarray, t_arg: Arg) -> TargetKind:
        if not self.probabilities:
            return TargetKind.index
        if asked is TargetKind.auto:  # torch: probabilities exactly when the shapes match
            return TargetKind.prob if t_arg.array.shape == x.shape else TargetKind.index
        if asked is TargetKind.prob and t_arg.array.shape != x.shape:
            raise ShapeError(f"{t_arg.label}: expected class probabilities of the input's shape "
                             f"{shape_str(x.shape)}, but got {shape_str(t_arg.array.shape)}")
        return asked

    def _indices(self, t_arg: Arg, classes: int, ignore_index: int, integral_floats: bool) -> np.ndarray:
        t = t_arg.array
        if t.dtype.kind == "f":
            integral = bool(np.all(np.isfinite(t) & (t == np.round(t))))
            if not (integral_floats and integral):
                hint = ("; pass --target-kind index to read integral floats as indices" if self.probabilities
                        else "; save them as integers")
                raise ValueDomainError(
                    f"{t_arg.label}: expected integer class indices, but got {t.dtype} values{hint}"
                )
        elif t.dtype.kind not in "iu":
            raise ValueDomainError(f"{t_arg.label}: expected integer class indices, but got {t.dtype} values")
        t = t.astype(np.int64, copy=False)
        bad = ((t < 0) | (t >= classes)) & (t != ignore_index)
        where = first(bad)
        if where is not None:
            raise ValueDomainError(
                f"{t_arg.label}: expected class indices in [0, {classes}) or ignore_index {ignore_index}, "
                f"but got {offending(t, where, t_arg.offset)}"
            )
        return t

    def valid(self, batch, params):
        if batch.target_kind is TargetKind.index:
            return batch.arrays["target"] != params["ignore_index"]
        return None

    def torch_select(self, torch, tensors, mask, params, batch):
        if batch.target_kind is TargetKind.index:  # masked out == ignored: class weights keep torch's mean
            ignored = torch.full_like(tensors["target"], params["ignore_index"])
            return {**tensors, "target": torch.where(mask, tensors["target"], ignored)}
        # probabilities: take the selected rows, class axis last, as (M, C)
        picked = {k: tensors[k].movedim(1, -1)[mask] for k in ("input", "target")}
        return {**tensors, **picked}
