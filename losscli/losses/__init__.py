"""The loss catalog: one :class:`LossSpec` per loss, looked up by command name."""

from __future__ import annotations

from . import binary, classification, divergence, embedding, margin, regression, sequence
from .base import Batch, FileArg, LossSpec, Option, TargetKind

CATALOG: dict[str, LossSpec] = {
    spec.name: spec
    for module in (regression, classification, binary, divergence, margin, embedding, sequence)
    for spec in module.LOSSES
}

__all__ = ["CATALOG", "Batch", "FileArg", "LossSpec", "Option", "TargetKind"]
