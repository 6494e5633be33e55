"""BLAS on one thread while losscli multiplies matrices: the engine's own threads do the parallel work.

numpy's OpenBLAS runs a large matrix product on threads of its own, which spin while they wait for work.
Called from the engine's threads, or on a machine whose cores are busy, a product then takes several times
as long (linear-cross-entropy's logits on 2 busy cores: 5.6-11 s instead of 2.4 s; PERF-NOTES, "threads under
contention"). :func:`single_threaded` sets every OpenBLAS the process has loaded to one thread while any
computation holds it, and puts back what it was when the last one lets go. Where numpy uses another BLAS,
or on a system without ``/proc/self/maps``, it does nothing.

OpenBLAS's ``openblas_set_num_threads`` is its public C API; the scipy-openblas builds in numpy's wheels name
it with a ``scipy_`` prefix and a ``64_`` suffix.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

_lock = threading.Lock()
_holders = 0
_saved: list[int] = []


class _OpenBlas(NamedTuple):
    get: Callable[[], int]
    set: Callable[[int], None]


@functools.cache
def _loaded() -> tuple[_OpenBlas, ...]:
    """The thread controls of every OpenBLAS library this process has loaded (numpy's among them)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return ()
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same library, no second copy
        except OSError:
            continue
        names = [(f"{prefix}openblas_get_num_threads{suffix}", f"{prefix}openblas_set_num_threads{suffix}")
                 for prefix in ("scipy_", "") for suffix in ("64_", "_64", "")]
        pair = next(((getattr(lib, g), getattr(lib, s)) for g, s in names if hasattr(lib, g) and hasattr(lib, s)),
                    None)
        if pair is not None:
            pair[0].restype, pair[1].argtypes = ctypes.c_int, [ctypes.c_int]
            found.append(_OpenBlas(*pair))
    return tuple(found)


@contextmanager
def single_threaded() -> Iterator[None]:
    """OpenBLAS on one thread inside the block (blocks on several threads at once share the setting)."""
    global _holders
    with _lock:
        if _holders == 0:
            _saved[:] = [blas.get() for blas in _loaded()]
            for blas in _loaded():
                blas.set(1)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                for blas, threads in zip(_loaded(), _saved):
                    blas.set(threads)
