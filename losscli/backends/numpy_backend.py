"""The numpy backend: per-element losses in float64, the shared reduction, closed-form gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses.spec import Batch, LossSpec
from ..reduction import Reduction, partial, unreduced, upstream
from . import Computed


def run(spec: LossSpec, batch: Batch, params: dict[str, Any], reduction: Reduction, grad: bool) -> Computed:
    arrays = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in batch.arrays.items()}
    with np.errstate(all="ignore"):  # NaN/Inf propagate as in torch; the caller has warned about them
        elements = spec.numpy(arrays, params, batch)
        if reduction is Reduction.none:
            totals, value = None, unreduced(elements, batch.mask).reshape(batch.loss_shape)
        else:
            totals = partial(elements, batch.mask)
            value = np.asarray(totals.finish(reduction, batch.rows))
        if not grad:
            return Computed(value, None)
        coef = upstream(elements, batch.mask, reduction, totals, batch.rows)
        return Computed(value, spec.grad(arrays, params, batch, coef) + 0.0)  # + 0.0: no -0 where coef is 0
