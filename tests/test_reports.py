"""The reports CI systems read, as those systems read them: JUnit XML against the Jenkins xunit-plugin's
junit-10 structure (tests/data/junit-10.xsd) and through junitparser; the Markdown summary through a
CommonMark renderer with GitHub's tables (markdown-it-py); the JSON report against its schema; the reports of a
run that stopped before any check (an invalid gate file or baseline); ``-f metrics``; ``-q``."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import junitparser
import numpy as np
import pytest
import xmlschema
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from losscli.edge.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
REPORT_SCHEMA = json.loads((ROOT / "losscli" / "report.schema.json").read_text())
JUNIT_10 = xmlschema.XMLSchema(ROOT / "tests" / "data" / "junit-10.xsd")

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def validate(report: dict) -> None:
    jsonschema.validate(report, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)


def check_toml(name: str, input: str = "input.npy", **bounds: object) -> str:
    lines = ["[[check]]", f"name = {json.dumps(name)}", 'loss = "l1"', f'input = "{input}"', 'target = "target.npy"']
    return "\n".join(lines + [f"{k} = {json.dumps(v)}" for k, v in bounds.items()]) + "\n\n"


def gates(folder: Path, text: str) -> Path:
    path = folder / "gates.toml"
    path.write_text(text)
    return path


@pytest.fixture
def mixed(data: Path) -> Path:
    """A check of each status (run with --skip skipped): pass, FAIL, error, NaN (FAIL), skipped."""
    return gates(data, check_toml("ok", max=1) + check_toml("too high", max=0.5) +
                 check_toml("missing", input="nope.npy", max=1) + check_toml("nan", input="nan.npy", max=1) +
                 check_toml("skipped", max=1))


# -- JUnit: the junit-10 structure and a real consumer ----------------------------------------------------


def test_junit_of_every_status_is_valid_junit_10_and_junitparser_reads_it(mixed, data):
    result = invoke("check", mixed, "--skip", "skipped", "--junit", data / "j.xml")
    assert result.exit_code == 2
    JUNIT_10.validate(str(data / "j.xml"))
    (suite,) = list(junitparser.JUnitXml.fromfile(str(data / "j.xml")))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 2, 1, 1)
    outcomes = {case.name: [type(r).__name__ for r in case.result] for case in suite}
    assert outcomes == {"ok": [], "too high": ["Failure"], "missing": ["Error"], "nan": ["Failure"],
                        "skipped": ["Skipped"]}
    high = next(case for case in suite if case.name == "too high")
    assert high.classname == "losscli.check" and high.result[0].message == "0.75 is above max 0.5"
    assert high.result[0].type == "max" and "value 0.75" in high.system_out


def test_the_sample_gate_files_junit_is_valid_junit_10(data):
    result = invoke("check", SAMPLES / "gates.toml", "--baseline", SAMPLES / "baseline.json",
                    "--junit", data / "j.xml")
    assert result.exit_code == 0
    JUNIT_10.validate(str(data / "j.xml"))


def test_the_schema_refuses_skipped_on_testsuites(data):
    """The schema has teeth: the attribute losscli used to write there is refused."""
    (data / "bad.xml").write_text('<testsuites tests="1" skipped="0"><testsuite name="s" tests="1"/></testsuites>')
    assert not JUNIT_10.is_valid(str(data / "bad.xml"))


# -- a run that stopped before any check: every report says why, exit 2 ---------------------------------

STOPPED = [
    pytest.param(lambda d: ["check", gates(d, check_toml("a", max=1, maxx=2))], "unknown key 'maxx'",
                 id="unknown key"),
    pytest.param(lambda d: ["check", gates(d, "[[check]]\nname = 'a'\nloss = \n")], "expected TOML, but got",
                 id="bad TOML"),
    pytest.param(lambda d: ["check", d / "absent.toml"], "expected a TOML gate file, but there is no such file",
                 id="missing gate file"),
    pytest.param(lambda d: ["check", gates(d, check_toml("a", max=1)), "--baseline", d / "input.npy"],
                 "--baseline (", id="bad baseline"),
    pytest.param(lambda d: ["check", gates(d, check_toml("a", max=1)), "--only", "b"],
                 "--only: expected one of the gate file's checks", id="unknown --only name"),
]


@pytest.mark.parametrize("args, fragment", STOPPED)
def test_a_run_that_stopped_writes_every_report_stating_the_error(data, args, fragment):
    out = data / "out"
    out.mkdir()
    command = args(data)
    result = invoke(*command, "--report", out / "r.json", "--junit", out / "j.xml", "--markdown", out / "m.md")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment in line and result.stdout == ""
    message = line.removeprefix("error: ")

    report = json.loads((out / "r.json").read_text())
    validate(report)
    assert report["error"] == {"message": message, "type": "GateError"}
    assert (report["verdict"], report["exit_code"], report["checks"]) == ("error", 2, [])
    assert report["gate_file"] == str(command[1])

    JUNIT_10.validate(str(out / "j.xml"))
    (suite,) = list(junitparser.JUnitXml.fromfile(str(out / "j.xml")))
    assert (suite.tests, suite.errors, suite.failures) == (1, 1, 0)
    (case,) = list(suite)
    (error,) = case.result
    assert isinstance(error, junitparser.Error) and error.message == message and error.type == "GateError"

    html, texts = render_markdown((out / "m.md").read_text())
    assert "ERROR: no check ran" in html and f"error: {message}" in texts


def test_a_run_that_stopped_prints_its_report_with_format_json_and_empty_metrics(data):
    bad = gates(data, check_toml("a", max=1, maxx=2))
    result = invoke("check", bad, "-f", "json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    validate(report)
    assert "unknown key 'maxx'" in report["error"]["message"] and result.stderr.startswith("error: ")
    result = invoke("check", bad, "-f", "metrics")
    assert result.exit_code == 2 and json.loads(result.stdout) == {}


def test_a_run_that_stopped_never_writes_a_baseline(data):
    result = invoke("check", gates(data, check_toml("a", max=1, maxx=2)), "--write-baseline", data / "b.json")
    assert result.exit_code == 2 and not (data / "b.json").exists()


def test_a_normal_report_has_a_null_error(mixed, data):
    _ = invoke("check", mixed, "--report", data / "r.json")
    report = json.loads((data / "r.json").read_text())
    validate(report)
    assert report["error"] is None and len(report["checks"]) == 5


def test_the_report_schema_ties_an_error_to_no_checks():
    report = json.loads((SAMPLES / "baseline.json").read_text())
    validate(report)  # a report written before "error" existed stays valid
    report["error"] = {"message": "gate file (x): broken", "type": "GateError"}
    with pytest.raises(jsonschema.ValidationError):
        validate(report)  # it has checks and verdict pass


# -- Markdown: names and messages show as typed -----------------------------------------------------------


class _Text(HTMLParser):
    """The text of each table cell, list item and paragraph of rendered HTML, and the tags found inside them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self.inner_tags: list[str] = []
        self._open = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("td", "li", "p"):
            self.cells.append("")
            self._open += 1
        elif self._open and tag != "strong":  # the summary's own bold: the check's name in a note line
            self.inner_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "li", "p"):
            self._open -= 1

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


def render_markdown(text: str) -> tuple[str, list[str]]:
    """GitHub-flavoured enough: CommonMark with tables and strikethrough."""
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
    parser = _Text()
    parser.feed(html)
    assert parser.inner_tags == [], f"markup rendered inside a cell: {parser.inner_tags}\n{html}"
    return html, parser.cells


NASTY = ["*x*", "_y_", "**bold**", "[link](https://example.com)", "`code`", "a | b", "<b>html</b>", "&lt; literal",
         "~~struck~~", "back\\slash", "![img](x.png)", "<https://example.com>", "&amp;"]


def test_markdown_shows_check_names_and_messages_as_typed(data):
    text = "".join(check_toml(name, max=0.5) for name in NASTY)
    result = invoke("check", gates(data, text), "--markdown", data / "m.md")
    assert result.exit_code == 1
    html, cells = render_markdown((data / "m.md").read_text())
    rows = html.count("<tr>") - 1
    assert rows == len(NASTY)
    for name in NASTY:
        assert name in cells, (name, cells)  # a table cell holding exactly the name
        assert f"{name} (FAIL): 0.75 is above max 0.5" in cells  # the note line under the table


def test_markdown_shows_the_gate_file_name_as_typed(tmp_path):
    folder = tmp_path / "we`ird *dir*"
    folder.mkdir()
    np.save(folder / "input.npy", np.array([1.0, 2.0], dtype=np.float32))
    np.save(folder / "target.npy", np.array([1.5, 3.0], dtype=np.float32))
    gate = gates(folder, check_toml("a", max=1))
    result = invoke("check", gate, "--markdown", tmp_path / "m.md")
    assert result.exit_code == 0
    html = MarkdownIt("commonmark").render((tmp_path / "m.md").read_text())
    assert f"<code>{gate}</code>" in html


# -- --format metrics and --quiet -------------------------------------------------------------------------


def test_check_metrics_is_a_flat_object_of_numbers_one_per_check_with_a_value(mixed):
    result = invoke("check", mixed, "--skip", "skipped", "-f", "metrics")
    assert result.exit_code == 2
    metrics = json.loads(result.stdout)  # Python's json, as dvc and mlflow read it (NaN included)
    assert all(isinstance(k, str) and type(v) is float for k, v in metrics.items())
    assert list(metrics) == ["ok", "too high", "nan"]  # the errored and the skipped check have no value
    assert metrics["ok"] == 0.75 and metrics["too high"] == 0.75 and np.isnan(metrics["nan"])
    assert "ERROR: 1 passed, 2 failed, 1 error, 1 skipped" in result.stderr


def test_check_metrics_of_the_samples_match_the_report():
    metrics = json.loads(invoke("check", SAMPLES / "gates.toml", "-f", "metrics").stdout)
    report = json.loads(invoke("check", SAMPLES / "gates.toml", "-f", "json").stdout)
    assert metrics == {c["name"]: c["value"] for c in report["checks"]}


def test_quiet_prints_no_table_and_keeps_fail_error_lines_and_the_verdict_on_stderr(mixed, data):
    result = invoke("check", gates(data, check_toml("ok", max=1, max_increase=0.1) +
                                   check_toml("too high", max=0.5) + check_toml("missing", input="nope.npy", max=1)),
                    "-q")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "FAIL: too high: 0.75 is above max 0.5"
    assert lines[1].startswith("error: missing: input (")
    assert lines[-1] == "ERROR: 1 passed, 1 failed, 1 error; 1 not compared (no baseline)"
    assert not any(line.startswith("note:") for line in lines) and len(lines) == 3


def test_quiet_still_prints_json_and_writes_reports(data):
    gate = gates(data, check_toml("ok", max=1))
    result = invoke("check", gate, "-q", "-f", "json", "--markdown", data / "m.md")
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"] == "pass"
    assert result.stderr.strip() == "PASS: 1 passed, 0 failed, 0 errors" and (data / "m.md").exists()
