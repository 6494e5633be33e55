"""The Python API's surface: torch tensors (with requires_grad too) are arrays like any other; a result's
warnings also go through Python's ``warnings`` (as ``LossCliWarning``), which the command line silences
because it prints them itself; ``LossResult`` has a short repr."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
T = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])


def test_a_tensor_that_requires_grad_is_read_as_its_values():
    x = torch.tensor(X, requires_grad=True)
    t = torch.tensor(T)
    result = losscli.compute("mse", x, t, outputs=losscli.Outputs(grad=True))
    expected = F.mse_loss(x, t)
    expected.backward()
    assert result.item() == pytest.approx(float(expected.detach()), rel=1e-15)
    np.testing.assert_allclose(result.grad, x.grad.numpy(), rtol=1e-15)
    assert x.grad is not None and x.requires_grad  # the caller's tensor is left as it was


def test_tensors_for_named_files_and_float32():
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    result = losscli.compute("l1", x, torch.tensor(T, dtype=torch.float32), mask=mask)
    # the selected |x - t|: 0.5, 0, 1.5, 0 -> mean 0.5
    assert result.value.dtype == np.float32 and result.item() == 0.5 and result.selected == 4


def test_a_tensor_numpy_cannot_hold_is_a_losscli_error():
    x = torch.tensor(X, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(losscli.InputError, match=r"^input: expected a tensor that converts to a numpy array, but "
                                                 r"got one that does not \(.*BFloat16.*\)$"):
        losscli.compute("mse", x, T)


def test_warnings_are_also_python_warnings():
    nan = np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.warns(losscli.LossCliWarning) as caught:
        result = losscli.compute("mse", nan, T)
    assert [str(w.message) for w in caught] == result.warnings == [
        "input holds 1 non-finite value(s) (first: nan at index (0, 0)); the result propagates them"]
    assert caught[0].filename == __file__  # attributed to the caller of compute()
    assert issubclass(losscli.LossCliWarning, UserWarning)


def test_no_warning_without_a_result_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert losscli.compute("mse", X, T).warnings == []


def test_the_command_line_prints_each_warning_once(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("nan.npy", np.array([np.nan, 1.0]))
    np.save("t.npy", np.array([1.0, 1.0]))
    Path("gates.toml").write_text('[[check]]\nname = "a"\nloss = "l1"\ninput = "nan.npy"\ntarget = "t.npy"\n'
                                  "max = 1\n")
    runner = CliRunner()
    for args in (["l1", "nan.npy", "t.npy", "-f", "plain"], ["check", "gates.toml"]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = runner.invoke(app, args)
        assert [w for w in caught if issubclass(w.category, losscli.LossCliWarning)] == []
        assert "holds 1 non-finite value(s)" in result.stderr


def test_repr_is_one_short_line():
    mean = (0.25 + 1 + 0 + 2.25 + 0 + 2.25) / 6  # the squared differences of X and T
    assert repr(losscli.compute("mse", X, T)) == (
        f"LossResult(loss='mse', reduction='mean', backend='numpy', value={mean!r}, selected=6/6)")
    big = losscli.compute("l1", np.zeros((1000, 100), np.float32), np.ones((1000, 100), np.float32),
                          reduction="none", mask=np.arange(100_000).reshape(1000, 100) % 2 == 0)
    assert repr(big) == ("LossResult(loss='l1', reduction='none', backend='numpy', "
                         "value=<float32 array of shape (1000, 100)>, selected=50000/100000)")
    with pytest.warns(losscli.LossCliWarning):
        nan = losscli.compute("mse", np.array([np.nan]), np.array([0.0]), reduction="sum")
    assert repr(nan) == ("LossResult(loss='mse', reduction='sum', backend='numpy', value=nan, selected=1/1, "
                         "warnings=1)")
