"""`losscli check GATES`: gate files, bounds, NaN, baselines, every report format and exit status.

Values are checked against torch.nn.functional on the same files (read with numpy here) and against the
loss commands' own printed output; the regression arithmetic against numbers written out in the test."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from losscli.api import NanPolicy
from losscli.backends import Backend
from losscli.edge.cli import app
from losscli.losses import CATALOG
from losscli.reduction import Reduction

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SCHEMA = json.loads((ROOT / "losscli" / "report.schema.json").read_text())

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def validate(report: dict) -> None:
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)


def gate_file(folder: Path, text: str, name: str = "gates.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def check_toml(name: str, loss: str = "l1", input: str = "input.npy", target: str = "target.npy", **extra) -> str:
    lines = ["[[check]]", f"name = {json.dumps(name)}", f'loss = "{loss}"', f'input = "{input}"',
             f'target = "{target}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n\n"


def baseline_file(folder: Path, values: dict[str, float], loss: str = "l1", parameters: dict | None = None) -> Path:
    """A minimal report of an earlier run, written out by hand."""
    checks = [{"name": name, "loss": loss, "reduction": "mean", "backend": "numpy", "inputs": [],
               "parameters": parameters or {}, "bounds": {"max": 1.0}, "value": value, "baseline": None,
               "delta": None, "status": "pass", "message": None} for name, value in values.items()]
    report = {"schema_version": 1, "tool": {"name": "losscli", "version": "0.0.9"}, "created": "2026-01-01T00:00:00Z",
              "gate_file": "gates.toml", "verdict": "pass", "exit_code": 0,
              "summary": {"checks": len(checks), "passed": len(checks), "failed": 0, "errors": 0, "skipped": 0,
                          "without_baseline": 0},
              "checks": checks}
    validate(report)
    path = folder / "baseline.json"
    path.write_text(json.dumps(report))
    return path


def report_of(*args: object) -> tuple[object, dict]:
    result = invoke(*args, "--format", "json")
    return result, json.loads(result.stdout)


# -- the sample gate file, against torch and the loss commands ---------------------------------------------


def t(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path))


def csv_column(path: Path) -> np.ndarray:
    return np.loadtxt(path, skiprows=1, dtype=np.int64)


def test_sample_gate_file_passes_with_torchs_values():
    result, report = report_of("check", SAMPLES / "gates.toml")
    assert result.exit_code == 0, result.stderr
    validate(report)
    values = {c["name"]: c["value"] for c in report["checks"]}
    cls, reg = SAMPLES / "classification", SAMPLES / "regression"
    logits, labels = t(cls / "logits.npy"), torch.from_numpy(csv_column(cls / "labels.csv"))
    keep = torch.from_numpy(csv_column(cls / "mask.csv")).bool()
    mask = t(reg / "mask.npy")
    margin = SAMPLES / "margin"
    mean, observed = t(SAMPLES / "divergence" / "mean.npy"), t(SAMPLES / "divergence" / "observed.npy")
    eval_labels = torch.from_numpy(np.loadtxt(SAMPLES / "statistics" / "eval.csv", skiprows=1, delimiter=",",
                                              usecols=0, dtype=np.int64))
    expected = {
        "classifier": F.cross_entropy(logits, labels),
        "classifier, smoothed, kept rows": F.cross_entropy(logits[keep], labels[keep], label_smoothing=0.1),
        "regression": F.huber_loss(t(reg / "pred.npy")[mask], t(reg / "target.npy")[mask], delta=0.5),
        "multi-label": F.binary_cross_entropy_with_logits(
            t(SAMPLES / "binary" / "logits.npy"), t(SAMPLES / "binary" / "targets.npy"),
            pos_weight=t(SAMPLES / "binary" / "pos_weight.npy")),
        "ranking": F.margin_ranking_loss(t(margin / "scores1.npy"), t(margin / "scores2.npy"),
                                         torch.from_numpy(csv_column(margin / "rank_target.csv")).float(),
                                         margin=0.1),
        "uncertainty": F.gaussian_nll_loss(mean, observed, torch.full_like(mean, 0.5)),
        "retrained classifier": F.cross_entropy(t(SAMPLES / "statistics" / "retrained.npy"), eval_labels),
    }
    assert values.keys() == expected.keys()
    for name, value in expected.items():
        assert math.isclose(values[name], value.item(), rel_tol=2e-6), name
    assert report["summary"] == {"checks": 7, "passed": 7, "failed": 0, "errors": 0, "skipped": 0,
                                 "without_baseline": 2}
    accepted = F.cross_entropy(t(SAMPLES / "statistics" / "accepted.npy"), eval_labels).item()
    comparison = report["checks"][-1]["comparison"]
    assert math.isclose(comparison["accepted"], accepted, rel_tol=2e-6)
    assert comparison["low"] <= comparison["difference"] <= comparison["high"] and comparison["low"] < 0.01 * accepted


@pytest.mark.parametrize("name, command", [
    ("classifier", ["cross-entropy", "classification/logits.npy", "classification/labels.csv"]),
    ("regression", ["huber", "regression/pred.npy", "regression/target.npy", "--mask", "regression/mask.npy",
                    "--delta", "0.5"]),
    ("uncertainty", ["gaussian-nll", "divergence/mean.npy", "divergence/observed.npy", "0.5"]),
])
def test_values_are_what_the_loss_commands_print(name, command, monkeypatch):
    monkeypatch.chdir(SAMPLES)
    printed = invoke(*command, "-f", "plain").stdout.strip()
    result = invoke("check", "gates.toml", "--only", name)
    assert printed in result.stdout
    _, report = report_of("check", "gates.toml", "--only", name)
    assert report["checks"][[c["name"] for c in report["checks"]].index(name)]["value"] == float(printed)


def test_sample_baseline_is_a_valid_report_of_the_sample_files_and_covers_every_regression_bound():
    baseline = json.loads((SAMPLES / "baseline.json").read_text())
    validate(baseline)
    for check in baseline["checks"]:
        for item in check["inputs"]:
            assert item["sha256"] == hashlib.sha256((SAMPLES / item["file"]).read_bytes()).hexdigest()
    result, report = report_of("check", SAMPLES / "gates.toml", "--baseline", SAMPLES / "baseline.json")
    assert result.exit_code == 0 and report["summary"]["without_baseline"] == 0
    classifier = report["checks"][0]
    assert classifier["baseline"] == 0.7102
    assert classifier["delta"] == pytest.approx(classifier["value"] - 0.7102, abs=1e-12)


def test_help_has_an_example():
    result = invoke("check", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Example:" in text and "--baseline" in text and "--junit" in text


# -- pass, FAIL, NaN, error and exit status ------------------------------------------------------------


def test_pass_fail_and_the_verdict(data):
    gates = gate_file(data, check_toml("ok", max=0.8) + check_toml("too high", max=0.7) +
                      check_toml("too low", min=0.76))
    result = invoke("check", gates)
    assert result.exit_code == 1
    assert "FAIL: 1 passed, 2 failed, 0 errors" in result.stdout
    assert "FAIL: too high: 0.75 is above max 0.7" in result.stderr
    assert "FAIL: too low: 0.75 is below min 0.76" in result.stderr
    assert "Traceback" not in result.stderr


def test_bounds_are_inclusive(data):
    result = invoke("check", gate_file(data, check_toml("edge", max=0.75, min=0.75)))
    assert result.exit_code == 0 and "PASS: 1 passed, 0 failed, 0 errors" in result.stdout


def test_nan_fails_every_gate(data):
    result, report = report_of("check", gate_file(data, check_toml("nan", input="nan.npy", min=0.0)))
    assert result.exit_code == 1
    validate(report)
    assert report["checks"][0]["value"] == "NaN" and report["checks"][0]["failed"] == ["nan"]
    assert "NaN never passes" in result.stderr


def test_an_error_in_one_check_does_not_stop_the_others_and_exit_2_wins_over_1(data):
    gates = gate_file(data, check_toml("missing", input="nope.npy", max=1) + check_toml("ok", max=1) +
                      check_toml("fails", max=0.1))
    result, report = report_of("check", gates)
    assert result.exit_code == 2
    validate(report)
    assert [c["status"] for c in report["checks"]] == ["error", "pass", "fail"]
    missing = report["checks"][0]
    assert missing["value"] is None and missing["error_type"] == "InputError"
    # the message names the file as resolved against the gate file's folder: what was looked for
    assert missing["message"] == f"input ({data / 'nope.npy'}): expected a .npy file, but there is no such file"
    assert missing["inputs"][0]["sha256"] is None and missing["inputs"][0]["file"] == "nope.npy"
    assert f"error: missing: input ({data / 'nope.npy'})" in result.stderr
    assert report["verdict"] == "error" and report["exit_code"] == 2


def test_an_input_the_loss_refuses_is_that_checks_error(data):
    np.save(data / "short.npy", np.zeros(3, dtype=np.float32))
    result = invoke("check", gate_file(data, check_toml("shapes", target="short.npy", max=1) + check_toml("ok", max=1)))
    assert result.exit_code == 2
    assert "ERROR: 1 passed, 0 failed, 1 error" in result.stdout
    assert "error: shapes:" in result.stderr and "(2,)" in result.stderr and "(3,)" in result.stderr


def test_options_files_list_weight_and_reduction(data):
    np.save(data / "w.npy", np.array([2.0, 1.0], dtype=np.float32))
    np.save(data / "t3.npy", np.array([1.0, -1.0], dtype=np.float32))
    text = (check_toml("weighted sum", loss="mse", weight="w.npy", reduction="sum", max=10) +
            '[[check]]\nname = "ranking"\nloss = "margin-ranking"\nfiles = ["input.npy", "target.npy", "t3.npy"]\n'
            'margin = 0.25\nmax = 10\n\n' +
            check_toml("smooth", loss="smooth-l1", beta=0.5, max=10))
    result, report = report_of("check", gate_file(data, text))
    assert result.exit_code == 0, result.stderr
    a, b, w = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 3.0]), torch.tensor([2.0, 1.0])
    expected = [(w * (a - b) ** 2).sum(), F.margin_ranking_loss(a, b, torch.tensor([1.0, -1.0]), margin=0.25),
                F.smooth_l1_loss(a, b, beta=0.5)]
    for check, value in zip(report["checks"], expected):
        assert math.isclose(check["value"], value.item(), rel_tol=1e-6), check["name"]
    assert report["checks"][1]["parameters"] == {"margin": 0.25}
    assert [i["role"] for i in report["checks"][1]["inputs"]] == ["input1", "input2", "target"]
    assert report["checks"][2]["parameters"] == {"beta": 0.5}


# -- baselines -------------------------------------------------------------------------------------------


def test_first_run_without_a_baseline_passes_and_says_so(data):
    result, report = report_of("check", gate_file(data, check_toml("reg", max_increase=0.01)))
    assert result.exit_code == 0
    assert report["checks"][0]["baseline"] is None
    assert report["checks"][0]["notes"] == ["no baseline (no baseline given): max_increase not checked"]
    assert report["summary"]["without_baseline"] == 1
    table = invoke("check", gate_file(data, check_toml("reg", max_increase=0.01)))
    assert "1 not compared (no baseline)" in table.stdout and "note: reg: no baseline" in table.stderr


def test_regression_bounds_use_the_printed_numbers_exactly(data):
    # value 0.75 against a baseline 0.7: the increase is 0.05 (in floats 0.75 - 0.7 = 0.05000000000000004)
    gates = gate_file(data, check_toml("abs ok", max_increase=0.05) + check_toml("abs fail", max_increase=0.049) +
                      check_toml("pct fail", max_increase_pct=7) + check_toml("pct ok", max_increase_pct=7.2))
    baseline = baseline_file(data, {"abs ok": 0.7, "abs fail": 0.7, "pct fail": 0.7, "pct ok": 0.7})
    result, report = report_of("check", gates, "--baseline", baseline)
    assert result.exit_code == 1
    validate(report)
    assert [c["status"] for c in report["checks"]] == ["pass", "fail", "fail", "pass"]
    assert report["checks"][0]["delta"] == 0.05
    assert report["checks"][2]["delta_pct"] == pytest.approx(100 * 0.05 / 0.7)  # 7.142857...%
    assert report["checks"][1]["failed"] == ["max_increase"]
    assert "0.75 is 0.05 above the baseline 0.7, more than max_increase 0.049" in result.stderr
    assert "0.75 is 0.05 above the baseline 0.7 (+7.143%), more than max_increase_pct 7%" in result.stderr
    assert report["baseline"]["file"] == str(baseline)


def test_an_improvement_passes_with_a_negative_delta(data):
    gates = gate_file(data, check_toml("better", max_increase=0, max_increase_pct=0))
    result, report = report_of("check", gates, "--baseline", baseline_file(data, {"better": 0.9}))
    assert result.exit_code == 0
    assert report["checks"][0]["delta"] == pytest.approx(-0.15)
    assert report["checks"][0]["delta_pct"] == pytest.approx(-100 * 0.15 / 0.9)


def test_a_baseline_of_zero_allows_no_increase_in_percent(data):
    gates = gate_file(data, check_toml("zero", max_increase_pct=50))
    result, report = report_of("check", gates, "--baseline", baseline_file(data, {"zero": 0.0}))
    assert result.exit_code == 1 and report["checks"][0]["delta_pct"] is None


def test_a_check_the_baseline_lacks_or_computed_otherwise_is_not_compared(data):
    gates = gate_file(data, check_toml("new", max_increase=0.01) +
                      check_toml("changed", loss="smooth-l1", beta=0.5, max_increase=0.01))
    baseline = baseline_file(data, {"changed": 0.1}, loss="smooth-l1", parameters={"beta": 1.0})
    result, report = report_of("check", gates, "--baseline", baseline)
    assert result.exit_code == 0
    assert report["checks"][0]["notes"] == ["no baseline (not in the baseline): max_increase not checked"]
    assert "the baseline used other options (beta 1.0 -> 0.5)" in report["checks"][1]["notes"][0]
    assert report["summary"]["without_baseline"] == 2


def test_write_baseline_only_when_every_check_passes(data, tmp_path):
    good = gate_file(data, check_toml("a", max=1, max_increase=0))
    written = tmp_path / "next.json"
    result = invoke("check", good, "--write-baseline", written)
    assert result.exit_code == 0 and f"baseline: written to {written}" in result.stderr
    validate(json.loads(written.read_text()))
    again, report = report_of("check", good, "--baseline", written)  # the ratchet: compare with it
    assert again.exit_code == 0 and report["checks"][0]["delta"] == 0.0

    bad = gate_file(data, check_toml("a", max=1) + check_toml("b", max=0.1), name="bad.toml")
    written.unlink()
    result = invoke("check", bad, "--write-baseline", written)
    assert result.exit_code == 1 and not written.exists()
    assert "not written" in result.stderr and "only when every check passes" in result.stderr


def test_write_baseline_with_only_or_skip_is_refused(data):
    gates = gate_file(data, check_toml("a", max=1) + check_toml("b", max=1))
    result = invoke("check", gates, "--write-baseline", data / "b.json", "--skip", "b")
    assert result.exit_code == 2 and "--write-baseline" in result.stderr and "--skip" in result.stderr
    assert not (data / "b.json").exists()


@pytest.mark.parametrize("content, fragments", [
    ("{not json", ["invalid JSON", "line 1, column 2"]),
    ('{"checks": []}', ["expected a losscli check report (an object with schema_version)"]),
    ('{"schema_version": 2, "checks": []}', ["expected schema_version 1, but got 2"]),
    ('{"schema_version": 1, "checks": {}}', ["checks: expected a list, but got a table"]),
    ('{"schema_version": 1, "checks": [{"name": "a", "loss": "l1", "value": "high"}]}',
     ["checks[0] 'a': value: expected a number or null, but got 'high'"]),
])
def test_a_bad_baseline_is_one_line_and_exit_2(data, content, fragments):
    (data / "base.json").write_text(content)
    result = invoke("check", gate_file(data, check_toml("a", max=1)), "--baseline", data / "base.json",
                    "--report", data / "r.json")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: --baseline (")
    for fragment in fragments:
        assert fragment in result.stderr
    report = json.loads((data / "r.json").read_text())  # no check ran: the report says why
    validate(report)
    assert report["checks"] == [] and report["verdict"] == "error"
    assert report["error"] == {"message": result.stderr.strip().removeprefix("error: "), "type": "GateError"}


def test_a_missing_baseline_file(data):
    result = invoke("check", gate_file(data, check_toml("a", max=1)), "--baseline", data / "none.json")
    assert result.exit_code == 2 and "there is no such file" in result.stderr


# -- reports ---------------------------------------------------------------------------------------------


@pytest.fixture
def mixed(data) -> Path:
    """One check of each status: pass, FAIL, error, NaN (FAIL) and skipped (with --skip skipped)."""
    return gate_file(data, check_toml("pass | piped", max=1) + check_toml("fail <b>", max=0.5) +
                     check_toml("error", input="nope.npy", max=1) + check_toml("nan", input="nan.npy", max=1) +
                     check_toml("skipped", max=1))


def test_json_report_file_matches_the_schema_and_stdout(mixed, tmp_path):
    result = invoke("check", mixed, "--skip", "skipped", "--report", tmp_path / "r.json", "--format", "json")
    assert result.exit_code == 2
    report = json.loads((tmp_path / "r.json").read_text())
    assert json.loads(result.stdout) == report
    validate(report)
    assert report["schema_version"] == 1 and report["tool"]["name"] == "losscli"
    from losscli import __version__

    assert report["tool"]["version"] == __version__
    assert [c["status"] for c in report["checks"]] == ["pass", "fail", "error", "fail", "skipped"]
    first = report["checks"][0]
    assert first["inputs"][0]["sha256"] == hashlib.sha256((mixed.parent / "input.npy").read_bytes()).hexdigest()
    assert first["inputs"][0]["file"] == "input.npy" and first["inputs"][0]["shape"] == [2]
    assert first["bounds"] == {"max": 1.0} and first["parameters"] == {} and first["value"] == 0.75
    assert report["checks"][4]["message"] == "skipped by --skip" and report["checks"][4]["value"] is None
    assert report["summary"] == {"checks": 5, "passed": 1, "failed": 2, "errors": 1, "skipped": 1,
                                 "without_baseline": 0}


def test_junit_parses_with_the_counts_ci_systems_read(mixed, tmp_path):
    result = invoke("check", mixed, "--skip", "skipped", "--junit", tmp_path / "junit.xml")
    assert result.exit_code == 2
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for element in (root, suite):
        assert {k: element.get(k) for k in ("tests", "failures", "errors")} == {
            "tests": "5", "failures": "2", "errors": "1"}
        assert float(element.get("time")) >= 0
    # junit-10.xsd allows skipped on <testsuite> only (tests/test_reports.py validates against it)
    assert suite.get("skipped") == "1" and root.get("skipped") is None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["pass | piped", "fail <b>", "error", "nan", "skipped"]
    assert all(c.get("classname") == "losscli.check" and float(c.get("time")) >= 0 for c in cases)
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure.get("type") == "max" and failure.get("message") == "0.75 is above max 0.5"
    error = cases[2].find("error")
    assert error.get("type") == "InputError" and "nope.npy" in error.get("message")
    assert cases[3].find("failure").get("type") == "nan"
    assert cases[4].find("skipped").get("message") == "skipped by --skip"


def test_markdown_summary_has_a_verdict_a_row_per_check_and_escapes_pipes(mixed, tmp_path):
    result = invoke("check", mixed, "--skip", "skipped", "--markdown", tmp_path / "summary.md")
    assert result.exit_code == 2
    text = (tmp_path / "summary.md").read_text()
    assert "**ERROR: 1 passed, 2 failed, 1 error, 1 skipped**" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| check | loss | value | bound | baseline | delta | status |"
    assert len(rows) == 6
    assert rows[1].startswith("| pass \\| piped | l1 | 0.75 | ≤ 1 |")
    assert rows[2].startswith("| fail &lt;b> |") and "FAIL" in rows[2]
    for row in rows[1:]:  # every row has 7 cells: no unescaped | inside one
        assert len(row.replace("\\|", "").strip("|").split("|")) == 7
    assert "- **fail &lt;b>** (FAIL): 0.75 is above max 0.5" in text


def test_an_unwritable_report_path_is_exit_2(data):
    result = invoke("check", gate_file(data, check_toml("a", max=1)), "--junit", data / "no" / "such" / "j.xml")
    assert result.exit_code == 2 and "--junit (" in result.stderr and "expected a writable path" in result.stderr


# -- --only / --skip -------------------------------------------------------------------------------------


def test_only_and_skip(data):
    gates = gate_file(data, check_toml("a", max=1) + check_toml("b", max=0.1) + check_toml("c", max=1))
    result, report = report_of("check", gates, "--only", "a", "--only", "c")
    assert result.exit_code == 0
    assert [c["status"] for c in report["checks"]] == ["pass", "skipped", "pass"]
    assert report["checks"][1]["message"] == "not selected by --only"
    table = invoke("check", gates, "--skip", "b")
    assert table.exit_code == 0 and "PASS: 2 passed, 0 failed, 0 errors, 1 skipped" in table.stdout


@pytest.mark.parametrize("option", ["--only", "--skip"])
def test_an_unknown_check_name_lists_the_checks(data, option):
    result = invoke("check", gate_file(data, check_toml("a", max=1) + check_toml("b", max=1)), option, "c")
    assert result.exit_code == 2
    assert f"{option}: expected one of the gate file's checks ('a', 'b'), but got 'c'" in result.stderr


# -- the gate file ---------------------------------------------------------------------------------------


def test_paths_are_relative_to_the_gate_file(data, monkeypatch, tmp_path):
    np.savetxt(data / "cols.csv", np.array([[1.0, 1.5], [2.0, 3.0]]), delimiter=",", header="pred,label",
               comments="")
    gates = gate_file(data / "ci", check_toml("csv columns", input="../cols.csv:pred", target="../cols.csv:label",
                                              max=1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result, report = report_of("check", gates)
    assert result.exit_code == 0, result.stderr
    assert report["checks"][0]["value"] == 0.75
    assert report["checks"][0]["inputs"][0]["file"] == "../cols.csv:pred"
    assert report["checks"][0]["inputs"][0]["selector"] == "pred"


BAD_GATES = [
    ("[[check]]\nname = 'a'\nloss = \n", ["expected TOML, but got a syntax error", "at line 3"]),
    ("", ["expected a TOML gate file, but the file is empty (0 bytes)"]),
    ("# no checks yet\n", ["expected at least one [[check]] table, but got none"]),
    ("[check]\nname = 'a'\n", ["expected [[check]] (an array of tables), but got a single [check] table"]),
    ("title = 'x'\n" + check_toml("a", max=1), ["unknown top-level key 'title'"]),
    (check_toml("a", max=1, colour="red"), ["check[1] 'a': unknown key 'colour'", "l1 checks take name, loss, files"]),
    (check_toml("a", max=1, maxx=2), ["unknown key 'maxx': did you mean max?"]),
    (check_toml("a", loss="cross-entropy", max=1, **{"ignore-index": 0}),
     ["unknown key 'ignore-index': keys use underscores", "ignore_index"]),
    (check_toml("a", loss="l1", max=1, pos_weight="w.npy"), ["unknown key 'pos_weight': l1 takes no pos_weight"]),
    (check_toml("a", max="1"), ["check[1] 'a': max: expected a finite number, but got a string \"1\""]),
    (check_toml("a", max=True), ["max: expected a finite number, but got a boolean true"]),
    (check_toml("a", loss="cross-entropy", max=1, ignore_index=1.5),
     ["ignore_index: expected an integer, but got a float 1.5"]),
    (check_toml("a", loss="cross-entropy", max=1, target_kind="probs"),
     ["target_kind: expected one of auto, index, prob, but got a string \"probs\""]),
    (check_toml("a", loss="crossentropy", max=1), ["loss: expected one of mse, l1", "did you mean cross-entropy?"]),
    (check_toml("a", max=1) + check_toml("a", max=2), ["duplicate name 'a': check[1] and check[2]"]),
    (check_toml("a"), ["check[1] 'a': no bound: expected at least one of max, min, max_increase, max_increase_pct"]),
    ("[[check]]\nloss = 'l1'\nmax = 1\n", ["check[1]: missing key 'name'"]),
    (check_toml("a", max=1) + "[[check]]\nname = 'b'\nmax = 1\n", ["check[2] 'b': missing key 'loss'"]),
    (check_toml("a", max=1, reduction="none"), ["reduction: expected one of mean, sum, but got a string \"none\"",
                                                 "a gate needs one number"]),
    (check_toml("a", max=1, backend="jax"), ["backend: expected one of numpy, torch"]),
    (check_toml("a", max=1, max_increase=-1), ["max_increase: expected a number >= 0, but got -1"]),
    (check_toml("a", max=1, min=2), ["min: expected a number <= max (1), but got 2"]),
    ("[[check]]\nname = 'a'\nloss = 'l1'\ninput = 3\ntarget = 't.npy'\nmax = 1\n",
     ["input: expected a file (FILE[:selector]), but got an integer 3"]),
    (check_toml("a", max=1, input="-"), ["input: expected a file, but got - (stdin cannot be read"]),
    ("[[check]]\nname = 'a'\nloss = 'l1'\ninput = 'x.npy'\nmax = 1\n", ["missing key 'target'",
                                                                       "l1 takes the files input, target"]),
    ("[[check]]\nname = 'a'\nloss = 'margin-ranking'\nfiles = ['a.npy', 'b.npy']\nmax = 1\n",
     ["files: expected a list of 3 files in torch's order (input1, input2, target), but got 2 files"]),
    (check_toml("a", max=1, files=["a.npy", "b.npy"]), ["give the files either as files = [...] or by name"]),
]


@pytest.mark.parametrize("text, fragments", BAD_GATES)
def test_a_bad_gate_file_is_one_line_naming_the_check_and_the_key(data, text, fragments):
    gates = gate_file(data, text)
    result = invoke("check", gates, "--report", data / "r.json", "--junit", data / "j.xml")
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: gate file ({gates})"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    # nothing ran, and the reports say so (tests/test_reports.py checks them in full)
    report = json.loads((data / "r.json").read_text())
    validate(report)
    assert report["checks"] == [] and report["error"]["message"] == lines[0].removeprefix("error: ")
    assert ET.parse(data / "j.xml").getroot().find("testsuite/testcase/error").get("type") == "GateError"


def test_a_missing_gate_file(tmp_path):
    result = invoke("check", tmp_path / "gates.toml")
    assert result.exit_code == 2
    assert "expected a TOML gate file, but there is no such file" in result.stderr


# -- the regression arithmetic, against integer arithmetic ----------------------------------------------


@settings(max_examples=200)
@given(value=st.integers(0, 5000), base=st.integers(0, 5000), allowed=st.integers(0, 500),
       pct=st.integers(0, 500))
def test_regression_bounds_are_exact_on_printed_numbers(value, base, allowed, pct):
    """value, baseline and max_increase in thousandths, max_increase_pct in tenths of a percent: the
    check passes exactly when the integer arithmetic says so (floats would get 0.75 - 0.7 wrong)."""
    from losscli import gates

    check = gates.Check(index=1, name="c", loss=CATALOG["l1"], files=(), extras=(), reduction=Reduction.mean,
                        backend=Backend.numpy, nan_policy=NanPolicy.propagate, broadcast=False, options={},
                        bounds={"max_increase": allowed / 1000, "max_increase_pct": pct / 10})
    baseline = gates.Baseline("b.json", None, {"c": gates.BaselineEntry(base / 1000, "l1", "mean", {})})
    outcome = gates.Outcome(check, gates.Status.passed, value=value / 1000, printed=str(value / 1000))
    gates._judge(outcome, baseline)
    expected = [b for b, ok in (("max_increase", value - base <= allowed),
                                ("max_increase_pct", (value - base) * 1000 <= pct * base)) if not ok]
    assert outcome.failed == expected
    assert outcome.delta == (value - base) / 1000


def test_the_numpy_path_never_imports_torch():
    code = ("import sys; sys.modules['torch'] = None\n"  # importing torch now raises
            "from losscli.edge.cli import app\n"
            f"app(['check', r'{SAMPLES / 'gates.toml'}', '-f', 'json'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "pass"
