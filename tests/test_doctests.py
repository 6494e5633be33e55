"""Every docstring example in the losscli package runs and prints what it says.

The modules are found with pkgutil.walk_packages, so that a module that is added, renamed or moved is
tested without touching this file (``__main__`` is left out: importing it runs the CLI).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import losscli


def module_names() -> list[str]:
    names = [losscli.__name__]
    for info in pkgutil.walk_packages(losscli.__path__, prefix=f"{losscli.__name__}.", onerror=lambda name: None):
        if info.name.rpartition(".")[2] != "__main__":  # importing it runs the CLI
            names.append(info.name)
    return sorted(set(names))


MODULES = module_names()


def test_the_package_has_modules_to_search():
    assert len(MODULES) > 1, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional dependency (torch, pyarrow) that is not installed
        if exc.name and exc.name.split(".")[0] != losscli.__name__:
            pytest.skip(f"{name} needs {exc.name}")
        raise
    failed, attempted = doctest.testmod(module, report=True, verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples in {name} failed (see the output above)"
