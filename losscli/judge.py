"""The one judge of thresholds: a value against its bounds (and a baseline), for ``--fail-above``/``--fail-below``
and for ``losscli check``.

Values compare as the loss commands print them (``0.72960657`` for a float32 result), and regression bounds
are decimal arithmetic on those printed numbers, so ``0.75`` against a baseline of ``0.7`` is an increase of
exactly ``0.05``. NaN never passes a bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import OptionError

BOUNDS = ("max", "min", "max_increase", "max_increase_pct")
REGRESSION = ("max_increase", "max_increase_pct")


class Verdict:
    """What failed (``failed``: bound kinds, or ``nan``), why (a reason each), and the change from the baseline:
    ``delta`` (value - baseline) and ``delta_pct`` (100 * delta / |baseline|; None for a baseline of 0)."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.reasons: list[str] = []
        self.delta: float | None = None
        self.delta_pct: float | None = None

    @property
    def passed(self) -> bool:
        return not self.failed

    def fail(self, kind: str, reason: str) -> None:
        self.failed.append(kind)
        self.reasons.append(reason)


def check_thresholds(*, fail_above: float | None = None, fail_below: float | None = None,
                     tolerance: float | None = None) -> None:
    """Refuse, before any work, a threshold that is NaN (a NaN bound would pass or fail every value) and a
    negative cross-check tolerance; None: not given. Infinite bounds are fine."""
    for name, value in (("fail_above", fail_above), ("fail_below", fail_below)):
        if value is not None and math.isnan(value):
            raise OptionError(f"expected a number, but got {value}", argument=name)
    if tolerance is not None and not tolerance >= 0:
        raise OptionError(f"expected a value of 0 or more, but got {tolerance}", argument="tolerance")


def judge(printed: str, bounds: Mapping[str, float], baseline: float | None = None,
          names: Mapping[str, str] | None = None) -> Verdict:
    """``printed`` (the value as printed) against ``bounds`` (any of :data:`BOUNDS`); the regression bounds
    only with a ``baseline``. ``names``: what the reasons call each bound (default: its key, as in gate
    files; the command line calls ``max`` ``--fail-above``)."""
    name = {**{b: b for b in BOUNDS}, **(names or {})}
    value, verdict = float(printed), Verdict()
    if math.isnan(value):
        verdict.fail("nan", "the value is NaN, and NaN never passes a bound")
    if "max" in bounds and value > bounds["max"]:
        verdict.fail("max", f"{printed} is above {name['max']} {number_text(bounds['max'])}")
    if "min" in bounds and value < bounds["min"]:
        verdict.fail("min", f"{printed} is below {name['min']} {number_text(bounds['min'])}")
    if baseline is not None and not math.isnan(value) and any(b in bounds for b in REGRESSION):
        _regression(verdict, printed, value, bounds, baseline)
    return verdict


def _regression(verdict: Verdict, printed: str, value: float, bounds: Mapping[str, float], base: float) -> None:
    """Compare with the baseline value in decimal arithmetic on the printed numbers."""
    from decimal import Decimal  # only with a baseline: a loss command does not load it

    regression = [b for b in REGRESSION if b in bounds]
    if math.isinf(value):
        verdict.delta = value - base
        for b in regression:
            verdict.fail(b, f"{printed} is not finite (baseline {number_text(base)})")
        return
    delta = Decimal(repr(value)) - Decimal(repr(base))
    verdict.delta = float(delta)
    verdict.delta_pct = None if base == 0 else float(delta / abs(Decimal(repr(base))) * 100)
    above = f"{printed} is {format(delta.normalize(), 'f')} above the baseline {number_text(base)}"
    if "max_increase" in bounds and delta > Decimal(repr(bounds["max_increase"])):
        verdict.fail("max_increase", f"{above}, more than max_increase {number_text(bounds['max_increase'])}")
    if "max_increase_pct" in bounds and delta * 100 > Decimal(repr(bounds["max_increase_pct"])) * abs(
            Decimal(repr(base))):
        pct = "" if verdict.delta_pct is None else f" (+{verdict.delta_pct:.4g}%)"
        verdict.fail("max_increase_pct",
                     f"{above}{pct}, more than max_increase_pct {number_text(bounds['max_increase_pct'])}%")


def number_text(value: float) -> str:
    """A bound or a baseline as written: 1 rather than 1.0 (TOML's 1 and 1.0 are one bound)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
