"""Every float option takes exactly the values torch takes, NaN never: declared once on the option
(``Option.domain``), checked in ``compute()`` for the Python API, the command line and gate files alike; and
the thresholds of the command line (``--fail-above``/``--fail-below``/``--tolerance``) refuse NaN (and a
negative tolerance) before any work."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.losses import CATALOG

NAN, INF = math.nan, math.inf
PROBES = (-INF, -1.0, -1e-9, 0.0, 0.5, 1.0, 1.5, INF)

rng = np.random.default_rng(0)
X, T = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
POSITIVE = rng.uniform(0.1, 2.0, size=(4, 3))
CLASSES = np.array([0, 1, 2, 1])
SIGNS = np.array([1.0, -1.0, 1.0, -1.0])
A, P, N = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(4, 5))


def tt(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in arrays]


# (loss, option, the arrays, torch's call with the option's value): every float option of the catalog
CASES = [
    ("smooth-l1", "beta", (X, T), lambda v: F.smooth_l1_loss(*tt(X, T), beta=v)),
    ("huber", "delta", (X, T), lambda v: F.huber_loss(*tt(X, T), delta=v)),
    ("cross-entropy", "label_smoothing", (X, CLASSES), lambda v: F.cross_entropy(*tt(X, CLASSES), label_smoothing=v)),
    ("poisson-nll", "eps", (POSITIVE, POSITIVE),
     lambda v: F.poisson_nll_loss(*tt(POSITIVE, POSITIVE), log_input=False, eps=v)),
    ("gaussian-nll", "eps", (X, T, POSITIVE), lambda v: F.gaussian_nll_loss(*tt(X, T, POSITIVE), eps=v)),
    ("cosine-embedding", "margin", (A, P, SIGNS), lambda v: F.cosine_embedding_loss(*tt(A, P, SIGNS), margin=v)),
    ("triplet-margin", "margin", (A, P, N), lambda v: F.triplet_margin_loss(*tt(A, P, N), margin=v)),
    ("triplet-margin", "p", (A, P, N), lambda v: F.triplet_margin_loss(*tt(A, P, N), p=v)),
    ("triplet-margin", "eps", (A, P, N), lambda v: F.triplet_margin_loss(*tt(A, P, N), eps=v)),
    ("triplet-margin-with-distance", "margin", (A, P, N),
     lambda v: F.triplet_margin_with_distance_loss(*tt(A, P, N), margin=v)),
    ("margin-ranking", "margin", (X[:, 0], T[:, 0], SIGNS),
     lambda v: F.margin_ranking_loss(*tt(X[:, 0], T[:, 0], SIGNS), margin=v)),
    ("hinge-embedding", "margin", (X, np.ones((4, 3))), lambda v: F.hinge_embedding_loss(*tt(X, np.ones((4, 3))),
                                                                                          margin=v)),
    ("multi-margin", "margin", (X, CLASSES), lambda v: F.multi_margin_loss(*tt(X, CLASSES), margin=v)),
]
EXTRA = {("poisson-nll", "eps"): {"log_input": False}}  # where the option means something
# values torch takes that losscli refuses still, until its formulas follow torch there: triplet's p <= 0 or
# ±inf are norms losscli's numpy distance does not compute
REFUSED_THOUGH_TORCH_TAKES = {("triplet-margin", "p"): lambda v: v <= 0 or v == INF}


def float_options() -> list[tuple[str, str]]:
    return [(spec.name, option.name) for spec in CATALOG.values() for option in spec.options
            if option.type is float]


def test_every_float_option_has_a_case_against_torch():
    covered = {(loss, option) for loss, option, _, _ in CASES}
    # linear-cross-entropy shares cross-entropy's label_smoothing option (one declaration)
    assert set(float_options()) - covered == {("linear-cross-entropy", "label_smoothing")}
    shared = [o for o in CATALOG["linear-cross-entropy"].options if o.name == "label_smoothing"]
    assert shared == [o for o in CATALOG["cross-entropy"].options if o.name == "label_smoothing"]


def torch_takes(call, value: float) -> tuple[bool, float | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return True, float(call(value))
    except (RuntimeError, ValueError):
        return False, None


@pytest.mark.parametrize("loss, option, arrays, call", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_the_domain_is_torchs(loss, option, arrays, call):
    """For each probe value: losscli refuses it exactly when torch does (and computes torch's value when both
    take it), but for the deviations listed above."""
    for value in PROBES:
        takes, expected = torch_takes(call, value)
        deviation = REFUSED_THOUGH_TORCH_TAKES.get((loss, option), lambda v: False)(value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = losscli.compute(loss, *arrays, **EXTRA.get((loss, option), {}), **{option: value}).item()
        except losscli.OptionError as error:
            assert error.argument == option
            assert str(error).startswith(f"{option}: expected ") and f"but got {value}" in str(error)
            assert not takes or deviation, f"{loss} {option}={value}: torch takes it, losscli refuses: {error}"
            continue
        assert takes and not deviation, f"{loss} {option}={value}: torch refuses it, losscli takes it"
        np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("loss, option", float_options())
def test_nan_is_refused_by_every_float_option(loss, option):
    spec = CATALOG[loss]
    with pytest.raises(losscli.OptionError) as caught:
        losscli.compute(loss, *[np.zeros(3)] * len(spec.files), **{option: NAN})
    assert str(caught.value).startswith(f"{option}: expected ") and str(caught.value).endswith("but got nan")
    assert caught.value.with_flags().startswith(f"--{option.replace('_', '-')}: expected ")


def test_messages_say_the_domain():
    with pytest.raises(losscli.OptionError, match=r"^beta: expected a value of 0 or more, but got -1.0$"):
        losscli.compute("smooth-l1", X, T, beta=-1)
    with pytest.raises(losscli.OptionError, match=r"^delta: expected a value of more than 0, but got 0.0$"):
        losscli.compute("huber", X, T, delta=0)
    with pytest.raises(losscli.OptionError, match=r"^label_smoothing: expected a value of 1 or less, but got 1.5$"):
        losscli.compute("cross-entropy", X, CLASSES, label_smoothing=1.5)
    with pytest.raises(losscli.OptionError, match=r"^margin: expected a number, but got nan$"):
        losscli.compute("margin-ranking", *(X[:, 0], T[:, 0], SIGNS), margin=NAN)


@pytest.mark.parametrize("tolerance", [NAN, -1.0, -1e-300])
def test_compute_refuses_a_tolerance_that_is_nan_or_negative(tolerance):
    with pytest.raises(losscli.OptionError, match=rf"^tolerance: expected a value of 0 or more, but got {tolerance}$"):
        losscli.compute("mse", X, T, outputs=losscli.Outputs(cross_check=True, tolerance=tolerance))


def test_compute_takes_a_tolerance_of_0_and_inf():
    assert losscli.compute("mse", X, T, outputs=losscli.Outputs(tolerance=0.0)).item() == np.mean((X - T) ** 2)
    losscli.compute("mse", X, T, outputs=losscli.Outputs(tolerance=INF))


# -- the command line -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name, array in {"x.npy": X, "t.npy": T, "var.npy": POSITIVE, "a.npy": A, "p.npy": P, "n.npy": N,
                        "x1.npy": X[:, 0], "x2.npy": T[:, 0], "y.npy": SIGNS}.items():
        np.save(name, array)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["mse", "x.npy", "t.npy", "--fail-above", "nan"], "--fail-above: expected a number, but got nan"),
    (["mse", "x.npy", "t.npy", "--fail-below", "nan"], "--fail-below: expected a number, but got nan"),
    (["mse", "x.npy", "t.npy", "--tolerance", "-1"], "--tolerance: expected a value of 0 or more, but got -1.0"),
    (["mse", "x.npy", "t.npy", "--tolerance", "nan"], "--tolerance: expected a value of 0 or more, but got nan"),
    (["smooth-l1", "x.npy", "t.npy", "--beta", "nan"], "--beta: expected a value of 0 or more, but got nan"),
    (["huber", "x.npy", "t.npy", "--delta", "nan"], "--delta: expected a value of more than 0, but got nan"),
    (["margin-ranking", "x1.npy", "x2.npy", "y.npy", "--margin", "nan"], "--margin: expected a number, but got nan"),
    (["triplet-margin", "a.npy", "p.npy", "n.npy", "--eps", "nan"], "--eps: expected a number, but got nan"),
    (["gaussian-nll", "x.npy", "t.npy", "var.npy", "--eps", "nan"], "--eps: expected a number, but got nan"),
])
def test_the_command_line_refuses_with_one_line_and_exit_2(files, args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == ""


def test_the_command_line_takes_infinite_bounds(files):
    result = runner.invoke(app, ["mse", "x.npy", "t.npy", "--fail-above", "inf", "--fail-below", "-inf",
                                 "-f", "plain"])
    assert result.exit_code == 0, result.output
    assert float(result.stdout) == pytest.approx(np.mean((X - T) ** 2))


# -- gate files -------------------------------------------------------------------------------------------


def test_a_gate_file_option_outside_its_domain_is_that_checks_error(files):
    """Gate files call compute(): its one check of the options reaches them (NaN the gate file's reader refuses
    already, as a non-finite number)."""
    Path("gates.toml").write_text('[[check]]\nname = "negative beta"\nloss = "smooth-l1"\ninput = "x.npy"\n'
                                  'target = "t.npy"\nbeta = -1.0\nmax = 10\n\n'
                                  '[[check]]\nname = "zero delta"\nloss = "huber"\ninput = "x.npy"\n'
                                  'target = "t.npy"\ndelta = 0.0\nmax = 10\n')
    run = losscli.check("gates.toml")
    assert run.exit_code == 2
    assert [o.reasons for o in run.outcomes] == [["beta: expected a value of 0 or more, but got -1.0"],
                                                 ["delta: expected a value of more than 0, but got 0.0"]]
    result = runner.invoke(app, ["check", "gates.toml"])
    assert result.exit_code == 2
    assert "beta: expected a value of 0 or more, but got -1.0" in result.output


def test_a_gate_file_refuses_a_nan_option(files):
    Path("gates.toml").write_text('[[check]]\nname = "nan beta"\nloss = "smooth-l1"\ninput = "x.npy"\n'
                                  'target = "t.npy"\nbeta = nan\nmax = 10\n')
    with pytest.raises(losscli.LossCliError, match=r"beta: expected a finite number, but got a float nan$"):
        losscli.check("gates.toml")
