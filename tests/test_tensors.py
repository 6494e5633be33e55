"""Tensor files: ``.safetensors`` (losscli's own parser, rows by pread) and ``.pt``/``.pth`` (torch.load with
weights_only). Files are written by the libraries users use: ``safetensors.numpy.save_file``,
``safetensors.torch.save_file`` and ``torch.save``; expected values come from torch.nn.functional on the
same arrays. Hostile files are written byte by byte."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
from typer.testing import CliRunner

import losscli
from losscli.edge.cli import app
from losscli.errors import InputError
from losscli.io import Loader
from losscli.io.tensors import PtRows, TensorRows, bf16_to_float32

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
RNG = np.random.default_rng(11)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def value(loss: str, *specs: str, backend: str = "numpy", **options) -> np.ndarray:
    return np.asarray(losscli.compute(loss, *specs, backend=backend, **options).value)


def assert_torch(got: np.ndarray, want: torch.Tensor) -> None:
    want = want.detach().numpy()
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def refusal(*args: object) -> str:
    """The one line a command prints when it refuses its input (exit 2)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    return lines[0]


def load_error(spec: str) -> str:
    with pytest.raises(InputError) as info:
        Loader().load(spec, role="input").rows.read(0, 1)
    assert "\n" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ every family, values against torch


def test_regression_mse_from_safetensors_numpy(tmp_path):
    pred, target = RNG.normal(size=(9, 4)).astype(np.float32), RNG.normal(size=(9, 4)).astype(np.float32)
    save_numpy({"pred": pred, "target": target, "half": pred.astype(np.float16)}, str(tmp_path / "r.safetensors"))
    f = tmp_path / "r.safetensors"
    for backend in ("numpy", "torch"):
        assert_torch(value("mse", f"{f}:pred", f"{f}:target", backend=backend), F.mse_loss(t(pred), t(target)))
    # float16 with float32: promoted to float32, as torch promotes
    assert_torch(value("mse", f"{f}:half", f"{f}:target"), F.mse_loss(t(pred.astype(np.float16)).float(), t(target)))


def test_classification_cross_entropy_from_bf16_safetensors_and_pt_labels(tmp_path):
    logits = torch.from_numpy(RNG.normal(size=(16, 5)).astype(np.float32)).bfloat16()
    labels = torch.from_numpy(RNG.integers(0, 5, size=16))
    save_torch({"logits": logits}, str(tmp_path / "x.safetensors"))
    torch.save({"labels": labels}, tmp_path / "y.pt")
    want = F.cross_entropy(logits.float(), labels)  # losscli's rule: bf16 upcast to float32, computed in float32
    for backend in ("numpy", "torch"):
        got = value("cross-entropy", str(tmp_path / "x.safetensors"), f"{tmp_path / 'y.pt'}:labels", backend=backend)
        assert_torch(got, want)
    # torch on the bfloat16 tensors themselves answers in bfloat16, off by bfloat16 rounding (here and in
    # its intermediate steps): what docs/inputs.md states
    in_bf16 = F.cross_entropy(logits, labels)
    assert in_bf16.dtype == torch.bfloat16
    assert abs(in_bf16.item() - float(got)) <= 2 ** -6 * abs(float(got))


def test_binary_bce_with_logits_from_pt_dict(tmp_path):
    logits, targets = RNG.normal(size=(7, 3)), (RNG.random((7, 3)) > 0.5).astype(np.float64)
    pos = np.array([2.0, 1.0, 0.5])
    torch.save({"logits": t(logits), "targets": t(targets), "pos": t(pos)}, tmp_path / "b.pt")
    f = tmp_path / "b.pt"
    got = value("bce-with-logits", f"{f}:logits", f"{f}:targets", pos_weight=f"{f}:pos")
    assert_torch(got, F.binary_cross_entropy_with_logits(t(logits), t(targets), pos_weight=t(pos)))


def test_divergence_kl_div_from_pth_list(tmp_path):
    log_probs = F.log_softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    target = F.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(2)), dim=1)
    torch.save([log_probs, target], tmp_path / "d.pth")
    f = tmp_path / "d.pth"
    got = value("kl-div", f"{f}:0", f"{f}:1", reduction="batchmean")
    assert_torch(got, F.kl_div(log_probs, target, reduction="batchmean"))


def test_margin_multi_margin_from_safetensors_torch(tmp_path):
    scores, labels = torch.randn(8, 5, generator=torch.Generator().manual_seed(3)), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    save_torch({"scores": scores, "labels": labels.int()}, str(tmp_path / "m.safetensors"))
    f = tmp_path / "m.safetensors"
    assert_torch(value("multi-margin", f"{f}:scores", f"{f}:labels"), F.multi_margin_loss(scores, labels))


def test_embedding_triplet_margin_from_pt_tuple(tmp_path):
    a, p, n = (torch.randn(10, 6, generator=torch.Generator().manual_seed(s)) for s in (4, 5, 6))
    torch.save((a, p, n), tmp_path / "e.pt")
    f = tmp_path / "e.pt"
    assert_torch(value("triplet-margin", f"{f}:0", f"{f}:1", f"{f}:2"), F.triplet_margin_loss(a, p, n))


def test_sequence_ctc_from_safetensors_numpy(tmp_path):
    scores = RNG.normal(size=(12, 3, 5)).astype(np.float32)
    log_probs = scores - np.log(np.exp(scores).sum(axis=2, keepdims=True))
    targets = np.array([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 1, 0]], dtype=np.int32)
    lengths = {"input_lengths": np.array([12, 7, 10], dtype=np.int16), "target_lengths": np.array([4, 2, 3], np.int8)}
    save_numpy({"log_probs": log_probs, "targets": targets, **lengths}, str(tmp_path / "s.safetensors"))
    f = tmp_path / "s.safetensors"
    got = value("ctc", f"{f}:log_probs", f"{f}:targets", f"{f}:input_lengths", f"{f}:target_lengths")
    want = F.ctc_loss(t(log_probs), t(targets).long(), t(lengths["input_lengths"]).long(),
                      t(lengths["target_lengths"]).long())
    assert_torch(got, want)


def test_sequence_linear_cross_entropy_from_single_tensor_pt_files(tmp_path):
    x, w = torch.randn(6, 8, generator=torch.Generator().manual_seed(7)), torch.randn(20, 8) / 3
    target = torch.tensor([1, 5, 19, 0, 7, 7])
    for name, tensor in {"x": x, "w": w, "target": target}.items():
        torch.save(tensor, tmp_path / f"{name}.pt")
    got = value("linear-cross-entropy", *(str(tmp_path / f"{n}.pt") for n in ("x", "w", "target")))
    assert_torch(got, F.linear_cross_entropy(x, w, target))


# ------------------------------------------------------------- .pt: nested containers, memory-mapping


def test_nested_pt_containers_by_a_path_of_keys(tmp_path):
    logits = torch.randn(9, 4, generator=torch.Generator().manual_seed(21))
    labels = torch.tensor([0, 3, 1, 2, 2, 0, 1, 3, 0])
    torch.save({"outputs": {"logits": logits, "extra": {"labels": labels}}}, tmp_path / "d.pt")
    torch.save([{"logits": logits}, {"labels": labels}], tmp_path / "l.pt")
    torch.save(({"logits": logits},), tmp_path / "t.pt")
    d, lst, tup = (tmp_path / n for n in ("d.pt", "l.pt", "t.pt"))
    want = F.cross_entropy(logits, labels)
    assert_torch(value("cross-entropy", f"{d}:outputs.logits", f"{d}:outputs.extra.labels"), want)
    assert_torch(value("cross-entropy", f"{lst}:0.logits", f"{lst}:1.labels"), want)
    assert_torch(value("cross-entropy", f"{tup}:0.logits", f"{lst}:1.labels", backend="torch"), want)


def test_a_key_with_a_dot_is_named_whole_and_the_exact_key_wins(tmp_path):
    a, b, c = (torch.randn(5, generator=torch.Generator().manual_seed(s)) for s in (22, 23, 24))
    torch.save({"a.b": a, "a": {"b": b, "c.d": c}, "e.f": {"g": c}}, tmp_path / "k.pt")
    f = tmp_path / "k.pt"
    assert_torch(value("mse", f"{f}:a.b", f"{f}:a.c.d"), F.mse_loss(a, c))  # 'a.b' itself, not a -> b
    assert_torch(value("mse", f"{f}:e.f.g", f"{f}:a.b"), F.mse_loss(c, a))
    assert load_error(f"{f}:a.x") == f"input ({f}:a.x): expected one of the keys 'b', 'c.d' in 'a', but got 'x'"
    assert load_error(f"{f}:q.b") == f"input ({f}:q.b): expected one of the keys 'a.b', 'a', 'e.f', but got 'q.b'"
    assert load_error(f"{f}:a") == (f"input ({f}:a): expected 'a' to be a tensor, but got a dict ('b', 'c.d'); "
                                    f"name an entry inside it, as in {f}:a.b")
    assert load_error(f"{f}:a.b.c") == (f"input ({f}:a.b.c): expected one of the keys 'b', 'c.d' in 'a', but got "
                                        "'b.c'")


def test_a_zip_format_pt_file_is_memory_mapped_and_streams_in_slices(tmp_path, monkeypatch):
    pred = torch.randn(300, 4, generator=torch.Generator().manual_seed(25))
    target = torch.randn(300, 4, generator=torch.Generator().manual_seed(26))
    torch.save({"out": {"pred": pred, "target": target.bfloat16()}}, tmp_path / "m.pt")
    f = tmp_path / "m.pt"
    loaded = Loader().load(f"{f}:out.pred", role="input")
    with open("/proc/self/maps") as maps:  # torch.load(mmap=True) maps the file: its pages are read on demand
        assert str(f) in maps.read()
    np.testing.assert_array_equal(loaded.rows.read(10, 20), pred[10:20].numpy())
    whole = losscli.compute("huber", f"{f}:out.pred", f"{f}:out.target", reduction="none").value
    want = F.huber_loss(pred, target.bfloat16().float(), reduction="none")
    assert_torch(np.asarray(whole), want)

    def refuse(self):
        raise AssertionError("a streamed tensor is read whole")

    monkeypatch.setattr(PtRows, "whole", refuse)
    for reduction in ("mean", "sum", "none"):
        streamed = losscli.compute("huber", f"{f}:out.pred", f"{f}:out.target", reduction=reduction,
                                   streaming=losscli.Streaming(chunk_rows=7))
        expected = {"mean": want.mean(), "sum": want.sum(), "none": want}[reduction]
        assert_torch(np.asarray(streamed.value), expected)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="memory read from /proc")
def test_a_mapped_pt_file_is_not_read_into_memory(tmp_path):
    """64 MiB of tensors streamed: the process's anonymous memory (not the file's mapped pages) grows by a few
    chunks, where torch.load without mmap holds the whole file."""
    pred = torch.arange(1 << 23, dtype=torch.float32) / (1 << 23)
    torch.save({"pred": pred, "target": pred.flip(0)}, tmp_path / "big.pt")
    code = ("import re, torch, losscli\n"
            "def anon():\n"
            "    return int(re.search(r'RssAnon:\\s*(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
            "before = anon()\n"
            "r = losscli.compute('mse', 'big.pt:pred', 'big.pt:target')\n"
            "print(anon() - before, float(r.value))\n")
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    grown_kib, got = proc.stdout.split()
    assert int(grown_kib) < 24 << 10, grown_kib  # the file is 64 MiB
    assert float(got) == pytest.approx(F.mse_loss(pred, pred.flip(0)).item(), rel=1e-6)


def test_a_legacy_pt_file_and_a_piped_one_are_read_too(tmp_path):
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(27))
    y = torch.randn(6, 3, generator=torch.Generator().manual_seed(28))
    torch.save({"p": {"x": x}, "y": y}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    torch.save({"p": {"x": x}, "y": y}, tmp_path / "new.pt")
    assert (tmp_path / "old.pt").read_bytes()[:4] != b"PK\x03\x04"  # the pickle format before torch 1.6
    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    assert_torch(value("mse", f"{old}:p.x", f"{old}:y"), F.mse_loss(x, y))
    done = subprocess.run(f"cat {new} | {sys.executable} -m losscli mse -f plain /dev/stdin:p.x {old}:y", shell=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert float(done.stdout) == pytest.approx(F.mse_loss(x, y).item(), rel=1e-6)


def test_bfloat16_inputs_show_what_the_file_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(29))
    torch.save({"x": x.bfloat16(), "y": x}, "b.pt")
    save_torch({"x": x.bfloat16()}, "b.safetensors")
    for spec in ("b.pt:x", "b.safetensors:x"):
        result = runner.invoke(app, ["mse", spec, "b.pt:y", "-f", "table"])
        assert result.exit_code == 0, result.stderr
        rows = [line.split() for line in result.stdout.splitlines()]
        assert ["input", spec, "(4,", "3)", "bfloat16", "(read", "as", "float32)"] in rows, result.stdout
        assert ["target", "b.pt:y", "(4,", "3)", "float32"] in rows, result.stdout
        result = runner.invoke(app, ["mse", spec, "b.pt:y", "-f", "json"])
        assert json.loads(result.stdout)["inputs"][0]["dtype"] == "float32"  # the dtype computed from


# ------------------------------------------------------------------------------- dtypes and bfloat16


def test_every_safetensors_dtype_reads_as_written(tmp_path):
    arrays = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32,
              "i16": np.int16, "i8": np.int8, "u8": np.uint8, "bool": np.bool_}
    written = {k: (RNG.normal(size=(3, 2)) * 50).astype(d) for k, d in arrays.items()}
    save_numpy(written, str(tmp_path / "all.safetensors"))
    for key, array in written.items():
        got = Loader().load(f"{tmp_path / 'all.safetensors'}:{key}", role="input")
        assert got.rows.dtype == array.dtype and got.rows.shape == array.shape
        np.testing.assert_array_equal(got.array, array)
        np.testing.assert_array_equal(got.rows.read(1, 3), array[1:3])


def test_bfloat16_upcast_is_torchs_for_every_bit_pattern():
    bits = np.arange(2 ** 16, dtype=np.uint16)
    want = t(bits.view(np.int16)).view(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(bf16_to_float32(bits).view(np.uint32), want.view(np.uint32))


def test_bfloat16_from_pt_is_upcast_too(tmp_path):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(8)).bfloat16()
    torch.save({"x": x}, tmp_path / "x.pt")
    save_torch({"x": x}, str(tmp_path / "x.safetensors"))
    for path in ("x.pt", "x.safetensors"):
        got = Loader().load(f"{tmp_path / path}:x", role="input").array
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x.float().numpy())


def test_bfloat16_with_a_wider_float_computes_as_torch_promotes(tmp_path):
    pred = torch.randn(10, generator=torch.Generator().manual_seed(9)).bfloat16()
    target = torch.randn(10, dtype=torch.float64)
    save_torch({"pred": pred, "target": target, "target32": target.float()}, str(tmp_path / "p.safetensors"))
    f = tmp_path / "p.safetensors"
    for backend in ("numpy", "torch"):
        got = value("mse", f"{f}:pred", f"{f}:target", backend=backend)
        assert_torch(got, F.mse_loss(pred, target))  # torch: bfloat16 with float64 gives float64
        assert got.dtype == np.float64
        got = value("mse", f"{f}:pred", f"{f}:target32", backend=backend)
        assert_torch(got, F.mse_loss(pred, target.float()))  # and with float32, float32: the same value
        if backend == "torch":  # the same call on the same float32 values
            assert got.item() == F.mse_loss(pred, target.float()).item()


# ------------------------------------------------------------------- streaming, --grad, losscli check


def test_streaming_reads_rows_and_equals_the_whole(tmp_path, monkeypatch):
    pred, target = RNG.normal(size=(53, 3)).astype(np.float32), RNG.normal(size=(53, 3)).astype(np.float32)
    save_torch({"pred": t(pred).bfloat16(), "target": t(target)}, str(tmp_path / "s.safetensors"))
    f = tmp_path / "s.safetensors"
    whole = losscli.compute("huber", f"{f}:pred", f"{f}:target", reduction="none").value
    assert_torch(np.asarray(whole), F.huber_loss(t(pred).bfloat16().float(), t(target), reduction="none"))

    def refuse(self):
        raise AssertionError("a streamed tensor is read whole")

    monkeypatch.setattr(TensorRows, "whole", refuse)
    for reduction in ("mean", "sum", "none"):
        streamed = losscli.compute("huber", f"{f}:pred", f"{f}:target", reduction=reduction,
                                   streaming=losscli.Streaming(chunk_rows=7))
        want = {"mean": whole.mean(dtype=np.float64), "sum": whole.sum(dtype=np.float64), "none": whole}[reduction]
        np.testing.assert_allclose(np.asarray(streamed.value), want, rtol=1e-6)


def test_streaming_memory_is_a_chunks_not_the_files(tmp_path):
    rows = 1_000_000  # 4 MB per tensor
    pred = np.linspace(-1, 1, rows, dtype=np.float32)
    save_numpy({"pred": pred, "target": pred[::-1].copy()}, str(tmp_path / "big.safetensors"))
    f = tmp_path / "big.safetensors"
    tracemalloc.start()
    try:
        result = losscli.compute("mse", f"{f}:pred", f"{f}:target", streaming=losscli.Streaming(chunk_rows=10_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak  # the two tensors are 8 MB
    assert abs(float(result.value) - F.mse_loss(t(pred), t(pred[::-1].copy())).item()) < 1e-5


def test_grad_from_safetensors(tmp_path):
    pred, target = RNG.normal(size=(6, 4)).astype(np.float32), RNG.normal(size=(6, 4)).astype(np.float32)
    save_numpy({"pred": pred, "target": target}, str(tmp_path / "g.safetensors"))
    f = tmp_path / "g.safetensors"
    result = runner.invoke(app, ["smooth-l1", f"{f}:pred", f"{f}:target", "--grad", str(tmp_path / "grad.npy")])
    assert result.exit_code == 0, result.stderr
    leaf = t(pred).requires_grad_()
    F.smooth_l1_loss(leaf, t(target)).backward()
    np.testing.assert_allclose(np.load(tmp_path / "grad.npy"), leaf.grad.numpy(), rtol=1e-6, atol=1e-8)


def test_check_with_a_gate_file_naming_tensors(tmp_path):
    logits, labels = RNG.normal(size=(10, 4)).astype(np.float32), RNG.integers(0, 4, size=10)
    save_numpy({"logits": logits, "labels": labels}, str(tmp_path / "x.safetensors"))
    want = F.cross_entropy(t(logits), t(labels)).item()
    (tmp_path / "gates.toml").write_text('[[check]]\nname = "tensors"\nloss = "cross-entropy"\n'
                                         'input = "x.safetensors:logits"\ntarget = "x.safetensors:labels"\n'
                                         f"max = {want + 0.01}\n")
    report = losscli.check(str(tmp_path / "gates.toml"))
    assert report.exit_code == 0
    result = runner.invoke(app, ["check", str(tmp_path / "gates.toml"), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    check, = json.loads(result.stdout)["checks"]
    assert check["status"] == "pass" and abs(check["value"] - want) < 1e-6


# -------------------------------------------------------------------------------- names and selection


def test_a_single_tensor_needs_no_name_and_several_need_one(tmp_path):
    save_numpy({"only": np.arange(3.0)}, str(tmp_path / "one.safetensors"))
    np.testing.assert_array_equal(Loader().load(str(tmp_path / "one.safetensors"), role="input").array,
                                  np.arange(3.0))
    save_numpy({"b": np.zeros(2), "a": np.ones(2)}, str(tmp_path / "two.safetensors"))
    spec = str(tmp_path / "two.safetensors")
    assert load_error(spec) == (f"input ({spec}): expected a tensor name to pick one of its 2 tensors ('a', 'b'), "
                                f"as in {spec}:a, but got none")
    assert load_error(f"{spec}:c") == f"input ({spec}:c): expected one of the tensors 'a', 'b', but got 'c'"


def test_pt_selection_errors(tmp_path):
    torch.save({"x": torch.zeros(2), "nested": {"y": torch.zeros(2)}, "n": 3}, tmp_path / "d.pt")
    torch.save([torch.zeros(2)], tmp_path / "l.pt")
    torch.save(torch.zeros(2, dtype=torch.complex64), tmp_path / "c.pt")
    torch.save(torch.zeros(2), tmp_path / "t.pt")
    d, lst, c, one = (str(tmp_path / n) for n in ("d.pt", "l.pt", "c.pt", "t.pt"))
    assert load_error(f"{d}:z") == f"input ({d}:z): expected one of the keys 'x', 'nested', 'n', but got 'z'"
    assert load_error(d).startswith(f"input ({d}): expected a key to pick one of its 3 entries ('x', 'nested', 'n')")
    assert load_error(f"{d}:nested") == (f"input ({d}:nested): expected 'nested' to be a tensor, but got a dict "
                                         f"('y'); name an entry inside it, as in {d}:nested.y")
    assert load_error(f"{d}:n").endswith("but got a int")
    assert load_error(f"{lst}:1") == f"input ({lst}:1): expected one of the keys '0', but got '1'"
    np.testing.assert_array_equal(Loader().load(lst, role="input").array, np.zeros(2, np.float32))
    assert "but got complex64" in load_error(c)
    assert load_error(f"{one}:0") == f"input ({one}:0): expected no key (the file holds one tensor), but got ':0'"


# --------------------------------------------------------------------------------------- hostile files


def raw_safetensors(path: Path, header: object, data: bytes = b"", length: int | None = None) -> str:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(text) if length is None else length).to_bytes(8, "little") + text + data)
    return path.name


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(("header", "data", "length", "message"), [
    ({"x": F32}, b"\0" * 8, 1 << 40,
     "expected a .safetensors header that fits in the file (69 bytes after the length, at most 100000000), "
     "but its length says 1099511627776 bytes"),
    (b"not json{", b"", None, "expected a .safetensors header of JSON text, but got bytes that are not JSON "
                              "(the file is corrupt or not a .safetensors file)"),
    ([1, 2], b"", None, "expected a .safetensors header that is a JSON object, but got a list"),
    ({"x": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "expected tensor 'x' (F32, shape (1099511627776, 1099511627776)) to take 4835703278458516698824704 bytes, "
     "but its data_offsets [0, 8] span 8"),
    ({"x": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4835703278458516698824704]}},
     b"\0" * 8, None, "expected tensor 'x''s data_offsets [0, 4835703278458516698824704] inside the file's 8 bytes "
                      "of data, but they end beyond it (the file is truncated or corrupt)"),
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None,
     "expected tensor 'x''s data_offsets [0, 16] inside the file's 8 bytes of data, but they end beyond it "
     "(the file is truncated or corrupt)"),
    ({"x": F32, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None,
     "expected tensors whose data do not overlap, but 'y' begins at 4, inside 'x' (which ends at 8)"),
    ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "expected tensor 'x' (F16, shape (2,)) to take 4 bytes, but its data_offsets [0, 8] span 8"),
    ({"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, None,
     "expected tensor 'x' of a dtype losscli reads (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL), "
     "but got F8_E4M3"),
    ({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "expected tensor 'x' to have a shape of non-negative integers, but got [-2]"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, None,
     "expected tensor 'x' to have data_offsets [begin, end] with 0 <= begin <= end, but got [8, 0]"),
    ({"x": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None,
     "expected tensor 'x' to have a dtype, a shape and data_offsets in the header, but got "
     '{"dtype": "F32", "shape": [2]}'),
    ({"__metadata__": {"format": "pt"}}, b"", None,
     "expected a .safetensors file holding tensors, but its header names none"),
])
def test_hostile_safetensors_is_one_line_exit_2(tmp_path, monkeypatch, header, data, length, message):
    monkeypatch.chdir(tmp_path)
    name = raw_safetensors(tmp_path / "bad.safetensors", header, data, length)
    tracemalloc.start()
    try:
        line = refusal("mse", name, name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert line == f"error: input ({name}): {message}"
    assert peak < 50_000_000


def test_a_file_shorter_than_the_length_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    assert refusal("mse", "short.safetensors", "short.safetensors") == (
        "error: input (short.safetensors): expected a .safetensors file (an 8-byte header length first), "
        "but got 2 bytes")


class Planted:
    """Unpickling it would create the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_an_arbitrary_pickled_object_is_refused_and_not_run(tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    planted = tmp_path / "planted.txt"
    if how == "torch.save":
        torch.save({"x": torch.zeros(2), "evil": Planted(str(planted))}, tmp_path / "evil.pt")
    else:
        with open(tmp_path / "evil.pt", "wb") as f:
            pickle.dump({"evil": Planted(str(planted))}, f)
    line = refusal("mse", "evil.pt:x", "evil.pt:x")
    assert line.startswith("error: input (evil.pt:x): expected tensors that torch.load(weights_only=True) reads, "
                           "but its unpickler refuses the file ("), line
    assert line.endswith("); losscli never unpickles arbitrary objects"), line
    assert not planted.exists()
    if how == "torch.save":  # the file does plant it when unpickled without weights_only: the test means it
        torch.load(tmp_path / "evil.pt", weights_only=False)
        assert planted.exists()


def test_a_corrupt_pt_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip" + bytes(range(256)))
    line = refusal("mse", "junk.pt", "junk.pt")
    assert line.startswith("error: input (junk.pt): expected ")


# --------------------------------------------------------------------------------- without torch, imports


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def test_pt_without_torch_says_how_to_install_it(tmp_path):
    torch.save(torch.zeros(2), tmp_path / "a.pt")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from losscli.edge.main import entry\n"
            "sys.argv = ['losscli', 'mse', 'a.pt', 'a.pt']\n"
            "entry()\n")
    proc = run_python(code, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: input (a.pt): expected torch, to read a .pt/.pth file, but it is not "
                                   "installed: pip install 'losscli[torch]'")


def test_safetensors_on_the_numpy_path_imports_neither_torch_nor_safetensors(tmp_path):
    save_numpy({"a": np.arange(4.0), "b": np.ones(4)}, str(tmp_path / "x.safetensors"))
    code = ("import sys, losscli\n"
            "r = losscli.compute('mse', 'x.safetensors:a', 'x.safetensors:b', outputs=losscli.Outputs(grad=True))\n"
            "assert r.item() == 1.5, r.item()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors'))\n"
            "assert heavy == [], heavy\n")
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
