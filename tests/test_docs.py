"""README and docs/ stay true: the set-up commands, every example run with its shown output, the
generated per-loss pages up to date, and the site building with `mkdocs build --strict`."""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from losscli.edge.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "losses").glob("*.md"))]
SETUP = re.findall(r"```sh\n(python3 -m venv .*)\n```", README)
COLUMNS = "80"  # the width the docs' outputs are shown at (docs/generate.py renders at it too)
README_LIMIT = 16 * 1024


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    assert len(SETUP) == 2
    run, test = SETUP
    assert "losscli" in run and "samples/" in run
    assert "pytest" in test and "-c constraints.txt" in test
    assert test in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_front_page():
    size = len(README.encode())
    assert size <= README_LIMIT, f"README.md: expected at most {README_LIMIT} bytes, but got {size}: move it to docs/"


class Example:
    """A `losscli ...` command in a page, with the output shown after it (None: none shown)."""

    def __init__(self, page: Path, line: int, command: str, output: str | None):
        self.page, self.line, self.command, self.output = page, line, command, output

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """`$ losscli ...` in console blocks (with the lines up to the next prompt as output), and inline
    `losscli ...` code, that use samples/."""
    text = page.read_text()
    found: list[Example] = []
    block: list[str] | None = None
    prompt: tuple[int, str] | None = None
    out: list[str] = []

    def close() -> None:
        if prompt is not None:
            found.append(Example(page, prompt[0], prompt[1], "\n".join(out)))

    for number, line in enumerate(text.splitlines(), 1):
        if block is None:
            if line.startswith("```console"):
                block, prompt, out = [], None, []
            else:
                found += [Example(page, number, c, None) for c in re.findall(r"`(losscli [^`]+)`", line)]
            continue
        if line.startswith("```"):
            close()
            block = None
        elif line.startswith("$ "):
            close()
            prompt, out = (number, line[2:]), []
        else:
            out.append(line.rstrip())
    return [e for e in found if e.command.startswith("losscli ") and "samples/" in e.command]


EXAMPLES = [e for page in PAGES for e in examples(page)]


def test_every_page_has_its_examples_found():
    """The parser sees the examples: a page that shows none where it should fails here, not silently."""
    pages = {e.page.name for e in EXAMPLES}
    assert {"README.md", "index.md", "views.md", "gates-and-ci.md", "mse.md", "ctc.md"} <= pages


def expected_exit(example: Example) -> int:
    lines = (example.output or "").splitlines()
    if any(line.startswith("error:") for line in lines):
        return 2
    return 1 if any(line.startswith("FAIL:") for line in lines) else 0


def jq(filter_: str, document: object) -> object:
    """The two jq filters the docs use: `.key` and `{a, b}`."""
    if re.fullmatch(r"\.\w+", filter_):
        return document[filter_[1:]]
    keys = re.fullmatch(r"\{([\w, ]+)\}", filter_)
    assert keys, f"jq filter {filter_!r}: the test knows `.key` and `{{a, b}}` only"
    return {k.strip(): document[k.strip()] for k in keys.group(1).split(",")}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_runs_and_prints_what_the_docs_show(example, monkeypatch, tmp_path):
    (tmp_path / "samples").symlink_to(ROOT / "samples")  # files an example writes land in tmp_path
    monkeypatch.chdir(tmp_path)
    command, _, pipe = example.command.partition(" | ")
    result = CliRunner().invoke(app, shlex.split(command)[1:], env={"COLUMNS": COLUMNS, "LINES": "50"})
    assert result.exit_code == expected_exit(example), result.output
    if not example.output:
        return
    if pipe:
        program = shlex.split(pipe)
        assert program[:2] == ["jq", "-c"] and len(program) == 3, f"{example.id}: unknown pipe {pipe!r}"
        assert jq(program[2], json.loads(result.stdout)) == json.loads(example.output)
        return
    assert interleaves(example.output, result.stdout, result.stderr), (
        f"{example.id}: the output differs from what the page shows\n--- page\n{example.output}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}")


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


def interleaves(shown: str, stdout: str, stderr: str) -> bool:
    """The page shows exactly stdout's and stderr's lines, each in its order, interleaved as a terminal
    shows them (losscli check writes its notes to stderr between the table and the verdict)."""
    out, err = lines(stdout), lines(stderr)
    for line in lines(shown):
        if out and line == out[0]:
            out.pop(0)
        elif err and line == err[0]:
            err.pop(0)
        else:
            return False
    return not out and not err


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_up_to_date():
    generator = load_generator()
    files = generator.generate()
    stale = sorted(str(path.relative_to(ROOT)) for path, text in files.items()
                   if not path.exists() or path.read_text() != text)
    stale += sorted(str(p.relative_to(ROOT)) for p in set((ROOT / "docs" / "losses").glob("*.md")) - set(files))
    assert not stale, f"out of date: {', '.join(stale)}; run `python docs/generate.py` and commit the result"


def test_every_loss_has_a_page_and_a_row():
    from losscli.losses import CATALOG

    for name in CATALOG:
        assert (ROOT / "docs" / "losses" / f"{name}.md").exists(), name
        assert f"[`{name}`](docs/losses/{name}.md)" in README, name


def test_mkdocs_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def python_examples(page: Path) -> str:
    """The doctest-style blocks of a page that follow a `<!-- doctest ... -->` comment."""
    return "\n".join(re.findall(r"<!-- doctest[^>]*-->\n```python\n(.*?)```", page.read_text(), re.S))


def test_python_api_page_has_doctest_blocks():
    assert python_examples(ROOT / "docs" / "python-api.md").count(">>> ") >= 10


def test_python_examples(monkeypatch):
    monkeypatch.chdir(ROOT)
    for page in PAGES:
        text = python_examples(page)
        if not text:
            continue
        test = doctest.DocTestParser().get_doctest(text, {}, str(page.relative_to(ROOT)), str(page), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0, f"{page.relative_to(ROOT)}: {runner.failures} example(s) failed"
