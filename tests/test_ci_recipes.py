"""Every CI recipe of docs/gates-and-ci.md runs as CI runs it: the ``sh`` blocks, the GitHub Actions steps'
``run:`` scripts and the GitLab jobs' ``script:`` lines, each under ``bash -e -o pipefail`` (GitHub's
``bash --noprofile --norc -eo pipefail``; GitLab's shell stops at the first failing line too), in a temporary
folder laid out as the recipes assume (``ci/gates.toml`` on the samples, ``ci/baseline.json``, ``preds/``,
``data/``), with a ``losscli`` on PATH and a fake ``$GITHUB_STEP_SUMMARY``. Three runs: the gates pass,
a check fails, and the gate file is broken; each step must end with the status the recipe promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
PAGE = ROOT / "docs" / "gates-and-ci.md"
STATUS = {"pass": 0, "fail": 1, "broken": 2}
SAYS = {0: "loss gates passed", 1: "a loss got worse", 2: "the gate file or an input is broken"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def recipes() -> dict[str, list[str]]:
    """Each recipe as the scripts CI runs in order: an ``sh`` block is one script; a GitHub job (a list of
    steps) one script per ``run:``; a GitLab job its ``script:`` lines as one script."""
    found: dict[str, list[str]] = {f"sh-{i}": [text] for i, text in enumerate(blocks("sh"))}
    for i, text in enumerate(blocks("yaml")):
        document = yaml.safe_load(text)
        if isinstance(document, list):
            found[f"github-{i}"] = [step["run"] for step in document if "run" in step]
        else:
            for name, job in document.items():
                found[f"gitlab-{name}"] = ["\n".join(job["script"])]
    return found


RECIPES = recipes()


def test_the_page_has_its_recipes():
    assert {"sh-0", "sh-1", "sh-2", "github-0", "gitlab-loss-gates"} <= set(RECIPES)
    assert any("|| status=$?" in script for scripts in RECIPES.values() for script in scripts)


def workspace(tmp_path: Path, scenario: str) -> dict[str, str]:
    """The repository the recipes assume, and the environment of a CI step."""
    (tmp_path / "samples").symlink_to(SAMPLES)
    ci = tmp_path / "ci"
    ci.mkdir()
    for folder in ("classification", "regression", "binary", "margin", "divergence", "statistics"):
        (ci / folder).symlink_to(SAMPLES / folder)
    gates = (SAMPLES / "gates.toml").read_text()
    gates = {"pass": gates, "fail": gates.replace("max = 0.8", "max = 0.7", 1),
             "broken": gates.replace("max = 0.8", "maxx = 0.8", 1)}[scenario]
    (ci / "gates.toml").write_text(gates)
    shutil.copy(SAMPLES / "baseline.json", ci / "baseline.json")
    for folder, name in (("preds", "logits.npy"), ("data", "labels.csv")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).symlink_to(SAMPLES / "classification" / name)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "losscli").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m losscli "$@"\n')
    (bin_ / "losscli").chmod(0o755)
    (tmp_path / "step-summary.md").write_text("")
    return dict(os.environ, PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT),
                GITHUB_STEP_SUMMARY=str(tmp_path / "step-summary.md"), COLUMNS="80")


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("scenario", list(STATUS))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_runs_under_bash_e_and_ends_with_the_status_it_promises(recipe, scenario, tmp_path):
    env = workspace(tmp_path, scenario)
    for script in RECIPES[recipe]:  # GitHub's later steps run `if: always()`: every step runs
        step = run_step(script, tmp_path, env)
        expected = STATUS[scenario] if "losscli check" in script else 0
        assert step.returncode == expected, f"{recipe} ({scenario}):\n{script}\n{step.stdout}{step.stderr}"
        assert "Traceback" not in step.stderr
        if "case $status" in script:  # the status reached the script's own handling
            assert SAYS[expected] in step.stdout, step.stdout
    if recipe.startswith("github"):  # the summary page shows the verdict, or why nothing ran
        summary = (tmp_path / "step-summary.md").read_text()
        verdict = {"pass": "**PASS: 7 passed", "fail": "**FAIL: 6 passed, 1 failed",
                   "broken": "**ERROR: no check ran**"}[scenario]
        assert summary.startswith("### ") and verdict in summary, summary
        assert (tmp_path / "loss-junit.xml").exists() and (tmp_path / "loss-report.json").exists()
