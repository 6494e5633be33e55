"""losscli: torch-exact loss values from saved predictions, from the shell or from Python.

>>> import numpy as np, losscli
>>> losscli.compute("mse", np.array([1.0, 2.0]), np.array([1.0, 4.0])).item()
2.0
>>> losscli.compute("l1", np.array([1.0, 2.0]), np.array([1.0, 4.0]), reduction="sum",
...                 outputs=losscli.Outputs(grad=True)).grad
array([ 0., -1.])

The public surface: :func:`compute` (and :func:`compute_each`, several calls as one dask graph),
:func:`check` (a gate file), :class:`LossResult`, :class:`Outputs`, :class:`Streaming`, :class:`Cluster` (a
dask cluster for ``engine=``), the errors (:class:`LossCliError` and its subclasses) and :class:`LossCliWarning` (the
result's warnings, also emitted through Python's :mod:`warnings`). Importing it imports neither
rich, typer, click, torch nor dask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (BackendUnavailable, InputError, LossCliError, LossCliWarning, OptionError, ShapeError,
                     ValueDomainError)

__version__ = "0.1.0"

__all__ = ["BackendUnavailable", "Cluster", "InputError", "LossCliError", "LossCliWarning", "LossResult",
           "OptionError", "Outputs", "ShapeError", "Streaming", "ValueDomainError", "__version__", "check", "compute",
           "compute_each"]

if TYPE_CHECKING:
    from .api import Outputs, Streaming, compute, compute_each
    from .engine.cluster import Cluster
    from .gates import check
    from .result import LossResult

_LAZY = {"compute": "api", "compute_each": "api", "Outputs": "api", "Streaming": "api", "check": "gates",
         "LossResult": "result", "Cluster": "engine.cluster"}


def __getattr__(name: str) -> Any:
    """The api loads numpy and the loss catalog on first use, so that ``losscli --version`` and the modules
    that only need ``__version__`` start without it."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
