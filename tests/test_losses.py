"""Every loss, both backends, against torch.nn.functional (the ground truth).

hypothesis draws shapes (0-d where legal, 1-D, (N, C, d1, d2) class inputs), dtypes, reductions, the
legacy ``size_average``/``reduce`` flags, weights, pos_weight, ignore_index, label smoothing, probability
targets and masks. The oracle (tests/oracle.py) calls ``torch.nn.functional`` directly and never losscli:

* a mask is slicing: element-wise losses see ``input[mask]``, ``target[mask]``, ``weight[mask]`` (weights
  expanded to the loss's shape first); ``none`` is torch's unmasked output with masked-out entries set to 0;
* class-index targets that are masked out behave as ``ignore_index``; probability targets select rows
  (class axis moved last);
* smooth-l1 with a weight (torch has no weight there) is ``Σ w·l / Σ w`` over torch's per-element values.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.nn._reduction import legacy_get_string

import losscli
from losscli.errors import LossCliError, OptionError, ShapeError, ValueDomainError
from losscli.io import Loader
from losscli.losses import CATALOG
from losscli.losses.base import shape_str
from tests.oracle import (
    ALL_LOSSES,
    BINARY,
    CLASSES,
    FLOATS,
    REGRESSION,
    ROOT,
    Case,
    arrays,
    binary_cases,
    broadcast_shapes_to,
    broadcasting_pairs,
    check,
    class_cases,
    masks,
    oracle,
    probability_cases,
    regression_cases,
    tensor,
)
from tests.test_divergence import cases as divergence_cases


# ------------------------------------------------------------------------------- property tests


@pytest.mark.parametrize("loss", REGRESSION)
@given(data=st.data())
def test_regression_losses_match_torch(loss, data):
    check(data.draw(regression_cases(loss)))


@pytest.mark.parametrize("loss", CLASSES)
@given(data=st.data())
def test_class_index_losses_match_torch(loss, data):
    check(data.draw(class_cases(loss)))


@given(case=probability_cases())
def test_cross_entropy_probability_targets_match_torch(case):
    check(case)


@pytest.mark.parametrize("loss", BINARY)
@given(data=st.data())
def test_binary_losses_match_torch(loss, data):
    check(data.draw(binary_cases(loss)))


@pytest.mark.parametrize("loss", ["mse", "l1", "huber", "bce-with-logits", "cross-entropy"])
@given(data=st.data())
def test_float16_matches_torch_loosely(loss, data):
    if loss in REGRESSION:
        case = data.draw(regression_cases(loss, (np.float16,), bound=4.0, max_side=3))
    elif loss in BINARY:
        case = data.draw(binary_cases(loss, (np.float16,), bound=4.0, max_side=3))
    else:
        case = data.draw(class_cases(loss, (np.float16,)))
    check(case)


@pytest.mark.parametrize("loss", REGRESSION)
@given(data=st.data())
def test_broadcast_opt_in_matches_torch_and_carries_its_warning(loss, data):
    """--broadcast: torch's broadcasting and torch's warning text; without it, a ShapeError."""
    in_shape, t_shape = data.draw(broadcasting_pairs())
    dtype = data.draw(st.sampled_from(FLOATS))
    x, y = data.draw(arrays(dtype, in_shape, -10, 10)), data.draw(arrays(dtype, t_shape, -10, 10))
    loss_shape = np.broadcast_shapes(in_shape, t_shape)
    weight = None
    if data.draw(st.booleans()):
        weight = data.draw(arrays(dtype, data.draw(broadcast_shapes_to(loss_shape)), 0.0, 3.0))
    case = Case(loss, x, y, weight=weight, mask=data.draw(masks(loss_shape)), broadcast=True,
                reduction=data.draw(st.sampled_from(["none", "mean", "sum"])))
    check(case)
    fn = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth-l1": F.smooth_l1_loss, "huber": F.huber_loss}[loss]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(tensor(x), tensor(y))
    torch_says = [str(w.message) for w in caught]
    for backend in ("numpy", "torch"):
        said = case.compute(backend).warnings
        if in_shape == t_shape:
            assert not torch_says and not any("target size" in w for w in said)
        else:
            assert len(torch_says) == 1 and said.count(torch_says[0]) == 1, backend
    if in_shape != t_shape:
        with pytest.raises(ShapeError, match=r"^target: expected the input's shape"):
            losscli.compute(loss, x, y)


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("flags", [(None, False), (True, None), (False, True), (False, False)])
def test_legacy_flags_carry_torchs_deprecation_warning(loss, flags):
    size_average, reduce = flags
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reduction = legacy_get_string(size_average, reduce)
    x = np.array([[0.2, 0.7, 0.1], [0.9, 0.5, 0.3]])
    target = np.array([0, 2]) if loss in CLASSES else np.array([[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]])
    for backend in ("numpy", "torch"):
        result = losscli.compute(loss, x, target, size_average=size_average, reduce=reduce, reduction="sum",
                                 backend=backend)
        assert result.reduction.value == reduction
        assert result.warnings.count(str(caught[0].message)) == 1, backend


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_nan_propagates_where_torch_gives_nan(loss):
    x = np.array([[0.5, np.nan, 0.25], [0.1, 0.2, 0.3]], dtype=np.float32)
    if loss == "bce":  # torch refuses NaN probabilities; so does losscli
        with pytest.raises(RuntimeError):
            F.binary_cross_entropy(tensor(x), tensor(np.zeros_like(x)))
        with pytest.raises(ValueDomainError, match=r"^input: expected probabilities in \[0, 1\], but got nan"):
            losscli.compute(loss, x, np.zeros_like(x))
        return
    target = np.array([1, 0]) if loss in CLASSES else np.array([[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]], np.float32)
    for reduction in ("none", "mean", "sum"):
        for mask in (None, np.array([True, False]) if loss in CLASSES else np.array([[1, 0, 1], [1, 1, 1]])):
            check(Case(loss, x, target, mask=mask, reduction=reduction))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("loss, option, values", [
    ("smooth-l1", "beta", (0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 1e-30, 2e19, np.inf)),
    ("huber", "delta", (0.1, 0.5, 1.0, 3.0, 1e-30, 2e19, 1e30, np.inf))])
def test_smooth_l1_and_huber_are_torchs_to_the_bit(dtype, loss, option, values):
    """Both pieces of each loss rounded as torch rounds them (losscli computes them without branches), over
    magnitudes from 1e-13 to 1e13, the knee itself, overflow, ±inf and NaN."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-30, 30, 20000))).astype(dtype)
    x[:8] = [np.inf, -np.inf, np.nan, 0.0, 1e30, -3e38, 1.0, 0.5]
    y = np.zeros_like(x)
    y[8:12] = x[8:12]  # d = 0 exactly
    for value in values:
        got = losscli.compute(loss, x, y, reduction="none", **{option: value}).value
        want = oracle(Case(loss, x, y, reduction="none", params={option: value}))
        np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{option}={value}")


@pytest.mark.parametrize("chunk_rows", [None, 1])
def test_label_smoothing_over_targets_of_zero_weight_is_torchs_nan(chunk_rows):
    """torch averages cross-entropy's nll term and its smoothing term apart: with the targets' class weights
    summing to 0 the first is 0/0, NaN, whatever the second (one fraction would give inf)."""
    x = np.array([[0.0, 0.0], [1.0, -2.0]], np.float32)
    t, w = np.array([0, 0]), np.array([0.0, 1.0], np.float32)
    want = F.cross_entropy(tensor(x), tensor(t), weight=tensor(w), label_smoothing=0.1)
    assert torch.isnan(want)
    for backend in ("numpy", "torch"):
        got = losscli.compute("cross-entropy", x, t, weight=w, label_smoothing=0.1, backend=backend,
                              streaming=losscli.Streaming(chunk_rows=chunk_rows if backend == "numpy" else None))
        assert np.isnan(got.value), backend
    ok = losscli.compute("cross-entropy", x, np.array([0, 1]), weight=w, label_smoothing=0.1).value
    np.testing.assert_allclose(ok, F.cross_entropy(tensor(x), tensor(np.array([0, 1])), weight=tensor(w),
                                                   label_smoothing=0.1).numpy(), rtol=1e-6)


# the case strategies of the losses that claim LossSpec.propagates: a new claim needs its strategy here
PROPAGATING = {"mse": regression_cases, "l1": regression_cases, "smooth-l1": regression_cases,
               "huber": regression_cases, "kl-div": divergence_cases, "poisson-nll": divergence_cases,
               "gaussian-nll": divergence_cases}


def test_every_loss_that_claims_to_propagate_non_finite_values_is_held_to_it():
    assert {name for name, spec in CATALOG.items() if spec.propagates} == set(PROPAGATING)


@pytest.mark.parametrize("loss", sorted(PROPAGATING))
@given(data=st.data())
def test_a_non_finite_input_makes_its_elements_value_non_finite(loss, data):
    """The claim the engine's deferred check rests on: NaN or ±inf anywhere in a float input (the weight and
    gaussian-nll's var too) makes the per-element value of every element it enters non-finite, so a finite sum
    proves the inputs finite. (A negative var, -inf among them, is refused before any value is computed.)"""
    case = data.draw(PROPAGATING[loss](loss))
    names = ["input", "target"] + [n for n in ("weight", "var") if isinstance(getattr(case, n), np.ndarray)]
    name = data.draw(st.sampled_from(names))
    planted = np.array(getattr(case, name), copy=True)
    assume(planted.size > 0)
    spot = data.draw(st.integers(0, planted.size - 1))
    planted.reshape(-1)[spot] = data.draw(st.sampled_from([np.nan, np.inf] if name == "var" else
                                                          [np.nan, np.inf, -np.inf]))
    case = replace(case, **{name: planted}, mask=None, reduction="none", size_average=None, reduce=None)
    entered = np.zeros(planted.shape, bool)
    entered.reshape(-1)[spot] = True
    loss_shape = np.broadcast_shapes(case.input.shape, case.target.shape)
    if name == "var" and planted.ndim == len(loss_shape) - 1:  # one dimension short: torch unsqueezes it last
        entered = entered[..., None]
    result = losscli.compute(loss, *case.files, reduction="none", weight=case.weight, **case.params)
    assert not np.isfinite(result.value[np.broadcast_to(entered, loss_shape)]).any()


def test_the_deferred_non_finite_check_warns_as_the_whole_check_does():
    """A streamed loss that propagates NaN and ±inf checks its inputs only where a chunk's sum is not finite:
    the warning still counts every non-finite value of the file and names the first, masked out or not."""
    x = np.zeros((3000, 4), np.float32)
    y = np.ones((3000, 4), np.float32)
    x[1500, 2], x[2999, 0], y[10, 1] = np.nan, np.inf, -np.inf
    mask = np.ones((3000, 4), bool)
    mask[1500] = False
    for rows in (None, 7, 1000):
        streaming = losscli.Streaming(chunk_rows=rows)
        for reduction in ("none", "mean", "sum"):
            result = losscli.compute("mse", x, y, mask=mask, reduction=reduction, streaming=streaming)
            assert sorted(result.warnings) == [  # in the order the chunks found them
                "input holds 2 non-finite value(s) (first: nan at index (1500, 2)); the result propagates them",
                "target holds 1 non-finite value(s) (first: -inf at index (10, 1)); the result propagates them"]
        # refused at the first chunk that holds one: row 10's -inf, unless the whole batch is one chunk (input first)
        first = "input: .* nan at index \\(1500, 2\\)" if rows is None else "target: .* -inf at index \\(10, 1\\)"
        with pytest.raises(ValueDomainError, match=f"^{first}$"):
            losscli.compute("mse", x, y, nan_policy="raise", streaming=streaming)


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_all_masked_out_mean_is_nan_sum_is_zero(loss, weighted):
    x = np.array([[0.2, 0.7, 0.1], [0.9, 0.5, 0.3]])
    if loss in CLASSES:
        target, mask, weight = np.array([0, 2]), np.zeros(2, bool), np.array([1.0, 2.0, 3.0])
    else:
        target, mask, weight = np.full_like(x, 0.5), np.zeros(x.shape, bool), np.full_like(x, 2.0)
    for reduction in ("mean", "sum", "none"):
        case = Case(loss, x, target, weight=weight if weighted else None, mask=mask, reduction=reduction)
        check(case)
        if reduction == "mean":
            assert np.isnan(case.compute("numpy").value)
            assert any("is NaN" in w for w in case.compute("numpy").warnings)


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_result_dtype_is_torchs(loss, dtype):
    x = np.array([[0.2, 0.7, 0.1], [0.9, 0.5, 0.3]], dtype=dtype)
    target = np.array([0, 2]) if loss in CLASSES else np.full_like(x, 0.5)
    for reduction in ("none", "mean", "sum"):
        want = oracle(Case(loss, x, target, reduction=reduction)).numpy().dtype
        assert want == dtype
        for backend in ("numpy", "torch"):
            assert losscli.compute(loss, x, target, reduction=reduction, backend=backend).value.dtype == want


def test_numpy_path_never_imports_torch():
    code = ("import losscli, numpy as np; losscli.compute('mse', np.ones(3), np.zeros(3)); "
            "import sys; assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------- errors


def test_shape_mismatch_is_an_error_not_silent_broadcasting():
    x, y = np.zeros((3, 1)), np.zeros((1, 4))
    with pytest.raises(ShapeError, match=r"^target: expected the input's shape \(3, 1\), but got \(1, 4\)"):
        losscli.compute("mse", x, y)
    with pytest.raises(ShapeError, match=r"^target: .*\(3,\).*\(2,\)"):
        losscli.compute("l1", np.zeros(3), np.zeros(2), broadcast=True)  # does not broadcast at all


@pytest.mark.parametrize("loss", BINARY + CLASSES)
def test_broadcast_is_refused_where_torch_never_broadcasts(loss):
    target = np.full((2, 3), 0.5) if loss in BINARY else np.array([0, 1])
    with pytest.raises(OptionError, match=r"^broadcast"):
        losscli.compute(loss, np.full((2, 3), 0.5), target, broadcast=True)


@pytest.mark.parametrize("bad, where", [(1.5, "index 1"), (-0.25, "index 1")])
def test_bce_input_outside_unit_interval(bad, where):
    x = np.array([0.5, bad, 0.2])
    with pytest.raises(RuntimeError):  # torch refuses it too
        F.binary_cross_entropy(tensor(x), tensor(np.zeros(3)))
    expected = rf"^input: expected probabilities in \[0, 1\], but got {bad} at {where}"
    with pytest.raises(ValueDomainError, match=expected):
        losscli.compute("bce", x, np.zeros(3))


@pytest.mark.parametrize("loss", CLASSES)
@pytest.mark.parametrize(
    "x_shape, target, shown",
    [
        ((2, 3), [0, 3], r"3 at index 1"),
        ((2, 3), [-1, 0], r"-1 at index 0"),
        ((2, 3, 2), [[0, 1], [5, 0]], r"5 at index \(1, 0\)"),
        ((3,), 7, r"7 at index \(\)"),
    ],
)
def test_class_index_out_of_range(loss, x_shape, target, shown):
    x, t = np.zeros(x_shape), np.array(target)
    with pytest.raises((IndexError, RuntimeError)):  # torch refuses it too
        getattr(F, "nll_loss" if loss == "nll" else "cross_entropy")(tensor(x), tensor(t))
    classes = x_shape[0] if len(x_shape) == 1 else x_shape[1]
    expected = rf"^target: expected class indices in \[0, {classes}\) or ignore_index -100, but got {shown}"
    with pytest.raises(ValueDomainError, match=expected):
        losscli.compute(loss, x, t)


def test_ignore_index_with_probability_targets_is_refused_as_in_torch():
    x, y = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(tensor(x), tensor(y), ignore_index=0)
    for backend in ("numpy", "torch"):
        with pytest.raises(OptionError, match=r"^ignore_index: expected the default -100 .*but got 0"):
            losscli.compute("cross-entropy", x, y, ignore_index=0, backend=backend)


def test_integral_float_targets_read_as_indices_when_asked():
    x, labels = np.array([[0.3, -1.0, 2.0], [1.5, 0.0, 0.25]]), np.array([2, 0])
    want = F.cross_entropy(tensor(x), tensor(labels), reduction="none").numpy()
    for backend in ("numpy", "torch"):
        got = losscli.compute("cross-entropy", x, labels.astype(np.float64), target_kind="index",
                              reduction="none", backend=backend).value
        np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueDomainError, match=r"^target: expected integer class indices, but got float64"):
        losscli.compute("cross-entropy", x, np.array([0.5, 1.0]), target_kind="index")
    with pytest.raises(ShapeError, match=r"^target: expected class probabilities of the input's shape \(2, 3\)"):
        losscli.compute("cross-entropy", x, labels, target_kind="prob")


@pytest.mark.parametrize("x_shape, index_shape", [((2, 3), (2,)), ((3,), ()), ((2, 3, 2), (2, 2))])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_integer_targets_of_the_inputs_shape_are_refused_as_torch_refuses_them(x_shape, index_shape, dtype):
    """torch decides by the shapes that such a target holds probabilities, then refuses it by its dtype."""
    x, y = np.zeros(x_shape), np.zeros(x_shape, dtype)
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class probabilities"):
        F.cross_entropy(tensor(x), tensor(y))
    message = (rf"^target: expected floating point class probabilities for a target of the input's shape "
               rf"{re.escape(shape_str(x_shape))}, but got {np.dtype(dtype)} values \(torch refuses them too\); save "
               rf"class indices with shape {re.escape(shape_str(index_shape))}, or probabilities as floats")
    for backend in ("numpy", "torch"):
        for kind in ("auto", "prob"):
            with pytest.raises(ValueDomainError, match=message):
                losscli.compute("cross-entropy", x, y, target_kind=kind, backend=backend)


def test_float_class_targets_for_nll():
    with pytest.raises(ValueDomainError, match=r"^target: expected integer class indices, but got float64"):
        losscli.compute("nll", np.zeros((2, 3)), np.array([0.0, 1.0]))


@pytest.mark.parametrize("loss", CLASSES)
@pytest.mark.parametrize("shape", [(2,), (4,), (3, 1), (1, 3)])
def test_class_weight_of_wrong_shape(loss, shape):
    with pytest.raises(ShapeError, match=r"^weight: expected one weight per class, shape \(3,\), but got"):
        losscli.compute(loss, np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(shape))


@pytest.mark.parametrize("loss", ["mse", "bce", "nll"])
def test_mask_of_wrong_shape_or_values(loss):
    x = np.full((2, 3), 0.5)
    target = np.array([0, 1]) if loss == "nll" else x
    loss_shape = (2,) if loss == "nll" else (2, 3)
    with pytest.raises(ShapeError, match=r"^mask: expected the loss's shape"):
        losscli.compute(loss, x, target, mask=np.ones((5,)))
    bad = np.ones(loss_shape)
    bad.reshape(-1)[1] = 2
    with pytest.raises(ValueDomainError, match=r"^mask: expected 0/1 or true/false, but got 2"):
        losscli.compute(loss, x, target, mask=bad)


@pytest.mark.parametrize("shape", [(4, 1), (5,), (1, 5), (4, 5)])
def test_bce_weights_that_broadcast(shape):
    rng = np.random.default_rng(0)
    x, y, w = rng.uniform(0.01, 0.99, (4, 5)), rng.uniform(0, 1, (4, 5)), rng.uniform(0.5, 2, shape)
    for reduction in ("none", "mean", "sum"):
        check(Case("bce", x, y, weight=w, reduction=reduction))


def test_bce_weight_that_does_not_broadcast():
    x = np.full((4, 5), 0.5)
    with pytest.raises(RuntimeError):  # torch refuses it too
        F.binary_cross_entropy(tensor(x), tensor(x), weight=tensor(np.ones(4)))
    expected = r"^weight: expected a shape that broadcasts to the loss's shape \(4, 5\), but got \(4,\)"
    with pytest.raises(ShapeError, match=expected):
        losscli.compute("bce", x, x, weight=np.ones(4))


@pytest.mark.parametrize("role", ["input", "target", "weight"])
def test_nan_policy_raise(role):
    arrays = {"input": np.array([[1.0, 2.0], [3.0, 4.0]]), "target": np.zeros((2, 2)),
              "weight": np.ones((2, 2))}
    arrays[role][1, 0] = np.nan
    expected = rf"^{role}: expected finite values \(nan_policy='raise'\), but got nan at index \(1, 0\)"
    with pytest.raises(ValueDomainError, match=expected):
        losscli.compute("mse", arrays["input"], arrays["target"], weight=arrays["weight"], nan_policy="raise")
    result = losscli.compute("mse", arrays["input"], arrays["target"], weight=arrays["weight"])
    assert np.isnan(result.value) and any(w.startswith(f"{role} holds 1 non-finite") for w in result.warnings)


def test_errors_are_losscli_errors():
    for cls in (ShapeError, ValueDomainError, OptionError):
        assert issubclass(cls, LossCliError)
    with pytest.raises(OptionError, match=r"^loss: expected one of"):
        losscli.compute("nope", np.zeros(1), np.zeros(1))
    with pytest.raises(OptionError, match=r"^beta: mse takes no options"):
        losscli.compute("mse", np.zeros(1), np.zeros(1), beta=1.0)


@pytest.mark.parametrize(
    "loss, options, named",
    [
        ("mse", dict(reduction="batchmean"), "reduction"),
        ("mse", dict(reduction="average", size_average=False), "reduction"),
        ("mse", dict(backend="jax"), "backend"),
        ("mse", dict(nan_policy="omit"), "nan_policy"),
        ("cross-entropy", dict(target_kind="probs"), "target_kind"),
        ("cross-entropy", dict(label_smoothing=1.5), "label_smoothing"),
        ("smooth-l1", dict(beta="wide"), "beta"),
        ("smooth-l1", dict(beta=-1.0), "beta"),
        ("huber", dict(delta=0.0), "delta"),
        ("nll", dict(label_smoothing=0.1), "label_smoothing"),
        ("mse", dict(pos_weight=np.ones(2)), "pos_weight"),
    ],
)
def test_bad_options_are_option_errors_naming_the_option(loss, options, named):
    """compute() promises LossCliError on bad input: a bad option value is one, not a bare ValueError."""
    target = np.array([0, 1]) if loss in CLASSES else np.zeros((2, 2))
    with pytest.raises(OptionError, match=rf"^{named}\b"):
        losscli.compute(loss, np.zeros((2, 2)), target, **options)


@pytest.mark.parametrize("spec", CATALOG.values(), ids=lambda spec: spec.name)
def test_every_family_runs_the_losss_own_check(spec):
    """Family.prepare is one template: a LossSpec.check runs for every family (nll, cross-entropy, ctc and
    linear-cross-entropy used to skip it), after the files are checked and converted."""
    paths = []
    for word in shlex.split(spec.example)[2:]:  # the example's positional files
        if word.startswith("--"):
            break
        paths.append(word)
    loader = Loader()
    arrays = [loader.load(str(ROOT / path), role=f.name) for path, f in zip(paths, spec.files)]
    seen = []

    def check(args, converted, params):
        seen.append(sorted(converted))
        raise OptionError("refused by the loss's check")

    with pytest.raises(OptionError, match=r"^refused by the loss's check$"):
        losscli.compute(replace(spec, check=check), *arrays)
    assert seen and all(names == sorted(f.name for f in spec.files) for names in seen)  # one call per chunk


def test_extras_are_the_named_files_in_help_order():
    names = {name: [(f.name, f.short) for f in spec.extras] for name, spec in CATALOG.items()}
    assert names["mse"] == [("weight", "-w"), ("mask", "-m")]
    assert names["bce-with-logits"] == [("weight", "-w"), ("pos_weight", None), ("mask", "-m")]
    assert names["linear-cross-entropy"] == [("linear_bias", None), ("weight", "-w"), ("mask", "-m")]
    assert names["kl-div"] == [("mask", "-m")]
    assert CATALOG["nll"].extras[0].help == CATALOG["nll"].weight_help
