"""Backends compute a prepared :class:`~losscli.losses.base.Batch`: numpy (default, never imports
torch) and torch (imported only when asked for)."""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import numpy as np

from ..losses import Batch, LossSpec
from ..reduction import Reduction


class Backend(str, enum.Enum):
    numpy = "numpy"
    torch = "torch"


class Computed(NamedTuple):
    value: np.ndarray  # 0-d for mean/sum; the loss's shape for none
    grad: np.ndarray | None  # d(loss)/d(first file), in the batch's layout; None unless asked for


# spec, batch, option values, reduction, whether to differentiate -> Computed
RunFn = Callable[[LossSpec, Batch, dict[str, Any], Reduction, bool], Computed]


def runner(backend: Backend) -> RunFn:
    if backend is Backend.torch:
        from . import torch_backend

        return torch_backend.run
    from . import numpy_backend

    return numpy_backend.run
