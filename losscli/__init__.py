"""losscli: torch-exact loss values from saved predictions, from the shell or from Python.

>>> import numpy as np, losscli
>>> losscli.compute("mse", np.array([1.0, 2.0]), np.array([1.0, 4.0])).item()
2.0
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import LossResult, compute  # noqa: E402

__all__ = ["LossResult", "compute", "__version__"]
