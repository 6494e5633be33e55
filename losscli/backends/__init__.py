"""Backends compute a prepared :class:`~losscli.losses.spec.Batch`: numpy (default, never imports
torch) and torch (imported only when asked for)."""

from __future__ import annotations

import enum
from typing import Any, Callable

import numpy as np

from ..losses.spec import Batch, LossSpec
from ..reduction import Reduction


class Backend(str, enum.Enum):
    numpy = "numpy"
    torch = "torch"


# spec, batch, option values, reduction -> the value: a float for mean/sum, the loss's shape for none
RunFn = Callable[[LossSpec, Batch, dict[str, Any], Reduction], np.ndarray]


def runner(backend: Backend) -> RunFn:
    if backend is Backend.torch:
        from . import torch_backend

        return torch_backend.run
    from . import numpy_backend

    return numpy_backend.run
