"""``python -m losscli``."""

from .edge.cli import entry

if __name__ == "__main__":  # not when a dask worker process started by the dask engine imports it
    entry()
