"""Reductions: the one place that turns per-element losses into what the user asked for.

Every loss hands over three arrays of the loss's shape (see :class:`Elements`):

* ``values``: the per-element loss, weights already applied (``w * l``, or ``w[target] * l``);
* ``denom``: what ``mean`` divides by, per element (``w`` for weighted mse/l1/smooth-l1, ``w[target]`` for
  nll/cross-entropy, 1 for everything else);
* ``valid``: elements that count (``False`` where a class target equals ``ignore_index``).

A mask narrows ``valid`` further. Then ``sum = Σ values`` and ``mean = Σ values / Σ denom`` over the
selected elements (ctc divides each value by its target length first: ``mean_divisor``), and ``none``
returns ``values`` with unselected entries set to 0. Because the reduction only needs those sums (and a
count), partial results of chunks merge exactly (:meth:`Partial.merge`).
"""

from __future__ import annotations

import enum
import itertools
from typing import NamedTuple

import numpy as np

from .errors import OptionError


class Reduction(str, enum.Enum):
    """What to do with the per-element losses."""

    none = "none"
    mean = "mean"
    sum = "sum"
    batchmean = "batchmean"  # Σ / batch size (kl-div only)


STANDARD = (Reduction.none, Reduction.mean, Reduction.sum)


LEGACY_WARNING = "size_average and reduce args will be deprecated, please use reduction='{}' instead."


def resolve(
    reduction: Reduction | str = Reduction.mean,
    size_average: bool | None = None,
    reduce: bool | None = None,
) -> tuple[Reduction, str | None]:
    """Resolve the legacy flags exactly as ``torch.nn._reduction.legacy_get_string`` does.

    When either legacy flag is given it overrides ``reduction``: an unset flag counts as True,
    ``reduce=False`` gives ``none``, ``reduce=True`` gives ``mean`` when ``size_average`` is True and
    ``sum`` otherwise. Returns the reduction and torch's deprecation warning (None when no flag was given).
    An unknown ``reduction`` is an :class:`~losscli.errors.OptionError`, flags or not.
    """
    try:
        reduction = Reduction(reduction)
    except ValueError:
        choices = ", ".join(r.value for r in Reduction)
        raise OptionError(f"expected one of {choices}, but got {reduction!r}", argument="reduction") from None
    if size_average is None and reduce is None:
        return reduction, None
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        resolved = Reduction.none
    elif size_average:
        resolved = Reduction.mean
    else:
        resolved = Reduction.sum
    return resolved, LEGACY_WARNING.format(resolved.value)


def legacy_table() -> list[tuple[bool | None, bool | None, Reduction]]:
    """All nine (size_average, reduce) combinations, each unset/True/False, with what they resolve to."""
    states = (None, True, False)
    return [(sa, r, resolve(Reduction.mean, sa, r)[0]) for sa, r in itertools.product(states, states)]


class Elements(NamedTuple):
    """Per-element output of a loss, before reduction. Arrays broadcast to the loss's shape."""

    values: np.ndarray
    denom: np.ndarray | None = None  # None: every element counts 1 towards mean's denominator
    valid: np.ndarray | None = None  # None: every element counts
    # mean only: each value is divided by this before the average (ctc: a sample's target length);
    # none and sum take the values as they are. None: 1.
    mean_divisor: np.ndarray | None = None
    # each element's group (an integer from 0), for views by group (--by, --by-class): set by the engine
    groups: np.ndarray | None = None
    # mean only: the part of each value that torch averages apart from the rest (cross-entropy's nll term beside
    # its label smoothing term: Σ first / Σ denom + Σ rest / Σ denom). It differs from the one fraction only
    # where Σ denom is 0: 0/0 makes torch's NaN whatever the rest. None: one fraction
    first: np.ndarray | None = None


class Partial(NamedTuple):
    """The sufficient statistics of a reduction: merge partials of chunks, then :meth:`finish`."""

    total: float = 0.0  # Σ values over selected elements
    weight: float = 0.0  # Σ denom over selected elements
    selected: int = 0  # number of selected elements
    mean_total: float | None = None  # Σ values / mean_divisor over selected elements; None: total
    first_total: float | None = None  # Σ Elements.first over selected elements; None: no such part

    def merge(self, other: Partial) -> Partial:
        mean_total = first_total = None
        if self.mean_total is not None or other.mean_total is not None:
            mean_total = self._mean_total() + other._mean_total()
        if self.first_total is not None or other.first_total is not None:
            first_total = (self.first_total or 0.0) + (other.first_total or 0.0)
        return Partial(self.total + other.total, self.weight + other.weight, self.selected + other.selected,
                       mean_total, first_total)

    def _mean_total(self) -> float:
        return self.total if self.mean_total is None else self.mean_total

    def finish(self, reduction: Reduction, rows: int = 1) -> float:
        """The reduced value; ``rows`` is the batch size ``batchmean`` divides by."""
        if reduction is Reduction.sum:
            return self.total
        with np.errstate(all="ignore"):  # 0/0 is NaN, x/0 and overflow are ±inf: torch's answers
            if reduction is Reduction.batchmean:
                return float(np.float64(self.total) / np.float64(rows))
            if self.weight == 0 and self.first_total is not None:  # torch's two fractions: 0/0 is NaN
                first = np.float64(self.first_total)
                return float(first / 0.0 + (np.float64(self._mean_total()) - first) / 0.0)
            return float(np.float64(self._mean_total()) / np.float64(self.weight))


def selection(valid: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
    """Boolean array of the elements that count (not ignored, and selected by the mask); None: all."""
    if valid is None:
        return mask
    if mask is None:
        return valid
    return valid & mask


def partial(elements: Elements, mask: np.ndarray | None = None, *, in_dtype: bool = False) -> Partial:
    """Sums over the selected elements, accumulated in float64: the reduced value is the float64 sum of the
    per-element values, rounded once to the loss's dtype.

    ``in_dtype`` (a streamed chunk): where every element counts, the sums are numpy's pairwise sums in the
    values' own dtype instead, taken in one pass while the chunk is in cache (float32's sums of a chunk's
    2^18 values are off by a few 1e-8 relative, within float32's rounding; float64 is not converted at all);
    the engine adds the chunks' sums in float64. This is what keeps a memory-bound loss near the machine's
    memory bandwidth; the result may differ from the float64 sum's in the last float32 digit, as torch's
    own float32 sums do."""
    values = np.asarray(elements.values)
    select = selection(elements.valid, mask)
    where = True if select is None else np.broadcast_to(select, values.shape)  # True: every element counts
    dtype = None if in_dtype and select is None and values.dtype.kind == "f" else np.float64

    def total(array: np.ndarray) -> float:
        array = array if array.shape == values.shape else np.broadcast_to(array, values.shape)
        return float(array.sum(where=where, dtype=dtype if array.dtype.kind == "f" else np.float64))

    selected = values.size if select is None else int(np.count_nonzero(where))
    weight = float(selected) if elements.denom is None else total(np.asarray(elements.denom))
    mean_total = None
    if elements.mean_divisor is not None:
        mean_total = total(values.astype(np.float64) / np.asarray(elements.mean_divisor, dtype=np.float64))
    first = None if elements.first is None else total(np.asarray(elements.first))
    return Partial(total(values), weight, selected, mean_total, first)


def upstream(elements: Elements, mask: np.ndarray | None, reduction: Reduction,
             totals: Partial | None = None, rows: int = 1) -> np.ndarray:
    """d(reduced loss) / d(values_i): the grad_output each element's value receives.

    1 for ``sum`` and for ``none`` (torch's ``backward(ones_like(loss))``), ``1 / Σ denom`` for ``mean``
    (``totals`` are the mean's sums), ``1 / rows`` for ``batchmean``, and exactly 0 for elements that do
    not count, even where the denominator is 0 (as slicing them out gives in torch). Denominators are
    weights, never functions of the input, so they carry no gradient.
    """
    shape = np.shape(elements.values)
    select = selection(elements.valid, mask)
    counts = np.ones(shape, dtype=bool) if select is None else np.broadcast_to(select, shape)
    coef = counts.astype(np.float64)
    if reduction in (Reduction.mean, Reduction.batchmean):
        with np.errstate(all="ignore"):
            scaled = coef / np.float64(totals.weight if reduction is Reduction.mean else rows)
            if reduction is Reduction.mean and elements.mean_divisor is not None:
                scaled = scaled / np.asarray(elements.mean_divisor, dtype=np.float64)
        coef = np.where(counts, scaled, 0.0)
    return coef


def unreduced(elements: Elements, mask: np.ndarray | None = None) -> np.ndarray:
    """The ``none`` reduction: per-element values (in their own dtype), unselected entries set to 0."""
    select = selection(elements.valid, mask)
    values = np.asarray(elements.values)
    if select is None:
        return values
    return np.where(select, values, 0.0)  # 0.0 takes the values' dtype
