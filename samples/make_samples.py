"""Write the sample inputs (into this folder, or the folder given). Deterministic: the same bytes on
every run.

    python samples/make_samples.py [OUT_DIR]
"""

from __future__ import annotations

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


def margin(root: Path, rng: np.random.Generator) -> None:
    """Margin, ranking and embedding losses."""


def sequence(root: Path, rng: np.random.Generator) -> None:
    """ctc, linear-cross-entropy."""


def main(root: Path) -> None:
    rng = np.random.default_rng(20261123)
    regression(root, rng)
    classification(root, rng)
    binary(root, rng)
    mask_example(root)
    # each later group draws from its own generator, so adding one leaves the others' bytes alone
    for seed, group in enumerate((divergence, margin, sequence), start=1):
        group(root, np.random.default_rng([20261123, seed]))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
