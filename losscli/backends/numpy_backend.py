"""The numpy backend: per-element losses in float64, then the shared reduction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses.spec import Batch, LossSpec
from ..reduction import Reduction, partial, unreduced


def run(spec: LossSpec, batch: Batch, params: dict[str, Any], reduction: Reduction) -> np.ndarray:
    arrays = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in batch.arrays.items()}
    with np.errstate(all="ignore"):  # NaN/Inf propagate as in torch; the caller has warned about them
        elements = spec.numpy(arrays, params, batch)
        if reduction is Reduction.none:
            return unreduced(elements, batch.mask).reshape(batch.loss_shape)
        return np.asarray(partial(elements, batch.mask).finish(reduction))
