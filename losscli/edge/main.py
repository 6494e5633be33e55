"""The process's entry: the ``losscli`` console script and ``python -m losscli``. It imports nothing heavy itself,
so that it can set up the process before numpy, typer and the command's modules load."""

import gc
import os

BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def entry() -> None:
    """Run the command line in a process of its own. SIGTERM ends a run as SIGINT does (files being written are
    abandoned, no debris), with exit status 143.

    - **BLAS threads.** numpy's OpenBLAS starts a thread per core when it loads, and they spin a while: about
      15 ms of a short run and 100 ms of CPU, for threads losscli never uses (its one matrix product,
      linear-cross-entropy's, runs OpenBLAS on one thread under its own threads: :mod:`losscli.blas`). So numpy
      loads with ``OPENBLAS_NUM_THREADS=1`` unless the variable is set; the environment is then put back, so
      that processes losscli starts (dask workers) see the user's.
    - **Garbage collector.** It stays off while the modules load (some 60 collections, 8-9 ms of a short run,
      over objects that all live until exit), then leaves alone what exists when the command starts and when
      it ends: CPython's last collection at exit would walk every object of numpy, typer, rich (and pyarrow)
      once more, 20-40 ms, to free memory that the process gives back by exiting. It collects as usual while
      the command runs. Every file was written and closed before exit (the one writer commits each one)."""
    gc.disable()
    unset = BLAS_THREADS not in os.environ
    if unset:
        os.environ[BLAS_THREADS] = "1"
    try:
        from .cli import app
        from .console import terminate_as_exception
    finally:
        if unset:
            del os.environ[BLAS_THREADS]
    terminate_as_exception()
    gc.freeze()
    gc.enable()
    try:
        app()
    finally:
        gc.freeze()
