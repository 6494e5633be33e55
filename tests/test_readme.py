"""README stays true: its two set-up commands, CI running the test one, and every example running."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from losscli.edge.cli import app
from losscli.losses import CATALOG

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = re.findall(r"```sh\n(python3 -m venv .*)\n```", README)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    assert len(SETUP) == 2
    run, test = SETUP
    assert "losscli" in run and "samples/" in run
    assert "pytest" in test and "-c constraints.txt" in test
    assert test in (ROOT / ".ci" / "run").read_text()


def examples() -> list[str]:
    """Every `losscli ...` in a table cell or after a `$ ` prompt."""
    found = re.findall(r"`(losscli [^`]+)`", README) + re.findall(r"^\$ (losscli .+)$", README, re.M)
    return sorted({e for e in found if "samples/" in e})


@pytest.mark.parametrize("command", examples() + [s.example for s in CATALOG.values()])
def test_example_runs_on_the_samples(command, monkeypatch, tmp_path):
    (tmp_path / "samples").symlink_to(ROOT / "samples")  # files an example writes land in tmp_path
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command.split(" | ")[0])[1:]
    result = CliRunner().invoke(app, args)
    expected = 2 if args[0] == "bce" and "logits.npy" in command else 0  # README's error example
    assert result.exit_code == expected, result.stderr
