"""``python -m losscli``."""

from .edge.main import entry

if __name__ == "__main__":  # not when a dask worker process started by the dask engine imports it
    entry()
