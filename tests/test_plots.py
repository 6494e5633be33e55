"""Plots: ``--plot FILE.png|.svg`` on a loss command and on ``losscli compare``, ``losscli check --plots DIR``.

What is drawn is checked where it can be read back: the PNG decodes; the SVG parses, and its elements carry
ids (the histogram's bars ``bin-I``, the groups' bars ``group-I``, the lines ``value``, ``zero``, ``margin``,
``difference``, the interval ``ci``) and its text is text. The numbers behind the bars are checked against
torch: the histogram a plot draws against torch's per-sample losses, the groups' order against torch on each
group's samples, a comparison's per-sample differences against torch's. Then the contract: the same input
gives the same bytes (whatever the chunks), a bad suffix or an input as the target is refused before any work
and writes nothing, and without matplotlib ``--plot`` says how to install it in one line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from markdown_it import MarkdownIt
from typer.testing import CliRunner

import losscli
from losscli.compare import compare
from losscli.edge import plots
from losscli.edge.cli import app
from losscli.engine.accumulators import Histogram
from losscli.reduction import Reduction
from tests.oracle import one_line_error

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
LOGITS = str(SAMPLES / "classification" / "logits.npy")
LABELS = str(SAMPLES / "classification" / "labels.csv")
PRED = str(SAMPLES / "regression" / "pred.npy")
TARGET = str(SAMPLES / "regression" / "target.npy")
SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})



def svg(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def ids(root: ET.Element, prefix: str) -> list[str]:
    return [e.get("id") for e in root.iter() if (e.get("id") or "").startswith(prefix)]


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def labels() -> np.ndarray:
    return np.loadtxt(LABELS, delimiter=",", skiprows=1, dtype=np.int64)


def torch_per_sample() -> np.ndarray:
    """Each sample's cross-entropy, by torch."""
    return F.cross_entropy(torch.from_numpy(np.load(LOGITS)), torch.from_numpy(labels()),
                           reduction="none").double().numpy()


# -- a loss -------------------------------------------------------------------------------------------------


def test_a_png_plot_is_a_png_that_decodes(tmp_path):
    out = tmp_path / "losses.png"
    result = invoke("cross-entropy", LOGITS, LABELS, "--plot", out, "-f", "plain")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "0.72960657\n"  # the output is what it is without --plot
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    image = imread(out)
    assert image.shape[:2] == (400, 700) and image.shape[2] in (3, 4)
    assert image.std() > 0  # something is drawn


def test_an_svg_plot_shows_the_loss_its_value_its_interval_and_a_bar_per_bin(tmp_path):
    out = tmp_path / "losses.svg"
    result = invoke("cross-entropy", LOGITS, LABELS, "--ci", "0.9", "--plot", out, "-f", "plain")
    assert result.exit_code == 0, result.stderr
    root = svg(out)
    assert root.tag == f"{SVG}svg"
    shown = texts(root)
    assert "cross-entropy (mean): 12 samples" in shown
    assert "mean 0.72960657" in shown  # the value as the command prints it, in the legend
    assert any(re.fullmatch(r"90% CI \[[\d.]+, [\d.]+\]", t) for t in shown), shown
    assert ids(root, "value") == ["value"] and ids(root, "ci") == ["ci"]
    hist = Histogram(Reduction.mean, plots.BINS)
    losscli.compute("cross-entropy", LOGITS, LABELS, streaming=losscli.Streaming(accumulators=[hist]))
    assert len(ids(root, "bin-")) == hist.finish().counts.size


def test_the_histogram_a_plot_draws_counts_torchs_per_sample_losses():
    hist = Histogram(Reduction.mean, plots.BINS)
    losscli.compute("cross-entropy", LOGITS, LABELS, streaming=losscli.Streaming(accumulators=[hist]))
    found = hist.finish()
    values = torch_per_sample()
    assert found.by_sample and (found.nan, found.inf) == (0, 0)
    assert plots.BINS // 2 <= found.counts.size <= plots.BINS
    assert found.edges[0] <= values.min() and values.max() < found.edges[-1]
    expected = np.bincount(np.searchsorted(found.edges, values, side="right") - 1, minlength=found.counts.size)
    np.testing.assert_array_equal(found.counts, expected)  # bins [lower, upper)


def test_the_same_input_gives_the_same_bytes_whatever_the_chunks(tmp_path):
    for fmt in ("png", "svg"):
        made = []
        for i in range(2):
            out = tmp_path / f"run{i}.{fmt}"
            assert invoke("cross-entropy", LOGITS, LABELS, "--ci", "0.9", "--plot", out).exit_code == 0
            made.append(out.read_bytes())
        assert made[0] == made[1]
        drawn = []
        for rows in (None, 1, 5):
            hist = plots.sample_histogram(Reduction.mean)
            result = losscli.compute("cross-entropy", LOGITS, LABELS, outputs=losscli.Outputs(ci=0.9),
                                     streaming=losscli.Streaming(chunk_rows=rows, accumulators=[hist]))
            drawn.append(plots.loss_plot(result, hist.finish(), fmt))
        assert drawn == [made[0]] * 3


def test_no_date_in_either_format(tmp_path):
    for fmt in ("png", "svg"):
        out = tmp_path / f"p.{fmt}"
        assert invoke("mse", PRED, TARGET, "--plot", out).exit_code == 0
        data = out.read_bytes()
        assert b"tIME" not in data and b"<dc:date>" not in data and b"Date" not in data


def test_nan_is_noted_not_drawn_and_a_row_with_nothing_selected_is_left_out(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]]))
    np.save(tmp_path / "y.npy", np.zeros((4, 2)))
    np.save(tmp_path / "m.npy", np.array([[True, True], [True, False], [False, False], [True, True]]))
    out = tmp_path / "p.svg"
    result = invoke("mse", tmp_path / "x.npy", tmp_path / "y.npy", "--mask", tmp_path / "m.npy", "--plot", out)
    assert result.exit_code == 0, result.stderr
    root = svg(out)
    # rows 0 and 1: (1 + 4) / 2 = 2.5 and 9 / 1 = 9; row 2 has nothing selected (not a sample of the
    # histogram, as --hist --per-sample counts); row 3 is NaN
    assert "mse (mean): 3 samples" in texts(root)
    assert any("NaN 1 · ±inf 0 (not in the bins)" in t for t in texts(root)), texts(root)
    assert len(ids(root, "bin-")) >= 2 and ids(root, "value") == []  # the value is NaN: no line


def test_reduction_none_draws_the_elements(tmp_path):
    out = tmp_path / "p.svg"
    assert invoke("mse", PRED, TARGET, "-r", "none", "--plot", out, "-f", "plain").exit_code == 0
    root = svg(out)
    assert "mse (none): 32 elements" in texts(root) and "loss per element" in texts(root)
    assert ids(root, "value") == []  # no single value to mark


# -- groups -------------------------------------------------------------------------------------------------


def group_names(root: ET.Element) -> list[str]:
    """The y axis's labels, top to bottom."""
    ticks = sorted((e for e in root.iter() if (e.get("id") or "").startswith("ytick_")),
                   key=lambda e: int(e.get("id").split("_")[1]))
    return ["".join(t.itertext()) for tick in ticks for t in tick.iter(f"{SVG}text")]


def test_by_class_draws_a_bar_per_class_worst_first_with_intervals(tmp_path):
    out = tmp_path / "groups.svg"
    result = invoke("cross-entropy", LOGITS, LABELS, "--by-class", "--ci", "0.9", "--plot", out, "-f", "plain")
    assert result.exit_code == 0, result.stderr
    root = svg(out)
    y, per_sample = labels(), torch_per_sample()
    classes = np.unique(y)
    assert len(ids(root, "group-")) == len(classes)
    by_torch = {str(c): per_sample[y == c].mean() for c in classes}  # each class's samples alone
    assert group_names(root) == sorted(by_torch, key=lambda c: -by_torch[c])
    assert ids(root, "intervals") == ["intervals"] and ids(root, "value") == ["value"]
    assert any(t.startswith("cross-entropy (mean) by group: 5 groups") for t in texts(root))


def test_group_names_show_as_typed(tmp_path):
    """Labels from a file are text: ``$`` is no TeX, a long one is cut, and each group has its bar."""
    np.save(tmp_path / "x.npy", np.array([1.0, 2.0, 3.0, 4.0]))
    np.save(tmp_path / "y.npy", np.zeros(4))
    (tmp_path / "by.csv").write_text("group\n$x^$\n$x^$\n" + "w" * 40 + "\n_{a}\n")
    out = tmp_path / "groups.svg"
    result = invoke("mse", tmp_path / "x.npy", tmp_path / "y.npy", "--by", tmp_path / "by.csv", "--plot", out)
    assert result.exit_code == 0, result.stderr
    # the groups' mse: $x^$ (1 + 4) / 2 = 2.5, www... 9, _{a} 16
    assert group_names(svg(out)) == ["_{a}", "w" * 29 + "…", "$x^$"]


def test_top_groups_draws_that_many(tmp_path):
    out = tmp_path / "groups.svg"
    assert invoke("cross-entropy", LOGITS, LABELS, "--by-class", "--top-groups", "2", "--plot", out).exit_code == 0
    root = svg(out)
    assert len(ids(root, "group-")) == 2 and ids(root, "intervals") == []
    assert any("5 groups (the worst 2)" in t for t in texts(root))


# -- compare ------------------------------------------------------------------------------------------------


def test_compare_draws_the_differences_with_zero_the_margin_and_the_interval(tmp_path):
    out = tmp_path / "cmp.svg"
    result = invoke("compare", "mse", PRED, TARGET, TARGET, "--margin", "0.1", "--resamples", "200", "--plot", out)
    assert result.exit_code == 0, result.stderr
    root = svg(out)
    for gid in ("zero", "margin", "difference", "ci", "sample-zero"):
        assert ids(root, gid) == [gid], gid
    assert any(t.startswith("mse (mean): new - base -0.255578, better") for t in texts(root))
    assert len(ids(root, "bin-")) > plots.BINS  # two panels


def test_a_comparisons_per_sample_differences_are_torchs():
    found = compare("mse", PRED, TARGET, TARGET, resamples=100, per_sample=True)
    pred, target = (torch.from_numpy(np.load(p)) for p in (PRED, TARGET))
    base = F.mse_loss(pred, target, reduction="none").double().mean(dim=1).numpy()
    np.testing.assert_allclose(found.per_sample, 0.0 - base, rtol=1e-6)
    assert found.differences.shape == (100,)
    assert (found.low, found.high) == tuple(np.quantile(found.differences, [(1 - found.level) / 2,
                                                                           (1 + found.level) / 2]))


def test_past_the_limit_a_comparison_keeps_no_per_sample_differences(monkeypatch, tmp_path):
    import losscli.compare as module

    monkeypatch.setattr(module, "PAIRED_LIMIT", 3)
    found = compare("mse", PRED, TARGET, TARGET, resamples=100, per_sample=True,
                    streaming=losscli.Streaming(chunk_rows=2))
    assert found.per_sample is None
    out = tmp_path / "cmp.svg"
    out.write_bytes(plots.comparison_plot(found, "svg"))
    assert ids(svg(out), "sample-zero") == [] and ids(svg(out), "zero") == ["zero"]


# -- refusals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p.pdf", "p.jpg", "p", "p.png.txt"])
def test_a_bad_suffix_is_one_line_before_any_work_and_writes_nothing(tmp_path, name):
    before = sorted(os.listdir(tmp_path))
    result = invoke("mse", tmp_path / "missing.npy", tmp_path / "missing.npy", "--plot", tmp_path / name)
    line = one_line_error(result)  # not the missing input: the plot is checked first
    assert line == f"error: --plot ({tmp_path / name}): expected a .png or .svg file name, but got another extension"
    assert sorted(os.listdir(tmp_path)) == before
    line = one_line_error(invoke("compare", "mse", PRED, PRED, TARGET, "--plot", tmp_path / name))
    assert line.startswith(f"error: --plot ({tmp_path / name}): expected a .png or .svg file name")


def test_a_plot_onto_an_input_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.array([1.0, 2.0]))
    np.save(tmp_path / "b.npy", np.array([1.0, 3.0]))
    (tmp_path / "a.png").symlink_to(tmp_path / "a.npy")
    before = (tmp_path / "a.npy").read_bytes()
    line = one_line_error(invoke("mse", tmp_path / "a.npy", tmp_path / "b.npy", "--plot", tmp_path / "a.png"))
    assert line == (f"error: --plot ({tmp_path / 'a.png'}): expected a file to write, but got one of the inputs "
                    f"({tmp_path / 'a.npy'}); losscli never writes over its inputs")
    line = one_line_error(invoke("compare", "mse", tmp_path / "b.npy", tmp_path / "a.npy", tmp_path / "b.npy",
                                 "--plot", tmp_path / "a.png"))
    assert "never writes over its inputs" in line
    assert (tmp_path / "a.npy").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "a.png", "b.npy"]  # no temporary file left


def test_a_plot_and_another_output_on_one_file_are_refused(tmp_path):
    (tmp_path / "x.png").symlink_to(tmp_path / "x.npy")  # one file under two names
    line = one_line_error(invoke("mse", PRED, TARGET, "--grad", tmp_path / "x.npy", "--plot", tmp_path / "x.png"))
    assert line == (f"error: --plot ({tmp_path / 'x.png'}): expected a file to write, but got the file of --grad "
                    f"({tmp_path / 'x.npy'}); losscli never writes over its inputs")


WITHOUT_MATPLOTLIB = ("import sys; sys.modules['matplotlib'] = None\n"  # importing matplotlib now raises
                      "from losscli.edge.main import entry\n"
                      "sys.argv = ['losscli', *sys.argv[1:]]\n"
                      "entry()\n")


@pytest.mark.parametrize("args, where", [
    (["mse", PRED, TARGET, "--plot", "p.png"], "--plot (p.png)"),
    (["compare", "mse", PRED, PRED, TARGET, "--plot", "p.svg"], "--plot (p.svg)"),
    (["check", str(SAMPLES / "gates.toml"), "--plots", "plots"], "--plots (plots)"),
])
def test_without_matplotlib_a_plot_says_how_to_install_it(tmp_path, args, where):
    done = subprocess.run([sys.executable, "-c", WITHOUT_MATPLOTLIB, *args], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: {where}: expected matplotlib to draw plots, but it is not installed: "
                                   "pip install 'losscli[plot]'")
    assert done.stdout == "" and os.listdir(tmp_path) == []


def test_histogram_bins_are_checked():
    for bins in (1, 0, True, 2.5):
        with pytest.raises(losscli.OptionError, match="bins: expected a count of 2 or more"):
            Histogram(None, bins)


# -- losscli check --plots ----------------------------------------------------------------------------------


def links(markdown: Path) -> list[str]:
    html = MarkdownIt("commonmark").enable(["table"]).render(markdown.read_text())
    return re.findall(r'<a href="([^"]*)">plot</a>', html)


def test_check_writes_a_plot_per_check_and_the_markdown_links_them(tmp_path):
    (tmp_path / "samples").symlink_to(SAMPLES)
    (tmp_path / "out").mkdir()
    result = CliRunner().invoke(app, ["check", "samples/gates.toml", "--plots", str(tmp_path / "out" / "plots"),
                                      "--markdown", str(tmp_path / "out" / "summary.md")])
    assert result.exit_code == 0, result.stderr
    names = ["classifier", "classifier-smoothed-kept-rows", "regression", "multi-label", "ranking", "uncertainty",
             "retrained-classifier"]
    assert sorted(os.listdir(tmp_path / "out" / "plots")) == sorted(f"{n}.png" for n in names)
    for name in names:
        assert (tmp_path / "out" / "plots" / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert links(tmp_path / "out" / "summary.md") == [f"plots/{n}.png" for n in names]


def test_a_checks_plot_marks_its_value_and_bounds(data):
    (data / "gates.toml").write_text('[[check]]\nname = "a b/c"\nloss = "l1"\ninput = "input.npy"\n'
                                     'target = "target.npy"\nmax = 1\nmin = 0.5\n')
    svg_bytes = _one_check_svg(data)
    root = ET.fromstring(svg_bytes)
    assert ids(root, "value") == ["value"] and ids(root, "bound-max") == ["bound-max"]
    assert ids(root, "bound-min") == ["bound-min"]
    assert "a b/c: l1 0.75 (pass)" in texts(root) and "max 1" in texts(root)
    # |1 - 1.5| and |2 - 3|: the two samples 0.5 and 1.0, each in a bin
    assert len(ids(root, "bin-")) >= 2


def _one_check_svg(folder: Path) -> bytes:
    run = losscli.check(str(folder / "gates.toml"), hist_bins=plots.BINS)
    (outcome,) = run.outcomes
    assert outcome.hist.counts.sum() == 2
    return plots.check_plot(outcome, "svg")


def test_check_plots_leave_out_checks_without_a_value_and_link_only_beside_the_markdown(data):
    (data / "gates.toml").write_text(
        '[[check]]\nname = "ok"\nloss = "l1"\ninput = "input.npy"\ntarget = "target.npy"\nmax = 1\n\n'
        '[[check]]\nname = "OK"\nloss = "l1"\ninput = "input.npy"\ntarget = "target.npy"\nmax = 1\n\n'
        '[[check]]\nname = "missing"\nloss = "l1"\ninput = "nope.npy"\ntarget = "target.npy"\nmax = 1\n\n'
        '[[check]]\nname = "left out"\nloss = "l1"\ninput = "input.npy"\ntarget = "target.npy"\nmax = 1\n')
    (data / "md").mkdir()
    result = invoke("check", data / "gates.toml", "--skip", "left out", "--plots", data / "plots",
                    "--markdown", data / "md" / "m.md")
    assert result.exit_code == 2  # the missing input
    assert sorted(os.listdir(data / "plots")) == ["OK-2.png", "ok.png"]  # one file each, whatever the case
    summary = (data / "md" / "m.md").read_text()
    assert links(data / "md" / "m.md") == [] and "| plot |" not in summary  # the plots are not beside it
    result = invoke("check", data / "gates.toml", "--skip", "left out", "--plots", data / "md",
                    "--markdown", data / "md" / "m.md")
    assert result.exit_code == 2
    assert links(data / "md" / "m.md") == ["ok.png", "OK-2.png"]
    rows = [line for line in (data / "md" / "m.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[0].endswith("| status | plot |")
    assert [row.rsplit("|", 2)[1].strip() for row in rows[3:]] == ["—", "—"]  # no plot: an error, left out


def test_check_plots_onto_an_input_or_a_file_are_refused_before_any_work(data):
    (data / "gates.toml").write_text('[[check]]\nname = "input"\nloss = "l1"\ninput = "input.npy"\n'
                                     'target = "target.npy"\nmax = 1\n')
    (data / "input.png").symlink_to(data / "input.npy")
    line = one_line_error(invoke("check", data / "gates.toml", "--plots", data))
    assert line == (f"error: --plots ({data / 'input.png'}): expected a file to write, but got one of the inputs "
                    f"({data / 'input.npy'}); losscli never writes over its inputs")
    line = one_line_error(invoke("check", data / "gates.toml", "--plots", data / "gates.toml"))
    assert line == f"error: --plots ({data / 'gates.toml'}): expected a folder to write into, but got a file"


def test_file_names_of_checks():
    assert plots.file_names(["a b/c", "a-b-c", "..", "", "Ünï", "x" * 200], "png") == [
        "a-b-c.png", "a-b-c-2.png", "check.png", "check-2.png", "n.png", "x" * 100 + ".png"]
