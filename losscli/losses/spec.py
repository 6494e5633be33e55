"""What a loss is, once: the definition that drives its command, its help, and both backends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..reduction import STANDARD, Elements, Reduction

if TYPE_CHECKING:  # torch is imported lazily, by the torch backend only
    import torch


class TargetKind(str, enum.Enum):
    """How a class loss reads its target: class indices, or class probabilities of the input's shape."""

    auto = "auto"
    index = "index"
    prob = "prob"


@dataclass(frozen=True)
class Option:
    """A scalar, loss-specific option such as ``--beta`` or ``--ignore-index``."""

    name: str  # keyword of losscli.compute and torch.nn.functional ("ignore_index")
    type: type
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


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


@dataclass(frozen=True)
class FileArg:
    """A positional file argument, in torch's argument order. The first is what --grad differentiates."""

    name: str  # compute()'s and torch's name for it: "input", "target", "var"
    help: str
    number_ok: bool = False  # the command line also takes a number here (gaussian-nll's var)
    short: str | None = None  # a short flag for a named file ("-w")


PREDICTIONS_AND_TARGETS = (FileArg("input", "predictions"), FileArg("target", "targets"))


@dataclass(frozen=True)
class LossSpec:
    """One loss. ``family`` owns the checks its losses share (see :mod:`losscli.losses.families`)."""

    name: str  # command name: "smooth-l1"
    torch_name: str  # torch.nn.functional name: "smooth_l1_loss"
    summary: str  # one line for `--help` listings
    formula: str  # per-element formula, as text
    mean_rule: str  # what `mean` divides by
    family: Any  # a Family (circular import avoided)
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

    @property
    def extras(self) -> tuple[FileArg, ...]:
        """The named files the loss takes besides its positional ones: optional files, weight, pos_weight, mask."""
        found = list(self.optional_files)
        if self.weight_help:
            found.append(FileArg("weight", self.weight_help, short="-w"))
        if self.pos_weight:
            found.append(FileArg("pos_weight", "weight of positive examples (FILE), broadcast to the input"))
        return (*found, FileArg("mask", "0/1 or boolean, the loss's shape: mean divides by what the selected "
                                "elements contribute", short="-m"))

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}
