"""One JSON vocabulary: the loss commands' ``-f json`` (losscli/result.schema.json) and the check report
(losscli/report.schema.json) name and shape the same things the same way, each validated against its
shipped schema; ``-f metrics`` is the flat ``{"name": value}`` that dvc and mlflow read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from losscli.edge.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
RESULT_SCHEMA = json.loads((ROOT / "losscli" / "result.schema.json").read_text())
REPORT_SCHEMA = json.loads((ROOT / "losscli" / "report.schema.json").read_text())
CLS, REG, DIV = SAMPLES / "classification", SAMPLES / "regression", SAMPLES / "divergence"

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def result_json(*args: object) -> dict:
    result = invoke(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, RESULT_SCHEMA, cls=jsonschema.Draft202012Validator)
    return document


def test_the_shipped_schemas_are_valid_json_schemas_and_packaged():
    for schema in (RESULT_SCHEMA, REPORT_SCHEMA):
        jsonschema.Draft202012Validator.check_schema(schema)
    assert "result.schema.json" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("args", [
    ["mse", REG / "pred.npy", REG / "target.npy"],
    ["mse", REG / "pred.npy", REG / "target.npy", "-r", "none"],
    ["mse", REG / "pred.npy", REG / "target.npy", "--per-sample", "--top", "3", "--hist"],
    ["mse", REG / "pred.npy", REG / "target.npy", "-r", "none", "--top", "2"],
    ["cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--weight", CLS / "class_weight.npy",
     "--mask", CLS / "mask.csv"],
    ["cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--cross-check"],
    ["huber", REG / "pred.npy", REG / "target.npy", "--grad", "GRAD"],
], ids=["scalar", "none", "views", "top elements", "weight and mask", "cross-check", "grad"])
def test_every_form_of_the_loss_json_matches_its_schema(args, tmp_path):
    document = result_json(*[tmp_path / "g.npy" if a == "GRAD" else a for a in args])
    assert document["schema_version"] == 1 and document["tool"]["name"] == "losscli"


def test_a_number_given_for_a_file_is_recorded_as_the_check_report_records_it():
    """gaussian-nll's var given as 0.5: {"role": "var", "value": 0.5}, not a file of null."""
    document = result_json("gaussian-nll", DIV / "mean.npy", DIV / "observed.npy", "0.5")
    assert document["inputs"][2] == {"role": "var", "value": 0.5}
    assert [i["role"] for i in document["inputs"]] == ["input", "target", "var"]
    mean, observed = (torch.from_numpy(np.load(DIV / n)) for n in ("mean.npy", "observed.npy"))
    assert document["value"] == pytest.approx(F.gaussian_nll_loss(mean, observed, torch.full_like(mean, 0.5)).item(),
                                              rel=1e-6)


def test_the_loss_json_and_the_check_report_say_the_same_things_the_same_way(monkeypatch):
    """The sample gate file's 'uncertainty' check and the same loss on the command line: the shared fields
    have the same names, shapes and values."""
    monkeypatch.chdir(SAMPLES)
    loss = result_json("gaussian-nll", "divergence/mean.npy", "divergence/observed.npy", "0.5")
    report = json.loads(invoke("check", "gates.toml", "--only", "uncertainty", "-f", "json").stdout)
    jsonschema.validate(report, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    check = next(c for c in report["checks"] if c["name"] == "uncertainty")
    assert report["schema_version"] == loss["schema_version"] and report["tool"] == loss["tool"]
    for key in ("loss", "torch", "reduction", "backend", "value", "dtype", "parameters", "warnings"):
        assert check[key] == loss[key], key
    shared = ("role", "file", "shape", "dtype", "value")
    assert [{k: i[k] for k in shared if k in i} for i in check["inputs"]] == [
        {"role": "input", "file": "divergence/mean.npy", "shape": [6, 3], "dtype": "float32"},
        {"role": "target", "file": "divergence/observed.npy", "shape": [6, 3], "dtype": "float32"},
        {"role": "var", "value": 0.5}]
    assert loss["inputs"] == [{k: i[k] for k in shared if k in i} for i in check["inputs"]]
    assert "params" not in loss and isinstance(loss["inputs"], list)


# -- --format metrics ---------------------------------------------------------------------------------


def metrics(*args: object) -> dict[str, float]:
    result = invoke(*args, "-f", "metrics")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)  # Python's json, as dvc and mlflow.log_metrics read it
    assert isinstance(found, dict) and all(isinstance(k, str) and type(v) is float for k, v in found.items())
    return found


def test_loss_metrics_is_the_loss_name_and_torchs_value():
    found = metrics("cross-entropy", CLS / "logits.npy", CLS / "labels.csv")
    labels = torch.from_numpy(np.loadtxt(CLS / "labels.csv", skiprows=1, dtype=np.int64))
    expected = F.cross_entropy(torch.from_numpy(np.load(CLS / "logits.npy")), labels).item()
    assert list(found) == ["cross-entropy"] and math.isclose(found["cross-entropy"], expected, rel_tol=1e-6)
    plain = invoke("cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "-f", "plain").stdout.strip()
    assert found["cross-entropy"] == float(plain)  # the value as printed


def test_loss_metrics_of_a_nan_is_a_float_nan(tmp_path):
    np.save(tmp_path / "a.npy", np.array([np.nan, 1.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([0.0, 1.0], dtype=np.float32))
    result = invoke("mse", tmp_path / "a.npy", tmp_path / "b.npy", "-f", "metrics")
    assert result.exit_code == 0 and math.isnan(json.loads(result.stdout)["mse"])


@pytest.mark.parametrize("extra, got", [(["-r", "none"], "--reduction none"), (["--top", "2"], "--top"),
                                        (["--hist"], "--hist"), (["--no-reduce"], "--reduction none")])
def test_loss_metrics_refuses_what_is_not_one_value(extra, got):
    result = invoke("mse", REG / "pred.npy", REG / "target.npy", "-f", "metrics", *extra)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --format metrics: expected one reduced value") and f"but got {got}" in line
