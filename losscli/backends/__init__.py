"""Backends compute a prepared :class:`~losscli.losses.base.Batch`: numpy (default, never imports
torch; :mod:`.numpy_backend` gives per-element values and gradients that the engine reduces) and torch
(:mod:`.torch_backend`, imported only when asked for)."""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np


class Backend(str, enum.Enum):
    numpy = "numpy"
    torch = "torch"


class Computed(NamedTuple):
    value: np.ndarray  # 0-d for mean/sum; the loss's shape for none
    grad: np.ndarray | None  # d(loss)/d(first file), in the batch's layout; None unless asked for
