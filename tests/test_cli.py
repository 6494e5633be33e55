"""The commands end to end: every format, exit code and error, checked against torch.nn.functional
computed here on the same sample files (read with numpy, not with losscli's loaders)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from losscli.edge.cli import app
from losscli.losses import CATALOG
from losscli.reduction import Reduction

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
REG, CLS, BIN, MASK = (SAMPLES / d for d in ("regression", "classification", "binary", "mask_example"))

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def t(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path))


def labels() -> torch.Tensor:
    return torch.from_numpy(np.loadtxt(CLS / "labels.csv", skiprows=1, dtype=np.int64))


def value_json(*args: str) -> dict:
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result, *fragments: str, code: int = 2) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# -- help and discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_loss_has_help_naming_torch_and_an_example(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0
    spec = CATALOG[name]
    text = " ".join(result.stdout.split())
    assert f"torch.nn.functional.{spec.torch_name}" in text
    assert "Example:" in text and "--reduction" in text and "--mask" in text


def test_top_level_help_lists_every_loss():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in CATALOG:
        assert name in result.stdout


def test_version():
    from losscli import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_reductions_table_has_the_nine_legacy_combinations():
    from torch.nn import _reduction

    result = invoke("reductions")
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    body = [[c.strip() for c in row.strip("│ ").split("│")] for row in rows]
    assert len(body) == 9
    for size_average, reduce, resolved in body:
        parse = {"unset": None, "True": True, "False": False}
        sa, r = parse[size_average], parse[reduce]
        if sa is None and r is None:
            assert resolved == "--reduction applies (default mean)"
        else:
            assert resolved == _reduction.legacy_get_string(sa, r, emit_warning=False)


def test_list_shows_every_loss_with_its_torch_function_files_options_and_reductions():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for spec in CATALOG.values():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{spec.name} "))
        end = next((i for i in range(at, len(lines)) if not lines[i].strip()), len(lines) - 1)
        block = lines[at:end]  # a loss's row, wrapped inside its columns
        assert block[1].startswith(f"{spec.torch_name} ")  # the torch name under the command
        words = " ".join(block).split()
        for word in [f.name.upper() for f in spec.files] + [o.flag for o in spec.options]:
            assert word in words, (spec.name, word)
        assert [w for w in words if w in {r.value for r in Reduction}] == [r.value for r in spec.reductions]


def test_list_fits_80_columns_without_cutting_a_word():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "…" not in result.stdout
    words = set(result.stdout.split())
    for spec in CATALOG.values():
        assert {spec.name, spec.torch_name, *(o.flag for o in spec.options)} <= words, spec.name


def test_reduction_choices_are_the_losss_own():
    result = invoke("mse", REG / "pred.npy", REG / "target.npy", "-r", "batchmean")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "batchmean" in result.stderr and "none" in result.stderr and "mean" in result.stderr


def test_unknown_loss_suggests_the_closest():
    result = invoke("cross-entropi", "a.npy", "b.npy")
    assert result.exit_code == 2
    assert "cross-entropy" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_option_value_is_one_line():
    result = invoke("mse", REG / "pred.npy", REG / "target.npy", "--reduction", "average")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--reduction" in result.stderr and "average" in result.stderr


# -- values against torch, every format ---------------------------------------------------------------


def test_mse_json_equals_torch_with_reproducibility_fields():
    out = value_json("mse", REG / "pred.npy", REG / "target.npy")
    expected = F.mse_loss(t(REG / "pred.npy"), t(REG / "target.npy")).item()
    assert out["value"] == pytest.approx(expected, rel=1e-6)
    assert out["loss"] == "mse" and out["reduction"] == "mean" and out["backend"] == "numpy"
    assert out["shape"] == [] and out["dtype"] == "float32"
    assert out["inputs"] == [{"role": "input", "file": str(REG / "pred.npy"), "shape": [8, 4], "dtype": "float32"},
                             {"role": "target", "file": str(REG / "target.npy"), "shape": [8, 4], "dtype": "float32"}]
    assert out["schema_version"] == 1 and out["tool"]["name"] == "losscli"
    assert out["versions"]["numpy"] == np.__version__ and "losscli" in out["versions"]
    assert "torch" not in out["versions"]  # the numpy backend never imports torch


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cross_entropy_with_class_weights_and_mask_equals_torch(backend):
    mask = torch.from_numpy(np.loadtxt(CLS / "mask.csv", skiprows=1).astype(bool))
    out = value_json("cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--weight",
                     CLS / "class_weight.npy", "--mask", CLS / "mask.csv", "--label-smoothing", "0.1",
                     "--backend", backend)
    target = torch.where(mask, labels(), torch.tensor(-100))
    expected = F.cross_entropy(t(CLS / "logits.npy"), target, weight=t(CLS / "class_weight.npy"),
                               label_smoothing=0.1).item()
    assert out["value"] == pytest.approx(expected, rel=1e-6)
    assert out["selected"] == int(mask.sum())
    assert out["parameters"] == {"ignore_index": -100, "label_smoothing": 0.1, "target_kind": "auto"}


def test_cross_entropy_probability_targets_and_k_dim():
    out = value_json("cross-entropy", CLS / "logits.npy", CLS / "soft_targets.npy")
    assert out["value"] == pytest.approx(
        F.cross_entropy(t(CLS / "logits.npy"), t(CLS / "soft_targets.npy")).item(), rel=1e-6)
    out = value_json("cross-entropy", CLS / "seg_logits.npy", CLS / "seg_labels.npy", "-r", "none")
    expected = F.cross_entropy(t(CLS / "seg_logits.npy"), t(CLS / "seg_labels.npy"), reduction="none")
    np.testing.assert_allclose(np.array(out["value"]), expected.numpy(), rtol=1e-6)
    assert out["shape"] == [2, 4, 4]


def test_nll_bce_and_bce_with_logits_equal_torch():
    out = value_json("nll", CLS / "log_probs.npy", CLS / "labels.csv", "--reduction", "sum")
    assert out["value"] == pytest.approx(
        F.nll_loss(t(CLS / "log_probs.npy"), labels(), reduction="sum").item(), rel=1e-6)
    out = value_json("bce", BIN / "probs.npy", BIN / "targets.npy", "--weight", BIN / "weight.npy")
    assert out["value"] == pytest.approx(F.binary_cross_entropy(
        t(BIN / "probs.npy"), t(BIN / "targets.npy"), weight=t(BIN / "weight.npy")).item(), rel=1e-6)
    out = value_json("bce-with-logits", BIN / "logits.npy", BIN / "targets.npy", "--pos-weight",
                     BIN / "pos_weight.npy", "--backend", "torch")
    assert out["value"] == pytest.approx(F.binary_cross_entropy_with_logits(
        t(BIN / "logits.npy"), t(BIN / "targets.npy"), pos_weight=t(BIN / "pos_weight.npy")).item(), rel=1e-6)


def test_columns_of_one_csv_as_input_and_target(reader):
    rows = np.genfromtxt(REG / "results.csv", delimiter=",", names=True)
    out = value_json("l1", f"{REG / 'results.csv'}:pred", f"{REG / 'results.csv'}:label")
    expected = F.l1_loss(torch.from_numpy(rows["pred"]), torch.from_numpy(rows["label"])).item()
    assert out["value"] == pytest.approx(expected, rel=1e-12)
    assert out["dtype"] == "float64"


def test_csv_from_stdin(reader):
    text = "pred,label\n1,2\n3,5\n"
    # "--" ends the options, so that "-:pred" reads as a file argument (stdin, column pred)
    result = invoke("mse", "--format", "plain", "--", "-:pred", "-:label", input=text)
    assert result.exit_code == 0, result.stderr
    assert float(result.stdout) == (1 + 4) / 2


def test_mask_worked_example_gives_one_not_two_thirds(reader):
    out = value_json("mse", MASK / "input.csv", MASK / "target.csv", "--mask", MASK / "mask.csv")
    # selected squared errors: (1-2)², (3-4)², (5-4)², (6-5)² = 1, 1, 1, 1 over 4 selected elements
    assert out["value"] == 1.0
    assert out["count"] == 6 and out["selected"] == 4


def test_plain_scalar_and_none():
    result = invoke("mse", MASK / "input.csv", MASK / "target.csv", "--format", "plain")
    assert result.exit_code == 0
    assert float(result.stdout) == 1.0  # every element differs by exactly 1
    result = invoke("l1", MASK / "input.csv", MASK / "target.csv", "-r", "none", "-f", "plain", "-m",
                    MASK / "mask.csv")
    assert [float(v) for v in result.stdout.split()] == [1, 0, 1, 0, 1, 1]


def test_csv_format_has_index_columns():
    result = invoke("l1", MASK / "input.csv", MASK / "target.csv", "-r", "none", "-f", "csv")
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["i0", "i1", "value"]
    assert [[int(i), int(j), float(v)] for i, j, v in rows[1:]] == [[i, j, 1.0] for i in range(2) for j in range(3)]


def test_table_scalar_shows_loss_reduction_backend_shapes_and_value():
    result = invoke("mse", REG / "pred.npy", REG / "target.npy")
    assert result.exit_code == 0
    text = result.stdout
    expected = F.mse_loss(t(REG / "pred.npy"), t(REG / "target.npy"))
    for fragment in ("mse_loss", "mean", "numpy", "(8, 4) float32", "32", str(expected.numpy())):
        assert fragment in text, fragment


def test_table_none_is_cut_to_head_and_tail_with_a_summary(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(100, dtype=np.float64))
    np.save(tmp_path / "b.npy", np.zeros(100))
    result = invoke("l1", tmp_path / "a.npy", tmp_path / "b.npy", "-r", "none")
    assert result.exit_code == 0
    assert "…" in result.stdout and " 99 " in result.stdout and " 50 " not in result.stdout
    assert "100 values · mean 49.5 · min 0 · max 99" in result.stdout


def test_json_none_and_non_finite_values(tmp_path):
    np.save(tmp_path / "a.npy", np.array([np.nan, np.inf, 1.0]))
    np.save(tmp_path / "b.npy", np.array([0.0, 0.0, 0.0]))
    result = invoke("l1", tmp_path / "a.npy", tmp_path / "b.npy", "-r", "none", "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["value"] == ["NaN", "Infinity", 1.0]
    assert "non-finite" in result.stderr


def test_output_files(tmp_path):
    result = invoke("l1", MASK / "input.csv", MASK / "target.csv", "-r", "none", "-o", tmp_path / "l.npy")
    assert result.exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), np.ones((2, 3)))
    result = invoke("mse", MASK / "input.csv", MASK / "target.csv", "-o", tmp_path / "v.csv", "-f", "plain")
    assert (tmp_path / "v.csv").read_text() == "value\n1.0\n"
    result = invoke("mse", MASK / "input.csv", MASK / "target.csv", "-o", tmp_path / "v.txt")
    assert_one_line_error(result, "--output", "v.txt", ".npy, .csv or .parquet")


# -- legacy flags, warnings --------------------------------------------------------------------------


@pytest.mark.parametrize("flags, expected", [
    (["--no-size-average"], "sum"), (["--no-reduce"], "none"), (["--size-average"], "mean"),
    (["--size-average", "--reduce"], "mean"), (["--no-size-average", "--reduce"], "sum"),
])
def test_legacy_flags_override_reduction_with_torch_warning(flags, expected):
    out_result = invoke("mse", REG / "pred.npy", REG / "target.npy", "-r", "mean", *flags, "-f", "json")
    assert out_result.exit_code == 0
    out = json.loads(out_result.stdout)
    assert out["reduction"] == expected
    warning = f"size_average and reduce args will be deprecated, please use reduction='{expected}' instead."
    assert warning in out_result.stderr
    kwargs = {"size_average": True if "--size-average" in flags else False if "--no-size-average" in flags
              else None, "reduce": True if "--reduce" in flags else False if "--no-reduce" in flags else None}
    expected_value = F.mse_loss(t(REG / "pred.npy"), t(REG / "target.npy"), **kwargs).numpy()
    np.testing.assert_allclose(np.array(out["value"], dtype=np.float32), expected_value, rtol=1e-6)


def test_broadcast_opt_in_with_torch_warning(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((3, 4), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.arange(4, dtype=np.float32))
    result = invoke("mse", tmp_path / "x.npy", tmp_path / "y.npy")
    assert_one_line_error(result, "target", "y.npy", "(3, 4)", "(4,)", "--broadcast")
    result = invoke("mse", tmp_path / "x.npy", tmp_path / "y.npy", "--broadcast", "-f", "plain")
    assert result.exit_code == 0
    assert float(result.stdout) == pytest.approx(
        F.mse_loss(torch.ones(3, 4), torch.arange(4.0)).item())
    assert "Using a target size (torch.Size([4])) that is different to the input size " \
           "(torch.Size([3, 4]))" in result.stderr


# -- thresholds and cross-check ---------------------------------------------------------------------


def test_fail_above_and_below_exit_one_with_a_reason():
    args = ("mse", MASK / "input.csv", MASK / "target.csv", "-f", "plain")
    assert invoke(*args, "--fail-above", "1.5").exit_code == 0
    result = invoke(*args, "--fail-above", "0.5")
    assert result.exit_code == 1 and "above --fail-above 0.5" in result.stderr
    assert float(result.stdout) == 1.0  # the value is still printed
    assert invoke(*args, "--fail-below", "0.5").exit_code == 0
    result = invoke(*args, "--fail-below", "2")
    assert result.exit_code == 1 and "below --fail-below 2" in result.stderr


def test_nan_always_fails_a_threshold(tmp_path):
    np.save(tmp_path / "a.npy", np.array([np.nan, 1.0]))
    np.save(tmp_path / "b.npy", np.zeros(2))
    result = invoke("mse", tmp_path / "a.npy", tmp_path / "b.npy", "--fail-above", "1e9")
    assert result.exit_code == 1 and "NaN" in result.stderr
    result = invoke("mse", tmp_path / "a.npy", tmp_path / "b.npy", "--nan-policy", "raise")
    assert_one_line_error(result, "input", "a.npy", "finite", "nan", "index 0")


def test_threshold_needs_a_reduced_value():
    result = invoke("mse", MASK / "input.csv", MASK / "target.csv", "-r", "none", "--fail-above", "1")
    assert_one_line_error(result, "--fail-above", "none")


def test_all_masked_mean_is_nan_with_warning(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((2, 3), dtype=bool))
    result = invoke("mse", MASK / "input.csv", MASK / "target.csv", "-m", tmp_path / "m.npy", "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["value"] == "NaN"
    assert "0 selected" in result.stderr


def test_cross_check_reports_both_backends():
    out = value_json("cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--cross-check")
    check = out["cross_check"]
    assert check["backend"] == "torch" and check["ok"] is True
    assert check["max_abs_diff"] <= 1e-5 * (1 + abs(out["value"]))
    assert out["versions"]["torch"] == torch.__version__


def test_cross_check_failure_exits_one(monkeypatch):
    from losscli.backends import torch_backend

    real = torch_backend.run
    def disagreeing(*args):
        computed = real(*args)
        return computed._replace(value=computed.value + 1e-3)

    monkeypatch.setattr(torch_backend, "run", disagreeing)
    result = invoke("cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--cross-check", "-f", "plain")
    assert result.exit_code == 1
    assert "cross-check: numpy and torch differ by up to 0.001" in result.stderr
    assert "--tolerance 1e-05" in result.stderr


# -- bad input: one line, exit 2, no traceback -------------------------------------------------------


def test_missing_file():
    assert_one_line_error(invoke("mse", "nope.npy", REG / "target.npy"), "input", "nope.npy")


def test_unsupported_extension(tmp_path):
    (tmp_path / "p.txt").write_text("1\n")
    assert_one_line_error(invoke("mse", tmp_path / "p.txt", REG / "target.npy"), "input", "p.txt", ".npy")


def test_corrupt_npy(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    assert_one_line_error(invoke("mse", tmp_path / "bad.npy", REG / "target.npy"), "input", "bad.npy")


def test_empty_file(tmp_path, reader):
    (tmp_path / "e.csv").write_text("")
    assert_one_line_error(invoke("mse", tmp_path / "e.csv", REG / "target.npy"), "input", "e.csv", "empty")


def test_malformed_csv_names_line_and_cell(tmp_path, reader):
    (tmp_path / "m.csv").write_text("pred\n1.0\n2.0\nabc\n")
    assert_one_line_error(invoke("mse", f"{tmp_path / 'm.csv'}:pred", f"{tmp_path / 'm.csv'}:pred"),
                          "m.csv", "line 4", "abc")


def test_unknown_column_lists_columns(reader):
    result = invoke("mse", f"{REG / 'results.csv'}:prediction", f"{REG / 'results.csv'}:label")
    assert_one_line_error(result, "input", "prediction", "id", "pred", "label")


def test_unknown_npz_key_lists_keys(tmp_path):
    np.savez(tmp_path / "a.npz", logits=np.zeros(3), other=np.zeros(3))
    result = invoke("mse", f"{tmp_path / 'a.npz'}:logit", REG / "target.npy")
    assert_one_line_error(result, "logit", "logits", "other")


def test_shape_mismatch_names_both_shapes():
    result = invoke("mse", REG / "pred.npy", CLS / "logits.npy")
    assert_one_line_error(result, "target", "logits.npy", "(8, 4)", "(12, 5)")


def test_bce_input_outside_unit_interval():
    result = invoke("bce", BIN / "logits.npy", BIN / "targets.npy")
    assert_one_line_error(result, "input", "logits.npy", "[0, 1]", "bce-with-logits")


def test_class_index_out_of_range_names_value_and_position(tmp_path, reader):
    (tmp_path / "y.csv").write_text("label\n0\n1\n7\n")
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.float32))
    result = invoke("cross-entropy", tmp_path / "x.npy", tmp_path / "y.csv")
    assert_one_line_error(result, "target", "y.csv", "[0, 5)", "got 7", "index 2")


def test_float_class_targets_for_nll(tmp_path):
    np.save(tmp_path / "y.npy", np.arange(12) % 5 * 1.0)
    result = invoke("nll", CLS / "log_probs.npy", tmp_path / "y.npy")
    assert_one_line_error(result, "target", "y.npy", "integer class indices", "float64")


def test_target_kind_index_reads_integral_floats(tmp_path, reader):
    np.save(tmp_path / "y.npy", np.loadtxt(CLS / "labels.csv", skiprows=1))  # float64 labels
    result = invoke("cross-entropy", CLS / "logits.npy", tmp_path / "y.npy")
    assert_one_line_error(result, "--target-kind index")
    out = value_json("cross-entropy", CLS / "logits.npy", tmp_path / "y.npy", "--target-kind", "index")
    assert out["value"] == pytest.approx(F.cross_entropy(t(CLS / "logits.npy"), labels()).item(), rel=1e-6)


def test_weight_mask_and_pos_weight_of_wrong_shape(tmp_path):
    np.save(tmp_path / "w4.npy", np.ones(4, dtype=np.float32))
    np.save(tmp_path / "w2.npy", np.ones(2, dtype=np.float32))
    result = invoke("bce", BIN / "probs.npy", BIN / "targets.npy", "--weight", tmp_path / "w4.npy")
    assert_one_line_error(result, "weight", "w4.npy", "(10, 3)", "(4,)")
    result = invoke("cross-entropy", CLS / "logits.npy", CLS / "labels.csv", "--weight", tmp_path / "w4.npy")
    assert_one_line_error(result, "weight", "w4.npy", "(5,)", "(4,)")
    result = invoke("mse", REG / "pred.npy", REG / "target.npy", "--mask", tmp_path / "w4.npy")
    assert_one_line_error(result, "mask", "w4.npy", "(8, 4)", "(4,)")
    result = invoke("bce-with-logits", BIN / "logits.npy", BIN / "targets.npy", "--pos-weight",
                    tmp_path / "w2.npy")
    assert_one_line_error(result, "pos_weight", "w2.npy", "(10, 3)", "(2,)")


def test_debug_shows_the_traceback():
    result = invoke("mse", "nope.npy", REG / "target.npy", "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "nope.npy" in result.stderr


def test_backend_torch_without_torch_says_how_to_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from losscli.edge.cli import app\n"
            f"app(['mse', r'{REG / 'pred.npy'}', r'{REG / 'target.npy'}', '--backend', 'torch'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pip install" in proc.stderr and "Traceback" not in proc.stderr


# -- the process ----------------------------------------------------------------------------------------


def test_python_dash_m_and_no_torch_on_the_numpy_path():
    code = ("import sys, runpy; sys.argv = ['losscli', 'mse', r'{p}', r'{q}', '-f', 'plain']\n"
            "try:\n    runpy.run_module('losscli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n").format(
        p=REG / "pred.npy", q=REG / "target.npy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert math.isclose(float(proc.stdout), F.mse_loss(t(REG / "pred.npy"), t(REG / "target.npy")).item(),
                        rel_tol=1e-6)


# -- every loss, every format ----------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", list(CATALOG))
def test_every_loss_in_every_format_agrees_with_torch(name, reduction):
    """Each loss's --help example: json, plain and csv carry the same numbers, and json equals what
    --backend torch (torch.nn.functional itself) gives for the same files."""
    args = CATALOG[name].example.split()[1:] + ["-r", reduction]
    ours = value_json(*args)["value"]
    theirs = value_json(*args, "--backend", "torch")["value"]
    # float32 samples: torch rounds every step, so 1 - cos(x1, x2) near 0 is off by a few ulps of 1
    np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=2e-6, atol=5e-7)
    plain = invoke(*args, "-f", "plain")
    assert plain.exit_code == 0, plain.stderr
    as_csv = invoke(*args, "-f", "csv")
    assert as_csv.exit_code == 0, as_csv.stderr
    from_csv = [float(row["value"]) for row in csv.DictReader(as_csv.stdout.splitlines())]
    from_plain = [float(x) for x in plain.stdout.split()]
    want = np.ravel(np.array(ours, dtype=float))
    np.testing.assert_array_equal(from_plain, want)
    np.testing.assert_array_equal(from_csv, want)
    table = invoke(*args)
    assert table.exit_code == 0 and "value" in table.stdout
