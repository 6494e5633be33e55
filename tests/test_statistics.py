"""Statistics: ``--ci`` (a Poisson bootstrap interval of the loss's own reduction) and ``losscli compare`` (a
paired bootstrap of new - base), tested statistically and against a bootstrap written out here.

1. Coverage: over many datasets simulated from a known distribution, ``ci=0.9`` covers the true value in about
   90% of them.
2. Calibration of compare: equally good models are flagged (better or worse) in about ``alpha`` of the pairs;
   a clearly better model is ``better``; identical predictions differ by exactly nothing; ``margin``.
3. Invariance: one seed, one interval (equal floats) whatever the chunks, shards or engine.
4. An independent reference: the bootstrap recomputed here from the documented weights
   (``losscli.engine.bootstrap.weights``) and torch's per-element losses; the weights are Poisson(1).
5. The command line: ``--ci`` in the table and in JSON, ``compare``'s outputs, exit codes and errors.

Tolerance bands of the simulations are a few binomial standard errors of the simulated rate, as written
beside each. Every random draw has a fixed seed, so the suite gives the same verdicts every run.
"""

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

import losscli
from losscli.compare import Verdict, compare
from losscli.edge.cli import app
from losscli.engine.bootstrap import weights
from tests.oracle import one_line_error

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "losscli" / "result.schema.json").read_text())


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})



def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x))


# -- 1. coverage ------------------------------------------------------------------------------------------

LEVEL = 0.9
DATASETS = 1000
SAMPLES = 300
RESAMPLES = 400
# The number of datasets whose interval covers the truth is Binomial(DATASETS, 0.9) for an exact interval: the
# rate's standard error is sqrt(0.9 * 0.1 / 1000) = 0.0095, and the band is 3.5 of them (0.033) either side
# (a false alarm about once in 2000 runs of an exact interval). A percentile bootstrap at n = 300 covers a
# little less than its level: over 2000 datasets each, 0.893 (mse), 0.894 (weighted mse), 0.900
# (cross-entropy), inside the band. Out of it: weights of half the variance (about 0.75), or a weighted mean
# whose denominator is not resampled with its numerator (0.976).
BAND = 3.5 * math.sqrt(LEVEL * (1 - LEVEL) / DATASETS)


def coverage(loss: str, make, truth: float, **options) -> float:
    """The share of ``DATASETS`` simulated datasets (``make(rng) -> (arrays, named)``) whose interval at LEVEL
    covers ``truth``."""
    covered = 0
    for i in range(DATASETS):
        arrays, named = make(np.random.default_rng([7, i]))
        ci = losscli.compute(loss, *arrays, **named, **options,
                             outputs=losscli.Outputs(ci=LEVEL, resamples=RESAMPLES, seed=i)).ci
        assert ci.level == LEVEL and ci.resamples == RESAMPLES and ci.seed == i
        covered += ci.low <= truth <= ci.high
    return covered / DATASETS


def test_the_mse_interval_covers_the_true_mse_at_its_level():
    """Errors N(0, 1): E[(input - target)^2] = Var = 1."""
    rate = coverage("mse", lambda rng: ((rng.normal(size=SAMPLES), np.zeros(SAMPLES)), {}), 1.0)
    assert abs(rate - LEVEL) <= BAND, rate


def test_the_weighted_mse_interval_covers_the_ratio_of_expectations():
    """mean with a weight is the ratio estimator Σ w·e² / Σ w, whose limit is E[w·e²] / E[w]. With
    w ~ U(0.5, 2) and e | w ~ N(2, w): E[e² | w] = 4 + w, so E[w·e²] = 4·E[w] + E[w²] and the truth is
    4 + E[w²] / E[w] = 4 + 1.75 / 1.25 = 5.4 (E[w] = 1.25, E[w²] = (2³ - 0.5³) / (3 · 1.5) = 1.75; the
    unweighted mean's would be 4 + E[w] = 5.25)."""
    def make(rng):
        w = rng.uniform(0.5, 2.0, size=SAMPLES)
        return (2 + rng.normal(size=SAMPLES) * np.sqrt(w), np.zeros(SAMPLES)), {"weight": w}

    rate = coverage("mse", make, 4 + 1.75 / 1.25)
    assert abs(rate - LEVEL) <= BAND, rate


def test_the_class_weighted_cross_entropy_interval_covers_the_weighted_mean():
    """Every sample has the same logits z; its label is c with probability p_c. torch's mean with class
    weights is Σ w_y·l_y / Σ w_y, whose limit is Σ_c p_c·w_c·l_c / Σ_c p_c·w_c, l_c = -log softmax(z)_c."""
    z = np.array([2.0, 0.0, -1.0])
    p, w = np.array([0.5, 0.3, 0.2]), np.array([1.0, 2.0, 4.0])
    per_class = F.cross_entropy(t(np.tile(z, (3, 1))), torch.arange(3), reduction="none").numpy()
    truth = float((p * w * per_class).sum() / (p * w).sum())
    logits = np.tile(z, (SAMPLES, 1))
    rate = coverage("cross-entropy", lambda rng: ((logits, rng.choice(3, size=SAMPLES, p=p)), {"weight": w}), truth)
    assert abs(rate - LEVEL) <= BAND, rate


# -- 2. calibration of compare ----------------------------------------------------------------------------

ALPHA = 0.05
PAIRS = 600
PAIR_SAMPLES = 1000
# Two models with equally good predictions (independent N(0, 1) errors): a verdict other than inconclusive is
# a false alarm, Binomial(PAIRS, alpha) for an exact test: standard error sqrt(0.05 · 0.95 / 600) = 0.0089,
# band 3.5 of them (0.031) either side; the same for p-values below alpha. At n = 1000 the percentile
# bootstrap's rates are close to alpha (0.051 and 0.048 over 2000 pairs; at n = 300, 0.0625 and 0.058).
ALARM_BAND = 3.5 * math.sqrt(ALPHA * (1 - ALPHA) / PAIRS)


def test_equally_good_models_get_a_verdict_in_about_alpha_of_the_pairs():
    alarms = small = 0
    for i in range(PAIRS):
        rng = np.random.default_rng([11, i])
        y = rng.normal(size=PAIR_SAMPLES)
        found = compare("mse", y + rng.normal(size=PAIR_SAMPLES), y + rng.normal(size=PAIR_SAMPLES), y,
                        alpha=ALPHA, resamples=RESAMPLES, seed=i)
        alarms += found.verdict is not Verdict.inconclusive
        small += found.p_value < ALPHA
    assert abs(alarms / PAIRS - ALPHA) <= ALARM_BAND, alarms / PAIRS
    assert abs(small / PAIRS - ALPHA) <= ALARM_BAND, small / PAIRS


def mse(a: np.ndarray, b: np.ndarray, **kw) -> float:
    return F.mse_loss(t(a), t(b), **kw).item()


def test_a_clearly_better_model_is_better_with_a_small_p_value():
    """Errors N(0, 1) against N(0, 0.25): new - base is about -0.75, with a standard error of about 0.03 at
    n = 2000, so no resample of the difference reaches 0 and p is its smallest value, 2 / (resamples + 1)."""
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    base, new = y + rng.normal(size=2000), y + 0.5 * rng.normal(size=2000)
    found = compare("mse", base, new, y, resamples=1000, seed=0)
    assert found.verdict is Verdict.better
    assert found.p_value == pytest.approx(2 / 1001) and found.p_value < 0.01
    assert found.difference == pytest.approx(mse(new, y) - mse(base, y), rel=1e-12)
    assert found.relative == pytest.approx((mse(new, y) - mse(base, y)) / mse(base, y), rel=1e-12)
    assert found.low < found.difference < found.high < 0
    assert found.base.item() == pytest.approx(mse(base, y), rel=1e-12)


def test_identical_predictions_differ_by_exactly_nothing():
    rng = np.random.default_rng(6)
    y, p = rng.normal(size=500), rng.normal(size=500)
    found = compare("mse", p, p.copy(), y, resamples=200, seed=3)
    assert (found.difference, found.low, found.high, found.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert found.verdict is Verdict.inconclusive


def test_a_margin_turns_a_small_significant_increase_into_not_worse():
    """new's errors are base's times 1.05: its mse is 1.1025 times base's, an increase of about 0.1 that the
    paired bootstrap pins down to about ±0.007 at n = 2000. worse at margin 0; the margin moves the bar from
    0 to X: worse while the interval's low end is above X, not worse from there on."""
    rng = np.random.default_rng(8)
    y, e = rng.normal(size=2000), rng.normal(size=2000)
    found = compare("mse", y + e, y + 1.05 * e, y, resamples=500, seed=1)
    assert found.verdict is Verdict.worse and 0.05 < found.low < found.high < 0.15
    assert found.difference == pytest.approx(0.1025 * mse(y + e, y), rel=1e-9)
    for margin, verdict in ((found.low * (1 - 1e-9), Verdict.worse), (found.low * (1 + 1e-9), Verdict.inconclusive),
                            (0.2, Verdict.inconclusive)):
        again = compare("mse", y + e, y + 1.05 * e, y, resamples=500, seed=1, margin=margin)
        assert (again.low, again.high) == (found.low, found.high)
        assert again.verdict is verdict, margin


def test_a_losss_own_margin_is_loss_margin_beside_the_comparisons():
    """margin-ranking has an option called margin: compare takes it as loss_margin."""
    rng = np.random.default_rng(9)
    x1, x1b, x2 = rng.normal(size=(3, 200))
    y = np.where(rng.random(200) < 0.5, -1.0, 1.0)
    found = compare("margin-ranking", x1, x1b, x2, y, loss_margin=0.5, margin=0.01, resamples=100)
    assert found.base.item() == pytest.approx(F.margin_ranking_loss(t(x1), t(x2), t(y), margin=0.5).item())
    assert found.new.item() == pytest.approx(F.margin_ranking_loss(t(x1b), t(x2), t(y), margin=0.5).item())
    assert found.margin == 0.01


# -- 3. invariance ----------------------------------------------------------------------------------------

ROWS = 2100  # three blocks of the bootstrap's sums (1024 samples each), the last one short
CUTS = [0, 1, 700, 1024, 1030, 2049, ROWS]  # uneven shards: one row, inside a block, on a block's edge
INVARIANT = losscli.Outputs(ci=0.95, resamples=300, seed=5)


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> dict[str, str]:
    """(ROWS, 3) predictions whole and in uneven shards, targets, a mask; class logits, labels, weights."""
    d = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, 3))
    arrays = {"x": x, "y": rng.normal(size=(ROWS, 3)), "mask": rng.random((ROWS, 3)) < 0.7,
              "logits": rng.normal(size=(ROWS, 4)), "labels": rng.integers(0, 4, ROWS),
              "class_weight": np.array([1.0, 2.0, 0.5, 3.0])}
    for name, array in arrays.items():
        np.save(d / f"{name}.npy", array)
    for i, (low, high) in enumerate(zip(CUTS, CUTS[1:])):
        np.save(d / f"x-{i}.npy", x[low:high])
    return {"dir": str(d), **{name: str(d / f"{name}.npy") for name in arrays}, "shards": str(d / "x-*.npy")}


def calls(files: dict[str, str]) -> dict[str, tuple]:
    """A masked mean, a sum and a class-weighted cross-entropy mean: (loss, files, keywords)."""
    return {"masked mean": ("mse", (files["x"], files["y"]), {"mask": files["mask"]}),
            "sum": ("mse", (files["x"], files["y"]), {"reduction": "sum"}),
            "class-weighted": ("cross-entropy", (files["logits"], files["labels"]), {"weight": files["class_weight"]})}


@pytest.mark.parametrize("case", ["masked mean", "sum", "class-weighted"])
def test_one_seed_one_interval_whatever_the_chunks(stream, case):
    loss, files, kw = calls(stream)[case]
    found = [losscli.compute(loss, *files, **kw, outputs=INVARIANT, streaming=losscli.Streaming(chunk_rows=rows)).ci
             for rows in (None, 1, 7, 1000)]
    assert found[0].low < found[0].high
    assert found[1:] == found[:1] * 3


def test_one_seed_one_interval_whatever_the_shards(stream):
    whole = losscli.compute("mse", stream["x"], stream["y"], mask=stream["mask"], outputs=INVARIANT).ci
    for rows in (None, 7):
        sharded = losscli.compute("mse", stream["shards"], stream["y"], mask=stream["mask"], outputs=INVARIANT,
                                  streaming=losscli.Streaming(chunk_rows=rows))
        assert sharded.ci == whole


def test_one_seed_one_comparison_whatever_the_chunks(stream):
    """compare's resamples are paired by sample, however each run is cut."""
    found = [compare("mse", stream["x"], stream["shards"], stream["y"], mask=stream["mask"], resamples=300, seed=2,
                     streaming=losscli.Streaming(chunk_rows=rows)) for rows in (None, 7)]
    assert (found[0].low, found[0].high, found[0].p_value) == (found[1].low, found[1].high, found[1].p_value)
    assert (found[0].difference, found[0].low, found[0].high) == (0.0, 0.0, 0.0)  # the same predictions


def test_different_seeds_give_different_intervals(stream):
    found = [losscli.compute("mse", stream["x"], stream["y"], outputs=losscli.Outputs(ci=0.95, resamples=300,
                                                                                     seed=seed)).ci
             for seed in (0, 1, 2**63 - 1)]
    assert len({(ci.low, ci.high) for ci in found}) == 3
    assert [ci.seed for ci in found] == [0, 1, 2**63 - 1]


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, started once for the module."""
    pytest.importorskip("dask.distributed")
    from losscli.engine.cluster import Cluster

    with Cluster(workers=2) as started:
        started.open()
        yield started


@pytest.mark.parametrize("case", ["masked mean", "sum", "class-weighted"])
def test_one_seed_one_interval_on_the_dask_engine(stream, cluster, monkeypatch, case):
    """Partitions of a few chunks, so that blocks of the sums are split between workers."""
    import losscli.engine.cluster

    monkeypatch.setattr(losscli.engine.cluster, "CHUNKS_PER_PARTITION", 10)
    loss, files, kw = calls(stream)[case]
    if case == "masked mean":
        files = (stream["shards"], files[1])
    local = losscli.compute(loss, *files, **kw, outputs=INVARIANT).ci
    for rows in (7, 1000):
        found = losscli.compute(loss, *files, **kw, outputs=INVARIANT, engine=cluster,
                                streaming=losscli.Streaming(chunk_rows=rows))
        assert found.ci == local, rows


# -- 4. an independent reference --------------------------------------------------------------------------


def reference(num: np.ndarray, den: np.ndarray | None, seed: int, resamples: int, level: float) -> np.ndarray:
    """The Poisson bootstrap written out: resample r weighs sample i by weights(seed, 0, n, R)[i, r];
    its statistic is Σ w·num / Σ w·den (``den`` None: the sum Σ w·num); the percentile interval."""
    w = weights(seed, 0, len(num), resamples).astype(np.float64)
    statistics = w.T @ num if den is None else (w.T @ num) / (w.T @ den)
    return np.quantile(statistics, [(1 - level) / 2, (1 + level) / 2])


N_REF = 1100  # two blocks


def reference_cases(rng: np.random.Generator) -> dict[str, tuple]:
    """(loss, arrays, keywords, per-sample numerators, denominators or None) from torch's per-element
    losses, for mean, sum, a masked mean, a class-weighted cross-entropy mean and kl-div's batchmean."""
    x, y, mask = rng.normal(size=(N_REF, 4)), rng.normal(size=(N_REF, 4)), rng.random((N_REF, 4)) < 0.5
    mask[:3] = False  # samples with nothing selected: they add nothing to either sum
    squares = F.mse_loss(t(x), t(y), reduction="none").numpy()
    logits, labels, w = rng.normal(size=(N_REF, 5)), rng.integers(0, 5, N_REF), rng.uniform(0.2, 3.0, 5)
    weighted = F.cross_entropy(t(logits), t(labels), weight=t(w), reduction="none").numpy()  # w_y · l
    log_q = torch.log_softmax(t(rng.normal(size=(N_REF, 3))), 1)
    p = torch.softmax(t(rng.normal(size=(N_REF, 3))), 1)
    kl = F.kl_div(log_q, p, reduction="none").numpy()
    return {
        "mean": ("mse", (x, y), {}, squares.sum(1), np.full(N_REF, 4.0)),
        "sum": ("mse", (x, y), {"reduction": "sum"}, squares.sum(1), None),
        "masked mean": ("mse", (x, y), {"mask": mask}, (squares * mask).sum(1), mask.sum(1).astype(float)),
        "class-weighted": ("cross-entropy", (logits, labels), {"weight": w}, weighted, w[labels]),
        "batchmean": ("kl-div", (log_q.numpy(), p.numpy()), {"reduction": "batchmean"}, kl.sum(1), np.ones(N_REF)),
    }


@pytest.mark.parametrize("case", ["mean", "sum", "masked mean", "class-weighted", "batchmean"])
@pytest.mark.parametrize("chunk_rows", [None, 100])
def test_the_interval_is_the_bootstrap_written_out(case, chunk_rows):
    loss, arrays, kw, num, den = reference_cases(np.random.default_rng(12))[case]
    found = losscli.compute(loss, *arrays, **kw, outputs=losscli.Outputs(ci=0.8, resamples=250, seed=17),
                            streaming=losscli.Streaming(chunk_rows=chunk_rows)).ci
    expected = reference(num, den, seed=17, resamples=250, level=0.8)
    np.testing.assert_allclose([found.low, found.high], expected, rtol=1e-12, atol=0)
    assert (found.level, found.resamples, found.seed, found.method) == (0.8, 250, 17,
                                                                        "poisson bootstrap, percentile")


def test_the_weights_are_poisson_1_and_a_function_of_the_sample():
    """4,000,000 weights: each P(k) within 4 binomial standard errors, sqrt(P(1 - P) / 4e6), of Poisson(1)'s
    e^-1 / k! (plus 2^-16, the 16-bit table's resolution); the mean within 4 · sqrt(1 / 4e6) of 1 and the
    variance within 4 · sqrt((μ4 - 1) / 4e6) = 4 · sqrt(3 / 4e6) of 1 (μ4 = 4 for Poisson(1)); neighbouring
    samples and resamples uncorrelated within 4 / sqrt(count)."""
    w = weights(123, 0, 100_000, 40)
    assert w.shape == (100_000, 40) and w.dtype.kind == "u"
    count = w.size
    for k in range(7):
        pk = math.exp(-1) / math.factorial(k)
        assert abs(np.mean(w == k) - pk) <= 4 * math.sqrt(pk * (1 - pk) / count) + 2**-16, k
    x = w.astype(np.float64)
    assert abs(x.mean() - 1) <= 4 * math.sqrt(1 / count)
    assert abs(x.var() - 1) <= 4 * math.sqrt(3 / count)
    for a, b in ((x[:, :-1], x[:, 1:]), (x[:-1], x[1:])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) <= 4 / math.sqrt(a.size)
    assert np.array_equal(weights(123, 500, 900, 40), w[500:900])  # whoever asks for a sample
    assert not np.array_equal(weights(124, 0, 1000, 40), w[:1000])


# -- 5. the command line ----------------------------------------------------------------------------------


@pytest.fixture
def models(tmp_path) -> dict[str, Path]:
    """target; base with N(0, 1) errors; better with N(0, 0.25); n = 1000; float64."""
    rng = np.random.default_rng(21)
    y = rng.normal(size=1000)
    files = {"target": y, "base": y + rng.normal(size=1000), "better": y + 0.5 * rng.normal(size=1000),
             "short": y[:900]}
    for name, array in files.items():
        np.save(tmp_path / f"{name}.npy", array)
    return {name: tmp_path / f"{name}.npy" for name in files}


def test_ci_in_json_and_in_the_table(models):
    args = ("mse", models["base"], models["target"], "--ci", "0.95", "--resamples", "200", "--seed", "4")
    result = invoke(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    base, y = np.load(models["base"]), np.load(models["target"])
    expected = reference((base - y) ** 2, np.ones(len(y)), seed=4, resamples=200, level=0.95)
    ci = document["ci"]
    assert {k: ci[k] for k in ("level", "method", "resamples", "seed")} == {
        "level": 0.95, "method": "poisson bootstrap, percentile", "resamples": 200, "seed": 4}
    np.testing.assert_allclose([ci["low"], ci["high"]], expected, rtol=1e-12)
    assert ci["low"] < document["value"] < ci["high"]
    table = invoke(*args)
    assert table.exit_code == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("value"))
    assert row.split(None, 1)[1].strip() == f"{document['value']!r} [{ci['low']!r}, {ci['high']!r}] 95% CI"


def test_a_float32_interval_is_written_in_the_losss_dtype(models, tmp_path):
    np.save(tmp_path / "b32.npy", np.load(models["base"]).astype(np.float32))
    np.save(tmp_path / "y32.npy", np.load(models["target"]).astype(np.float32))
    document = json.loads(invoke("mse", tmp_path / "b32.npy", tmp_path / "y32.npy", "--ci", "0.9", "-f",
                                 "json").stdout)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    for end in ("low", "high"):
        assert np.float32(document["ci"][end]) == document["ci"][end]


@pytest.mark.parametrize("flags, fragments", [
    (["--ci", "1.5"], ["--ci:", "between 0 and 1", "1.5"]),
    (["--ci", "0.9", "-r", "none"], ["--ci:", "reduction is none"]),
    (["--ci", "0.9", "--resamples", "5"], ["--resamples:", "from 100", "5"]),
    (["--ci", "0.9", "--seed", "-1"], ["--seed:", "-1"]),
])
def test_bad_statistics_options_are_one_line_and_exit_2(models, flags, fragments):
    one_line_error(invoke("mse", models["base"], models["target"], *flags), *fragments)


def compare_json(*args: object, code: int = 0) -> dict:
    result = invoke("compare", "mse", *args, "-f", "json", "--resamples", "300")
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def test_compare_json_says_better_and_what_it_compared(models):
    document = compare_json(models["base"], models["better"], models["target"], "--seed", "2")
    y = np.load(models["target"])
    base, new = mse(np.load(models["base"]), y), mse(np.load(models["better"]), y)
    assert document["base"] == pytest.approx(base, rel=1e-12) and document["new"] == pytest.approx(new, rel=1e-12)
    assert document["difference"] == pytest.approx(new - base, rel=1e-12)
    assert document["relative"] == pytest.approx((new - base) / base, rel=1e-12)
    assert document["verdict"] == "better" and document["p_value"] < 0.01
    assert document["ci"] == {"level": 0.95, "low": document["ci"]["low"], "high": document["ci"]["high"],
                              "method": "poisson bootstrap, percentile", "resamples": 300, "seed": 2}
    assert document["ci"]["low"] < document["difference"] < document["ci"]["high"] < 0
    assert {k: document[k] for k in ("schema_version", "loss", "torch", "reduction", "alpha", "margin", "count",
                                     "selected", "warnings")} == {
        "schema_version": 1, "loss": "mse", "torch": "torch.nn.functional.mse_loss", "reduction": "mean",
        "alpha": 0.05, "margin": 0.0, "count": 1000, "selected": 1000, "warnings": []}
    assert document["files"] == {"base": str(models["base"]), "new": str(models["better"])}
    assert document["tool"]["name"] == "losscli"


def test_compare_table(models):
    result = invoke("compare", "mse", models["base"], models["better"], models["target"], "--resamples", "300")
    assert result.exit_code == 0, result.stderr
    rows = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in result.stdout.splitlines()[1:]
            if line.strip()}
    assert rows["verdict"].startswith("better (alpha 0.05, 300 paired resamples, seed 0)")
    assert rows["difference"].startswith("-") and "95% CI [" in rows["difference"] and "p = 0.00" in rows["difference"]
    assert rows["base"].endswith(str(models["base"])) and rows["new"].endswith(str(models["better"]))


@pytest.mark.parametrize("base, new, flags, code, verdict", [
    ("better", "base", ["--fail-if-worse"], 1, "worse"),
    ("better", "base", [], 0, "worse"),
    ("base", "better", ["--fail-if-worse"], 0, "better"),
    ("base", "base", ["--fail-if-worse"], 0, "inconclusive"),
    ("better", "base", ["--fail-if-worse", "--margin", "100"], 0, "inconclusive"),
])
def test_compare_exit_status(models, base, new, flags, code, verdict):
    result = invoke("compare", "mse", models[base], models[new], models["target"], *flags, "--resamples", "300",
                    "-f", "json")
    assert result.exit_code == code, result.stderr
    assert json.loads(result.stdout)["verdict"] == verdict
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("FAIL: mse: new is worse than base: +"), result.stderr
    else:
        assert result.stderr == ""


def test_compare_without_arguments_prints_help_and_exits_2():
    result = invoke("compare")
    assert result.exit_code == 2
    assert "Usage" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert " mse " in result.stdout and " margin-ranking " in result.stdout  # every loss, margin losses too


@pytest.mark.parametrize("loss", ["mse", "margin-ranking", "triplet-margin"])
def test_compare_help_of_a_loss(loss):
    result = invoke("compare", loss, "--help")
    assert result.exit_code == 0, result.stderr
    assert "--alpha" in result.stdout and "--margin" in result.stdout and "--fail-if-worse" in result.stdout
    assert ("--loss-margin" in result.stdout) == (loss != "mse")


def test_compare_passes_a_losss_own_margin_as_loss_margin(tmp_path):
    rng = np.random.default_rng(22)
    for name, array in (("x1", rng.normal(size=300)), ("x1b", rng.normal(size=300)), ("x2", rng.normal(size=300)),
                        ("y", np.where(rng.random(300) < 0.5, -1.0, 1.0))):
        np.save(tmp_path / f"{name}.npy", array)
    x1, x1b, x2, y = (t(np.load(tmp_path / f"{n}.npy")) for n in ("x1", "x1b", "x2", "y"))
    result = invoke("compare", "margin-ranking", *(tmp_path / f"{n}.npy" for n in ("x1", "x1b", "x2", "y")),
                    "--loss-margin", "0.5", "--margin", "0.01", "-f", "json", "--resamples", "100")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["base"] == pytest.approx(F.margin_ranking_loss(x1, x2, y, margin=0.5).item(), rel=1e-12)
    assert document["new"] == pytest.approx(F.margin_ranking_loss(x1b, x2, y, margin=0.5).item(), rel=1e-12)
    assert document["margin"] == 0.01


@pytest.mark.parametrize("args, fragments", [
    (["base", "short", "target"], ["(900,)", "(1000,)"]),
    (["base", "better", "target", "--alpha", "2"], ["--alpha:", "between 0 and 1", "2"]),
    (["base", "better", "target", "-r", "none"], ["--reduction:", "reduction is none"]),
    (["base", "better", "target", "--margin", "-1"], ["--margin:", "-1"]),
])
def test_compare_errors_are_one_line_and_exit_2(models, args, fragments):
    one_line_error(invoke("compare", "mse", *(models.get(a, a) for a in args)), *fragments)
