"""kl-div, poisson-nll and gaussian-nll, both backends, against torch.nn.functional (the ground truth).

hypothesis draws shapes (0-d, empty, up to 4-D), dtypes, reductions (batchmean for kl-div), the legacy
``size_average``/``reduce`` flags (kl_div and poisson_nll_loss take them; gaussian_nll_loss does not, so its
oracle resolves them first, as torch's own legacy_get_string does), options, masks, broadcasting, and
gaussian-nll's variance layouts (the input's shape, one dimension fewer, one dimension of size 1, a number).
The oracles call torch.nn.functional and never losscli. A mask is slicing: every tensor expanded to the
loss's shape and the selected elements taken (var as torch would broadcast it); ``none`` is torch's
unmasked output with masked-out entries set to 0. Gradients are checked against torch autograd on float64
copies (``backward(ones_like(out))``) and against central differences of the same oracle.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.errors import OptionError, ShapeError, ValueDomainError
from tests.oracle import (
    BACKENDS,
    DIVERGENCE,
    FLOATS,
    ROOT,
    TOLERANCE,
    Case,
    arrays,
    assert_matches,
    autograd,
    broadcasting_pairs,
    central_differences,
    check,
    element_shapes,
    loss_sum,
    masks,
    oracle,
    reductions,
    tensor,
    unused_inputs,
)

LOSSES = DIVERGENCE
LEGACY = ("kl-div", "poisson-nll")  # the torch functions that take size_average / reduce
F64 = TOLERANCE[np.dtype(np.float64)]

# torch 2.13's kl_div warning for reduction='mean', captured from torch itself
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    F.kl_div(torch.zeros(2), torch.zeros(2), reduction="mean")
KL_MEAN_WARNING = str(_caught[0].message)


# ------------------------------------------------------------------------------------ gradients


def check_grad(c: Case) -> None:
    """Both backends' gradients: the input's shape and the result's dtype, autograd's values, a plain 0
    where nothing selected depends on the input (torch's backend: -0.0 may appear under none with a mask,
    pinned in tests/test_grad.py)."""
    _, want = autograd(c)
    rtol, atol = TOLERANCE[np.dtype(c.input.dtype)]
    unused = unused_inputs(c)
    # none with a mask: torch.where's backward gives a masked-out element 0·dl/dx, NaN where dl/dx is not
    # finite (a NaN input); the torch backend does the same, numpy gives the 0 that slicing gives
    artifact = unused & np.isnan(want) if c.resolved == "none" else np.zeros(unused.shape, bool)
    for backend in BACKENDS:
        result = c.compute(backend, outputs=losscli.Outputs(grad=True))
        assert result.grad.shape == c.input.shape and result.grad.dtype == result.value.dtype, backend
        expected = np.where(artifact, 0.0, want) if backend == "numpy" else want
        np.testing.assert_allclose(result.grad, expected, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"backend={backend}: d({c.loss})/d(input) differs from autograd")
        assert np.all(result.grad[unused & ~artifact] == 0), backend
        if backend == "numpy" or c.mask is None or c.resolved != "none":
            assert not np.any(np.signbit(result.grad[unused])), (backend, result.grad)


# ------------------------------------------------------------------------------------ strategies


@st.composite
def targets_for(draw, loss: str, dtype, shape, params: dict[str, Any]) -> np.ndarray:
    if loss == "kl-div":
        if params.get("log_target"):
            return draw(arrays(dtype, shape, -10.0, 0.0))
        t = draw(arrays(dtype, shape, 0.0, 1.0))
        if draw(st.booleans()):  # 0·log 0 = 0: exact zeros now and then
            t = np.where(draw(hnp.arrays(np.bool_, shape)), 0, t).astype(dtype)
        return t
    if loss == "poisson-nll":
        return draw(arrays(dtype, shape, 0.0, 10.0))
    return draw(arrays(dtype, shape, -10.0, 10.0))


def input_bounds(loss: str, params: dict[str, Any], smooth: bool = False) -> tuple[float, float]:
    if loss == "kl-div":
        return -10.0, 0.0
    if loss == "poisson-nll":
        if params["log_input"]:
            return -5.0, 5.0
        return (0.1, 10.0) if smooth else (0.0, 10.0)  # rates; off 0 where differences must be smooth
    return -10.0, 10.0


@st.composite
def options(draw, loss: str) -> dict[str, Any]:
    if loss == "kl-div":
        return {"log_target": draw(st.booleans())}
    if loss == "poisson-nll":
        return {"log_input": draw(st.booleans()), "full": draw(st.booleans()),
                "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5]))}
    return {"full": draw(st.booleans()), "eps": draw(st.sampled_from([1e-6, 1e-3, 0.5]))}


@st.composite
def variances(draw, dtype, input_shape: tuple[int, ...]) -> np.ndarray | float:
    """gaussian-nll's var: each layout torch takes; values from 0 (clamped at eps) up."""
    layouts = ["same", "number"]
    if input_shape:
        layouts += ["short", "one"]
    layout = draw(st.sampled_from(layouts))
    if layout == "number":
        return draw(st.sampled_from([0.0, 1e-9, 0.25, 1.0, 3.5]))
    if layout == "same":
        shape = input_shape
    elif layout == "short":
        shape = input_shape[:-1]
    else:
        axis = draw(st.integers(0, len(input_shape) - 1))
        shape = input_shape[:axis] + (1,) + input_shape[axis + 1:]
    return draw(arrays(dtype, shape, 0.0, 5.0))


@st.composite
def cases(draw, loss: str, smooth: bool = False, dtypes=FLOATS) -> Case:
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(element_shapes())
    params = draw(options(loss))
    x = draw(arrays(dtype, shape, *input_bounds(loss, params, smooth)))
    y = draw(targets_for(loss, dtype, shape, params))
    var = draw(variances(dtype, shape)) if loss == "gaussian-nll" else None
    red = draw(reductions(loss))
    mask = None if red["reduction"] == "batchmean" else draw(masks(shape))
    return Case(loss, x, y, var=var, mask=mask, params=params, **red)


@st.composite
def broadcast_cases(draw, loss: str) -> Case:
    in_shape, t_shape = draw(broadcasting_pairs())
    dtype = draw(st.sampled_from(FLOATS))
    params = draw(options(loss))
    x = draw(arrays(dtype, in_shape, *input_bounds(loss, params)))
    y = draw(targets_for(loss, dtype, t_shape, params))
    var = draw(variances(dtype, in_shape)) if loss == "gaussian-nll" else None
    red = draw(reductions(loss))
    loss_shape = np.broadcast_shapes(in_shape, t_shape)
    mask = None if red["reduction"] == "batchmean" else draw(masks(loss_shape))
    return Case(loss, x, y, var=var, mask=mask, broadcast=True, params=params, **red)


# ------------------------------------------------------------------------------- property tests


@pytest.mark.parametrize("loss", LOSSES)
@given(data=st.data())
def test_values_match_torch(loss, data):
    check(data.draw(cases(loss)))


@pytest.mark.parametrize("loss", LOSSES)
@given(data=st.data())
def test_broadcast_opt_in_matches_torch_silently(loss, data):
    """torch broadcasts these three without a warning; losscli does with --broadcast, and only then."""
    c = data.draw(broadcast_cases(loss))
    check(c)
    for backend in BACKENDS:
        assert not any("target size" in w for w in c.compute(backend).warnings), backend
    if c.input.shape != c.target.shape:
        with pytest.raises(ShapeError, match=r"^target: expected the input's shape .*pass broadcast=True"):
            replace(c, broadcast=False).compute("numpy")


@pytest.mark.parametrize("loss", LOSSES)
@given(data=st.data())
def test_gradients_match_autograd(loss, data):
    c = data.draw(st.one_of(cases(loss), broadcast_cases(loss)))
    check_grad(c)


@pytest.mark.parametrize("loss", LOSSES)
@given(data=st.data())
def test_gradients_equal_central_differences(loss, data):
    c = data.draw(cases(loss, smooth=True, dtypes=(np.float64,)))
    with torch.no_grad():
        f0 = float(oracle(c).sum())
    assume(np.isfinite(f0) and c.input.size > 0)  # mean over nothing is NaN: nothing to difference
    points = data.draw(st.lists(st.integers(0, c.input.size - 1), min_size=1, max_size=3, unique=True))
    differences = central_differences(lambda x: loss_sum(c, x), c.input, points)
    for backend in BACKENDS:
        grad = c.compute(backend, outputs=losscli.Outputs(grad=True)).grad.reshape(-1)[points]
        np.testing.assert_allclose(grad, differences, rtol=1e-5, atol=1e-7 * (1 + abs(f0)),
                                   err_msg=f"backend={backend}: gradient against central differences")


# ----------------------------------------------------------------------------- written-out cases


def test_kl_div_by_hand():
    """t = (0.5, 0.5, 0), input = log(0.25, 0.5, 0.25): l = 0.5·log 2, 0, 0 (0·log 0 = 0)."""
    x, t = np.log(np.array([[0.25, 0.5, 0.25]])), np.array([[0.5, 0.5, 0.0]])
    half_log_2 = 0.5 * math.log(2)
    for backend in BACKENDS:
        none = losscli.compute("kl-div", x, t, reduction="none", backend=backend).value
        np.testing.assert_allclose(none, [[half_log_2, 0.0, 0.0]], rtol=1e-12, atol=1e-15)
        batchmean = losscli.compute("kl-div", x, t, reduction="batchmean", backend=backend).item()
        assert batchmean == pytest.approx(half_log_2, rel=1e-12)  # 1 row
        mean = losscli.compute("kl-div", x, t, backend=backend).item()
        assert mean == pytest.approx(half_log_2 / 3, rel=1e-12)  # 3 elements


def test_kl_div_follows_torch_where_target_is_zero_and_input_infinite():
    """torch computes xlogy(t, t) - t·input: t = 0 against input = -inf is 0·inf = NaN, not 0."""
    x, t = np.array([-np.inf, -1.0]), np.array([0.0, 0.0])
    want = F.kl_div(tensor(x), tensor(t), reduction="none")
    assert np.isnan(want.numpy()[0]) and want.numpy()[1] == 0
    for backend in BACKENDS:
        assert_matches(losscli.compute("kl-div", x, t, reduction="none", backend=backend).value, want,
                       F64, backend)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
@pytest.mark.parametrize("shape", [(), (0, 3), (1, 4), (3,), (2, 3, 2)])
def test_batchmean_divides_by_the_first_dimension(reduction, shape):
    rng = np.random.default_rng(3)
    x, t = np.log(rng.uniform(0.1, 1.0, shape)), rng.uniform(0.0, 1.0, shape)
    check(Case("kl-div", x, t, reduction=reduction))
    if reduction == "batchmean" and shape:
        total = F.kl_div(tensor(x), tensor(t), reduction="sum")
        with np.errstate(invalid="ignore"):
            expected = total.numpy() / np.float64(shape[0])
        np.testing.assert_allclose(losscli.compute("kl-div", x, t, reduction="batchmean").value, expected)


def test_batchmean_with_broadcast_divides_by_the_inputs_first_dimension():
    """torch divides by input.size(0) even when the target is the larger one."""
    x, t = np.log(np.full((1, 3), 1 / 3)), np.full((4, 3), 0.25)
    check(Case("kl-div", x, t, reduction="batchmean", broadcast=True))


@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_stirling_term_only_above_one(log_input):
    x = np.array([0.5, 1.5, 2.0, 3.0])
    t = np.array([0.0, 1.0, 1.5, 4.0])
    plain = losscli.compute("poisson-nll", x, t, reduction="none", log_input=log_input).value
    full = losscli.compute("poisson-nll", x, t, reduction="none", log_input=log_input, full=True).value
    stirling = t * np.log(np.where(t > 0, t, 1)) - t + 0.5 * np.log(2 * np.pi * np.where(t > 0, t, 1))
    np.testing.assert_allclose(full - plain, np.where(t > 1, stirling, 0.0), rtol=1e-12, atol=1e-15)
    check(Case("poisson-nll", x, t, reduction="none", params={"log_input": log_input, "full": True}))


@pytest.mark.parametrize(
    "in_shape, var",
    [
        ((4, 3), (4, 3)),  # heteroscedastic
        ((4, 3), (4,)),  # one dimension short: one variance per row
        ((4, 3), (4, 1)),
        ((4, 3), (1, 3)),
        ((2, 3, 4), (2, 1, 4)),
        ((5,), ()),  # a 0-d array for a 1-D input: one dimension short
        ((5,), (1,)),
        ((), ()),
        ((4, 3), 0.5),  # a number
        ((), 2.0),
    ],
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gaussian_variance_layouts_torch_takes(in_shape, var, reduction):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=in_shape), rng.normal(size=in_shape)
    v = var if isinstance(var, float) else rng.uniform(0.0, 2.0, var)
    mask = rng.random(in_shape) > 0.3
    for m in (None, mask):
        c = Case("gaussian-nll", x, y, var=v, mask=m, reduction=reduction, params={"full": True})
        check(c)
        check_grad(c)


def test_gaussian_dtype_follows_torch():
    """A float64 var array promotes float32 input; a number takes the input's dtype (var·ones_like)."""
    x, y = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32), np.zeros((2, 2), np.float32)
    for var in (np.full((2, 2), 0.3), np.full((2,), 0.3), 0.3):
        want = F.gaussian_nll_loss(tensor(x), tensor(y), var if isinstance(var, float) else tensor(var))
        for backend in BACKENDS:
            got = losscli.compute("gaussian-nll", x, y, var, backend=backend).value
            assert got.dtype == want.numpy().dtype, (var, backend)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
def test_nan_propagates_and_all_masked_out(loss):
    x = np.array([[-0.5, np.nan, -0.25], [-0.1, -0.2, -0.3]])
    y = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.5]])
    var = np.full((2, 3), 0.5) if loss == "gaussian-nll" else None
    for reduction in ("none", "mean", "sum"):
        for mask in (None, np.array([[1, 0, 1], [1, 1, 1]]), np.zeros((2, 3), bool)):
            c = Case(loss, x, y, var=var, mask=mask, reduction=reduction)
            check(c)
            check_grad(c)
    assert any("non-finite" in w for w in losscli.compute(loss, *Case(loss, x, y, var=var).arrays).warnings)


# ---------------------------------------------------------------------------------- warnings


@pytest.mark.parametrize("backend", BACKENDS)
def test_kl_div_mean_warning_is_torchs_and_appears_once(backend):
    assert KL_MEAN_WARNING.startswith("reduction: 'mean' divides the total loss")
    x, t = np.log(np.full((2, 3), 1 / 3)), np.full((2, 3), 1 / 3)
    result = losscli.compute("kl-div", x, t, backend=backend, outputs=losscli.Outputs(cross_check=True))
    assert result.warnings.count(KL_MEAN_WARNING) == 1 and len(result.warnings) == 1, result.warnings
    for reduction in ("none", "sum", "batchmean"):
        assert losscli.compute("kl-div", x, t, reduction=reduction, backend=backend).warnings == []
    for loss in ("poisson-nll",):
        assert losscli.compute(loss, x, t, backend=backend).warnings == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flags", [(True, None), (None, True), (True, True), (False, True), (None, False)])
def test_kl_div_legacy_flags_give_torchs_warnings(backend, flags):
    """With the legacy flags torch warns that they are deprecated, never about 'mean' (even when they
    resolve to it)."""
    x, t = np.log(np.full((2, 3), 1 / 3)), np.full((2, 3), 0.25)
    size_average, reduce = flags
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        want = F.kl_div(tensor(x), tensor(t), size_average=size_average, reduce=reduce)
    torch_says = [str(w.message) for w in caught]
    result = losscli.compute("kl-div", x, t, size_average=size_average, reduce=reduce, backend=backend)
    assert result.warnings == torch_says and len(torch_says) == 1
    assert_matches(result.value, want, F64, backend)


# -------------------------------------------------------------------------------------- errors


def test_batchmean_with_a_mask_is_refused():
    x, t = np.log(np.full((2, 3), 1 / 3)), np.full((2, 3), 1 / 3)
    expected = (r"^reduction: batchmean: expected no mask \(batchmean divides by the batch size, "
                r"input.shape\[0\] = 2, which a mask does not change")
    for backend in BACKENDS:
        with pytest.raises(OptionError, match=expected):
            losscli.compute("kl-div", x, t, mask=np.ones((2, 3), bool), reduction="batchmean", backend=backend)


def test_batchmean_with_legacy_flags_is_refused():
    """torch applies both: the legacy flags' result, then divided by the batch size again."""
    x, t = np.log(np.full((2, 3), 1 / 3)), np.full((2, 3), 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quirk = F.kl_div(tensor(x), tensor(t), reduce=False, reduction="batchmean")
    torch.testing.assert_close(quirk, F.kl_div(tensor(x), tensor(t), reduction="none") / 2)
    with pytest.raises(OptionError, match=r"^reduction: batchmean: expected no size_average/reduce with it \(torch would divide .*\), but got a legacy flag$"):
        losscli.compute("kl-div", x, t, reduction="batchmean", reduce=False)


@pytest.mark.parametrize("loss", ["poisson-nll", "gaussian-nll"])
def test_batchmean_is_kl_div_only(loss):
    arrays = (np.zeros(3), np.zeros(3)) + ((1.0,) if loss == "gaussian-nll" else ())
    with pytest.raises(OptionError, match=rf"^reduction: {loss} takes none, mean, sum, but got batchmean"):
        losscli.compute(loss, *arrays, reduction="batchmean")


@pytest.mark.parametrize("loss", LOSSES)
def test_shape_errors(loss):
    gaussian = loss == "gaussian-nll"
    extra = (np.ones((3, 1)),) if gaussian else ()
    with pytest.raises(ShapeError, match=r"^target: expected the input's shape \(3, 1\), but got \(1, 4\) "
                                         r"\(pass broadcast=True"):
        losscli.compute(loss, np.zeros((3, 1)), np.zeros((1, 4)), *extra)
    with pytest.raises(ShapeError, match=r"^target: expected a shape that broadcasts with the input's \(3,\), "
                                         r"but got \(2,\)"):
        losscli.compute(loss, np.zeros(3), np.zeros(2), *((np.ones(3),) if gaussian else ()), broadcast=True)
    with pytest.raises(ShapeError, match=r"^mask: expected the loss's shape \(3, 1\), but got \(3,\)"):
        losscli.compute(loss, np.zeros((3, 1)), np.zeros((3, 1)), *extra, mask=np.ones(3))
    with pytest.raises(OptionError, match=rf"^weight: {loss} takes no weight"):
        losscli.compute(loss, np.zeros((3, 1)), np.zeros((3, 1)), *extra, weight=np.ones((3, 1)))


@pytest.mark.parametrize(
    "in_shape, var_shape",
    [
        ((4, 3), (3,)),  # broadcasts in numpy, but not one of torch's layouts
        ((4, 3), (1, 1)),  # two dimensions differ
        ((4, 3), (2, 3)),
        ((4, 3), (4, 3, 1)),
        ((4, 3), ()),  # a 0-d array is not a number: torch refuses it for a 2-D input
        ((2, 3, 4), (2, 1, 0)),  # passes torch's size check, then fails to broadcast
        ((), (1,)),
    ],
)
def test_gaussian_variance_of_a_shape_torch_refuses(in_shape, var_shape):
    x, v = np.zeros(in_shape), np.ones(var_shape)
    with pytest.raises((ValueError, RuntimeError)):
        F.gaussian_nll_loss(tensor(x), tensor(x), tensor(v))
    s = lambda shape: re.escape(str(shape)) if len(shape) != 1 else re.escape(f"({shape[0]},)")  # noqa: E731
    expected = rf"^var: expected the input's shape {s(in_shape)}.* but got {s(var_shape)}$"
    for backend in BACKENDS:
        with pytest.raises(ShapeError, match=expected):
            losscli.compute("gaussian-nll", x, x, v, backend=backend)


def test_gaussian_negative_variance():
    x = np.zeros((2, 2))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(tensor(x), tensor(x), tensor(np.array([[1.0, -0.5], [1.0, 1.0]])))
    with pytest.raises(ValueDomainError, match=r"^var: expected variances of 0 or more, but got -0.5 at index "
                                               r"\(0, 1\)$"):
        losscli.compute("gaussian-nll", x, x, np.array([[1.0, -0.5], [1.0, 1.0]]))
    with pytest.raises(ValueDomainError, match=r"^var: expected variances of 0 or more, but got -2.0$"):
        losscli.compute("gaussian-nll", x, x, -2.0)
    with pytest.raises(ValueDomainError, match=r"^var: expected finite values \(nan_policy='raise'\), but got "
                                               r"nan at index 1$"):
        losscli.compute("gaussian-nll", np.zeros(2), np.zeros(2), np.array([1.0, np.nan]), nan_policy="raise")


def test_numpy_path_never_imports_torch():
    code = ("import losscli, numpy as np; x = np.log(np.full((2, 3), 1 / 3)); "
            "r = losscli.compute('kl-div', x, np.exp(x), outputs=losscli.Outputs(grad=True)); "
            "losscli.compute('poisson-nll', x, np.ones((2, 3)), full=True); "
            "losscli.compute('gaussian-nll', x, x, 0.5, reduction='sum'); "
            "import sys; assert 'torch' not in sys.modules; assert len(r.warnings) == 1")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------------------- CLI

runner = CliRunner()
SAMPLES = ROOT / "samples" / "divergence"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def load(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(SAMPLES / name))


def counts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table = np.genfromtxt(SAMPLES / "counts.csv", delimiter=",", names=True)
    return (torch.from_numpy(table["log_rate"]), torch.from_numpy(table["rate"]),
            torch.from_numpy(table["count"].astype(np.int64)).double())


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_kl_div_json_is_torchs(backend):
    x, t = SAMPLES / "log_probs.npy", SAMPLES / "target_probs.npy"
    result = invoke("kl-div", x, t, "--reduction", "batchmean", "--format", "json", "--backend", backend)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["reduction"] == "batchmean" and out["warnings"] == []
    assert out["value"] == pytest.approx(F.kl_div(load("log_probs.npy"), load("target_probs.npy"),
                                                  reduction="batchmean").item(), rel=1e-6)
    result = invoke("kl-div", x, SAMPLES / "target_log_probs.npy", "--log-target", "-f", "json", "-b", backend)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["warnings"] == [KL_MEAN_WARNING] and result.stderr.count("reduction: 'mean' divides") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = F.kl_div(load("log_probs.npy"), load("target_log_probs.npy"), log_target=True).item()
    assert out["value"] == pytest.approx(want, rel=1e-6)


def test_cli_poisson_nll_json_is_torchs():
    log_rate, rate, count = counts()
    spec = f"{SAMPLES / 'counts.csv'}"
    result = invoke("poisson-nll", spec + ":log_rate", spec + ":count", "--full", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["value"] == pytest.approx(
        F.poisson_nll_loss(log_rate, count, full=True).item(), rel=1e-12)
    result = invoke("poisson-nll", spec + ":rate", spec + ":count", "--no-log-input", "--eps", "1e-3",
                    "-r", "sum", "-f", "json", "--cross-check")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["value"] == pytest.approx(
        F.poisson_nll_loss(rate, count, log_input=False, eps=1e-3, reduction="sum").item(), rel=1e-12)


def test_cli_gaussian_nll_json_is_torchs():
    mean, observed = SAMPLES / "mean.npy", SAMPLES / "observed.npy"
    for var, torch_var_ in (("var.npy", load("var.npy")), ("var_per_row.npy", load("var_per_row.npy")),
                            ("0.5", 0.5)):
        path = var if var == "0.5" else SAMPLES / var
        result = invoke("gaussian-nll", mean, observed, path, "--full", "-f", "json", "--cross-check")
        assert result.exit_code == 0, result.stderr
        want = F.gaussian_nll_loss(load("mean.npy"), load("observed.npy"), torch_var_, full=True).item()
        assert json.loads(result.stdout)["value"] == pytest.approx(want, rel=1e-6), var
    result = invoke("gaussian-nll", mean, observed, "--", "-0.5")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: var: expected variances of 0 or more, but got -0.5"


@pytest.mark.parametrize("loss", LOSSES)
def test_cli_help_shows_the_flags(loss):
    result = invoke(loss, "--help")
    assert result.exit_code == 0
    flags = {"kl-div": ["--log-target", "--no-log-target", "batchmean"],
             "poisson-nll": ["--log-input", "--no-log-input", "--full", "--eps"],
             "gaussian-nll": ["--full", "--eps", "or a number"]}[loss]
    for flag in flags + ["--broadcast", "Example:"]:
        assert flag in result.stdout, flag
