"""What :func:`losscli.compute` returns: the value, with everything needed to report and reproduce it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .backends import Backend
from .reduction import Reduction

if TYPE_CHECKING:  # the views' module loads only when a view is asked for
    from .engine.accumulators import Hist, Top
    from .engine.bootstrap import Interval
    from .engine.groups import Group


class InputInfo(NamedTuple):
    role: str
    source: str | None  # the file as the user wrote it; None for an array or a number
    shape: tuple[int, ...]
    dtype: str
    number: float | None = None  # a number given for a file argument (gaussian-nll's var)
    stored_dtype: str | None = None  # what the file holds, where it is not ``dtype`` (bfloat16, read as float32)


class CrossCheck(NamedTuple):
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
    grad: np.ndarray | None = None  # d(loss)/d(first file), that file's shape; with Outputs(grad=True)
    per_sample: np.ndarray | None = None  # (N,) the loss of each sample; with Outputs(per_sample=True)
    top: Top | None = None  # the largest losses; with Outputs(top=K)
    hist: Hist | None = None  # a histogram of the losses; with Outputs(hist=True)
    ci: Interval | None = None  # a confidence interval of the value; with Outputs(ci=LEVEL)
    groups: list[Group] | None = None  # the loss of each group; with compute(by=...) or Outputs(by_class=True)

    def __repr__(self) -> str:
        """One short line: the value as the command line prints it (for ``none``: its shape and dtype), and how
        many elements counted; never a whole array."""
        value = str(self.value[()]) if self.is_scalar else f"<{self.value.dtype} array of shape {self.value.shape}>"
        extra = f", warnings={len(self.warnings)}" if self.warnings else ""
        return (f"LossResult(loss={self.loss!r}, reduction={self.reduction.value!r}, backend={self.backend.value!r}, "
                f"value={value}, selected={self.selected}/{self.count}{extra})")

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
