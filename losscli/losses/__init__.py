"""The loss catalog: one :class:`LossSpec` per loss, looked up by command name.

A family's module is imported when one of its losses is first looked up, so that ``losscli mse`` loads the
regression family alone. The names come from :data:`FAMILIES`; iterating them imports nothing, iterating the
specs imports every family."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .base import Batch, FileArg, LossSpec, Option, TargetKind

# The names of each family module's ``LOSSES``, in catalog order: all that is known of a loss before its module
# is imported. Not a second definition: tests/test_startup.py checks it against the modules' LOSSES.
FAMILIES: dict[str, tuple[str, ...]] = {
    "regression": ("mse", "l1", "smooth-l1", "huber"),
    "classification": ("nll", "cross-entropy"),
    "binary": ("bce", "bce-with-logits"),
    "divergence": ("kl-div", "poisson-nll", "gaussian-nll"),
    "margin": ("margin-ranking", "hinge-embedding", "soft-margin", "multilabel-soft-margin", "multilabel-margin",
               "multi-margin"),
    "embedding": ("cosine-embedding", "triplet-margin", "triplet-margin-with-distance"),
    "sequence": ("ctc", "linear-cross-entropy"),
}


class Catalog(Mapping[str, LossSpec]):
    """Loss name -> :class:`LossSpec`, in catalog order; a KeyError for a name that is no loss."""

    def __init__(self, families: Mapping[str, tuple[str, ...]]) -> None:
        self._module = {name: module for module, names in families.items() for name in names}
        self._specs: dict[str, LossSpec] = {}

    def __getitem__(self, name: str) -> LossSpec:
        if name not in self._specs:
            module = importlib.import_module(f"{__name__}.{self._module[name]}")
            self._specs.update((spec.name, spec) for spec in module.LOSSES)
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._module

    def __iter__(self) -> Iterator[str]:
        return iter(self._module)

    def __len__(self) -> int:
        return len(self._module)


CATALOG = Catalog(FAMILIES)

__all__ = ["CATALOG", "FAMILIES", "Batch", "Catalog", "FileArg", "LossSpec", "Option", "TargetKind"]
