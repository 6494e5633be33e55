"""Gradients: ``compute(..., grad=True).grad`` = d(loss)/d(first array), for both backends.

The reference is torch autograd: the torch.nn.functional oracle of tests/oracle.py, run on float64 copies
of the case with the input as a leaf that requires grad, then ``out.backward(torch.ones_like(out))`` (for
``none``: the gradient of the sum, as torch's ``backward(ones_like(loss))``). Masks are what they are in
that oracle: slicing, ``ignore_index`` for class indices, row selection for class probabilities, and
``torch.where(mask, out, 0)`` for ``none``. Central finite differences of the same oracle (no autograd)
check the gradients where the loss is smooth. Cases are tests/oracle.py's hypothesis strategies: shapes (0-d,
empty, unbatched ``(C,)``, ``(N, C, d1, d2)``), broadcast inputs, weights, pos_weight, masks,
ignore_index, label smoothing, probability targets, every reduction and the legacy flags.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from tests.oracle import (
    ALL_LOSSES,
    BACKENDS,
    BINARY,
    CLASSES,
    FLOATS,
    REGRESSION,
    TOLERANCE,
    Case,
    autograd,
    binary_cases,
    central_differences,
    class_cases,
    loss_sum,
    probability_cases,
    regression_broadcast_cases,
    regression_cases,
    unused_inputs,
)


# ----------------------------------------------------------------------------------------- helpers


def check_grad(c: Case) -> None:
    """Both backends' gradients: the input's shape, the result's dtype, torch autograd's values, and a plain
    0 (never -0.0) wherever nothing that counts depends on the input."""
    _, want = autograd(c)
    rtol, atol = TOLERANCE[np.dtype(c.input.dtype)]
    dead = unused_inputs(c)
    for backend in BACKENDS:
        result = c.compute(backend, outputs=losscli.Outputs(grad=True))
        grad = result.grad
        assert grad is not None, backend
        assert grad.shape == c.input.shape, (backend, grad.shape, c.input.shape)
        assert grad.dtype == result.value.dtype == c.input.dtype, (backend, grad.dtype, result.value.dtype)
        np.testing.assert_allclose(grad, want, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"backend={backend}: d({c.loss})/d(input) differs from autograd")
        assert np.all(grad[dead] == 0), (backend, grad[dead])
        assert not np.any(np.signbit(grad[dead])), (backend, "-0.0 where nothing counts", grad[dead])


# -------------------------------------------------------------------- 1, 2, 4, 5: against autograd


@pytest.mark.parametrize("loss", REGRESSION)
@given(data=st.data())
def test_regression_gradients_match_autograd(loss, data):
    check_grad(data.draw(regression_cases(loss)))


@pytest.mark.parametrize("loss", REGRESSION)
@given(data=st.data())
def test_broadcast_regression_gradients_match_autograd(loss, data):
    check_grad(data.draw(regression_broadcast_cases(loss)))


@pytest.mark.parametrize("loss", CLASSES)
@given(data=st.data())
def test_class_index_gradients_match_autograd(loss, data):
    check_grad(data.draw(class_cases(loss)))


@given(case=probability_cases())
def test_cross_entropy_probability_target_gradients_match_autograd(case):
    check_grad(case)


@pytest.mark.parametrize("loss", BINARY)
@given(data=st.data())
def test_binary_gradients_match_autograd(loss, data):
    check_grad(data.draw(binary_cases(loss)))


def _classes(shape: tuple[int, ...]) -> np.ndarray:
    """Class indices for a class input of ``shape``, every class used."""
    classes, loss_shape = (shape[0], ()) if len(shape) == 1 else (shape[1], shape[:1] + shape[2:])
    return (np.arange(int(np.prod(loss_shape))) % classes).reshape(loss_shape) if loss_shape else np.array(2)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "loss, in_shape, target, options",
    [
        ("cross-entropy", (4,), "index", {}),  # unbatched: (C,) and a 0-d class index
        ("nll", (4,), "index", {}),
        ("cross-entropy", (4,), "prob", {"label_smoothing": 0.1}),
        ("cross-entropy", (2, 3, 2, 2), "index", {"label_smoothing": 0.2}),  # K-dim (N, C, d1, d2)
        ("nll", (2, 3, 2, 2), "index", {}),
        ("cross-entropy", (2, 3, 2, 2), "prob", {}),
        ("mse", (3, 1), (2, 3, 4), {"broadcast": True}),  # input smaller than the loss
        ("l1", (), (2, 3), {"broadcast": True}),  # a 0-d input against a (2, 3) target
        ("huber", (1, 4), (3, 1), {"broadcast": True}),  # both broadcast
        ("smooth-l1", (2, 1, 3), (3,), {"broadcast": True}),  # input larger, target broadcast
        ("bce", (2, 3, 2), "same", {}),
        ("bce-with-logits", (5,), "same", {}),
    ],
)
def test_gradient_has_the_inputs_shape_and_the_results_dtype(loss, in_shape, target, options, reduction, dtype):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.05, 0.95, in_shape) if loss == "bce" else rng.normal(size=in_shape)
    x = np.asarray(x, dtype)
    if target == "index":
        y = _classes(in_shape)
    elif target == "prob":
        y = np.asarray(rng.dirichlet(np.ones(in_shape[0 if len(in_shape) == 1 else 1]),
                                     size=in_shape[:1] + in_shape[2:] if len(in_shape) > 1 else None), dtype)
        y = y if len(in_shape) == 1 else np.moveaxis(y, -1, 1)
    elif target == "same":
        y = np.asarray(rng.uniform(0, 1, in_shape), dtype)
    else:
        y = np.asarray(rng.normal(size=target), dtype)
    params = {k: v for k, v in options.items() if k != "broadcast"}
    case = Case(loss, x, y, reduction=reduction, broadcast=options.get("broadcast", False), params=params)
    check_grad(case)  # the input's shape and dtype, for both backends, and autograd's values
    if reduction == "none" and options.get("broadcast"):  # the loss is larger than the gradient
        assert case.compute("numpy", outputs=losscli.Outputs(grad=True)).value.shape == np.broadcast_shapes(x.shape, y.shape)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_takes_the_results_dtype_not_the_inputs(backend):
    """float32 predictions against float64 targets compute in float64 (torch's promotion); integers in
    float32 (torch's default dtype). The gradient follows the result."""
    x32, y64 = np.array([0.5, -1.0, 2.0], np.float32), np.array([0.0, 1.0, 1.5])
    result = losscli.compute("mse", x32, y64, reduction="sum", backend=backend, outputs=losscli.Outputs(grad=True))
    assert result.value.dtype == result.grad.dtype == np.float64 and result.grad.shape == (3,)
    leaf = torch.tensor(x32.astype(np.float64), requires_grad=True)
    F.mse_loss(leaf, torch.from_numpy(y64), reduction="sum").backward()
    np.testing.assert_allclose(result.grad, leaf.grad.numpy(), rtol=1e-7)

    xi, yi = np.array([[1, 2], [3, 4]]), np.array([[0, 2], [5, 4]])
    result = losscli.compute("l1", xi, yi, backend=backend, outputs=losscli.Outputs(grad=True))
    assert result.value.dtype == result.grad.dtype == np.float32 and result.grad.shape == (2, 2)
    leaf = torch.tensor(xi, dtype=torch.float32, requires_grad=True)
    F.l1_loss(leaf, torch.tensor(yi, dtype=torch.float32)).backward()
    np.testing.assert_array_equal(result.grad, leaf.grad.numpy())  # sign / 4: exact


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_masked_and_ignored_elements_get_a_plain_zero(backend, reduction):
    """Written-out cases where the derivative at the dead elements is negative (x < y, wrong class),
    so a 0 · derivative would be -0.0."""
    x, y = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), np.ones((2, 3))
    mask = np.array([[True, False, True], [False, True, True]])
    for loss in ("mse", "l1", "smooth-l1", "huber", "bce", "bce-with-logits"):
        case = Case(loss, x, y, mask=mask, reduction=reduction)
        grad = case.compute(backend, outputs=losscli.Outputs(grad=True)).grad
        assert np.all(grad[~mask] == 0) and not np.any(np.signbit(grad[~mask])), (loss, grad)
        assert np.all(grad[mask] < 0), (loss, grad)  # the live ones do move
    logits = np.array([[2.0, -1.0, 0.5], [0.3, 0.2, -0.4], [1.0, 1.0, 1.0]])
    labels = np.array([0, 2, 1])
    for loss, options in (("cross-entropy", {"label_smoothing": 0.3}), ("nll", {})):
        # row 1 ignored by index, row 2 masked out
        case = Case(loss, logits if loss == "cross-entropy" else -np.abs(logits), labels,
                    weight=np.array([1.0, 2.0, 0.5]), mask=np.array([True, True, False]), reduction=reduction,
                    params={"ignore_index": 2, **options})
        grad = case.compute(backend, outputs=losscli.Outputs(grad=True)).grad
        assert np.all(grad[1:] == 0) and not np.any(np.signbit(grad[1:])), (loss, grad)
        assert np.any(grad[0] != 0), (loss, grad)


# ------------------------------------------------------------------------ 3: central differences

EPS = 1e-6
MARGIN = 3e-3  # how close to a kink |input - target| may come; the nudge below is 0.01 > 2 · MARGIN


def away_from_kinks(c: Case) -> Case:
    """l1, smooth-l1 and huber bend where |d| is 0 or beta (delta): move d = input - target off those."""
    kinks = [0.0] + [k for k in (c.params.get("beta"), c.params.get("delta")) if k]
    d = c.input - c.target
    near = np.zeros(d.shape, bool)
    for k in kinks:
        near |= np.abs(np.abs(d) - k) < MARGIN
    return replace(c, input=np.asarray(c.target + np.where(near, d + 0.01, d)))  # 0-d stays an array


@st.composite
def smooth_cases(draw, loss: str) -> Case:
    """float64 cases where the loss is smooth around the input."""
    f64 = (np.float64,)
    if loss in REGRESSION:
        return away_from_kinks(draw(regression_cases(loss, f64)))
    if loss == "cross-entropy":
        return draw(st.one_of(class_cases(loss, f64), probability_cases(f64)))
    if loss in CLASSES:
        return draw(class_cases(loss, f64))
    c = draw(binary_cases(loss, f64))
    if loss == "bce":  # off 0 and 1 (log, clamps); 0-d stays an array
        return replace(c, input=np.asarray(0.02 + 0.96 * c.input))
    return c


@pytest.mark.parametrize("loss", ALL_LOSSES)
@given(data=st.data())
def test_gradients_equal_central_differences(loss, data):
    c = data.draw(smooth_cases(loss))
    f0 = loss_sum(c, c.input)
    assume(np.isfinite(f0))  # mean over nothing is NaN: nothing to difference
    if c.input.size == 0:
        return
    points = data.draw(st.lists(st.integers(0, c.input.size - 1), min_size=1, max_size=3, unique=True))
    differences = central_differences(lambda x: loss_sum(c, x), c.input, points, EPS)
    for backend in BACKENDS:
        grad = c.compute(backend, outputs=losscli.Outputs(grad=True)).grad.reshape(-1)[points]
        np.testing.assert_allclose(grad, differences, rtol=1e-5, atol=1e-7 * (1 + abs(f0)),
                                   err_msg=f"backend={backend}: gradient against central differences")


# ------------------------------------------------------------------- regressions, written out


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_selected_under_mean_gives_zero_gradient_where_nothing_counts(backend):
    """All masked out (mse), or the selected weights summing to 0 (nll): the mean is NaN, as in torch,
    and torch's gradient is 0 at every element that does not count."""
    x = np.array([0.2, 0.7, 0.1])
    leaf = torch.tensor(x, requires_grad=True)
    F.mse_loss(leaf[torch.zeros(3, dtype=torch.bool)], torch.zeros(0, dtype=torch.float64)).backward()
    want = leaf.grad.numpy()
    assert np.array_equal(want, np.zeros(3))
    got = losscli.compute("mse", x, np.zeros(3), mask=np.zeros(3, bool), backend=backend, outputs=losscli.Outputs(grad=True)).grad
    np.testing.assert_array_equal(got, want)

    logp, labels, w = np.log(np.full((2, 3), 1 / 3)), np.array([0, 1]), np.array([0.0, 1.0, 1.0])
    leaf = torch.tensor(logp, requires_grad=True)
    F.nll_loss(leaf, torch.tensor([0, -100]), weight=torch.from_numpy(w)).backward()  # row 1 masked out
    got = losscli.compute("nll", logp, labels, weight=w, mask=np.array([True, False]),
                          backend=backend, outputs=losscli.Outputs(grad=True)).grad
    np.testing.assert_array_equal(got[1], leaf.grad.numpy()[1])  # row 0: 0 · (1/0), NaN in both


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_elements_under_none_get_plus_zero_not_minus_zero(backend):
    x, y, mask = np.array([0.2, 0.7, 0.1]), np.ones(3), np.array([True, False, True])
    grad = losscli.compute("mse", x, y, mask=mask, reduction="none", backend=backend, outputs=losscli.Outputs(grad=True)).grad
    np.testing.assert_array_equal(grad, [-1.6, 0.0, -1.8])
    assert not np.signbit(grad[1]), grad


# ------------------------------------------------------------------------------------ 6: the CLI

runner = CliRunner()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    a = np.array([[0.5, -1.25, 2.0], [3.0, 0.0, -0.75]])
    b = np.array([[0.0, 1.0, 1.5], [-2.0, 0.5, 0.25]])
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    return a, b, tmp_path / "A.npy", tmp_path / "B.npy"


def torch_mse_grad(a: np.ndarray, b: np.ndarray, reduction: str) -> np.ndarray:
    leaf = torch.tensor(a, requires_grad=True)
    out = F.mse_loss(leaf, torch.from_numpy(b), reduction=reduction)
    out.backward(torch.ones_like(out))
    return leaf.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cli_grad_npy_is_torchs_gradient(pair, tmp_path, reduction):
    a, b, pa, pb = pair
    out = tmp_path / "g.npy"
    result = runner.invoke(app, ["mse", str(pa), str(pb), "--grad", str(out), "--reduction", reduction])
    assert result.exit_code == 0, result.stderr
    grad = np.load(out)
    assert grad.shape == a.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, torch_mse_grad(a, b, reduction), rtol=1e-12, atol=0)


def test_cli_grad_csv_has_index_columns_and_value(pair, tmp_path):
    a, b, pa, pb = pair
    out = tmp_path / "g.csv"
    result = runner.invoke(app, ["mse", str(pa), str(pb), "--grad", str(out)])
    assert result.exit_code == 0, result.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["i0", "i1", "value"]
    assert len(rows) == 1 + a.size
    grad = np.full(a.shape, np.nan)
    for i0, i1, value in rows[1:]:
        grad[int(i0), int(i1)] = float(value)
    np.testing.assert_allclose(grad, torch_mse_grad(a, b, "mean"), rtol=1e-12, atol=0)


def test_cli_json_has_the_gradient_as_nested_lists(pair, tmp_path):
    a, b, pa, pb = pair
    result = runner.invoke(app, ["mse", str(pa), str(pb), "--grad", str(tmp_path / "g.npy"),
                                 "--format", "json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert isinstance(out["grad"], list) and all(isinstance(row, list) for row in out["grad"])
    assert np.array(out["grad"]).shape == a.shape
    np.testing.assert_allclose(np.array(out["grad"]), torch_mse_grad(a, b, "mean"), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), np.array(out["grad"]))


def test_cli_grad_with_another_extension_is_a_one_line_error(pair, tmp_path):
    _, _, pa, pb = pair
    out = tmp_path / "g.txt"
    result = runner.invoke(app, ["mse", str(pa), str(pb), "--grad", str(out)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "--grad" in lines[0] and "g.txt" in lines[0] and ".npy, .csv or .parquet" in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == "" and not out.exists()
