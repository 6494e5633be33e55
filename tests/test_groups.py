"""Views by group: ``--by FILE[:col]`` (a label per sample) and ``--by-class`` (each element's target class, or a
multi-label loss's label column); ``compute(by=...)`` and ``Outputs(by_class=True)`` in Python.

A group's value is what torch.nn.functional gives for the loss on that group's samples or elements alone: the
arrays are boolean-indexed here and torch is called with the same options (tests/oracle.py's oracle for the drawn
cases). A group's count is its elements that count (selected by the mask, not ignored); groups are listed in the
order of their labels, and only those with elements that count.

1. Groups of samples against torch, for losses of every kind of denominator (weights, class weights with
   ignore_index and label smoothing, pos_weight, batchmean, ctc's target lengths), with text and integer labels,
   and drawn by hypothesis; chunked equals in memory (up to the float64 sums' association), and the dask engine
   equals the local engine digit for digit, intervals included.
2. ``--by-class`` against torch on the elements of each class; the losses that have no classes are refused.
3. The label readers (CSV/TSV, compressed, Parquet, Feather, .npy) and every refusal of labels, one line each.
4. The command line: the table (worst first, NaN first, ``--top-groups``), JSON (the schema; every group, in
   label order) and intervals per group, a group too small for every resample to draw it included.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.engine import cluster as dask_engine
from losscli.engine import groups as engine_groups
from losscli.engine import sources as engine_sources
from losscli.engine.bootstrap import weights
from tests.oracle import (
    TOLERANCE, Case, binary_cases, class_cases, class_layout, counted, oracle, regression_cases, tolerance_of,
    one_line_error,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "losscli" / "result.schema.json").read_text())
F64 = TOLERANCE[np.dtype(np.float64)]
F32 = TOLERANCE[np.dtype(np.float32)]


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})



def t(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


Expected = dict[str, tuple[int, Any]]  # group name -> (count, torch's value)


def assert_groups(groups: list, expected: Expected, tolerance: tuple[float, float] = F64) -> None:
    """The groups are ``expected``'s, in its order: names, counts, and values within ``tolerance`` of torch's."""
    assert [(g.name, g.count) for g in groups] == [(name, count) for name, (count, _) in expected.items()]
    for g in groups:
        want = float(expected[g.name][1])
        np.testing.assert_allclose(g.value, want, *tolerance, equal_nan=True, err_msg=g.name)


# -- 1. groups of samples against torch ------------------------------------------------------------------

N = 240
LABELS = {"text": np.array(["east", "north", "south", "west"]), "integers": np.array([-3, 0, 7, 12])}


def sample_labels(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Every label of ``kind`` at least twice, in no order."""
    names = LABELS[kind]
    return rng.permutation(np.concatenate([names, names, rng.choice(names, N - 2 * len(names))]))


# (loss, arrays, keywords, the reductions to test, torch on the samples s: (count, value) for a reduction).
# mse and cross-entropy: the last label's samples count nothing (masked out, ignored), so that group is absent.
SampleCase = tuple[str, tuple, dict, tuple, Callable[[np.ndarray, str], tuple[int, torch.Tensor]]]


def sample_cases(labels: np.ndarray, rng: np.random.Generator) -> dict[str, SampleCase]:
    none_count = labels == np.unique(labels)[-1]
    x, y, w, m = rng.normal(size=(N, 3)), rng.normal(size=(N, 3)), rng.random((N, 3)), rng.random((N, 3)) < 0.7
    m[none_count] = False
    logits, cw = rng.normal(size=(N, 5)), rng.random(5) + 0.1
    target = np.where(rng.random(N) < 0.15, -1, rng.integers(0, 5, N))
    target[none_count] = -1
    log_probs = torch.randn(N, 4, dtype=torch.float64).log_softmax(1).numpy()
    nll_target = rng.integers(0, 4, N)
    bx, by = rng.normal(size=(N, 3)).astype(np.float32), rng.random((N, 3)).astype(np.float32)
    pw = (rng.random(3) * 3).astype(np.float32)
    q = torch.rand(N, 4, dtype=torch.float64).softmax(1).numpy()
    x1, x2, sign = rng.normal(size=N), rng.normal(size=N), rng.choice([-1.0, 1.0], N)
    return {
        "mse": ("mse", (x, y), dict(weight=w, mask=m), ("mean", "sum"), lambda s, r: (
            int(m[s].sum()), F.mse_loss(t(x[s][m[s]]), t(y[s][m[s]]), weight=t(w[s][m[s]]), reduction=r))),
        "cross-entropy": ("cross-entropy", (logits, target), dict(weight=cw, ignore_index=-1, label_smoothing=0.2),
                          ("mean", "sum"), lambda s, r: (int((target[s] != -1).sum()), F.cross_entropy(
                              t(logits[s]), t(target[s]), weight=t(cw), ignore_index=-1, label_smoothing=0.2,
                              reduction=r))),
        "nll": ("nll", (log_probs, nll_target), dict(weight=cw[:4]), ("mean", "sum"), lambda s, r: (
            int(s.sum()), F.nll_loss(t(log_probs[s]), t(nll_target[s]), weight=t(cw[:4]), reduction=r))),
        "bce-with-logits": ("bce-with-logits", (bx, by), dict(pos_weight=pw), ("mean", "sum"), lambda s, r: (
            3 * int(s.sum()), F.binary_cross_entropy_with_logits(t(bx[s]), t(by[s]), pos_weight=t(pw), reduction=r))),
        "kl-div": ("kl-div", (log_probs, q), {}, ("batchmean", "sum"), lambda s, r: (
            4 * int(s.sum()), F.kl_div(t(log_probs[s]), t(q[s]), reduction=r))),
        "margin-ranking": ("margin-ranking", (x1, x2, sign), dict(margin=0.3), ("mean", "sum"), lambda s, r: (
            int(s.sum()), F.margin_ranking_loss(t(x1[s]), t(x2[s]), t(sign[s]), margin=0.3, reduction=r))),
        "ctc": ctc_case(rng),
    }


def ctc_case(rng: np.random.Generator) -> SampleCase:
    """ctc: samples along axis 1 of log_probs; mean divides each sample by its target length."""
    steps, classes, longest = 12, 5, 4
    log_probs = torch.randn(steps, N, classes, dtype=torch.float64).log_softmax(2).numpy()
    targets, input_lengths = rng.integers(1, classes, (N, longest)), rng.integers(8, steps + 1, N)
    target_lengths = rng.integers(1, longest + 1, N)
    return ("ctc", (log_probs, targets, input_lengths, target_lengths), {}, ("mean", "sum"), lambda s, r: (
        int(s.sum()), F.ctc_loss(t(log_probs[:, s]), t(targets[s]), t(input_lengths[s]), t(target_lengths[s]),
                                 reduction=r)))


def expected_by_label(labels: np.ndarray, torch_of: Callable[[np.ndarray], tuple[int, Any]]) -> Expected:
    """torch on each label's samples, in label order; the labels whose samples count nothing left out."""
    found = {}
    for name in np.unique(labels):
        count, value = torch_of(labels == name)
        if count:
            found[str(name)] = (count, value)
    return found


@pytest.mark.parametrize("kind", sorted(LABELS))
@pytest.mark.parametrize("case", ["mse", "cross-entropy", "nll", "bce-with-logits", "kl-div", "margin-ranking",
                                  "ctc"])
def test_each_group_is_torch_on_its_samples(case, kind):
    rng = np.random.default_rng([11, sum(map(ord, case))])
    labels = sample_labels(kind, rng)
    loss, arrays, kw, reductions, torch_of = sample_cases(labels, rng)[case]
    for reduction in reductions:
        result = losscli.compute(loss, *arrays, **kw, reduction=reduction, by=labels)
        want = expected_by_label(labels, lambda s: torch_of(s, reduction))
        assert_groups(result.groups, want, tolerance_of(*arrays))
        if case in ("mse", "cross-entropy"):  # the last label's samples count nothing: no group
            assert len(result.groups) == len(LABELS[kind]) - 1


@pytest.mark.parametrize("case", ["mse", "cross-entropy", "kl-div"])
def test_the_torch_backends_groups_are_the_numpy_backends(case):
    """The torch backend's per-element values, grouped the same way (what mean divides by is the inputs')."""
    rng = np.random.default_rng(5)
    labels = sample_labels("text", rng)
    loss, arrays, kw, reductions, _ = sample_cases(labels, rng)[case]
    for reduction in reductions:
        numpy = losscli.compute(loss, *arrays, **kw, reduction=reduction, by=labels).groups
        found = losscli.compute(loss, *arrays, **kw, reduction=reduction, by=labels, backend="torch").groups
        assert_groups(found, {g.name: (g.count, g.value) for g in numpy}, (1e-12, 1e-12))


def test_integer_labels_are_in_numeric_order_and_text_labels_in_text_order():
    x = np.arange(6.0)
    numbers = losscli.compute("mse", x, np.zeros(6), by=np.array([10, 9, -1, 10, 9, 2])).groups
    assert [g.name for g in numbers] == ["-1", "2", "9", "10"]
    words = losscli.compute("mse", x, np.zeros(6), by=np.array(["b", "B", "a", "ab", "b", "a"])).groups
    assert [(g.name, g.count) for g in words] == [("B", 1), ("a", 2), ("ab", 1), ("b", 2)]
    # hand arithmetic: group "a" holds x = 2 and 5, target 0: mean (4 + 25) / 2
    assert words[1].value == 14.5


def sliced(c: Case, s: np.ndarray) -> Case:
    """The case restricted to samples ``s`` (a boolean index of the loss's first axis): each array of the loss's
    elements sliced, a weight first broadcast to the loss's shape; class weights as they are."""
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.broadcast_to(a, c.loss_shape)[s]

    if c.loss in ("nll", "cross-entropy"):
        return replace(c, input=c.input[s], target=c.target[s], mask=None if c.mask is None else c.mask[s])
    return replace(c, input=c.input[s], target=c.target[s], weight=cut(c.weight), pos_weight=cut(c.pos_weight),
                   mask=cut(c.mask))


@st.composite
def grouped(draw, cases: st.SearchStrategy[Case]) -> tuple[Case, np.ndarray]:
    """A case of a loss with samples, reduced (mean or sum), and a label per sample (integers or text)."""
    c = draw(cases)
    assume(len(c.loss_shape) >= 1)
    c = replace(c, reduction=draw(st.sampled_from(["mean", "sum"])), size_average=None, reduce=None)
    n = c.loss_shape[0]
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-2, 2))
                  | hnp.arrays("<U2", (n,), elements=st.sampled_from(["a", "b", "zz", ""])))
    return c, labels


CASES = {
    "mse": regression_cases("mse"),
    "smooth-l1": regression_cases("smooth-l1"),
    "cross-entropy": class_cases("cross-entropy"),
    "nll": class_cases("nll"),
    "bce-with-logits": binary_cases("bce-with-logits"),
}


@pytest.mark.parametrize("loss", sorted(CASES))
def test_drawn_groups_are_torch_on_their_samples(loss):
    @given(grouped(CASES[loss]))
    def check(drawn: tuple[Case, np.ndarray]) -> None:
        c, labels = drawn
        result = c.compute("numpy", by=labels)
        want = expected_by_label(labels, lambda s: (counted(sliced(c, s)), oracle(sliced(c, s))))
        assert_groups(result.groups, want, TOLERANCE[np.dtype(c.input.dtype)])

    check()


# chunked and on the dask engine: N_BIG rows (three bootstrap blocks), chunks that cut blocks and groups

N_BIG = 2_500
INVARIANT = losscli.Outputs(ci=0.9, resamples=200, seed=5)


def big_calls() -> dict[str, tuple[str, tuple, dict, losscli.Outputs]]:
    """(loss, arrays, keywords, outputs): groups of samples (text labels, a group of 3 samples among them) and of
    classes, each with an interval."""
    rng = np.random.default_rng(2026)
    labels = rng.choice(["a", "b", "c"], N_BIG, p=[0.6, 0.3, 0.1])
    labels[[17, 1300, 2400]] = "tiny"
    x, y, w, m = rng.normal(size=(N_BIG, 3)), rng.normal(size=(N_BIG, 3)), rng.random((N_BIG, 3)), \
        rng.random((N_BIG, 3)) < 0.7
    kx, kt = rng.normal(size=(N_BIG, 4, 3)), rng.integers(0, 4, (N_BIG, 3))
    kt[rng.random(kt.shape) < 0.2] = -100
    by_class = replace(INVARIANT, by_class=True)
    log_probs = torch.randn(N_BIG, 4, dtype=torch.float64).log_softmax(1).numpy()
    q = torch.rand(N_BIG, 4, dtype=torch.float64).softmax(1).numpy()
    return {
        "mse by label": ("mse", (x, y), dict(weight=w, mask=m, by=labels), INVARIANT),
        "kl-div batchmean by integer": ("kl-div", (log_probs, q), dict(reduction="batchmean", by=rng.integers(0, 5,
                                                                                                               N_BIG)),
                                        INVARIANT),
        "cross-entropy (N, C, d) by class": ("cross-entropy", (kx, kt), dict(weight=np.array([1.0, 2.0, 0.5, 3.0])),
                                             by_class),
        "bce-with-logits by column": ("bce-with-logits", (x, rng.random((N_BIG, 3))), dict(reduction="sum"),
                                      by_class),
    }


@pytest.mark.parametrize("call", sorted(big_calls()))
def test_chunked_groups_equal_the_in_memory_ones(call):
    """The values up to the association of float64 sums (a sum per chunk); the intervals exactly (the bootstrap
    sums blocks of samples whatever the chunks)."""
    loss, arrays, kw, outputs = big_calls()[call]
    whole = losscli.compute(loss, *arrays, **kw, outputs=outputs).groups
    assert len(whole) >= 3 and all(math.isfinite(g.ci.low) and g.ci.low < g.ci.high for g in whole)
    for rows in (7, 1024, 1500):
        chunked = losscli.compute(loss, *arrays, **kw, outputs=outputs,
                                  streaming=losscli.Streaming(chunk_rows=rows)).groups
        assert [(g.name, g.count, g.ci) for g in chunked] == [(g.name, g.count, g.ci) for g in whole]
        np.testing.assert_allclose([g.value for g in chunked], [g.value for g in whole], rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, started once for the module."""
    with losscli.Cluster(workers=2) as started:
        started.open()
        yield started


@pytest.mark.parametrize("call", sorted(big_calls()))
def test_the_dask_engine_gives_the_local_engines_groups_exactly(call, cluster, monkeypatch):
    """The same chunks in partitions of 4 (13 of them), merged in row order: every value and interval equal."""
    monkeypatch.setattr(dask_engine, "CHUNKS_PER_PARTITION", 4)
    loss, arrays, kw, outputs = big_calls()[call]
    streaming = losscli.Streaming(chunk_rows=50)
    local = losscli.compute(loss, *arrays, **kw, outputs=outputs, streaming=streaming)
    found = losscli.compute(loss, *arrays, **kw, outputs=outputs, streaming=streaming, engine=cluster)
    assert np.array_equal([g.value for g in found.groups], [g.value for g in local.groups])
    assert found.groups == local.groups
    assert found.value == local.value


# -- 2. by class -------------------------------------------------------------------------------------------

ByClass = tuple[str, tuple, dict, int, Callable[[int, str], tuple[int, torch.Tensor]]]


def class_calls(rng: np.random.Generator) -> dict[str, ByClass]:
    """(loss, arrays, keywords, classes, torch on the elements of class c: (count, value) for a reduction)."""
    n, c = 60, 4
    x, cw = rng.normal(size=(n, c)), rng.random(c) + 0.1
    tg = np.where(rng.random(n) < 0.2, -100, rng.integers(0, c, n))
    kx, kt = rng.normal(size=(n, c, 3, 2)), rng.integers(0, c, (n, 3, 2))
    kt[rng.random(kt.shape) < 0.2] = 255
    flat_x, flat_t = t(np.moveaxis(kx, 1, -1).reshape(-1, c)), kt.reshape(-1)  # elements as rows of classes
    mw, features, lw, lb = rng.random(c) + 0.5, rng.normal(size=(n, 5)), rng.normal(size=(c, 5)), rng.normal(size=c)
    ce = dict(weight=t(cw), label_smoothing=0.1)
    return {
        "cross-entropy (N, C)": ("cross-entropy", (x, tg), dict(weight=cw, label_smoothing=0.1), c, lambda k, r: (
            int((tg == k).sum()), F.cross_entropy(t(x[tg == k]), t(tg[tg == k]), **ce, reduction=r))),
        "cross-entropy (N, C, H, W)": ("cross-entropy", (kx, kt), dict(weight=cw, label_smoothing=0.1,
                                                                       ignore_index=255), c, lambda k, r: (
            int((flat_t == k).sum()), F.cross_entropy(flat_x[flat_t == k], t(flat_t[flat_t == k]), **ce,
                                                      reduction=r))),
        "nll": ("nll", (np.log(np.abs(x) / 10), tg), {}, c, lambda k, r: (
            int((tg == k).sum()), F.nll_loss(t(np.log(np.abs(x) / 10)[tg == k]), t(tg[tg == k]), reduction=r))),
        "multi-margin": ("multi-margin", (x, np.abs(tg) % c), dict(p=2, margin=0.5, weight=mw), c, lambda k, r: (
            int((np.abs(tg) % c == k).sum()), F.multi_margin_loss(
                t(x[np.abs(tg) % c == k]), t(np.abs(tg)[np.abs(tg) % c == k] % c), p=2, margin=0.5, weight=t(mw),
                reduction=r))),
        "linear-cross-entropy": ("linear-cross-entropy", (features, lw, tg), dict(linear_bias=lb), c, lambda k, r: (
            int((tg == k).sum()), F.linear_cross_entropy(t(features[tg == k]), t(lw), t(tg[tg == k]),
                                                         linear_bias=t(lb), reduction=r))),
    } | label_columns(rng)


def label_columns(rng: np.random.Generator) -> dict[str, ByClass]:
    """bce and bce-with-logits on (N, C, ...): group j is label column j (its elements along axis 1)."""
    n, c = 30, 3
    x, y, w, pw = rng.normal(size=(n, c)), rng.random((n, c)), rng.random((n, c)), rng.random(c) * 3
    m, p, z = rng.random((n, c)) < 0.7, rng.random((n, c, 2)) * 0.98 + 0.01, rng.random((n, c, 2))
    return {
        "bce-with-logits (N, C)": ("bce-with-logits", (x, y), dict(weight=w, pos_weight=pw, mask=m), c, lambda j, r: (
            int(m[:, j].sum()), F.binary_cross_entropy_with_logits(
                t(x[:, j][m[:, j]]), t(y[:, j][m[:, j]]), weight=t(w[:, j][m[:, j]]), pos_weight=t(pw[j]),
                reduction=r))),
        "bce (N, C, d)": ("bce", (p, z), {}, c, lambda j, r: (
            2 * n, F.binary_cross_entropy(t(p[:, j]), t(z[:, j]), reduction=r))),
    }


@pytest.mark.parametrize("call", sorted(class_calls(np.random.default_rng(0))))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_by_class_is_torch_on_the_elements_of_each_class(call, reduction):
    """Ignored elements are in no class; a class without elements is no group."""
    loss, arrays, kw, classes, torch_of = class_calls(np.random.default_rng(7))[call]
    result = losscli.compute(loss, *arrays, **kw, reduction=reduction, outputs=losscli.Outputs(by_class=True))
    want = {}
    for k in range(classes):
        count, value = torch_of(k, reduction)
        if count:
            want[str(k)] = (count, value)
    assert_groups(result.groups, want)
    assert sum(g.count for g in result.groups) == result.selected


def test_a_class_with_no_element_or_ignored_is_no_group():
    x = np.zeros((4, 5))
    result = losscli.compute("cross-entropy", x, np.array([4, 1, 1, 2]), ignore_index=2,
                             outputs=losscli.Outputs(by_class=True))
    # hand arithmetic: uniform logits, log_softmax = -log 5 for every class
    assert [(g.name, g.count) for g in result.groups] == [("1", 2), ("4", 1)]
    assert all(abs(g.value - math.log(5)) < 1e-15 for g in result.groups)


@pytest.mark.parametrize("rows, chunk_rows", [(3, None), (10, 3), (9, 3)])
def test_label_columns_are_columns_whatever_the_rows_of_a_chunk(rows, chunk_rows):
    """As many rows (in a chunk) as label columns: still one group per column (not per row)."""
    rng = np.random.default_rng(rows)
    x, y = rng.normal(size=(rows, 3)), rng.random((rows, 3))
    result = losscli.compute("bce-with-logits", x, y, outputs=losscli.Outputs(by_class=True),
                             streaming=losscli.Streaming(chunk_rows=chunk_rows))
    want = {str(j): (rows, F.binary_cross_entropy_with_logits(t(x[:, j]), t(y[:, j]))) for j in range(3)}
    assert_groups(result.groups, want, (1e-12, 0))


@given(st.data())
def test_drawn_class_groups_are_torch_on_their_elements(data):
    loss = data.draw(st.sampled_from(["cross-entropy", "nll"]))
    c = replace(data.draw(class_cases(loss)), reduction=data.draw(st.sampled_from(["mean", "sum"])),
                size_average=None, reduce=None)
    classes, _ = class_layout(c.input)
    x = c.input[None] if c.input.ndim == 1 else c.input
    elements = t(np.moveaxis(x, 1, -1).reshape(-1, classes))
    target = c.target.reshape(-1).astype(np.int64)
    keep = np.ones(target.shape, bool) if c.mask is None else c.mask.astype(bool).reshape(-1)
    ignore_index = c.params.get("ignore_index", -100)
    keep &= target != ignore_index
    options = dict(weight=None if c.weight is None else t(c.weight), ignore_index=ignore_index,
                   reduction=c.reduction)
    if loss == "cross-entropy":
        options["label_smoothing"] = c.params["label_smoothing"]
    call = F.cross_entropy if loss == "cross-entropy" else F.nll_loss
    want = {str(k): (int(s.sum()), call(elements[s], t(target[s]), **options))
            for k in range(classes) if (s := keep & (target == k)).any()}
    assert_groups(c.compute("numpy", outputs=losscli.Outputs(by_class=True)).groups, want,
                  TOLERANCE[np.dtype(c.input.dtype)])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Small inputs of several losses, and label files."""
    d = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=12), "y": rng.normal(size=12), "logits": rng.normal(size=(12, 3)),
              "labels": rng.integers(0, 3, 12), "probabilities": rng.dirichlet(np.ones(3), 12),
              "multi_hot": rng.integers(0, 2, (12, 3)), "zero_one": rng.integers(0, 2, 12).astype(np.float64)}
    for name, array in arrays.items():
        np.save(d / f"{name}.npy", array)
    return d


@pytest.mark.parametrize("args", [
    ["mse", "x.npy", "y.npy"],
    ["multilabel-soft-margin", "logits.npy", "multi_hot.npy"],
    ["cross-entropy", "logits.npy", "probabilities.npy"],
    ["bce-with-logits", "x.npy", "zero_one.npy"],  # one label per sample (N,): no label columns
])
def test_by_class_on_a_loss_without_classes_is_one_line(files, args, monkeypatch):
    monkeypatch.chdir(files)
    line = one_line_error(invoke(*args, "--by-class"), "error: --by-class: expected a loss whose elements each "
                                                      "have a class", f"but {args[0]} has none here", "--by")
    assert "by_class" not in line


# -- 3. label readers ---------------------------------------------------------------------------------------

TEXT = ["Smith, J", "b", " Smith, J ", "b", "c d", "b"] * 2  # quoted cells with commas; spaces around them


def groups_of(by: Any, x: np.ndarray) -> list:
    return losscli.compute("mse", x, np.zeros_like(x), by=by).groups


@pytest.fixture(scope="module")
def label_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("labels")
    rows = ["id,name,score"] + [f'{i},"{name}",{i / 2}' if "," in name else f"{i},  {name}  ,{i / 2}"
                                for i, name in enumerate(TEXT)]
    (d / "text.csv").write_text("\n".join(rows) + "\n")
    with gzip.open(d / "text.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    (d / "text.tsv").write_text("\n".join(["id\tname"] + [f"{i}\t {n} " for i, n in enumerate(TEXT)]) + "\n")
    words = [s.strip() for s in TEXT]
    numbers = np.array([7, 3, 7, -1, 3, 3] * 2, np.int64)
    table = pa.table({"name": pa.array(words), "coded": pa.array(words).dictionary_encode(),
                      "number": pa.array(numbers)})
    pq.write_table(table, d / "labels.parquet")
    feather.write_feather(table, d / "labels.feather")
    np.save(d / "numbers.npy", numbers)
    with_null = pa.table({"name": pa.array(words[:3] + [None] + words[4:])})
    pq.write_table(with_null, d / "null.parquet")
    np.save(d / "two.npy", np.zeros((12, 2), np.int64))
    np.save(d / "half.npy", np.arange(12) / 2)
    np.save(d / "whole.npy", np.array([1.0, 2.0, 1.0] * 4))
    return d


@pytest.mark.parametrize("spec, kind", [
    ("text.csv:name", "text"), ("text.csv.gz:name", "text"), ("text.tsv:name", "text"),
    ("labels.parquet:name", "text"), ("labels.parquet:coded", "text"), ("labels.feather:name", "text"),
    ("labels.parquet:number", "numbers"), ("labels.feather:number", "numbers"), ("numbers.npy", "numbers"),
])
def test_labels_read_from_each_format_are_the_arrays_labels(label_files, spec, kind):
    x = np.arange(12.0)
    arrays = {"text": np.array([s.strip() for s in TEXT]), "numbers": np.load(label_files / "numbers.npy")}
    found = groups_of(str(label_files / spec), x)
    assert found == groups_of(arrays[kind], x)
    if kind == "text":
        assert [(g.name, g.count) for g in found] == [("Smith, J", 4), ("b", 6), ("c d", 2)]
    else:
        assert [(g.name, g.count) for g in found] == [("-1", 2), ("3", 6), ("7", 4)]


def test_whole_float_labels_are_integers(label_files):
    found = groups_of(str(label_files / "whole.npy"), np.arange(12.0))
    assert [(g.name, g.count) for g in found] == [("1", 8), ("2", 4)]


def test_the_command_line_reads_a_label_column(label_files, monkeypatch):
    monkeypatch.chdir(label_files)
    np.save(label_files / "x.npy", np.arange(12.0))
    np.save(label_files / "zero.npy", np.zeros(12))
    result = invoke("mse", "x.npy", "zero.npy", "--by", "text.csv:name", "-f", "json")
    assert result.exit_code == 0, result.stderr
    x = np.arange(12.0)
    names = np.array([s.strip() for s in TEXT])
    assert json.loads(result.stdout)["groups"] == [
        {"group": name, "count": int((names == name).sum()), "value": float(np.mean(x[names == name] ** 2))}
        for name in ("Smith, J", "b", "c d")]


LABEL_ERRORS = [
    (["--by", "null.parquet:name"], ["error: by (null.parquet:name): column 'name': expected a label in every row, "
                                     "but row 3 is null"]),
    (["--by", "two.npy"], ["--by: expected one label per sample (a 1-D column), but got shape (12, 2)"]),
    (["--by", "half.npy"], ["--by: expected labels that are text or integers, but got fractional numbers"]),
    (["--by", "text.csv"], ["error: by (text.csv): expected one column of labels, but got 3 columns; select one "
                            "with :name"]),
    (["--by", "numbers.npy", "-r", "none"], ["--by: expected a reduction to give each group's value",
                                            "but the reduction is none"]),
    (["--by", "numbers.npy", "--by-class"], ["--by: expected groups of samples (--by) or of classes (--by-class), "
                                             "not both"]),
    (["--by", "numbers.npy", "--top-groups", "0"], ["--top-groups: expected a count of 1 or more, but got 0"]),
    (["--top-groups", "3"], ["--top-groups: expected groups to show (--by or --by-class), but got none"]),
]


def test_a_csv_column_of_integer_labels_sorts_as_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    labels = np.array([1, 10, 2, 11, -3, 2, 10, 11, 2, 1, 2, 10])
    (tmp_path / "g.csv").write_text("g\n" + "".join(f"{v}\n" for v in labels))
    x = np.arange(12.0)
    np.save(tmp_path / "x.npy", x)
    groups = json.loads(invoke("mse", "x.npy", "x.npy", "--by", "g.csv:g", "-f", "json").stdout)["groups"]
    assert [g["group"] for g in groups] == ["-3", "1", "2", "10", "11"]
    assert [g["count"] for g in groups] == [int((labels == v).sum()) for v in (-3, 1, 2, 10, 11)]


@pytest.mark.parametrize("flags, fragments", LABEL_ERRORS, ids=[" ".join(f) for f, _ in LABEL_ERRORS])
def test_bad_labels_are_one_line_and_exit_2(label_files, monkeypatch, flags, fragments):
    monkeypatch.chdir(label_files)
    np.save(label_files / "x.npy", np.arange(12.0))
    one_line_error(invoke("mse", "x.npy", "x.npy", *flags), *fragments)


def test_more_groups_than_max_groups_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = engine_groups.MAX_GROUPS + 1
    np.save(tmp_path / "x.npy", np.zeros(n))
    np.save(tmp_path / "ids.npy", np.arange(n))
    one_line_error(invoke("mse", "x.npy", "x.npy", "--by", "ids.npy"),
                   f"--by: expected at most {engine_groups.MAX_GROUPS} groups, but the labels have {n}")
    np.save(tmp_path / "ids.npy", np.arange(n - 1) % (n - 1))
    np.save(tmp_path / "x.npy", np.zeros(n - 1))
    assert invoke("mse", "x.npy", "x.npy", "--by", "ids.npy", "-f", "json").exit_code == 0


@pytest.mark.parametrize("labels", [11, 13])
@pytest.mark.parametrize("stream", [False, True])
def test_a_label_count_other_than_the_samples_is_one_line(tmp_path, monkeypatch, labels, stream):
    """In memory, and streaming (the command line streams a loss above STREAM_ELEMENTS: made small here)."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((12, 2)))
    np.save(tmp_path / "by.npy", np.arange(labels) % 3)
    if stream:
        monkeypatch.setattr(engine_sources, "STREAM_ELEMENTS", 8)
        monkeypatch.setattr(engine_sources, "CHUNK_ELEMENTS", 6)
        progress: list = []  # called after each chunk of a stream only: the patch streams
        losscli.compute("mse", np.zeros((12, 2)), np.zeros((12, 2)),
                        streaming=losscli.Streaming(progress=lambda done, rows: progress.append(done)))
        assert progress == [3, 6, 9, 12]
    one_line_error(invoke("mse", "x.npy", "x.npy", "--by", "by.npy"),
                   f"--by: expected a label for each of the loss's 12 samples, but got {labels} labels")


@pytest.mark.parametrize("labels", [2, 11, 13])
def test_a_label_count_other_than_the_samples_in_python(labels):
    """Whatever the chunks: one chunk of every row, or a first chunk with fewer labels than rows, included."""
    by = np.arange(labels) % 3
    for rows in (None, 5, 12, 20):
        with pytest.raises(losscli.LossCliError, match=f"^by: expected a label for each of the loss's 12 samples, "
                                                       f"but got {labels} labels$"):
            losscli.compute("mse", np.zeros(12), np.zeros(12), by=by, streaming=losscli.Streaming(chunk_rows=rows))


def test_a_loss_of_one_value_has_no_samples_to_group():
    with pytest.raises(losscli.LossCliError, match=r"^by: expected a loss with samples to group, but this loss "
                                                   r"is a single value \(shape \(\)\)$"):
        losscli.compute("mse", np.float64(1.0), np.float64(2.0), by=np.array(["a"]))


# -- 4. the command line ---------------------------------------------------------------------------------------


@pytest.fixture
def four(tmp_path, monkeypatch) -> Path:
    """mse against zeros by hand: a = mean(1, 1) = 1, b = NaN (a NaN prediction), c = mean(9, 9) = 9,
    d = mean(4, 4) = 4."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.array([1.0, np.nan, 3.0, 2.0, -1.0, 1.0, -3.0, 2.0]))
    np.save(tmp_path / "zero.npy", np.zeros(8))
    (tmp_path / "by.csv").write_text("group\n" + "\n".join("abcdabcd") + "\n")
    return tmp_path


def group_rows(stdout: str) -> tuple[str, list[list[str]], str]:
    """The groups' title, their rows (cells split on spaces) and what follows them, from the table."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("loss by group"))
    rows = [line.split() for line in lines[at + 2:] if line.strip() and "more (--top-groups)" not in line]
    after = [line for line in lines[at:] if "more (--top-groups)" in line]
    return lines[at], rows, after[0].strip() if after else ""


def test_the_table_shows_the_worst_groups_first_nan_first(four):
    result = invoke("mse", "x.npy", "zero.npy", "--by", "by.csv:group")
    assert result.exit_code == 0, result.stderr
    title, rows, more = group_rows(result.stdout)
    assert title == "loss by group (4 groups, worst first)"
    assert rows == [["b", "2", "nan"], ["c", "2", "9.0"], ["d", "2", "4.0"], ["a", "2", "1.0"]]
    assert more == ""


def test_top_groups_shows_k_and_says_how_many_more(four):
    result = invoke("mse", "x.npy", "zero.npy", "--by", "by.csv:group", "--top-groups", "2")
    assert result.exit_code == 0, result.stderr
    title, rows, more = group_rows(result.stdout)
    assert title == "loss by group (4 groups, worst first)"
    assert rows == [["b", "2", "nan"], ["c", "2", "9.0"]]
    assert more == "2 more (--top-groups)"
    everything = invoke("mse", "x.npy", "zero.npy", "--by", "by.csv:group", "--top-groups", "4")
    assert group_rows(everything.stdout)[1:] == (group_rows(invoke("mse", "x.npy", "zero.npy", "--by",
                                                                   "by.csv:group").stdout)[1:])


def test_json_lists_every_group_in_label_order_and_matches_the_schema(four):
    result = invoke("mse", "x.npy", "zero.npy", "--by", "by.csv:group", "--top-groups", "1", "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert document["groups"] == [{"group": "a", "count": 2, "value": 1.0}, {"group": "b", "count": 2, "value": "NaN"},
                                  {"group": "c", "count": 2, "value": 9.0}, {"group": "d", "count": 2, "value": 4.0}]


def test_each_group_gets_an_interval_around_its_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(600, 4)).astype(np.float32), rng.integers(0, 4, 600)
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "site.npy", rng.integers(0, 3, 600))
    for flag in (["--by", "site.npy"], ["--by-class"]):
        result = invoke("cross-entropy", "logits.npy", "labels.npy", *flag, "--ci", "0.9", "--resamples", "300",
                        "-f", "json")
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
        assert [g["group"] for g in document["groups"]] == ["0", "1", "2"] + (["3"] if flag == ["--by-class"] else [])
        for g in document["groups"]:
            ci = g["ci"]
            assert (ci["level"], ci["resamples"], ci["seed"]) == (0.9, 300, 0)
            assert ci["low"] < g["value"] < ci["high"], g
        table = invoke("cross-entropy", "logits.npy", "labels.npy", *flag, "--ci", "0.9", "--resamples", "300")
        assert "90% CI" in table.stdout


def bootstrap_reference(num: np.ndarray, den: np.ndarray, rows: np.ndarray, n: int, level: float,
                        resamples: int, seed: int) -> tuple[float, float]:
    """A group's bootstrap written out: resample r weighs sample i by weights(seed, 0, n, R)[i, r]; its statistic
    is the group's Σ w·num / Σ w·den, kept only where it drew some of the group (Σ w·den > 0)."""
    w = weights(seed, 0, n, resamples).astype(np.float64)[rows]
    top, bottom = w.T @ num, w.T @ den
    drawn = bottom > 0
    low, high = np.quantile(top[drawn] / bottom[drawn], [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def test_a_small_group_that_some_resamples_miss_still_gets_its_interval(tmp_path, monkeypatch):
    """Two samples of 300: about e**-2 of the resamples draw neither (those are left out); the interval is the
    bootstrap written out, and lies between the two samples' losses."""
    rng = np.random.default_rng(4)
    n, x, y = 300, rng.normal(size=300), rng.normal(size=300)
    labels = np.where(np.arange(n) % 2, "big", "other")
    labels[[40, 250]] = "small"
    result = losscli.compute("mse", x, y, by=labels, outputs=losscli.Outputs(ci=0.95, resamples=500, seed=9))
    small = {g.name: g for g in result.groups}["small"]
    losses = (x[[40, 250]] - y[[40, 250]]) ** 2
    assert small.count == 2 and math.isclose(small.value, losses.mean(), rel_tol=1e-15)
    assert losses.min() <= small.ci.low <= small.value <= small.ci.high <= losses.max()
    missed = weights(9, 0, n, 500)[[40, 250]].sum(axis=0) == 0
    assert 40 < missed.sum() < 100  # e**-2 of 500 is 68: resamples that drew none of it were there to leave out
    reference = bootstrap_reference(losses, np.ones(2), np.array([40, 250]), n, 0.95, 500, 9)
    np.testing.assert_allclose((small.ci.low, small.ci.high), reference, rtol=1e-12)
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "by.csv").write_text("\n".join(["label", *labels]) + "\n")
    line = invoke("mse", "x.npy", "y.npy", "--by", "by.csv:label", "--ci", "0.95", "--resamples", "500", "--seed", "9",
                  "-f", "json")
    found = {g["group"]: g for g in json.loads(line.stdout)["groups"]}["small"]["ci"]
    assert (found["low"], found["high"]) == (small.ci.low, small.ci.high)


def test_every_groups_interval_is_the_bootstrap_written_out():
    """Class-weighted cross-entropy by label: each group's Σ w·(weighted losses) / Σ w·(class weights)."""
    rng = np.random.default_rng(12)
    n, logits, target = 1500, rng.normal(size=(1500, 3)), rng.integers(0, 3, 1500)
    cw, labels = np.array([0.5, 1.0, 2.0]), rng.choice(["p", "q", "r"], 1500, p=[0.7, 0.25, 0.05])
    result = losscli.compute("cross-entropy", logits, target, weight=cw, by=labels,
                             outputs=losscli.Outputs(ci=0.8, resamples=400, seed=1),
                             streaming=losscli.Streaming(chunk_rows=100))
    losses = F.cross_entropy(t(logits), t(target), weight=t(cw), reduction="none").numpy()
    for g in result.groups:
        rows = np.flatnonzero(labels == g.name)
        want = bootstrap_reference(losses[rows], cw[target[rows]], rows, n, 0.8, 400, 1)
        np.testing.assert_allclose((g.ci.low, g.ci.high), want, rtol=1e-12)
