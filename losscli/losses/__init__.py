"""The loss catalog: one :class:`LossSpec` per loss, looked up by command name."""

from __future__ import annotations

from . import classification, regression
from .spec import LossSpec, Option, TargetKind

CATALOG: dict[str, LossSpec] = {spec.name: spec for spec in regression.LOSSES + classification.LOSSES}

__all__ = ["CATALOG", "LossSpec", "Option", "TargetKind"]
