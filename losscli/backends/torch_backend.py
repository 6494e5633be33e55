"""The torch backend: ``torch.nn.functional`` does the arithmetic, autograd the gradient.

A mask is applied the way torch users would: element-wise losses see only the selected elements,
class-index losses see masked-out targets as ``ignore_index`` (see ``Family.torch_select``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import BackendUnavailable
from ..losses import Batch, LossSpec
from ..reduction import Reduction
from . import Computed

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - exercised where torch is missing
    raise BackendUnavailable(
        f"expected an importable torch, but got '{exc}'; install it with pip install 'losscli[torch]' "
        "(or pip install torch==2.13.0 for the CPU build)", argument="backend"
    ) from None

# torch's warnings that losscli raises itself in both backends, so that they appear once
_OWN = ("Using a target size", "size_average and reduce args", "reduction: 'mean' divides the total loss")


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.require(array, requirements=("C", "W")))


def run(spec: LossSpec, batch: Batch, params: dict[str, Any], reduction: Reduction, grad: bool) -> Computed:
    tensors = {k: tensor(v) for k, v in batch.arrays.items()}
    leaf = tensors[spec.files[0].name]
    if grad:
        leaf.requires_grad_(True)
    mask = None if batch.mask is None else tensor(batch.mask)
    if mask is not None and reduction is not Reduction.none:
        tensors = spec.family.torch_select(torch, tensors, mask, params, batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = spec.torch(F, tensors, params, reduction.value)
    batch.warnings.extend(str(w.message) for w in caught if not str(w.message).startswith(_OWN))
    if reduction is Reduction.none and mask is not None:
        out = torch.where(mask.expand(out.shape), out, torch.zeros((), dtype=out.dtype))
    if grad:
        out.backward(torch.ones_like(out))  # none: the gradient of the sum, as backward(ones_like(loss))
    value = out.detach().numpy()
    return Computed(value.reshape(batch.loss_shape) if reduction is Reduction.none else value,
                    None if not grad else _grad_of(leaf).numpy() + 0.0)  # + 0.0: no -0 where masked


def _grad_of(leaf: torch.Tensor) -> torch.Tensor:
    return leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)  # no element depended on it
