"""The numpy backend: per-element losses (float32 for float32 inputs, else float64), the shared reduction,
closed-form gradients.

The arithmetic lives here; :mod:`losscli.engine` runs it over a batch in chunks of rows (one chunk when the
batch is small) and merges the chunks' sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..losses import Batch, LossSpec
from ..reduction import Elements, Partial, Reduction, upstream


def elements(spec: LossSpec, batch: Batch, params: dict[str, Any], *,
             exact: bool = False) -> tuple[dict[str, np.ndarray], Elements]:
    """The arrays as computed and the loss's per-element values (NaN/Inf propagate as in torch: the caller has
    warned about them).

    float32 losses compute in float32, as torch does (numpy's float32 exp and log run several times faster
    than float64's), and the reduction sums them in float64; float16 and float64 losses, and ``exact`` ones
    (gradients), compute in float64."""
    work = np.float32 if batch.dtype == np.float32 and not exact else np.float64
    arrays = {k: v.astype(work, copy=False) if v.dtype.kind == "f" else v for k, v in batch.arrays.items()}
    with np.errstate(all="ignore"):
        return arrays, spec.numpy(arrays, params, batch)


def gradient(spec: LossSpec, batch: Batch, params: dict[str, Any], arrays: dict[str, np.ndarray],
             found: Elements, reduction: Reduction, totals: Partial | None, rows: int) -> np.ndarray:
    """d(loss)/d(first file) in the batch's layout, from the per-element values and the reduction's sums."""
    with np.errstate(all="ignore"):
        coef = upstream(found, batch.mask, reduction, totals, rows)
        return spec.grad(arrays, params, batch, coef) + 0.0  # + 0.0: no -0 where coef is 0
