"""Paired comparison of two models: the same loss on two versions of its first file (a base model's
predictions and a new one's, for the same targets), with a bootstrap interval of the difference.

Both runs resample the same samples: the Poisson bootstrap's weights are a function of (seed, sample,
resample) alone (:mod:`losscli.engine.bootstrap`), so resample ``r`` of the base and resample ``r`` of the new
model weigh every sample alike, and ``new_r - base_r`` is resample ``r`` of the difference. The interval is
the percentile interval of those differences; the p-value is the bootstrap's two-sided one for "no
difference": twice the smaller share of differences at or below 0 and at or above 0, each counted as
``(1 + count) / (1 + resamples)``, at most 1.

The comparison keeps what a plot of it draws: the resampled differences themselves and, when asked
(``per_sample=True``), each sample's difference, for up to :data:`PAIRED_LIMIT` samples (both models'
per-sample losses are held in memory to pair them).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .api import Streaming, compute
from .engine.accumulators import SampleLosses
from .engine.bootstrap import METHOD, Bootstrap, check, interval
from .errors import LossCliError, OptionError, ShapeError
from .losses import LossSpec
from .reduction import Reduction, resolve
from .result import LossResult

PAIRED_LIMIT = 1_000_000  # samples whose differences per_sample=True keeps (two float64 arrays of them)


class Verdict(str, enum.Enum):
    """For a loss, lower is better."""

    better = "better"  # the interval of new - base lies below 0
    worse = "worse"  # the interval of new - base lies above the margin
    inconclusive = "inconclusive"


@dataclass(frozen=True)
class Comparison:
    base: LossResult
    new: LossResult
    difference: float  # new - base, of the values as computed (float64)
    relative: float  # difference / base (NaN when base is 0)
    low: float  # the interval of the difference at 1 - alpha
    high: float
    p_value: float
    verdict: Verdict
    alpha: float
    margin: float
    resamples: int
    seed: int
    method: str = METHOD
    # the differences of the paired resamples (those with a value of both models): the interval's quantiles
    differences: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    # new - base of each sample, float64 (per_sample=True, up to PAIRED_LIMIT samples; else None)
    per_sample: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def level(self) -> float:
        return 1 - self.alpha


def compare(loss: str | LossSpec, base: Any, new: Any, *rest: Any, alpha: float = 0.05, margin: float = 0.0,
            resamples: int = 1000, seed: int = 0, per_sample: bool = False, **kwargs: Any) -> Comparison:
    """``loss`` on ``(base, *rest)`` and on ``(new, *rest)`` (``kwargs`` as for :func:`losscli.compute`), with a
    paired bootstrap of the difference: ``verdict`` is ``worse`` when the whole interval of ``new - base`` at
    level ``1 - alpha`` lies above ``margin``, ``better`` when it lies below 0, else ``inconclusive``. A loss's
    own ``margin`` option (margin-ranking, ...) is given as ``loss_margin``. ``per_sample``: also each sample's
    difference (``Comparison.per_sample``; None past :data:`PAIRED_LIMIT` samples)."""
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise OptionError(f"expected a significance level between 0 and 1 (such as 0.05), but got {alpha!r}",
                          argument="alpha")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise OptionError(f"expected a margin of 0 or more, but got {margin!r}", argument="margin")
    check(1 - alpha, resamples, seed)
    reduction = resolve(kwargs.get("reduction", "mean"), kwargs.get("size_average"), kwargs.get("reduce"))[0]
    if reduction is Reduction.none:
        raise OptionError("expected a reduction to compare (mean, sum, batchmean), but the reduction is none",
                          argument="reduction")
    if "loss_margin" in kwargs:
        kwargs["margin"] = kwargs.pop("loss_margin")
    streaming = kwargs.pop("streaming", Streaming())
    runs = []
    try:
        for first in (base, new):
            boot = Bootstrap(reduction, 1 - alpha, resamples, seed)
            samples = [SampleLosses(reduction, limit=PAIRED_LIMIT)] if per_sample else []
            result = compute(loss, first, *rest, **kwargs,
                             streaming=replace(streaming, accumulators=[*streaming.accumulators, boot, *samples]))
            runs.append((result, boot, samples[0].finish() if samples else None))
    except LossCliError as e:
        if e.argument == "margin":  # the loss's own margin, which is loss_margin here
            e.argument = "loss_margin"
        raise
    (b, base_boot, base_samples), (n, new_boot, new_samples) = runs
    found = paired(b, base_boot, n, new_boot, alpha, margin)
    if not _paired(base_samples, new_samples):
        return found
    return replace(found, per_sample=new_samples.astype(np.float64) - base_samples)


def paired(base: LossResult, base_boot: Bootstrap, new: LossResult, new_boot: Bootstrap, alpha: float,
           margin: float = 0.0) -> Comparison:
    """The comparison of two runs of one loss whose bootstraps (same seed and resamples, level ``1 - alpha``)
    were fed the same samples: the base model's and the new model's (gate files' compare_to runs them)."""
    if base.count != new.count:
        raise ShapeError(f"new: expected as many loss elements as the base ({base.count}), but got {new.count}")
    keep = base_boot.drawn() & new_boot.drawn()  # resamples that drew something of both
    differences = (new_boot.statistics() - base_boot.statistics())[keep]
    low, high = interval(differences, 1 - alpha)
    difference = float(new.value.astype(np.float64)) - float(base.value.astype(np.float64))
    with np.errstate(all="ignore"):
        relative = float(np.float64(difference) / np.float64(base.value))
    return Comparison(base, new, difference, relative, low, high, p_value(differences), _verdict(low, high, margin),
                      float(alpha), float(margin), base_boot.resamples, base_boot.seed, differences=differences)


def _paired(base: np.ndarray | None, new: np.ndarray | None) -> bool:
    """Both models' per-sample losses were kept, one for each sample of the same loss shape."""
    return base is not None and new is not None and base.shape == new.shape


def p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference" (NaN when a difference is NaN, or there is none)."""
    if not differences.size or np.isnan(differences).any():
        return math.nan
    count = len(differences)
    below = (1 + int(np.count_nonzero(differences <= 0))) / (1 + count)
    above = (1 + int(np.count_nonzero(differences >= 0))) / (1 + count)
    return min(1.0, 2 * min(below, above))


def _verdict(low: float, high: float, margin: float) -> Verdict:
    if low > margin:
        return Verdict.worse
    if high < 0:
        return Verdict.better
    return Verdict.inconclusive
