"""losscli: torch-exact loss values from saved predictions, from the shell or from Python.

>>> import numpy as np, losscli
>>> losscli.compute("mse", np.array([1.0, 2.0]), np.array([1.0, 4.0])).item()
2.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["LossResult", "compute", "__version__"]

if TYPE_CHECKING:
    from .api import LossResult, compute


def __getattr__(name: str) -> Any:
    """``compute`` and ``LossResult`` load the api (numpy and the loss catalog) on first use, so that
    ``losscli --version`` and the modules that only need ``__version__`` start without it."""
    if name in ("compute", "LossResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
