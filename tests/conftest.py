"""Shared test settings and fixtures: hypothesis profiles, gate-file inputs, free ports on 127.0.0.1.

``ci`` (the default) is derandomized and modest so that the math suite runs in well under two minutes on
two cores; ``dev`` draws more and random examples. Choose with ``HYPOTHESIS_PROFILE=dev pytest ...``.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

# Tiny arrays: threads only add contention (see shared/PERF-NOTES.md, "Threads under contention").
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Gate-file inputs: l1(input.npy, target.npy) = mean(|1 - 1.5|, |2 - 3|) = 0.75 exactly; nan.npy gives NaN."""
    np.save(tmp_path / "input.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(tmp_path / "target.npy", np.array([1.5, 3.0], dtype=np.float32))
    np.save(tmp_path / "nan.npy", np.array([np.nan, 2.0], dtype=np.float32))
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A port on 127.0.0.1 that nothing listens on now (for a server to start on, or to find closed)."""
    return _free_port


@pytest.fixture(params=["pyarrow", "numpy"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A CSV test with pyarrow's reader (where installed; for files of any size), then with numpy's and Python's
    alone (losscli.io.table): both readers must give the same values and messages (tests/csvread.py)."""
    from tests.csvread import with_pyarrow, without_pyarrow

    if request.param == "pyarrow":
        pytest.importorskip("pyarrow.csv")
        with_pyarrow(monkeypatch)
    else:
        without_pyarrow(monkeypatch)
    return request.param
