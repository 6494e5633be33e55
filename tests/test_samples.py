"""samples/ is what samples/make_samples.py writes, byte for byte."""

from __future__ import annotations

import runpy
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_samples_are_reproducible(tmp_path):
    runpy.run_path(str(SAMPLES / "make_samples.py"))["main"](tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file() and p.suffix != ".py")
    assert written == shipped
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (SAMPLES / rel).read_bytes(), rel
