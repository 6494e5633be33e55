"""Write the sample inputs (into this folder, or the folder given). Deterministic: the same bytes on
every run.

    python samples/make_samples.py [OUT_DIR]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    rows = zip(*(columns[n] for n in names))
    lines = [",".join(names)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def regression(root: Path, rng: np.random.Generator) -> None:
    out = root / "regression"
    out.mkdir(exist_ok=True)
    target = rng.normal(size=(8, 4)).astype(np.float32)
    pred = (target + rng.normal(scale=0.5, size=(8, 4))).astype(np.float32)
    np.save(out / "pred.npy", pred)
    np.save(out / "target.npy", target)
    np.save(out / "weight.npy", rng.uniform(0.5, 2.0, size=(8, 1)).astype(np.float32))  # one weight per row
    np.save(out / "mask.npy", rng.random((8, 4)) > 0.25)
    np.savetxt(out / "pred.csv", pred, delimiter=",", fmt="%.6f")
    np.savetxt(out / "target.csv", target, delimiter=",", fmt="%.6f")
    # predictions and labels as columns of one file: losscli mse results.csv:pred results.csv:label
    write_csv(out / "results.csv", {"id": np.arange(8), "pred": np.round(pred[:, 0], 4),
                                    "label": np.round(target[:, 0], 4)})
    # the same, gzip-compressed (mtime 0 and no name inside, so that the bytes are the same on every run)
    (out / "results.csv.gz").write_bytes(gzip.compress((out / "results.csv").read_bytes(), mtime=0))


def classification(root: Path, rng: np.random.Generator) -> None:
    out = root / "classification"
    out.mkdir(exist_ok=True)
    n, c = 12, 5
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c)).astype(np.float32)
    logits[np.arange(n), labels] += 1.5  # a model that is right more often than not
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    soft = np.full((n, c), 0.05, dtype=np.float32)
    soft[np.arange(n), labels] = 1 - 0.05 * (c - 1)
    np.save(out / "logits.npy", logits)
    np.save(out / "log_probs.npy", log_probs.astype(np.float32))
    np.save(out / "soft_targets.npy", soft)
    np.save(out / "class_weight.npy", np.array([1.0, 2.0, 1.0, 0.5, 1.0], dtype=np.float32))
    write_csv(out / "labels.csv", {"label": labels})
    write_csv(out / "mask.csv", {"keep": (rng.random(n) > 0.2).astype(int)})
    # a segmentation-style K-dimensional case: (N, C, H, W) logits and (N, H, W) labels
    np.save(out / "seg_logits.npy", rng.normal(size=(2, 3, 4, 4)).astype(np.float32))
    np.save(out / "seg_labels.npy", rng.integers(0, 3, size=(2, 4, 4)))


def binary(root: Path, rng: np.random.Generator) -> None:
    out = root / "binary"
    out.mkdir(exist_ok=True)
    targets = (rng.random((10, 3)) > 0.6).astype(np.float32)
    logits = (rng.normal(size=(10, 3)) + 2 * (targets - 0.5)).astype(np.float32)
    np.save(out / "targets.npy", targets)
    np.save(out / "logits.npy", logits)
    np.save(out / "probs.npy", (1 / (1 + np.exp(-logits))).astype(np.float32))
    np.save(out / "weight.npy", np.array([1.0, 0.5, 2.0], dtype=np.float32))  # per label, broadcast over rows
    np.save(out / "pos_weight.npy", np.array([3.0, 1.0, 1.5], dtype=np.float32))
    np.savetxt(out / "probs.csv", np.load(out / "probs.npy"), delimiter=",", fmt="%.6f")
    np.savetxt(out / "targets.csv", targets, delimiter=",", fmt="%d")


def mask_example(root: Path) -> None:
    """The README's worked example: a masked mean divides by the selected elements."""
    out = root / "mask_example"
    out.mkdir(exist_ok=True)
    np.savetxt(out / "input.csv", [[1, 2, 3], [4, 5, 6]], delimiter=",", fmt="%d")
    np.savetxt(out / "target.csv", [[2, 3, 4], [3, 4, 5]], delimiter=",", fmt="%d")
    np.savetxt(out / "mask.csv", [[1, 0, 1], [0, 1, 1]], delimiter=",", fmt="%d")


def divergence(root: Path, rng: np.random.Generator) -> None:
    """kl-div, poisson-nll, gaussian-nll."""
    out = root / "divergence"
    out.mkdir(exist_ok=True)
    # kl-div: a model's log-probabilities over 5 outcomes against target distributions (one with a 0)
    n, c = 8, 5
    logits = rng.normal(size=(n, c))
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    target = np.exp(logits + rng.normal(scale=0.5, size=(n, c)))
    target /= target.sum(axis=1, keepdims=True)
    np.save(out / "target_log_probs.npy", np.log(target).astype(np.float32))  # for --log-target
    target[0, 0] = 0.0  # 0·log 0 counts 0
    target[0] /= target[0].sum()
    np.save(out / "log_probs.npy", log_probs.astype(np.float32))
    np.save(out / "target_probs.npy", target.astype(np.float32))
    # poisson-nll: log-rates, rates (for --no-log-input) and counts as columns of one CSV
    log_rate = rng.normal(1.0, 0.5, size=10)
    count = rng.poisson(np.exp(log_rate))
    write_csv(out / "counts.csv", {"log_rate": np.round(log_rate, 4), "rate": np.round(np.exp(log_rate), 4),
                                   "count": count})
    # gaussian-nll: predicted means and variances of 3 quantities, and what was observed
    mean = rng.normal(size=(6, 3))
    var = rng.uniform(0.2, 2.0, size=(6, 3))
    observed = mean + rng.normal(size=(6, 3)) * np.sqrt(var)
    np.save(out / "mean.npy", mean.astype(np.float32))
    np.save(out / "observed.npy", observed.astype(np.float32))
    np.save(out / "var.npy", var.astype(np.float32))
    np.save(out / "var_per_row.npy", var.mean(axis=1).astype(np.float32))  # one variance per row: (6,)


def margin(root: Path, rng: np.random.Generator) -> None:
    """Margin, ranking and embedding losses."""
    out = root / "margin"
    out.mkdir(exist_ok=True)
    # margin-ranking, soft-margin: scores of 10 items, and whether the first should rank above (1) or not (-1)
    rank_target = np.where(rng.random(10) > 0.5, 1, -1)
    scores2 = rng.normal(size=10).astype(np.float32)
    scores1 = (scores2 + 0.8 * rank_target + rng.normal(scale=0.7, size=10)).astype(np.float32)
    np.save(out / "scores1.npy", scores1)
    np.save(out / "scores2.npy", scores2)
    write_csv(out / "rank_target.csv", {"target": rank_target})
    # hinge-embedding, cosine-embedding: 10 pairs of 8-dim embeddings, similar (1) or dissimilar (-1)
    pair_target = np.where(rng.random(10) > 0.4, 1, -1)
    emb1 = rng.normal(size=(10, 8))
    emb2 = np.where(pair_target[:, None] == 1, emb1 + rng.normal(scale=0.5, size=(10, 8)), rng.normal(size=(10, 8)))
    np.save(out / "emb1.npy", emb1.astype(np.float32))
    np.save(out / "emb2.npy", emb2.astype(np.float32))
    np.save(out / "distances.npy", np.linalg.norm(emb1 - emb2, axis=1).astype(np.float32))
    np.save(out / "pair_target.npy", pair_target)
    write_csv(out / "pair_target.csv", {"target": pair_target})
    # multi-margin, multilabel-(soft-)margin: 8 samples, 5 classes
    n, c = 8, 5
    multi_hot = (rng.random((n, c)) > 0.6).astype(np.int64)
    multi_hot[np.arange(n), rng.integers(0, c, size=n)] = 1  # every sample has a label
    scores = (rng.normal(size=(n, c)) + 1.5 * multi_hot).astype(np.float32)
    lists = np.full((n, c), -1, dtype=np.int64)  # each row's classes, then -1 padding
    for row, hot in enumerate(multi_hot):
        listed = np.flatnonzero(hot)
        lists[row, : listed.size] = rng.permutation(listed)
    labels = np.array([rng.choice(np.flatnonzero(hot)) for hot in multi_hot])
    np.save(out / "class_scores.npy", scores)
    np.save(out / "multi_hot.npy", multi_hot)
    np.save(out / "label_lists.npy", lists)
    np.save(out / "class_weight.npy", np.array([1.0, 2.0, 0.5, 1.0, 1.5], dtype=np.float32))
    write_csv(out / "labels.csv", {"label": labels})
    write_csv(out / "sample_mask.csv", {"keep": (rng.random(n) > 0.25).astype(int)})
    # triplet-margin(-with-distance): 12 triplets of 6-dim embeddings
    anchor = rng.normal(size=(12, 6))
    np.save(out / "anchor.npy", anchor.astype(np.float32))
    np.save(out / "positive.npy", (anchor + rng.normal(scale=0.4, size=(12, 6))).astype(np.float32))
    np.save(out / "negative.npy", (anchor + rng.normal(scale=1.2, size=(12, 6))).astype(np.float32))


def sequence(root: Path, rng: np.random.Generator) -> None:
    """ctc, linear-cross-entropy."""
    out = root / "sequence"
    out.mkdir(exist_ok=True)
    # ctc: 3 utterances of up to 12 frames over 5 classes (0 is the blank); targets padded with 0
    frames, n, c = 12, 3, 5
    targets = np.array([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 1, 0]])  # 2, 2 and 3, 3 need a blank between
    target_lengths = np.array([4, 2, 3])
    input_lengths = np.array([12, 7, 10])
    scores = rng.normal(size=(frames, n, c))
    shifted = scores - scores.max(axis=2, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    np.save(out / "log_probs.npy", log_probs.astype(np.float32))
    write_csv(out / "targets.csv", {f"l{j}": targets[:, j] for j in range(targets.shape[1])})
    np.save(out / "targets_concat.npy", np.concatenate([t[:k] for t, k in zip(targets, target_lengths)]))
    write_csv(out / "lengths.csv", {"input": input_lengths, "target": target_lengths})
    # linear-cross-entropy: 6 hidden states (H = 8) against a vocabulary of 50 tokens
    hidden, vocab = rng.normal(size=(6, 8)), 50
    np.save(out / "hidden.npy", hidden.astype(np.float32))
    np.save(out / "vocab_weight.npy", (rng.normal(size=(vocab, 8)) / np.sqrt(8)).astype(np.float32))
    np.save(out / "vocab_bias.npy", rng.normal(scale=0.1, size=vocab).astype(np.float32))
    write_csv(out / "next_tokens.csv", {"token": rng.integers(0, vocab, size=6)})


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """A .safetensors file without the safetensors package: the header's length (8 bytes, little-endian), its
    JSON (names sorted, padded with spaces to a multiple of 8, as the package pads it), then each tensor's
    little-endian bytes in that order. ``tensors`` maps a name to (safetensors dtype, array of its bytes)."""
    header, data, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, array = tensors[name]
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        data.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(data))


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), as its uint16 bits (finite values)."""
    bits = values.astype("<f4").view("<u4").astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def tensors(root: Path, rng: np.random.Generator) -> None:
    """A .safetensors file as a model's evaluation might save it: bfloat16 logits and int64 labels."""
    out = root / "tensors"
    out.mkdir(exist_ok=True)
    n, c = 8, 4
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c)).astype(np.float32)
    logits[np.arange(n), labels] += 1.0
    write_safetensors(out / "outputs.safetensors", {"logits": ("BF16", bfloat16_bits(logits)),
                                                     "labels": ("I64", labels.astype("<i8"))})

def columnar(root: Path) -> None:
    """classification/eval.parquet: the classification logits (a column of fixed-size lists) and labels, in row
    groups of 5 rows. Uncompressed, without statistics; the footer names the pyarrow version that wrote it
    (constraints.txt pins it, so that the bytes are reproducible)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = root / "classification"
    logits = np.load(out / "logits.npy")
    labels = np.loadtxt(out / "labels.csv", skiprows=1, dtype=np.int64)
    table = pa.table({"id": np.arange(len(labels)), "label": labels,
                      "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), logits.shape[1])})
    pq.write_table(table, out / "eval.parquet", row_group_size=5, compression="none", write_statistics=False)


GATES = """\
# Quality gates on the sample predictions: losscli check samples/gates.toml
# Files are relative to this file. Each [[check]] names a loss, its files, options and bounds.

[[check]]
name = "classifier"
loss = "cross-entropy"
input = "classification/logits.npy"
target = "classification/labels.csv"
max = 0.8
max_increase_pct = 5            # against --baseline: at most 5% above the last accepted run

[[check]]
name = "classifier, smoothed, kept rows"
loss = "cross-entropy"
input = "classification/logits.npy"
target = "classification/labels.csv:label"
mask = "classification/mask.csv:keep"
label_smoothing = 0.1
max = 1.0

[[check]]
name = "regression"
loss = "huber"
input = "regression/pred.npy"
target = "regression/target.npy"
mask = "regression/mask.npy"
delta = 0.5
max_increase = 0.01             # against --baseline: at most 0.01 above the last accepted run

[[check]]
name = "multi-label"
loss = "bce-with-logits"
input = "binary/logits.npy"
target = "binary/targets.npy"
pos_weight = "binary/pos_weight.npy"
max = 0.6

[[check]]
name = "ranking"
loss = "margin-ranking"
files = ["margin/scores1.npy", "margin/scores2.npy", "margin/rank_target.csv"]  # torch's order
margin = 0.1
min = 0.0
max = 0.2

[[check]]
name = "uncertainty"
loss = "gaussian-nll"
files = ["divergence/mean.npy", "divergence/observed.npy", 0.5]  # var: one number for every element
max = 1.0

[[check]]
name = "retrained classifier"
loss = "cross-entropy"
input = "statistics/retrained.npy"
target = "statistics/eval.csv:label"
compare_to = "statistics/accepted.npy"  # a paired test: fails only on an increase significantly above 1%
max_increase_pct = 1
by = "statistics/eval.csv:language"     # max applies to each language too
max = 2.0
ci = 0.95                               # an interval of the value in the report
"""


STATISTICS_GATES = """\
# The worked CI example of docs/statistics.md: two candidates against the accepted model, on 2000 samples.
# max_increase_pct is a paired test here (compare_to): a check fails only when the increase is significantly
# more than 1% of the accepted model's loss, not when noise makes the candidate's loss a little higher.

[[check]]
name = "retrained"              # as good as the accepted model: its loss differs by noise (+1.4%)
loss = "cross-entropy"
input = "retrained.npy"
target = "eval.csv:label"
compare_to = "accepted.npy"
max_increase_pct = 1

[[check]]
name = "regressed"              # really worse (+10%)
loss = "cross-entropy"
input = "regressed.npy"
target = "eval.csv:label"
compare_to = "accepted.npy"
max_increase_pct = 1
"""


def statistics(root: Path, rng: np.random.Generator) -> None:
    """Issue 13: an accepted model, one retrained as good as it, one really worse, on 2000 samples whose classes
    are drawn from known probabilities; each sample's language, for slices."""
    out = root / "statistics"
    out.mkdir(exist_ok=True)
    n, c = 2000, 10
    z = rng.normal(scale=1.5, size=(n, c))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    for name, scale in (("accepted", 0.8), ("retrained", 0.8), ("regressed", 1.1)):
        np.save(out / f"{name}.npy", (z + rng.normal(scale=scale, size=(n, c))).astype(np.float32))
    language = np.array(["de", "en", "fr"])[rng.choice(3, size=n, p=[0.3, 0.5, 0.2])]
    with open(out / "eval.csv", "w", newline="") as f:
        f.write("label,language\n")
        f.writelines(f"{label},{lang}\n" for label, lang in zip(labels, language))
    (out / "gates.toml").write_text(STATISTICS_GATES)


def gates(root: Path) -> None:
    """The gate file, and the report of an earlier accepted run (before two checks were added) to use as
    --baseline. Its values are that run's, not today's."""
    (root / "gates.toml").write_text(GATES)

    def check(name: str, loss: str, torch: str, files: dict[str, str], parameters: dict, bounds: dict,
              value: float) -> dict:
        inputs = [{"role": role, "file": file, "sha256": hashlib.sha256((root / file).read_bytes()).hexdigest()}
                  for role, file in files.items()]
        return {"name": name, "loss": loss, "torch": f"torch.nn.functional.{torch}", "reduction": "mean",
                "backend": "numpy", "inputs": inputs, "parameters": parameters, "bounds": bounds, "value": value,
                "dtype": "float32", "baseline": None, "delta": None, "status": "pass", "message": None}

    checks = [
        check("classifier", "cross-entropy", "cross_entropy",
              {"input": "classification/logits.npy", "target": "classification/labels.csv"},
              {"ignore_index": -100, "label_smoothing": 0.0, "target_kind": "auto"},
              {"max": 0.8, "max_increase_pct": 5.0}, 0.7102),
        check("regression", "huber", "huber_loss",
              {"input": "regression/pred.npy", "target": "regression/target.npy", "mask": "regression/mask.npy"},
              {"delta": 0.5}, {"max_increase": 0.01}, 0.1231),
        check("multi-label", "bce-with-logits", "binary_cross_entropy_with_logits",
              {"input": "binary/logits.npy", "target": "binary/targets.npy", "pos_weight": "binary/pos_weight.npy"},
              {}, {"max": 0.6}, 0.5209),
        check("ranking", "margin-ranking", "margin_ranking_loss",
              {"input1": "margin/scores1.npy", "input2": "margin/scores2.npy", "target": "margin/rank_target.csv"},
              {"margin": 0.1}, {"min": 0.0, "max": 0.2}, 0.1102),
    ]
    report = {"schema_version": 1, "tool": {"name": "losscli", "version": "0.1.0"}, "created": "2026-11-20T08:30:00Z",
              "gate_file": "samples/gates.toml", "baseline": None, "verdict": "pass", "exit_code": 0,
              "summary": {"checks": 4, "passed": 4, "failed": 0, "errors": 0, "skipped": 0, "without_baseline": 2},
              "checks": checks}
    (root / "baseline.json").write_text(json.dumps(report, indent=2) + "\n")


def main(root: Path) -> None:
    rng = np.random.default_rng(20261123)
    regression(root, rng)
    classification(root, rng)
    binary(root, rng)
    mask_example(root)
    # each later group draws from its own generator, so adding one leaves the others' bytes alone
    for seed, group in enumerate((divergence, margin, sequence), start=1):
        group(root, np.random.default_rng([20261123, seed]))
    tensors(root, np.random.default_rng([20261123, 11, 2]))  # issue 11, item 2: tensor files
    statistics(root, np.random.default_rng([20261123, 13, 7]))  # issue 13: confidence intervals, compare, slices

    columnar(root)
    gates(root)  # last: the baseline records the sha256 of files written above


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
